// Mission Control in Firefox (Debian's firefox-esr through puppeteer-core
// over WebDriver BiDi, see firefox.mjs), against the bureaud and the
// running tiny desktop that tests/e2e/test_web_firefox.py provides:
//   BUREAU_URL BUREAU_EMAIL BUREAU_PASSWORD   the administrator's login
//   BUREAU_DESKTOP                            a running tiny-image desktop
// Logs in through the form; the fleet lists the desktop, and a second tiny
// desktop created meanwhile (a fetch in the page) appears and goes to
// running without a reload, then leaves when destroyed; the desktop view
// draws the guest's text console in noVNC's canvas, runs a command in the
// terminal panel, and shows the chat with its "no provider" notice; the
// approvals, alerts, activity and settings views render; light and dark
// themes follow the system's preference. No script or console errors, no
// request outside bureaud. Prints TAP; screenshots: firefox-fleet.png,
// firefox-desktop.png, firefox-dark.png.
import { tap, shot, until, canvasStats } from './lib.mjs';
import { firefox, login } from './firefox.mjs';

const env = process.env;
const base = env.BUREAU_URL;
const id = env.BUREAU_DESKTOP;
const SLOW = 90000; // a tiny guest's boot on a loaded host
const t = tap();

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => '');
const bodyColour = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
const wait = (page, fn, ms, ...args) => page.waitForFunction(fn, { timeout: ms, polling: 200 }, ...args);

// The fleet table as the user sees it: id -> {name, state}.
function rows(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.fleet-table tbody tr')].map((tr) =>
    [tr.dataset.id, { name: tr.querySelector('.fleet-name').textContent, state: tr.querySelector('.badge[data-state]').dataset.state }])));
}

