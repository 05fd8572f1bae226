// Mission Control's desktop view in a real browser (Debian's chromium
// through playwright-core), against the bureaud and the running XFCE
// desktop that tests/e2e/test_browser.py provides. The desktop's agent
// talks to the scripted model server, which that test has told to answer:
//   1. a streamed greeting ("Hello from the scripted model…"),
//   2. a shell call "sudo true; echo approved-$((2+3))" (sudo needs a
//      person's approval), then a final reply made from its output.
// Environment: BUREAU_URL, BUREAU_DESKTOP, BUREAU_EMAIL, BUREAU_PASSWORD.
// Opens the view from the fleet, finds XFCE's pixels in the screen panel,
// takes control, runs a command in the terminal panel, chats (streamed
// reply; inline approval with its screenshot, approved here, then the
// tool's output and the final reply), uploads by drag and drop and with
// the picker, downloads and compares the bytes, makes and deletes files,
// draws the metrics and lists the desktop's events and audit entries.
// Prints TAP; screenshots: desktop.png (the approval pending), desktop-files.png,
// desktop-dark.png (the conversation at its end).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tap, browser, login, shot, until, canvasStats as canvasStatsOf } from './lib.mjs';

const base = process.env.BUREAU_URL;
const id = process.env.BUREAU_DESKTOP;
const email = process.env.BUREAU_EMAIL;
const t = tap();
const b = await browser(base, { width: 1600, height: 1000 });
const page = b.page;

const view = (expr, arg) => page.evaluate(expr, arg);
page.on('response', (r) => { if (r.status() >= 400) console.log(`# ${r.status()} ${r.request().method()} ${r.url()}`); });

const canvasStats = () => canvasStatsOf(page, '.dv-screen canvas', '.dv-screen-wrap');

