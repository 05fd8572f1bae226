// Mission Control's inboxes in a real browser (Debian's chromium through
// playwright-core) against a bureaud, a running tiny desktop whose pilot
// talks to the scripted model server, and real approvals and alerts, all
// provided by tests/e2e/test_web_inbox.py:
//   BUREAU_URL=http://127.0.0.1:PORT BUREAU_DESKTOP=dsk_… BUREAU_DESKTOP_NAME=…
//   BUREAU_WORKSPACE=ws_… BUREAU_KEY=<the admin's API key> BUREAU_EMAIL=… BUREAU_PASSWORD=…
// The model answers each chat message with a shell tool call the policy
// stops (sudo), then with text. The API key plays the other people and the
// guest: it sends the chat messages, decides or acknowledges first for the
// conflict cases, and fills the guest's memory so that a memory rule set
// in the page fires. Prints TAP; screenshots go to tests/browser/screenshots/.
import { tap, browser, login, shot, until } from './lib.mjs';

const base = process.env.BUREAU_URL;
const did = process.env.BUREAU_DESKTOP;
const dname = process.env.BUREAU_DESKTOP_NAME;
const ws = process.env.BUREAU_WORKSPACE;
const key = process.env.BUREAU_KEY;
const email = process.env.BUREAU_EMAIL;
const password = process.env.BUREAU_PASSWORD;
const extra = process.env.INBOX_EXTRA_SHOTS; // a folder for more screenshots (looking, not testing)
const t = tap();

async function api(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: 'Bearer ' + key, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body: json };
}

async function exec(cmd) {
  return api('POST', `/api/desktops/${did}/exec`, { command: ['sh', '-c', cmd], user: 'root' });
}

// The requests that failed on purpose; anything else failing is a bug.
const PROVOKED = [
  /^PUT \/api\/workspaces\/ws_\w+\/alert-rules 400$/,
  /^PUT \/api\/workspaces\/ws_\w+\/webhook 400$/,
  /^POST \/api\/approvals\/apr_\w+ 409$/,
  /^POST \/api\/alerts\/alr_\w+\/ack 409$/,
  /^GET \/api\/audit 400$/,
];

async function watchFailures(page, list) {
  page.on('response', (r) => {
    if (r.status() >= 400) list.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });
}

const navCount = (page, id) => page.evaluate((i) => {
  const el = document.getElementById(i);
  return el.hidden ? 0 : Number(el.textContent);
}, id);

const toasts = (page) => page.$$eval('#toasts .toast', (els) => els.map((e) => e.className + ': ' + e.textContent));

// The shared event stream of the page, off and on (to decide "elsewhere"
// before the page hears of it).
const streamOff = (page) => page.evaluate(async () => (await import('/static/app/events.js')).disconnect());
const streamOn = (page) => page.evaluate(async (w) => (await import('/static/app/events.js')).connect(w), ws);

async function pendingCard(page, before) {
  return until(async () => {
    const ids = await page.$$eval('.apr-card[data-status="pending"]', (els) => els.map((e) => e.dataset.id));
    return ids.find((id) => !before.includes(id));
  }, 90000, 300);
}

async function historyRow(page, id) {
  return until(() => page.evaluate((i) => {
    const tr = document.querySelector(`.apr-history tr[data-id="${i}"]`);
    if (!tr) return null;
    return {
      status: tr.dataset.status, by: tr.querySelector('.apr-by').textContent,
      note: tr.querySelector('.apr-h-note').textContent, conflict: tr.querySelector('.apr-conflict')?.textContent || '',
      pending: !!document.querySelector(`.apr-card[data-id="${i}"]`),
    };
  }, id), 20000, 200);
}

// The pilot's tool result in its answer to the chat message msg, once the
// decision reached it.
async function toolOutput(msg) {
  return until(async () => {
    const r = await api('GET', `/api/desktops/${did}/chat?limit=500`);
    const msgs = (r.body && r.body.messages) || [];
    return msgs.find((m) => m.replyTo === msg && m.role === 'tool_result');
  }, 60000, 500);
}

