// The terminal panel: xterm.js (and its fit addon) on GET
// /api/desktops/{id}/terminal. Keystrokes and output are binary messages;
// control messages are JSON text ({"type":"resize"} and {"type":"end"} from
// here, {"type":"exit"} or {"type":"error"} from the server). On the
// desktop image the shell lives on in tmux session "main" after a
// disconnect; "End session" ends it.
import { Terminal } from '/vendor/xterm/lib/xterm.mjs';
import { FitAddon } from '/vendor/xterm-addon-fit/lib/addon-fit.mjs';
import { h, confirm } from '../../ui.js';
import { wsUrl, setStatus } from './util.js';

const SESSION = 'main';

export function createTerminal(env) {
  // Read by tests: term, connected, ended.
  const state = { term: null, connected: false, ended: false, ws: null };
  const enc = new TextEncoder();
  let running = false;
  let fit = null;
  let ro = null;

  const status = h('span', { class: 'dv-status', role: 'status' });
  const reconnectBtn = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => connect() }, 'Reconnect');
  const endBtn = h('button', {
    type: 'button', class: 'small', disabled: true, onclick: endSession,
    title: 'End the shell session in the desktop (its programs stop)',
  }, 'End session');
  const box = h('div', { class: 'dv-term' });
  const note = h('div', { class: 'dv-overlay', hidden: true });
  const hint = h('div', { class: 'dv-term-hint', id: 'dv-term-hint' }, 'Esc then Tab leaves the terminal');
  const el = h('div', { class: 'dv-terminal' },
    h('div', { class: 'dv-subhead' }, status, h('span', { class: 'spacer' }), reconnectBtn, endBtn,
      h('a', {
        class: 'small', href: `/desktops/${encodeURIComponent(env.id)}/terminal`, target: '_blank', rel: 'noopener',
        title: 'Open the terminal in its own window',
      }, 'Pop out ↗')),
    h('div', { class: 'dv-term-wrap' }, box, note, hint));

  function show(text) {
    note.textContent = text;
    note.hidden = !text;
  }

  function fitNow() {
    if (fit && box.offsetWidth > 0 && box.offsetHeight > 0) fit.fit();
  }

  function ensureTerm() {
    if (state.term) return;
    const term = new Terminal({
      cursorBlink: true, scrollback: 5000, fontSize: 13,
      fontFamily: "'DejaVu Sans Mono', ui-monospace, monospace",
      theme: { background: '#15161a', foreground: '#e8e8ea', cursor: '#e8e8ea' },
    });
    fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box);
    // Tab belongs to the shell (completion), so a keyboard user needs
    // another way out: Escape then Tab or Shift+Tab moves the focus on, as
    // in CodeMirror; the Escape itself still reaches the shell.
    let afterEscape = false;
    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown') return true;
      if (e.key === 'Tab' && afterEscape) {
        afterEscape = false;
        return false; // not the terminal's: the browser moves the focus
      }
      if (!['Shift', 'Control', 'Alt', 'Meta'].includes(e.key)) afterEscape = e.key === 'Escape';
      return true;
    });
    term.textarea.setAttribute('aria-describedby', hint.id);
    term.onData((d) => {
      if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(enc.encode(d));
    });
    term.onResize(sendSize);
    ro = new ResizeObserver(() => fitNow());
    ro.observe(box);
    state.term = term;
    fitNow();
  }

  function send(obj) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
  }

  function sendSize() {
    if (state.term) send({ type: 'resize', cols: state.term.cols, rows: state.term.rows });
  }

  function buttons() {
    reconnectBtn.hidden = !running || !!state.ws;
    endBtn.disabled = !state.connected;
  }

  function close() {
    const ws = state.ws;
    state.ws = null;
    state.connected = false;
    if (ws) ws.close(1000);
  }

  function connect() {
    close();
    ensureTerm();
    state.ended = false;
    show('');
    setStatus(status, 'connecting', 'connecting…');
    const ws = new WebSocket(wsUrl(`/api/desktops/${encodeURIComponent(env.id)}/terminal`, { session: SESSION }));
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (state.ws !== ws) return;
      state.connected = true;
      setStatus(status, 'control', 'connected · session ' + SESSION);
      fitNow();
      sendSize();
      buttons();
    };
    ws.onmessage = (e) => {
      if (state.ws !== ws) return;
      if (typeof e.data !== 'string') {
        state.term.write(new Uint8Array(e.data));
        return;
      }
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === 'exit') {
        state.ended = true;
        const how = msg.signal ? ' by signal ' + msg.signal : msg.exitCode !== undefined && msg.exitCode !== null ? ' with status ' + msg.exitCode : '';
        state.term.write(`\r\n\x1b[2m[session ended${how}]\x1b[0m\r\n`);
      } else if (msg.type === 'error') {
        state.term.write(`\r\n\x1b[31m[${msg.message}]\x1b[0m\r\n`);
      }
    };
    ws.onclose = (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.connected = false;
      if (running) setStatus(status, 'off', state.ended ? 'session ended' : `disconnected (${e.code})`);
      buttons();
    };
    state.ws = ws;
    buttons();
  }

  async function endSession() {
    if (!(await confirm('End the terminal session?',
      `The shell in tmux session "${SESSION}" and the programs started from it stop.`, 'End session', true))) return;
    send({ type: 'end' });
  }

  function update(d) {
    const was = running;
    running = d.state === 'running';
    if (running && !was) {
      connect();
    } else if (!running) {
      close();
      setStatus(status, 'off', 'not running');
      show(`The desktop is ${d.state}. The terminal connects when it runs.`);
    }
    buttons();
  }

  function shown() {
    fitNow();
  }

  function destroy() {
    close();
    if (ro) ro.disconnect();
    if (state.term) state.term.dispose();
  }

  return { el, state, update, shown, destroy };
}
