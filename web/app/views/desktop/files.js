// The files panel: browse the desktop's files from /home/agent (GET
// …/files/list), make folders, delete (with confirmation), download (a
// same-origin link: the browser streams it to disk) and upload by drag and
// drop or with the file picker (PUT …/files?path= with the raw bytes,
// through XMLHttpRequest for its upload progress).
import { get, post, del, qs } from '../../api.js';
import { h, fill, toast, errorText, confirm, dialog, fmtBytes, fmtTime, empty } from '../../ui.js';

// The agent user's home: /home/agent, or /data/home/agent on the tiny
// test image (its root file system is read-only). It reaches only its home
// and /tmp.
const HIDDEN_KEY = 'bureau.files.hidden';
const homeOf = (d) => (d && d.image === 'tiny' ? '/data/home/agent' : '/home/agent');

// Small line icons for the listing (inline SVG, coloured by CSS).
const ICONS = {
  dir: 'M1.5 3.5h4l1.5 1.5h7.5v8.5h-13z',
  file: 'M3.5 1.5h6l3 3v10h-9zM9.5 1.5v3h3',
  link: 'M3.5 1.5h6l3 3v10h-9zM6 11l4-4M7 7h3v3',
};

function icon(type) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('class', 'dv-icon ' + type);
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[type] || ICONS.file);
  svg.append(p);
  return svg;
}

function join(dir, name) {
  return dir === '/' ? '/' + name : dir + '/' + name;
}

function parent(path) {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

// A valid single path component (the server checks too).
function badName(name) {
  if (!name) return 'A name is needed.';
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return 'A name cannot be ".", ".." or contain "/".';
  if (new TextEncoder().encode(name).length > 255) return 'A name is at most 255 bytes.';
  return null;
}

// The ApiError-like {status, message} of a finished XMLHttpRequest.
function xhrError(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && body.error) return { status: xhr.status, message: body.error.message };
  } catch { /* not JSON */ }
  return { status: xhr.status, message: xhr.status ? `HTTP ${xhr.status}` : 'the connection failed' };
}