async function approvals(page, failures) {
  await page.click('a[data-nav="approvals"]');
  await page.waitForSelector('.approvals .apr-history');
  await until(() => page.evaluate(() => !document.querySelector('.approvals .apr-list + .empty').hidden), 10000);
  t.ok(await page.isVisible('text=Nothing is waiting for a decision.'), 'approvals: an empty inbox says so');
  t.ok(await navCount(page, 'count-approvals') === 0, 'approvals: no nav count while nothing is pending');

  // 1. a new approval arrives live: nav count, notification, the card
  let r = await api('POST', `/api/desktops/${did}/chat`, { message: 'Do the sensitive thing (1)' });
  t.ok(r.status === 202, 'the chat message is accepted', r);
  const m1 = r.body.id;
  const a1 = await pendingCard(page, []);
  t.ok(a1, 'approvals: the new approval appears without a reload');
  t.ok(await until(async () => await navCount(page, 'count-approvals') === 1, 10000), 'approvals: the nav count shows 1',
    await navCount(page, 'count-approvals'));
  const notes = await until(() => page.evaluate(() => window.__notifications.length && window.__notifications), 10000);
  t.ok(notes && notes.some((n) => n.title === 'Approval needed: ' + dname && /sudo true/.test(n.body)),
    'a browser notification is raised with the desktop\'s name and the action', notes);
  const card = await page.evaluate((id) => {
    const c = document.querySelector(`.apr-card[data-id="${id}"]`);
    return {
      link: c.querySelector('a.apr-desktop').getAttribute('href'), name: c.querySelector('a.apr-desktop').textContent,
      action: c.querySelector('.apr-action').textContent, kind: c.querySelector('.apr-kind').textContent,
      reason: c.querySelector('.apr-reason').textContent, left: c.querySelector('.apr-left').textContent,
    };
  }, a1);
  t.ok(card.link === '#/desktops/' + did && card.name === dname, 'approvals: the card links to its desktop by name', card);
  t.ok(card.action === 'sudo true; echo approved-$((40+2))' && /shell/i.test(card.kind) && /sudo/.test(card.reason),
    'approvals: the card shows the exact action, the kind and the reason', card);
  t.ok(/^expires in \d+m \d+s$/.test(card.left), 'approvals: the card counts down to its expiry', card.left);
  const left1 = card.left;
  await page.waitForTimeout(2200);
  const left2 = await page.textContent(`.apr-card[data-id="${a1}"] .apr-left`);
  t.ok(left2 !== left1, 'approvals: the countdown is live', [left1, left2]);
  const img = await until(() => page.evaluate((id) => {
    const i = document.querySelector(`.apr-card[data-id="${id}"] img.shot`);
    return i && i.complete && i.naturalWidth > 0 && { w: i.naturalWidth, src: i.getAttribute('src') };
  }, a1), 40000, 500);
  t.ok(img && img.src === `/api/approvals/${a1}/screenshot`, 'approvals: the card shows the screenshot taken when it was asked', img);
  if (img) {
    await page.click(`.apr-card[data-id="${a1}"] button.apr-shot`);
    const big = await until(() => page.evaluate(() => {
      const i = document.querySelector('dialog[open] img.apr-full');
      return i && i.complete && i.naturalWidth > 0;
    }), 10000);
    t.ok(big, 'approvals: clicking the screenshot enlarges it in a dialog');
    await page.keyboard.press('Escape');
    t.ok(await until(() => page.evaluate(() => !document.querySelector('dialog[open]')), 5000), 'approvals: Escape closes it');
  }

  // 2. approve
  await page.click(`.apr-card[data-id="${a1}"] button:text("Approve")`);
  let h = await historyRow(page, a1);
  t.ok(h && h.status === 'approved' && h.by === email && !h.pending, 'approvals: Approve moves it to the history, approved by the admin', h);
  t.ok(await until(async () => await navCount(page, 'count-approvals') === 0, 10000), 'approvals: the nav count drops');
  const out1 = await toolOutput(m1);
  t.ok(out1 && /approved-42/.test(out1.content), 'approvals: the approved command ran in the guest', out1);

  // 3. deny with a note
  r = await api('POST', `/api/desktops/${did}/chat`, { message: 'Do the sensitive thing (2)' });
  const m2 = r.body.id;
  const a2 = await pendingCard(page, [a1]);
  t.ok(a2 && a2 !== a1, 'approvals: a second approval appears');
  await page.fill(`.apr-card[data-id="${a2}"] input.apr-note`, 'not on a Friday');
  await page.click(`.apr-card[data-id="${a2}"] button:text("Deny")`);
  h = await historyRow(page, a2);
  t.ok(h && h.status === 'denied' && h.note === 'not on a Friday' && h.by === email,
    'approvals: Deny with a note: denied, with the note and who', h);
  const out2 = await toolOutput(m2);
  t.ok(out2 && !/approved-42/.test(out2.content) && out2.data && out2.data.refused, 'approvals: the denied command was refused', out2);

  // 4. a third one, decided elsewhere first: 409, said plainly
  r = await api('POST', `/api/desktops/${did}/chat`, { message: 'Do the sensitive thing (3)' });
  const m3 = r.body.id;
  const a3 = await pendingCard(page, [a1, a2]);
  t.ok(a3, 'approvals: a third approval appears');
  await until(() => page.evaluate((id) => {
    const i = document.querySelector(`.apr-card[data-id="${id}"] img.shot`);
    return i && i.complete && i.naturalWidth > 0;
  }, a3), 40000, 500);
  await shot(page, 'approvals');
  if (extra) await page.screenshot({ path: extra + '/approvals-full.png', fullPage: true });
  await streamOff(page);
  r = await api('POST', `/api/approvals/${a3}`, { decision: 'approve', note: 'from the CLI' });
  t.ok(r.status === 200, 'someone else approves it through the API', r);
  await page.click(`.apr-card[data-id="${a3}"] button:text("Deny")`);
  h = await historyRow(page, a3);
  t.ok(h && h.status === 'approved' && h.note === 'from the CLI' && /already decided/.test(h.conflict) && !h.pending,
    'approvals: a decision taken elsewhere first (409) is shown and the item moves to the history as it is', h);
  const ts = await toasts(page);
  t.ok(ts.some((x) => /error/.test(x) && /Could not deny: the approval was already decided/.test(x)),
    'approvals: the conflict is also said in an alert toast', ts);
  await streamOn(page);
  t.ok(failures.some((f) => /^POST \/api\/approvals\/\w+ 409$/.test(f)), 'approvals: the page did get the 409', failures);
  await toolOutput(m3);

  // 5. nobody answers: it expires, live
  r = await api('PUT', `/api/workspaces/${ws}/approval-rules`, { rules: [], timeoutSeconds: 5 });
  t.ok(r.status === 200, 'approvals time out after 5 s (API)', r);
  r = await api('POST', `/api/desktops/${did}/chat`, { message: 'Do the sensitive thing (4)' });
  const m4 = r.body.id;
  const a4 = await pendingCard(page, [a1, a2, a3]);
  t.ok(a4, 'approvals: a fourth approval appears');
  const soon = await until(() => page.evaluate((id) => {
    const l = document.querySelector(`.apr-card[data-id="${id}"] .apr-left`);
    return l && l.classList.contains('soon') && l.textContent;
  }, a4), 5000, 100);
  t.ok(soon && /^(expires in \d+s|expiring…)$/.test(soon), 'approvals: a close expiry stands out', soon);
  h = await historyRow(page, a4);
  t.ok(h && h.status === 'expired' && h.by === 'timeout' && !h.pending, 'approvals: when nobody answers it moves to the history as expired', h);
  await toolOutput(m4);
  await api('PUT', `/api/workspaces/${ws}/approval-rules`, { rules: [], timeoutSeconds: 600 });

  // 6. the history filter
  await page.selectOption('.apr-history-head select', 'denied');
  const only = await until(() => page.evaluate(() => {
    const rows = [...document.querySelectorAll('.apr-history tbody tr')];
    return rows.length && rows.every((r) => r.dataset.status === 'denied') && rows.map((r) => r.dataset.id);
  }), 10000);
  t.ok(only && only.length === 1 && only[0] === a2, 'approvals: the history shows only denied ones when asked', only);
  await page.selectOption('.apr-history-head select', '');
  const all = await until(() => page.evaluate(() => document.querySelectorAll('.apr-history tbody tr').length === 4), 10000);
  t.ok(all, 'approvals: and every decided one again');
}

