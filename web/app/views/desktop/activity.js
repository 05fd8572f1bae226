// The events & audit panel: this desktop's events as they happen (from the
// view's stream, since the page opened) and its audit log (GET
// /api/audit?desktopId=, newest first, filtered by action and time, older
// pages on demand). New events refresh the audit log's first page while
// the panel is shown.
import { get, qs } from '../../api.js';
import { h, fill, fmtTime, errorText, debounce } from '../../ui.js';
import { truncate, clock } from './util.js';

const EVENTS_MAX = 200;
const PAGE = 50;

// One line of what an event says.
function eventText(ev) {
  switch (ev.type) {
    case 'desktop.state':
      return ev.state + (ev.reason ? ': ' + ev.reason : '') + (ev.desiredState && ev.desiredState !== ev.state ? ` (→ ${ev.desiredState})` : '');
    case 'desktop.desired':
      return 'desired state ' + (ev.desiredState || '');
    case 'agent.status':
      return ev.agent ? ev.agent.status + (ev.agent.task && ev.agent.status !== 'idle' ? ': ' + ev.agent.task : '') : '';
    case 'chat.message':
    case 'chat.tool': {
      const m = ev.message || {};
      const what = m.role === 'tool_call' || m.role === 'tool_result' ? `${m.role} ${(m.data && m.data.tool) || ''}` : m.role;
      return `${what}: ${m.content || ''}`;
    }
    case 'approval.created':
    case 'approval.updated':
    case 'approval.decided':
      return ev.approval ? `${ev.approval.status}: ${ev.approval.action}` : '';
    default: {
      const rest = { ...ev };
      for (const k of ['id', 'type', 'desktopId', 'workspaceId', 'createdAt', 'name']) delete rest[k];
      return Object.keys(rest).length ? JSON.stringify(rest) : '';
    }
  }
}

// key=value pairs of an entry's detail, without what the row already says.
function detailText(d, desktopId) {
  if (!d || typeof d !== 'object') return '';
  return Object.entries(d)
    .filter(([k, v]) => !((k === 'id' || k === 'desktopId') && v === desktopId) && k !== 'route')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ');
}

