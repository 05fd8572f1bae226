// The REST API, as the dashboard calls it: same-origin fetches with the
// session cookie, JSON in and out, errors thrown as ApiError with the
// server's code and message. A 401 anywhere means the session ended: the
// app goes back to the login page.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// A query string from an object, leaving out empty values.
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {}))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

async function failure(r) {
  let code = 'http_' + r.status;
  let message = r.statusText || 'request failed';
  try {
    const body = await r.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch { /* not JSON */ }
  return new ApiError(r.status, code, message);
}

// fetch with the session; raw: the Response is returned unread (downloads,
// images). body: an object (sent as JSON), or a Blob/File (sent as bytes).
export async function request(method, path, body, { raw = false, signal, headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { ...headers }, signal };
  if (body instanceof Blob) {
    init.body = body;
    init.headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, init);
  if (r.status === 401 && path !== '/api/auth/login') onUnauthorized();
  if (!r.ok) throw await failure(r);
  if (raw) return r;
  if (r.status === 204) return null;
  const type = r.headers.get('Content-Type') || '';
  return type.includes('json') ? r.json() : r.text();
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body === undefined ? {} : body, opts);
export const put = (path, body, opts) => request('PUT', path, body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);
