// The chat with the desktop's agent (the pilot): the conversation from GET
// /api/desktops/{id}/chat (oldest first, older pages on demand), new
// messages through POST …/chat, "Stop" through POST …/chat/interrupt, and
// live updates from the desktop's event stream:
//   chat.message  user, assistant and error messages
//   chat.delta    streamed assistant text (grows, then the final message
//                 replaces it)
//   chat.tool     tool calls and results, folded into one line each
//   agent.status  working / waiting_approval / idle / error and the task
//   approval.created / updated / decided   approvals inline, with the
//                 screen when it was asked, a countdown and Approve/Deny
import { get, post, qs } from '../../api.js';
import { h, fill, toast, errorText, fmtTime, fmtDuration } from '../../ui.js';
import { stableJson, truncate, clock, toolSummary, composing } from './util.js';

const PAGE = 50;
const MESSAGE_MAX = 32768;
const NOTE_MAX = 500;

const STATUS_TEXT = {
  idle: 'idle', working: 'working…', waiting_approval: 'waiting for approval', error: 'error',
};
const STATUS_CLASS = { idle: '', working: 'info', waiting_approval: 'pending', error: 'bad' };

export function createChat(env) {
  // Read by tests: deltas (streamed pieces shown), loaded.
  const state = { deltas: 0, loaded: false };
  const messages = new Map(); // message id -> element
  const tools = new Map(); // callId -> tool record
  const orphans = new Map(); // callId -> result message whose call is not loaded
  const streams = new Map(); // replyTo -> {el, body, text}
  const approvals = new Map(); // approval id -> approval record
  let nextBefore = null;
  let loadingOlder = false;
  let pendingEvents = [];
  let agentStatus = 'idle';
  let destroyed = false;

  // ---- DOM ----
  const statusBadge = h('span', { class: 'badge' });
  const task = h('span', { class: 'dv-task muted' });
  const stopBtn = h('button', {
    type: 'button', class: 'small danger', hidden: true, onclick: interrupt, 'aria-label': 'Stop the agent',
    title: 'Stop what the agent is doing (queued messages stay queued)',
  }, 'Stop');
  const olderBtn = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => loadOlder() }, 'Load earlier messages');
  const notice = h('p', { class: 'dv-notice', hidden: true });
  const log = h('div', { class: 'dv-chat-log', role: 'log', 'aria-label': 'Conversation with the agent', tabindex: '0' });
  const list = h('div', { class: 'dv-chat-list' });
  const emptyNote = h('p', { class: 'muted dv-chat-empty', hidden: true }, 'No messages yet. Tell the agent what to do.');
  log.append(h('div', { class: 'dv-older' }, olderBtn), emptyNote, list);
  const box = h('textarea', {
    id: 'dv-chat-input', rows: 2, maxlength: MESSAGE_MAX, placeholder: 'Message the agent — Enter sends, Shift+Enter for a new line',
    'aria-describedby': 'dv-chat-hint',
  });
  const sendBtn = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Send');
  const form = h('form', { class: 'dv-chat-form', onsubmit: (e) => { e.preventDefault(); send(); } },
    h('label', { for: 'dv-chat-input', class: 'dv-sr-only' }, 'Message to the agent'),
    box, sendBtn,
    h('span', { id: 'dv-chat-hint', class: 'dv-sr-only' }, 'Enter sends, Shift+Enter inserts a new line.'));
  const el = h('section', { class: 'card dv-panel dv-chat', 'aria-label': 'Chat with the agent' },
    h('div', { class: 'dv-panel-head' }, h('h2', null, 'Agent'), statusBadge, task, h('span', { class: 'spacer' }), stopBtn),
    notice, log, form);

  box.addEventListener('input', () => {
    sendBtn.disabled = !box.value.trim();
    grow();
  });
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !composing(e)) {
      e.preventDefault();
      send();
    }
  });
  log.addEventListener('scroll', () => {
    if (log.scrollTop < 40 && nextBefore && !loadingOlder && state.loaded) loadOlder();
  });

  function grow() {
    box.style.height = 'auto';
    box.style.height = Math.min(box.scrollHeight + 2, 200) + 'px';
  }

  // ---- scrolling ----
  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  // Runs fn (a DOM change) and keeps the view at the bottom if it was there.
  function changed(fn, force) {
    const stick = force || nearBottom();
    fn();
    emptyNote.hidden = list.childElementCount > 0;
    if (stick) log.scrollTop = log.scrollHeight;
  }

  // ---- placing items in time order ----
  function at(iso) { return iso ? new Date(iso).getTime() : Date.now(); }

  // Inserts el (with data-t) after the last item not newer than it.
  function place(el) {
    const t = Number(el.dataset.t);
    let after = list.lastElementChild;
    while (after && Number(after.dataset.t) > t) after = after.previousElementSibling;
    if (after) after.after(el); else list.prepend(el);
  }

  // ---- rendering ----
  function meta(...parts) {
    return h('div', { class: 'dv-meta-line' }, parts.filter(Boolean).map((p, i) => [i ? h('span', { 'aria-hidden': 'true' }, ' · ') : null, p]));
  }

  function time(iso) {
    return h('time', { datetime: iso, title: fmtTime(iso) }, clock(iso));
  }

  // Text with ``` fences shown as code blocks; everything else as is.
  function richText(text) {
    const out = [];
    const parts = String(text).split(/```[^\n]*\n?/);
    parts.forEach((p, i) => {
      if (!p) return;
      out.push(i % 2 ? h('pre', { class: 'dv-code' }, p.replace(/\n$/, '')) : h('div', { class: 'dv-text' }, p));
    });
    return out;
  }

  function userEl(m) {
    const queued = m.status === 'queued';
    const qb = queued ? h('span', { class: 'badge pending', title: 'Delivered when the agent is reachable' }, 'queued') : null;
    const line = meta(h('strong', null, env.who(m.userId) || 'someone'), time(m.createdAt));
    if (qb) line.append(qb);
    const el = h('article', { class: 'dv-msg user', dataset: { id: m.id, t: at(m.createdAt) } }, line,
      h('div', { class: 'dv-text' }, m.content));
    el._queued = qb;
    return el;
  }

  function assistantEl(m) {
    return h('article', { class: 'dv-msg assistant', dataset: { id: m.id, t: at(m.createdAt), replyTo: m.replyTo || '' } },
      meta(h('strong', null, 'Agent'), time(m.createdAt)),
      richText(m.content));
  }

  function errorEl(m) {
    const code = (m.data && m.data.code) || 'error';
    const stopped = code === 'interrupted';
    return h('article', { class: 'dv-msg agent-error' + (stopped ? ' stopped' : ''), role: 'note', dataset: { id: m.id, t: at(m.createdAt) } },
      meta(h('strong', null, stopped ? 'Stopped' : 'Agent error'), h('code', null, code), time(m.createdAt)),
      h('div', { class: 'dv-text' }, m.content));
  }

  // A tool call: one folded line; its result joins it when it arrives.
  function toolEl(m) {
    const d = m.data || {};
    const rec = { callId: d.callId, tool: d.tool || m.content, input: d.input || {}, approval: null };
    rec.state = h('span', { class: 'badge info' }, 'running');
    rec.out = h('div', { class: 'dv-tool-out' });
    rec.details = h('details', { class: 'dv-tool-details' },
      h('summary', null, h('span', { class: 'dv-tool-line' }, toolSummary(rec.tool, rec.input)), rec.state),
      h('div', { class: 'dv-tool-body' },
        h('div', { class: 'dv-tool-label' }, 'Input'),
        h('pre', { class: 'dv-code' }, JSON.stringify(rec.input, null, 2)),
        rec.out));
    rec.slot = h('div', { class: 'dv-approval-slot' });
    rec.el = h('div', { class: 'dv-tool', dataset: { id: m.id, t: at(m.createdAt), callId: rec.callId || '' } }, rec.details, rec.slot);
    if (rec.callId) tools.set(rec.callId, rec);
    return rec;
  }

  function setResult(rec, m) {
    const d = m.data || {};
    const refused = !!d.refused;
    const bad = refused || !!d.isError;
    rec.state.className = 'badge ' + (refused ? 'denied' : bad ? 'bad' : 'ok');
    rec.state.textContent = refused ? 'refused' : bad ? 'failed' : 'done';
    rec.details.classList.toggle('failed', bad);
    fill(rec.out,
      h('div', { class: 'dv-tool-label' }, 'Output', d.image ? h('span', { class: 'muted' }, ' (with a screenshot for the model)') : null),
      h('pre', { class: 'dv-code' + (bad ? ' error' : '') }, m.content || '(no output)'));
  }

  function toolResult(m) {
    const d = m.data || {};
    const rec = d.callId && tools.get(d.callId);
    if (rec) {
      setResult(rec, m);
      return null;
    }
    // Its call is on an older page: shown alone until that page loads.
    const call = { id: m.id, createdAt: m.createdAt, content: d.tool, data: { tool: d.tool, callId: d.callId, input: {} } };
    const r = toolEl(call);
    r.details.querySelector('.dv-tool-line').textContent = `${d.tool || 'tool'}: result`;
    setResult(r, m);
    if (d.callId) orphans.set(d.callId, r);
    return r.el;
  }

  function messageEl(m) {
    if (m.role === 'user') return userEl(m);
    if (m.role === 'assistant') return assistantEl(m);
    if (m.role === 'error') return errorEl(m);
    if (m.role === 'tool_call') {
      const rec = toolEl(m);
      const orphan = rec.callId && orphans.get(rec.callId);
      if (orphan) { // the result was shown alone: fold it into its call
        orphans.delete(rec.callId);
        rec.out.replaceWith(orphan.out);
        rec.out = orphan.out;
        rec.state.replaceWith(orphan.state);
        rec.state = orphan.state;
        orphan.el.remove();
      }
      return rec.el;
    }
    if (m.role === 'tool_result') return toolResult(m);
    return null;
  }

  // A pilot message answering a user message marks that one delivered.
  function delivered(replyTo) {
    const u = replyTo && messages.get(replyTo);
    if (u && u._queued) {
      u._queued.remove();
      u._queued = null;
    }
  }

  function addMessage(m, live) {
    if (!m || !m.id || messages.has(m.id)) return;
    if (m.role !== 'user') delivered(m.replyTo);
    // History pages are laid out once they are all in; live ones follow the view.
    (live ? changed : (fn) => fn())(() => {
      const s = m.replyTo && streams.get(m.replyTo);
      if (s && m.role !== 'user') { // the streamed text ends here
        streams.delete(m.replyTo);
        if (m.role === 'assistant') {
          const el = assistantEl(m);
          messages.set(m.id, el);
          s.el.replaceWith(el);
          return;
        }
        s.el.remove();
      }
      const el = messageEl(m);
      messages.set(m.id, el || true);
      if (!el) return;
      if (live) list.append(el); else place(el);
      if (m.role === 'tool_call') claimApproval(tools.get(m.data && m.data.callId));
    }, live && m.role === 'user' && m.userId === env.meId());
  }

  function onDelta(ev) {
    if (!ev.replyTo || typeof ev.text !== 'string') return;
    state.deltas++;
    delivered(ev.replyTo);
    changed(() => {
      let s = streams.get(ev.replyTo);
      if (!s) {
        const body = h('div', { class: 'dv-text' });
        s = {
          text: '', body,
          el: h('article', { class: 'dv-msg assistant streaming', 'aria-busy': 'true', dataset: { t: Date.now() } },
            meta(h('strong', null, 'Agent'), h('span', { class: 'muted' }, 'writing…')), body),
        };
        streams.set(ev.replyTo, s);
        list.append(s.el);
      }
      s.text += ev.text;
      s.body.textContent = s.text;
    });
  }

  // ---- approvals ----
  function approvalEl(a) {
    const rec = { a };
    rec.badge = h('span', { class: 'badge' });
    rec.countdown = h('span', { class: 'dv-countdown muted' });
    rec.shot = h('div', { class: 'dv-approval-shot' });
    const noteId = 'dv-note-' + a.id;
    rec.note = h('input', { id: noteId, type: 'text', maxlength: NOTE_MAX, placeholder: 'Optional note for the audit log' });
    rec.approve = h('button', { type: 'button', class: 'primary', onclick: () => decide(rec, 'approve') }, 'Approve');
    rec.deny = h('button', { type: 'button', class: 'danger', onclick: () => decide(rec, 'deny') }, 'Deny');
    rec.form = h('div', { class: 'dv-approval-form' },
      h('label', { for: noteId, class: 'dv-sr-only' }, 'Note'), rec.note, rec.approve, rec.deny);
    rec.outcome = h('p', { class: 'dv-approval-outcome', hidden: true });
    rec.el = h('section', { class: 'dv-approval', 'aria-label': 'Approval request', dataset: { id: a.id, t: at(a.createdAt) } },
      h('div', { class: 'dv-approval-head' },
        h('strong', null, 'Approval needed'), h('span', { class: 'badge info' }, a.kind), rec.badge,
        h('span', { class: 'spacer' }), rec.countdown),
      h('p', { class: 'dv-approval-reason' }, a.reason),
      h('pre', { class: 'dv-code dv-approval-action' }, a.action),
      rec.shot, rec.form, rec.outcome);
    approvals.set(a.id, rec);
    render(rec);
    return rec;
  }

  function render(rec) {
    const a = rec.a;
    rec.el.dataset.status = a.status;
    rec.badge.className = 'badge ' + a.status;
    rec.badge.textContent = a.status;
    const pending = a.status === 'pending';
    rec.form.hidden = !pending;
    if (a.screenshotUrl && !rec.img) {
      rec.img = h('img', { class: 'shot', src: a.screenshotUrl, alt: 'The desktop\'s screen when the approval was asked' });
      fill(rec.shot, h('a', { href: a.screenshotUrl, target: '_blank', rel: 'noopener', title: 'Open the screenshot full size' }, rec.img));
    } else if (!a.screenshotUrl && pending && !rec.img) {
      rec.shot.textContent = 'Taking a screenshot…'; // approval.updated brings it
    }
    if (!pending) {
      const by = a.decidedBy ? env.who(a.decidedBy) : null;
      const verb = { approved: 'Approved', denied: 'Denied', expired: 'Expired: nobody decided in time, so it was refused' }[a.status] || a.status;
      fill(rec.outcome, h('strong', null, verb),
        by ? [' by ', h('span', { class: 'dv-who' }, by)] : null,
        a.decidedAt ? [' · ', time(a.decidedAt)] : null,
        a.note ? [h('br'), h('span', { class: 'muted' }, 'Note: '), a.note] : null);
      rec.outcome.hidden = false;
    }
    tick(Date.now(), rec);
  }

  function tick(now, rec) {
    if (rec.a.status !== 'pending') {
      rec.countdown.textContent = '';
      return;
    }
    const left = new Date(rec.a.expiresAt).getTime() - now;
    rec.countdown.textContent = left > 0 ? 'expires in ' + fmtDuration(left) : 'expiring…';
    rec.countdown.classList.toggle('urgent', left < 60000);
  }

  // The approval as it is now (decided elsewhere, say).
  async function refreshApproval(rec) {
    try {
      const a = await get('/api/approvals/' + encodeURIComponent(rec.a.id));
      if (!destroyed) update(a);
    } catch (e) {
      if (!destroyed) toast('Approval: ' + errorText(e), 'error');
    }
  }

  async function decide(rec, decision) {
    rec.approve.disabled = rec.deny.disabled = true;
    const body = { decision };
    const note = rec.note.value.trim();
    if (note) body.note = note;
    try {
      update(await post('/api/approvals/' + encodeURIComponent(rec.a.id), body));
      toast(decision === 'approve' ? 'Approved' : 'Denied', 'ok');
    } catch (e) {
      toast('The decision was not taken: ' + errorText(e), 'error');
      if (e.status === 409) refreshApproval(rec);
    } finally {
      rec.approve.disabled = rec.deny.disabled = false;
    }
  }

  // The tool call an approval is about: same tool and input, no approval
  // yet, the last one made before the approval (the same command may run
  // many times).
  function matchTool(a) {
    const want = stableJson(a.input || {});
    const t = at(a.createdAt) + 2000; // clocks of two stores, a little apart
    let best = null;
    for (const rec of tools.values()) {
      const rt = Number(rec.el.dataset.t);
      if (!rec.approval && rec.tool === a.kind && rt <= t && stableJson(rec.input) === want &&
          (!best || rt > Number(best.el.dataset.t))) best = rec;
    }
    return best;
  }

  function attach(rec, tool) {
    tool.approval = rec;
    tool.slot.append(rec.el);
  }

  // A new tool call takes an approval that arrived before it.
  function claimApproval(tool) {
    if (!tool) return;
    const want = stableJson(tool.input);
    for (const rec of approvals.values()) {
      if (!rec.el.parentElement || rec.el.parentElement !== list) continue;
      if (rec.a.kind === tool.tool && stableJson(rec.a.input || {}) === want &&
          Number(tool.el.dataset.t) <= at(rec.a.createdAt) + 2000) {
        attach(rec, tool);
        return;
      }
    }
  }

  function update(a) {
    if (!a || a.desktopId !== env.id) return;
    const rec = approvals.get(a.id);
    if (rec) {
      rec.a = a;
      render(rec);
      return;
    }
    changed(() => {
      const r = approvalEl(a);
      const tool = matchTool(a);
      if (tool) attach(r, tool); else place(r.el);
    });
  }

  async function loadApprovals() {
    try {
      const r = await get('/api/approvals');
      const first = list.firstElementChild;
      const from = first ? Number(first.dataset.t) : Infinity;
      r.approvals
        .filter((a) => a.desktopId === env.id && (a.status === 'pending' || new Date(a.createdAt).getTime() >= from))
        .reverse()
        .forEach(update);
    } catch (e) {
      if (!destroyed) toast('Approvals: ' + errorText(e), 'error');
    }
  }

  // ---- loading ----
  async function load() {
    try {
      const r = await get(`/api/desktops/${encodeURIComponent(env.id)}/chat` + qs({ limit: PAGE }));
      if (destroyed) return;
      nextBefore = r.nextBefore;
      r.messages.forEach((m) => addMessage(m, false));
      emptyNote.hidden = list.childElementCount > 0;
      olderBtn.hidden = !nextBefore;
      await loadApprovals();
      if (destroyed) return;
      state.loaded = true; // events from now on apply at once; the early ones first
      const queued = pendingEvents;
      pendingEvents = [];
      queued.forEach(event);
      changed(() => {}, true);
    } catch (e) {
      if (destroyed) return;
      notice.hidden = false;
      fill(notice, 'The conversation could not be loaded: ' + errorText(e));
      notice.className = 'dv-notice error';
      state.loaded = true; // what happens from now on still shows
      const queued = pendingEvents;
      pendingEvents = [];
      queued.forEach(event);
    }
  }

  async function loadOlder() {
    if (!nextBefore || loadingOlder) return;
    loadingOlder = true;
    olderBtn.disabled = true;
    try {
      const r = await get(`/api/desktops/${encodeURIComponent(env.id)}/chat` + qs({ limit: PAGE, before: nextBefore }));
      if (destroyed) return;
      const height = log.scrollHeight;
      const top = log.scrollTop;
      r.messages.forEach((m) => addMessage(m, false));
      nextBefore = r.nextBefore;
      olderBtn.hidden = !nextBefore;
      log.scrollTop = top + (log.scrollHeight - height); // keep what was on screen in place
    } catch (e) {
      toast('Earlier messages: ' + errorText(e), 'error');
    } finally {
      loadingOlder = false;
      olderBtn.disabled = false;
    }
  }

  // ---- actions ----
  async function send() {
    const text = box.value;
    if (!text.trim() || sendBtn.dataset.busy) return;
    sendBtn.dataset.busy = '1';
    sendBtn.disabled = true;
    try {
      const m = await post(`/api/desktops/${encodeURIComponent(env.id)}/chat`, { message: text });
      if (box.value === text) box.value = '';
      grow();
      if (!destroyed) addMessage(m, true);
      log.scrollTop = log.scrollHeight;
    } catch (e) {
      toast('The message was not sent: ' + errorText(e), 'error');
    } finally {
      delete sendBtn.dataset.busy;
      sendBtn.disabled = !box.value.trim();
    }
  }

  async function interrupt() {
    stopBtn.disabled = true;
    try {
      await post(`/api/desktops/${encodeURIComponent(env.id)}/chat/interrupt`);
      toast('Stopping the agent…', 'info');
    } catch (e) {
      toast('Stop: ' + errorText(e), 'error');
    } finally {
      stopBtn.disabled = false;
    }
  }

  // ---- state from the desktop and events ----
  function setAgent(agent) {
    agentStatus = (agent && agent.status) || 'idle';
    statusBadge.className = 'badge ' + (STATUS_CLASS[agentStatus] || '');
    statusBadge.textContent = STATUS_TEXT[agentStatus] || agentStatus;
    statusBadge.dataset.status = agentStatus;
    const t = agent && agent.task;
    task.textContent = t && agentStatus !== 'idle' ? truncate(t, 120) : '';
    task.title = t || '';
    stopBtn.hidden = !(agentStatus === 'working' || agentStatus === 'waiting_approval');
    if (agentStatus === 'idle' || agentStatus === 'error') {
      // Text streamed without a final message (a failed call): drop it.
      changed(() => { for (const s of streams.values()) s.el.remove(); streams.clear(); });
    }
  }

  function setDesktop(d) {
    setAgent(d.agent);
    const items = d.setup && typeof d.setup.items === 'string' ? ',' + d.setup.items + ',' : null;
    if (items !== null && !items.includes(',provider,') && !notice.classList.contains('error')) {
      notice.className = 'dv-notice';
      notice.textContent = 'This desktop has no AI provider configured, so its agent cannot answer. '
        + 'Messages are kept; give a provider, model and API key when you create a desktop to work with its agent.';
      notice.hidden = false;
    } else if (!notice.classList.contains('error')) {
      notice.hidden = true;
    }
  }

  function event(ev) {
    if (!state.loaded && ev.type !== 'agent.status') {
      pendingEvents.push(ev);
      return;
    }
    switch (ev.type) {
      case 'chat.message':
      case 'chat.tool':
        addMessage(ev.message, true);
        break;
      case 'chat.delta':
        onDelta(ev);
        break;
      case 'agent.status':
        setAgent(ev.agent);
        break;
      case 'approval.created':
      case 'approval.updated':
      case 'approval.decided':
        update(ev.approval);
        break;
      default:
    }
  }

  function everySecond(now) {
    for (const rec of approvals.values()) tick(now, rec);
  }

  function destroy() {
    destroyed = true;
  }

  load();
  return { el, state, update: setDesktop, event, tick: everySecond, destroy };
}
