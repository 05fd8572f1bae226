// The browser half of bench/web (which starts bureaud and the desktops and
// prints the figures): measures Mission Control in Debian's chromium and
// prints one JSON object.
//   BENCH_URL, BENCH_EMAIL, BENCH_PASSWORD, BENCH_ROWS (desktops listed),
//   BENCH_LOADS (fleet loads to time), BENCH_STOPPED (ids of stopped
//   desktops to start for the event latency), BENCH_IDLE_S (seconds of
//   watching the fleet to count its polling), BENCH_DESKTOP (1: create an
//   XFCE desktop in the form and time it to drawn pixels in its view)
import { browser, login, until } from '../tests/browser/lib.mjs';

const base = process.env.BENCH_URL;
const rows = Number(process.env.BENCH_ROWS);
const loads = Number(process.env.BENCH_LOADS || 5);
const stopped = (process.env.BENCH_STOPPED || '').split(',').filter(Boolean);
const idle = Number(process.env.BENCH_IDLE_S || 60);
const out = {};

const b = await browser(base, { width: 1600, height: 1000 });
const page = b.page;
await login(page, base, process.env.BENCH_EMAIL, process.env.BENCH_PASSWORD);

// 1. The fleet with many desktops: navigation to every row drawn.
const times = [];
for (let i = 0; i < loads; i++) {
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(base + '/#/');
  await page.waitForFunction((n) => document.querySelectorAll('a[href^="#/desktops/"]').length >= n, rows, { timeout: 60000 });
  times.push(Date.now() - t0);
}
const sorted = [...times].sort((a, b) => a - b);
out.fleetLoadMs = { p50: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1], runs: times.length };
out.fleetTransfer = await page.evaluate(() => {
  const r = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'));
  return { requests: r.length, bytes: r.reduce((s, e) => s + (e.transferSize || e.encodedBodySize || 0), 0) };
});
out.jsHeapBytes = await page.evaluate(() => (performance.memory ? performance.memory.usedJSHeapSize : null));

// 2. Event → screen: the server's time of each desktop.state event of the
// started desktops against the time the fleet row showed that state.
if (stopped.length) {
  await page.evaluate((ids) => {
    window.benchSeen = [];
    const obs = new MutationObserver(() => {
      for (const id of ids) {
        const a = document.querySelector(`a[href="#/desktops/${id}"]`);
        const row = a && a.closest('tr');
        const badge = row && row.querySelector('[data-state]');
        const st = badge && badge.dataset.state;
        const key = id + ':' + st;
        if (st && st !== 'stopped' && !window.benchSeen.some((x) => x.key === key))
          window.benchSeen.push({ key, id, state: st, at: performance.timeOrigin + performance.now() });
      }
    });
    obs.observe(document.getElementById('view'), { subtree: true, childList: true, attributes: true, characterData: true });
    window.benchEvents = [];
    const es = new EventSource('/api/events');
    es.addEventListener('desktop.state', (e) => {
      const d = JSON.parse(e.data);
      if (ids.includes(d.desktopId)) window.benchEvents.push({ key: d.desktopId + ':' + d.state, at: Date.parse(d.createdAt) });
    });
    window.benchES = es;
  }, stopped);
  await page.waitForTimeout(1000);
  await page.evaluate(async (ids) => {
    await fetch('/api/desktops/bulk', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ action: 'start', ids }) });
  }, stopped);
  await page.waitForTimeout(8000);
  const r = await page.evaluate(() => { window.benchES.close(); return { seen: window.benchSeen, events: window.benchEvents }; });
  const lags = [];
  for (const s of r.seen) {
    const e = r.events.find((x) => x.key === s.key);
    if (e) lags.push(s.at - e.at);
  }
  lags.sort((a, b) => a - b);
  out.eventToScreenMs = lags.length ? { p50: lags[Math.floor(lags.length / 2)], p95: lags[Math.min(lags.length - 1, Math.round(lags.length * 0.95))], n: lags.length } : null;
}

// 3. What an open fleet costs the server while nothing happens: requests
// and bytes over idle seconds (thumbnails and metrics of running rows).
// (the running ones only, searched by name, so their rows are on screen)
await page.goto('about:blank');
await page.goto(base + '/#/');
await page.waitForSelector('input[placeholder="Name or id"]');
await page.fill('input[placeholder="Name or id"]', 'live-');
await page.waitForTimeout(3000);
let reqs = 0;
let bytes = 0;
const counter = async (r) => {
  if (!r.url().startsWith(base + '/api/')) return;
  reqs++;
  try { bytes += (await r.request().sizes()).responseBodySize; } catch { /* a stream */ }
};
page.on('response', counter);
await page.waitForTimeout(idle * 1000);
page.off('response', counter);
out.idleFleet = { seconds: idle, requests: reqs, bytes };

// 4. Click → pixels: create an XFCE desktop in the form, then open it and
// wait for the screen panel's canvas to be drawn.
if (process.env.BENCH_DESKTOP === '1') {
  await page.goto(base + '/#/');
  await page.getByRole('button', { name: 'New desktop' }).click();
  await page.fill('dialog input[name="name"], dialog #fl-name, dialog input[type="text"]', 'bench-xfce');
  const t0 = Date.now();
  await page.getByRole('button', { name: 'Create desktop' }).click();
  const link = await until(async () => page.evaluate(() => {
    for (const a of document.querySelectorAll('a[href^="#/desktops/"]')) {
      if (a.textContent.trim() === 'bench-xfce') {
        const row = a.closest('tr');
        const st = row && row.querySelector('[data-state]');
        if (st && st.dataset.state === 'running') return a.getAttribute('href');
      }
    }
    return null;
  }), 400000, 100);
  out.clickToRunningMs = link ? Date.now() - t0 : null;
  if (link) {
    await page.goto(base + '/' + link);
    const drawn = await until(async () => page.evaluate(() => {
      const c = document.querySelector('.dv-screen canvas');
      if (!c || !c.width) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return colours.size > 20;
    }), 120000, 100);
    out.clickToPixelsMs = drawn ? Date.now() - t0 : null;
  }
}

await b.context.close();
console.log(JSON.stringify(out));
