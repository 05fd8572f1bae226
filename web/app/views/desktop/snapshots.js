// The snapshots panel: the desktop's snapshots (GET …/snapshots), kept live
// by the desktop.snapshot* events; taking one (POST …/snapshots with a
// name: what it holds follows the desktop's state, the API decides),
// restoring one (a confirmation, then the desktop's way back shown until it
// runs again), deleting one, and a new desktop from one (POST /api/desktops
// with fromSnapshot), then the new desktop's view.
import { get, post, del } from '../../api.js';
import { h, fill, toast, errorText, dialog, fmtBytes, fmtTime, empty, stateBadge } from '../../ui.js';

const NAME_MAX = 63; // the server's name_check: NAME_MAX_LEN
const EVENTS = [
  'desktop.snapshot', 'desktop.snapshot.restore', 'desktop.snapshot.restored',
  'desktop.snapshot.delete', 'desktop.snapshot.deleted',
];
const REFETCH_MS = 150;
const GONE = ['destroying', 'destroyed'];

// The server's rule for names, checked here first for a quicker answer.
function badName(name) {
  if (!name) return 'A name is needed.';
  if (name.length > NAME_MAX) return `A name is at most ${NAME_MAX} characters.`;
  if (/^[.-]/.test(name)) return 'A name cannot start with "." or "-".';
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return 'A name may only contain letters, digits, ".", "_" and "-".';
  return null;
}

const pad = (n) => String(n).padStart(2, '0');

