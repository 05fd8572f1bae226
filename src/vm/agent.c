/* The control stream to bureau-agent over the virtio-serial port's unix
 * socket (src/guest/channel.h). The host says HELLO whenever it connects
 * and whenever the guest opens the port afresh (QMP VSERPORT_CHANGE); the
 * agent answers with its own. Requests carry a driver-chosen "id" and the
 * first message back with that id is their reply.
 *
 * Streams (exec, files, terminals) share the socket: each has its own
 * queue and credit, and DATA goes out only while the socket's own queue is
 * below VM_STREAM_PIPE_HIGH, so control messages never wait behind more
 * than that. Losing the connection ends every stream with an error. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define VM_AGENT_DEFAULT_TIMEOUT_MS 30000

struct vm_agent_write {
	uv_write_t req;
	uv_buf_t buf;
	char *data;
	struct vm *vm;
};

struct vm_stream_chunk {
	struct vm_stream_chunk *next;
	size_t len, off;
	char data[];
};

struct vm_stream {
	struct ch_stream ch;
	struct vm *vm;
	struct vm_stream_callbacks cbs;
	void *arg;
	struct vm_stream_chunk *head, *tail;
	size_t pending;
	int eof_queued, want_drain;
};

static void vm__agent_connected(uv_connect_t *req, int status);
static void vm__streams_pump(struct vm *vm, int drains);
static void vm__streams_fail(struct vm *vm, const char *why);

/* A frame may carry a secret (configure holds the BYOK key): its bytes
 * are wiped before the memory goes back to the allocator. Every frame is
 * wiped, which is simpler than flagging the secret ones and cheap. */
static void vm__agent_write_free(struct vm_agent_write *w)
{
	explicit_bzero(w->data, w->buf.len);
	free(w->data);
	free(w);
}

static void vm__agent_write_done(uv_write_t *req, int status)
{
	struct vm_agent_write *w = req->data;
	struct vm *vm = w->vm;

	vm__agent_write_free(w);
	/* Room in the socket's queue again: streams may send more. */
	if (status == 0 && vm->agent_state == AG_OPEN)
		vm__streams_pump(vm, 1);
}

/* Queues one frame; fails when the socket is not open or its queue is
 * over the high mark (a guest that does not read). */
