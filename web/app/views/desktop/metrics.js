// The metrics panel: charts of GET /api/desktops/{id}/metrics over the
// window bureaud keeps (the newest 720 samples, one every 5 s): CPU, memory,
// disk, network rate and load. Polled every few seconds, only while the
// panel is shown and the page visible; each poll asks only for the samples
// after the newest one it has.
import { get, qs } from '../../api.js';
import { h, fill, fmtBytes, errorText, empty } from '../../ui.js';

const POLL_MS = 5000;
const HEIGHT = 150;
const PAD = { left: 52, right: 10, top: 10, bottom: 22 };
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

const pct = (v) => (v === null || v === undefined ? '—' : (v > 0 && v < 10 ? v.toFixed(1) : Math.round(v)) + ' %');
const rate = (v) => (v === null || v === undefined ? '—' : fmtBytes(Math.round(v)) + '/s');
const num = (v) => (v === null || v === undefined ? '—' : v.toFixed(2));

// A "nice" axis top: 1, 2 or 5 times a power of ten, at least v.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// The same for bytes: 1, 2, 4 … 512 times a power of 1024.
function niceBytes(v) {
  if (!(v > 0)) return 1024;
  const base = 1024 ** Math.floor(Math.log(v) / Math.log(1024));
  let m = 1;
  while (m * base < v) m *= 2;
  return m * base;
}

