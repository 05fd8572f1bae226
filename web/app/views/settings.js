// Settings (#/settings): the caller's API keys (a new key is shown once),
// the workspaces (create, switch) and the members of the current one, and
// for administrators the users of this bureaud.
import { get, post, del } from '../api.js';
import { ctx, setWorkspace } from '../context.js';
import { h, fill, fmtTime, fmtAgo, toast, dialog, confirm, empty, errorText } from '../ui.js';

// Reloads the caller's workspaces into ctx and the navigation's switcher,
// keeping the current one (a rename or a new plan limit shows at once).
export async function refreshWorkspaces() {
  const r = await get('/api/workspaces');
  ctx.workspaces = r.workspaces;
  if (ctx.workspace) ctx.workspace = ctx.workspaces.find((w) => w.id === ctx.workspace.id) || ctx.workspace;
  const sel = document.getElementById('workspace');
  if (sel) {
    fill(sel, ctx.workspaces.map((w) => h('option', { value: w.id }, w.name)));
    if (ctx.workspace) sel.value = ctx.workspace.id;
  }
  return ctx.workspaces;
}

// Makes another workspace the current one; main.js mounts the view again.
function switchTo(id) {
  const sel = document.getElementById('workspace');
  if (sel) sel.value = id;
  setWorkspace(id);
}

export function mount(el) {
  const page = new Settings(el);
  return () => page.destroy();
}