static int vm__agent_write(struct vm *vm, struct buf *frame)
{
	struct vm_agent_write *w;

	if (vm->agent_state != AG_OPEN ||
	    uv_stream_get_write_queue_size((uv_stream_t *)&vm->agent) > VM_AGENT_MAX_QUEUE) {
		if (frame->data)
			explicit_bzero(frame->data, frame->len);
		buf_release(frame);
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->vm = vm;
	w->buf.len = frame->len;
	w->data = w->buf.base = buf_detach(frame, NULL);
	w->req.data = w;
	if (uv_write(&w->req, (uv_stream_t *)&vm->agent, &w->buf, 1, vm__agent_write_done) < 0) {
		vm__agent_write_free(w);
		return -1;
	}
	return 0;
}

static int vm__agent_write_json(struct vm *vm, enum ch_type type, const json_t *msg)
{
	struct buf frame = BUF_INIT;

	if (ch_json_append(&frame, type, 0, msg)) {
		buf_release(&frame);
		return -1;
	}
	return vm__agent_write(vm, &frame);
}

static void vm__agent_hello_send(struct vm *vm)
{
	json_t *hello =
	    json_pack("{s:s, s:i, s:s}", "type", "hello", "proto", CH_VERSION, "host", "bureaud");

	if (vm__agent_write_json(vm, CH_HELLO, hello) == 0)
		vm->hello_sent = 1;
	json_decref(hello);
}

/* ---- requests ---- */

static void vm__req_fired(uv_timer_t *t);

static void vm__req_rearm(struct vm *vm)
{
	uint64_t t = 0, now = uv_now(vm->d->loop);

	if (vm->state == VM_GONE)
		return;
	for (struct vm_agent_req *r = vm->reqs; r; r = r->next)
		if (!t || r->deadline < t)
			t = r->deadline;
	if (!t)
		uv_timer_stop(&vm->req_timer);
	else
		uv_timer_start(&vm->req_timer, vm__req_fired, t > now ? t - now : 0, 0);
}

static struct vm_agent_req *vm__req_take(struct vm *vm, long long id)
{
	for (struct vm_agent_req **p = &vm->reqs; *p; p = &(*p)->next) {
		struct vm_agent_req *r = *p;
		if (r->id == id) {
			*p = r->next;
			return r;
		}
	}
	return NULL;
}

static void vm__req_fired(uv_timer_t *t)
{
	struct vm *vm = t->data;
	uint64_t now = uv_now(vm->d->loop);
	struct vm_agent_req *r;
	struct err err = ERR_INIT;

	/* From the start each time: a callback may add or end requests. */
	for (;;) {
		for (r = vm->reqs; r && r->deadline > now; r = r->next)
			;
		if (!r)
			break;
		vm__req_take(vm, r->id);
		err_set(&err, 504, "agent_timeout", "the agent did not answer in time");
		r->cb(NULL, &err, r->arg);
		free(r);
	}
	vm__req_rearm(vm);
}

/* Pending requests can get no answer any more. */
static void vm__reqs_fail(struct vm *vm, const char *why)
{
	struct vm_agent_req *r;
	struct err err = ERR_INIT;

	while ((r = vm->reqs)) {
		vm->reqs = r->next;
		err_set(&err, 502, "agent_unavailable", "agent unavailable: %s", why);
		r->cb(NULL, &err, r->arg);
		free(r);
	}
	vm__req_rearm(vm);
}

static int vm__agent_reply(struct vm *vm, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	struct vm_agent_req *r;

	if (!json_is_integer(id) || !(r = vm__req_take(vm, json_integer_value(id))))
		return 0;
	r->cb(msg, NULL, r->arg);
	free(r);
	vm__req_rearm(vm);
	return 1;
}

struct vm_req_failure {
	struct err err;
	void (*cb)(json_t *reply, struct err *err, void *arg);
	void *arg;
};

static void vm__req_fail_now(void *p)
{
	struct vm_req_failure *f = p;

	f->cb(NULL, &f->err, f->arg);
	free(f);
}

int vm_agent_connected(const struct vm *vm)
{
	return vm->state == VM_RUNNING && vm->agent_state == AG_OPEN && vm->agent_hello;
}

int vm_agent_send(struct vm *vm, const json_t *msg)
{
	if (!vm_agent_connected(vm))
		return -1;
	return vm__agent_write_json(vm, CH_MSG, msg);
}

void vm_agent_request(struct vm *vm, json_t *msg, int timeout_ms,
		      void (*cb)(json_t *reply, struct err *err, void *arg), void *arg)
{
	struct vm_agent_req *r;
	long long id = ++vm->next_req_id;

	json_object_set_new(msg, "id", json_integer(id));
	if (!vm_agent_connected(vm) || vm__agent_write_json(vm, CH_MSG, msg)) {
		struct vm_req_failure *f = xcalloc(1, sizeof(*f));
		err_set(&f->err, 502, "agent_unavailable", "the agent of %s is not connected",
			vm->spec.id);
		f->cb = cb;
		f->arg = arg;
		vm__later(vm->d->loop, vm__req_fail_now, f);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->id = id;
	r->deadline = uv_now(vm->d->loop) +
		      (uint64_t)(timeout_ms > 0 ? timeout_ms : VM_AGENT_DEFAULT_TIMEOUT_MS);
	r->cb = cb;
	r->arg = arg;
	r->next = vm->reqs;
	vm->reqs = r;
	vm__req_rearm(vm);
}

/* ---- streams ---- */

static struct ch_session *vm__sess(struct vm *vm)
{
	if (!vm->streams.next_id)
		ch_session_init(&vm->streams, 1);
	return &vm->streams;
}

static void vm__stream_free(struct vm_stream *s)
{
	struct vm_stream_chunk *c;

	ch_stream_remove(vm__sess(s->vm), &s->ch);
	while ((c = s->head)) {
		s->head = c->next;
		free(c);
	}
	free(s);
}

/* Ends s with its callback and frees it. */
static void vm__stream_end(struct vm_stream *s, json_t *result, const struct err *err)
{
	ch_stream_remove(vm__sess(s->vm), &s->ch);
	if (s->cbs.on_close)
		s->cbs.on_close(s, result, err, s->arg);
	vm__stream_free(s);
}

static void vm__streams_fail(struct vm *vm, const char *why)
{
	struct ch_stream *st;
	struct err err = ERR_INIT;

	if (!vm->streams.count)
		return;
	log_info("vm=%s streams=%zu ended=\"%s\"", vm->spec.id, vm->streams.count, why);
	err_set(&err, 502, "agent_unavailable", CH_LOST " (%s)", why);
	while ((st = vm->streams.streams))
		vm__stream_end(st->owner, NULL, &err);
}

/* Sends what it can of s's queue; returns the bytes sent. */
static size_t vm__stream_send_some(struct vm *vm, struct vm_stream *s)
{
	struct vm_stream_chunk *c = s->head;
	struct buf frame = BUF_INIT;
	size_t n;

	if (!c) {
		if (!s->eof_queued || s->eof_queued == 2)
			return 0;
		ch_stream_data_append(&frame, &s->ch, NULL, 0);
		s->eof_queued = 2;
		vm__agent_write(vm, &frame);
		return 1;
	}
	n = ch_stream_sendable(&s->ch, c->len - c->off);
	if (!n)
		return 0;
	ch_stream_data_append(&frame, &s->ch, c->data + c->off, n);
	vm__agent_write(vm, &frame);
	c->off += n;
	s->pending -= n;
	if (c->off == c->len) {
		s->head = c->next;
		if (!s->head)
			s->tail = NULL;
		free(c);
	}
	return n;
}

static int vm__pipe_full(struct vm *vm)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&vm->agent) > VM_STREAM_PIPE_HIGH;
}

