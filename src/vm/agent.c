/* The control stream to bureau-agent over the virtio-serial port's unix
 * socket (src/guest/channel.h). The host says HELLO whenever it connects
 * and whenever the guest opens the port afresh (QMP VSERPORT_CHANGE); the
 * agent answers with its own. Requests carry a driver-chosen "id" and the
 * first message back with that id is their reply. */
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
};

static void vm__agent_connected(uv_connect_t *req, int status);

static void vm__agent_write_done(uv_write_t *req, int status)
{
	struct vm_agent_write *w = req->data;

	free(w->data);
	free(w);
}

/* Queues one frame; fails when the socket is not open or its queue is
 * over the high mark (a guest that does not read). */
static int vm__agent_write(struct vm *vm, struct buf *frame)
{
	struct vm_agent_write *w;

	if (vm->agent_state != AG_OPEN ||
	    uv_stream_get_write_queue_size((uv_stream_t *)&vm->agent) > VM_AGENT_MAX_QUEUE) {
		buf_release(frame);
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->buf.len = frame->len;
	w->data = w->buf.base = buf_detach(frame, NULL);
	w->req.data = w;
	if (uv_write(&w->req, (uv_stream_t *)&vm->agent, &w->buf, 1, vm__agent_write_done) < 0) {
		free(w->data);
		free(w);
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

/* ---- the connection ---- */

static int vm__agent_frame(const struct ch_frame *f, void *arg)
{
	struct vm *vm = arg;
	json_t *msg;

	if (f->type != CH_HELLO && f->type != CH_MSG)
		return 0; /* streams: nothing in the driver uses them yet */
	if (!(msg = ch_json_parse(f))) {
		log_warnx("vm=%s agent sent a frame that is not a JSON object", vm->spec.id);
		return 0;
	}
	if (f->type == CH_HELLO) {
		vm->agent_hello = 1;
		vm->agent_backoff_ms = 0;
		if (!json_object_get(msg, "type"))
			json_object_set_new(msg, "type", json_string("hello"));
		log_info("vm=%s agent=hello", vm->spec.id);
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
	} else if (vm->agent_state == AG_OPEN && !vm->hello_sent) {
		vm__agent_hello_send(vm);
	}
}

void vm__agent_fail_all(struct vm *vm, const char *why)
{
	uv_timer_stop(&vm->agent_timer);
	vm__agent_close(vm, why);
	vm__reqs_fail(vm, why);
}

void vm__agent_release(struct vm *vm)
{
	vm__agent_fail_all(vm, "the VM is released");
}
