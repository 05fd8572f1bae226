// Firefox for the browser tests: Debian's firefox-esr driven by
// puppeteer-core over WebDriver BiDi (playwright-core drives only its own
// patched Firefox builds). The same shape as lib.mjs's browser(): one page
// on base, with the checks every test makes (no script or console errors,
// nothing requested outside bureaud's origin).
//
//   const b = await firefox(base, { colorScheme: 'dark' });   // b.page
//   await login(b.page, base, email, password);
//   await b.finish(t);                 // the error/origin checks, close
//
// The colour scheme is a Firefox preference fixed at launch: over BiDi,
// puppeteer's page.emulateMediaFeatures needs CDP, which Firefox lacks.
// HOME and the profile live in one temporary folder, removed by finish().
import puppeteer from 'puppeteer-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIREFOX = process.env.BUREAU_FIREFOX || '/usr/bin/firefox-esr';

// Firefox's layout.css.prefers-color-scheme.content-override values.
const SCHEMES = { dark: 0, light: 1 };

// A Firefox with one page on base. colorScheme: 'light' or 'dark'.
export async function firefox(base, { width = 1400, height = 900, colorScheme = 'light' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bureau-firefox-'));
  const home = join(dir, 'home');
  const profile = join(dir, 'profile');
  mkdirSync(home);
  mkdirSync(profile);
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      userDataDir: profile,
      defaultViewport: { width, height },
      extraPrefsFirefox: {
        'layout.css.prefers-color-scheme.content-override': SCHEMES[colorScheme],
      },
      env: { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, '.cache'), XDG_CONFIG_HOME: join(home, '.config'),
        MOZ_CRASHREPORTER_DISABLE: '1' },
      protocolTimeout: 60000,
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const page = (await browser.pages())[0] || await browser.newPage();
  await page.setViewport({ width, height }); // defaultViewport skips the first page over BiDi
  const errors = [];
  const foreign = [];
  const requests = [];
  const origin = new URL(base);
  page.on('pageerror', (e) => errors.push('page error: ' + String(e && e.message ? e.message : e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
  page.on('request', (r) => {
    requests.push(r.url());
    const u = new URL(r.url());
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return;
    if (u.host !== origin.host) foreign.push(r.url());
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await browser.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    browser, page, errors, foreign, requests, close,
    // Console errors an expected failure causes are taken out with ignore(re).
    ignore(re) {
      for (let i = errors.length - 1; i >= 0; i--) if (re.test(errors[i])) errors.splice(i, 1);
    },
    async finish(t, label = '') {
      t.ok(errors.length === 0, 'no script or console errors' + label, errors.join('\n'));
      t.ok(requests.length > 0 && foreign.length === 0,
        `no request left bureaud's origin (${requests.length} requests seen)` + label, foreign.join('\n'));
      await close();
    },
  };
}

// Logs in through the login form, as a person would.
export async function login(page, base, email, password) {
  await page.goto(base + '/');
  await page.waitForSelector('#login-page:not([hidden]) #email', { timeout: 20000 });
  await page.type('#email', email);
  await page.type('#password', password);
  await page.click('#login button[type="submit"]');
  await page.waitForSelector('#app:not([hidden])', { timeout: 20000 });
}
