// Mission Control from the keyboard, at laptop and large-monitor sizes, and
// a tiny desktop's lifecycle from its desktop view, in a real browser
// (Debian's chromium through playwright-core) against the bureaud that
// tests/e2e/test_web_layout.py starts:
//   BUREAU_URL BUREAU_EMAIL BUREAU_PASSWORD   the administrator's login
// Keyboard only (no clicks): the skip link, Tab through the navigation to
// "New desktop", the create dialog (Escape closes it; typing, Tab, arrows
// and Space on the tier radios, a select, Enter submits) for a tiny
// desktop, a row's link opened with Enter, the desktop view's tabs with
// the arrow keys, and a way out of the terminal and of the screen in
// control (both take Tab for the desktop: Escape then Tab leaves); the
// focused element always shows a ring. Then every view at 1280x800,
// 1920x1080, 2560x1440 and 900x700: no horizontal overflow, the navigation
// and the heading apart and visible, the page head's buttons inside the
// window, and the room used on a large monitor. Last, with the mouse:
// Stop (shut down), Start, Restart and Destroy from the desktop view,
// each state live. Prints TAP; screenshots: layout-1280.png (the fleet),
// layout-2560.png (the desktop view).
import { tap, browser, login, shot, until } from './lib.mjs';

const env = process.env;
const base = env.BUREAU_URL;
const t = tap();
const b = await browser(base, { width: 1280, height: 800 });
const page = b.page;
const SLOW = 150000; // a tiny guest under TCG on a loaded host
const NAME = 'kb-one';
const SIZES = [[1280, 800], [1920, 1080], [2560, 1440], [900, 700]];

// ---- helpers ----

// The focused element: what it is, and whether it shows a focus ring (its
// own outline or box-shadow; for the terminal's and the screen's inputs,
// which draw none, their panel's outline or a border drawn over it).
function focused() {
  return page.evaluate(() => {
    const e = document.activeElement;
    if (!e || e === document.body) return { tag: 'BODY', ring: false };
    const boxed = e.closest('.dv-term-wrap, .dv-screen-wrap');
    const cs = getComputedStyle(boxed || e);
    const over = boxed ? getComputedStyle(boxed, '::after') : null;
    const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== 'none' ||
      (!!over && over.content !== 'none' && over.borderTopStyle !== 'none' && parseFloat(over.borderTopWidth) > 0);
    return {
      tag: e.tagName, id: e.id, cls: String(e.className), text: (e.textContent || '').trim().slice(0, 40),
      name: e.getAttribute('name'), type: e.getAttribute('type'), value: e.value, href: e.getAttribute('href'),
      nav: e.dataset.nav || null, inView: !!e.closest('#view'), term: !!e.closest('.dv-terminal .dv-term-wrap'),
      screen: e.tagName === 'CANVAS' && !!e.closest('.dv-screen-wrap'), ring,
    };
  });
}

// Presses Tab (or Shift+Tab) until pred(focused) holds; the elements passed.
async function tabUntil(pred, max = 25, key = 'Tab') {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    const f = await focused();
    seen.push(f);
    if (pred(f)) return { ok: true, f, seen };
  }
  return { ok: false, f: seen[seen.length - 1], seen };
}

const desc = (f) => `${f.tag}${f.id ? '#' + f.id : ''}${f.nav ? '[' + f.nav + ']' : ''} "${f.text || f.value || ''}"`;
const rings = (seen) => seen.filter((f) => !f.ring).map(desc);

async function api(path) {
  return page.evaluate(async (p) => {
    const r = await fetch(p);
    return { status: r.status, body: await r.json().catch(() => null) };
  }, path);
}