/* Moves queued bytes into the socket, one frame per stream per round so
 * streams share it fairly; then, if drains, tells writers that waited. */
static void vm__streams_pump(struct vm *vm, int drains)
{
	struct ch_stream *st;
	uint32_t ids[CH_MAX_STREAMS];
	size_t sent, i, n = 0;

	if (vm->agent_state != AG_OPEN || !vm->agent_hello)
		return;
	do {
		sent = 0;
		for (st = vm__sess(vm)->streams; st && !vm__pipe_full(vm); st = st->next)
			sent += vm__stream_send_some(vm, st->owner);
	} while (sent && !vm__pipe_full(vm));
	if (!drains)
		return;
	for (st = vm->streams.streams; st; st = st->next) {
		struct vm_stream *s = st->owner;

		if (s->want_drain && s->pending < VM_STREAM_LOW_WATER && n < CH_MAX_STREAMS) {
			s->want_drain = 0;
			ids[n++] = st->id;
		}
	}
	/* A callback may close any stream: look each one up again. */
	for (i = 0; i < n; i++) {
		struct ch_stream *found = ch_stream_find(&vm->streams, ids[i]);
		struct vm_stream *s = found ? found->owner : NULL;

		if (s && s->cbs.on_drain)
			s->cbs.on_drain(s, s->arg);
	}
}

/* Sends what the agent's credit for s grew by (a WINDOW frame for it). */
static void vm__stream_grant(struct vm_stream *s, size_t consumed, int resume)
{
	struct buf frame = BUF_INIT;

	if (resume)
		ch_stream_resume(&s->ch, &frame);
	else
		ch_stream_consumed(&s->ch, &frame, consumed);
	if (frame.len)
		vm__agent_write(s->vm, &frame);
	buf_release(&frame);
}

/* A stream the agent opens: the host offers no kinds (yet). */
static void vm__stream_refuse(struct vm *vm, json_t *msg)
{
	json_t *jid = json_object_get(msg, "stream");
	struct buf frame = BUF_INIT;

	if (!json_is_integer(jid) || json_integer_value(jid) <= 0 ||
	    json_integer_value(jid) > UINT32_MAX)
		return;
	ch_close_error_append(&frame, (uint32_t)json_integer_value(jid),
			      "the host accepts no streams of this kind");
	vm__agent_write(vm, &frame);
}

