// The console pages in a real browser (Debian's chromium through
// playwright-core), against a bureaud and a running desktop-image desktop
// that tests/e2e/test_browser.py provides:
//   BUREAU_URL=http://127.0.0.1:PORT BUREAU_DESKTOP=dsk_… BUREAU_EMAIL=… BUREAU_PASSWORD=…
// Logs in through Mission Control's login page, finds the XFCE desktop's pixels in the
// noVNC canvas, takes control, types into the terminal page and reads the
// output, and finds the tmux session again after leaving the page. Prints
// TAP; screenshots go to tests/browser/screenshots/.
import { chromium } from 'playwright-core';
import { canvasStats } from './lib.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, 'screenshots');
const base = process.env.BUREAU_URL;
const id = process.env.BUREAU_DESKTOP;
let n = 0;
let failed = 0;

function ok(cond, name, diag) {
  n++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!cond) {
    failed++;
    if (diag !== undefined) for (const l of String(diag).split('\n').slice(0, 20)) console.log('#   ' + l);
  }
  return cond;
}

async function terminalText(page) {
  return page.evaluate(() => {
    const b = window.bureauTerminal.term.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

async function waitText(page, re, ms) {
  const end = Date.now() + ms;
  let text = '';
  while (Date.now() < end) {
    text = await terminalText(page);
    if (re.test(text)) return text;
    await page.waitForTimeout(250);
  }
  return text;
}

async function openTerminal(page) {
  await page.goto(`${base}/desktops/${id}/terminal`);
  await page.waitForFunction(() => window.bureauTerminal && window.bureauTerminal.connected,
    null, { timeout: 30000 });
  await page.click('#terminal');
}

const profile = mkdtempSync(join(tmpdir(), 'bureau-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1000, height: 700 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
try {
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  // anything not from bureaud would be a load from the internet
  const foreign = [];
  // (a blob: URL of the page's own origin is the page's own data)
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(base) && !u.startsWith('ws://' + base.slice(7)) && !u.startsWith('blob:' + base)) foreign.push(u);
  });

  await page.goto(base + '/');
  await page.fill('#email', process.env.BUREAU_EMAIL);
  await page.fill('#password', process.env.BUREAU_PASSWORD);
  await page.click('#login button[type="submit"]');
  await page.waitForSelector('#app:not([hidden])', { timeout: 15000 });
  ok(true, 'log in through Mission Control\'s login page');

  await page.goto(`${base}/desktops/${id}/screen`);
  await page.waitForFunction(() => window.bureauScreen && window.bureauScreen.connected, null,
    { timeout: 30000 });
  ok(true, 'the screen page connects (view only)');
  let stats = { lit: 0, colours: 0 };
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    stats = await canvasStats(page, '#screen canvas');
    if (stats.lit > 0.3 && stats.colours > 20) break;
    await page.waitForTimeout(500);
  }
  await page.screenshot({ path: join(shots, 'screen.png') });
  ok(stats.width === 1280 && stats.height === 800, `the canvas has the desktop's size (${stats.width}x${stats.height})`);
  ok(stats.lit > 0.3 && stats.colours > 20,
    `XFCE's pixels are in the canvas (${Math.round(stats.lit * 100)}% lit, ${stats.colours} colours)`, JSON.stringify(stats));
  const shown = await page.evaluate(() => {
    const c = document.querySelector('#screen canvas').getBoundingClientRect();
    return { w: c.width, h: c.height, ww: innerWidth, wh: innerHeight };
  });
  ok(shown.w <= shown.ww && shown.h <= shown.wh && shown.w < 1280 && shown.w > shown.ww * 0.5,
    `the screen is scaled to the window (${Math.round(shown.w)}x${Math.round(shown.h)} in ${shown.ww}x${shown.wh})`);
  ok(await page.evaluate(() => window.bureauScreen.rfb.viewOnly), 'view only by default');
  await page.click('#mode');
  await page.waitForFunction(() => window.bureauScreen.connected && window.bureauScreen.mode === 'control',
    null, { timeout: 30000 });
  const status = await page.textContent('#status');
  ok(/in control/.test(status), 'the toggle takes control', status);
  await page.screenshot({ path: join(shots, 'screen-control.png') });

  await openTerminal(page);
  ok(true, 'the terminal page connects');
  await page.keyboard.type('echo bureau-$((6*7))\n');
  let text = await waitText(page, /^bureau-42\s*$/m, 30000);
  await page.screenshot({ path: join(shots, 'terminal.png') });
  ok(/^bureau-42\s*$/m.test(text), 'a command typed into xterm.js prints its output', text.slice(-400));
  await page.keyboard.type('export MARK=kept-$((1+2)); tmux display -p "#S"\n');
  text = await waitText(page, /^main\s*$/m, 15000);
  ok(/^main\s*$/m.test(text), 'the shell runs inside tmux session "main"', text.slice(-400));

  await page.goto('about:blank');
  await openTerminal(page);
  await page.keyboard.type('echo again-$MARK\n');
  text = await waitText(page, /again-kept-3/, 30000);
  ok(/again-kept-3/.test(text), 'after leaving and coming back, the same session is there', text.slice(-400));
  await page.click('#end');
  await page.waitForFunction(() => !window.bureauTerminal.connected, null, { timeout: 30000 });
  ok(await page.evaluate(() => window.bureauTerminal.ended), 'End session ends it');
  await page.screenshot({ path: join(shots, 'terminal-ended.png') });

  ok(errors.length === 0, 'no script errors on the pages', errors.join('\n'));
  ok(foreign.length === 0, 'nothing is loaded from outside bureaud', foreign.join('\n'));
} catch (e) {
  ok(false, 'the browser test ran to the end', e.stack || String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
