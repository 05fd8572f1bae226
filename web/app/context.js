// Who is logged in and which workspace the dashboard shows. Views read
// ctx; a workspace switch fires "workspacechange" on window.
export const ctx = {
  me: null,          // {id, email, isAdmin, createdAt}
  workspaces: [],    // [{id, name, role, planLimit, createdAt}]
  workspace: null,   // the current one, from workspaces
  tiers: [],         // GET /api/tiers
};

const KEY = 'bureau.workspace';

export function setWorkspace(id) {
  const w = ctx.workspaces.find((x) => x.id === id) || ctx.workspaces[0] || null;
  const changed = w !== ctx.workspace;
  ctx.workspace = w;
  if (w) localStorage.setItem(KEY, w.id);
  if (changed) window.dispatchEvent(new CustomEvent('workspacechange', { detail: w }));
}

export function savedWorkspace() { return localStorage.getItem(KEY); }