async function alerts(page, failures) {
  await page.click('a[data-nav="alerts"]');
  await page.waitForSelector('.alerts .alr-rules-form input[name="memory.thresholdPercent"]');
  await until(() => page.evaluate(() => !document.querySelector('#alr-panel .empty').hidden || document.querySelectorAll('.alr-table tbody tr').length), 10000);
  t.ok(await page.evaluate(() => document.querySelectorAll('.alr-table tbody tr').length) === 0,
    'alerts: another workspace\'s alert is not listed (bob\'s refused burst)');
  t.ok(await until(() => page.evaluate(() => /No webhook/.test(document.querySelector('.alr-hook-state').textContent)), 10000),
    'alerts: the webhook editor says none is set');

  // the rules editor: the server's validation, inline
  await page.fill('input[name="cpu.thresholdPercent"]', '150');
  await page.click('.alr-rules-form button[type="submit"]');
  const err = await until(() => page.evaluate(() => {
    const e = document.querySelector('.alr-rules .alr-form-error');
    return e && !e.hidden && e.textContent;
  }), 10000);
  t.ok(err && /cpu\.thresholdPercent/.test(err), 'alerts: a threshold over 100 % is refused, the server\'s message inline', err);
  let rules = await api('GET', `/api/workspaces/${ws}/alert-rules`);
  t.ok(rules.body.cpu.thresholdPercent === 90, 'alerts: and nothing changed', rules.body);

  // the webhook editor: refused, set (the generated secret shown once), removed
  await page.fill('#alr-hook-url', 'ftp://127.0.0.1/hook');
  await page.click('.alr-hook-form button[type="submit"]');
  const herr = await until(() => page.evaluate(() => {
    const e = document.querySelector('.alr-hook .alr-form-error');
    return e && !e.hidden && e.textContent;
  }), 10000);
  t.ok(herr && /Not saved/.test(herr), 'alerts: an ftp webhook URL is refused, the server\'s message inline', herr);
  await page.fill('#alr-hook-url', 'http://127.0.0.1:9/bureau-hook');
  await page.click('.alr-hook-form button[type="submit"]');
  const secret = await until(() => page.evaluate(() => {
    const s = document.querySelector('.alr-secret');
    return s && !s.hidden && s.querySelector('input').value;
  }), 10000);
  const hook = await api('GET', `/api/workspaces/${ws}/webhook`);
  t.ok(secret && secret.startsWith('whsec_') && hook.status === 200 && hook.body.url === 'http://127.0.0.1:9/bureau-hook',
    'alerts: a webhook is set and its generated secret shown once', [secret, hook]);
  t.ok(await page.evaluate(() => document.querySelector('.alr-hook-state').textContent.includes('http://127.0.0.1:9/bureau-hook')),
    'alerts: the editor says where alerts go');
  await page.click('.alr-hook-form button:text("Remove")');
  await page.click('dialog[open] button:text("Remove")');
  t.ok(await until(() => page.evaluate(() => /No webhook/.test(document.querySelector('.alr-hook-state').textContent)), 10000)
    && (await api('GET', `/api/workspaces/${ws}/webhook`)).body.url === null, 'alerts: the webhook is removed');

  // a memory alert, for real: fill the guest's memory, set the rule in the page
  let r = await exec('head -c 300000000 /dev/zero > /dev/shm/inbox-fill && echo filled');
  t.ok(r.status === 200 && /filled/.test(r.body.stdout), 'the guest\'s memory is filled (300 MB in /dev/shm)', r);
  const pct = await until(async () => {
    const d = await api('GET', `/api/desktops/${did}`);
    const p = d.body && d.body.metrics && d.body.metrics.memory && d.body.metrics.memory.percent;
    return p >= 3 && p;
  }, 30000, 1000);
  t.ok(pct, 'the desktop\'s metrics show it', pct);
  const threshold = Math.max(1, Math.floor(pct / 2));
  await page.fill('input[name="cpu.thresholdPercent"]', '90');
  await page.fill('input[name="memory.thresholdPercent"]', String(threshold));
  await page.fill('input[name="memory.forSeconds"]', '0');
  await page.click('.alr-rules-form button[type="submit"]');
  rules = await until(async () => {
    const x = await api('GET', `/api/workspaces/${ws}/alert-rules`);
    return x.body.memory.thresholdPercent === threshold && x.body;
  }, 10000);
  t.ok(rules && rules.memory.forSeconds === 0 && rules.cpu.thresholdPercent === 90 && await page.evaluate(() => document.querySelector('.alr-rules .alr-form-error').hidden),
    'alerts: the rules editor saves a memory threshold of ' + threshold + ' %', rules);
  const mem = await until(() => page.evaluate(() => {
    const tr = document.querySelector('.alr-table tr[data-kind="memory"]');
    return tr && { id: tr.dataset.id, text: tr.textContent, link: tr.querySelector('a')?.getAttribute('href') };
  }), 60000, 500);
  t.ok(mem && mem.link === '#/desktops/' + did && /warning/.test(mem.text) && /Memory/.test(mem.text) && /ongoing/.test(mem.text),
    'alerts: the memory alert appears live with its severity, kind, desktop and condition', mem);
  t.ok(await until(async () => await navCount(page, 'count-alerts') === 1, 10000), 'alerts: the nav count shows 1');
  await shot(page, 'alerts');
  if (extra) await page.screenshot({ path: extra + '/alerts-full.png', fullPage: true });

  // acknowledge it
  await page.click(`.alr-table tr[data-id="${mem.id}"] button.alr-ack`);
  t.ok(await until(() => page.evaluate((id) => !document.querySelector(`.alr-table tr[data-id="${id}"]`), mem.id), 10000),
    'alerts: Acknowledge takes it out of the open ones');
  t.ok(await until(async () => await navCount(page, 'count-alerts') === 0, 10000), 'alerts: the nav count drops');
  await page.click('#alr-tab-acknowledged');
  const acked = await until(() => page.evaluate((id) => {
    const tr = document.querySelector(`.alr-table tr[data-id="${id}"]`);
    return tr && tr.dataset.state === 'acknowledged' && tr.textContent;
  }, mem.id), 10000);
  t.ok(acked && acked.includes('by ' + email), 'alerts: the Acknowledged tab lists it, acknowledged by the admin', acked);

  // a refused-request burst in this workspace, acknowledged elsewhere first: 409
  await page.click('#alr-tab-open');
  r = await api('PUT', `/api/workspaces/${ws}/alert-rules`, { refusedBurst: { enabled: true, count: 3, windowSeconds: 60 } });
  t.ok(r.status === 200, 'a refused-burst rule of 3 a minute (API)', r);
  for (let i = 0; i < 4; i++) await api('PUT', `/api/workspaces/${ws}/alert-rules`, { cpu: { nope: i } });
  const burst = await until(() => page.evaluate(() => {
    const tr = document.querySelector('.alr-table tr[data-kind="refusedBurst"]');
    return tr && { id: tr.dataset.id, text: tr.textContent };
  }), 20000, 300);
  t.ok(burst && /workspace/.test(burst.text) && /Refused requests/.test(burst.text), 'alerts: a workspace alert (no desktop) appears live', burst);
  if (burst) {
    await streamOff(page);
    r = await api('POST', `/api/alerts/${burst.id}/ack`);
    t.ok(r.status === 200, 'someone else acknowledges it through the API', r);
    await page.click(`.alr-table tr[data-id="${burst.id}"] button.alr-ack`);
    const ts = await until(async () => (await toasts(page)).find((x) => /error/.test(x) && /Already acknowledged/.test(x)), 10000);
    t.ok(ts, 'alerts: acknowledging twice (409) is said in an alert toast', await toasts(page));
    t.ok(await until(() => page.evaluate((id) => !document.querySelector(`.alr-table tr[data-id="${id}"]`), burst.id), 10000),
      'alerts: and the list updates');
    await streamOn(page);
  }
  await page.click('#alr-tab-all');
  const every = await until(() => page.evaluate(() => {
    const rows = [...document.querySelectorAll('.alr-table tbody tr')];
    return rows.length >= 2 && rows.map((r) => r.dataset.kind + ':' + r.dataset.state);
  }), 10000);
  t.ok(every && every.includes('memory:acknowledged') && every.includes('refusedBurst:acknowledged'), 'alerts: the All tab lists both', every);
  t.ok(failures.some((f) => /ack 409$/.test(f)), 'alerts: the page did get the 409', failures);
}