// A section: heading, a place for the list, and an inline error line.
function section(id, title, intro) {
  const list = h('div', { class: 'settings-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: 'card settings-section', id, 'aria-labelledby': id + '-title' },
    h('h2', { id: id + '-title' }, title), intro ? h('p', { class: 'muted settings-intro' }, intro) : null, list);
  return { el, list };
}

// An inline form: fields, a submit button, an error line; onsubmit gets
// the form and returns a promise; the button is disabled meanwhile and a
// thrown ApiError shows its message under the form.
function inlineForm(id, fields, label, onsubmit) {
  const error = h('p', { class: 'error settings-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary' }, label);
  const form = h('form', { class: 'settings-form', id, novalidate: true }, fields, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    error.hidden = true;
    try {
      await onsubmit(form);
    } catch (ex) {
      error.textContent = errorText(ex);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return h('div', null, form, error);
}

const field = (label, input) => h('label', null, label, input);
const listError = (what, e) => h('p', { class: 'error', role: 'alert' }, `${what} could not be loaded: ${errorText(e)}`);

class Settings {
  constructor(el) {
    this.alive = true;
    this.abort = new AbortController();
    this.keys = section('keys', 'API keys', 'For the bureau CLI and scripts: send one as "Authorization: Bearer KEY". A key acts as you, in every workspace you belong to.');
    this.workspaces = section('workspaces', 'Workspaces', 'Each workspace has its own desktops, plan and members.');
    const ws = ctx.workspace;
    this.members = section('members', ws ? `Members of ${ws.name}` : 'Members');
    this.users = ctx.me && ctx.me.isAdmin ? section('users', 'Users', 'Everyone who can log in to this bureaud. Only administrators see this.') : null;
    this.keys.el.append(this.keyForm());
    this.workspaces.el.append(this.workspaceForm());
    if (ws) this.members.el.append(this.memberForm());
    if (this.users) this.users.el.append(this.userForm());
    fill(el, h('div', { class: 'page settings' },
      h('div', { class: 'page-head' }, h('h1', null, 'Settings'), h('span', { class: 'spacer' }),
        h('span', { class: 'muted' }, 'Signed in as ' + (ctx.me ? ctx.me.email : '?') + (ctx.me && ctx.me.isAdmin ? ' (administrator)' : ''))),
      h('div', { class: 'settings-grid' }, this.keys.el, this.workspaces.el, this.members.el, this.users ? this.users.el : null)));
    this.loadKeys();
    this.renderWorkspaces();
    this.loadMembers();
    if (this.users) this.loadUsers();
  }

  destroy() {
    this.alive = false;
    this.abort.abort();
  }

  get(path) {
    return get(path, { signal: this.abort.signal });
  }

  // ---- API keys ----

  async loadKeys() {
    try {
      const r = await this.get('/api/api-keys');
      if (this.alive) this.renderKeys(r.apiKeys);
    } catch (e) {
      if (e.name !== 'AbortError') fill(this.keys.list, listError('The keys', e));
    }
  }

  renderKeys(keys) {
    if (!keys.length) { fill(this.keys.list, empty('No API keys yet.')); return; }
    keys = [...keys].sort((a, b) => (!!a.revokedAt - !!b.revokedAt) || b.createdAt.localeCompare(a.createdAt));
    fill(this.keys.list, h('table', { class: 'list settings-keys' },
      h('thead', null, h('tr', null, ['Name', 'Key', 'Created', 'Last used', ''].map((t) => h('th', null, t)))),
      h('tbody', null, keys.map((k) => h('tr', { dataset: { id: k.id }, class: k.revokedAt ? 'revoked' : null },
        h('td', null, k.name),
        h('td', null, h('code', null, k.prefix + '…')),
        h('td', { title: fmtTime(k.createdAt) }, fmtAgo(k.createdAt)),
        h('td', { title: k.lastUsedAt ? fmtTime(k.lastUsedAt) : '' }, k.lastUsedAt ? fmtAgo(k.lastUsedAt) : 'never'),
        h('td', { class: 'actions' }, k.revokedAt
          ? h('span', { class: 'badge expired', title: fmtTime(k.revokedAt) }, 'revoked')
          : h('button', { type: 'button', class: 'small danger', 'aria-label': 'Revoke ' + k.name, onclick: () => this.revokeKey(k) }, 'Revoke')))))));
  }

  keyForm() {
    const name = h('input', { name: 'name', autocomplete: 'off', maxlength: '63', placeholder: 'e.g. laptop-cli' });
    return inlineForm('key-form', field('Name', name), 'Create key', async () => {
      const k = await post('/api/api-keys', { name: name.value.trim() });
      name.value = '';
      this.loadKeys();
      await this.showKey(k);
    });
  }

  // The secret, this once: a read-only field, a copy button, and a plain
  // warning; the dialog (and the secret with it) is gone when closed.
  async showKey(k) {
    const input = h('input', { id: 'new-key', class: 'mono settings-secret', readonly: true, value: k.key, 'aria-label': 'The new API key', spellcheck: 'false' });
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', { type: 'button', class: 'primary', onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(k.key);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'Copying was refused by the browser: the key is selected, press Ctrl+C.';
      }
    } }, 'Copy');
    input.addEventListener('focus', () => input.select());
    await dialog({
      title: `API key “${k.name}” created`,
      body: h('div', { class: 'settings-newkey' },
        h('p', null, h('strong', null, 'Copy it now: you will not see it again.'), ' bureau stores only a hash of it.'),
        h('div', { class: 'row' }, input, copy), copied,
        h('p', { class: 'muted' }, 'Use it with the CLI: ', h('code', null, 'BUREAU_API_KEY=… bureau desktops ls'))),
      actions: [{ label: 'Done', value: true, class: 'primary' }],
    });
    input.value = '';
  }

  async revokeKey(k) {
    const ok = await confirm(`Revoke “${k.name}”?`,
      'Programs using this key get 401 Unauthorized from now on. This cannot be undone.', 'Revoke key', true);
    if (!ok || !this.alive) return;
    try {
      await del('/api/api-keys/' + encodeURIComponent(k.id));
      toast(`Key “${k.name}” revoked`, 'ok');
    } catch (e) {
      toast(`Revoking “${k.name}” failed: ${errorText(e)}`, 'error');
    }
    if (this.alive) this.loadKeys();
  }

  // ---- workspaces ----

  renderWorkspaces() {
    const list = ctx.workspaces;
    if (!list.length) { fill(this.workspaces.list, empty('You belong to no workspace.')); return; }
    fill(this.workspaces.list, h('table', { class: 'list settings-workspaces' },
      h('thead', null, h('tr', null, ['Name', 'Your role', 'Plan limit', ''].map((t) => h('th', null, t)))),
      h('tbody', null, list.map((w) => {
        const current = ctx.workspace && w.id === ctx.workspace.id;
        return h('tr', { dataset: { id: w.id }, class: current ? 'selected' : null },
          h('td', { title: 'Created ' + fmtTime(w.createdAt) }, h('div', null, w.name, current ? h('span', { class: 'badge info settings-current' }, 'current') : null),
            h('div', { class: 'mono muted settings-id' }, w.id)),
          h('td', null, w.role),
          h('td', null, w.planLimit + ' desktops'),
          h('td', { class: 'actions' }, current ? null
            : h('button', { type: 'button', class: 'small', 'aria-label': 'Switch to ' + w.name, onclick: () => switchTo(w.id) }, 'Switch')));
      }))));
  }

  workspaceForm() {
    const name = h('input', { name: 'name', autocomplete: 'off', placeholder: 'e.g. research' });
    return inlineForm('workspace-form', field('New workspace', name), 'Create workspace', async () => {
      const w = await post('/api/workspaces', { name: name.value.trim() });
      name.value = '';
      await refreshWorkspaces();
      if (!this.alive) return;
      this.renderWorkspaces();
      toast(h('span', null, `Workspace “${w.name}” created. `,
        h('button', { type: 'button', class: 'link', onclick: () => switchTo(w.id) }, 'Switch to it')), 'ok');
    });
  }

  // ---- members of the current workspace ----

  async loadMembers() {
    const ws = ctx.workspace;
    if (!ws) { fill(this.members.list, empty('No current workspace.')); return; }
    try {
      const r = await this.get(`/api/workspaces/${encodeURIComponent(ws.id)}/members`);
      if (!this.alive) return;
      fill(this.members.list, h('table', { class: 'list settings-members' },
        h('thead', null, h('tr', null, ['Email', 'Role', 'Added'].map((t) => h('th', null, t)))),
        h('tbody', null, r.members.map((m) => h('tr', { dataset: { id: m.userId } },
          h('td', null, m.email, ctx.me && m.userId === ctx.me.id ? h('span', { class: 'muted' }, ' (you)') : null),
          h('td', null, h('span', { class: 'badge' + (m.role === 'owner' ? ' info' : '') }, m.role)),
          h('td', { title: fmtTime(m.createdAt) }, fmtAgo(m.createdAt)))))));
    } catch (e) {
      if (e.name !== 'AbortError') fill(this.members.list, listError('The members', e));
    }
  }

  memberForm() {
    const ws = ctx.workspace;
    if (!(ws.role === 'owner' || ws.role === 'admin' || (ctx.me && ctx.me.isAdmin)))
      return h('p', { class: 'muted' }, 'Only the owner and admins of this workspace add members.');
    const email = h('input', { name: 'email', type: 'email', autocomplete: 'off', placeholder: 'someone@example.org' });
    const role = h('select', { name: 'role' }, h('option', { value: 'member' }, 'member'), h('option', { value: 'admin' }, 'admin'));
    return inlineForm('member-form', [field('Email of an existing user', email), field('Role', role)], 'Add member', async () => {
      const m = await post(`/api/workspaces/${encodeURIComponent(ws.id)}/members`, { email: email.value.trim(), role: role.value });
      email.value = '';
      toast(`${m.email} added to ${ws.name} as ${m.role}`, 'ok');
      if (this.alive) this.loadMembers();
    });
  }

  // ---- users (administrators) ----

  async loadUsers() {
    try {
      const r = await this.get('/api/users');
      if (!this.alive) return;
      fill(this.users.list, h('table', { class: 'list settings-users' },
        h('thead', null, h('tr', null, ['Email', 'Role', 'Created'].map((t) => h('th', null, t)))),
        h('tbody', null, r.users.map((u) => h('tr', { dataset: { id: u.id } },
          h('td', null, u.email),
          h('td', null, u.isAdmin ? h('span', { class: 'badge info' }, 'administrator') : 'user'),
          h('td', { title: fmtTime(u.createdAt) }, fmtAgo(u.createdAt)))))));
    } catch (e) {
      if (e.name !== 'AbortError') fill(this.users.list, listError('The users', e));
    }
  }

  userForm() {
    const email = h('input', { name: 'email', type: 'email', autocomplete: 'off', placeholder: 'someone@example.org' });
    const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'at least 8 characters' });
    const admin = h('input', { name: 'isAdmin', type: 'checkbox' });
    return inlineForm('user-form', [field('Email', email), field('Password', password),
      h('label', { class: 'inline settings-admin' }, admin, 'Administrator')], 'Create user', async () => {
      const u = await post('/api/users', { email: email.value.trim(), password: password.value, isAdmin: admin.checked });
      email.value = '';
      password.value = '';
      admin.checked = false;
      toast(`User ${u.email} created, with a workspace of their own`, 'ok');
      if (this.alive) this.loadUsers();
    });
  }
}
