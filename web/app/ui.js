// Small DOM helpers shared by the views: an element builder, formatting,
// toasts, dialogs, badges and sparklines. No framework: views build DOM
// with h() and update the nodes they keep.

// h('button', {class: 'primary', onclick: fn, disabled: true}, 'Start')
// props: class, text, html is not offered (no innerHTML), dataset, style
// (object), on* (listeners), any other key becomes an attribute (false/null
// leave it out). children: nodes, strings, numbers, arrays, null.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.textContent = '';
  append(el, children);
  return el;
}

// ---- formatting ----

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm ' + (s % 60) + 's';
  const hr = Math.floor(m / 60);
  if (hr < 48) return hr + 'h ' + (m % 60) + 'm';
  return Math.floor(hr / 24) + 'd ' + (hr % 24) + 'h';
}

export function fmtAgo(iso) {
  if (!iso) return '—';
  const ms = Date.now() - new Date(iso).getTime();
  return ms < 5000 ? 'just now' : fmtDuration(ms) + ' ago';
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + units[i];
}

export function fmtMoney(x, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'EUR', maximumFractionDigits: 2 }).format(x || 0);
  } catch {
    return (x || 0).toFixed(2) + ' ' + (currency || '');
  }
}

export function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// ---- feedback ----

// A message in the corner for a few seconds. kind: info, ok, error.
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : null }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// A modal dialog (the native <dialog>, so focus and Escape work). body: a
// node; actions: [{label, value, class}]. Resolves with the value of the
// button pressed, or null when dismissed. A form inside body submits with
// the first action whose submit is true.
export function dialog({ title, body, actions = [{ label: 'Close', value: null }] }) {
  return new Promise((resolve) => {
    const d = h('dialog', { class: 'dialog', 'aria-label': title });
    const buttons = actions.map((a) => h('button', {
      type: 'button', class: a.class || 'secondary',
      onclick: async () => {
        if (a.check && !(await a.check())) return;
        d.close(); resolve(a.value);
      },
    }, a.label));
    d.append(h('h2', null, title), h('div', { class: 'dialog-body' }, body), h('div', { class: 'actions' }, buttons));
    d.addEventListener('cancel', () => resolve(null));
    d.addEventListener('close', () => d.remove());
    document.body.append(d);
    d.showModal();
  });
}

export async function confirm(title, text, label = 'Confirm', danger = false) {
  const v = await dialog({
    title, body: h('p', null, text),
    actions: [{ label: 'Cancel', value: false }, { label, value: true, class: danger ? 'danger' : 'primary' }],
  });
  return v === true;
}

// ---- little pieces ----

export function stateBadge(state) {
  return h('span', { class: 'badge state-' + state, dataset: { state } }, state);
}

export function empty(text) {
  return h('div', { class: 'empty' }, text);
}

// A line chart of values (numbers or null) as inline SVG, scaled to max
// (or the largest value). For a fleet row or a metrics card.
export function sparkline(values, { max, width = 120, height = 28, label = '', cls = '' } = {}) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('class', 'spark ' + cls);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const vals = values.filter((v) => typeof v === 'number');
  const top = max || Math.max(1, ...vals);
  if (values.length > 1) {
    const step = width / (values.length - 1);
    let d = '';
    values.forEach((v, i) => {
      if (typeof v !== 'number') return;
      const y = height - 1 - (Math.min(v, top) / top) * (height - 2);
      d += (d ? 'L' : 'M') + (i * step).toFixed(1) + ',' + y.toFixed(1);
    });
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

// fn, called once calls have stopped for ms.
export function debounce(fn, ms = 250) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