async function rowsOf(page) {
  return page.evaluate(() => [...document.querySelectorAll('.act-table tr.act-entry')].map((tr) => {
    const next = tr.nextElementSibling;
    const detail = next && next.classList.contains('act-detail') ? JSON.parse(next.dataset.detail) : null;
    return { id: Number(tr.dataset.id), action: tr.dataset.action, target: tr.dataset.target, user: tr.dataset.user, detail };
  }));
}

async function settled(page) {
  // the table once a load has finished (the summary or the empty state says so)
  await page.waitForTimeout(300);
  return until(() => page.evaluate(() => {
    const e = document.querySelector('.activity .empty');
    return (!e.hidden || document.querySelector('.act-summary').textContent || !document.querySelector('.act-error').hidden) && true;
  }), 15000, 200);
}

async function activity(page, me) {
  // more than a page of entries
  for (let i = 0; i < 110; i++) await api('GET', `/api/desktops/${did}`);
  await page.click('a[data-nav="activity"]');
  await page.waitForSelector('.activity .act-filters');
  await settled(page);
  let rows = await rowsOf(page);
  t.ok(rows.length === 100 && await page.isVisible('.act-more-btn'), 'activity: a first page of 100 entries and Load more', rows.length);
  const cols = await page.evaluate(() => {
    const tr = document.querySelector('.act-table tr.act-entry');
    return [...tr.children].map((td) => td.textContent);
  });
  t.ok(cols.length === 7 && cols[1].length && /^\d{3}$/.test(cols[4]) && /127\.0\.0\.1/.test(cols[5]),
    'activity: time, who, action, target, status, remote address and detail', cols);
  await page.click('.act-more-btn');
  await until(async () => (await rowsOf(page)).length > 100, 10000);
  rows = await rowsOf(page);
  const ids = rows.map((r) => r.id);
  t.ok(rows.length > 100 && new Set(ids).size === ids.length && ids.every((x, i) => i === 0 || x < ids[i - 1]),
    'activity: Load more adds the next page, newest first, nothing twice', ids.length);

  // what: desktop.*
  await page.fill('#act-action', 'desktop.*');
  await page.press('#act-action', 'Enter');
  await settled(page);
  rows = await rowsOf(page);
  t.ok(rows.length >= 1 && rows.every((r) => r.action.startsWith('desktop.')) && rows.some((r) => r.action === 'desktop.create'),
    'activity: action desktop.* shows only desktop actions', rows.map((r) => r.action));
  t.ok(decodeURIComponent(await page.evaluate(() => location.hash)) === '#/activity?action=desktop.*', 'activity: the filter is in the URL',
    await page.evaluate(() => location.hash));
  const toggle = await page.$('.act-table tr.act-entry button.act-toggle');
  if (toggle) {
    await toggle.click();
    t.ok(await page.evaluate(() => {
      const b = document.querySelector('.act-table button.act-toggle[aria-expanded="true"]');
      const d = b && b.closest('tr').nextElementSibling;
      return d && !d.hidden && d.textContent.startsWith('{');
    }), 'activity: an entry\'s detail JSON expands');
  } else {
    t.ok(false, 'activity: an entry\'s detail JSON expands', 'no entry with a detail');
  }
  await shot(page, 'activity');

  // which desktop
  await page.click('.act-buttons button:text("Clear")');
  await settled(page);
  await page.selectOption('#act-desktop', did);
  await settled(page);
  rows = await rowsOf(page);
  const mentions = (r) => r.target === did || (r.detail && (r.detail.id === did || r.detail.desktopId === did));
  t.ok(rows.length >= 100 && rows.every(mentions), 'activity: filtering by the desktop shows only its entries',
    { n: rows.length, stray: rows.filter((r) => !mentions(r)).slice(0, 5) });
  await page.fill('#act-action', 'chat.send');
  await page.press('#act-action', 'Enter');
  await settled(page);
  rows = await rowsOf(page);
  t.ok(rows.length === 4 && rows.every((r) => mentions(r) && r.action === 'chat.send'),
    'activity: the desktop and an action together: its four chat messages', rows);
  await page.fill('#act-action', '');
  await page.press('#act-action', 'Enter');
  await settled(page);

  // who
  await page.selectOption('#act-desktop', '');
  await page.selectOption('#act-user', me);
  await settled(page);
  rows = await rowsOf(page);
  t.ok(rows.length >= 1 && rows.every((r) => r.user === me), 'activity: filtering by who shows only that user\'s entries', rows.slice(0, 3));
  await page.selectOption('#act-user', '');

  // when
  const next = new Date().getFullYear() + 1;
  await page.fill('#act-since', `${next}-01-01T00:00`);
  await page.dispatchEvent('#act-since', 'change');
  await settled(page);
  rows = await rowsOf(page);
  t.ok(rows.length === 0 && await page.isVisible('text=No activity matches these filters.'), 'activity: a since in the future shows none', rows.length);
  await page.fill('#act-until', `${next}-01-01T00:00`);
  await page.dispatchEvent('#act-until', 'change');
  const err = await until(() => page.evaluate(() => {
    const e = document.querySelector('.act-error');
    return !e.hidden && e.textContent;
  }), 10000);
  t.ok(err && /since must be before until/.test(err), 'activity: since not before until: the server\'s message inline', err);

  // a link to a filtered view
  await page.goto(base + '/#/activity?action=desktop.*');
  await page.waitForSelector('.activity .act-filters', { timeout: 10000 }).catch(() => null);
  await settled(page).catch(() => null);
  rows = await rowsOf(page).catch(() => []);
  const val = await page.$eval('#act-action', (i) => i.value).catch(() => null);
  t.ok(val === 'desktop.*' && rows.length >= 1 && rows.every((r) => r.action.startsWith('desktop.')),
    'activity: a link to #/activity?action=desktop.* opens the filtered view', { val, n: rows.length });
}

