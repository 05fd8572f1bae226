// Mission Control's fleet view and settings in a real browser (Debian's
// chromium through playwright-core), against the bureaud that
// tests/e2e/test_web_fleet.py starts (plan limit 2, tiny image guests):
//   BUREAU_URL BUREAU_EMAIL BUREAU_PASSWORD   the administrator's login
//   BUREAU_KEY                                 an admin API key (the "other client")
//   BUREAU_CLI                                 build/bureau
//   BUREAU_USER_EMAIL BUREAU_USER_PASSWORD     a user who is not an administrator
//   BUREAU_MODEL_URL BUREAU_MODEL_KEY          the scripted LLM provider, and a key for it
// Creates a desktop through the form and follows it to running without a
// reload, sees its thumbnail and sparkline, sees a desktop created by
// another client appear live, stops both in bulk and starts one back,
// makes an API key in Settings that the CLI then uses until the key is
// revoked in the UI, creates a workspace and adds a member, destroys the
// desktops in bulk, and checks that a non-administrator has no Users
// section. Bad input through the forms shows the server's messages.
// Prints TAP; screenshots go to tests/browser/screenshots/.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tap, browser, login, shot, until } from './lib.mjs';

const env = process.env;
const base = env.BUREAU_URL;
const t = tap();
const b = await browser(base, { width: 1400, height: 900 });
const page = b.page;
const SLOW = 150000; // a tiny guest under TCG on a loaded host

// ---- helpers ----

