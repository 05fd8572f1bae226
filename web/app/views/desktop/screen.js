// The screen panel: noVNC on GET /api/desktops/{id}/vnc, scaled to the
// panel. View only by default (the bridge itself drops input in view mode);
// "Take control" reconnects with ?mode=control, "Release control" goes back.
// While the desktop is not running the panel says so, and it connects when
// the desktop reaches "running".
import RFB from '/vendor/novnc/core/rfb.js';
import { h } from '../../ui.js';
import { wsUrl, setStatus } from './util.js';

export function createScreen(env) {
  // Read by tests: mode, connected, rfb.
  const state = { mode: 'view', connected: false, rfb: null };
  let running = false;
  let destroyed = false;

  const status = h('span', { class: 'dv-status', role: 'status' });
  const modeBtn = h('button', { type: 'button', class: 'small', onclick: toggleMode, disabled: true }, 'Take control');
  const reconnectBtn = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => connect(state.mode) }, 'Reconnect');
  const fullBtn = h('button', {
    type: 'button', class: 'small', title: 'Full screen', 'aria-label': 'Show the screen full screen',
    onclick: () => wrap.requestFullscreen && wrap.requestFullscreen().catch(() => {}),
  }, '⤢');
  const box = h('div', { class: 'dv-screen-box' });
  const note = h('div', { class: 'dv-overlay', hidden: true });
  const wrap = h('div', { class: 'dv-screen-wrap' }, box, note);
  // In control every key goes to the desktop, Tab too: Escape then Tab or
  // Shift+Tab moves the focus on instead (as in the terminal panel). This
  // listener sees the keys before noVNC's, which is on the canvas.
  let afterEscape = false;
  wrap.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && afterEscape) {
      afterEscape = false;
      e.stopPropagation(); // noVNC does not see it; the browser moves the focus
      return;
    }
    if (!['Shift', 'Control', 'Alt', 'Meta'].includes(e.key)) afterEscape = e.key === 'Escape';
  }, true);
  const el = h('section', { class: 'card dv-panel dv-screen', 'aria-label': 'Screen' },
    h('div', { class: 'dv-panel-head' },
      h('h2', null, 'Screen'), status, h('span', { class: 'spacer' }),
      reconnectBtn, modeBtn, fullBtn),
    wrap);

  function show(text) {
    note.textContent = text;
    note.hidden = !text;
  }

  function buttons() {
    modeBtn.disabled = !running;
    modeBtn.textContent = state.mode === 'control' ? 'Release control' : 'Take control';
    modeBtn.className = 'small' + (state.mode === 'control' ? '' : ' primary');
    modeBtn.title = state.mode === 'control'
      ? 'Go back to watching: your input no longer reaches the desktop'
      : 'Reconnect with control: your mouse and keyboard reach the desktop';
    reconnectBtn.hidden = !running || state.connected || !!state.rfb;
  }

  function close() {
    const r = state.rfb;
    state.rfb = null;
    state.connected = false;
    if (r) r.disconnect();
  }

  function connect(mode) {
    close();
    state.mode = mode;
    setStatus(status, 'connecting', 'connecting…');
    show('');
    const rfb = new RFB(box, wsUrl(`/api/desktops/${encodeURIComponent(env.id)}/vnc`, { mode }),
      { wsProtocols: ['binary'], shared: true });
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.viewOnly = mode !== 'control';
    rfb.focusOnClick = mode === 'control';
    rfb.background = 'transparent';
    rfb.addEventListener('connect', () => {
      if (state.rfb !== rfb) return;
      state.connected = true;
      setStatus(status, mode === 'control' ? 'control' : 'view', mode === 'control' ? 'in control' : 'view only');
      if (mode === 'control') {
        // reachable with Tab while in control (noVNC leaves it out)
        const canvas = box.querySelector('canvas');
        if (canvas) {
          canvas.tabIndex = 0;
          canvas.setAttribute('aria-label', 'The desktop\'s screen: keys go to the desktop; Esc then Tab leaves');
        }
        rfb.focus({ preventScroll: true });
      }
      buttons();
    });
    rfb.addEventListener('disconnect', (e) => {
      if (state.rfb !== rfb) return;
      state.rfb = null;
      state.connected = false;
      if (running) {
        setStatus(status, 'off', e.detail && e.detail.clean ? 'disconnected' : 'connection lost');
        show('The screen is disconnected.');
      }
      buttons();
    });
    rfb.addEventListener('securityfailure', (e) => {
      setStatus(status, 'off', 'refused: ' + ((e.detail && e.detail.reason) || 'security failure'));
    });
    state.rfb = rfb;
    buttons();
  }

  function toggleMode() {
    connect(state.mode === 'control' ? 'view' : 'control');
  }

  function update(d) {
    if (destroyed) return;
    const was = running;
    running = d.state === 'running';
    if (running && !was) {
      connect(state.mode);
    } else if (!running) {
      close();
      setStatus(status, 'off', 'not running');
      show(d.state === 'destroyed' || d.state === 'destroying'
        ? 'This desktop is destroyed.'
        : `The desktop is ${d.state}. Its screen appears here when it runs.`);
    }
    buttons();
  }

  function destroy() {
    destroyed = true;
    close();
  }

  return { el, state, update, destroy };
}
