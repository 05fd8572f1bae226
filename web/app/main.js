// Mission Control: the login page, the navigation (workspace switcher,
// counts of pending approvals and open alerts, the live-stream state) and
// a hash router that mounts one view at a time:
//   #/                 fleet          #/approvals   approvals inbox
//   #/desktops/ID      desktop view   #/alerts      alerts inbox
//   #/desktops/ID/TAB  (a panel)      #/activity    the audit log
//   #/settings         keys, users, members
// A view module exports mount(el, params) and returns its cleanup function.
import { get, post, setUnauthorizedHandler } from './api.js';
import { ctx, setWorkspace, savedWorkspace } from './context.js';
import * as events from './events.js';
import { h, fill, toast, errorText } from './ui.js';

const routes = [
  [/^#?\/?$/, 'fleet'],
  [/^#\/desktops\/([\w-]+)(?:\/(\w+))?$/, 'desktop', ['id', 'tab']],
  [/^#\/approvals$/, 'approvals'],
  [/^#\/alerts$/, 'alerts'],
  [/^#\/activity(?:\?.*)?$/, 'activity'],
  [/^#\/settings$/, 'settings'],
];

const view = document.getElementById('view');
let cleanup = null;
let mounted = '';

async function route() {
  const hash = location.hash || '#/';
  let name = null;
  let params = {};
  for (const [re, n, keys] of routes) {
    const m = hash.match(re);
    if (m) {
      name = n;
      (keys || []).forEach((k, i) => { params[k] = m[i + 1] ? decodeURIComponent(m[i + 1]) : null; });
      break;
    }
  }
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } }
  cleanup = null;
  mounted = hash;
  document.querySelectorAll('[data-nav]').forEach((a) => {
    const active = a.dataset.nav === name || (name === 'desktop' && a.dataset.nav === 'fleet');
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  if (!name) {
    fill(view, h('div', { class: 'page' }, h('h1', null, 'Not found'), h('p', null, h('a', { href: '#/' }, 'Back to the fleet'))));
    return;
  }
  fill(view);
  try {
    const mod = await import(`./views/${name}.js`);
    if (mounted !== hash) return; // navigated away while loading
    cleanup = mod.mount(view, params) || null;
  } catch (e) {
    console.error(e);
    fill(view, h('div', { class: 'page' }, h('p', { class: 'error' }, 'This page failed to load: ' + errorText(e))));
  }
}

// ---- navigation counts and notifications ----

let pendingSeen = null; // approval ids already notified

async function refreshCounts() {
  if (!ctx.workspace) return;
  const ws = ctx.workspace.id;
  try {
    const [a, al] = await Promise.all([
      get('/api/approvals?status=pending'),
      get('/api/alerts?state=open&workspaceId=' + encodeURIComponent(ws)),
    ]);
    const pending = a.approvals.filter((x) => x.workspaceId === ws);
    setCount('count-approvals', pending.length);
    setCount('count-alerts', al.alerts.length);
    if (pendingSeen === null) pendingSeen = new Set(pending.map((x) => x.id));
  } catch (e) {
    console.warn('counts', e);
  }
}

function setCount(id, n) {
  const el = document.getElementById(id);
  el.textContent = n;
  el.hidden = n === 0;
  el.setAttribute('aria-label', n + ' open');
}

function notifyApproval(ev) {
  const a = ev.approval || ev;
  if (!a || !a.id || (pendingSeen && pendingSeen.has(a.id))) return;
  if (pendingSeen) pendingSeen.add(a.id);
  const title = 'Approval needed: ' + (ev.name || a.desktopId || 'a desktop');
  const body = a.action || a.kind || '';
  if ('Notification' in window && Notification.permission === 'granted') {
    const n = new Notification(title, { body, tag: a.id });
    n.onclick = () => { window.focus(); location.hash = '#/approvals'; };
  }
  toast(title + (body ? ': ' + body : ''), 'info');
}

function setupNotifications() {
  const btn = document.getElementById('notify');
  if (!('Notification' in window) || Notification.permission !== 'default') return;
  btn.hidden = false;
  btn.onclick = async () => {
    await Notification.requestPermission();
    btn.hidden = true;
  };
}

// ---- session ----

// The login page; the open view is unmounted so it stops its polling.
function showLogin() {
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } }
  cleanup = null;
  mounted = '';
  fill(view);
  events.disconnect();
  document.getElementById('app').hidden = true;
  document.getElementById('login-page').hidden = false;
  document.getElementById('email').focus();
}

async function start(me) {
  ctx.me = me.user;
  ctx.workspaces = (await get('/api/workspaces')).workspaces;
  ctx.tiers = (await get('/api/tiers')).tiers;
  const sel = document.getElementById('workspace');
  fill(sel, ctx.workspaces.map((w) => h('option', { value: w.id }, w.name)));
  setWorkspace(savedWorkspace());
  if (ctx.workspace) sel.value = ctx.workspace.id;
  document.getElementById('me-email').textContent = ctx.me.email;
  document.getElementById('login-page').hidden = true;
  document.getElementById('app').hidden = false;
  if (ctx.workspace) events.connect(ctx.workspace.id);
  refreshCounts();
  setupNotifications();
  route();
}

async function boot() {
  try {
    const s = await get('/api/auth/session');
    if (s.user) start(s);
    else showLogin();
  } catch (e) {
    fill(document.body, h('p', { class: 'error page' }, 'bureaud did not answer: ' + errorText(e)));
  }
}

document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = document.getElementById('login-error');
  err.hidden = true;
  try {
    await post('/api/auth/login', {
      email: document.getElementById('email').value,
      password: document.getElementById('password').value,
    });
    document.getElementById('password').value = '';
    start(await get('/api/auth/session'));
  } catch (ex) {
    err.textContent = ex.status === 401 ? 'Wrong email or password.' : errorText(ex);
    err.hidden = false;
  }
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await post('/api/auth/logout'); } catch (e) { console.warn(e); }
  showLogin();
});

document.getElementById('workspace').addEventListener('change', (e) => setWorkspace(e.target.value));

// The skip link moves the focus to the view; followed as a link, its
// "#view" would be taken for a route by the hash router.
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  view.focus();
});

window.addEventListener('workspacechange', () => {
  pendingSeen = null;
  if (ctx.workspace) events.connect(ctx.workspace.id);
  refreshCounts();
  if (location.hash.startsWith('#/desktops/')) location.hash = '#/';
  else route();
});

events.onStatus((s) => {
  const el = document.getElementById('live');
  el.dataset.state = s;
  el.textContent = s === 'live' ? 'live' : s === 'closed' ? 'disconnected' : 'reconnecting…';
});
for (const t of ['approval.created', 'approval.decided', 'alert.raised', 'alert.resolved', 'alert.acknowledged'])
  events.on(t, () => refreshCounts());
events.on('approval.created', notifyApproval);

setUnauthorizedHandler(showLogin);
window.addEventListener('hashchange', route);
boot();