/* "opened" and "open" on the control stream; returns 1 when it was one. */
static int vm__stream_msg(struct vm *vm, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));
	json_t *jid = json_object_get(msg, "stream");
	struct ch_stream *st;
	struct vm_stream *s;

	if (type && !strcmp(type, "open")) {
		vm__stream_refuse(vm, msg);
		return 1;
	}
	if (!type || strcmp(type, "opened"))
		return 0;
	st = json_is_integer(jid) ? ch_stream_find(vm__sess(vm), (uint32_t)json_integer_value(jid))
				  : NULL;
	s = st ? st->owner : NULL;
	if (s && s->cbs.on_open)
		s->cbs.on_open(s, msg, s->arg);
	return 1;
}

static void vm__stream_violation(struct vm_stream *s, const char *what)
{
	struct buf frame = BUF_INIT;
	struct err err = ERR_INIT;

	log_warnx("vm=%s stream=%u protocol error: %s", s->vm->spec.id, s->ch.id, what);
	ch_close_error_append(&frame, s->ch.id, what);
	vm__agent_write(s->vm, &frame);
	err_set(&err, 502, "agent_protocol", "agent protocol error: %s", what);
	vm__stream_end(s, NULL, &err);
}

static void vm__stream_data(struct vm *vm, struct vm_stream *s, const struct ch_frame *f)
{
	uint32_t id = s->ch.id;
	struct ch_stream *st;

	if (ch_stream_received(&s->ch, f->len)) {
		vm__stream_violation(s, "more data than the window allows");
		return;
	}
	if (f->len && s->cbs.on_data)
		s->cbs.on_data(s, f->payload, f->len, s->arg);
	/* The callback may have closed it. */
	if ((st = ch_stream_find(vm__sess(vm), id)))
		vm__stream_grant(st->owner, f->len, 0);
}

static void vm__stream_frame(struct vm *vm, const struct ch_frame *f)
{
	struct ch_stream *st = ch_stream_find(vm__sess(vm), f->stream);
	struct vm_stream *s = st ? st->owner : NULL;
	json_t *result;

	if (!s) {
		/* Late frames of a stream we closed are normal. */
		log_debug("vm=%s drop frame type=%u stream=%u: no such stream", vm->spec.id,
			  f->type, f->stream);
		return;
	}
	switch (f->type) {
	case CH_DATA:
		vm__stream_data(vm, s, f);
		break;
	case CH_WINDOW:
		if (ch_stream_window(&s->ch, f))
			vm__stream_violation(s, "malformed WINDOW frame");
		else
			vm__streams_pump(vm, 1);
		break;
	case CH_CLOSE:
		result = ch_close_parse(f);
		if (!result)
			result = json_pack("{s:s}", "error", "malformed CLOSE from the agent");
		vm__stream_end(s, result, NULL);
		json_decref(result);
		break;
	}
}

