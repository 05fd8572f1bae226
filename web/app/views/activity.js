// The activity view (#/activity): the workspace's audit log, newest first,
// a page at a time ("Load more" follows `next`). Filters: who (a member),
// what (an action, or a prefix ending in * such as desktop.*), which
// desktop, and a time window. They live in the URL's hash query, e.g.
// #/activity?action=desktop.*&since=2026-11-01T00:00:00Z, so a filtered
// view can be linked. Each entry: time, who (and the API key if one was
// used), action, target, HTTP status, remote address, and its detail JSON.
import { get, qs } from '../api.js';
import { ctx } from '../context.js';
import { workspaceNames } from '../names.js';
import { h, fill, fmtTime, toast, empty, errorText } from '../ui.js';

const PAGE = 100;
const FILTERS = ['userId', 'action', 'desktopId', 'since', 'until'];
// Offered in the action field; any other action or prefix can be typed.
const ACTIONS = [
  'desktop.*', 'desktop.create', 'desktop.start', 'desktop.stop', 'desktop.restart', 'desktop.destroy',
  'desktop.exec', 'desktop.file.*', 'desktop.snapshot.*', 'desktop.console.*', 'desktop.service.*',
  'chat.*', 'chat.send', 'chat.interrupt', 'approval.*', 'approval.create', 'approval.decide', 'approval.expire',
  'alert.acknowledge', 'workspace.*', 'workspace.member.add', 'workspace.egress.set',
  'workspace.alert_rules.set', 'workspace.approval_rules.set', 'workspace.webhook.*',
  'apikey.*', 'auth.*', 'template.build', 'http.request',
];

// The filters in the hash's query part.
function fromHash() {
  const i = location.hash.indexOf('?');
  const q = new URLSearchParams(i >= 0 ? location.hash.slice(i + 1) : '');
  const f = {};
  for (const k of FILTERS) if (q.get(k)) f[k] = q.get(k);
  return f;
}

