// The desktop view, #/desktops/ID and #/desktops/ID/TAB: a header with the
// desktop's state (live), its size, uptime, agent and actions; the screen
// (noVNC) and the chat with its agent side by side on a wide window; a dock
// below with the terminal, files, metrics, events & audit, and snapshots
// tabs. Stacked on a narrower window. The panels live in views/desktop/*.js;
// this module loads the desktop, feeds them its state and events, and
// cleans up.
import { get, post, del } from '../api.js';
import { ctx } from '../context.js';
import * as events from '../events.js';
import { h, fill, toast, confirm, dialog, stateBadge, errorText, fmtDuration, fmtTime, debounce } from '../ui.js';
import { createScreen } from './desktop/screen.js';
import { createTerminal } from './desktop/terminal.js';
import { createChat } from './desktop/chat.js';
import { createFiles } from './desktop/files.js';
import { createMetrics } from './desktop/metrics.js';
import { createActivity } from './desktop/activity.js';
import { createSnapshots } from './desktop/snapshots.js';

const TABS = [
  ['terminal', 'Terminal'],
  ['files', 'Files'],
  ['metrics', 'Metrics'],
  ['activity', 'Events & audit'],
  ['snapshots', 'Snapshots'],
];
const GONE = ['destroying', 'destroyed'];

function gb(mb) {
  return (mb / 1024).toFixed(mb % 1024 ? 1 : 0) + ' GB';
}