struct vm_stream *vm_stream_open(struct vm *vm, json_t *open, const struct vm_stream_callbacks *cbs,
				 void *arg, struct err *err)
{
	struct vm_stream *s;
	struct buf frame = BUF_INIT;

	if (!vm_agent_connected(vm)) {
		err_set(err, 502, "agent_unavailable", "the agent of %s is not connected",
			vm->spec.id);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	if (!ch_stream_add(vm__sess(vm), &s->ch, 0, s)) {
		free(s);
		err_set(err, 503, "too_many_streams", "the agent has too many streams open");
		return NULL;
	}
	s->vm = vm;
	s->cbs = *cbs;
	s->arg = arg;
	json_object_set_new(open, "type", json_string("open"));
	json_object_set_new(open, "stream", json_integer(s->ch.id));
	if (ch_json_append(&frame, CH_MSG, 0, open) || vm__agent_write(vm, &frame)) {
		buf_release(&frame);
		vm__stream_free(s);
		err_set(err, 502, "agent_unavailable", "cannot send to the agent of %s",
			vm->spec.id);
		return NULL;
	}
	return s;
}

int vm_stream_write(struct vm_stream *s, const void *data, size_t len)
{
	struct vm_stream_chunk *c;

	if (s->eof_queued)
		return -1;
	if (len) {
		c = xmalloc(sizeof(*c) + len);
		c->next = NULL;
		c->len = len;
		c->off = 0;
		memcpy(c->data, data, len);
		if (s->tail)
			s->tail->next = c;
		else
			s->head = c;
		s->tail = c;
		s->pending += len;
	}
	vm__streams_pump(s->vm, 0);
	if (s->pending > VM_STREAM_HIGH_WATER) {
		s->want_drain = 1;
		return 1;
	}
	return 0;
}

void vm_stream_end(struct vm_stream *s)
{
	if (s->eof_queued)
		return;
	s->eof_queued = 1;
	vm__streams_pump(s->vm, 0);
}

size_t vm_stream_pending(const struct vm_stream *s)
{
	return s->pending;
}

void vm_stream_pause(struct vm_stream *s)
{
	ch_stream_pause(&s->ch);
}

void vm_stream_resume(struct vm_stream *s)
{
	vm__stream_grant(s, 0, 1);
}

int vm_stream_resize(struct vm_stream *s, int cols, int rows)
{
	json_t *m = json_pack("{s:s, s:i, s:i, s:i}", "type", "resize", "stream", (int)s->ch.id,
			      "cols", cols, "rows", rows);
	int r = vm__agent_write_json(s->vm, CH_MSG, m);

	json_decref(m);
	return r;
}

void vm_stream_close(struct vm_stream *s, const char *why)
{
	struct buf frame = BUF_INIT;

	if (s->vm->agent_state == AG_OPEN && s->vm->agent_hello) {
		ch_close_error_append(&frame, s->ch.id, why ? why : "closed by the host");
		vm__agent_write(s->vm, &frame);
	}
	vm__stream_free(s);
}

uint32_t vm_stream_id(const struct vm_stream *s)
{
	return s->ch.id;
}

/* ---- the connection ---- */

static int vm__agent_frame(const struct ch_frame *f, void *arg)
{
	struct vm *vm = arg;
	json_t *msg;

	if (f->type == CH_DATA || f->type == CH_CLOSE || f->type == CH_WINDOW) {
		vm__stream_frame(vm, f);
		return vm->state != VM_RUNNING || vm->agent_state != AG_OPEN;
	}
	if (f->type != CH_HELLO && f->type != CH_MSG) {
		log_warnx("vm=%s agent sent a frame of unknown type %u", vm->spec.id, f->type);
		return 0;
	}
	if (!(msg = ch_json_parse(f))) {
		log_warnx("vm=%s agent sent a frame that is not a JSON object", vm->spec.id);
		return 0;
	}
	if (f->type == CH_HELLO) {
		/* Streams never outlive the session they were opened in. */
		vm__streams_fail(vm, "the agent started a new session");
		vm->agent_hello = 1;
		vm->agent_backoff_ms = 0;
		if (!json_object_get(msg, "type"))
			json_object_set_new(msg, "type", json_string("hello"));
		log_info("vm=%s agent=hello", vm->spec.id);
	}
	if (f->type == CH_MSG && vm__stream_msg(vm, msg)) {
		json_decref(msg);
		return vm->state != VM_RUNNING || vm->agent_state != AG_OPEN;
	}
	if ((f->type == CH_HELLO || !vm__agent_reply(vm, msg)) && vm->cbs.on_agent_msg)
		vm->cbs.on_agent_msg(vm, msg, vm->cbs.arg);
	json_decref(msg);
	return vm->state != VM_RUNNING || vm->agent_state != AG_OPEN;
}

static void vm__agent_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct vm *vm = h->data;

	*b = uv_buf_init(vm->agent_chunk, sizeof(vm->agent_chunk));
}

static void vm__agent_close(struct vm *vm, const char *why);