async function terminalText() {
  return view(() => {
    const buf = window.bureauDesktopView.terminal.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

const text = async (sel) => ((await page.locator(sel).first().textContent({ timeout: 2000 }).catch(() => '')) || '').trim();

async function send(message) {
  await page.fill('#dv-chat-input', message);
  await page.press('#dv-chat-input', 'Enter');
}

// For screenshots: the toasts gone, the conversation at its end.
async function settle() {
  await until(() => view(() => !document.querySelector('#toasts .toast')), 12000);
  await view(() => {
    const log = document.querySelector('.dv-chat-log');
    log.scrollTop = log.scrollHeight;
  });
}

// Drops a file with these bytes on the files panel, as a drag from the
// desktop's file manager would.
async function drop(name, buf) {
  await view(([n, b64]) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([raw], n, { type: 'application/octet-stream' }));
    const target = document.querySelector('.dv-files');
    for (const type of ['dragenter', 'dragover', 'drop'])
      target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [name, buf.toString('base64')]);
}

async function tab(name) {
  await page.click(`#dv-tab-${name}`);
  await page.waitForSelector(`#dv-panel-${name}:not([hidden])`);
}

try {
  await login(page, base, email, process.env.BUREAU_PASSWORD);

  // ---- open the view ----
  await page.goto(base + '/#/');
  const link = page.locator(`a[href$="#/desktops/${id}"]:not([aria-hidden="true"])`).first();
  let fromFleet = true;
  try {
    await link.waitFor({ timeout: 15000 });
    await link.click();
  } catch {
    fromFleet = false; // the fleet lists no link to it: go by address
    await page.goto(`${base}/#/desktops/${id}`);
  }
  await page.waitForSelector('.dv-head h1', { timeout: 20000 });
  const head = { name: await text('.dv-head h1'), state: await text('.dv-head .badge'), meta: await text('.dv-meta') };
  const api = await view(async (did) => (await fetch('/api/desktops/' + did)).json(), id);
  t.ok(head.name === api.name && head.state === 'running' && /1280×800/.test(head.meta) && /up \d/.test(head.meta),
    `the desktop view opens ${fromFleet ? 'from the fleet' : 'at #/desktops/ID'}: name, live state, screen size, uptime`, head);
  t.ok(new URL(page.url()).hash === `#/desktops/${id}/terminal`, 'the address names the open tab', page.url());

  // ---- screen ----
  await page.waitForFunction(() => window.bureauDesktopView && window.bureauDesktopView.screen.connected, null, { timeout: 30000 });
  let stats = await until(async () => {
    const s = await canvasStats();
    return s.lit > 0.3 && s.colours > 20 ? s : null;
  }, 40000, 500) || await canvasStats();
  t.ok(stats.lit > 0.3 && stats.colours > 20,
    `XFCE's pixels are in the screen panel (${Math.round(stats.lit * 100)}% lit, ${stats.colours} colours)`, stats);
  t.ok(stats.width === 1280 && stats.height === 800 && stats.shownW < 1280 && stats.shownW <= stats.boxW + 1 && stats.shownH <= stats.boxH + 1,
    `the screen is scaled to its panel (${Math.round(stats.shownW)}x${Math.round(stats.shownH)} in ${Math.round(stats.boxW)}x${Math.round(stats.boxH)})`, stats);
  t.ok(await view(() => window.bureauDesktopView.screen.rfb.viewOnly) && /view only/.test(await text('.dv-screen .dv-status')),
    'view only by default, and says so');
  await page.getByRole('button', { name: 'Take control' }).click();
  await page.waitForFunction(() => window.bureauDesktopView.screen.connected && window.bureauDesktopView.screen.mode === 'control',
    null, { timeout: 30000 });
  t.ok(/in control/.test(await text('.dv-screen .dv-status')) && !(await view(() => window.bureauDesktopView.screen.rfb.viewOnly))
    && await page.getByRole('button', { name: 'Release control' }).isVisible(),
    '"Take control" reconnects in control mode', await text('.dv-screen .dv-status'));

  // ---- terminal ----
  await page.waitForFunction(() => window.bureauDesktopView.terminal.connected, null, { timeout: 30000 });
  await page.click('.dv-term');
  await page.keyboard.type('echo dv-$((6*7))\n');
  const out = await until(async () => {
    const s = await terminalText();
    return /^dv-42\s*$/m.test(s) ? s : null;
  }, 30000) || await terminalText();
  t.ok(/^dv-42\s*$/m.test(out), 'a command typed into the terminal panel prints its output', out.slice(-400));

  // ---- chat: a streamed reply ----
  t.ok(await page.locator('.dv-chat .dv-notice').isHidden(), 'no "no provider" notice: the desktop has one');
  await view(() => {
    window.sawStreaming = '';
    new MutationObserver((muts) => {
      for (const m of muts) {
        const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        const s = el && el.closest('.dv-msg.streaming');
        if (s && s.textContent.length > window.sawStreaming.length) window.sawStreaming = s.textContent;
      }
    }).observe(document.querySelector('.dv-chat-log'), { childList: true, subtree: true, characterData: true });
  });
  const hello = page.locator('.dv-msg.assistant:not(.streaming)', { hasText: 'Hello from the scripted model' });
  const hellos = await hello.count(); // 0 on a fresh desktop
  const said = page.locator('.dv-msg.user', { hasText: 'Say hello' });
  const saids = await said.count();
  await send('Say hello');
  await until(async () => await said.count() > saids, 30000);
  const saidNow = await said.count(), inputNow = await page.inputValue('#dv-chat-input');
  t.ok(saidNow === saids + 1 && inputNow === '',
    'Enter sends the message; it shows in the conversation once', { before: saids, after: saidNow, input: inputNow });
  await until(async () => await hello.count() > hellos, 90000);
  const deltas = await view(() => window.bureauDesktopView.chat.deltas);
  const seen = await view(() => window.sawStreaming);
  t.ok(deltas > 1 && /Hello/.test(seen), `the reply streamed in (${deltas} pieces shown growing), then the final message`, seen);
  t.ok(await page.locator('.dv-msg.streaming').count() === 0 && await hello.count() === hellos + 1,
    'the streamed text is replaced by the final message (shown once)');

  // ---- chat: a tool call that needs approval ----
  await page.fill('#dv-chat-input', 'Run the privileged check.');
  await page.press('#dv-chat-input', 'Shift+Enter');
  await page.keyboard.type('Then tell me what it printed.');
  t.ok(await page.inputValue('#dv-chat-input') === 'Run the privileged check.\nThen tell me what it printed.',
    'Shift+Enter makes a new line instead of sending', await page.inputValue('#dv-chat-input'));
  const finals = await page.locator('.dv-msg.assistant', { hasText: 'The command printed approved-5.' }).count();
  await page.press('#dv-chat-input', 'Enter');
  await page.waitForSelector('.dv-approval[data-status="pending"]', { timeout: 90000 });
  const aid = await page.getAttribute('.dv-approval[data-status="pending"]', 'data-id');
  const card = page.locator(`.dv-approval[data-id="${aid}"]`);
  const tool = page.locator('.dv-tool', { has: card });
  const summary = (await tool.locator('summary').textContent()) || '';
  t.ok(/shell: sudo true; echo approved-\$\(\(2\+3\)\)/.test(summary),
    'the tool call shows folded as one line, with the approval inline under it', summary);
  t.ok((await card.locator('.dv-approval-action').textContent()).includes('sudo true') &&
    /sudo/.test(await card.locator('.dv-approval-reason').textContent()) &&
    /expires in \d/.test(await card.locator('.dv-countdown').textContent()),
    'the approval shows the action, the reason and the expiry countdown', await card.textContent());
  const shotOk = await until(() => card.locator('img.shot').evaluate((i) => i.complete && i.naturalWidth >= 640).catch(() => false), 30000);
  t.ok(shotOk, 'the approval shows the screenshot taken when it was asked');
  const waiting = await until(async () => /waiting for approval/.test(await text('.dv-chat .dv-panel-head .badge')), 15000);
  t.ok(waiting && await page.getByRole('button', { name: 'Stop the agent' }).isVisible(),
    'the agent shows "waiting for approval", with a Stop button', await text('.dv-chat .dv-panel-head'));
  await until(() => view(() => !document.querySelector('#toasts .toast')), 12000);
  await card.evaluate((el) => el.scrollIntoView({ block: 'end' }));
  await shot(page, 'desktop'); // the three panels, the approval waiting for a person
  await card.getByLabel('Note').fill('checked by the browser test');
  await card.getByRole('button', { name: 'Approve' }).click();
  await page.waitForSelector(`.dv-approval[data-id="${aid}"][data-status="approved"]`, { timeout: 20000 });
  const outcome = await card.locator('.dv-approval-outcome').textContent();
  t.ok(/Approved by .*admin@localhost/.test(outcome) && /checked by the browser test/.test(outcome) &&
    await card.locator('.dv-approval-form').isHidden(), 'after the decision: who decided, the outcome and the note', outcome);
  const final = page.locator('.dv-msg.assistant', { hasText: 'The command printed approved-5.' });
  t.ok(await until(async () => await final.count() > finals, 90000), 'the final reply, made from the tool\'s output, arrives');
  const badge = await tool.locator('summary .badge').textContent();
  const folded = await tool.locator('.dv-tool-out').isHidden();
  await tool.locator('summary').click();
  const output = await tool.locator('.dv-tool-out pre').textContent();
  t.ok(badge === 'done' && folded && /approved-5/.test(output) && await tool.locator('.dv-tool-out pre').isVisible(),
    'the tool result is folded into its call; unfolded it shows "approved-5"', { badge, folded, output });
  await page.waitForFunction(() => document.querySelector('.dv-chat .dv-panel-head .badge').dataset.status === 'idle', null, { timeout: 30000 });
  await tool.locator('summary').click(); // folded again

  // ---- files ----
  await tab('files');
  await page.waitForFunction(() => window.bureauDesktopView.files.loaded, null, { timeout: 30000 });
  t.ok(await text('.dv-crumbs') === '/home/agent', 'the files tab opens /home/agent', await text('.dv-crumbs'));
  const bytes = randomBytes(300 * 1024 + 17);
  await drop('dv-drop.bin', bytes);
  t.ok(await page.locator('.dv-uploads li[data-name="dv-drop.bin"] progress').count() === 1, 'a dropped file uploads with a progress bar');
  const dropped = page.locator('tr[data-name="dv-drop.bin"]');
  await dropped.waitFor({ timeout: 30000 });
  t.ok(/300 KB/.test(await dropped.textContent()), 'dropped on the panel: uploaded and listed with its size', await dropped.textContent());
  await page.setInputFiles('.dv-picker', { name: 'dv-picked.txt', mimeType: 'text/plain', buffer: Buffer.from('picked by the browser test\n') });
  await page.locator('tr[data-name="dv-picked.txt"]').waitFor({ timeout: 30000 });
  t.ok(true, 'chosen with the picker: uploaded and listed');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 30000 }),
    dropped.getByRole('link', { name: 'Download dv-drop.bin' }).click(),
  ]);
  const got = readFileSync(await download.path());
  t.ok(download.suggestedFilename() === 'dv-drop.bin' && got.equals(bytes),
    `the download has the uploaded bytes (${got.length} of ${bytes.length})`);
  await drop('dv-drop.bin', Buffer.from('x'.repeat(1000)));
  await page.waitForSelector('dialog >> text=will be replaced', { timeout: 10000 });
  await page.click('dialog button:has-text("Replace")');
  t.ok(await until(async () => /1000 B/.test(await dropped.textContent()), 20000),
    'dropping a file that exists asks first, then replaces it', await dropped.textContent());

  await page.getByRole('button', { name: 'New folder' }).click();
  await page.fill('dialog input', 'dv-folder');
  await page.click('dialog button.primary');
  const folder = page.locator('tr[data-name="dv-folder"]');
  await folder.waitFor({ timeout: 20000 });
  await folder.getByRole('button', { name: 'dv-folder/' }).click();
  await page.waitForFunction(() => window.bureauDesktopView.files.path === '/home/agent/dv-folder');
  await page.waitForSelector('.dv-files-table >> text=This folder is empty');
  t.ok(/\/home\/agent\s*\/\s*dv-folder/.test(await text('.dv-crumbs')), 'a new folder is made, opened, and shown in the breadcrumbs', await text('.dv-crumbs'));
  await page.click('.dv-crumbs button');
  await page.waitForSelector('tr[data-name="dv-folder"]');
  await page.getByRole('button', { name: 'New folder' }).click();
  await page.fill('dialog input', 'dv-folder');
  await page.click('dialog button.primary');
  const dupErr = page.locator('dialog p.error');
  await dupErr.waitFor({ state: 'visible', timeout: 15000 });
  t.ok((await dupErr.textContent()).length > 3 && await page.locator('dialog').isVisible(),
    'a folder that exists: the server\'s refusal shows in the dialog', await dupErr.textContent());
  b.ignore(/status of 409/);
  await page.click('dialog button:has-text("Cancel")');

  await page.getByRole('button', { name: 'Delete dv-picked.txt' }).click();
  await page.click('dialog button.danger');
  await page.locator('tr[data-name="dv-picked.txt"]').waitFor({ state: 'detached', timeout: 20000 });
  t.ok(true, 'delete, confirmed in a dialog, removes the file from the listing');
  await settle();
  await view(() => { document.querySelector('.dv-files-scroll').scrollTop = 0; });
  await shot(page, 'desktop-files');
  for (const name of ['dv-folder', 'dv-drop.bin']) { // a folder goes with what it holds
    await page.getByRole('button', { name: 'Delete ' + name }).click();
    await page.click('dialog button.danger');
    await page.locator(`tr[data-name="${name}"]`).waitFor({ state: 'detached', timeout: 20000 });
  }
  t.ok(true, 'a folder and a file deleted');

  // ---- metrics ----
  await tab('metrics');
  const drawn = await until(() => view(() => {
    const p = document.querySelector('.dv-chart[data-chart="cpu"] path.series');
    return p && (p.getAttribute('d').match(/L/g) || []).length >= 2;
  }), 30000);
  const cpuHead = await text('.dv-chart[data-chart="cpu"] figcaption');
  const memHead = await text('.dv-chart[data-chart="memory"] figcaption');
  const axis = await view(() => [...document.querySelectorAll('.dv-chart[data-chart="cpu"] text.axis')].map((x) => x.textContent));
  t.ok(drawn && /CPU\s*[\d.]+ %/.test(cpuHead) && /of/.test(memHead) && axis.includes('100 %'),
    'the metrics tab draws charts with axes and current values', { cpuHead, memHead, axis });
  t.ok(await page.locator('.dv-chart path.series').count() >= 5, 'CPU, memory, disk, network and load are charted');

  // ---- events & audit ----
  await tab('activity');
  const upRow = page.locator('.dv-audit tr[data-action="desktop.file.upload"]').first();
  await upRow.waitFor({ timeout: 20000 });
  t.ok((await upRow.textContent()).includes('admin@localhost'), 'the audit log lists this desktop\'s entries with who did them', await upRow.textContent());
  t.ok(await page.locator('.dv-audit tr[data-action="desktop.console.connect"]').count() > 0, 'console connections are in it');
  const evTypes = await view(() => [...document.querySelectorAll('.dv-events li')].map((li) => li.dataset.type));
  t.ok(evTypes.includes('approval.decided') && evTypes.includes('chat.message') && evTypes.includes('agent.status'),
    'the live events list has this desktop\'s events since the page opened', evTypes.slice(0, 30));
  await page.fill('.dv-audit-filter input[name="action"]', 'desktop.file.*');
  await page.click('.dv-audit-filter button[type="submit"]');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('.dv-audit tbody tr')];
    return rows.length > 0 && rows.every((r) => (r.dataset.action || '').startsWith('desktop.file.'));
  }, null, { timeout: 15000 });
  t.ok(true, 'the action filter (a prefix) narrows the audit log');
  await page.selectOption('.dv-audit-filter select[name="userId"]', { label: email });
  await page.fill('.dv-audit-filter input[name="action"]', 'chat.*');
  await page.click('.dv-audit-filter button[type="submit"]');
  const byWho = await until(() => view(() => {
    const rows = [...document.querySelectorAll('.dv-audit tbody tr')].map((r) => r.dataset.action);
    return rows.length >= 2 && rows.every((a) => a === 'chat.send') ? rows : null;
  }), 15000);
  t.ok(byWho, 'with "Who", only that person\'s chat entries: the agent\'s replies are left out', byWho);

  // ---- dark theme, release ----
  await tab('terminal');
  await page.emulateMedia({ colorScheme: 'dark' });
  await settle();
  await shot(page, 'desktop-dark');
  const bg = await view(() => getComputedStyle(document.body).backgroundColor);
  t.ok(bg === 'rgb(21, 22, 26)', 'the dark theme follows the system', bg);
  await page.emulateMedia({ colorScheme: 'light' });
  await page.getByRole('button', { name: 'Release control' }).click();
  await page.waitForFunction(() => window.bureauDesktopView.screen.connected && window.bureauDesktopView.screen.mode === 'view',
    null, { timeout: 30000 });
  t.ok(/view only/.test(await text('.dv-screen .dv-status')) && await view(() => window.bureauDesktopView.screen.rfb.viewOnly),
    '"Release control" goes back to view only');

  // ---- a desktop that is not there ----
  await page.goto(`${base}/#/desktops/dsk_00000000000000000000`);
  await page.waitForSelector('h1:has-text("Desktop not found")', { timeout: 15000 });
  t.ok(true, 'an unknown desktop: "Desktop not found"');
  b.ignore(/status of 404/);
} catch (e) {
  t.ok(false, 'the browser test ran to the end', e.stack || String(e));
  await shot(page, 'desktop-failure').catch(() => {});
}
await b.finish(t);
t.done();