async function terminalText(page) {
  return page.evaluate(() => {
    const buf = window.bureauDesktopView.terminal.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

// Every state each row's badge showed, in order (recorded in the page).
async function recordStates(page) {
  await page.evaluate(() => {
    window.__states = {};
    const body = document.querySelector('.fleet-table tbody');
    const note = () => {
      for (const tr of body.querySelectorAll('tr')) {
        const s = tr.querySelector('.badge[data-state]').dataset.state;
        const seen = (window.__states[tr.dataset.id] = window.__states[tr.dataset.id] || []);
        if (seen[seen.length - 1] !== s) seen.push(s);
      }
    };
    new MutationObserver(note).observe(body, { childList: true, subtree: true });
    note();
  });
}

// In the page, as the app's own calls are made: a same-origin fetch with the session.
function call(page, method, path, body) {
  return page.evaluate(async (m, p, b) => {
    const r = await fetch(p, { method: m, credentials: 'same-origin', headers: b ? { 'Content-Type': 'application/json' } : {},
      body: b ? JSON.stringify(b) : undefined });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, method, path, body || null);
}

// ---- light theme: login, fleet, desktop view, the other views ----
async function light() {
  const b = await firefox(base, { width: 1400, height: 900, colorScheme: 'light' });
  const page = b.page;
  try {
    t.ok(/^firefox\/\d+/i.test(await b.browser.version()), 'Firefox runs: ' + await b.browser.version());
    await login(page, base, env.BUREAU_EMAIL, env.BUREAU_PASSWORD);
    t.ok(await text(page, '#me-email') === env.BUREAU_EMAIL, 'logged in through the login form', await text(page, '#me-email'));
    t.ok(await page.evaluate(() => matchMedia('(prefers-color-scheme: light)').matches) &&
      await bodyColour(page) === 'rgb(245, 246, 248)', 'the light theme follows the system', await bodyColour(page));

    // ---- the fleet, live ----
    await page.waitForSelector(`.fleet-table tbody tr[data-id="${id}"]`, { timeout: 20000 });
    let r = await rows(page);
    t.ok(r[id] && r[id].state === 'running', 'the fleet lists the running desktop', r);
    await wait(page, () => document.getElementById('live').dataset.state === 'live', 20000);
    t.ok(true, 'the live event stream is connected');
    await page.evaluate(() => { window.__marker = 'kept'; });
    const address = page.url();
    await recordStates(page);
    const ws = (await call(page, 'GET', '/api/workspaces')).body.workspaces[0].id;
    const made = await call(page, 'POST', '/api/desktops', { name: 'ff-second', image: 'tiny', workspaceId: ws });
    t.ok(made.status === 201, 'a second tiny desktop is created meanwhile', made);
    const second = made.body && made.body.id;
    const up = await until(async () => { r = await rows(page); return r[second] && r[second].state === 'running'; }, SLOW, 300);
    const seen = await page.evaluate((s) => window.__states[s] || [], second);
    t.ok(up, 'its row appears and reaches running without a reload', r);
    t.ok(seen.length >= 2 && seen[0] !== 'running' && seen[seen.length - 1] === 'running',
      `its badge changed live: ${seen.join(' → ')}`, seen);
    t.ok(await page.evaluate(() => window.__marker) === 'kept' && page.url() === address,
      'no navigation happened (the page\'s marker is still set)', page.url());
    await shot(page, 'firefox-fleet');
    const gone = await call(page, 'DELETE', '/api/desktops/' + second);
    t.ok(gone.status === 202 || gone.status === 204, 'the second desktop is destroyed', gone);
    t.ok(await until(async () => !(await rows(page))[second], 60000, 300), 'its row leaves the fleet live', await rows(page));

    // ---- the desktop view ----
    await page.click(`.fleet-table a.fleet-name[href$="#/desktops/${id}"]`);
    await page.waitForSelector('.dv-head h1', { timeout: 20000 });
    const head = { name: await text(page, '.dv-head h1'), state: await text(page, '.dv-head .badge') };
    t.ok(head.name === r[id].name && head.state === 'running' && new URL(page.url()).hash.startsWith(`#/desktops/${id}`),
      'the desktop view opens from the fleet: name and state', { head, url: page.url() });

    await wait(page, () => window.bureauDesktopView && window.bureauDesktopView.screen.connected, 30000);
    const stats = await until(async () => {
      const s = await canvasStats(page, '.dv-screen canvas', '.dv-screen-wrap');
      return s.lit > 0 && s.colours > 1 ? s : null;
    }, 40000, 500) || await canvasStats(page, '.dv-screen canvas', '.dv-screen-wrap');
    t.ok(stats.lit > 0 && stats.colours > 1,
      `the guest's console is drawn in the screen panel (${(stats.lit * 100).toFixed(1)}% lit, ${stats.colours} colours)`, stats);
    t.ok(stats.width > 0 && stats.shownW <= stats.boxW + 1 && stats.shownH <= stats.boxH + 1,
      `the screen is scaled to its panel (${Math.round(stats.shownW)}x${Math.round(stats.shownH)} in ${Math.round(stats.boxW)}x${Math.round(stats.boxH)})`, stats);
    t.ok(/view only/.test(await text(page, '.dv-screen .dv-status')), 'view only by default, and says so');

    await wait(page, () => window.bureauDesktopView.terminal.connected, 30000);
    await page.click('.dv-term');
    await page.keyboard.type('echo ff-$((6*7))');
    await page.keyboard.press('Enter');
    const out = await until(async () => {
      const s = await terminalText(page);
      return /^ff-42\s*$/m.test(s) ? s : null;
    }, 30000) || await terminalText(page);
    t.ok(/^ff-42\s*$/m.test(out), 'a command typed into the terminal panel prints its output', out.slice(-400));
    const dock = await page.evaluate(() => {
      const d = document.querySelector('.dv-dock');
      return { scrollTop: d.scrollTop, overflow: d.scrollHeight - d.clientHeight,
        tabTop: document.getElementById('dv-tab-terminal').getBoundingClientRect().top, dockTop: d.getBoundingClientRect().top };
    });
    t.ok(dock.scrollTop === 0 && dock.overflow <= 0 && dock.tabTop >= dock.dockTop,
      'the terminal fits its dock: typing in it keeps the tabs in sight', dock);

    await wait(page, () => {
      const n = document.querySelector('.dv-chat .dv-notice');
      return n && !n.hidden;
    }, 20000).catch(() => {});
    const notice = await page.$eval('.dv-chat .dv-notice', (n) => (n.hidden ? '' : n.textContent)).catch(() => '');
    t.ok(/no AI provider/.test(notice), 'the chat says the desktop has no AI provider', notice);
    t.ok(await page.$eval('#dv-chat-input', (e) => e.offsetWidth > 0 && e.offsetHeight > 0 && !e.disabled).catch(() => false),
      'the chat\'s message box is there');
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await shot(page, 'firefox-desktop');

    // ---- the other views ----
    for (const [hash, heading] of [['#/approvals', 'Approvals'], ['#/alerts', 'Alerts'], ['#/activity', 'Activity'], ['#/settings', 'Settings']]) {
      await page.evaluate((x) => { location.hash = x; }, hash);
      const ok = await wait(page, (want) => {
        const h1 = document.querySelector('#view h1');
        return h1 && h1.textContent === want;
      }, 15000, heading).then(() => true, () => false);
      await new Promise((res) => setTimeout(res, 800)); // its data loads
      const failed = await page.$$eval('#view .error:not([hidden])', (els) => els.map((e) => e.textContent).filter(Boolean));
      t.ok(ok && failed.length === 0, `the ${heading} view renders (${hash})`, { heading: await text(page, '#view h1'), failed });
    }
  } catch (e) {
    t.ok(false, 'the light-theme part ran to its end', e.stack || String(e));
    await shot(page, 'firefox-failure').catch(() => {});
  }
  await b.finish(t, ' (light)');
}

// ---- dark theme: a second Firefox whose system prefers dark ----
async function dark() {
  const b = await firefox(base, { width: 1400, height: 900, colorScheme: 'dark' });
  const page = b.page;
  try {
    await login(page, base, env.BUREAU_EMAIL, env.BUREAU_PASSWORD);
    await page.waitForSelector(`.fleet-table tbody tr[data-id="${id}"]`, { timeout: 20000 });
    t.ok(await page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches) &&
      await bodyColour(page) === 'rgb(21, 22, 26)', 'the dark theme follows the system', await bodyColour(page));
    await page.evaluate((x) => { location.hash = x; }, `#/desktops/${id}`);
    await wait(page, () => window.bureauDesktopView && window.bureauDesktopView.screen.connected &&
      window.bureauDesktopView.terminal.connected, 30000);
    const panel = await page.$eval('.dv-chat', (e) => getComputedStyle(e).backgroundColor);
    t.ok(panel === 'rgb(30, 31, 36)', 'the desktop view\'s panels are dark too', panel);
    await until(async () => (await canvasStats(page, '.dv-screen canvas')).lit > 0, 20000, 500);
    await shot(page, 'firefox-dark');
  } catch (e) {
    t.ok(false, 'the dark-theme part ran to its end', e.stack || String(e));
    await shot(page, 'firefox-dark-failure').catch(() => {});
  }
  await b.finish(t, ' (dark)');
}

try {
  await light();
  await dark();
} catch (e) {
  t.ok(false, 'Firefox could be driven', e.stack || String(e));
}
t.done();
