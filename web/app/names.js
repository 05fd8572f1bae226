// The names behind the ids views show: the workspace's desktops and its
// members' emails. A part that does not load is reported with a toast and
// comes back empty, so the view shows ids instead.
import { get, qs } from './api.js';
import { toast, errorText } from './ui.js';

// Resolves {desktops: Map(id -> name), users: Map(userId -> email),
// desktopList, memberList} for workspace ws.
export async function workspaceNames(ws) {
  const [dks, members] = await Promise.allSettled([
    get('/api/desktops' + qs({ workspaceId: ws })),
    get('/api/workspaces/' + encodeURIComponent(ws) + '/members'),
  ]);
  const out = { desktops: new Map(), users: new Map(), desktopList: [], memberList: [] };
  if (dks.status === 'fulfilled') {
    out.desktopList = dks.value.desktops;
    for (const d of out.desktopList) out.desktops.set(d.id, d.name);
  } else {
    toast('Desktop names did not load: ' + errorText(dks.reason), 'error');
  }
  if (members.status === 'fulfilled') {
    out.memberList = members.value.members;
    for (const m of out.memberList) out.users.set(m.userId, m.email);
  } else {
    toast('Members did not load: ' + errorText(members.reason), 'error');
  }
  return out;
}