// The time of day for today's entries, else the date and time.
function when(iso) {
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return today ? clock(iso) : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

const READ = 'http.request'; // reads: every GET is audited

// An HTTP status, or a WebSocket close code for console disconnections.
function statusBadge(s) {
  if (!s) return h('span', { class: 'muted' }, '—');
  const cls = s >= 1000 ? (s <= 1001 ? 'ok' : 'warn') : s < 300 ? 'ok' : s < 500 ? 'warn' : 'bad';
  return h('span', { class: 'badge ' + cls }, String(s));
}

export function createActivity(env) {
  // Read by tests: events (live, newest first), entries (audit).
  const state = { events: [], entries: [] };
  let visible = false;
  let stale = true;
  let next = null;
  let seq = 0;
  let filter = {};
  let dead = false;

  // ---- live events ----
  const evList = h('ol', { class: 'dv-events', 'aria-live': 'off' });
  const evEmpty = h('li', { class: 'muted dv-events-empty' }, 'Events of this desktop appear here as they happen.');
  evList.append(evEmpty);

  // ---- audit ----
  const hideReads = h('input', { type: 'checkbox', checked: true });
  const hiddenNote = h('span', { class: 'muted dv-small' });
  hideReads.addEventListener('change', () => {
    for (const tr of tbody.children) tr.hidden = hideReads.checked && tr.dataset.action === READ;
    countHidden();
  });
  const user = h('select', { name: 'userId' }, h('option', { value: '' }, 'anyone'),
    env.members().sort((a, b) => a.email.localeCompare(b.email)).map((m) => h('option', { value: m.userId }, m.email)));
  const action = h('input', { type: 'text', name: 'action', placeholder: 'e.g. desktop.* or chat.send', maxlength: 63, autocomplete: 'off' });
  const since = h('input', { type: 'datetime-local', name: 'since' });
  const until = h('input', { type: 'datetime-local', name: 'until' });
  const formErr = h('span', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'dv-audit-filter', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('label', { class: 'inline' }, 'Who', user),
    h('label', { class: 'inline' }, 'Action', action),
    h('label', { class: 'inline' }, 'From', since),
    h('label', { class: 'inline' }, 'Until', until),
    h('button', { type: 'submit', class: 'small' }, 'Filter'),
    h('button', { type: 'button', class: 'small link', onclick: clear }, 'Clear'),
    h('label', { class: 'inline', title: 'Every API read (GET) is audited as http.request' }, hideReads, 'Hide reads'),
    formErr);
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => loadMore() }, 'Load older entries');
  const auditMsg = h('p', { class: 'muted', hidden: true });
  const table = h('table', { class: 'list dv-audit' },
    h('colgroup', null, ['when', 'who', 'action', 'status', 'detail'].map((c) => h('col', { class: 'dv-col-' + c }))),
    h('thead', null, h('tr', null,
      ['When', 'Who', 'Action', 'Status', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);

  const el = h('div', { class: 'dv-activity' },
    h('section', { class: 'dv-activity-events', 'aria-label': 'Live events' }, h('h3', null, 'Events (live)'), evList),
    h('section', { class: 'dv-activity-audit', 'aria-label': 'Audit log' },
      h('div', { class: 'dv-audit-head' }, h('h3', null, 'Audit log'), form),
      auditMsg, table, h('div', { class: 'dv-more' }, hiddenNote, ' ', more)));

  function event(ev) {
    if (ev.type === 'chat.delta') return; // streamed text: the chat shows it
    state.events.unshift(ev);
    if (state.events.length > EVENTS_MAX) state.events.length = EVENTS_MAX;
    evEmpty.remove();
    const li = h('li', { dataset: { type: ev.type } },
      h('time', { datetime: ev.createdAt, title: fmtTime(ev.createdAt) }, clock(ev.createdAt)),
      h('code', { class: 'dv-ev-type' }, ev.type),
      h('span', { class: 'dv-ev-text', title: eventText(ev) }, truncate(eventText(ev), 160)));
    evList.prepend(li);
    while (evList.children.length > EVENTS_MAX) evList.lastElementChild.remove();
    if (visible) refreshSoon(); else stale = true;
  }

  function who(e) {
    if (e.userId) return env.who(e.userId);
    if (e.keyId) return 'API key ' + e.keyId;
    return 'system';
  }

  function row(e) {
    const detail = detailText(e.detail, env.id);
    const by = who(e);
    const target = e.target && e.target !== env.id ? e.target : '';
    const tr = h('tr', { dataset: { id: e.id, action: e.action } },
      h('td', { class: 'dv-nowrap', title: fmtTime(e.createdAt) }, when(e.createdAt)),
      h('td', { class: 'dv-clip', title: by + (e.remote ? ' from ' + e.remote : '') }, by),
      h('td', { class: 'dv-clip', title: target || e.action }, h('code', null, e.action), target ? h('div', { class: 'muted dv-small' }, target) : null),
      h('td', null, statusBadge(e.status)),
      h('td', { title: detail }, h('div', { class: 'dv-detail' }, truncate(detail, 200))));
    tr.hidden = hideReads.checked && e.action === READ;
    return tr;
  }

  // Reads are hidden unless asked for; the count says how many.
  function countHidden() {
    const n = hideReads.checked ? state.entries.filter((e) => e.action === READ).length : 0;
    hiddenNote.textContent = n ? `${n} read${n === 1 ? '' : 's'} hidden` : '';
    if (state.entries.length && n === state.entries.length && !more.hidden) hiddenNote.textContent += ' — load older entries for more';
  }

  function params(extra) {
    return qs({ desktopId: env.id, limit: PAGE, ...filter, ...extra });
  }

  function showMsg(text, cls = 'muted') {
    auditMsg.className = cls;
    auditMsg.textContent = text;
    auditMsg.hidden = !text;
  }

  // The first page, from scratch.
  async function load() {
    const my = ++seq;
    stale = false;
    try {
      const r = await get('/api/audit' + params());
      if (my !== seq) return;
      state.entries = r.entries;
      next = r.next;
      fill(tbody, r.entries.map(row));
      more.hidden = next === null || next === undefined;
      showMsg(r.entries.length ? '' : 'No audit entries match.');
      countHidden();
    } catch (e) {
      if (my !== seq) return;
      fill(tbody);
      more.hidden = true;
      showMsg('The audit log could not be loaded: ' + errorText(e), 'error');
    }
  }

  // New entries on top of what is shown (the first page again, newer ids).
  async function refresh() {
    if (dead) return undefined;
    if (!state.entries.length) return load();
    const my = seq;
    try {
      const r = await get('/api/audit' + params());
      if (my !== seq) return;
      const top = state.entries[0].id;
      const fresh = r.entries.filter((e) => e.id > top);
      if (!fresh.length) return;
      if (fresh.length === r.entries.length) return load(); // a gap: start over
      state.entries = fresh.concat(state.entries);
      const first = tbody.firstElementChild;
      for (const e of fresh) tbody.insertBefore(row(e), first);
      showMsg('');
      countHidden();
    } catch (e) {
      if (my === seq) showMsg('The audit log could not be refreshed: ' + errorText(e), 'error');
    }
  }
  const refreshSoon = debounce(refresh, 1500);

  async function loadMore() {
    if (next === null || next === undefined) return;
    more.disabled = true;
    const my = seq;
    try {
      const r = await get('/api/audit' + params({ before: next }));
      if (my !== seq) return;
      state.entries = state.entries.concat(r.entries);
      tbody.append(...r.entries.map(row));
      next = r.next;
      more.hidden = next === null || next === undefined;
      countHidden();
    } catch (e) {
      showMsg('Older entries could not be loaded: ' + errorText(e), 'error');
    } finally {
      more.disabled = false;
    }
  }

  function iso(input) {
    return input.value ? new Date(input.value).toISOString() : null;
  }

  function apply() {
    formErr.textContent = '';
    const a = action.value.trim();
    if (a && !/^[A-Za-z0-9._-]+\*?$/.test(a)) {
      formErr.textContent = 'An action (desktop.stop) or a prefix ending with * (desktop.*).';
      return;
    }
    const f = { userId: user.value || null, action: a || null, since: iso(since), until: iso(until) };
    if (f.since && f.until && f.since >= f.until) {
      formErr.textContent = '"From" must be before "Until".';
      return;
    }
    filter = f;
    load();
  }

  function clear() {
    action.value = since.value = until.value = user.value = '';
    formErr.textContent = '';
    filter = {};
    load();
  }

  function shown() {
    visible = true;
    if (stale) (state.entries.length ? refresh() : load());
  }

  function hidden() {
    visible = false;
  }

  function destroy() {
    seq++;
    dead = true;
    visible = false;
  }

  return { el, state, event, shown, hidden, destroy };
}
