// The approvals inbox (#/approvals): what the fleet's agents are waiting
// for. Pending approvals of the current workspace come first, newest
// first, each with its desktop, the exact action, why the policy stopped
// it, the screen when it was asked (click to enlarge), the time left before
// it expires, and Approve / Deny with an optional note. Below, the history:
// approved, denied and expired ones with who decided, when, and the note.
// Live from approval.created, approval.updated (its screenshot) and approval.decided; a decision someone else
// took first (409) is said plainly and the item moves to the history.
import { get, post, qs } from '../api.js';
import { ctx } from '../context.js';
import { workspaceNames } from '../names.js';
import { on } from '../events.js';
import { h, fill, fmtTime, fmtAgo, fmtDuration, toast, dialog, empty, errorText } from '../ui.js';

const NOTE_MAX = 500; // POST /api/approvals/{id}: note maxLength
const HISTORY_MAX = 200; // rows kept in the history table
const DECIDED = ['approved', 'denied', 'expired'];
const KIND_LABEL = { shell: 'Shell command', computer: 'Computer use', files: 'Files' };

export function mount(el) {
  const ws = ctx.workspace ? ctx.workspace.id : null;
  const names = new Map(); // desktopId -> name
  const users = new Map(); // userId -> email
  const cards = new Map(); // approval id -> {a, el, left, asked, note, buttons, error, shot}
  const rows = new Map(); // approval id -> history <tr>
  const timers = new Set();
  const inflight = new Set(); // approval ids this page is deciding
  const offs = [];
  let alive = true;
  let ready = false;
  let queued = []; // events that arrived while loading
  let historyStatus = ''; // '' = every decided one

  const count = h('span', { class: 'badge pending apr-count', 'aria-live': 'polite' }, '0');
  const pendingHead = h('h2', { id: 'apr-pending-h', tabindex: '-1' }, 'Pending ', count);
  const list = h('div', { class: 'apr-list' });
  const listEmpty = empty('Nothing is waiting for a decision.');
  const loadError = h('p', { class: 'error', role: 'alert', hidden: true });
  const statusSel = h('select', { 'aria-label': 'Show in the history', onchange: () => {
    historyStatus = statusSel.value;
    loadHistory();
  } },
  h('option', { value: '' }, 'All decided'),
  DECIDED.map((s) => h('option', { value: s }, s[0].toUpperCase() + s.slice(1))));
  const tbody = h('tbody');
  const historyEmpty = empty('No decisions yet.');
  const historyError = h('p', { class: 'error', role: 'alert', hidden: true });

  fill(el, h('div', { class: 'page approvals' },
    h('div', { class: 'page-head' }, h('h1', null, 'Approvals'), h('span', { class: 'spacer' })),
    loadError,
    h('section', { class: 'apr-section', 'aria-labelledby': 'apr-pending-h' },
      pendingHead,
      list, listEmpty),
    h('section', { class: 'apr-section', 'aria-labelledby': 'apr-history-h' },
      h('div', { class: 'row apr-history-head' },
        h('h2', { id: 'apr-history-h' }, 'History'), h('span', { class: 'spacer' }),
        h('label', { class: 'inline' }, 'Show', statusSel)),
      historyError,
      h('table', { class: 'list apr-history' },
        h('thead', null, h('tr', null,
          ['Decided', 'Desktop', 'Action', 'Status', 'By', 'Note', 'Screen'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody),
      historyEmpty)));

  // ---- names ----

  const desktopName = (id) => names.get(id) || id;
  const who = (a) => {
    if (a.status === 'expired' && !a.decidedBy) return 'timeout';
    if (!a.decidedBy) return '—';
    if (ctx.me && a.decidedBy === ctx.me.id) return ctx.me.email;
    return users.get(a.decidedBy) || a.decidedBy;
  };
  const desktopLink = (a, cls = 'apr-desktop') => h('a', { href: '#/desktops/' + encodeURIComponent(a.desktopId), class: cls }, desktopName(a.desktopId));

  function later(fn, ms) {
    const t = setTimeout(() => { timers.delete(t); if (alive) fn(); }, ms);
    timers.add(t);
  }

  function enlarge(a) {
    dialog({
      title: 'Screen of ' + desktopName(a.desktopId) + ' when it asked',
      body: h('figure', { class: 'apr-figure' },
        h('img', { class: 'apr-full', src: a.screenshotUrl, alt: 'The screen of ' + desktopName(a.desktopId) + ' when it asked for ' + a.action }),
        h('figcaption', { class: 'muted' }, fmtTime(a.createdAt), ' · ', h('code', null, a.action))),
    });
  }

  // ---- pending cards ----

  function shotNode(a) {
    if (a.screenshotUrl) {
      const img = h('img', { class: 'shot', src: a.screenshotUrl, alt: '', loading: 'lazy' });
      img.addEventListener('error', () => img.replaceWith(h('div', { class: 'apr-noshot' }, 'Screenshot unavailable')));
      return h('button', {
        type: 'button', class: 'apr-shot', title: 'Enlarge the screenshot',
        'aria-label': 'Enlarge the screenshot of ' + desktopName(a.desktopId), onclick: () => enlarge(a),
      }, img);
    }
    return h('div', { class: 'apr-noshot', role: 'img', 'aria-label': 'No screenshot yet' }, 'Taking a screenshot…');
  }

  // The screenshot is stored just after the approval is announced:
  // approval.updated brings it.
  function gotShot(a) {
    const c = cards.get(a.id);
    if (!c || !a.screenshotUrl || c.a.screenshotUrl) return;
    c.a.screenshotUrl = a.screenshotUrl;
    const n = shotNode(c.a);
    c.shot.replaceWith(n);
    c.shot = n;
  }

  function card(a) {
    const note = h('input', {
      type: 'text', name: 'note', maxlength: NOTE_MAX, autocomplete: 'off',
      placeholder: 'Why, for the agent and the audit log', class: 'apr-note',
    });
    const approve = h('button', { type: 'button', class: 'primary', onclick: () => decide(a.id, 'approve') }, 'Approve');
    const deny = h('button', { type: 'button', class: 'danger', onclick: () => decide(a.id, 'deny') }, 'Deny');
    const left = h('span', { class: 'apr-left' });
    const asked = h('span', { title: fmtTime(a.createdAt) }, fmtAgo(a.createdAt));
    const error = h('p', { class: 'error apr-error', role: 'alert', hidden: true });
    const shot = shotNode(a);
    const body = h('div', { class: 'apr-body' },
      h('div', { class: 'apr-head' },
        desktopLink(a),
        h('span', { class: 'badge info apr-kind', title: 'Kind' }, KIND_LABEL[a.kind] || a.kind),
        h('span', { class: 'spacer' }), left),
      h('pre', { class: 'apr-action', 'aria-label': 'Action' }, h('code', null, a.action)),
      h('p', { class: 'apr-reason' }, h('span', { class: 'muted' }, 'Why: '), a.reason || '—'),
      h('p', { class: 'muted apr-asked' }, 'Asked ', asked),
      h('div', { class: 'apr-decide' },
        h('label', { class: 'apr-note-label' }, 'Note (optional)', note),
        h('div', { class: 'row' }, approve, deny)),
      error);
    const node = h('article', {
      class: 'card apr-card', dataset: { id: a.id, status: 'pending' },
      'aria-label': 'Approval for ' + desktopName(a.desktopId) + ': ' + a.action,
    }, shot, body);
    note.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); approve.focus(); } });
    return { a, el: node, left, asked, note, buttons: [approve, deny], error, shot };
  }

  function addPending(a) {
    if (a.workspaceId !== ws || a.status !== 'pending') return;
    if (cards.has(a.id)) return;
    const c = card(a);
    cards.set(a.id, c);
    // newest first
    const after = [...cards.values()].filter((x) => x !== c && x.a.createdAt > a.createdAt).length;
    const ref = list.children[after] || null;
    list.insertBefore(c.el, ref);
    tick();
    counts();
  }

  function removeCard(id) {
    const c = cards.get(id);
    if (!c) return;
    cards.delete(id);
    const hadFocus = c.el.contains(document.activeElement);
    c.el.remove();
    if (hadFocus) pendingHead.focus(); // not lost to <body>
    counts();
  }

  function counts() {
    count.textContent = cards.size;
    count.classList.toggle('pending', cards.size > 0);
    count.setAttribute('aria-label', cards.size + ' pending');
    listEmpty.hidden = cards.size > 0;
  }

  function tick() {
    if (document.hidden) return;
    const now = Date.now();
    for (const c of cards.values()) {
      const ms = new Date(c.a.expiresAt).getTime() - now;
      c.left.textContent = ms > 0 ? 'expires in ' + fmtDuration(ms) : 'expiring…';
      c.left.classList.toggle('soon', ms < 60000);
      c.asked.textContent = fmtAgo(c.a.createdAt);
    }
  }

  async function decide(id, decision) {
    const c = cards.get(id);
    if (!c) return;
    const note = c.note.value.trim();
    c.buttons.forEach((b) => { b.disabled = true; });
    c.error.hidden = true;
    inflight.add(id);
    try {
      const a = await post('/api/approvals/' + encodeURIComponent(id), note ? { decision, note } : { decision });
      if (!alive) return;
      toast((decision === 'approve' ? 'Approved on ' : 'Denied on ') + desktopName(a.desktopId) + ': ' + a.action, 'ok');
      decided(a);
    } catch (e) {
      if (!alive) return;
      if (e.status === 409) return await conflict(id, decision, e);
      if (e.status === 404) {
        toast('This approval is gone: ' + errorText(e), 'error');
        removeCard(id);
        return;
      }
      c.error.textContent = (decision === 'approve' ? 'Could not approve: ' : 'Could not deny: ') + errorText(e);
      c.error.hidden = false;
      c.buttons.forEach((b) => { b.disabled = false; });
    } finally {
      inflight.delete(id);
    }
  }

  // Someone (or the timeout) decided first: say what happened, show the
  // approval as it is now.
  async function conflict(id, decision, e) {
    let a = null;
    try { a = await get('/api/approvals/' + encodeURIComponent(id)); } catch { /* shown below */ }
    if (!alive) return;
    const mine = decision === 'approve' ? 'approve' : 'deny';
    const what = a && a.status !== 'pending'
      ? `It was already ${a.status}${a.status === 'expired' ? '' : ' by ' + who(a)}.`
      : '';
    const msg = `Could not ${mine}: ${errorText(e)}. ${what}`.trim();
    toast(msg, 'error');
    if (a && a.status !== 'pending') {
      decided(a, msg);
    } else {
      const c = cards.get(id);
      if (c) {
        c.error.textContent = msg;
        c.error.hidden = false;
        c.buttons.forEach((b) => { b.disabled = false; });
      }
    }
  }

  // ---- history ----

  function historyRow(a, conflictMsg) {
    const cells = [
      h('td', { title: fmtTime(a.decidedAt || a.createdAt) }, fmtTime(a.decidedAt || a.createdAt)),
      h('td', { class: 'apr-h-desktop' }, desktopLink(a, 'apr-h-link')),
      h('td', { class: 'apr-h-action' }, h('code', { title: a.action }, a.action),
        h('div', { class: 'muted apr-h-reason' }, (KIND_LABEL[a.kind] || a.kind) + ' · ' + (a.reason || '')),
        conflictMsg ? h('div', { class: 'error apr-conflict', role: 'alert' }, conflictMsg) : null),
      h('td', null, h('span', { class: 'badge ' + a.status }, a.status)),
      h('td', { class: 'apr-by' }, who(a)),
      h('td', { class: 'apr-h-note' }, a.note || h('span', { class: 'muted' }, '—')),
      h('td', null, a.screenshotUrl
        ? h('button', { type: 'button', class: 'link small', onclick: () => enlarge(a), 'aria-label': 'Show the screenshot of ' + desktopName(a.desktopId) }, 'View')
        : h('span', { class: 'muted' }, '—')),
    ];
    return h('tr', { dataset: { id: a.id, status: a.status }, class: conflictMsg ? 'apr-flash' : null }, cells);
  }

  function showInHistory(a, conflictMsg, top) {
    if (a.workspaceId !== ws || a.status === 'pending') return;
    if (historyStatus && a.status !== historyStatus) return;
    const tr = historyRow(a, conflictMsg);
    const old = rows.get(a.id);
    if (old) old.replaceWith(tr);
    else if (top) tbody.prepend(tr);
    else tbody.append(tr);
    rows.set(a.id, tr);
    while (rows.size > HISTORY_MAX) {
      const last = tbody.lastElementChild;
      rows.delete(last.dataset.id);
      last.remove();
    }
    historyEmpty.hidden = rows.size > 0;
  }

  function decided(a, conflictMsg) {
    removeCard(a.id);
    showInHistory(a, conflictMsg, true);
  }

  let historySeq = 0;
  async function loadHistory() {
    const seq = ++historySeq;
    historyError.hidden = true;
    try {
      const lists = await Promise.all((historyStatus ? [historyStatus] : DECIDED)
        .map((s) => get('/api/approvals' + qs({ status: s }))));
      if (!alive || seq !== historySeq) return;
      const all = lists.flatMap((r) => r.approvals).filter((a) => a.workspaceId === ws);
      all.sort((x, y) => (y.decidedAt || y.createdAt).localeCompare(x.decidedAt || x.createdAt));
      rows.clear();
      fill(tbody);
      for (const a of all.slice(0, HISTORY_MAX)) showInHistory(a, null, false);
      historyEmpty.hidden = rows.size > 0;
    } catch (e) {
      if (!alive || seq !== historySeq) return;
      historyError.textContent = 'The history did not load: ' + errorText(e);
      historyError.hidden = false;
    }
  }

  // ---- live ----

  function onEvent(type, ev) {
    if (!ready) { queued.push([type, ev]); return; }
    const a = ev && ev.approval;
    if (!a || a.workspaceId !== ws) return;
    if (ev.name) names.set(a.desktopId, ev.name);
    if (type === 'approval.created') {
      addPending(a);
    } else if (type === 'approval.updated' && a.status === 'pending') {
      gotShot(a);
    } else if (a.status !== 'pending') {
      // decided elsewhere (another tab, the CLI, the timeout) while shown here
      if (cards.has(a.id) && !inflight.has(a.id))
        toast(`${desktopName(a.desktopId)}: ${a.action} was ${a.status}${a.status === 'expired' ? '' : ' by ' + who(a)}`, 'info');
      decided(a);
    }
  }
  offs.push(on('approval.created', (ev) => onEvent('approval.created', ev)));
  offs.push(on('approval.decided', (ev) => onEvent('approval.decided', ev)));
  offs.push(on('approval.updated', (ev) => onEvent('approval.updated', ev)));
  offs.push(on('desktop.created', (ev) => { if (ev.name) names.set(ev.desktopId, ev.name); }));

  async function load() {
    if (!ws) {
      fill(list);
      listEmpty.textContent = 'You have no workspace.';
      return;
    }
    const [pending, known] = await Promise.allSettled([
      get('/api/approvals' + qs({ status: 'pending' })),
      workspaceNames(ws),
    ]);
    if (!alive) return;
    for (const [k, v] of known.value.desktops) names.set(k, v);
    for (const [k, v] of known.value.users) users.set(k, v);
    if (pending.status === 'fulfilled') {
      for (const a of pending.value.approvals) addPending(a);
    } else {
      loadError.textContent = 'Pending approvals did not load: ' + errorText(pending.reason);
      loadError.hidden = false;
    }
    counts();
    ready = true;
    for (const [type, ev] of queued) onEvent(type, ev);
    queued = [];
    await loadHistory();
  }

  const clock = setInterval(tick, 1000);
  const onVisible = () => tick();
  document.addEventListener('visibilitychange', onVisible);
  counts();
  load();

  return () => {
    alive = false;
    clearInterval(clock);
    for (const t of timers) clearTimeout(t);
    timers.clear();
    offs.forEach((off) => off());
    document.removeEventListener('visibilitychange', onVisible);
  };
}