// datetime-local wants local "YYYY-MM-DDTHH:MM"; the API wants UTC.
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function toUtc(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function statusClass(s) {
  if (s >= 200 && s < 300) return 'ok';
  if (s >= 300 && s < 400) return 'info';
  if (s >= 400 && s < 500) return 'warn';
  if (s >= 500) return 'bad';
  return '';
}

export function mount(el) {
  const ws = ctx.workspace ? ctx.workspace.id : null;
  const users = new Map(); // userId -> email
  const desktops = new Map(); // desktopId -> name
  const shown = new Set(); // entry ids in the table
  let filters = fromHash();
  let next = null;
  let seq = 0;
  let alive = true;

  const who = h('select', { id: 'act-user', name: 'userId' }, h('option', { value: '' }, 'Anyone'));
  const action = h('input', {
    id: 'act-action', name: 'action', type: 'text', list: 'act-actions', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'desktop.* or desktop.stop', maxlength: 63, 'aria-describedby': 'act-action-hint',
  });
  const actions = h('datalist', { id: 'act-actions' }, ACTIONS.map((a) => h('option', { value: a })));
  const desktop = h('select', { id: 'act-desktop', name: 'desktopId' }, h('option', { value: '' }, 'Any desktop'));
  const since = h('input', { id: 'act-since', name: 'since', type: 'datetime-local' });
  const until = h('input', { id: 'act-until', name: 'until', type: 'datetime-local' });
  const error = h('p', { class: 'error act-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card act-filters', role: 'search', 'aria-label': 'Filter the activity', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'act-grid' },
      h('label', null, 'Who', who),
      h('label', { title: 'An action (desktop.stop), or a prefix ending in * (desktop.*)' }, 'Action', action, actions),
      h('label', null, 'Desktop', desktop),
      h('label', null, 'Since', since),
      h('label', null, 'Until', until),
      h('div', { class: 'act-buttons' },
        h('button', { type: 'submit', class: 'primary' }, 'Apply'),
        h('button', { type: 'button', onclick: () => { filters = {}; setInputs(); apply(); } }, 'Clear'))),
    h('p', { id: 'act-action-hint', class: 'muted act-hint' }, 'Action: an exact name such as desktop.stop, or a prefix ending in * such as desktop.*. Times are local.'),
    error);
  for (const i of [who, desktop, since, until]) i.addEventListener('change', () => apply());

  const tbody = h('tbody');
  const table = h('table', { class: 'list act-table' },
    h('thead', null, h('tr', null,
      ['Time', 'Who', 'Action', 'Target', 'Status', 'Remote', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const none = empty('No activity matches these filters.');
  const more = h('button', { type: 'button', class: 'act-more-btn', onclick: () => page() }, 'Load more');
  const summary = h('span', { class: 'muted act-summary', 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button', onclick: () => apply() }, 'Refresh');

  fill(el, h('div', { class: 'page activity' },
    h('div', { class: 'page-head' }, h('h1', null, 'Activity'), h('span', { class: 'spacer' }), refresh),
    form, h('div', { class: 'act-tablewrap' }, table), none,
    h('div', { class: 'row act-more' }, more, summary)));

  function setInputs() {
    who.value = filters.userId || '';
    action.value = filters.action || '';
    desktop.value = filters.desktopId || '';
    since.value = filters.since ? toLocalInput(filters.since) : '';
    until.value = filters.until ? toLocalInput(filters.until) : '';
  }

  // A value from a link that the selects do not list yet (a past member, a
  // destroyed desktop) still gets an option, so the filter shows.
  function ensureOption(select, value, label) {
    if (!value || [...select.options].some((o) => o.value === value)) return;
    select.append(h('option', { value }, label || value));
  }

  function readInputs() {
    const f = {};
    if (who.value) f.userId = who.value;
    if (action.value.trim()) f.action = action.value.trim();
    if (desktop.value) f.desktopId = desktop.value;
    // keep a linked value (a date, say) when the field was not touched
    if (since.value) f.since = since.value === toLocalInput(filters.since || '') ? filters.since : toUtc(since.value);
    if (until.value) f.until = until.value === toLocalInput(filters.until || '') ? filters.until : toUtc(until.value);
    return f;
  }

  function apply() {
    filters = readInputs();
    const hash = '#/activity' + qs(filters);
    if (location.hash !== hash) history.replaceState(null, '', hash);
    reset();
    page();
  }

  function reset() {
    seq++;
    next = null;
    shown.clear();
    fill(tbody);
    error.hidden = true;
    more.hidden = true;
    none.hidden = true;
    summary.textContent = '';
  }

  function whoCell(e) {
    const name = e.userId ? (ctx.me && e.userId === ctx.me.id ? ctx.me.email : users.get(e.userId) || e.userId) : '—';
    return h('td', { class: 'act-who' }, h('span', { title: e.userId || '' }, name),
      e.keyId ? h('div', { class: 'muted act-key', title: 'With the API key ' + e.keyId }, 'via ', h('code', null, e.keyId)) : null);
  }

  function targetCell(e) {
    const m = /^dsk_[A-Za-z0-9]+$/.exec(e.target || '');
    if (m) return h('td', { class: 'act-target' }, h('a', { href: '#/desktops/' + e.target }, desktops.get(e.target) || e.target));
    return h('td', { class: 'act-target' }, h('code', { title: e.target }, e.target || '—'));
  }

  function row(e) {
    const detailRow = e.detail ? h('tr', { class: 'act-detail', hidden: true },
      h('td', { colspan: 7 }, h('pre', null, JSON.stringify(e.detail, null, 2)))) : null;
    const toggle = e.detail ? h('button', {
      type: 'button', class: 'small act-toggle', 'aria-expanded': 'false', 'aria-label': 'Detail of entry ' + e.id,
      onclick: () => {
        detailRow.hidden = !detailRow.hidden;
        toggle.setAttribute('aria-expanded', String(!detailRow.hidden));
        toggle.textContent = detailRow.hidden ? 'Show' : 'Hide';
      },
    }, 'Show') : h('span', { class: 'muted' }, '—');
    const tr = h('tr', { class: 'act-entry', dataset: { id: e.id, action: e.action, target: e.target || '', user: e.userId || '', status: e.status } },
      h('td', { class: 'act-time' }, h('time', { datetime: e.createdAt }, fmtTime(e.createdAt))),
      whoCell(e),
      h('td', null, h('code', { class: 'act-action' }, e.action.split('.').map((w, i) => (i ? [h('wbr'), '.' + w] : w)))),
      targetCell(e),
      h('td', null, h('span', { class: 'badge ' + statusClass(e.status) }, e.status || '—')),
      h('td', { class: 'mono act-remote' }, e.remote || '—'),
      h('td', null, toggle));
    if (detailRow) detailRow.dataset.detail = JSON.stringify(e.detail);
    return [tr, detailRow];
  }

  async function page() {
    if (!ws) return;
    const mine = seq;
    more.disabled = true;
    try {
      const r = await get('/api/audit' + qs({ workspaceId: ws, ...filters, before: next, limit: PAGE }));
      if (!alive || mine !== seq) return;
      for (const e of r.entries) {
        if (shown.has(e.id)) continue;
        shown.add(e.id);
        tbody.append(...row(e).filter(Boolean));
      }
      next = r.next;
      more.hidden = next === null;
      none.hidden = shown.size > 0;
      table.hidden = shown.size === 0;
      summary.textContent = shown.size ? `${shown.size} entr${shown.size === 1 ? 'y' : 'ies'} shown${next === null ? ', the whole log' : ''}` : '';
    } catch (e) {
      if (!alive || mine !== seq) return;
      error.textContent = (e.status === 400 ? 'These filters were refused: ' : 'The activity did not load: ') + errorText(e);
      error.hidden = false;
      table.hidden = shown.size === 0;
    } finally {
      more.disabled = false;
    }
  }

  async function start() {
    if (!ws) {
      fill(el.querySelector('.activity'), h('h1', null, 'Activity'), empty('You have no workspace.'));
      return;
    }
    const known = await workspaceNames(ws);
    if (!alive) return;
    for (const m of known.memberList) {
      users.set(m.userId, m.email);
      who.append(h('option', { value: m.userId }, m.email));
    }
    for (const d of known.desktopList) {
      desktops.set(d.id, d.name);
      desktop.append(h('option', { value: d.id }, d.name));
    }
    ensureOption(who, filters.userId);
    ensureOption(desktop, filters.desktopId);
    setInputs();
    reset();
    page();
  }
  start();

  return () => { alive = false; };
}
