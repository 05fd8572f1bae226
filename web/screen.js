// The desktop's screen: noVNC over bureaud's authenticated VNC bridge,
// scaled to the window. View-only by default (the bridge drops input at
// the RFB level); "Take control" reconnects in control mode.
import RFB from '/vendor/novnc/core/rfb.js';
import { consoleUrl, desktopId, desktopInfo, hasTicket, notice, setStatus } from './console.js';

const id = desktopId();
const state = { mode: 'view', rfb: null, connected: false, clipboard: '' };
window.bureauScreen = state; // for tests and the curious

function connect(mode) {
  if (state.rfb) {
    state.rfb._bureauReplaced = true;
    state.rfb.disconnect();
  }
  state.mode = mode;
  state.connected = false;
  setStatus('connecting…');
  const rfb = new RFB(document.getElementById('screen'),
    consoleUrl(id, 'vnc', { mode }), { wsProtocols: ['binary'], shared: true });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.viewOnly = mode !== 'control';
  rfb.focusOnClick = mode === 'control';
  rfb.addEventListener('connect', () => {
    state.connected = true;
    setStatus(mode === 'control' ? 'connected · in control' : 'connected · watching', 'connected');
    updateButtons();
  });
  rfb.addEventListener('disconnect', (e) => {
    if (rfb._bureauReplaced) return;
    state.connected = false;
    setStatus(e.detail.clean ? 'disconnected' : 'connection lost', 'error');
    updateButtons();
  });
  rfb.addEventListener('clipboard', (e) => {
    state.clipboard = e.detail.text;
    document.getElementById('clipboard-text').value = e.detail.text;
  });
  rfb.addEventListener('desktopname', (e) => {
    if (!state.name) document.getElementById('title').textContent = e.detail.name || id;
  });
  state.rfb = rfb;
}

function updateButtons() {
  const mode = document.getElementById('mode');
  mode.disabled = false;
  mode.textContent = state.mode === 'control' ? 'Release control' : 'Take control';
  mode.className = state.mode === 'control' ? '' : 'secondary';
  document.getElementById('clipboard').disabled = false;
  document.getElementById('clipboard-send').disabled = state.mode !== 'control';
}

async function main() {
  if (!id) {
    notice('No desktop in this address.');
    return;
  }
  document.getElementById('terminal-link').href = `/desktops/${encodeURIComponent(id)}/terminal`;
  const info = await desktopInfo(id);
  if (info.desktop) {
    state.name = info.desktop.name;
    document.getElementById('title').textContent = info.desktop.name;
    document.title = `${info.desktop.name} · screen · bureau`;
  } else if (!hasTicket()) {
    notice(info.status === 401
      ? 'You are not logged in. <a href="/">Log in</a>, or open this page with a console ticket.'
      : 'No such desktop.');
    return;
  }
  document.getElementById('mode').addEventListener('click', () => {
    connect(state.mode === 'control' ? 'view' : 'control');
  });
  document.getElementById('clipboard').addEventListener('click', () => {
    const p = document.getElementById('clipboard-panel');
    p.hidden = !p.hidden;
  });
  document.getElementById('clipboard-send').addEventListener('click', () => {
    if (state.rfb && state.mode === 'control')
      state.rfb.clipboardPasteFrom(document.getElementById('clipboard-text').value);
  });
  connect('view');
}

main();