// "snap-20261122-213005", local time.
function defaultName(now = new Date()) {
  return `snap-${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-` +
    `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
}

// Whether the API snapshots or restores now (state_check_snapshot): a
// running or stopped desktop, not on its way elsewhere.
function settled(d) {
  return d.state === d.desiredState && (d.state === 'running' || d.state === 'stopped');
}

// What a snapshot taken now would hold: the desktop's state decides.
// {short, long, kind}, or null when the desktop cannot be snapshotted.
function holdsNow(d) {
  if (d.state === 'running')
    return { kind: 'memory', short: 'memory and disk', long: 'its memory and disk (the desktop pauses for the save, then runs on)' };
  if (d.state === 'stopped' && d.saved)
    return { kind: 'memory', short: 'disk and hibernated memory', long: 'its disk and the memory it hibernated with' };
  if (d.state === 'stopped')
    return { kind: 'disk', short: 'the disk only', long: 'its disk only (the desktop was shut down, not hibernated)' };
  return null;
}

function kindText(kind) {
  if (kind === 'memory') return 'Memory + disk';
  if (kind === 'disk') return 'Disk only';
  return '—';
}

// What restoring or forking a snapshot of this kind does.
function resumes(kind) {
  return kind === 'memory'
    ? 'it resumes with the programs that were running, where they were'
    : 'it boots afresh from the snapshot\'s disk';
}

export function createSnapshots(env) {
  // Read by tests: list (as shown), loaded, restore (the restore followed).
  const state = { list: [], loaded: false, restore: null };
  const base = `/api/desktops/${encodeURIComponent(env.id)}/snapshots`;
  let visible = false;
  let stale = true;
  let seq = 0;
  let timer = null;
  let destroyed = false;

  const count = h('span', { class: 'muted dv-snap-count' });
  const hint = h('span', { class: 'muted dv-snap-hint' });
  const takeBtn = h('button', { type: 'button', class: 'small primary', onclick: take }, 'Take snapshot…');
  const progress = h('div', { class: 'dv-snap-progress', role: 'status', hidden: true });
  const message = h('p', { class: 'dv-snap-msg', hidden: true });
  const tbody = h('tbody');
  const table = h('table', { class: 'list dv-snap-table' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Snapshot'), h('th', { scope: 'col' }, 'Holds'), h('th', { scope: 'col' }, 'State'),
      h('th', { scope: 'col' }, h('span', { class: 'dv-sr-only' }, 'Actions')))),
    tbody);
  const el = h('div', { class: 'dv-snaps' },
    h('div', { class: 'dv-subhead' }, count, h('span', { class: 'spacer' }), hint, takeBtn),
    progress, message, h('div', { class: 'dv-snap-scroll' }, table));

  function showMessage(text, cls = 'muted') {
    message.className = 'dv-snap-msg ' + cls;
    message.textContent = text;
    message.hidden = !text;
  }

  // ---- the list ----

  function row(s) {
    const d = env.desktop();
    const ready = s.state === 'ready';
    const why = !ready ? `the snapshot is ${s.state}` : !settled(d) ? `the desktop is ${d.state}` : null;
    const restoreBtn = h('button', {
      type: 'button', class: 'small', onclick: () => restore(s), disabled: !!why,
      title: why ? `Restore: not now, ${why}` : 'Roll the desktop back to this snapshot', 'aria-label': 'Restore ' + s.name,
    }, 'Restore');
    const forkBtn = h('button', {
      type: 'button', class: 'small', onclick: () => fork(s), disabled: !ready,
      title: ready ? 'Start a new desktop as a copy of this snapshot' : `Not now: the snapshot is ${s.state}`,
      'aria-label': 'New desktop from ' + s.name,
    }, 'New desktop…');
    const delBtn = h('button', {
      type: 'button', class: 'small', onclick: () => remove(s), disabled: !(ready || s.state === 'failed'),
      title: ready || s.state === 'failed' ? 'Delete this snapshot' : `Not now: the snapshot is ${s.state}`,
      'aria-label': 'Delete ' + s.name,
    }, 'Delete');
    const size = s.sizeBytes > 0 ? fmtBytes(s.sizeBytes) : null;
    return h('tr', { dataset: { id: s.id, state: s.state } },
      h('td', { class: 'dv-snap-name', title: s.id },
        h('strong', null, s.name),
        h('div', { class: 'muted dv-small' }, h('time', { datetime: s.createdAt, title: fmtTime(s.createdAt) },
          new Date(s.createdAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })))),
      h('td', { class: 'dv-snap-holds' }, kindText(s.kind), size ? h('div', { class: 'muted dv-small' }, size) : null),
      h('td', { class: 'dv-snap-state' }, stateBadge(s.state),
        s.reason ? h('div', { class: 'error dv-small dv-snap-reason' }, s.state === 'failed' ? s.reason : 'Last restore: ' + s.reason) : null),
      h('td', { class: 'dv-actions-cell dv-snap-actions' }, restoreBtn, forkBtn, delBtn));
  }

  function render() {
    const d = env.desktop();
    const list = [...state.list].sort((a, b) => (b.createdAt > a.createdAt) - (b.createdAt < a.createdAt));
    fill(tbody, list.map(row));
    if (state.loaded && !list.length) {
      tbody.append(h('tr', null, h('td', { colspan: 4 }, empty(
        'No snapshots yet. A snapshot keeps the desktop as it is now, to roll back to or to start new desktops from.'))));
    }
    const total = list.reduce((n, s) => n + (s.sizeBytes || 0), 0);
    count.textContent = state.loaded
      ? `${list.length} snapshot${list.length === 1 ? '' : 's'}${total ? ' · ' + fmtBytes(total) : ''}` : 'Loading…';
    const holds = holdsNow(d);
    const ok = settled(d) && holds;
    takeBtn.disabled = !ok;
    hint.textContent = ok ? `A snapshot now holds ${holds.short}.`
      : `Snapshots wait for a running or stopped desktop (it is ${d.state}${d.desiredState !== d.state ? ' → ' + d.desiredState : ''}).`;
    renderProgress();
  }

  function upsert(s) {
    const i = state.list.findIndex((x) => x.id === s.id);
    if (i < 0) state.list.push(s);
    else state.list[i] = { ...state.list[i], ...s };
  }

  async function refresh() {
    const my = ++seq;
    stale = false;
    try {
      const r = await get(base);
      if (my !== seq || destroyed) return;
      state.list = r.snapshots;
      state.loaded = true;
      showMessage('');
      render();
    } catch (e) {
      if (my !== seq || destroyed) return;
      showMessage('The snapshots could not be loaded: ' + errorText(e), 'error');
    }
  }

  // Events change the row at once; a fetch afterwards fills in what they
  // do not carry (a name, the kind). Fetches already under way are
  // superseded: their answer may predate the event.
  function refetchSoon() {
    seq++;
    if (!visible) {
      stale = true;
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, REFETCH_MS);
  }

  function event(ev) {
    if (!EVENTS.includes(ev.type) || !ev.snapshotId) return;
    const s = state.list.find((x) => x.id === ev.snapshotId);
    if (ev.type === 'desktop.snapshot.deleted' && ev.state === 'deleted') {
      state.list = state.list.filter((x) => x.id !== ev.snapshotId);
    } else if (s) {
      s.state = ev.state || s.state;
      if (ev.reason !== undefined) s.reason = ev.reason;
      if (ev.sizeBytes !== undefined) s.sizeBytes = ev.sizeBytes;
    }
    const r = state.restore;
    if (ev.type === 'desktop.snapshot.restored' && r && !r.done && r.sid === ev.snapshotId) {
      r.restored = true;
      r.reason = ev.reason || null;
      followRestore();
    }
    if (state.loaded) render();
    refetchSoon();
  }

  // ---- take ----

  // A form dialog with a name field: submit is the primary action, whose
  // check(name) returns an error text or null once done.
  function nameDialog({ title, value, intro, label, check }) {
    const input = h('input', {
      type: 'text', name: 'name', required: true, maxlength: NAME_MAX, autocomplete: 'off', spellcheck: false, value,
    });
    const err = h('p', { class: 'error', role: 'alert', hidden: true });
    const form = h('form', { class: 'dv-dialog-form dv-snap-form' },
      h('label', null, 'Name', input),
      h('p', { class: 'muted dv-small' }, `Letters, digits, ".", "_" and "-"; at most ${NAME_MAX}.`),
      intro, err);
    let busy = false;
    const submit = async () => {
      if (busy) return false;
      const name = input.value.trim();
      const bad = badName(name);
      err.hidden = true;
      if (bad) {
        err.textContent = bad;
        err.hidden = false;
        return false;
      }
      busy = true;
      const problem = await check(name);
      busy = false;
      if (problem) {
        err.textContent = problem;
        err.hidden = false;
        input.focus();
        return false;
      }
      return true;
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      form.closest('dialog').querySelector('.actions button.primary').click();
    });
    setTimeout(() => { input.focus(); input.select(); }, 0);
    return dialog({
      title, body: form,
      actions: [{ label: 'Cancel', value: false }, { label, value: true, class: 'primary', check: submit }],
    });
  }

  async function take() {
    const d = env.desktop();
    const holds = holdsNow(d);
    if (!holds) return;
    let made = null;
    const ok = await nameDialog({
      title: `Snapshot ${d.name}`, value: defaultName(), label: 'Take snapshot',
      intro: h('p', null, `The snapshot holds ${holds.long}. Restored, or as a new desktop, ${resumes(holds.kind)}.`),
      check: async (name) => {
        try {
          made = await post(base, { name });
          return null;
        } catch (e) {
          return errorText(e);
        }
      },
    });
    if (!ok || !made || destroyed) return;
    upsert(made);
    render();
    refetchSoon();
    toast(`Taking snapshot ${made.name} of ${d.name}`, 'ok');
  }

  // ---- restore ----

  // The restore followed until the desktop is back: running again when it
  // ran (after going through other states), stopped when it was stopped.
  function followRestore() {
    const r = state.restore;
    const d = env.desktop();
    if (!r || r.done) return;
    if (r.steps[r.steps.length - 1] !== d.state) r.steps.push(d.state);
    if (r.restored && r.reason) r.failed = r.reason;
    else if (d.state === 'error') r.failed = 'the desktop went to error' + (d.reason ? ': ' + d.reason : '');
    else if (GONE.includes(d.state)) r.failed = 'the desktop is being destroyed';
    const back = r.from === 'running' ? d.state === 'running' && r.steps.length > 2 : d.state === r.from;
    if (r.failed || (r.restored && back)) {
      r.done = true;
      r.ms = Date.now() - r.started;
      if (r.failed) toast(`${r.name} was not restored: ${r.failed}`, 'error');
      else toast(`${d.name} is back at ${r.name}`, 'ok');
    }
    renderProgress();
  }

  function renderProgress() {
    const r = state.restore;
    progress.hidden = !r;
    if (!r) return;
    progress.dataset.state = r.failed ? 'failed' : r.done ? 'done' : 'working';
    const steps = h('ol', { class: 'dv-snap-steps', 'aria-label': 'The desktop\'s states' },
      r.steps.map((s, i) => h('li', { dataset: { state: s } }, i === r.steps.length - 1 ? stateBadge(s) : s)));
    let text;
    if (r.failed) text = `Restoring “${r.name}” failed: ${r.failed}.`;
    else if (!r.done) text = `Restoring “${r.name}”…`;
    else if (r.from === 'running') text = `Restored “${r.name}”: the desktop runs again (${(r.ms / 1000).toFixed(1)} s).`;
    else text = `Restored “${r.name}”: the desktop stays stopped and its next start resumes the snapshot.`;
    fill(progress, h('span', { class: 'dv-snap-progress-text' }, text), steps,
      r.done ? h('button', {
        type: 'button', class: 'small link', 'aria-label': 'Dismiss',
        onclick: () => { state.restore = null; renderProgress(); },
      }, 'Dismiss') : null);
  }

  async function restore(s) {
    const d = env.desktop();
    const running = d.state === 'running';
    const body = h('div', { class: 'dv-dialog-form' },
      h('p', null, h('strong', null, `The current state of ${d.name}'s disk is lost`),
        `: files written and programs started since “${s.name}” was taken (${fmtTime(s.createdAt)}) are gone for good.`),
      h('p', null, running
        ? `The desktop stops now; ${resumes(s.kind)}.`
        : `The desktop stays stopped; at its next start ${resumes(s.kind)}.`),
      h('p', { class: 'muted' }, 'The snapshot itself is kept: you can restore it again.'));
    const v = await dialog({
      title: `Restore ${d.name} to “${s.name}”?`, body,
      actions: [{ label: 'Cancel', value: null }, { label: 'Restore', value: 'restore', class: 'danger' }],
    });
    if (v !== 'restore' || destroyed) return;
    // followed from now: its events may come before the answer
    state.restore = {
      sid: s.id, name: s.name, from: env.desktop().state, steps: [env.desktop().state],
      restored: false, reason: null, done: false, failed: null, started: Date.now(),
    };
    renderProgress();
    try {
      upsert(await post(`${base}/${encodeURIComponent(s.id)}/restore`));
      render();
    } catch (e) {
      state.restore = null;
      renderProgress();
      toast(`${s.name} was not restored: ${errorText(e)}`, 'error');
    }
  }

  // ---- delete ----

  async function remove(s) {
    const body = h('div', { class: 'dv-dialog-form' },
      h('p', null, `The snapshot “${s.name}” (${kindText(s.kind).toLowerCase()}${s.sizeBytes ? ', ' + fmtBytes(s.sizeBytes) : ''}) ` +
        'and its files are deleted. This cannot be undone.'),
      h('p', { class: 'muted' }, 'Desktops made from it keep their own copy.'));
    const v = await dialog({
      title: `Delete snapshot “${s.name}”?`, body,
      actions: [{ label: 'Cancel', value: null }, { label: 'Delete', value: 'delete', class: 'danger' }],
    });
    if (v !== 'delete' || destroyed) return;
    try {
      upsert(await del(`${base}/${encodeURIComponent(s.id)}`));
      render();
      toast(`Deleting snapshot ${s.name}`, 'ok');
    } catch (e) {
      toast(`${s.name} was not deleted: ${errorText(e)}`, 'error');
    }
  }

  // ---- a new desktop from a snapshot ----

  async function fork(s) {
    const d = env.desktop();
    let made = null;
    const ok = await nameDialog({
      title: `New desktop from “${s.name}”`, value: `${d.name}-${s.name}`.slice(0, NAME_MAX), label: 'Create desktop',
      intro: h('p', null, `A copy of the snapshot with an identity of its own (host name, machine-id, SSH host keys): ` +
        `${resumes(s.kind)}. It has the snapshot's tier (${s.tier}) and image (${s.image}), and counts toward the ` +
        'workspace\'s plan limit.'),
      check: async (name) => {
        try {
          made = await post('/api/desktops', { name, fromSnapshot: s.id, workspaceId: d.workspaceId });
          return null;
        } catch (e) {
          return errorText(e);
        }
      },
    });
    if (!ok || !made) return;
    toast(`Creating ${made.name} from ${s.name}`, 'ok');
    if (!destroyed) location.hash = '#/desktops/' + encodeURIComponent(made.id);
  }

  // ---- the panel's life ----

  function update() {
    if (state.restore && !state.restore.done) followRestore();
    if (state.loaded) render();
  }

  function shown() {
    visible = true;
    render();
    if (stale || !state.loaded) refresh();
  }

  function hidden() {
    visible = false;
  }

  function destroy() {
    destroyed = true;
    seq++;
    clearTimeout(timer);
  }

  return { el, state, update, event, shown, hidden, destroy };
}
