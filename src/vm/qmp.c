#include "vm/qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xalloc.h"

#define QMP_READ_CHUNK (64 * 1024)

enum qmp_state { QMP_CONNECTING, QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_CLOSED };

struct qmp_cmd {
	struct qmp_cmd *next;
	long long id;
	uint64_t deadline; /* loop time in ms; 0: none */
	qmp_reply_cb cb;
	void *arg;
};

struct qmp_write {
	uv_write_t req;
	uv_buf_t buf;
	char data[];
};

struct qmp {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_connect_t connect_req;
	struct qmp_callbacks cbs;
	enum qmp_state state;
	int user_closed;
	int handles; /* open uv handles; freed when it drops to 0 */
	uint64_t handshake_deadline;
	struct buf in;
	size_t scanned;	   /* bytes of `in` known to hold no newline */
	struct buf queued; /* command lines written before the handshake */
	struct qmp_cmd *pending;
	long long next_id;
	char chunk[QMP_READ_CHUNK];
};

static void qmp__end(struct qmp *q, struct err *err);
static void qmp__timer_rearm(struct qmp *q);

static void qmp__handle_closed(uv_handle_t *h)
{
	struct qmp *q = h->data;

	if (--q->handles > 0)
		return;
	buf_release(&q->in);
	buf_release(&q->queued);
	free(q);
}

static void qmp__write_done(uv_write_t *req, int status)
{
	free(req->data);
}

static void qmp__write(struct qmp *q, const char *data, size_t len)
{
	struct qmp_write *w = xmalloc(sizeof(*w) + len);

	memcpy(w->data, data, len);
	w->buf = uv_buf_init(w->data, (unsigned)len);
	w->req.data = w;
	if (uv_write(&w->req, (uv_stream_t *)&q->pipe, &w->buf, 1, qmp__write_done) < 0)
		free(w);
}

/* One command line: {"execute":..., "arguments":..., "id":N}\n */
static char *qmp__line_new(const char *cmd, json_t *args, long long id, size_t *len)
{
	json_t *j = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	char *s, *line;

	if (args)
		json_object_set_new(j, "arguments", args);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	line = xasprintf("%s\n", s);
	free(s);
	*len = strlen(line);
	return line;
}

static struct qmp_cmd *qmp__cmd_add(struct qmp *q, int timeout_ms, qmp_reply_cb cb, void *arg)
{
	struct qmp_cmd *c = xcalloc(1, sizeof(*c)), **tail = &q->pending;

	c->id = ++q->next_id;
	c->deadline = timeout_ms > 0 ? uv_now(q->loop) + (uint64_t)timeout_ms : 0;
	c->cb = cb;
	c->arg = arg;
	while (*tail)
		tail = &(*tail)->next;
	*tail = c;
	return c;
}

static struct qmp_cmd *qmp__cmd_take(struct qmp *q, long long id)
{
	for (struct qmp_cmd **p = &q->pending; *p; p = &(*p)->next) {
		struct qmp_cmd *c = *p;
		if (c->id == id) {
			*p = c->next;
			return c;
		}
	}
	return NULL;
}

void qmp_command(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, qmp_reply_cb cb,
		 void *arg)
{
	struct err err = ERR_INIT;
	struct qmp_cmd *c;
	size_t len;
	char *line;

	if (q->state == QMP_CLOSED) {
		json_decref(args);
		err_set(&err, 502, "qmp_closed", "QMP connection closed");
		cb(NULL, &err, arg);
		return;
	}
	c = qmp__cmd_add(q, timeout_ms, cb, arg);
	line = qmp__line_new(cmd, args, c->id, &len);
	if (q->state == QMP_READY)
		qmp__write(q, line, len);
	else
		buf_append(&q->queued, line, len);
	free(line);
	qmp__timer_rearm(q);
}

