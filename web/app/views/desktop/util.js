// Small helpers shared by the desktop view's panels.

// The WebSocket address of a console bridge on this server.
export function wsUrl(path, params) {
  const q = new URLSearchParams(params || {}).toString();
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}${q ? '?' + q : ''}`;
}

// JSON with sorted keys, to compare two values whatever their key order.
export function stableJson(v) {
  if (Array.isArray(v)) return '[' + v.map(stableJson).join(',') + ']';
  if (v && typeof v === 'object')
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + stableJson(v[k])).join(',') + '}';
  return JSON.stringify(v === undefined ? null : v);
}

export function truncate(s, n) {
  s = String(s === undefined || s === null ? '' : s);
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// "12:04:05", local time.
export function clock(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// A connection's status line: its state (the dot's colour) and its text.
export function setStatus(el, state, text) {
  el.dataset.state = state;
  el.textContent = text;
}

// The one-line summary of a pilot tool call: "shell: ls -la".
export function toolSummary(tool, input) {
  input = input || {};
  let what = '';
  if (tool === 'shell') what = input.command;
  else if (tool === 'files') what = [input.op, input.path].filter(Boolean).join(' ');
  else if (tool === 'computer') {
    what = input.action || '';
    if (Array.isArray(input.start_coordinate)) what += ' ' + input.start_coordinate.join(',') + ' →';
    if (Array.isArray(input.coordinate)) what += ' ' + input.coordinate.join(',');
    if (input.text) what += ' "' + input.text + '"';
  } else {
    what = JSON.stringify(input);
  }
  return `${tool}: ${truncate(String(what || '').replace(/\s+/g, ' ').trim(), 160)}`;
}

// Whether a keyboard event should leave a text field alone (IME input).
export function composing(e) {
  return e.isComposing || e.keyCode === 229;
}
