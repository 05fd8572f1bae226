// Fleet view (#/): every desktop of the current workspace, kept live by the
// event stream (state, uptime, boot path, the agent's task), with CPU and
// memory sparklines and a screen thumbnail polled only for running
// desktops whose row is on screen. Filters, search, selection with bulk
// start/stop/restart/destroy, the create dialog with a launch panel that
// follows a new desktop until it is ready, and the plan's usage and cost.
import { request, get, post, qs } from '../api.js';
import { ctx } from '../context.js';
import * as events from '../events.js';
import {
  h, fill, fmtAgo, fmtDuration, fmtBytes, fmtMoney, toast, dialog, confirm, stateBadge, empty,
  sparkline, errorText, debounce,
} from '../ui.js';

const STATES = ['provisioning', 'booting', 'running', 'stopping', 'stopped', 'error', 'destroying'];
const SCREENS = [[1024, 768], [1280, 800], [1280, 1024], [1440, 900], [1600, 900], [1920, 1080]];
const PROVIDERS = [['', 'None'], ['anthropic', 'Anthropic'], ['openai', 'OpenAI'], ['openrouter', 'OpenRouter']];
const BOOT_PATHS = {
  cold: 'cold boot', template: 'warm template', snapshot: 'from a snapshot', hibernation: 'resumed from hibernation',
};
const AGENT_STATUS = { working: 'info', waiting_approval: 'warn', error: 'bad' };
const LAUNCH_STEPS = ['provisioning', 'booting', 'running'];
const BULK = [
  ['start', 'Start', 'Starting'], ['stop', 'Stop', 'Stopping'],
  ['restart', 'Restart', 'Restarting'], ['destroy', 'Destroy', 'Destroying'],
];

const METRICS_EVERY = 10000; // ms between metrics polls (the agent samples every 5 s)
const METRICS_FIRST = 5000;  // ... until a sparkline has two points
const SHOT_EVERY = 12000;    // ms between thumbnails of one desktop
const SHOT_WIDTH_GUESS = 320; // px asked for before the thumbnail is laid out
const SHOT_WIDTH_MIN = 16, SHOT_WIDTH_MAX = 4096; // what ?width= accepts
const USAGE_EVERY = 60000;   // ms between usage refreshes while nothing changes
const KEEP = 60;             // samples a sparkline shows (5 minutes at 5 s)

const time = (iso) => (iso ? Date.parse(iso) : 0);
const plural = (n, one, many) => n + ' ' + (n === 1 ? one : many || one + 's');

export function mount(el) {
  if (!ctx.workspace) {
    fill(el, h('div', { class: 'page' }, h('h1', null, 'Fleet'),
      empty('You are not a member of any workspace yet. Create one in Settings.')));
    return () => {};
  }
  const fleet = new Fleet(el, ctx.workspace);
  return () => fleet.destroy();
}

class Fleet {
  constructor(el, ws) {
    this.ws = ws;
    this.rows = new Map();      // desktop id -> row (see addRow)
    this.selected = new Set();
    this.launches = new Map();  // desktop id -> launch panel entry
    this.filter = { state: '', tier: '', text: '' };
    this.loaded = false;
    this.pending = [];          // events that came before the list
    this.fetching = new Set();
    this.alive = true;
    this.busy = false;
    this.abort = new AbortController();
    this.timers = [];
    this.offs = [];
    this.io = new IntersectionObserver((entries) => this.onVisible(entries));
    this.build(el);
    this.listen();
    this.load();
  }

  // ---- the page ----