try {
  // ---- keyboard: the skip link and the navigation ----

  await login(page, base, env.BUREAU_EMAIL, env.BUREAU_PASSWORD);
  await page.reload(); // a fresh load: the focus starts at the top of the page
  await page.waitForSelector('.fleet .fleet-empty:not([hidden])', { timeout: 20000 });
  let f = (await tabUntil(() => true, 1)).f;
  t.ok(f.tag === 'A' && /skip/.test(f.cls) && f.ring && await page.evaluate(() => {
    const r = document.querySelector('.skip').getBoundingClientRect();
    return r.left >= 0 && r.top >= 0 && r.width > 0;
  }), 'the first Tab reaches the skip link, which shows itself with a focus ring', f);
  await page.keyboard.press('Enter');
  f = await focused();
  t.ok(f.tag === 'MAIN' && f.id === 'view' && ['', '#/'].includes(new URL(page.url()).hash) && await page.isVisible('.fleet h1'),
    'Enter on it moves the focus to the view, and the fleet stays (no route change)', { f, url: page.url() });
  let r = await tabUntil(() => true, 1);
  t.ok(r.f.id === 'new-desktop', 'the next Tab is the view\'s first control: "New desktop"', desc(r.f));

  r = await tabUntil((x) => /skip/.test(x.cls), 20, 'Shift+Tab');
  t.ok(r.ok, 'Shift+Tab goes back up to the skip link', r.seen.map(desc));
  r = await tabUntil((x) => x.id === 'new-desktop', 20);
  const navs = r.seen.filter((x) => x.nav).map((x) => x.nav);
  t.ok(r.ok && ['fleet', 'approvals', 'alerts', 'activity', 'settings'].every((n) => navs.includes(n)) &&
    r.seen.some((x) => x.id === 'workspace'),
    'Tab passes the workspace switcher and every navigation link on its way to "New desktop"', r.seen.map(desc));
  t.ok(rings(r.seen).length === 0, 'each of them shows a focus ring', rings(r.seen));

  // ---- keyboard: the create dialog ----

  if ((await focused()).id !== 'new-desktop') { // failed above: go on from there
    await page.evaluate(() => { location.hash = '#/'; });
    await page.waitForSelector('#new-desktop');
    await page.focus('#new-desktop');
  }
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open] form.fleet-create', { timeout: 10000 });
  f = await focused();
  t.ok(f.name === 'name' && f.ring, 'Enter on "New desktop" opens the dialog with the focus in its name field', f);
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 5000 }).catch(() => {});
  f = await focused();
  t.ok(!(await page.$('dialog[open]')) && f.id === 'new-desktop', 'Escape closes it and gives the focus back to "New desktop"', f);

  await page.keyboard.press('Space');
  await page.waitForSelector('dialog[open] form.fleet-create', { timeout: 10000 });
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open] .fleet-form-error:not([hidden])', { timeout: 15000 }).catch(() => {});
  const emptyMsg = await page.textContent('dialog[open] .fleet-form-error').catch(() => '');
  t.ok(/name must not be empty/.test(emptyMsg) && (await focused()).name === 'name',
    'Space opens it again; Enter in the empty name field submits: the server\'s message, the focus stays in the field', emptyMsg);
  b.ignore(/status of 400/);
  await page.keyboard.type(NAME);
  await page.keyboard.press('Tab');
  f = await focused();
  const tierOf = () => page.evaluate(() => document.querySelector('dialog[open] input[name=tier]:checked').value);
  const tiers = [f.type === 'radio' ? f.value : null];
  await page.keyboard.press('ArrowRight');
  tiers.push(await tierOf());
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('Space');
  tiers.push(await tierOf());
  t.ok(tiers[0] === 'free' && tiers[1] === 'pro' && tiers[2] === 'free' && (await focused()).ring,
    'Tab reaches the tier radios; the arrow keys and Space choose a tier', tiers);
  await page.keyboard.press('Tab');
  f = await focused();
  await page.keyboard.press('ArrowDown');
  const image = await page.inputValue('dialog[open] select[name=image]');
  t.ok(f.tag === 'SELECT' && f.name === 'image' && image === 'tiny' && f.ring, 'Tab reaches the image; ArrowDown picks the tiny one', { f, image });
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Shift+Tab');
  f = await focused();
  t.ok(f.name === 'name' && f.value === NAME, 'Shift+Tab goes back to the name field', f);
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 20000 }).catch(() => {});
  t.ok(!(await page.$('dialog[open]')), 'Enter in the name field creates the desktop and closes the dialog');
  const row = await until(() => page.evaluate((n) => {
    const tr = [...document.querySelectorAll('.fleet-table tbody tr')].find((x) => x.querySelector('.fleet-name').textContent === n);
    return tr ? tr.dataset.id : null;
  }, NAME), 10000);
  const made = row ? await api('/api/desktops/' + row) : { body: null };
  t.ok(!!row && made.body && made.body.image === 'tiny' && made.body.tier === 'free',
    'its row appears, and it is a free tier desktop of the tiny image', made.body);
  const id = row;
  const rowSel = `.fleet-table tbody tr[data-id="${id}"]`;
  const running = await page.waitForSelector(`${rowSel} .badge[data-state="running"]`, { timeout: SLOW }).catch(() => null);
  t.ok(!!running, 'it reaches running');

  // ---- keyboard: a row's link, the desktop view ----

  await page.evaluate(() => document.getElementById('new-desktop').focus());
  r = await tabUntil((x) => x.tag === 'A' && /fleet-name/.test(x.cls) && x.href === `#/desktops/${id}`, 30);
  t.ok(r.ok && r.f.ring, 'Tab reaches the desktop\'s link in its row, with a focus ring', r.seen.map(desc));
  await page.keyboard.press('Enter');
  await page.waitForSelector('.dv-head h1', { timeout: 20000 });
  t.ok(new URL(page.url()).hash.startsWith(`#/desktops/${id}`) && await page.textContent('.dv-head h1') === NAME,
    'Enter on it opens its desktop view', page.url());
  await page.waitForFunction(() => window.bureauDesktopView && window.bureauDesktopView.terminal.connected, null, { timeout: 30000 });
  r = await tabUntil(() => true, 1);
  t.ok(r.f.inView && r.f.tag === 'BUTTON' && r.f.text === 'Stop' && r.f.ring,
    'the focus goes on in the new view: the next Tab is its Stop button', desc(r.f));

  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open] input[name="dv-stop-mode"]', { timeout: 5000 });
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 5000 }).catch(() => {});
  f = await focused();
  const stillUp = await api('/api/desktops/' + id);
  t.ok(!(await page.$('dialog[open]')) && f.text === 'Stop' && stillUp.body.state === 'running',
    'Enter on Stop opens its dialog; Escape closes it, nothing stopped, the focus is back on Stop', { f, state: stillUp.body.state });

  r = await tabUntil((x) => x.id === 'dv-tab-terminal', 25);
  t.ok(r.ok && r.f.ring, 'Tab reaches the Terminal tab', r.seen.map(desc));
  t.ok(rings(r.seen).length === 0, 'every control on the way shows a focus ring', rings(r.seen));
  const tabState = () => page.evaluate(() => ({
    focus: document.activeElement.id,
    selected: [...document.querySelectorAll('.dv-tabs [role=tab]')].filter((x) => x.getAttribute('aria-selected') === 'true').map((x) => x.dataset.tab),
    shown: [...document.querySelectorAll('.dv-tabpanel')].filter((x) => !x.hidden).map((x) => x.id),
    hash: location.hash.split('/').pop(),
  }));
  const walk = [];
  for (const key of ['ArrowRight', 'ArrowRight', 'ArrowRight', 'ArrowRight', 'ArrowLeft', 'Home', 'End', 'Home']) {
    await page.keyboard.press(key);
    walk.push(await tabState());
  }
  const want = ['files', 'metrics', 'activity', 'snapshots', 'activity', 'terminal', 'snapshots', 'terminal'];
  t.ok(walk.every((s, i) => s.focus === 'dv-tab-' + want[i] && s.selected.join() === want[i] &&
    s.shown.join() === 'dv-panel-' + want[i] && s.hash === want[i]),
    'the arrow keys, Home and End switch the tabs: focus, selection, panel and address follow', walk);

  // The terminal takes Tab for the shell; Escape then Tab leaves it.
  r = await tabUntil((x) => x.term, 6);
  const hint = await page.isVisible('.dv-term-hint');
  t.ok(r.ok && r.f.ring && hint, 'Tab reaches the terminal: its panel shows the focus and how to leave it', { f: r.f, hint });
  await page.keyboard.press('Tab');
  f = await focused();
  t.ok(f.term, 'Tab in the terminal stays there (it is the shell\'s completion key)', f);
  await page.keyboard.press('Escape');
  await page.keyboard.press('Shift+Tab');
  f = await focused();
  t.ok(!f.term && f.tag === 'A' && /Pop out/.test(f.text) && f.ring, 'Escape then Shift+Tab leaves it, back to its Pop out link', f);
  r = await tabUntil((x) => x.term, 3);
  await page.keyboard.press('Escape');
  await page.keyboard.press('Tab');
  f = await focused();
  t.ok(r.ok && !f.term, 'Escape then Tab leaves it forwards', f);

  // The screen in control takes every key too.
  await page.evaluate(() => document.querySelector('.dv-head .dv-actions button:not([hidden])').focus());
  r = await tabUntil((x) => x.tag === 'BUTTON' && x.text === 'Take control', 10);
  await page.keyboard.press('Enter');
  const inControl = await page.waitForFunction(() => window.bureauDesktopView.screen.connected && window.bureauDesktopView.screen.mode === 'control',
    null, { timeout: 30000 }).then(() => true, () => false);
  await page.waitForTimeout(300);
  f = await focused();
  t.ok(r.ok && inControl && f.screen && f.ring, 'Enter on "Take control" puts the focus on the screen, with a ring on its panel', f);
  await page.keyboard.press('Tab');
  const stay = await focused();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Tab');
  f = await focused();
  t.ok(stay.screen && !f.screen && f.inView && f.ring, 'in control Tab goes to the desktop; Escape then Tab moves the focus on', { stay, f });
  r = await tabUntil((x) => x.screen, 3, 'Shift+Tab');
  t.ok(r.ok, 'and Shift+Tab comes back to the screen while in control', r.seen.map(desc));
  await page.keyboard.press('Escape');
  await page.keyboard.press('Shift+Tab');
  f = await focused();
  t.ok(f.tag === 'BUTTON' && /full screen/i.test(await page.evaluate(() => document.activeElement.getAttribute('aria-label') || '')),
    'Escape then Shift+Tab leaves it backwards, to the full screen button', f);
  await page.keyboard.press('Shift+Tab');
  f = await focused();
  t.ok(f.text === 'Release control', 'whose neighbour releases control', f);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.bureauDesktopView.screen.connected && window.bureauDesktopView.screen.mode === 'view',
    null, { timeout: 30000 }).catch(() => {});

  // ---- layout at laptop and large-monitor sizes ----

  const views = [['fleet', '#/'], ['desktop', `#/desktops/${id}`], ['approvals', '#/approvals'], ['alerts', '#/alerts'],
    ['activity', '#/activity'], ['settings', '#/settings']];

  // What a user would see wrong: a page wider than the window (the document
  // or the view, which scrolls by itself), the navigation and the heading
  // hidden or on top of each other, a page-head control past the right edge.
  function measure() {
    return page.evaluate(() => {
      const box = (el) => el.getBoundingClientRect();
      const apart = (a, c) => a.right <= c.left || c.right <= a.left || a.bottom <= c.top || c.bottom <= a.top;
      const seen = (el) => {
        const r = box(el);
        if (!r.width || !r.height) return false;
        const x = Math.min(r.right - 2, r.left + Math.min(r.width / 2, 40));
        const hit = document.elementFromPoint(x, r.top + r.height / 2);
        return !!hit && (hit === el || el.contains(hit));
      };
      const se = document.scrollingElement;
      const view = document.getElementById('view');
      const nav = document.querySelector('.nav');
      const h1 = document.querySelector('#view h1');
      const vr = box(view);
      const heads = [...document.querySelectorAll('#view .page-head button, #view .page-head a')]
        .filter((e) => e.offsetParent !== null).map((e) => ({ text: e.textContent.trim(), r: box(e) }));
      const out = heads.filter((x) => x.r.left < vr.left - 1 || x.r.right > Math.min(innerWidth, vr.right) + 1);
      const page = document.querySelector('#view .page');
      return {
        docW: se.scrollWidth, winW: innerWidth, viewW: view.scrollWidth, viewClient: view.clientWidth,
        navSeen: seen(document.querySelector('.nav .brand')) && seen(document.querySelector('.nav-links a.active')),
        h1Seen: !!h1 && seen(h1), apart: !!h1 && apart(box(nav), box(h1)),
        heads: heads.length, out: out.map((x) => `${x.text} ${Math.round(x.r.left)}-${Math.round(x.r.right)}`),
        page: page ? { left: Math.round(box(page).left - vr.left), right: Math.round(vr.left + view.clientWidth - box(page).right), width: Math.round(box(page).width) } : null,
      };
    });
  }

  // The view is ready to measure: its heading, and what fills it.
  const READY = {
    fleet: '.fleet-table tbody tr', desktop: '.dv-grid', approvals: '.approvals h1', alerts: '.alerts h1',
    activity: '.act-table tbody tr', settings: '#keys table',
  };

  const bad = [];
  const wide = {};
  for (const [w, hgt] of SIZES) {
    await page.setViewportSize({ width: w, height: hgt });
    for (const [name, hash] of views) {
      await page.evaluate((x) => { location.hash = x; }, hash);
      await page.waitForSelector(READY[name], { timeout: 20000 }).catch(() => {});
      await page.waitForTimeout(name === 'desktop' ? 600 : 250);
      const m = await measure();
      const problems = [];
      if (m.docW > m.winW + 1) problems.push(`page ${m.docW} wide in ${m.winW}`);
      if (m.viewW > m.viewClient + 1) problems.push(`view scrolls sideways: ${m.viewW} in ${m.viewClient}`);
      if (!m.navSeen) problems.push('navigation hidden');
      if (!m.h1Seen) problems.push('heading hidden');
      if (!m.apart) problems.push('navigation and heading overlap');
      if (m.out.length) problems.push('cut off: ' + m.out.join(', '));
      if (problems.length) bad.push(`${w}x${hgt} ${name}: ${problems.join('; ')}`);
      wide[`${w} ${name}`] = m;
      if (w === 1280 && name === 'fleet') {
        await page.mouse.move(0, 0);
        await until(() => page.evaluate(() => document.getElementById('toasts').childElementCount === 0), 10000);
        await shot(page, 'layout-1280');
      }
      if (w === 2560 && name === 'desktop') {
        await until(async () => (await page.evaluate(() => window.bureauDesktopView && window.bureauDesktopView.screen.connected)), 15000);
        await page.waitForTimeout(500);
        await shot(page, 'layout-2560');
        wide.dv2560 = await page.evaluate(() => {
          const r = (s) => document.querySelector(s).getBoundingClientRect();
          const v = document.getElementById('view').getBoundingClientRect();
          return { view: v.width, screen: r('.dv-screen'), chat: r('.dv-chat'), dock: r('.dv-dock'), grid: r('.dv-grid'), winH: innerHeight };
        });
      }
    }
  }
  t.ok(bad.length === 0, `every view at ${SIZES.map((s) => s.join('x')).join(', ')}: no sideways overflow, navigation and heading visible and apart, the page head inside the window`, bad);
  t.ok(Object.values(wide).filter((m) => m.heads !== undefined && m.heads > 0).length >= SIZES.length * 3,
    'the page heads measured have their buttons (fleet, desktop, activity at each size)', Object.entries(wide).map(([k, m]) => k + ': ' + m.heads));
  const fl = wide['2560 fleet'].page;
  t.ok(fl.width <= 1600 && Math.abs(fl.left - fl.right) <= 2,
    'on a 2560 px monitor the fleet keeps a readable width, centred in the view', fl);
  const dv = wide.dv2560;
  t.ok(dv && dv.grid.width >= dv.view - 60 && dv.chat.left >= dv.screen.right && dv.dock.top >= dv.screen.bottom &&
    dv.screen.height >= dv.winH * 0.45 && dv.screen.width >= dv.view * 0.6 && dv.grid.bottom <= dv.winH + 1,
    'there the desktop view fills the window: the screen large, the chat beside it, the dock below, no page scroll', dv);
  const dv1280 = wide['1280 desktop'];
  t.ok(dv1280 && dv1280.heads >= 4 && dv1280.out.length === 0, 'at 1280x800 the desktop view\'s actions all fit', dv1280);

  // ---- the lifecycle from the desktop view (mouse) ----

  await page.setViewportSize({ width: 1400, height: 900 });
  await page.evaluate((x) => { location.hash = x; }, `#/desktops/${id}`);
  await page.waitForSelector('.dv-head .badge[data-state="running"]', { timeout: 20000 });
  await page.evaluate(() => {
    window.__layoutMarker = 'kept';
    window.__states = [];
    const head = document.querySelector('.dv-head');
    const note = () => {
      const s = head.querySelector('.badge[data-state]');
      if (s && window.__states[window.__states.length - 1] !== s.dataset.state) window.__states.push(s.dataset.state);
    };
    new MutationObserver(note).observe(head, { childList: true, subtree: true, attributes: true });
    note();
  });
  const states = async (reset) => page.evaluate((r) => {
    const s = window.__states.slice();
    if (r) window.__states = [window.__states[window.__states.length - 1]];
    return s;
  }, reset);
  const badge = (state, ms = SLOW) => page.waitForSelector(`.dv-head .badge[data-state="${state}"]`, { timeout: ms }).then(() => true, () => false);
  const visibleActions = () => page.$$eval('.dv-head .dv-actions button', (bs) => bs.filter((x) => !x.hidden).map((x) => x.textContent));

  await page.click('.dv-head button:text-is("Stop")');
  await page.waitForSelector('dialog[open] input[name="dv-stop-mode"]');
  const modes = await page.$$eval('dialog[open] input[name="dv-stop-mode"]', (xs) => xs.map((x) => x.value));
  t.ok(modes.join() === 'hibernate,shutdown', 'Stop asks how: hibernate or shut down', modes);
  await page.click('dialog[open] label:has(input[value="shutdown"])');
  await page.click('dialog[open] .actions button:text-is("Stop")');
  let ok = await badge('stopped');
  let seen = await states(true);
  t.ok(ok && seen.includes('stopping') && seen[seen.length - 1] === 'stopped',
    'shut down: the badge goes stopping → stopped, live', seen);
  t.ok((await visibleActions()).join() === 'Start,Destroy', 'a stopped desktop offers Start and Destroy', await visibleActions());
  const down = await api('/api/desktops/' + id);
  t.ok(down.body && down.body.state === 'stopped' && !down.body.saved, 'the server has it stopped, powered off (no saved memory)', down.body);

  await page.click('.dv-head button:text-is("Start")');
  ok = await badge('running');
  seen = await states(true);
  t.ok(ok && seen.includes('booting') && seen[seen.length - 1] === 'running', 'Start: booting → running, live', seen);

  await page.click('.dv-head button:text-is("Restart")');
  await page.waitForSelector('dialog[open]');
  t.ok(/unsaved work/.test(await page.textContent('dialog[open]')), 'Restart asks for confirmation');
  await page.click('dialog[open] .actions button:text-is("Restart")');
  ok = await until(async () => (await page.evaluate(() => window.__states.includes('booting'))), SLOW, 200);
  ok = ok && await badge('running');
  seen = await states(true);
  t.ok(ok && seen.includes('booting') && seen[seen.length - 1] === 'running', 'Restart: through booting back to running, live', seen);

  await page.click('.dv-head button:text-is("Destroy")');
  await page.waitForSelector('dialog[open]');
  t.ok((await page.textContent('dialog[open]')).includes(NAME), 'Destroy asks for confirmation, naming the desktop');
  await page.click('dialog[open] .actions button:text-is("Destroy")');
  await page.waitForSelector('.fleet h1', { timeout: 20000 }).catch(() => {});
  t.ok(/#\/$/.test(page.url()), 'after Destroy the fleet is back', page.url());
  const gone = await page.waitForSelector('.fleet .fleet-empty:not([hidden])', { timeout: 60000 }).then(() => true, () => false);
  t.ok(gone && !(await page.$(rowSel)), 'and the desktop\'s row is gone', await page.$$eval('.fleet-table tbody tr', (x) => x.map((y) => y.dataset.id)));
  t.ok(await page.evaluate(() => window.__layoutMarker) === 'kept', 'all of it without a page load (the page\'s marker is still set)');
} catch (e) {
  t.ok(false, 'the test ran to its end', e.stack || String(e));
}

await b.finish(t);
t.done();
