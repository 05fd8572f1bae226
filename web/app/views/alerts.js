// The alerts inbox (#/alerts): the workspace's alerts (open by default;
// acknowledged or all in the other tabs), each with its severity and kind,
// desktop, message, the measured value against the threshold, since when,
// whether the condition has ended, the webhook delivery, and Acknowledge.
// Live: alert.raised / alert.resolved / alert.acknowledged refetch the list
// and only changed rows are touched. Below, a compact editor of the
// workspace's alert rules and webhook; the server's validation messages
// are shown beside them.
import { get, post, put, del, qs } from '../api.js';
import { ctx } from '../context.js';
import { workspaceNames } from '../names.js';
import { on } from '../events.js';
import { h, fill, fmtTime, fmtAgo, toast, confirm, empty, errorText, debounce } from '../ui.js';

const TABS = [['open', 'Open'], ['acknowledged', 'Acknowledged'], ['all', 'All']];
// kind -> [label, severity, badge class]
const KINDS = {
  desktopError: ['Desktop error', 'critical', 'bad'],
  agentError: ['Agent error', 'error', 'bad'],
  cpu: ['CPU', 'warning', 'warn'],
  memory: ['Memory', 'warning', 'warn'],
  disk: ['Disk', 'warning', 'warn'],
  refusedBurst: ['Refused requests', 'warning', 'warn'],
};
const PERCENT = ['cpu', 'memory', 'disk'];
const RULES = ['desktopError', 'agentError', 'cpu', 'memory', 'disk', 'refusedBurst'];
const AGO_EVERY_MS = 30000;