static void vm__agent_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct vm *vm = s->data;

	if (n < 0) {
		vm__agent_close(vm, "the agent socket closed");
		return;
	}
	if (ch_decoder_feed(&vm->dec, b->base, (size_t)n, vm__agent_frame, vm) < 0) {
		log_warnx("vm=%s agent: malformed frame, resynchronising", vm->spec.id);
		ch_decoder_reset(&vm->dec);
		vm->agent_hello = 0;
		vm__reqs_fail(vm, "the channel lost sync");
		vm__streams_fail(vm, "the channel lost sync");
		vm__agent_hello_send(vm);
	}
}

static void vm__agent_retry(uv_timer_t *t)
{
	vm__agent_start(t->data);
}

static void vm__agent_closed(uv_handle_t *h)
{
	struct vm *vm = h->data;

	vm->agent_state = AG_IDLE;
	if (vm->state == VM_RUNNING) {
		vm->agent_backoff_ms =
		    vm->agent_backoff_ms ? vm->agent_backoff_ms * 2 : VM_AGENT_BACKOFF_MIN_MS;
		if (vm->agent_backoff_ms > VM_AGENT_BACKOFF_MAX_MS)
			vm->agent_backoff_ms = VM_AGENT_BACKOFF_MAX_MS;
		uv_timer_start(&vm->agent_timer, vm__agent_retry, (uint64_t)vm->agent_backoff_ms,
			       0);
	}
	vm__handle_closed(h); /* last: it may free vm */
}

/* Drops the connection; vm__agent_closed reconnects while the VM runs. */
static void vm__agent_close(struct vm *vm, const char *why)
{
	if (vm->agent_state == AG_IDLE || vm->agent_state == AG_CLOSING)
		return;
	if (vm->agent_hello)
		log_info("vm=%s agent=disconnected why=\"%s\"", vm->spec.id, why);
	vm->agent_hello = 0;
	vm->hello_sent = 0;
	vm->agent_state = AG_CLOSING;
	vm__reqs_fail(vm, why);
	vm__streams_fail(vm, why);
	uv_close((uv_handle_t *)&vm->agent, vm__agent_closed);
}

static void vm__agent_connected(uv_connect_t *req, int status)
{
	struct vm *vm = req->data;

	if (vm->agent_state != AG_CONNECTING)
		return;
	vm->agent_state = AG_OPEN;
	if (status < 0) {
		log_debug("vm=%s agent connect: %s", vm->spec.id, uv_strerror(status));
		vm__agent_close(vm, uv_strerror(status));
		return;
	}
	ch_decoder_reset(&vm->dec);
	uv_read_start((uv_stream_t *)&vm->agent, vm__agent_alloc, vm__agent_read);
	vm__agent_hello_send(vm);
}

void vm__agent_start(struct vm *vm)
{
	if (vm->agent_state != AG_IDLE || vm->state != VM_RUNNING)
		return;
	uv_pipe_init(vm->d->loop, &vm->agent, 0);
	vm->agent.data = vm;
	vm->handles++;
	vm->agent_state = AG_CONNECTING;
	vm->agent_connect.data = vm;
	uv_pipe_connect(&vm->agent_connect, &vm->agent, vm->agent_path, vm__agent_connected);
}

void vm__agent_port_changed(struct vm *vm, int open)
{
	log_info("vm=%s agent_port=%s", vm->spec.id, open ? "open" : "closed");
	if (!open) {
		vm->agent_hello = 0;
		vm->hello_sent = 0;
		ch_decoder_reset(&vm->dec);
		vm__reqs_fail(vm, "the guest closed the port");
		vm__streams_fail(vm, "the guest closed the port");
	} else if (vm->agent_state == AG_OPEN && !vm->hello_sent) {
		vm__agent_hello_send(vm);
	}
}

void vm__agent_fail_all(struct vm *vm, const char *why)
{
	uv_timer_stop(&vm->agent_timer);
	vm__agent_close(vm, why);
	vm__reqs_fail(vm, why);
	vm__streams_fail(vm, why);
}

void vm__agent_release(struct vm *vm)
{
	vm__agent_fail_all(vm, "the VM is released");
}