function hhmm(t) {
  return new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

// One chart as inline SVG: series [{name, cls, values}] over times (ms),
// y from 0 to max, labels through fmt. A gap longer than three sampling
// intervals breaks the line.
function chartSvg({ width, times, series, max, fmt, label, gapMs }) {
  const w = Math.max(width, 200);
  const iw = w - PAD.left - PAD.right;
  const ih = HEIGHT - PAD.top - PAD.bottom;
  const t0 = times[0];
  const t1 = times[times.length - 1];
  const span = Math.max(t1 - t0, 1);
  const x = (t) => PAD.left + ((t - t0) / span) * iw;
  const y = (v) => PAD.top + ih - (Math.min(Math.max(v, 0), max) / max) * ih;
  const root = svg('svg', {
    width: w, height: HEIGHT, viewBox: `0 0 ${w} ${HEIGHT}`, class: 'dv-chart-svg', role: 'img', 'aria-label': label,
  });
  for (const f of [0, 0.5, 1]) {
    const yy = y(max * f);
    root.append(svg('line', { x1: PAD.left, x2: w - PAD.right, y1: yy, y2: yy, class: 'grid' }));
    const t = svg('text', { x: PAD.left - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis' });
    t.textContent = fmt(max * f);
    root.append(t);
  }
  const ticks = times.length > 1 ? [t0, t0 + span / 2, t1] : [t0];
  ticks.forEach((t, i) => {
    const anchor = ticks.length === 1 ? 'middle' : ['start', 'middle', 'end'][i];
    const tx = svg('text', { x: ticks.length === 1 ? PAD.left + iw / 2 : x(t), y: HEIGHT - 6, 'text-anchor': anchor, class: 'axis' });
    tx.textContent = hhmm(t);
    root.append(tx);
  });
  const base = y(0).toFixed(1);
  for (const s of series) {
    // continuous runs of points, broken at missing values and long gaps
    const runs = [];
    let run = null;
    s.values.forEach((v, i) => {
      if (typeof v !== 'number' || !isFinite(v)) { run = null; return; }
      if (run && times[i] - run.lastT > gapMs) run = null;
      if (!run) { run = { pts: [], lastT: 0 }; runs.push(run); }
      run.pts.push([x(times[i]).toFixed(1), y(v).toFixed(1)]);
      run.lastT = times[i];
    });
    let d = '';
    let area = '';
    for (const r of runs) {
      d += r.pts.map(([px, py], i) => (i ? 'L' : 'M') + px + ',' + py).join('');
      if (r.pts.length === 1) d += 'l0.1,0'; // a lone point still shows
      area += `M${r.pts[0][0]},${base}` + r.pts.map(([px, py]) => `L${px},${py}`).join('') + `L${r.pts[r.pts.length - 1][0]},${base}Z`;
    }
    if (series.length === 1 && area) root.append(svg('path', { d: area, class: 'area ' + s.cls }));
    root.append(svg('path', { d: d || 'M0,0', class: 'series ' + s.cls, 'data-series': s.name }));
  }
  return root;
}

const CHARTS = [
  {
    key: 'cpu', title: 'CPU', fmt: pct,
    series: () => [{ name: 'guest', cls: 's1', get: (s) => s.cpuPercent }],
    max: () => 100,
    current: (s) => pct(s.cpuPercent),
    sub: (s) => (s.host ? `QEMU on the host: ${pct(s.host.cpuPercent)} of a CPU` : ''),
  },
  {
    key: 'memory', title: 'Memory', fmt: (v) => fmtBytes(v),
    series: () => [{ name: 'used', cls: 's2', get: (s) => s.memory && s.memory.usedBytes }],
    max: (last) => (last.memory && last.memory.totalBytes) || 1,
    current: (s) => (s.memory ? `${fmtBytes(s.memory.usedBytes)} of ${fmtBytes(s.memory.totalBytes)}` : '—'),
    sub: (s) => (s.memory ? pct(s.memory.percent) + ' used' : ''),
  },
  {
    key: 'disk', title: 'Disk', fmt: (v) => fmtBytes(v),
    series: () => [{ name: 'used', cls: 's3', get: (s) => s.disk && s.disk.usedBytes }],
    max: (last) => (last.disk && last.disk.totalBytes) || 1,
    current: (s) => (s.disk ? `${fmtBytes(s.disk.usedBytes)} of ${fmtBytes(s.disk.totalBytes)}` : '—'),
    sub: (s) => (s.disk ? `${pct(s.disk.percent)} of ${s.disk.path} used` : ''),
  },
  {
    key: 'network', title: 'Network', fmt: rate, rates: true,
    series: () => [{ name: 'in', cls: 's1', get: (s) => s._rx }, { name: 'out', cls: 's4', get: (s) => s._tx }],
    max: (last, vals) => niceBytes(Math.max(1024, ...vals)),
    current: (s) => `↓ ${rate(s._rx)}  ↑ ${rate(s._tx)}`,
    sub: (s) => (s.network ? `since boot: ↓ ${fmtBytes(s.network.rxBytes)} ↑ ${fmtBytes(s.network.txBytes)}` : ''),
  },
  {
    key: 'load', title: 'Load', fmt: num,
    series: () => [
      { name: '1 min', cls: 's1', get: (s) => s.load && s.load[0] },
      { name: '5 min', cls: 's2', get: (s) => s.load && s.load[1] },
      { name: '15 min', cls: 's3', get: (s) => s.load && s.load[2] },
    ],
    max: (last, vals, d) => niceMax(Math.max(d.vcpus || 1, ...vals)),
    current: (s) => (s.load ? s.load.map(num).join('  ') : '—'),
    sub: (s) => (typeof s.processes === 'number' ? `${s.processes} processes` : ''),
  },
];

export function createMetrics(env) {
  // Read by tests: samples.
  const state = { samples: [], intervalMs: POLL_MS, capacity: 720 };
  let visible = false;
  let timer = null;
  let inflight = false;
  let width = 0;

  const status = h('span', { class: 'dv-status' });
  const grid = h('div', { class: 'dv-charts' });
  const cards = new Map();
  for (const c of CHARTS) {
    const value = h('span', { class: 'dv-chart-value' });
    const sub = h('span', { class: 'muted dv-chart-sub' });
    const legend = h('span', { class: 'dv-legend' });
    const plot = h('div', { class: 'dv-chart-plot' });
    const card = h('figure', { class: 'dv-chart', dataset: { chart: c.key } },
      h('figcaption', null, h('span', { class: 'dv-chart-title' }, c.title), value, h('span', { class: 'spacer' }), legend),
      plot, sub);
    cards.set(c.key, { card, value, sub, legend, plot });
    grid.append(card);
  }
  const emptyNote = h('div', { hidden: true }, empty('No samples yet: the agent inside the desktop reports every 5 seconds while it runs.'));
  const el = h('div', { class: 'dv-metrics' },
    h('div', { class: 'dv-subhead' }, status, h('span', { class: 'spacer' }),
      h('span', { class: 'muted' }, 'Refreshed every 5 s while shown')),
    emptyNote, grid);

  const ro = new ResizeObserver(() => {
    const w = grid.clientWidth;
    if (w && Math.abs(w - width) > 4) {
      width = w;
      draw();
    }
  });
  ro.observe(grid);

  // Network rates from the counters since boot.
  function rates(list) {
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      const p = list[i - 1];
      s._t = new Date(s.at).getTime();
      s._rx = s._tx = null;
      if (!p || !s.network || !p.network) continue;
      const dt = (s._t - p._t) / 1000;
      const rx = s.network.rxBytes - p.network.rxBytes;
      const tx = s.network.txBytes - p.network.txBytes;
      if (dt > 0 && rx >= 0 && tx >= 0) { // a reboot resets the counters
        s._rx = rx / dt;
        s._tx = tx / dt;
      }
    }
  }

  function draw() {
    const list = state.samples;
    emptyNote.hidden = list.length > 0;
    grid.hidden = list.length === 0;
    if (!list.length) return;
    const last = list[list.length - 1];
    const times = list.map((s) => s._t);
    const d = env.desktop();
    for (const c of CHARTS) {
      const parts = cards.get(c.key);
      const series = c.series().map((s) => ({ ...s, values: list.map(s.get) }));
      const vals = series.flatMap((s) => s.values.filter((v) => typeof v === 'number'));
      const max = c.max(last, vals, d);
      parts.value.textContent = c.current(last);
      parts.sub.textContent = c.sub(last);
      fill(parts.legend, series.length > 1 ? series.map((s) => h('span', { class: 'dv-key ' + s.cls }, s.name)) : null);
      const cw = Math.floor(parts.plot.clientWidth || grid.clientWidth / 2 || 300);
      fill(parts.plot, chartSvg({
        width: cw, times, series, max, fmt: c.fmt,
        label: `${c.title} over the last ${Math.round((times[times.length - 1] - times[0]) / 60000)} minutes, now ${c.current(last)}`,
        gapMs: 3 * (state.intervalMs || POLL_MS),
      }));
    }
  }

  async function poll() {
    timer = null;
    if (!visible || inflight) return;
    if (document.visibilityState !== 'visible') return; // resumed by visibilitychange
    inflight = true;
    const last = state.samples[state.samples.length - 1];
    try {
      const r = await get(`/api/desktops/${encodeURIComponent(env.id)}/metrics` + qs({ since: last ? last.at : null }));
      state.intervalMs = r.intervalMs || POLL_MS;
      state.capacity = r.capacity || state.capacity;
      const fresh = r.samples.filter((s) => !last || s.at > last.at);
      if (fresh.length || !last) {
        state.samples = state.samples.concat(fresh).slice(-state.capacity);
        rates(state.samples);
        draw();
      }
      const d = env.desktop();
      status.dataset.state = d.state === 'running' ? 'view' : 'off';
      status.textContent = d.state === 'running'
        ? `${state.samples.length} samples · every ${Math.round(state.intervalMs / 1000)} s`
        : `the desktop is ${d.state}: no new samples`;
    } catch (e) {
      status.dataset.state = 'off';
      status.textContent = 'metrics unavailable: ' + errorText(e);
    } finally {
      inflight = false;
      if (visible && !timer) timer = setTimeout(poll, POLL_MS);
    }
  }

  function onVisibility() {
    if (document.visibilityState === 'visible' && visible && !timer && !inflight) poll();
  }
  document.addEventListener('visibilitychange', onVisibility);

  function shown() {
    visible = true;
    width = grid.clientWidth;
    if (!timer && !inflight) poll();
    else draw();
  }

  function hidden() {
    visible = false;
    clearTimeout(timer);
    timer = null;
  }

  function destroy() {
    hidden();
    ro.disconnect();
    document.removeEventListener('visibilitychange', onVisibility);
  }

  return { el, state, shown, hidden, destroy };
}