static void qmp__reply(struct qmp *q, json_t *msg)
{
	json_t *id = json_object_get(msg, "id"), *ret, *error;
	struct err err = ERR_INIT;
	struct qmp_cmd *c;

	if (!json_is_integer(id) || !(c = qmp__cmd_take(q, json_integer_value(id))))
		return; /* a reply to a command that timed out already */
	qmp__timer_rearm(q);
	ret = json_object_get(msg, "return");
	error = json_object_get(msg, "error");
	if (error || !ret) {
		err_set(&err, 500, "qmp_error", "%s: %s",
			json_string_value(json_object_get(error, "class")) ?: "?",
			json_string_value(json_object_get(error, "desc")) ?: "malformed reply");
		c->cb(NULL, &err, c->arg);
	} else {
		c->cb(ret, NULL, c->arg);
	}
	free(c);
}

static void qmp__caps_done(json_t *ret, struct err *err, void *arg)
{
	struct qmp *q = arg;

	if (!ret) {
		err_prefix(err, "qmp_capabilities");
		qmp__end(q, err);
		return;
	}
	q->state = QMP_READY;
	q->handshake_deadline = 0;
	if (q->queued.len)
		qmp__write(q, q->queued.data, q->queued.len);
	buf_reset(&q->queued);
	qmp__timer_rearm(q);
	q->cbs.on_ready(q, NULL, q->cbs.arg);
}

/* The greeting: answer with qmp_capabilities, written ahead of anything
 * the owner queued. */
static void qmp__greeting(struct qmp *q)
{
	struct qmp_cmd *c = qmp__cmd_add(q, 0, qmp__caps_done, q);
	size_t len;
	char *line = qmp__line_new("qmp_capabilities", NULL, c->id, &len);

	q->state = QMP_NEGOTIATING;
	qmp__write(q, line, len);
	free(line);
}

static void qmp__dispatch(struct qmp *q, json_t *msg)
{
	json_t *event = json_object_get(msg, "event");

	if (q->state == QMP_GREETING && json_object_get(msg, "QMP"))
		qmp__greeting(q);
	else if (json_is_string(event) && q->cbs.on_event)
		q->cbs.on_event(q, json_string_value(event), json_object_get(msg, "data"),
				q->cbs.arg);
	else if (json_object_get(msg, "id"))
		qmp__reply(q, msg);
}

/* Handles every complete line in the input; a partial last line stays. */
static void qmp__lines_process(struct qmp *q)
{
	size_t start = 0;
	char *nl;

	while (q->state != QMP_CLOSED &&
	       (nl = memchr(q->in.data + q->scanned, '\n', q->in.len - q->scanned))) {
		size_t end = (size_t)(nl - q->in.data), len = end - start;
		json_error_t jerr;
		json_t *msg = json_loadb(q->in.data + start, len, 0, &jerr);

		q->scanned = start = end + 1;
		if (msg && json_is_object(msg))
			qmp__dispatch(q, msg);
		else if (len > 1) /* QEMU ends lines with \r\n */
			log_warnx("qmp: unparsable line: %s", jerr.text);
		json_decref(msg);
	}
	if (q->state == QMP_CLOSED)
		return;
	buf_consume(&q->in, start);
	q->scanned = q->in.len;
}

static void qmp__alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
	struct qmp *q = h->data;

	*out = uv_buf_init(q->chunk, sizeof(q->chunk));
}

static void qmp__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct qmp *q = s->data;
	struct err err = ERR_INIT;

	if (nread < 0) {
		err_set(&err, 502, "qmp_closed", "QMP connection closed: %s",
			uv_strerror((int)nread));
		qmp__end(q, &err);
		return;
	}
	buf_append(&q->in, b->base, (size_t)nread);
	qmp__lines_process(q);
	if (q->state != QMP_CLOSED && q->in.len > QMP_MAX_LINE) {
		err_set(&err, 502, "qmp_closed", "QMP message longer than %d bytes", QMP_MAX_LINE);
		qmp__end(q, &err);
	}
}