  build(el) {
    const stat = (label) => {
      const value = h('div', { class: 'value' }, '—');
      const sub = h('div', { class: 'sub muted' });
      return { value, sub, el: h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), value, sub) };
    };
    this.stats = { used: stat('Desktops in plan'), running: stat('Running now'), hours: stat('Hours this month'), cost: stat('Cost this month') };
    this.meter = h('div', { class: 'fleet-meter', role: 'presentation' }, h('span'));
    this.stats.used.el.append(this.meter);

    this.chips = new Map();
    const chipBox = h('div', { class: 'fleet-chips', role: 'group', 'aria-label': 'Filter by state' });
    for (const s of [''].concat(STATES)) {
      const count = h('span', { class: 'n' }, '0');
      const b = h('button', {
        type: 'button', class: 'chip', 'aria-pressed': s === '' ? 'true' : 'false', dataset: { state: s || 'all' },
        onclick: () => this.setFilter({ state: s }),
      }, s || 'all', ' ', count);
      this.chips.set(s, { b, count });
      chipBox.append(b);
    }
    this.search = h('input', {
      type: 'search', placeholder: 'Name or id', 'aria-label': 'Search desktops by name or id',
      oninput: (e) => this.setFilter({ text: e.target.value.trim().toLowerCase() }),
    });
    this.tierSel = h('select', { 'aria-label': 'Filter by tier', onchange: (e) => this.setFilter({ tier: e.target.value }) },
      h('option', { value: '' }, 'All tiers'), ctx.tiers.map((t) => h('option', { value: t.id }, t.name)));

    this.selCount = h('span', { class: 'fleet-selcount' }, 'None selected');
    this.bulkButtons = BULK.map(([action, label]) => h('button', {
      type: 'button', class: 'small' + (action === 'destroy' ? ' danger' : ''), disabled: true,
      dataset: { action }, onclick: () => this.bulk(action),
    }, label));
    this.clearSel = h('button', { type: 'button', class: 'link', hidden: true, onclick: () => this.selectOnly([]) }, 'Clear selection');
    this.bulkResult = h('div', { class: 'fleet-bulk-result card', hidden: true });
    this.launchBox = h('section', { class: 'fleet-launches', 'aria-label': 'Desktops being created', hidden: true });

    this.all = h('input', { type: 'checkbox', 'aria-label': 'Select all shown desktops', onchange: (e) => this.selectAll(e.target.checked) });
    this.tbody = h('tbody');
    this.table = h('table', { class: 'list fleet-table', hidden: true },
      h('thead', null, h('tr', null,
        h('th', { class: 'sel' }, this.all), h('th', { class: 'thumb' }, 'Screen'), h('th', null, 'Desktop'),
        h('th', null, 'Tier · image'), h('th', null, 'State'), h('th', null, 'Agent'),
        h('th', null, 'CPU'), h('th', null, 'Memory'))),
      this.tbody);
    this.emptyBox = h('div', { class: 'card fleet-empty', hidden: true });
    this.status = h('p', { class: 'muted', role: 'status' }, 'Loading desktops…');

    fill(el, h('div', { class: 'page fleet' },
      h('div', { class: 'page-head' }, h('h1', null, 'Fleet'), h('span', { class: 'muted' }, this.ws.name),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'primary', id: 'new-desktop', onclick: () => this.openCreate() }, 'New desktop')),
      h('div', { class: 'cards fleet-stats' }, Object.values(this.stats).map((s) => s.el)),
      this.launchBox,
      h('div', { class: 'fleet-toolbar' }, chipBox, h('span', { class: 'spacer' }), this.search, this.tierSel),
      h('div', { class: 'fleet-bulkbar', role: 'toolbar', 'aria-label': 'Actions on the selected desktops' },
        this.selCount, this.bulkButtons, this.clearSel),
      this.bulkResult,
      this.status, h('div', { class: 'fleet-tablewrap' }, this.table), this.emptyBox));
  }

  listen() {
    const on = (type, fn) => this.offs.push(events.on(type, (ev) => {
      if (ev.workspaceId !== this.ws.id) return;
      if (this.failed) return;
      if (!this.loaded) this.pending.push([fn, ev]);
      else fn.call(this, ev);
    }));
    on('desktop.created', this.onCreated);
    on('desktop.state', this.onState);
    on('desktop.desired', this.onDesired);
    on('desktop.boot', this.onBoot);
    on('desktop.setup', this.onSetup);
    on('desktop.hibernated', this.onHibernated);
    on('agent.status', this.onAgent);

    this.every(1000, () => this.tick());
    this.every(2500, () => this.pollMetrics());
    this.every(SHOT_EVERY / 4, () => this.pollShots());
    this.every(USAGE_EVERY, () => this.loadUsage());
    this.usageSoon = debounce(() => this.loadUsage(), 1500);
    this.onVisibility = () => {
      if (document.hidden) return;
      this.pollMetrics();
      this.pollShots();
    };
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  every(ms, fn) {
    this.timers.push(setInterval(() => { if (!document.hidden && this.alive) fn(); }, ms));
  }

  destroy() {
    this.alive = false;
    this.abort.abort();
    this.offs.forEach((off) => off());
    this.timers.forEach(clearInterval);
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.io.disconnect();
    for (const row of this.rows.values()) if (row.shotUrl) URL.revokeObjectURL(row.shotUrl);
    const d = this.createForm && this.createForm.closest('dialog');
    if (d && d.open) d.close();
  }

  async load() {
    try {
      const r = await get('/api/desktops' + qs({ workspaceId: this.ws.id }), { signal: this.abort.signal });
      if (!this.alive) return;
      for (const d of r.desktops) if (d.state !== 'destroyed') this.upsert(d);
      this.loaded = true;
      for (const [fn, ev] of this.pending.splice(0)) fn.call(this, ev);
      this.status.hidden = true;
      this.refreshAll();
      this.pollShots();
      this.pollMetrics();
    } catch (e) {
      if (e.name === 'AbortError') return;
      this.failed = true;
      this.pending = [];
      this.status.className = 'error';
      fill(this.status, 'The desktops could not be loaded: ' + errorText(e) + ' ',
        h('button', { type: 'button', class: 'small', onclick: () => {
          this.failed = false;
          this.status.className = 'muted';
          fill(this.status, 'Loading desktops…');
          this.load();
        } }, 'Retry'));
    }
    this.loadUsage();
  }

  async loadUsage() {
    try {
      const u = await get('/api/usage' + qs({ workspaceId: this.ws.id }), { signal: this.abort.signal });
      if (!this.alive) return;
      this.stats.hours.value.textContent = u.totalHours.toFixed(u.totalHours < 10 ? 2 : 1) + ' h';
      this.stats.cost.value.textContent = fmtMoney(u.totalCost, u.currency);
      const used = u.tiers.filter((t) => t.hours > 0);
      const tierName = (id) => (ctx.tiers.find((t) => t.id === id) || { name: id }).name;
      this.stats.hours.sub.textContent = used.length
        ? used.map((t) => `${tierName(t.tier)} ${t.hours.toFixed(2)} h`).join(' · ') : 'No running hours yet';
      this.stats.cost.sub.textContent = used.length
        ? used.map((t) => `${tierName(t.tier)} ${fmtMoney(t.cost, u.currency)}`).join(' · ')
        : 'Since ' + new Date(u.from).toLocaleDateString();
    } catch (e) {
      if (e.name === 'AbortError') return;
      this.stats.hours.sub.textContent = 'Usage unavailable: ' + errorText(e);
      this.stats.hours.sub.classList.add('error');
    }
  }

  // ---- rows ----

  // Adds the desktop's row, or brings it up to date. A copy older than the
  // row's state (a create answer after its events, say) keeps that state.
  upsert(d) {
    if (d.state === 'destroyed') { this.removeRow(d.id); return; }
    let row = this.rows.get(d.id);
    if (!row) {
      row = this.addRow(d);
    } else {
      const old = row.d;
      row.d = { ...old, ...d };
      if (time(old.stateChangedAt) > time(d.stateChangedAt)) {
        for (const k of ['state', 'desiredState', 'reason', 'stateChangedAt', 'readyMs']) row.d[k] = old[k];
      }
    }
    if (row.d.metrics && row.d.state === 'running' && !row.lastAt) this.addSamples(row, [row.d.metrics]);
    this.renderRow(row);
    this.updateLaunch(row);
    this.refreshAll();
    return row;
  }

  addRow(d) {
    const row = { d, cpu: [], mem: [], lastAt: null, visible: false, shotUrl: null, shotAt: 0, shotBusy: false, note: null };
    row.check = h('input', { type: 'checkbox', 'aria-label': 'Select ' + d.name, onchange: (e) => this.select(d.id, e.target.checked) });
    row.link = h('a', { href: '#/desktops/' + encodeURIComponent(d.id), class: 'fleet-name' }, d.name);
    row.thumb = h('a', { href: '#/desktops/' + encodeURIComponent(d.id), tabindex: '-1', class: 'fleet-thumb', 'aria-hidden': 'true' });
    row.img = h('img', { class: 'shot', alt: '' });
    row.img.addEventListener('load', () => {
      if (row.oldUrl) URL.revokeObjectURL(row.oldUrl);
      row.oldUrl = null;
    });
    row.placeholder = h('div', { class: 'shot fleet-noshot' });
    row.tierCell = h('td', { class: 'tier' });
    row.stateCell = h('td', { class: 'state' });
    row.agentCell = h('td', { class: 'agent' });
    row.cpuCell = h('td', { class: 'metric cpu' });
    row.memCell = h('td', { class: 'metric mem' });
    row.tr = h('tr', { dataset: { id: d.id } },
      h('td', { class: 'sel' }, row.check),
      h('td', { class: 'thumb' }, row.thumb),
      h('td', { class: 'name' }, row.link, h('div', { class: 'sub mono' }, d.id)),
      row.tierCell, row.stateCell, row.agentCell, row.cpuCell, row.memCell);
    const after = [...this.tbody.children].find((tr) => {
      const other = this.rows.get(tr.dataset.id);
      return other && other.d.name.localeCompare(d.name) > 0;
    });
    this.tbody.insertBefore(row.tr, after || null);
    this.rows.set(d.id, row);
    this.io.observe(row.tr);
    return row;
  }

  removeRow(id) {
    const row = this.rows.get(id);
    if (!row) return;
    this.io.unobserve(row.tr);
    row.tr.remove();
    if (row.shotUrl) URL.revokeObjectURL(row.shotUrl);
    this.rows.delete(id);
    this.selected.delete(id);
    const l = this.launches.get(id);
    if (l) { l.el.remove(); this.launches.delete(id); this.launchBox.hidden = this.launches.size === 0; }
    this.refreshAll();
    this.usageSoon();
  }

  renderRow(row) {
    const d = row.d;
    row.link.textContent = d.name;
    row.check.setAttribute('aria-label', 'Select ' + d.name);
    row.thumb.title = 'Open ' + d.name;
    const tier = ctx.tiers.find((t) => t.id === d.tier);
    fill(row.tierCell, h('div', null, tier ? tier.name : d.tier),
      h('div', { class: 'sub muted' }, d.image + (d.screen ? ` · ${d.screen.width}×${d.screen.height}` : '')));
    this.renderState(row);
    this.renderAgent(row);
    this.renderMetrics(row);
    this.renderThumb(row);
    row.tr.hidden = !this.matches(row);
  }

  renderState(row) {
    const d = row.d;
    const sub = h('div', { class: 'sub muted' });
    row.uptime = null;
    if (d.state === 'running') {
      row.uptime = h('span', null, this.uptime(d));
      sub.append(row.uptime);
      if (d.bootPath) sub.append(' · ' + (BOOT_PATHS[d.bootPath] || d.bootPath));
    } else if (d.state === 'booting' || d.state === 'provisioning') {
      sub.append(d.bootPath ? BOOT_PATHS[d.bootPath] || d.bootPath : 'preparing');
    } else if (d.state === 'stopped') {
      sub.append((d.saved ? 'hibernated' : 'powered off') + ' · ' + fmtAgo(d.stateChangedAt));
    } else if (d.state === 'error' && d.reason) {
      sub.classList.replace('muted', 'error');
      sub.append(d.reason);
    }
    if (d.desiredState && d.desiredState !== d.state && !(d.desiredState === 'destroyed' && d.state === 'destroying'))
      sub.append(h('span', { class: 'fleet-desired' }, ' → ' + d.desiredState));
    fill(row.stateCell, stateBadge(d.state), sub, row.note ? h('div', { class: 'sub error fleet-note' }, row.note) : null);
  }

  uptime(d) {
    return 'up ' + fmtDuration(Date.now() - time(d.stateChangedAt));
  }

  renderAgent(row) {
    const a = row.d.agent || { status: 'idle', task: null };
    const badge = h('span', { class: 'badge ' + (AGENT_STATUS[a.status] || '') }, a.status === 'waiting_approval' ? 'needs approval' : a.status);
    const task = a.task
      ? h('div', { class: 'fleet-task', title: a.task }, a.task)
      : h('div', { class: 'fleet-task muted' }, 'no task');
    fill(row.agentCell, a.status === 'waiting_approval' ? h('a', { href: '#/approvals' }, badge) : badge, task);
  }

  renderMetrics(row) {
    const d = row.d;
    if (d.state !== 'running') {
      fill(row.cpuCell, h('span', { class: 'muted' }, '—'));
      fill(row.memCell, h('span', { class: 'muted' }, '—'));
      return;
    }
    const last = row.lastSample;
    const cpuNow = last ? Math.round(last.cpuPercent) + '%' : '…';
    const memNow = last ? Math.round(last.memory.percent) + '%' : '…';
    fill(row.cpuCell, h('div', { class: 'fleet-spark' },
      sparkline(row.cpu, { max: 100, width: 72, height: 26, label: `CPU of ${d.name}, last ${row.cpu.length} samples, now ${cpuNow}`, cls: 'cpu' }),
      h('span', { class: 'now' }, cpuNow)));
    fill(row.memCell, h('div', { class: 'fleet-spark' },
      sparkline(row.mem, { max: 100, width: 72, height: 26, label: `Memory of ${d.name}, now ${memNow}`, cls: 'mem' }),
      h('span', { class: 'now' }, memNow)),
    last ? h('div', { class: 'sub muted' }, fmtBytes(last.memory.usedBytes) + ' of ' + fmtBytes(last.memory.totalBytes)) : null);
  }

  renderThumb(row) {
    const live = this.shotWanted(row);
    if (live && row.shotUrl) {
      if (row.thumb.firstChild !== row.img) fill(row.thumb, row.img);
      row.img.alt = 'Screen of ' + row.d.name;
      return;
    }
    if (!live) {
      if (row.shotUrl) URL.revokeObjectURL(row.shotUrl);
      row.shotUrl = null;
      row.shotAt = 0;
      row.img.removeAttribute('src');
    }
    const d = row.d;
    row.placeholder.textContent = row.shotError ||
      (live ? 'loading screen…' : d.state === 'running' ? '→ ' + d.desiredState : d.state);
    row.placeholder.classList.toggle('error', !!row.shotError);
    if (row.thumb.firstChild !== row.placeholder) fill(row.thumb, row.placeholder);
  }

  // ---- events ----

  onCreated(ev) {
    if (!this.rows.has(ev.desktopId)) this.fetchOne(ev.desktopId);
  }

  // A desktop this view has no row for (created elsewhere): its JSON.
  async fetchOne(id) {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    try {
      const d = await get('/api/desktops/' + encodeURIComponent(id), { signal: this.abort.signal });
      if (this.alive && d.workspaceId === this.ws.id) this.upsert(d);
    } catch (e) {
      if (e.name !== 'AbortError' && e.status !== 404) toast('Desktop ' + id + ': ' + errorText(e), 'error');
    } finally {
      this.fetching.delete(id);
    }
  }

  onState(ev) {
    const row = this.rows.get(ev.desktopId);
    if (ev.state === 'destroyed') { this.removeRow(ev.desktopId); return; }
    if (!row) { this.fetchOne(ev.desktopId); return; }
    if (time(ev.createdAt) < time(row.d.stateChangedAt)) return; // older than what the row shows
    const was = row.d.state;
    Object.assign(row.d, {
      state: ev.state, desiredState: ev.desiredState || row.d.desiredState, reason: ev.reason || null,
      stateChangedAt: ev.createdAt, updatedAt: ev.createdAt,
    });
    if (ev.readyMs !== undefined) row.d.readyMs = ev.readyMs;
    if (ev.state === 'running') row.d.saved = null;
    if (was === 'running' && ev.state !== 'running') {
      row.cpu = []; row.mem = []; row.lastAt = null; row.lastSample = null;
    }
    row.note = null;
    row.shotError = null;
    this.renderRow(row);
    this.updateLaunch(row);
    this.refreshAll();
    this.usageSoon();
    if (ev.state === 'running') {
      this.fetchMetrics(row);
      this.fetchShot(row);
    }
  }

  onDesired(ev) {
    const row = this.rows.get(ev.desktopId);
    if (!row || time(ev.createdAt) < time(row.d.stateChangedAt)) return;
    row.d.desiredState = ev.desiredState;
    this.renderState(row);
    this.renderThumb(row);
  }

  onBoot(ev) {
    const row = this.rows.get(ev.desktopId);
    if (!row) return;
    row.d.bootPath = ev.path;
    row.d.bootNote = ev.note || null;
    this.renderState(row);
    this.updateLaunch(row);
  }

  onSetup(ev) {
    const row = this.rows.get(ev.desktopId);
    if (!row) return;
    row.d.setup = { state: ev.state, items: [].concat(ev.items || []).join(','), reason: ev.reason || null };
    this.updateLaunch(row);
  }

  onHibernated(ev) {
    const row = this.rows.get(ev.desktopId);
    if (!row) return;
    row.d.saved = ev.ok ? { memoryBytes: ev.memoryBytes, format: ev.format } : null;
    this.renderState(row);
  }

  onAgent(ev) {
    const row = this.rows.get(ev.desktopId);
    if (!row || !ev.agent) return;
    row.d.agent = ev.agent;
    this.renderAgent(row);
  }

  // ---- polling (only what has no event) ----

  tick() {
    for (const row of this.rows.values())
      if (row.uptime && row.visible) row.uptime.textContent = this.uptime(row.d);
  }

  onVisible(entries) {
    for (const e of entries) {
      const row = this.rows.get(e.target.dataset.id);
      if (!row) continue;
      const was = row.visible;
      row.visible = e.isIntersecting;
      if (row.visible && !was) {
        this.fetchShot(row);
        this.fetchMetrics(row);
        if (row.uptime) row.uptime.textContent = this.uptime(row.d);
      }
    }
  }

  // A thumbnail only of a desktop that runs and is meant to keep running.
  shotWanted(row) {
    return row.d.state === 'running' && row.d.desiredState === 'running';
  }

  pollShots() {
    const now = Date.now();
    for (const row of this.rows.values())
      if (now - row.shotAt >= SHOT_EVERY - 500) this.fetchShot(row);
  }

  // The thumbnail's width in device pixels, so the server scales the
  // screen down instead of sending it whole (a fixed guess until laid out).
  shotWidth(row) {
    const css = row.thumb.clientWidth;
    const px = css ? Math.ceil(css * (window.devicePixelRatio || 1)) : SHOT_WIDTH_GUESS;
    return Math.min(SHOT_WIDTH_MAX, Math.max(SHOT_WIDTH_MIN, px));
  }

  async fetchShot(row) {
    if (!this.alive || !row.visible || row.shotBusy || document.hidden || !this.shotWanted(row)) return;
    row.shotBusy = true;
    row.shotAt = Date.now();
    try {
      const r = await request('GET', '/api/desktops/' + encodeURIComponent(row.d.id) + '/screenshot' +
        qs({ width: this.shotWidth(row) }), undefined, { raw: true, signal: this.abort.signal });
      const blob = await r.blob();
      if (!this.alive || !this.shotWanted(row) || !this.rows.has(row.d.id)) return;
      if (row.shotUrl) row.oldUrl = row.shotUrl;
      row.shotUrl = URL.createObjectURL(blob);
      row.img.src = row.shotUrl;
      row.shotError = null;
      this.renderThumb(row);
    } catch (e) {
      if (e.name === 'AbortError' || !this.alive) return;
      // 409: it stopped running meanwhile; its state event redraws the row
      row.shotError = e.status === 409 ? null : 'no screen: ' + errorText(e);
      this.renderThumb(row);
    } finally {
      row.shotBusy = false;
    }
  }

  pollMetrics() {
    const now = Date.now();
    for (const row of this.rows.values())
      if (now - (row.metricsAt || 0) >= (row.cpu.length < 2 ? METRICS_FIRST : METRICS_EVERY) - 500) this.fetchMetrics(row);
  }

  async fetchMetrics(row) {
    if (!this.alive || !row.visible || row.metricsBusy || document.hidden || row.d.state !== 'running') return;
    row.metricsBusy = true;
    row.metricsAt = Date.now();
    try {
      const m = await get('/api/desktops/' + encodeURIComponent(row.d.id) + '/metrics' + qs({ since: row.lastAt }),
        { signal: this.abort.signal });
      if (!this.alive || row.d.state !== 'running') return;
      this.addSamples(row, m.samples);
      this.renderMetrics(row);
    } catch (e) {
      if (e.name === 'AbortError' || !this.alive) return;
      fill(row.cpuCell, h('span', { class: 'error', title: errorText(e) }, 'metrics unavailable'));
    } finally {
      row.metricsBusy = false;
    }
  }

  addSamples(row, samples) {
    for (const s of samples || []) {
      if (!s || (row.lastAt && time(s.at) <= time(row.lastAt))) continue;
      row.cpu.push(s.cpuPercent);
      row.mem.push(s.memory ? s.memory.percent : null);
      row.lastAt = s.at;
      row.lastSample = s;
    }
    row.cpu = row.cpu.slice(-KEEP);
    row.mem = row.mem.slice(-KEEP);
  }

  // ---- filters, counts, selection ----

  matches(row) {
    const f = this.filter;
    const d = row.d;
    return (!f.state || d.state === f.state) && (!f.tier || d.tier === f.tier) &&
      (!f.text || d.name.toLowerCase().includes(f.text) || d.id.toLowerCase().includes(f.text));
  }

  setFilter(change) {
    Object.assign(this.filter, change);
    for (const [s, c] of this.chips) c.b.setAttribute('aria-pressed', String(s === this.filter.state));
    for (const row of this.rows.values()) {
      row.tr.hidden = !this.matches(row);
      if (row.tr.hidden) this.selected.delete(row.d.id);
    }
    this.refreshAll();
  }

  shown() {
    return [...this.rows.values()].filter((r) => !r.tr.hidden);
  }

  select(id, on) {
    if (on) this.selected.add(id); else this.selected.delete(id);
    this.refreshSelection();
  }

  selectAll(on) {
    this.selectOnly(on ? this.shown().map((r) => r.d.id) : []);
  }

  selectOnly(ids) {
    this.selected = new Set(ids);
    this.refreshSelection();
  }

  refreshSelection() {
    for (const [id, row] of this.rows) {
      const on = this.selected.has(id);
      row.check.checked = on;
      row.tr.classList.toggle('selected', on);
    }
    const shown = this.shown();
    const n = shown.filter((r) => this.selected.has(r.d.id)).length;
    this.all.checked = n > 0 && n === shown.length;
    this.all.indeterminate = n > 0 && n < shown.length;
    this.all.disabled = shown.length === 0;
    this.selCount.textContent = this.selected.size ? plural(this.selected.size, 'desktop') + ' selected' : 'None selected';
    for (const b of this.bulkButtons) b.disabled = this.busy || this.selected.size === 0;
    this.clearSel.hidden = this.selected.size === 0;
  }

  // Counts per state, plan usage, the empty message and the selection.
  refreshAll() {
    const counts = {};
    let running = 0;
    for (const row of this.rows.values()) {
      counts[row.d.state] = (counts[row.d.state] || 0) + 1;
      if (row.d.state === 'running') running++;
    }
    for (const [s, c] of this.chips) {
      const n = s ? counts[s] || 0 : this.rows.size;
      c.count.textContent = n;
      c.b.hidden = s !== '' && n === 0 && this.filter.state !== s;
    }
    const limit = this.ws.planLimit;
    this.stats.used.value.textContent = `${this.rows.size} / ${limit}`;
    this.stats.used.sub.textContent = this.rows.size >= limit ? 'Plan limit reached: destroy one to create another'
      : plural(limit - this.rows.size, 'more desktop') + ' allowed (stopped ones count)';
    this.meter.firstChild.style.width = Math.min(100, (100 * this.rows.size) / Math.max(1, limit)) + '%';
    this.meter.classList.toggle('full', this.rows.size >= limit);
    this.stats.running.value.textContent = running;
    this.stats.running.sub.textContent = `${counts.stopped || 0} stopped` + (counts.error ? ` · ${counts.error} in error` : '');
    if (this.loaded) {
      const shown = this.shown().length;
      this.table.hidden = this.rows.size === 0;
      this.emptyBox.hidden = shown > 0;
      if (this.rows.size === 0) {
        fill(this.emptyBox, h('p', null, 'No desktops in this workspace yet.'),
          h('button', { type: 'button', class: 'primary', onclick: () => this.openCreate() }, 'Create the first desktop'));
      } else if (shown === 0) {
        fill(this.emptyBox, h('p', null, 'No desktop matches these filters.'),
          h('button', { type: 'button', onclick: () => { this.search.value = ''; this.tierSel.value = ''; this.setFilter({ state: '', tier: '', text: '' }); } }, 'Show all'));
      }
    }
    this.refreshSelection();
  }

  // ---- bulk actions ----

  async bulk(action) {
    const ids = [...this.selected].filter((id) => this.rows.has(id));
    if (!ids.length || this.busy) return;
    const [, label, doing] = BULK.find((b) => b[0] === action);
    const names = ids.map((id) => this.rows.get(id).d.name);
    if (action === 'destroy') {
      const ok = await confirm(`Destroy ${plural(ids.length, 'desktop')}?`,
        h('span', null, 'This deletes ', h('strong', null, names.join(', ')),
          ' with their disks and snapshots. It cannot be undone.'), 'Destroy', true);
      if (!ok || !this.alive) return;
    }
    this.busy = true;
    this.refreshSelection();
    this.bulkResult.hidden = true;
    try {
      const r = await post('/api/desktops/bulk', { action, ids }, { signal: this.abort.signal });
      if (!this.alive) return;
      const failed = [];
      for (const res of r.results) {
        const row = this.rows.get(res.id);
        if (res.status < 400) {
          if (row) row.note = null;
          if (res.desktop) this.upsert(res.desktop);
        } else {
          failed.push(res);
          if (row) { row.note = `${label}: ${res.error.message}`; this.renderState(row); }
        }
      }
      this.showBulkResult(action, label, doing, r.results.length - failed.length, failed);
      if (action === 'destroy') this.selectOnly([...this.selected].filter((id) => failed.some((f) => f.id === id)));
    } catch (e) {
      if (e.name === 'AbortError' || !this.alive) return;
      this.showBulkResult(action, label, doing, 0, null, e);
    } finally {
      this.busy = false;
      if (this.alive) this.refreshSelection();
    }
  }

  showBulkResult(action, label, doing, okCount, failed, error) {
    const box = this.bulkResult;
    const close = h('button', { type: 'button', class: 'link', onclick: () => { box.hidden = true; } }, 'Dismiss');
    if (error) {
      box.setAttribute('role', 'alert');
      fill(box, h('div', { class: 'row' }, h('strong', { class: 'error' }, `${label} failed: ${errorText(error)}`), h('span', { class: 'spacer' }), close));
      box.className = 'fleet-bulk-result card bad';
      box.hidden = false;
      toast(`${label} failed: ${errorText(error)}`, 'error');
      return;
    }
    if (!failed.length) {
      box.hidden = true;
      toast(`${doing} ${plural(okCount, 'desktop')}`, 'ok');
      return;
    }
    box.setAttribute('role', 'alert');
    box.className = 'fleet-bulk-result card bad';
    fill(box,
      h('div', { class: 'row' }, h('strong', null,
        `${label}: ${okCount} accepted, ${failed.length} failed`), h('span', { class: 'spacer' }), close),
      h('ul', null, failed.map((f) => {
        const row = this.rows.get(f.id);
        return h('li', { dataset: { id: f.id } }, h('strong', null, row ? row.d.name : f.id), ' — ', f.error.message,
          h('span', { class: 'muted' }, ` (${f.status} ${f.error.code})`));
      })));
    box.hidden = false;
  }

  // ---- create ----

  openCreate() {
    const field = (label, input, hint) => h('label', null, label, input, hint ? h('span', { class: 'hint' }, hint) : null);
    const name = h('input', { name: 'name', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. ci-agent' });
    const tiers = h('div', { class: 'fleet-tiers', role: 'radiogroup', 'aria-label': 'Tier' },
      ctx.tiers.map((t, i) => h('label', { class: 'fleet-tier' },
        h('input', { type: 'radio', name: 'tier', value: t.id, checked: i === 0 }),
        h('span', { class: 'tier-name' }, t.name),
        h('span', { class: 'tier-spec' }, `${t.vcpus} vCPU · ${t.memoryMb / 1024} GB memory · ${t.diskGb} GB disk`),
        h('span', { class: 'tier-price' }, t.pricePerHour ? fmtMoney(t.pricePerHour, t.currency) + ' / hour' : 'free'))));
    const image = h('select', { name: 'image' },
      h('option', { value: 'desktop' }, 'Desktop (XFCE, Chromium)'),
      h('option', { value: 'tiny' }, 'Tiny (test image)'));
    const screen = h('select', { name: 'screen' },
      SCREENS.map(([w, ht]) => h('option', { value: `${w}x${ht}` }, `${w} × ${ht}` + (w === 1280 && ht === 800 ? ' (default)' : ''))));
    screen.value = '1280x800';
    const provider = h('select', { name: 'provider' }, PROVIDERS.map(([v, l]) => h('option', { value: v }, l)));
    const model = h('input', { name: 'model', autocomplete: 'off', spellcheck: 'false', placeholder: 'model id' });
    const apiKey = h('input', { name: 'apiKey', type: 'password', autocomplete: 'off', placeholder: 'sent once to the desktop' });
    const baseUrl = h('input', { name: 'baseUrl', type: 'url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://… (a compatible endpoint)' });
    const agentFields = [model, apiKey, baseUrl];
    const syncProvider = () => agentFields.forEach((f) => { f.disabled = !provider.value; });
    provider.addEventListener('change', syncProvider);
    syncProvider();
    const error = h('p', { class: 'error fleet-form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'fleet-create', novalidate: true },
      field('Name', name, 'Letters, digits, ".", "_" and "-"'),
      h('fieldset', null, h('legend', null, 'Tier'), tiers),
      h('div', { class: 'form-grid' }, field('Image', image), field('Screen size', screen)),
      h('fieldset', null, h('legend', null, 'AI agent'),
        h('div', { class: 'form-grid' }, field('Provider', provider), field('Model', model),
          field('API key', apiKey, 'Never stored: handed to the desktop, then wiped')),
        h('details', { class: 'fleet-advanced' }, h('summary', null, 'Advanced'), field('Base URL', baseUrl))),
      error);
    this.createForm = form;
    let busy = false;
    const submit = async () => {
      if (busy) return false;
      busy = true;
      error.hidden = true;
      name.removeAttribute('aria-invalid');
      const [w, ht] = screen.value.split('x').map(Number);
      const body = {
        name: name.value.trim(), workspaceId: this.ws.id,
        tier: form.querySelector('input[name=tier]:checked').value, image: image.value, screen: { width: w, height: ht },
      };
      if (provider.value) {
        body.provider = provider.value;
        if (model.value.trim()) body.model = model.value.trim();
        if (apiKey.value) body.apiKey = apiKey.value;
        if (baseUrl.value.trim()) body.baseUrl = baseUrl.value.trim();
      }
      const button = form.closest('dialog').querySelector('.actions .primary');
      button.disabled = true;
      try {
        const d = await post('/api/desktops', body);
        apiKey.value = '';
        if (this.alive) this.created(d);
        return true;
      } catch (e) {
        error.textContent = errorText(e);
        error.dataset.code = e.code || '';
        error.hidden = false;
        if (/name/i.test(e.message) || e.status === 409) { name.setAttribute('aria-invalid', 'true'); name.focus(); }
        return false;
      } finally {
        busy = false;
        button.disabled = false;
      }
    };
    form.addEventListener('input', () => {
      error.hidden = true;
      name.removeAttribute('aria-invalid');
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      form.closest('dialog').querySelector('.actions .primary').click();
    });
    // Enter in a field submits: the browser's own implicit submission does
    // not, as the form has several text fields and no submit button.
    form.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' || e.isComposing || e.target.tagName !== 'INPUT') return;
      e.preventDefault();
      form.requestSubmit();
    });
    dialog({
      title: 'New desktop',
      body: form,
      actions: [{ label: 'Cancel', value: null }, { label: 'Create desktop', value: true, class: 'primary', check: submit }],
    }).then(() => { apiKey.value = ''; this.createForm = null; });
    name.focus();
  }

  created(d) {
    this.upsert(d);
    this.addLaunch(d.id);
    toast(`Creating ${d.name}…`, 'info');
  }

  // ---- the launch panel: a new desktop until it runs ----

  addLaunch(id) {
    const row = this.rows.get(id);
    if (!row || this.launches.has(id)) return;
    const steps = LAUNCH_STEPS.map((s) => h('li', { dataset: { step: s } }, s));
    const l = {
      steps,
      title: h('a', { href: '#/desktops/' + encodeURIComponent(id) }, row.d.name),
      note: h('div', { class: 'sub muted fleet-launch-note' }),
      outcome: h('div', { class: 'fleet-launch-outcome' }),
      announced: false,
    };
    l.el = h('div', { class: 'card fleet-launch', dataset: { id } },
      h('div', { class: 'row' }, h('strong', null, l.title), h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss ' + row.d.name, onclick: () => {
          l.el.remove(); this.launches.delete(id); this.launchBox.hidden = this.launches.size === 0;
        } }, 'Dismiss')),
      h('ol', { class: 'fleet-steps', 'aria-label': 'Progress' }, steps), l.note, l.outcome);
    this.launches.set(id, l);
    this.launchBox.append(l.el);
    this.launchBox.hidden = false;
    this.updateLaunch(row);
  }

  updateLaunch(row) {
    const l = this.launches.get(row.d.id);
    if (!l) return;
    const d = row.d;
    const at = LAUNCH_STEPS.indexOf(d.state);
    const failed = d.state === 'error';
    l.steps.forEach((li, i) => {
      li.className = i < at || d.state === 'running' ? 'done' : i === at ? 'current' : '';
      if (i === at && d.state !== 'running') li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
    });
    l.el.dataset.state = d.state;
    const path = d.bootPath ? 'Boot: ' + (BOOT_PATHS[d.bootPath] || d.bootPath) : 'Preparing the disk';
    l.note.textContent = path + (d.bootNote ? ' — ' + d.bootNote : '');
    if (failed) {
      fill(l.outcome, h('span', { class: 'error' }, 'Failed: ' + (d.reason || 'unknown reason')));
    } else if (d.state === 'running') {
      fill(l.outcome, h('span', { class: 'badge ok' }, 'ready'),
        d.readyMs ? ` in ${(d.readyMs / 1000).toFixed(1)} s · ` : ' · ',
        h('a', { href: '#/desktops/' + encodeURIComponent(d.id) }, 'Open ' + d.name));
      if (!l.announced) {
        l.announced = true;
        toast(h('span', null, h('strong', null, d.name), ' is ready. ',
          h('a', { href: '#/desktops/' + encodeURIComponent(d.id) }, 'Open it')), 'ok');
      }
    } else if (!LAUNCH_STEPS.includes(d.state)) {
      fill(l.outcome, h('span', { class: 'muted' }, 'Now ' + d.state));
    } else {
      fill(l.outcome);
    }
  }
}
