// Shared by the browser tests: TAP output, a headless Debian chromium
// through playwright-core, and the checks every test makes (no script or
// console errors, nothing requested outside bureaud's origin).
//
//   const t = tap();
//   const b = await browser(base);           // b.page, b.context
//   await login(b.page, base, email, password);
//   t.ok(cond, 'name', diag);
//   await shot(b.page, 'fleet');              // tests/browser/screenshots/fleet.png
//   await b.finish(t);                        // the error/origin checks, close
//   t.done();                                 // plan line, exit status
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const shots = join(here, 'screenshots');

export function tap() {
  let n = 0;
  let failed = 0;
  return {
    ok(cond, name, diag) {
      n++;
      console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
      if (!cond) {
        failed++;
        if (diag !== undefined)
          for (const l of String(typeof diag === 'string' ? diag : JSON.stringify(diag)).split('\n').slice(0, 20))
            console.log('#   ' + l);
      }
      return !!cond;
    },
    done() {
      console.log(`1..${n}`);
      process.exit(failed ? 1 : 0);
    },
  };
}

// A browser with one page on base. colorScheme: 'light' or 'dark'.
export async function browser(base, { width = 1400, height = 900, colorScheme = 'light' } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'bureau-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width, height },
    colorScheme,
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  const foreign = [];
  const origin = new URL(base);
  const watch = (p) => {
    p.on('pageerror', (e) => errors.push('page error: ' + String(e)));
    p.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
    p.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return;
      if (u.host !== origin.host) foreign.push(r.url());
    });
  };
  watch(page);
  context.on('page', watch);
  return {
    context, page, errors, foreign,
    // Console errors an expected failure causes (a 4xx the test provoked)
    // are taken out with ignore(re).
    ignore(re) {
      for (let i = errors.length - 1; i >= 0; i--) if (re.test(errors[i])) errors.splice(i, 1);
    },
    async finish(t) {
      t.ok(errors.length === 0, 'no script or console errors', errors.join('\n'));
      t.ok(foreign.length === 0, 'no request left bureaud\'s origin', foreign.join('\n'));
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function login(page, base, email, password) {
  await page.goto(base + '/');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login button[type="submit"]');
  await page.waitForSelector('#app:not([hidden])', { timeout: 20000 });
}

export async function shot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, name + '.png') });
}

// How much of the canvas at selector is drawn: the share of non-black
// pixels (every 7th sampled) and their colours; with its size on the page,
// and that of the element at boxSelector when given.
export async function canvasStats(page, selector, boxSelector) {
  return page.evaluate(([sel, boxSel]) => {
    const c = document.querySelector(sel);
    if (!c || !c.width) return { width: 0, height: 0, lit: 0, colours: 0 };
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 7) {
      if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
      colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    const r = c.getBoundingClientRect();
    const box = boxSel ? document.querySelector(boxSel).getBoundingClientRect() : r;
    return {
      width: c.width, height: c.height, lit: lit / (d.length / 28), colours: colours.size,
      shownW: r.width, shownH: r.height, boxW: box.width, boxH: box.height,
    };
  }, [selector, boxSelector || null]);
}

// Polls fn (in the test) until it returns a truthy value or ms pass.
export async function until(fn, ms = 30000, every = 250) {
  const end = Date.now() + ms;
  let v;
  while (Date.now() < end) {
    v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, every));
  }
  return v;
}