export function mount(el) {
  const ws = ctx.workspace ? ctx.workspace.id : null;
  const canEdit = ctx.workspace && (ctx.workspace.role === 'owner' || ctx.workspace.role === 'admin');
  const names = new Map(); // desktopId -> name
  const users = new Map(); // userId -> email
  const rows = new Map(); // alert id -> {tr, json}
  const offs = [];
  let alive = true;
  let state = 'open';
  let seq = 0;

  // ---- the list ----

  const tabs = TABS.map(([id, label]) => h('button', {
    type: 'button', role: 'tab', id: 'alr-tab-' + id, 'aria-controls': 'alr-panel',
    'aria-selected': String(id === state), dataset: { state: id }, onclick: () => select(id),
  }, label));
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Which alerts' }, tabs);
  tablist.addEventListener('keydown', (e) => {
    const i = TABS.findIndex(([id]) => id === state);
    const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : null;
    if (j === null) return;
    const next = TABS[(j + TABS.length) % TABS.length][0];
    select(next);
    tabs.find((t) => t.dataset.state === next).focus();
  });
  const tbody = h('tbody');
  const table = h('table', { class: 'list alr-table' },
    h('thead', null, h('tr', null,
      ['Severity', 'Alert', 'Desktop', 'Value', 'Raised', 'Condition', 'Webhook', 'Acknowledged'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const listEmpty = empty('');
  const listError = h('p', { class: 'error', role: 'alert', hidden: true });

  // ---- the editors ----

  const rulesForm = h('form', { class: 'alr-rules-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); saveRules(); } });
  const rulesError = h('p', { class: 'error alr-form-error', role: 'alert', hidden: true });
  const ruleInputs = {}; // kind -> {enabled, threshold?, seconds?}
  const hookForm = h('form', { class: 'alr-hook-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); saveHook(); } });
  const hookState = h('p', { class: 'muted alr-hook-state' }, 'Loading…');
  const hookError = h('p', { class: 'error alr-form-error', role: 'alert', hidden: true });
  const hookSecret = h('div', { class: 'alr-secret', hidden: true });
  const hookUrl = h('input', { type: 'url', name: 'url', id: 'alr-hook-url', placeholder: 'https://hooks.example.com/bureau', autocomplete: 'off', disabled: !canEdit });
  const hookKey = h('input', { type: 'password', name: 'secret', id: 'alr-hook-secret', placeholder: 'generated if left empty', title: '16 to 120 characters; generated if left empty', autocomplete: 'new-password', disabled: !canEdit });
  const hookRemove = h('button', { type: 'button', class: 'danger', hidden: true, disabled: !canEdit, onclick: () => removeHook() }, 'Remove');

  fill(el, h('div', { class: 'page alerts' },
    h('div', { class: 'page-head' }, h('h1', null, 'Alerts'), h('span', { class: 'spacer' })),
    tablist,
    h('div', { id: 'alr-panel', role: 'tabpanel', 'aria-labelledby': 'alr-tab-open' }, listError, table, listEmpty),
    h('div', { class: 'alr-config' },
      h('section', { class: 'card alr-rules', 'aria-labelledby': 'alr-rules-h' },
        h('h2', { id: 'alr-rules-h' }, 'Alert rules'),
        h('p', { class: 'muted alr-hint' }, 'An alert is raised once per episode: the condition must hold for the duration, then clear before it can fire again.'),
        rulesForm),
      h('section', { class: 'card alr-hook', 'aria-labelledby': 'alr-hook-h' },
        h('h2', { id: 'alr-hook-h' }, 'Webhook'),
        h('p', { class: 'muted alr-hint' }, 'Each alert raised or acknowledged is POSTed as JSON, signed with X-Bureau-Signature (HMAC-SHA256 of the body with the secret).'),
        hookState,
        hookForm))));

  const desktopName = (id) => names.get(id) || id;
  const userName = (id) => (ctx.me && id === ctx.me.id ? ctx.me.email : users.get(id) || id);

  function select(id) {
    if (id === state) return;
    state = id;
    for (const t of tabs) t.setAttribute('aria-selected', String(t.dataset.state === id));
    el.querySelector('#alr-panel').setAttribute('aria-labelledby', 'alr-tab-' + id);
    rows.clear();
    fill(tbody);
    load();
  }

  function valueText(a) {
    if (a.value === null || a.value === undefined) return '—';
    if (PERCENT.includes(a.kind)) return `${Math.round(a.value)} % (over ${a.threshold} %)`;
    if (a.kind === 'refusedBurst') return `${a.value} (limit ${a.threshold})`;
    return String(a.value);
  }

  function cells(a) {
    const [label, severity, cls] = KINDS[a.kind] || [a.kind, 'warning', 'warn'];
    const ackCell = a.acknowledgedAt
      ? h('span', { title: fmtTime(a.acknowledgedAt) }, h('span', { class: 'badge ok' }, 'acknowledged'), ' ',
        h('span', { class: 'muted alr-ack-by' }, 'by ' + (a.acknowledgedBy ? userName(a.acknowledgedBy) : '—'), ' · ', fmtAgo(a.acknowledgedAt)))
      : h('button', { type: 'button', class: 'small primary alr-ack', onclick: (e) => ack(a.id, e.currentTarget),
        'aria-label': 'Acknowledge: ' + a.message }, 'Acknowledge');
    const delivery = a.delivery || { state: 'none', attempts: 0 };
    const dcls = { delivered: 'ok', pending: 'pending', failed: 'bad' }[delivery.state] || '';
    return [
      h('td', null, h('span', { class: 'badge ' + cls }, severity)),
      h('td', { class: 'alr-what' }, h('div', { class: 'alr-kind' }, label), h('div', { class: 'alr-message' }, a.message)),
      h('td', null, a.desktopId
        ? h('a', { href: '#/desktops/' + encodeURIComponent(a.desktopId) }, desktopName(a.desktopId))
        : h('span', { class: 'muted' }, 'workspace')),
      h('td', { class: 'num' }, valueText(a)),
      h('td', { title: fmtTime(a.createdAt) }, h('span', { class: 'alr-ago', dataset: { at: a.createdAt } }, fmtAgo(a.createdAt))),
      h('td', null, a.resolvedAt
        ? h('span', { title: 'ended ' + fmtTime(a.resolvedAt) }, h('span', { class: 'badge' }, 'resolved'), ' ',
          h('span', { class: 'muted alr-ago', dataset: { at: a.resolvedAt } }, fmtAgo(a.resolvedAt)))
        : h('span', { class: 'badge bad' }, 'ongoing')),
      h('td', null, delivery.state === 'none'
        ? h('span', { class: 'muted' }, '—')
        : h('span', { class: 'badge ' + dcls, title: delivery.attempts + ' attempt(s)' }, delivery.state)),
      h('td', { class: 'alr-ack-cell' }, ackCell),
    ];
  }

  function belongs(a) {
    return state === 'all' || (state === 'open' ? !a.acknowledgedAt : !!a.acknowledgedAt);
  }

  // Rows in the list's order; a row is rebuilt only when its alert changed.
  function render(alerts) {
    const keep = new Set();
    let prev = null;
    for (const a of alerts) {
      if (!belongs(a)) continue;
      keep.add(a.id);
      const json = JSON.stringify(a) + desktopName(a.desktopId);
      let r = rows.get(a.id);
      if (!r) {
        r = { tr: h('tr', { dataset: { id: a.id } }), json: '' };
        rows.set(a.id, r);
      }
      if (r.json !== json) {
        const focused = r.tr.contains(document.activeElement);
        fill(r.tr, cells(a));
        r.tr.dataset.state = a.state;
        r.tr.dataset.kind = a.kind;
        r.tr.dataset.resolved = String(!!a.resolvedAt);
        r.json = json;
        if (focused) r.tr.querySelector('a, button')?.focus();
      }
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== r.tr) tbody.insertBefore(r.tr, want);
      prev = r.tr;
    }
    let lostFocus = false;
    for (const [id, r] of rows) {
      if (keep.has(id)) continue;
      lostFocus = lostFocus || r.tr.contains(document.activeElement);
      r.tr.remove();
      rows.delete(id);
    }
    if (lostFocus) (tbody.querySelector('.alr-ack') || tabs.find((t) => t.dataset.state === state)).focus();
    listEmpty.textContent = { open: 'No open alerts.', acknowledged: 'No acknowledged alerts.', all: 'No alerts yet.' }[state];
    listEmpty.hidden = rows.size > 0;
    table.hidden = rows.size === 0;
  }

  async function load() {
    if (!ws) return;
    const mine = ++seq;
    try {
      const r = await get('/api/alerts' + qs({ workspaceId: ws, state }));
      if (!alive || mine !== seq) return;
      listError.hidden = true;
      render(r.alerts);
    } catch (e) {
      if (!alive || mine !== seq) return;
      listError.textContent = 'Alerts did not load: ' + errorText(e);
      listError.hidden = false;
    }
  }
  const reload = debounce(load, 200);

  async function ack(id, button) {
    button.disabled = true;
    try {
      await post('/api/alerts/' + encodeURIComponent(id) + '/ack');
      if (!alive) return;
      toast('Alert acknowledged', 'ok');
    } catch (e) {
      if (!alive) return;
      toast((e.status === 409 ? 'Already acknowledged: ' : 'Could not acknowledge: ') + errorText(e), 'error');
      button.disabled = false;
    }
    load();
  }

  // ---- rules ----

  function numberInput(kind, field, label, attrs) {
    return h('input', { type: 'number', name: kind + '.' + field, class: 'alr-num', 'aria-label': label, disabled: !canEdit, ...attrs });
  }

  function buildRules(rules) {
    const body = h('tbody');
    for (const kind of RULES) {
      const r = rules[kind] || {};
      const label = KINDS[kind][0];
      const inputs = {
        enabled: h('input', { type: 'checkbox', name: kind + '.enabled', checked: !!r.enabled, disabled: !canEdit, 'aria-label': label + ': enabled' }),
      };
      let threshold = h('span', { class: 'muted' }, 'when it happens');
      let seconds = h('span', { class: 'muted' }, '—');
      if (PERCENT.includes(kind)) {
        inputs.threshold = numberInput(kind, 'thresholdPercent', label + ': threshold in percent', { min: 1, max: 100, step: 'any', value: r.thresholdPercent });
        inputs.seconds = numberInput(kind, 'forSeconds', label + ': for how many seconds', { min: 0, max: 86400, step: 1, value: r.forSeconds });
        threshold = h('span', { class: 'alr-unit' }, 'over ', inputs.threshold, ' %');
        seconds = h('span', { class: 'alr-unit' }, 'for ', inputs.seconds, ' s');
      } else if (kind === 'refusedBurst') {
        inputs.threshold = numberInput(kind, 'count', label + ': how many refused requests', { min: 1, max: 1000, step: 1, value: r.count });
        inputs.seconds = numberInput(kind, 'windowSeconds', label + ': within how many seconds', { min: 1, max: 86400, step: 1, value: r.windowSeconds });
        threshold = h('span', { class: 'alr-unit' }, inputs.threshold, ' refused (4xx)');
        seconds = h('span', { class: 'alr-unit' }, 'within ', inputs.seconds, ' s');
      }
      ruleInputs[kind] = inputs;
      body.append(h('tr', { dataset: { rule: kind } },
        h('th', { scope: 'row' }, h('label', { class: 'inline' }, inputs.enabled, label)),
        h('td', null, threshold), h('td', null, seconds)));
    }
    fill(rulesForm,
      h('table', { class: 'list alr-rules-table' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Rule'), h('th', { scope: 'col' }, 'Condition'), h('th', { scope: 'col' }, 'Duration'))),
        body),
      rulesError,
      h('div', { class: 'row alr-actions' },
        h('button', { type: 'submit', class: 'primary', disabled: !canEdit }, 'Save rules'),
        canEdit ? null : h('span', { class: 'muted' }, 'Only the workspace\'s owners and admins can change them.')));
  }

  // A number field as typed; an empty one is sent as null for the server
  // to refuse with its own message.
  function num(input) {
    return input.value === '' ? null : Number(input.value);
  }

  function rulesBody() {
    const out = {};
    for (const kind of RULES) {
      const i = ruleInputs[kind];
      const r = { enabled: i.enabled.checked };
      if (PERCENT.includes(kind)) {
        r.thresholdPercent = num(i.threshold);
        r.forSeconds = num(i.seconds);
      } else if (kind === 'refusedBurst') {
        r.count = num(i.threshold);
        r.windowSeconds = num(i.seconds);
      }
      out[kind] = r;
    }
    return out;
  }

  async function saveRules() {
    rulesError.hidden = true;
    const button = rulesForm.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const rules = await put('/api/workspaces/' + encodeURIComponent(ws) + '/alert-rules', rulesBody());
      if (!alive) return;
      buildRules(rules);
      toast('Alert rules saved', 'ok');
    } catch (e) {
      if (!alive) return;
      rulesError.textContent = 'Not saved: ' + errorText(e);
      rulesError.hidden = false;
      button.disabled = false;
    }
  }

  async function loadRules() {
    try {
      const rules = await get('/api/workspaces/' + encodeURIComponent(ws) + '/alert-rules');
      if (alive) buildRules(rules);
    } catch (e) {
      if (!alive) return;
      fill(rulesForm, h('p', { class: 'error', role: 'alert' }, 'The rules did not load: ' + errorText(e)));
    }
  }

  // ---- webhook ----

  function showHook(w) {
    hookRemove.hidden = !w;
    if (w) {
      fill(hookState, 'Alerts go to ', h('code', { class: 'alr-hook-url' }, w.url), ' (since ', fmtTime(w.createdAt), ').');
      hookUrl.value = w.url;
    } else {
      fill(hookState, 'No webhook: alerts are only shown here.');
    }
  }

  function buildHook() {
    fill(hookForm,
      h('div', { class: 'form-grid' },
        h('label', { for: 'alr-hook-url' }, 'URL', hookUrl),
        h('label', { for: 'alr-hook-secret' }, 'Secret (optional)', hookKey)),
      hookError, hookSecret,
      h('div', { class: 'row alr-actions' },
        h('button', { type: 'submit', class: 'primary', disabled: !canEdit }, 'Save webhook'), hookRemove));
  }

  async function saveHook() {
    hookError.hidden = true;
    hookSecret.hidden = true;
    const body = { url: hookUrl.value.trim() };
    if (hookKey.value) body.secret = hookKey.value;
    try {
      const w = await put('/api/workspaces/' + encodeURIComponent(ws) + '/webhook', body);
      if (!alive) return;
      hookKey.value = '';
      showHook(w);
      if (w.secret) {
        const field = h('input', { type: 'text', readonly: true, value: w.secret, class: 'mono', 'aria-label': 'The generated secret' });
        fill(hookSecret, h('label', null, 'The generated secret, shown only now: keep it to check signatures', field));
        hookSecret.hidden = false;
        field.select();
      }
      toast('Webhook saved', 'ok');
    } catch (e) {
      if (!alive) return;
      hookError.textContent = 'Not saved: ' + errorText(e);
      hookError.hidden = false;
    }
  }

  async function removeHook() {
    if (!(await confirm('Remove the webhook?', 'Alerts will no longer be delivered to ' + hookUrl.value + '.', 'Remove', true))) return;
    try {
      await del('/api/workspaces/' + encodeURIComponent(ws) + '/webhook');
      if (!alive) return;
      hookUrl.value = '';
      hookSecret.hidden = true;
      showHook(null);
      toast('Webhook removed', 'ok');
    } catch (e) {
      if (!alive) return;
      hookError.textContent = 'Not removed: ' + errorText(e);
      hookError.hidden = false;
    }
  }

  async function loadHook() {
    buildHook();
    try {
      const w = await get('/api/workspaces/' + encodeURIComponent(ws) + '/webhook');
      if (!alive) return;
      showHook(w.url ? w : null);
    } catch (e) {
      if (!alive) return;
      fill(hookState, h('span', { class: 'error', role: 'alert' }, 'The webhook did not load: ' + errorText(e)));
    }
  }

  // ---- live, and the first load ----

  for (const t of ['alert.raised', 'alert.resolved', 'alert.acknowledged']) {
    offs.push(on(t, (ev) => {
      if (ev.workspaceId && ev.workspaceId !== ws) return;
      if (ev.desktopId && ev.name) names.set(ev.desktopId, ev.name);
      reload();
    }));
  }
  const agoTimer = setInterval(() => {
    if (document.hidden) return;
    for (const s of tbody.querySelectorAll('.alr-ago')) s.textContent = fmtAgo(s.dataset.at);
  }, AGO_EVERY_MS);

  async function start() {
    if (!ws) {
      fill(el.querySelector('.alerts'), h('h1', null, 'Alerts'), empty('You have no workspace.'));
      return;
    }
    const known = await workspaceNames(ws);
    if (!alive) return;
    for (const [k, v] of known.desktops) names.set(k, v);
    for (const [k, v] of known.users) users.set(k, v);
    load();
    loadRules();
    loadHook();
  }
  start();

  return () => {
    alive = false;
    clearInterval(agoTimer);
    offs.forEach((off) => off());
  };
}
