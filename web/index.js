// The front page: log in, then the desktops with links to their consoles.
import { setStatus } from './console.js';

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

async function showDesktops() {
  const r = await fetch('/api/desktops', { credentials: 'same-origin' });
  if (r.status === 401) {
    document.getElementById('login').hidden = false;
    return;
  }
  const body = document.querySelector('#desktops tbody');
  body.textContent = '';
  for (const d of (await r.json()).desktops) {
    const tr = document.createElement('tr');
    tr.append(cell(d.name), cell(d.state));
    const links = document.createElement('td');
    for (const [kind, label] of [['screen', 'Screen'], ['terminal', 'Terminal']]) {
      const a = document.createElement('a');
      a.href = `/desktops/${encodeURIComponent(d.id)}/${kind}`;
      a.textContent = label;
      links.append(a, ' ');
    }
    tr.append(links);
    body.append(tr);
  }
  document.getElementById('desktops').hidden = false;
}

document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/api/auth/login', {
    method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: document.getElementById('email').value,
      password: document.getElementById('password').value }),
  });
  if (!r.ok) {
    setStatus('login failed', 'error');
    return;
  }
  document.getElementById('login').hidden = true;
  setStatus('');
  showDesktops();
});

showDesktops();
