// Helpers shared by the console pages: which desktop, which credentials,
// and the WebSocket address of a console.

// The desktop id from /desktops/{id}/screen or /desktops/{id}/terminal.
export function desktopId() {
  const m = location.pathname.match(/^\/desktops\/([^/]+)\//);
  return m ? decodeURIComponent(m[1]) : null;
}

// A ticket given to the page (?ticket=…) works once: the first connection
// takes it, later ones rely on the session cookie.
let ticket = new URLSearchParams(location.search).get('ticket');
history.replaceState(null, '', location.pathname);

export function hasTicket() {
  return ticket !== null;
}

export function consoleUrl(id, kind, params) {
  const q = new URLSearchParams(params || {});
  if (ticket !== null) {
    q.set('ticket', ticket);
    ticket = null;
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const qs = q.toString();
  return `${scheme}//${location.host}/api/desktops/${encodeURIComponent(id)}/${kind}` +
    (qs ? '?' + qs : '');
}

// The desktop as the API shows it, or null without a session.
export async function desktopInfo(id) {
  const r = await fetch(`/api/desktops/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
  if (!r.ok) return { status: r.status, desktop: null };
  return { status: r.status, desktop: await r.json() };
}

export function setStatus(text, state) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.dataset.state = state || '';
}

export function notice(html) {
  document.querySelector('main').innerHTML = `<div class="notice">${html}</div>`;
}