export function mount(el, params) {
  const id = params.id;
  const people = new Map(); // userId -> email
  const cleanups = [];
  const title = document.title;
  let d = null;
  let dead = false;
  let ready = false; // the panels are built
  let queued = [];
  let panels = [];
  let busy = false;

  const env = {
    id,
    desktop: () => d,
    meId: () => ctx.me && ctx.me.id,
    members: () => [...people].map(([userId, email]) => ({ userId, email })),
    who: (userId) => {
      if (!userId) return null;
      if (ctx.me && userId === ctx.me.id) return ctx.me.email;
      return people.get(userId) || userId;
    },
  };

  // Events: the shared stream of the workspace (already live, so nothing is
  // missed while the desktop loads); a desktop of another workspace gets a
  // stream of its own once loaded.
  const onEvent = (ev) => {
    if (dead || !ev || ev.desktopId !== id) return;
    if (!ready) queued.push(ev); else dispatch(ev);
  };
  cleanups.push(events.on('*', onEvent));

  fill(el, h('div', { class: 'page' }, h('p', { class: 'muted' }, 'Loading the desktop…')));

  // ---- header ----
  const nameEl = h('h1');
  const badgeSlot = h('span');
  const desired = h('span', { class: 'muted dv-desired' });
  const metaTier = h('span');
  const metaImage = h('span');
  const metaScreen = h('span');
  const metaUp = h('span', { class: 'dv-uptime' });
  const metaAgent = h('span', { class: 'dv-agent' });
  const reason = h('p', { class: 'error dv-reason', role: 'alert', hidden: true });
  const btn = (label, cls, onclick, titleText) => h('button', { type: 'button', class: cls, onclick, title: titleText }, label);
  const startBtn = btn('Start', 'primary', () => act('start'), 'Boot the desktop (or resume it where it was)');
  const stopBtn = btn('Stop', '', stopDialog, 'Hibernate or shut down the desktop');
  const restartBtn = btn('Restart', '', restart, 'Stop and start the desktop');
  const destroyBtn = btn('Destroy', 'danger', destroy, 'Delete the desktop, its VM and its disk');
  const popScreen = h('a', { class: 'dv-link-btn', href: `/desktops/${encodeURIComponent(id)}/screen`, target: '_blank', rel: 'noopener', title: 'Open the screen in its own window' }, 'Screen ↗');
  const popTerm = h('a', { class: 'dv-link-btn', href: `/desktops/${encodeURIComponent(id)}/terminal`, target: '_blank', rel: 'noopener', title: 'Open the terminal in its own window' }, 'Terminal ↗');

  function renderHeader() {
    nameEl.textContent = d.name;
    fill(badgeSlot, stateBadge(d.state));
    const want = d.desiredState;
    desired.textContent = want && want !== d.state && !(want === 'destroyed' && GONE.includes(d.state)) ? '→ ' + want : '';
    const tier = (ctx.tiers || []).find((t) => t.id === d.tier);
    metaTier.textContent = `${tier && tier.name ? tier.name : d.tier} · ${d.vcpus} vCPU · ${gb(d.memoryMb)} · ${d.diskGb} GB disk`;
    metaImage.textContent = `${d.image} image${d.imageVersion ? ' ' + d.imageVersion : ''}`;
    metaScreen.textContent = d.screen ? `${d.screen.width}×${d.screen.height}` : '';
    metaScreen.hidden = !d.screen;
    const a = d.agent || { status: 'idle' };
    fill(metaAgent, 'agent ', h('strong', null, a.status.replace('_', ' ')),
      a.task && a.status !== 'idle' ? [': ', h('span', { title: a.task }, a.task.replace(/\s+/g, ' '))] : null);
    reason.textContent = d.state === 'error' && d.reason ? 'Error: ' + d.reason : '';
    reason.hidden = !reason.textContent;
    const s = d.state;
    startBtn.hidden = !(s === 'stopped' || s === 'error');
    stopBtn.hidden = !['running', 'booting', 'provisioning'].includes(s);
    restartBtn.hidden = s !== 'running';
    destroyBtn.hidden = GONE.includes(s);
    for (const b of [startBtn, stopBtn, restartBtn, destroyBtn]) b.disabled = busy;
    tickHeader(Date.now());
  }

  function tickHeader(now) {
    if (!d) return;
    const since = new Date(d.stateChangedAt).getTime();
    metaUp.textContent = d.state === 'running'
      ? 'up ' + fmtDuration(now - since)
      : `${d.state} for ${fmtDuration(now - since)}`;
    metaUp.title = 'Since ' + fmtTime(d.stateChangedAt);
  }

  // ---- actions ----
  async function act(what, body) {
    busy = true;
    renderHeader();
    try {
      await post(`/api/desktops/${encodeURIComponent(id)}/${what}`, body);
      refetch(); // the state itself comes with the events
      toast({ start: 'Starting ', stop: 'Stopping ', restart: 'Restarting ' }[what] + d.name, 'ok');
    } catch (e) {
      toast(`${d.name}: ${what} refused: ${errorText(e)}`, 'error');
    } finally {
      busy = false;
      if (!dead) renderHeader();
    }
  }

  async function stopDialog() {
    const mode = (value, label, text, checked) => h('label', { class: 'inline dv-choice' },
      h('input', { type: 'radio', name: 'dv-stop-mode', value, checked }),
      h('span', null, h('strong', null, label), h('br'), h('span', { class: 'muted' }, text)));
    const form = h('form', { class: 'dv-dialog-form' },
      h('fieldset', null, h('legend', null, 'How'),
        mode('hibernate', 'Hibernate', 'Memory and processes are saved: the next start resumes every window where it was.', true),
        mode('shutdown', 'Shut down', 'A graceful power-off: the next start boots afresh; unsaved work is lost.', false)));
    const v = await dialog({
      title: `Stop ${d.name}?`, body: form,
      actions: [{ label: 'Cancel', value: null }, { label: 'Stop', value: 'stop', class: 'primary' }],
    });
    if (v !== 'stop') return;
    act('stop', { mode: form.querySelector('input[name="dv-stop-mode"]:checked').value });
  }

  async function restart() {
    if (await confirm(`Restart ${d.name}?`, 'The desktop stops and starts again; unsaved work in it is lost.', 'Restart'))
      act('restart');
  }

  async function destroy() {
    const name = d.name;
    if (!(await confirm(`Destroy ${name}?`,
      `The desktop "${name}", its VM and its disk are deleted for good. Files not saved elsewhere are lost.`, 'Destroy', true))) return;
    busy = true;
    renderHeader();
    try {
      await del(`/api/desktops/${encodeURIComponent(id)}`);
      toast(`Destroying ${name}`, 'ok');
      if (!dead) location.hash = '#/';
    } catch (e) {
      toast(`${name} was not destroyed: ${errorText(e)}`, 'error');
      busy = false;
      if (!dead) renderHeader();
    }
  }

  // ---- state ----
  function setDesktop(next) {
    d = next;
    renderHeader();
    for (const p of panels) if (p.update) p.update(d);
    document.title = `${d.name} · Mission Control`;
  }

  const refetch = debounce(async () => {
    if (dead || GONE.includes(d.state)) return;
    try {
      const r = await get(`/api/desktops/${encodeURIComponent(id)}`);
      // An event newer than this answer may have come meanwhile: keep its state.
      if (!dead && new Date(r.stateChangedAt) >= new Date(d.stateChangedAt)) setDesktop(r);
      else if (!dead) setDesktop({ ...r, state: d.state, desiredState: d.desiredState, reason: d.reason, stateChangedAt: d.stateChangedAt });
    } catch (e) {
      if (dead) return;
      if (e.status === 404) setDesktop({ ...d, state: 'destroyed', desiredState: 'destroyed' });
      else toast('The desktop could not be refreshed: ' + errorText(e), 'error');
    }
  }, 400);

  function dispatch(ev) {
    switch (ev.type) {
      case 'desktop.state':
        setDesktop({
          ...d, state: ev.state, desiredState: ev.desiredState || d.desiredState,
          reason: ev.reason === undefined ? d.reason : ev.reason, stateChangedAt: ev.createdAt || d.stateChangedAt,
        });
        refetch();
        break;
      case 'agent.status':
        d = { ...d, agent: ev.agent };
        renderHeader();
        break;
      default:
        if (ev.type.startsWith('desktop.')) refetch();
    }
    for (const p of panels) if (p.event) p.event(ev);
  }

  // ---- layout ----
  function build() {
    const screen = createScreen(env);
    const terminal = createTerminal(env);
    const chat = createChat(env);
    const files = createFiles(env);
    const metrics = createMetrics(env);
    const activity = createActivity(env);
    const snapshots = createSnapshots(env);
    const byTab = { terminal, files, metrics, activity, snapshots };
    panels = [screen, terminal, chat, files, metrics, activity, snapshots];
    window.bureauDesktopView = {
      id, screen: screen.state, terminal: terminal.state, chat: chat.state,
      files: files.state, metrics: metrics.state, activity: activity.state, snapshots: snapshots.state,
    };

    const tabButtons = [];
    const tabPanels = [];
    let current = null;
    const select = (name, focus) => {
      if (current === name) return;
      const prev = current && byTab[current];
      if (prev && prev.hidden) prev.hidden();
      current = name;
      TABS.forEach(([n], i) => {
        const on = n === name;
        tabButtons[i].setAttribute('aria-selected', String(on));
        tabButtons[i].tabIndex = on ? 0 : -1;
        tabPanels[i].hidden = !on;
      });
      grid.classList.toggle('dv-tall-dock', name !== 'terminal');
      if (focus) tabButtons[TABS.findIndex(([n]) => n === name)].focus();
      if (byTab[name].shown) byTab[name].shown();
      const want = `#/desktops/${encodeURIComponent(id)}/${name}`;
      if (location.hash !== want) history.replaceState(null, '', want);
    };
    TABS.forEach(([name, label]) => {
      tabButtons.push(h('button', {
        type: 'button', role: 'tab', id: 'dv-tab-' + name, 'aria-controls': 'dv-panel-' + name,
        dataset: { tab: name }, onclick: () => select(name),
      }, label));
      tabPanels.push(h('div', {
        role: 'tabpanel', id: 'dv-panel-' + name, 'aria-labelledby': 'dv-tab-' + name, class: 'dv-tabpanel', hidden: true,
      }, byTab[name].el));
    });
    const tablist = h('div', { class: 'tabs dv-tabs', role: 'tablist', 'aria-label': 'Desktop tools' }, tabButtons);
    tablist.addEventListener('keydown', (e) => {
      const i = TABS.findIndex(([n]) => n === current);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      select(TABS[(to + TABS.length) % TABS.length][0], true);
    });
    const dock = h('section', { class: 'card dv-panel dv-dock', 'aria-label': 'Desktop tools' }, tablist, tabPanels);

    const grid = h('div', { class: 'dv-grid' }, screen.el, chat.el, dock);
    const page = h('div', { class: 'page dv' },
      h('header', { class: 'page-head dv-head' },
        h('div', { class: 'dv-title' },
          h('div', { class: 'row' }, nameEl, badgeSlot, desired),
          h('div', { class: 'dv-meta' }, metaTier, metaImage, metaScreen, metaUp, metaAgent)),
        h('div', { class: 'row dv-actions' }, startBtn, stopBtn, restartBtn, destroyBtn,
          h('span', { class: 'dv-sep', 'aria-hidden': 'true' }), popScreen, popTerm)),
      reason,
      grid);
    if (d.screen) page.style.setProperty('--dv-ratio', `${d.screen.width} / ${d.screen.height}`);
    fill(el, page);
    setDesktop(d);
    const first = TABS.some(([n]) => n === params.tab) ? params.tab : 'terminal';
    select(first);

    const timer = setInterval(() => {
      const now = Date.now();
      tickHeader(now);
      chat.tick(now);
    }, 1000);
    cleanups.push(() => clearInterval(timer));
  }

  async function load() {
    try {
      d = await get(`/api/desktops/${encodeURIComponent(id)}`);
    } catch (e) {
      if (dead) return;
      fill(el, h('div', { class: 'page' },
        h('h1', null, e.status === 404 ? 'Desktop not found' : 'The desktop could not be loaded'),
        h('p', { class: e.status === 404 ? 'muted' : 'error' }, e.status === 404
          ? `There is no desktop ${id} in your workspaces (it may have been destroyed).` : errorText(e)),
        h('p', null, h('a', { href: '#/' }, 'Back to the fleet'))));
      return;
    }
    try {
      const r = await get(`/api/workspaces/${encodeURIComponent(d.workspaceId)}/members`);
      for (const m of r.members) people.set(m.userId, m.email);
    } catch (e) {
      if (!dead) toast('Members could not be loaded (names show as ids): ' + errorText(e), 'error');
    }
    if (dead) return;
    if (!ctx.workspace || ctx.workspace.id !== d.workspaceId)
      cleanups.push(events.stream({ desktopId: id }, events.TYPES, onEvent));
    build();
    ready = true;
    const early = queued;
    queued = [];
    early.forEach(dispatch);
  }

  load();
  return () => {
    dead = true;
    for (const c of cleanups) c();
    for (const p of panels) if (p.destroy) p.destroy();
    panels = [];
    delete window.bureauDesktopView;
    document.title = title;
  };
}
