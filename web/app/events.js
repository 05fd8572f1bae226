// The live event stream (GET /api/events, server-sent events) of the
// current workspace, shared by every view. EventSource reconnects by
// itself and sends Last-Event-ID, so nothing is lost across a drop.
//
//   const off = on('desktop.state', (ev) => …);   ev: the event's JSON
//   off();                                        when the view unmounts
//
// stream(params, types, fn) opens a separate stream (one desktop's events,
// say) and returns its close function.

// Every event type bureaud publishes (docs/openapi.yaml, /api/events).
export const TYPES = [
  'desktop.created', 'desktop.state', 'desktop.desired', 'desktop.boot', 'desktop.setup',
  'desktop.hibernated', 'desktop.snapshot', 'desktop.snapshot.restore', 'desktop.snapshot.restored',
  'desktop.snapshot.delete', 'desktop.snapshot.deleted',
  'agent.status', 'chat.message', 'chat.delta', 'chat.tool',
  'approval.created', 'approval.updated', 'approval.decided', 'alert.raised', 'alert.resolved', 'alert.acknowledged',
];

const listeners = new Map(); // type -> Set of functions
let source = null;
let statusFn = () => {};

function dispatch(e) {
  let data;
  try { data = JSON.parse(e.data); } catch { return; }
  for (const fn of listeners.get(e.type) || []) {
    try { fn(data); } catch (err) { console.warn('event listener', err); }
  }
  for (const fn of listeners.get('*') || []) {
    try { fn(data); } catch (err) { console.warn('event listener', err); }
  }
}

// The stream's state for the navigation: "live", "reconnecting".
export function onStatus(fn) { statusFn = fn; }

export function connect(workspaceId) {
  disconnect();
  source = new EventSource('/api/events?workspaceId=' + encodeURIComponent(workspaceId));
  for (const t of TYPES) source.addEventListener(t, dispatch);
  source.onopen = () => statusFn('live');
  source.onerror = () => statusFn(source && source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
}

export function disconnect() {
  if (source) source.close();
  source = null;
}

// type: one of TYPES, or "*" for every event.
export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

export function stream(params, types, fn) {
  const q = new URLSearchParams(params).toString();
  const s = new EventSource('/api/events' + (q ? '?' + q : ''));
  const handler = (e) => {
    try { fn(JSON.parse(e.data)); } catch (err) { console.warn('event', err); }
  };
  for (const t of types || TYPES) s.addEventListener(t, handler);
  return () => s.close();
}