static void qmp__connected(uv_connect_t *req, int status)
{
	struct qmp *q = req->data;
	struct err err = ERR_INIT;

	if (q->state == QMP_CLOSED)
		return;
	if (status < 0) {
		err_set(&err, 502, "qmp_unavailable", "connect to QMP: %s", uv_strerror(status));
		err.errnum = -status;
		qmp__end(q, &err);
		return;
	}
	q->state = QMP_GREETING;
	uv_read_start((uv_stream_t *)&q->pipe, qmp__alloc, qmp__read);
}

static uint64_t qmp__earliest(struct qmp *q)
{
	uint64_t t = q->handshake_deadline;

	for (struct qmp_cmd *c = q->pending; c; c = c->next)
		if (c->deadline && (!t || c->deadline < t))
			t = c->deadline;
	return t;
}

static void qmp__timer_fired(uv_timer_t *t)
{
	struct qmp *q = t->data;
	uint64_t now = uv_now(q->loop);
	struct err err = ERR_INIT;
	struct qmp_cmd *c;

	if (q->handshake_deadline && q->handshake_deadline <= now) {
		err_set(&err, 504, "qmp_timeout", "QMP handshake took over %d ms",
			QMP_HANDSHAKE_TIMEOUT_MS);
		qmp__end(q, &err);
		return;
	}
	/* Look again from the start each time: a callback may change the list. */
	while (q->state != QMP_CLOSED) {
		for (c = q->pending; c && (!c->deadline || c->deadline > now); c = c->next)
			;
		if (!c)
			break;
		qmp__cmd_take(q, c->id);
		err_set(&err, 504, "qmp_timeout", "QMP command timed out");
		c->cb(NULL, &err, c->arg);
		free(c);
	}
	qmp__timer_rearm(q);
}

static void qmp__timer_rearm(struct qmp *q)
{
	uint64_t t, now = uv_now(q->loop);

	if (q->state == QMP_CLOSED)
		return;
	t = qmp__earliest(q);
	if (!t)
		uv_timer_stop(&q->timer);
	else
		uv_timer_start(&q->timer, qmp__timer_fired, t > now ? t - now : 0, 0);
}

/* The one way out: fail pending commands, tell the owner, close handles. */
static void qmp__end(struct qmp *q, struct err *err)
{
	enum qmp_state was = q->state;
	struct qmp_cmd *c;

	if (was == QMP_CLOSED)
		return;
	q->state = QMP_CLOSED;
	while ((c = q->pending)) {
		struct err e = *err;
		q->pending = c->next;
		if (c->cb != qmp__caps_done)
			c->cb(NULL, &e, c->arg);
		free(c);
	}
	if (!q->user_closed && was == QMP_READY && q->cbs.on_close)
		q->cbs.on_close(q, q->cbs.arg);
	else if (!q->user_closed && was != QMP_READY)
		q->cbs.on_ready(q, err, q->cbs.arg);
	uv_close((uv_handle_t *)&q->pipe, qmp__handle_closed);
	uv_close((uv_handle_t *)&q->timer, qmp__handle_closed);
}

struct qmp *qmp_connect(uv_loop_t *loop, const char *path, const struct qmp_callbacks *cbs,
			struct err *err)
{
	struct qmp *q;

	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		err_set(err, 500, "internal", "QMP socket path too long: %s", path);
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->loop = loop;
	q->cbs = *cbs;
	uv_pipe_init(loop, &q->pipe, 0);
	uv_timer_init(loop, &q->timer);
	q->pipe.data = q->timer.data = q->connect_req.data = q;
	q->handles = 2;
	q->handshake_deadline = uv_now(loop) + QMP_HANDSHAKE_TIMEOUT_MS;
	uv_pipe_connect(&q->connect_req, &q->pipe, path, qmp__connected);
	qmp__timer_rearm(q);
	return q;
}

void qmp_close(struct qmp *q)
{
	struct err err = ERR_INIT;

	q->user_closed = 1;
	err_set(&err, 502, "qmp_closed", "QMP connection closed");
	qmp__end(q, &err);
}

int qmp_is_ready(const struct qmp *q)
{
	return q->state == QMP_READY;
}