async function api(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: 'Bearer ' + env.BUREAU_KEY, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

// The fleet table as the user sees it: name -> {id, state, shown, checked}.
function rows() {
  return page.evaluate(() => {
    const out = {};
    for (const tr of document.querySelectorAll('.fleet-table tbody tr')) {
      const name = tr.querySelector('.fleet-name').textContent;
      out[name] = {
        id: tr.dataset.id,
        state: tr.querySelector('.badge[data-state]').dataset.state,
        shown: !tr.hidden,
        checked: tr.querySelector('td.sel input').checked,
      };
    }
    return out;
  });
}

async function waitRows(pred, ms = SLOW) {
  let last;
  const ok = await until(async () => { last = await rows(); return pred(last); }, ms, 300);
  return { ok: !!ok, rows: last };
}

const ids = {}; // desktop name -> id
const rowSel = (name) => `.fleet-table tbody tr[data-id="${ids[name]}"]`;

async function formError() {
  await page.waitForSelector('dialog[open] .fleet-form-error:not([hidden])', { timeout: 15000 });
  return page.textContent('dialog[open] .fleet-form-error');
}

async function createThroughForm(name, submit = true) {
  await page.fill('dialog[open] input[name=name]', name);
  await page.selectOption('dialog[open] select[name=image]', 'tiny');
  if (submit) await page.click('dialog[open] .actions button.primary');
}

function cli(key, ...args) {
  const home = mkdtempSync(join(tmpdir(), 'bureau-fleet-cli-'));
  return new Promise((resolve) => {
    execFile(env.BUREAU_CLI, args, {
      timeout: 30000,
      env: { PATH: env.PATH, HOME: home, BUREAU_CONFIG: join(home, 'none'), BUREAU_ENDPOINT: base, BUREAU_API_KEY: key },
    }, (err, stdout, stderr) => {
      rmSync(home, { recursive: true, force: true });
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

// Every state each row's badge showed, in order, and every toast with
// its links (recorded in the page: toasts leave after a few seconds).
async function recordStates() {
  await page.evaluate(() => {
    window.__toasts = [];
    new MutationObserver((muts) => {
      for (const m of muts) for (const n of m.addedNodes)
        if (n.nodeType === 1) window.__toasts.push({ text: n.textContent, links: [...n.querySelectorAll('a')].map((a) => a.getAttribute('href')) });
    }).observe(document.getElementById('toasts'), { childList: true });
    window.__states = {};
    const body = document.querySelector('.fleet-table tbody');
    const note = () => {
      for (const tr of body.querySelectorAll('tr')) {
        const n = tr.querySelector('.fleet-name').textContent;
        const s = tr.querySelector('.badge[data-state]').dataset.state;
        const seen = (window.__states[n] = window.__states[n] || []);
        if (seen[seen.length - 1] !== s) seen.push(s);
      }
    };
    new MutationObserver(note).observe(body, { childList: true, subtree: true });
    note();
  });
}

// Requests for each desktop's thumbnail and metrics, to see the polling.
const polls = [];
page.on('request', (req) => {
  const m = req.url().match(/\/api\/desktops\/([\w-]+)\/(screenshot|metrics)/);
  if (m) polls.push({ id: m[1], what: m[2], at: Date.now(), url: req.url() });
});

// ---- the empty fleet ----

await login(page, base, env.BUREAU_EMAIL, env.BUREAU_PASSWORD);
await page.waitForSelector('.fleet .fleet-empty:not([hidden])', { timeout: 20000 });
t.ok(await page.isVisible('text=No desktops in this workspace yet'), 'the fleet starts empty, and says so');
t.ok((await page.textContent('.fleet-stats')).includes('0 / 2'), 'the plan usage shows 0 of the 2 desktops the plan allows');
await page.evaluate(() => { window.__fleetMarker = 'kept'; });
const startUrl = page.url();
await recordStates();

// ---- create through the form ----

await page.click('#new-desktop');
await page.waitForSelector('dialog[open] form.fleet-create');
const tierText = await page.textContent('dialog[open] .fleet-tiers');
t.ok(/Free/.test(tierText) && /4 vCPU · 16 GB memory · 80 GB disk/.test(tierText) && /hour/.test(tierText),
  'the create form lists the tiers with vCPU, memory, disk and price', tierText);
t.ok(await page.inputValue('dialog[open] select[name=screen]') === '1280x800' &&
  (await page.$$('dialog[open] select[name=screen] option')).length === 6, 'the screen sizes are offered, 1280x800 by default');
t.ok(await page.isDisabled('dialog[open] input[name=apiKey]'), 'the agent fields wait for a provider');
await page.selectOption('dialog[open] select[name=provider]', 'anthropic');
t.ok(await page.getAttribute('dialog[open] input[name=apiKey]', 'type') === 'password' &&
  !(await page.isDisabled('dialog[open] input[name=apiKey]')), 'with a provider, the API key is a password field');
await page.selectOption('dialog[open] select[name=provider]', '');

await page.click('dialog[open] .actions button.primary');
let msg = await formError();
t.ok(/name must not be empty/.test(msg) && await page.isVisible('dialog[open]'),
  'an empty name: the server\'s message in the form, which stays open', msg);
b.ignore(/status of 400/);

await createThroughForm('alpha', false);
await page.selectOption('dialog[open] select[name=screen]', '1024x768');
await page.selectOption('dialog[open] select[name=provider]', 'anthropic');
await page.fill('dialog[open] input[name=model]', 'test-model');
await page.fill('dialog[open] input[name=apiKey]', env.BUREAU_MODEL_KEY);
await page.click('dialog[open] .fleet-advanced summary');
await page.fill('dialog[open] input[name=baseUrl]', env.BUREAU_MODEL_URL);
await shot(page, 'create');
await page.click('dialog[open] .actions button.primary');
await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 20000 });
const kept = await page.evaluate((k) => [JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage }),
  document.documentElement.outerHTML, [...document.querySelectorAll('input')].map((i) => i.value).join(' ')]
  .some((x) => x.includes(k)), env.BUREAU_MODEL_KEY);
t.ok(!kept, 'the agent\'s API key is not kept by the page (storage, DOM, inputs)');
let r = await waitRows((x) => x.alpha, 10000);
t.ok(r.ok, 'the new desktop has a row at once', r.rows);
const alphaId = r.ok ? r.rows.alpha.id : null;
ids.alpha = alphaId;
t.ok(await page.isVisible(`.fleet-launch[data-id="${alphaId}"]`), 'a launch panel follows the new desktop');

r = await waitRows((x) => x.alpha && x.alpha.state === 'running');
t.ok(r.ok, 'the desktop reaches running in the table without a reload', r.rows);
const seen = await page.evaluate(() => window.__states.alpha || []);
t.ok(seen[0] === 'provisioning' && seen.includes('booting') && seen[seen.length - 1] === 'running',
  'its badge went provisioning → booting → running, live', seen);
const launch = `.fleet-launch[data-id="${alphaId}"]`;
await page.waitForSelector(`${launch}[data-state="running"]`, { timeout: 10000 }).catch(() => {});
const launchText = await page.textContent(launch);
t.ok(/Boot: (cold boot|warm template)/.test(launchText) && /ready/.test(launchText) &&
  await page.isVisible(`${launch} a[href="#/desktops/${alphaId}"]`),
  'the launch panel tells the boot path and links the ready desktop', launchText);
const toasts = await page.evaluate(() => window.__toasts);
t.ok(toasts.some((x) => /alpha is ready/.test(x.text) && x.links.includes('#/desktops/' + alphaId)),
  'a toast says it is ready, with a link to open it', toasts);
t.ok(await page.evaluate(() => window.__fleetMarker) === 'kept' && page.url() === startUrl,
  'no navigation happened (the page\'s marker is still set)', page.url());

const thumb = await until(() => page.evaluate((sel) => {
  const img = document.querySelector(sel + ' td.thumb img');
  return img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:') ? img.naturalWidth : 0;
}, rowSel('alpha')), 60000, 500);
t.ok(thumb > 0, 'the running desktop\'s thumbnail loads (a blob of its screenshot)', thumb);
// The server scales it to the thumbnail's size in device pixels.
const shotBox = await page.evaluate((sel) => {
  const a = document.querySelector(sel + ' td.thumb a');
  return Math.ceil(a.clientWidth * window.devicePixelRatio);
}, rowSel('alpha'));
const asked = polls.filter((x) => x.id === alphaId && x.what === 'screenshot').map((x) => new URL(x.url).searchParams.get('width'));
// (one asked before the row was laid out may carry the page's first guess, 320)
t.ok(asked.length > 0 && Number(asked[asked.length - 1]) === shotBox &&
  asked.every((w) => Number(w) === shotBox || Number(w) === 320) && thumb <= Math.max(shotBox, 320),
  `the thumbnail is asked for at its displayed width (?width=${shotBox}) and comes that small (${thumb} px)`, asked);
const spark = await until(() => page.$(rowSel('alpha') + ' td.cpu svg.spark path'), 60000, 500);
t.ok(!!spark, 'a CPU sparkline appears from the metrics');
t.ok(!!(await page.$(rowSel('alpha') + ' td.mem svg.spark path')), 'and a memory sparkline');
t.ok(/up \d/.test(await page.textContent(rowSel('alpha') + ' td.state')), 'the row shows the uptime');

// ---- the agent's work shows live (the scripted model answers slowly) ----

const task = 'Run the test suite and report results';
const sent = await api('POST', `/api/desktops/${alphaId}/chat`, { message: task });
t.ok(sent.status === 202, 'a message is sent to the desktop\'s agent through the API', sent);
const agentCell = rowSel('alpha') + ' td.agent';
const working = await until(async () => {
  const text = await page.textContent(agentCell);
  return /working/.test(text) && text.includes(task) ? text : null;
}, 60000, 250);
t.ok(!!working, 'the row shows the agent working on that task, live', await page.textContent(agentCell));
const idle = await until(async () => /idle/.test(await page.textContent(agentCell)), 90000, 500);
t.ok(idle && (await page.textContent(agentCell)).includes(task), 'then idle again, with its last task', await page.textContent(agentCell));

// ---- a duplicate name through the form ----

await page.click('#new-desktop');
await page.waitForSelector('dialog[open] form.fleet-create');
await createThroughForm('alpha');
msg = await formError();
t.ok(/already exists/.test(msg), 'a duplicate name: the server\'s message in the form', msg);
await page.click('dialog[open] .actions button:has-text("Cancel")');
await page.waitForSelector('dialog[open]', { state: 'detached' });
b.ignore(/status of 409/);

// ---- another client creates a desktop: it appears live ----

const ws = (await api('GET', '/api/workspaces')).body.workspaces[0].id;
const created = await api('POST', '/api/desktops', { name: 'beta', image: 'tiny', workspaceId: ws });
t.ok(created.status === 201, 'a second desktop is created through the API', created);
ids.beta = created.body && created.body.id;
r = await waitRows((x) => x.beta, 20000);
t.ok(r.ok, 'its row appears without a reload', r.rows);
r = await waitRows((x) => x.beta && x.beta.state === 'running');
t.ok(r.ok, 'and reaches running live', r.rows);
t.ok((await page.textContent('.fleet-stats')).includes('2 / 2'), 'the plan usage shows 2 of 2');

// ---- over the plan limit through the form ----

await page.click('#new-desktop');
await page.waitForSelector('dialog[open] form.fleet-create');
await createThroughForm('gamma');
await until(async () => /plan/.test(await page.textContent('dialog[open] .fleet-form-error')), 15000);
msg = await page.textContent('dialog[open] .fleet-form-error');
t.ok(/2 of 2 desktops its plan allows/.test(msg), 'over the plan limit: the server\'s message in the form', msg);
await page.click('dialog[open] .actions button:has-text("Cancel")');
await page.waitForSelector('dialog[open]', { state: 'detached' });
b.ignore(/status of 422/);
t.ok(!(await rows()).gamma, 'nothing was created by the refused attempts');

// ---- screenshots with two running desktops ----

await until(() => page.evaluate(() => [...document.querySelectorAll('.fleet-table td.thumb img')]
  .filter((i) => i.isConnected && i.naturalWidth > 0).length >= 2), 60000, 500);
await until(() => page.$(rowSel('beta') + ' td.cpu svg.spark path'), 30000, 500);
await page.click(`${launch} button:has-text("Dismiss")`);
await page.mouse.move(0, 0);
await shot(page, 'fleet');
await page.emulateMedia({ colorScheme: 'dark' });
await page.waitForTimeout(300);
await shot(page, 'fleet-dark');
await page.emulateMedia({ colorScheme: 'light' });

// ---- filters ----

await page.fill('.fleet-toolbar input[type=search]', 'bet');
r = await rows();
t.ok(r.beta.shown && !r.alpha.shown, 'the search box filters by name', r);
await page.fill('.fleet-toolbar input[type=search]', alphaId.slice(0, 12));
r = await rows();
t.ok(r.alpha.shown && !r.beta.shown, 'and by id', r);
await page.fill('.fleet-toolbar input[type=search]', '');

// ---- bulk: stop both, see the failures of a second stop, start one ----

await page.click('.fleet-table thead input[type=checkbox]');
r = await rows();
t.ok(r.alpha.checked && r.beta.checked && /2 desktops selected/.test(await page.textContent('.fleet-selcount')),
  'select-all selects both desktops', r);
await page.click('.fleet-bulkbar button[data-action=stop]');
r = await waitRows((x) => x.alpha.state === 'stopped' && x.beta.state === 'stopped');
t.ok(r.ok, 'bulk Stop: both rows reach stopped live', r.rows);
t.ok(await page.textContent('.fleet-stats .stat:nth-child(2) .value') === '0', 'the running count drops to 0');
t.ok(await page.evaluate((sel) => !document.querySelector(sel + ' td.thumb img') &&
  !!document.querySelector(sel + ' td.thumb .fleet-noshot'), rowSel('alpha')), 'a stopped desktop shows a placeholder, not a picture');

await page.click('.fleet-bulkbar button[data-action=stop]');
await page.waitForSelector('.fleet-bulk-result:not([hidden])', { timeout: 15000 });
const failText = await page.textContent('.fleet-bulk-result');
t.ok(/2 failed/.test(failText) && /alpha/.test(failText) && /beta/.test(failText) && /already stopped/.test(failText) && /409/.test(failText),
  'stopping stopped desktops: each desktop\'s failure is shown with the server\'s message', failText);
t.ok(/already stopped/.test(await page.textContent(rowSel('beta') + ' td.state')), 'and on the failed row itself');

await page.click('.fleet-bulkbar button:has-text("Clear selection")');
await page.focus(rowSel('alpha') + ' td.sel input');
await page.keyboard.press('Space');
r = await rows();
t.ok(r.alpha.checked && !r.beta.checked, 'a row is selected from the keyboard', r);
await page.click('.fleet-bulkbar button[data-action=start]');
r = await waitRows((x) => x.alpha.state === 'running');
t.ok(r.ok && r.rows.beta.state === 'stopped', 'bulk Start of one: it runs again, the other stays stopped', r.rows);
t.ok(await page.isHidden('.fleet-bulk-result'), 'a successful action clears the failure panel');

await page.click('.fleet-chips button[data-state=running]');
r = await rows();
t.ok(r.alpha.shown && !r.beta.shown && /1/.test(await page.textContent('.fleet-chips button[data-state=stopped]')),
  'the state filter shows only running desktops; the chips count per state', r);
await page.click('.fleet-chips button[data-state=all]');

// ---- settings: an API key for the CLI, revoked in the UI ----

await page.click('a[data-nav=settings]');
await page.waitForSelector('#keys table', { timeout: 15000 });
t.ok(await page.isVisible('#users'), 'an administrator sees the Users section');
await page.fill('#key-form input[name=name]', 'fleet-cli');
await page.click('#key-form button[type=submit]');
await page.waitForSelector('dialog[open] #new-key', { timeout: 15000 });
const key = await page.inputValue('dialog[open] #new-key');
const dlg = await page.textContent('dialog[open]');
t.ok(/^bk_/.test(key) && /you will not see it again/.test(dlg) && await page.isVisible('dialog[open] button:has-text("Copy")'),
  'a new key is shown once, with a copy button and a warning', dlg);
await page.click('dialog[open] button:has-text("Done")');
await page.waitForSelector('#keys tr:has(td:text-is("fleet-cli"))');

let run = await cli(key, 'desktops', 'ls');
t.ok(run.code === 0 && run.stdout.includes('alpha') && run.stdout.includes('beta'), 'the CLI lists the desktops with that key', run);
await page.click('#keys tr:has(td:text-is("fleet-cli")) button:has-text("Revoke")');
await page.waitForSelector('dialog[open]');
t.ok(/401/.test(await page.textContent('dialog[open]')), 'revoking asks for confirmation first');
await page.click('dialog[open] button:has-text("Revoke key")');
await page.waitForSelector('#keys tr:has(td:text-is("fleet-cli")) button:has-text("Revoke")', { state: 'detached', timeout: 15000 });
t.ok(!(await page.isVisible('#keys tr:has(td:text-is("fleet-cli")) button')), 'the revoked key can no longer be revoked in the list');
run = await cli(key, 'desktops', 'ls');
t.ok(run.code !== 0 && /unauthori[sz]ed|revoked|401/i.test(run.stderr + run.stdout), 'after the revoke the same CLI call fails, unauthorized', run);

// ---- settings: workspaces and members ----

await page.fill('#workspace-form input[name=name]', 'two words');
await page.click('#workspace-form button[type=submit]');
await page.waitForSelector('#workspaces .settings-error:not([hidden])');
t.ok(/may only contain/.test(await page.textContent('#workspaces .settings-error')), 'a bad workspace name shows the server\'s message');
await page.fill('#workspace-form input[name=name]', 'team-b');
await page.click('#workspace-form button[type=submit]');
await page.waitForSelector('#workspaces tr:has-text("team-b")', { timeout: 15000 });
t.ok(await page.evaluate(() => [...document.querySelectorAll('#workspace option')].some((o) => o.textContent === 'team-b')),
  'a new workspace appears in the list and in the navigation\'s switcher');
await page.fill('#member-form input[name=email]', 'nobody@example.org');
await page.click('#member-form button[type=submit]');
await page.waitForSelector('#members .settings-error:not([hidden])');
t.ok(/no user/.test(await page.textContent('#members .settings-error')), 'adding an unknown email shows the server\'s message');
await page.fill('#member-form input[name=email]', env.BUREAU_USER_EMAIL);
await page.click('#member-form button[type=submit]');
await page.waitForSelector(`#members tr:has-text("${env.BUREAU_USER_EMAIL}")`, { timeout: 15000 });
t.ok(await page.isHidden('#members .settings-error'), 'an existing user is added as a member');
b.ignore(/status of 400|status of 404/);
await page.mouse.move(0, 0);
await until(() => page.evaluate(() => document.getElementById('toasts').childElementCount === 0), 15000);
await shot(page, 'settings');

// ---- a workspace switch leaves nothing of the old fleet running ----

await page.click('a[data-nav=fleet]');
await page.waitForSelector(rowSel('alpha') + ' td.thumb img', { timeout: 30000 });
const wsIds = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#workspace option')].map((o) => [o.textContent, o.value])));
const shots = polls.filter((x) => x.id === alphaId && x.what === 'screenshot');
t.ok(shots.length >= 2 && shots.length < (Date.now() - shots[0].at) / 5000 + 2,
  'the thumbnail is refreshed while the view is open, at a modest rate', shots.length);
const stale = [];
const watchStale = (req) => { if (req.url().includes(alphaId) || req.url().includes(ids.beta)) stale.push(req.url()); };
await page.selectOption('#workspace', wsIds['team-b']);
await page.waitForSelector('.fleet .fleet-empty:not([hidden])', { timeout: 15000 });
page.on('request', watchStale);
t.ok((await page.textContent('.fleet .page-head')).includes('team-b') && Object.keys(await rows()).length === 0,
  'switching the workspace shows the other workspace\'s (empty) fleet');
await page.waitForTimeout(14000); // longer than the thumbnail and metrics intervals
page.off('request', watchStale);
t.ok(stale.length === 0, 'after the switch no request for the old workspace\'s desktops is made', stale);
await page.selectOption('#workspace', wsIds.default);
r = await waitRows((x) => x.alpha && x.beta, 15000);
t.ok(r.ok, 'switching back lists its desktops again', r.rows);

// ---- destroy both in bulk ----

await page.click('.fleet-table thead input[type=checkbox]');
await page.click('.fleet-bulkbar button[data-action=destroy]');
await page.waitForSelector('dialog[open]');
const confirmText = await page.textContent('dialog[open]');
t.ok(/alpha/.test(confirmText) && /beta/.test(confirmText) && /cannot be undone/.test(confirmText),
  'Destroy asks for confirmation, naming the desktops', confirmText);
await page.click('dialog[open] button:has-text("Destroy")');
await page.waitForSelector('.fleet .fleet-empty:not([hidden])', { timeout: 60000 }).catch(() => {});
r = await rows();
t.ok(Object.keys(r).length === 0, 'both rows go when the desktops are destroyed', r);

// ---- a user who is not an administrator ----

await page.click('#logout');
await page.waitForSelector('#login-page:not([hidden])');
await page.fill('#email', env.BUREAU_USER_EMAIL);
await page.fill('#password', env.BUREAU_USER_PASSWORD);
await page.click('#login button[type="submit"]');
await page.waitForSelector('#app:not([hidden])', { timeout: 20000 });
await page.click('a[data-nav=settings]');
await page.waitForSelector('#keys', { timeout: 15000 });
t.ok(!(await page.$('#users')) && !(await page.isVisible('text=Create user')), 'a user who is not an administrator sees no Users section');

await b.finish(t);
t.done();
