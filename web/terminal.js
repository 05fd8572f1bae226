// A shell in the desktop: xterm.js over bureaud's terminal bridge.
// Keystrokes and output travel as binary messages (raw bytes, so UTF-8
// split across messages is fine: xterm.js decodes the stream); control
// messages are JSON text: {"type":"resize","cols","rows"} from here,
// {"type":"exit",…} from the server. The session lives on in the desktop
// (tmux) after a disconnect; "End session" ends it.
import { Terminal } from '/vendor/xterm/lib/xterm.mjs';
import { FitAddon } from '/vendor/xterm-addon-fit/lib/addon-fit.mjs';
import { consoleUrl, desktopId, desktopInfo, hasTicket, notice, setStatus } from './console.js';

const id = desktopId();
const session = new URLSearchParams(location.search).get('session') || 'main';
const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14,
  fontFamily: 'DejaVu Sans Mono, monospace', theme: { background: '#15161a' } });
const fit = new FitAddon();
const enc = new TextEncoder();
const state = { ws: null, connected: false, ended: false, term };
window.bureauTerminal = state; // for tests and the curious

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
}

function sendSize() {
  send({ type: 'resize', cols: term.cols, rows: term.rows });
}

function connect(params) {
  setStatus('connecting…');
  const ws = new WebSocket(consoleUrl(id, 'terminal', Object.assign({ session }, params || {})));
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    state.connected = true;
    setStatus('connected', 'connected');
    sendSize();
    document.getElementById('reconnect').disabled = true;
    document.getElementById('end').disabled = false;
    term.focus();
  };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') {
      const msg = JSON.parse(e.data);
      if (msg.type === 'exit') {
        state.ended = true;
        term.write(`\r\n[session ended${msg.code !== undefined ? ' with status ' + msg.code : ''}]\r\n`);
      } else if (msg.type === 'error') {
        term.write(`\r\n[${msg.message}]\r\n`);
      }
      return;
    }
    term.write(new Uint8Array(e.data));
  };
  ws.onclose = (e) => {
    state.connected = false;
    setStatus(state.ended ? 'session ended' : `disconnected (${e.code})`, 'error');
    document.getElementById('reconnect').disabled = false;
    document.getElementById('end').disabled = true;
  };
  state.ws = ws;
}

async function main() {
  if (!id) {
    notice('No desktop in this address.');
    return;
  }
  document.getElementById('screen-link').href = `/desktops/${encodeURIComponent(id)}/screen`;
  const info = await desktopInfo(id);
  if (info.desktop) {
    document.getElementById('title').textContent = `${info.desktop.name} · ${session}`;
    document.title = `${info.desktop.name} · terminal · bureau`;
  } else if (!hasTicket()) {
    notice(info.status === 401
      ? 'You are not logged in. <a href="/">Log in</a>, or open this page with a console ticket.'
      : 'No such desktop.');
    return;
  }
  term.loadAddon(fit);
  term.open(document.getElementById('terminal'));
  fit.fit();
  term.onData((d) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(enc.encode(d));
  });
  term.onResize(sendSize);
  new ResizeObserver(() => fit.fit()).observe(document.getElementById('terminal'));
  document.getElementById('reconnect').addEventListener('click', () => {
    state.ended = false;
    connect();
  });
  document.getElementById('end').addEventListener('click', () => send({ type: 'end' }));
  connect();
}

main();