// ---- run ----

const b = await browser(base);
const failures = [];
await b.context.grantPermissions(['notifications'], { origin: base });
await b.context.addInitScript(() => {
  const Real = window.Notification;
  window.__notifications = [];
  function Recorded(title, options) {
    window.__notifications.push({ title, body: options && options.body, tag: options && options.tag });
    try { return new Real(title, options); } catch { return { close() {} }; }
  }
  Recorded.requestPermission = (...a) => Real.requestPermission(...a);
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  window.Notification = Recorded;
});
await watchFailures(b.page, failures);
let me = null;
try {
  await login(b.page, base, email, password);
  me = await b.page.evaluate(async () => (await (await fetch('/api/auth/session')).json()).user.id);
  await approvals(b.page, failures);
  await alerts(b.page, failures);
  await activity(b.page, me);
} catch (e) {
  t.ok(false, 'the browser test ran to the end', e.stack || String(e));
}
const unexpected = failures.filter((f) => !PROVOKED.some((re) => re.test(f)));
t.ok(unexpected.length === 0, 'every failed request was one the test provoked', unexpected);
// the browser logs each provoked 4xx as a console error; only those go
b.ignore(/Failed to load resource: the server responded with a status of (400|404|409)/);
await b.finish(t);

// dark theme
const d = await browser(base, { colorScheme: 'dark' });
try {
  await login(d.page, base, email, password);
  await d.page.click('a[data-nav="activity"]');
  await d.page.waitForSelector('.activity .act-filters');
  await settled(d.page);
  await d.page.fill('#act-action', 'approval.*');
  await d.page.press('#act-action', 'Enter');
  await settled(d.page);
  await d.page.click('.act-table tr.act-entry button.act-toggle').catch(() => null);
  await shot(d.page, 'activity-dark');
  t.ok(await d.page.evaluate(() => getComputedStyle(document.body).backgroundColor) === 'rgb(21, 22, 26)', 'dark theme: the activity view follows the system');
  if (extra) {
    await d.page.click('a[data-nav="approvals"]');
    await d.page.waitForSelector('.apr-history tbody tr');
    await d.page.screenshot({ path: extra + '/approvals-dark.png', fullPage: true });
    await d.page.click('a[data-nav="alerts"]');
    await d.page.click('#alr-tab-all');
    await d.page.waitForSelector('.alr-table tbody tr');
    await d.page.screenshot({ path: extra + '/alerts-dark.png', fullPage: true });
  }
} catch (e) {
  t.ok(false, 'the dark-theme pass ran', e.stack || String(e));
}
await d.finish(t);
t.done();