export function createFiles(env) {
  // Read by tests: path, entries, uploads (in flight).
  const home = homeOf(env.desktop());
  const PLACES = [[home, 'Home'], ['/tmp', '/tmp']];
  const state = { path: home, entries: [], uploads: 0, loaded: false };
  const base = `/api/desktops/${encodeURIComponent(env.id)}/files`;
  let running = false;
  let visible = false;
  let stale = true;
  let seq = 0;
  let dragDepth = 0;
  let last = null; // the listing shown
  const xhrs = new Set();

  const crumbs = h('nav', { class: 'dv-crumbs', 'aria-label': 'Folder' });
  const picker = h('input', { type: 'file', multiple: true, hidden: true, class: 'dv-picker', 'aria-label': 'Files to upload' });
  const hiddenBox = h('input', { type: 'checkbox', checked: localStorage.getItem(HIDDEN_KEY) === '1' });
  hiddenBox.addEventListener('change', () => {
    localStorage.setItem(HIDDEN_KEY, hiddenBox.checked ? '1' : '0');
    if (state.loaded) render(last);
  });
  const upBtn = h('button', { type: 'button', class: 'small', onclick: () => go(parent(state.path)), title: 'Parent folder', 'aria-label': 'Parent folder' }, '↑ Up');
  const toolbar = h('div', { class: 'dv-subhead' }, crumbs, h('span', { class: 'spacer' }),
    h('label', { class: 'inline dv-hidden-toggle' }, hiddenBox, 'Hidden files'),
    PLACES.map(([p, label]) => h('button', { type: 'button', class: 'small link', onclick: () => go(p) }, label)),
    upBtn,
    h('button', { type: 'button', class: 'small', onclick: () => refresh(), title: 'Reload the folder' }, 'Refresh'),
    h('button', { type: 'button', class: 'small', onclick: mkdir }, 'New folder'),
    h('button', { type: 'button', class: 'small primary', onclick: () => picker.click() }, 'Upload…'),
    picker);
  const uploads = h('ul', { class: 'dv-uploads', 'aria-label': 'Uploads' });
  const tbody = h('tbody');
  const table = h('table', { class: 'list dv-files-table' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'),
      h('th', { scope: 'col' }, 'Modified'), h('th', { scope: 'col' }, h('span', { class: 'dv-sr-only' }, 'Actions')))),
    tbody);
  const message = h('div', { class: 'dv-files-msg', hidden: true });
  const dropHint = h('div', { class: 'dv-drop-hint', 'aria-hidden': 'true' });
  const el = h('div', { class: 'dv-files' }, toolbar, uploads, message,
    h('div', { class: 'dv-files-scroll' }, table), dropHint);

  picker.addEventListener('change', () => {
    const files = [...picker.files];
    picker.value = '';
    uploadAll(files);
  });

  // Drag and drop onto the whole panel.
  const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes('Files');
  el.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth++;
    dropHint.textContent = 'Drop to upload to ' + state.path;
    el.classList.add('dragging');
  });
  el.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = running ? 'copy' : 'none';
  });
  el.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) el.classList.remove('dragging');
  });
  el.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    el.classList.remove('dragging');
    uploadAll([...e.dataTransfer.files]);
  });

  function showMessage(text, cls = 'muted') {
    message.className = 'dv-files-msg ' + cls;
    message.textContent = text;
    message.hidden = !text;
  }

  function renderCrumbs() {
    const p = state.path;
    const place = PLACES.find(([root]) => p === root || p.startsWith(root + '/'));
    const parts = [];
    let acc;
    let rest;
    if (place) {
      parts.push([place[0], place[0]]);
      acc = place[0];
      rest = p.slice(place[0].length).split('/').filter(Boolean);
    } else {
      parts.push(['/', '/']);
      acc = '';
      rest = p.split('/').filter(Boolean);
    }
    for (const seg of rest) {
      acc = acc === '/' ? '/' + seg : acc + '/' + seg;
      parts.push([acc, seg]);
    }
    fill(crumbs, parts.map(([path, label], i) => {
      const last = i === parts.length - 1;
      const node = last
        ? h('span', { class: 'dv-crumb', 'aria-current': 'location', title: path }, label)
        : h('button', { type: 'button', class: 'link dv-crumb', title: path, onclick: () => go(path) }, label);
      return [i ? h('span', { class: 'dv-crumb-sep', 'aria-hidden': 'true' }, '/') : null, node];
    }));
    upBtn.disabled = p === '/' || PLACES.some(([root]) => root === p);
  }

  function row(e) {
    const path = join(state.path, e.name);
    const dir = e.type === 'dir';
    const name = dir
      ? h('button', { type: 'button', class: 'link dv-name', onclick: () => go(path) }, icon('dir'), e.name + '/')
      : h('span', { class: 'dv-name' }, icon(e.type === 'symlink' ? 'link' : 'file'), e.name,
        e.type === 'symlink' && e.target ? h('span', { class: 'muted' }, ' → ' + e.target) : null);
    const actions = h('td', { class: 'dv-actions-cell' },
      e.type === 'file' ? h('a', {
        class: 'small dv-download', href: base + qs({ path }), download: e.name, 'aria-label': 'Download ' + e.name,
      }, 'Download') : null,
      h('button', { type: 'button', class: 'small', onclick: () => remove(e), 'aria-label': 'Delete ' + e.name }, 'Delete'));
    return h('tr', { dataset: { name: e.name, type: e.type } },
      h('td', null, name),
      h('td', { class: 'num' }, dir ? '—' : fmtBytes(e.size)),
      h('td', { title: fmtTime(e.mtime) }, new Date(e.mtime).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })),
      actions);
  }

  function render(r) {
    last = r;
    state.entries = r.entries;
    const shown = hiddenBox.checked ? r.entries : r.entries.filter((e) => !e.name.startsWith('.'));
    const sorted = [...shown].sort((a, b) => (b.type === 'dir') - (a.type === 'dir') || a.name.localeCompare(b.name));
    fill(tbody, sorted.map(row));
    const hidden = r.entries.length - shown.length;
    if (!sorted.length) {
      tbody.append(h('tr', null, h('td', { colspan: 4 }, empty(hidden
        ? `Only hidden files here (${hidden}). Drop files here to upload them.`
        : 'This folder is empty. Drop files here to upload them.'))));
    }
    showMessage(r.truncated ? `Only the first ${r.entries.length} entries are listed.` : '');
  }

  async function refresh() {
    renderCrumbs();
    if (!running) {
      fill(tbody);
      showMessage('The desktop is not running: its files are shown when it runs.');
      return;
    }
    const my = ++seq;
    stale = false;
    try {
      const r = await get(base + '/list' + qs({ path: state.path }));
      if (my !== seq) return;
      state.loaded = true;
      render(r);
    } catch (e) {
      if (my !== seq) return;
      fill(tbody);
      showMessage(`${state.path}: ${errorText(e)}`, 'error');
    }
  }

  function go(path) {
    state.path = path;
    refresh();
  }

  async function mkdir() {
    const input = h('input', { type: 'text', required: true, maxlength: 255, autocomplete: 'off' });
    const err = h('p', { class: 'error', role: 'alert', hidden: true });
    const form = h('form', { class: 'dv-dialog-form' },
      h('label', null, 'Folder name', input),
      h('p', { class: 'muted' }, 'In ' + state.path), err);
    const dir = state.path;
    const fail = (text) => { err.textContent = text; err.hidden = false; return false; };
    const create = async () => {
      const name = input.value.trim();
      const bad = badName(name);
      if (bad) return fail(bad);
      try {
        await post(base + '/mkdir', { path: join(dir, name) });
        return true;
      } catch (e) {
        return fail(errorText(e));
      }
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      form.closest('dialog').querySelector('.actions button.primary').click();
    });
    setTimeout(() => input.focus(), 0);
    const v = await dialog({
      title: 'New folder', body: form,
      actions: [{ label: 'Cancel', value: false }, { label: 'Create', value: true, class: 'primary', check: create }],
    });
    if (v) {
      toast('Folder created: ' + input.value.trim(), 'ok');
      if (state.path === dir) refresh();
    }
  }

  async function remove(e) {
    const dir = e.type === 'dir';
    const path = join(state.path, e.name);
    const ok = await confirm(`Delete ${e.name}?`,
      dir ? `The folder ${path} and everything in it are deleted from the desktop. This cannot be undone.`
        : `${path} is deleted from the desktop. This cannot be undone.`, 'Delete', true);
    if (!ok) return;
    try {
      await del(base + qs({ path, recursive: dir ? 'true' : null }));
      toast('Deleted ' + e.name, 'ok');
      refresh();
    } catch (err) {
      toast(`${e.name} was not deleted: ${errorText(err)}`, 'error');
    }
  }

  async function uploadAll(files) {
    if (!files.length) return;
    if (!running) {
      toast('The desktop is not running: nothing was uploaded.', 'error');
      return;
    }
    const dir = state.path;
    const existing = new Set(state.entries.map((e) => e.name));
    const clash = files.filter((f) => existing.has(f.name));
    if (clash.length && !(await confirm('Replace files?',
      `${clash.map((f) => f.name).join(', ')} already exist${clash.length === 1 ? 's' : ''} in ${dir} and will be replaced.`, 'Replace'))) return;
    await Promise.all(files.map((f) => upload(f, dir)));
    if (state.path === dir) refresh();
  }

  // One file: a line in the uploads list with its progress.
  function upload(file, dir) {
    const bad = badName(file.name);
    if (bad) {
      toast(`${file.name}: ${bad}`, 'error');
      return Promise.resolve();
    }
    const path = join(dir, file.name);
    const bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': 'Upload of ' + file.name });
    const text = h('span', { class: 'muted' }, '0 of ' + fmtBytes(file.size));
    const xhr = new XMLHttpRequest();
    const cancel = h('button', { type: 'button', class: 'small link', onclick: () => xhr.abort() }, 'Cancel');
    const item = h('li', { dataset: { name: file.name } }, h('span', { class: 'dv-upload-name' }, file.name), bar, text, cancel);
    uploads.append(item);
    state.uploads++;
    xhrs.add(xhr);
    return new Promise((resolve) => {
      const finish = (ok, msg) => {
        xhrs.delete(xhr);
        state.uploads--;
        cancel.remove();
        text.textContent = msg;
        item.classList.add(ok ? 'done' : 'failed');
        if (ok) setTimeout(() => item.remove(), 4000);
        else item.append(h('button', { type: 'button', class: 'small link', onclick: () => item.remove(), 'aria-label': 'Dismiss' }, 'Dismiss'));
        resolve();
      };
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable) return;
        bar.max = e.total || 1;
        bar.value = e.loaded;
        text.textContent = `${fmtBytes(e.loaded)} of ${fmtBytes(e.total)}`;
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = bar.max;
          finish(true, 'uploaded ' + fmtBytes(file.size));
        } else {
          const e = xhrError(xhr);
          toast(`${file.name} was not uploaded: ${e.message}`, 'error');
          finish(false, e.message);
        }
      };
      xhr.onerror = () => {
        toast(`${file.name} was not uploaded: the connection failed`, 'error');
        finish(false, 'the connection failed');
      };
      xhr.onabort = () => finish(false, 'cancelled');
      xhr.open('PUT', base + qs({ path }));
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.send(file);
    });
  }

  function update(d) {
    const was = running;
    running = d.state === 'running';
    if (running !== was) stale = true;
    if (visible && stale) refresh();
  }

  function shown() {
    visible = true;
    if (stale || !state.loaded) refresh();
  }

  function hidden() {
    visible = false;
  }

  function destroy() {
    seq++;
    for (const x of xhrs) x.abort();
  }

  renderCrumbs();
  return { el, state, update, shown, hidden, destroy };
}
