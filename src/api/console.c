/* Browser consoles: the desktop's screen (RFB over a WebSocket, bridged to
 * QEMU's VNC socket) and a terminal (a WebSocket bridged to a PTY stream
 * of the agent), and the short-lived tickets that let programs and
 * embedding pages open them without a cookie.
 *
 * Every console is one WebSocket and one connection to the desktop (each
 * viewer has its own QEMU VNC client, so a slow viewer stalls only its
 * own). Both directions have a high and a low watermark: when the far
 * side's queue passes the high mark, reading the near side stops until it
 * drains to the low one, so a client that stops reading costs a bounded
 * amount of memory. Connections and disconnections go to the audit log. */
#include "api/api.h"
#include "api/rfb.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "vm/driver.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSOLE_TICKET_TTL_MS 60000
#define CONSOLE_TICKETS_MAX 4096  /* outstanding tickets, all users: 503 beyond */
#define CONSOLE_TICKET_LEN 64	  /* "ct_" + 43 characters, with room */
#define VNC_WS_HIGH (1024 * 1024) /* towards the browser */
#define VNC_WS_LOW (256 * 1024)
#define VNC_QEMU_HIGH (256 * 1024) /* towards QEMU */
#define VNC_QEMU_LOW (64 * 1024)
#define VNC_READ_SIZE 65536
#define VNC_MAX_MESSAGE (1024 * 1024) /* one client message (clipboard) */
/* QEMU listens on vnc.sock with a backlog of one: a viewer connecting
 * while another's connection waits to be accepted gets EAGAIN. It waits
 * a moment and tries again, for up to about two seconds. */
#define VNC_CONNECT_TRIES 40
#define VNC_CONNECT_RETRY_MS 50

/* ---- tickets: in memory, hashed, one use, bound to desktop and user ---- */

struct ticket {
	char hash[HASH_HEX_LEN + 1];
	char desktop_id[ID_MAX];
	char user_id[ID_MAX];
	int64_t expires_at;
};

static struct {
	pthread_mutex_t lock;
	struct ticket list[CONSOLE_TICKETS_MAX];
	size_t n;
} tickets = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Under the lock: forgets tickets past their time. */
static void tickets_prune(int64_t now)
{
	size_t keep = 0;

	for (size_t i = 0; i < tickets.n; i++)
		if (tickets.list[i].expires_at > now)
			tickets.list[keep++] = tickets.list[i];
	sodium_memzero(&tickets.list[keep], (tickets.n - keep) * sizeof(tickets.list[0]));
	tickets.n = keep;
}

static int ticket_add(const char *token, const char *desktop_id, const char *user_id,
		      int64_t expires_at, struct err *err)
{
	struct ticket *t;
	int r = 0;

	pthread_mutex_lock(&tickets.lock);
	tickets_prune(now_ms());
	if (tickets.n == CONSOLE_TICKETS_MAX) {
		r = err_set(err, 503, "unavailable", "too many console tickets outstanding");
	} else {
		t = &tickets.list[tickets.n++];
		token_hash(token, t->hash);
		snprintf(t->desktop_id, sizeof(t->desktop_id), "%s", desktop_id);
		snprintf(t->user_id, sizeof(t->user_id), "%s", user_id);
		t->expires_at = expires_at;
	}
	pthread_mutex_unlock(&tickets.lock);
	return r;
}

int console_ticket_redeem(const char *token, char user_id[ID_MAX], char desktop_id[ID_MAX])
{
	char hash[HASH_HEX_LEN + 1];
	int r = -1;

	token_hash(token, hash);
	pthread_mutex_lock(&tickets.lock);
	tickets_prune(now_ms());
	for (size_t i = 0; i < tickets.n; i++) {
		if (!secret_equal(tickets.list[i].hash, hash))
			continue;
		snprintf(user_id, ID_MAX, "%s", tickets.list[i].user_id);
		snprintf(desktop_id, ID_MAX, "%s", tickets.list[i].desktop_id);
		/* One use: gone as soon as it is presented. */
		tickets.list[i] = tickets.list[--tickets.n];
		sodium_memzero(&tickets.list[tickets.n], sizeof(tickets.list[0]));
		r = 0;
		break;
	}
	pthread_mutex_unlock(&tickets.lock);
	sodium_memzero(hash, sizeof(hash));
	return r;
}

/* The desktop of the path, if the caller may see it (404 otherwise). */
static int console_desktop_load(struct api_ctx *c)
{
	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	return 0;
}

void console_ticket_create(struct api_ctx *c)
{
	char token[CONSOLE_TICKET_LEN], expires[32];
	int64_t at = now_ms() + CONSOLE_TICKET_TTL_MS;

	if (console_desktop_load(c))
		return;
	token_new(token, sizeof(token), "ct");
	if (ticket_add(token, c->d.id, c->user.id, at, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	time_iso(at, expires);
	c->audit_detail = json_pack("{s:s}", "desktopId", c->d.id);
	api_ok(c, 201, json_pack("{s:s, s:s}", "ticket", token, "expiresAt", expires));
	sodium_memzero(token, sizeof(token));
}

/* ---- checks shared by both consoles, on the worker ---- */

/* Roles whose members may type and click; everyone else only watches. */
static const char *const control_roles[] = {"owner", "admin", "member", NULL};

static int role_may_control(const char *role)
{
	for (size_t i = 0; control_roles[i]; i++)
		if (!strcmp(control_roles[i], role))
			return 1;
	return 0;
}

/* "view" (the default) or "control" from ?mode=. Returns 1 for control,
 * 0 for view, -1 with err. */
static int console_mode(struct api_ctx *c)
{
	char mode[16];

	if (http_req_query(c->req, "mode", mode, sizeof(mode)) < 0 || !strcmp(mode, "view"))
		return 0;
	if (!strcmp(mode, "control"))
		return 1;
	return err_set(&c->err, 400, "invalid_request", "mode must be \"view\" or \"control\"");
}

/* The upgrade, the desktop, the credentials' reach, the mode; fills
 * c->d, c->data (1 when the console may control). */
static void console_check(struct api_ctx *c, int want_control)
{
	struct workspace w;
	int control;

	if (http_ws_check(c->req, &c->err) || console_desktop_load(c)) {
		api_fail(c, &c->err);
		return;
	}
	if (*c->ticket_desktop && strcmp(c->ticket_desktop, c->d.id)) {
		err_set(&c->err, 403, "forbidden", "the ticket was issued for another desktop");
		goto fail;
	}
	/* A cookie rides along with any page's request: only this server's
	 * own pages may use it (cross-site WebSocket hijacking). */
	if (!*c->ticket_desktop && !*c->key_id && !http_ws_origin_ok(c->req)) {
		err_set(&c->err, 403, "forbidden_origin", "cross-origin console refused");
		goto fail;
	}
	control = want_control ? 1 : console_mode(c);
	if (control < 0)
		goto fail;
	if (control && (store_workspace_get(c->s, c->user.id, c->d.workspace_id, &w, &c->err) ||
			!role_may_control(w.role))) {
		err_set(&c->err, 403, "forbidden", "your role may only watch this desktop");
		goto fail;
	}
	if (strcmp(c->d.state, "running")) {
		err_set(&c->err, 409, "conflict", "desktop is %s, not running", c->d.state);
		goto fail;
	}
	c->data = (void *)(intptr_t)control;
	c->audit_detail = json_pack("{s:s, s:s}", "console", want_control ? "terminal" : "vnc",
				    "mode", control ? "control" : "view");
	c->status = 101;
	return;
fail:
	api_fail(c, &c->err);
}

void console_vnc_check(struct api_ctx *c)
{
	console_check(c, 0);
}

/* ---- a console connection, on the loop ---- */

struct console {
	struct app *app;
	struct api_ctx *c; /* until the WebSocket is accepted */
	struct http_ws *ws;
	const char *kind; /* "vnc", "terminal" */
	int control;
	int refs; /* the WebSocket and the desktop side; freed at 0 */
	int code; /* close code, for the audit */
	char desktop_id[ID_MAX], workspace_id[ID_MAX], user_id[ID_MAX], key_id[ID_MAX];
	char remote[64];
	int64_t started_ms;
	uint64_t bytes_in, bytes_out;

	/* vnc */
	uv_pipe_t pipe;
	uv_connect_t connect;
	struct rfb_filter rfb;
	size_t pipe_pending;
	unsigned accepted : 1, pipe_open : 1, pipe_reading : 1, ws_paused : 1;
	char rbuf[VNC_READ_SIZE];
	char vnc_path[108]; /* sizeof(sun_path) */
	int tries;
};

/* Fills con (zeroed, embedded in its kind's struct) from the request. */
static void console_init(struct console *con, struct api_ctx *c, const char *kind)
{
	con->app = c->app;
	con->c = c;
	con->kind = kind;
	con->control = (int)(intptr_t)c->data;
	con->code = HTTP_WS_ABNORMAL;
	snprintf(con->desktop_id, sizeof(con->desktop_id), "%s", c->d.id);
	snprintf(con->workspace_id, sizeof(con->workspace_id), "%s", c->d.workspace_id);
	snprintf(con->user_id, sizeof(con->user_id), "%s", c->user.id);
	snprintf(con->key_id, sizeof(con->key_id), "%s", c->key_id);
	snprintf(con->remote, sizeof(con->remote), "%s", c->req->remote);
	con->started_ms = now_ms();
}

struct console_audit {
	struct audit_entry a;
};

static void console_audit_work(struct store *s, void *arg)
{
	struct console_audit *ca = arg;
	struct err err = ERR_INIT;

	if (store_audit_append(s, &ca->a, &err))
		log_warnx("audit append failed: %s", err.msg);
}

static void console_audit_done(void *arg)
{
	struct console_audit *ca = arg;

	free(ca->a.detail);
	free(ca);
}

/* The disconnection's audit entry, written by a worker. */
static void console_audit_end(struct console *con)
{
	struct console_audit *ca = xcalloc(1, sizeof(*ca));
	int64_t now = now_ms();
	json_t *d = json_pack(
	    "{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I}", "desktopId", con->desktop_id, "console",
	    con->kind, "mode", con->control ? "control" : "view", "code", con->code, "seconds",
	    (json_int_t)((now - con->started_ms) / 1000), "bytesIn", (json_int_t)con->bytes_in,
	    "bytesOut", (json_int_t)con->bytes_out, "inputDropped", (json_int_t)con->rfb.dropped);

	snprintf(ca->a.workspace_id, sizeof(ca->a.workspace_id), "%s", con->workspace_id);
	snprintf(ca->a.user_id, sizeof(ca->a.user_id), "%s", con->user_id);
	snprintf(ca->a.key_id, sizeof(ca->a.key_id), "%s", con->key_id);
	snprintf(ca->a.action, sizeof(ca->a.action), "desktop.console.disconnect");
	snprintf(ca->a.target, sizeof(ca->a.target), "%s", con->desktop_id);
	snprintf(ca->a.remote, sizeof(ca->a.remote), "%s", con->remote);
	ca->a.status = con->code;
	ca->a.detail = json_dumps(d, JSON_COMPACT);
	ca->a.created_at = now;
	json_decref(d);
	log_info("console closed desktop=%s kind=%s mode=%s code=%d in=%llu out=%llu",
		 con->desktop_id, con->kind, con->control ? "control" : "view", con->code,
		 (unsigned long long)con->bytes_in, (unsigned long long)con->bytes_out);
	job_submit(con->app, console_audit_work, console_audit_done, ca);
}

static void console_unref(struct console *con)
{
	if (--con->refs)
		return;
	if (con->accepted)
		console_audit_end(con);
	free(con);
}

/* ---- the VNC bridge ---- */

static void vnc_pipe_closed(uv_handle_t *h)
{
	console_unref(h->data);
}

static void vnc_pipe_close(struct console *con)
{
	if (!con->pipe_open)
		return;
	con->pipe_open = 0;
	uv_close((uv_handle_t *)&con->pipe, vnc_pipe_closed);
}

static void vnc_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct console *con = h->data;

	*b = uv_buf_init(con->rbuf, sizeof(con->rbuf));
}

/* QEMU → browser: one WebSocket message per read; RFB is a stream. */
static void vnc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct console *con = s->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		con->pipe_reading = 0;
		if (con->ws)
			http_ws_close(con->ws,
				      nread == UV_EOF ? HTTP_WS_GOING_AWAY : HTTP_WS_INTERNAL,
				      "the desktop's screen closed");
		vnc_pipe_close(con);
		return;
	}
	con->bytes_out += (uint64_t)nread;
	if (con->ws && http_ws_send(con->ws, 0, b->base, (size_t)nread) == 1) {
		uv_read_stop(s);
		con->pipe_reading = 0;
	}
}

static void vnc_read_start(struct console *con)
{
	if (con->pipe_reading || !con->pipe_open)
		return;
	if (uv_read_start((uv_stream_t *)&con->pipe, vnc_on_alloc, vnc_on_read)) {
		if (con->ws)
			http_ws_close(con->ws, HTTP_WS_INTERNAL, "the desktop's screen failed");
		vnc_pipe_close(con);
		return;
	}
	con->pipe_reading = 1;
}

struct vnc_write {
	uv_write_t req;
	struct console *con;
	size_t len;
	char data[];
};

static void vnc_on_write(uv_write_t *req, int status)
{
	struct vnc_write *w = (struct vnc_write *)req;
	struct console *con = w->con;

	con->pipe_pending -= w->len;
	free(w);
	if (status < 0 || !con->pipe_open || !con->ws)
		return;
	if (con->ws_paused && con->pipe_pending <= VNC_QEMU_LOW) {
		con->ws_paused = 0;
		http_ws_resume(con->ws);
	}
}

/* Browser → QEMU, through the RFB filter. */
static void vnc_on_message(struct http_ws *ws, int text, const uint8_t *data, size_t len, void *arg)
{
	struct console *con = arg;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	struct vnc_write *w;
	uv_buf_t b;

	con->bytes_in += len;
	if (rfb_filter_feed(&con->rfb, data, len, &out, &err)) {
		log_info("console vnc desktop=%s: %s", con->desktop_id, err.msg);
		http_ws_close(ws, HTTP_WS_POLICY, err.msg);
		buf_release(&out);
		return;
	}
	if (!out.len || !con->pipe_open) {
		buf_release(&out);
		return;
	}
	w = xmalloc(sizeof(*w) + out.len);
	w->con = con;
	w->len = out.len;
	memcpy(w->data, out.data, out.len);
	buf_release(&out);
	b = uv_buf_init(w->data, (unsigned int)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&con->pipe, &b, 1, vnc_on_write)) {
		free(w);
		http_ws_close(ws, HTTP_WS_INTERNAL, "the desktop's screen failed");
		return;
	}
	con->pipe_pending += w->len;
	if (con->pipe_pending > VNC_QEMU_HIGH && !con->ws_paused) {
		con->ws_paused = 1;
		http_ws_pause(ws);
	}
}

static void vnc_on_drain(struct http_ws *ws, void *arg)
{
	vnc_read_start(arg);
}

static void vnc_on_close(struct http_ws *ws, int code, void *arg)
{
	struct console *con = arg;

	con->code = code;
	con->ws = NULL;
	vnc_pipe_close(con);
	console_unref(con);
}

static const struct http_ws_callbacks vnc_ws_cbs = {
    .on_message = vnc_on_message,
    .on_drain = vnc_on_drain,
    .on_close = vnc_on_close,
};

/* noVNC offers "binary"; programs may offer nothing. */
static const char *const vnc_protocols[] = {"binary", NULL};

static void vnc_connect(struct console *con);

static void vnc_retry_closed(uv_handle_t *h)
{
	free(h);
}

/* The timer held the console's reference; the new pipe takes it over. */
static void vnc_retry_fired(uv_timer_t *t)
{
	struct console *con = t->data;

	uv_close((uv_handle_t *)t, vnc_retry_closed);
	vnc_connect(con);
}

static void vnc_connected(uv_connect_t *req, int status)
{
	struct console *con = req->data;
	struct api_ctx *c = con->c;
	struct err err = ERR_INIT;

	if (status == UV_EAGAIN && ++con->tries < VNC_CONNECT_TRIES) {
		uv_timer_t *t = xmalloc(sizeof(*t));
		uv_timer_init(con->app->loop, t);
		t->data = con;
		con->refs++;
		uv_timer_start(t, vnc_retry_fired, VNC_CONNECT_RETRY_MS, 0);
		vnc_pipe_close(con);
		return;
	}
	con->c = NULL;
	if (status < 0) {
		err_set(&err, 502, "vnc_unavailable", "the desktop's screen is not reachable: %s",
			uv_strerror(status));
		api_respond_err(c, &err);
		vnc_pipe_close(con);
		return;
	}
	con->ws =
	    http_ws_accept(c->req, http_ws_protocol_pick(c->req, vnc_protocols), &vnc_ws_cbs, con);
	api_ctx_free(c);
	if (!con->ws) {
		vnc_pipe_close(con);
		return;
	}
	con->refs++;
	con->accepted = 1;
	http_ws_set_watermarks(con->ws, VNC_WS_HIGH, VNC_WS_LOW);
	http_ws_set_max_message(con->ws, VNC_MAX_MESSAGE);
	log_info("console open desktop=%s kind=vnc mode=%s user=%s", con->desktop_id,
		 con->control ? "control" : "view", con->user_id);
	vnc_read_start(con);
}

void console_vnc_open(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	struct console *con;
	struct err err = ERR_INIT;

	if (!vm || !vm_vnc_path(vm) || !*vm_vnc_path(vm)) {
		err_set(&err, 409, "conflict", "desktop has no running VM");
		api_respond_err(c, &err);
		return;
	}
	con = xcalloc(1, sizeof(*con));
	console_init(con, c, "vnc");
	rfb_filter_init(&con->rfb, !con->control);
	snprintf(con->vnc_path, sizeof(con->vnc_path), "%s", vm_vnc_path(vm));
	con->refs = 1;
	vnc_connect(con);
}

/* The pipe holds a reference to the console (con->refs counts it). */
static void vnc_connect(struct console *con)
{
	uv_pipe_init(con->app->loop, &con->pipe, 0);
	con->pipe.data = con;
	con->pipe_open = 1;
	con->connect.data = con;
	uv_pipe_connect(&con->connect, &con->pipe, con->vnc_path, vnc_connected);
}

/* ---- the terminal bridge ----
 * Binary messages carry the terminal's bytes both ways (raw, so a UTF-8
 * sequence split between two messages is the browser's decoder's
 * business, as on a real terminal); text messages carry JSON control:
 * {"type":"resize","cols","rows"} and {"type":"end"} from the client,
 * {"type":"exit","exitCode","signal"} or {"type":"error","message"} from
 * us before the close. Output is coalesced for TERM_BATCH_MS or up to
 * TERM_BATCH_MAX bytes per message. On the desktop image the shell runs
 * tmux with the session's name, so a disconnect only detaches it. */

#define TERM_BATCH_MS 8
#define TERM_BATCH_MAX (32 * 1024)
#define TERM_WS_HIGH (512 * 1024)
#define TERM_WS_LOW (128 * 1024)
#define TERM_MAX_MESSAGE (64 * 1024) /* one paste */
#define TERM_SESSION_MAX 32
#define TERM_OPEN_TIMEOUT_MS 15000
#define TERM_DEFAULT_SESSION "main"

struct term {
	struct console con; /* first: the console's pointer converts back */
	struct vm_stream *stream;
	uv_timer_t timer; /* output batching */
	struct buf batch;
	char session[TERM_SESSION_MAX + 1];
	int tmux;
	unsigned stream_paused : 1, ws_paused : 1;
};

/* A session name goes into a shell command line: letters, digits, - _. */
static int term_session_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= TERM_SESSION_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789-_") == n;
}

void console_terminal_check(struct api_ctx *c)
{
	char session[TERM_SESSION_MAX + 2];
	int r = http_req_query(c->req, "session", session, sizeof(session));

	if (r >= 0 && !term_session_ok(session)) {
		err_set(&c->err, 400, "invalid_request",
			"session must be 1..%d letters, digits, '-' or '_'", TERM_SESSION_MAX);
		api_fail(c, &c->err);
		return;
	}
	console_check(c, 1);
}

static void term_timer_closed(uv_handle_t *h)
{
	struct term *t = h->data;

	buf_release(&t->batch);
	console_unref(&t->con);
}

/* Sends the coalesced output; pauses the agent's side when the browser
 * is behind. */
static void term_flush(struct term *t)
{
	uv_timer_stop(&t->timer);
	if (!t->batch.len || !t->con.ws) {
		buf_reset(&t->batch);
		return;
	}
	t->con.bytes_out += t->batch.len;
	if (http_ws_send(t->con.ws, 0, t->batch.data, t->batch.len) == 1 && t->stream &&
	    !t->stream_paused) {
		t->stream_paused = 1;
		vm_stream_pause(t->stream);
	}
	buf_reset(&t->batch);
}

static void term_on_timer(uv_timer_t *h)
{
	term_flush(h->data);
}

static void term_on_data(struct vm_stream *s, const uint8_t *data, size_t len, void *arg)
{
	struct term *t = arg;

	buf_append(&t->batch, data, len);
	if (t->batch.len >= TERM_BATCH_MAX)
		term_flush(t);
	else if (!uv_is_active((uv_handle_t *)&t->timer))
		uv_timer_start(&t->timer, term_on_timer, TERM_BATCH_MS, 0);
}

static void term_on_stream_drain(struct vm_stream *s, void *arg)
{
	struct term *t = arg;

	if (t->ws_paused && t->con.ws) {
		t->ws_paused = 0;
		http_ws_resume(t->con.ws);
	}
}

static void term_send_json(struct term *t, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);

	if (text && t->con.ws)
		http_ws_send(t->con.ws, 1, text, strlen(text));
	free(text);
	json_decref(msg);
}

/* The shell ended (or the agent went away): tell the browser, then close. */
static void term_on_stream_close(struct vm_stream *s, json_t *result, const struct err *err,
				 void *arg)
{
	struct term *t = arg;
	struct api_ctx *c = t->con.c;
	const char *error = result ? json_string_value(json_object_get(result, "error")) : NULL;

	t->stream = NULL;
	if (c) {
		/* Before the WebSocket: the agent refused the terminal. */
		struct err e = ERR_INIT;

		t->con.c = NULL;
		err_set(&e, 502, "agent_error", "terminal: %s",
			err	? err->msg
			: error ? error
				: "refused");
		api_respond_err(c, &e);
		uv_close((uv_handle_t *)&t->timer, term_timer_closed);
		return;
	}
	term_flush(t);
	if (err || error)
		term_send_json(
		    t, json_pack("{s:s, s:s}", "type", "error", "message", err ? err->msg : error));
	else
		term_send_json(t, json_pack("{s:s, s:O?, s:O?}", "type", "exit", "exitCode",
					    json_object_get(result, "exitCode"), "signal",
					    json_object_get(result, "signal")));
	if (t->con.ws)
		http_ws_close(t->con.ws, err || error ? HTTP_WS_INTERNAL : HTTP_WS_NORMAL,
			      "the terminal ended");
}

static void term_kill_done(json_t *reply, struct err *err, void *arg)
{
	json_t *code = reply ? json_object_get(reply, "exitCode") : NULL;

	if (!reply || !json_is_integer(code) || json_integer_value(code))
		log_warnx("terminal: ending the tmux session failed: %s",
			  err ? err->msg : "tmux kill-session failed");
}

/* Ends the tmux session; its client exits, and the terminal with it. */
static void term_session_kill(struct term *t)
{
	struct vm *vm = core_vm(t->con.app, t->con.desktop_id);
	json_t *msg = json_pack("{s:s, s:[s,s,s,s], s:s}", "type", "exec", "argv", "tmux",
				"kill-session", "-t", t->session, "user", "agent");

	if (vm)
		vm_agent_request(vm, msg, TERM_OPEN_TIMEOUT_MS, term_kill_done, NULL);
	json_decref(msg);
}

/* {"type":"resize","cols":N,"rows":N} or {"type":"end"}. */
static void term_control(struct term *t, const uint8_t *data, size_t len)
{
	json_t *msg = json_loadb((const char *)data, len, 0, NULL);
	const char *type = json_string_value(json_object_get(msg, "type"));
	json_int_t cols = json_integer_value(json_object_get(msg, "cols"));
	json_int_t rows = json_integer_value(json_object_get(msg, "rows"));

	if (type && !strcmp(type, "resize") && cols >= 1 && cols <= 1000 && rows >= 1 &&
	    rows <= 1000) {
		if (t->stream)
			vm_stream_resize(t->stream, (int)cols, (int)rows);
	} else if (type && !strcmp(type, "end")) {
		/* tmux ends with its session, the shell with it; else the
		 * shell ends with its terminal. */
		if (t->stream && t->tmux) {
			term_session_kill(t);
		} else if (t->stream) {
			vm_stream_close(t->stream, "ended by the user");
			t->stream = NULL;
			term_send_json(t, json_pack("{s:s}", "type", "exit"));
			http_ws_close(t->con.ws, HTTP_WS_NORMAL, "the terminal ended");
		}
	} else {
		http_ws_close(t->con.ws, HTTP_WS_POLICY,
			      "control messages are {\"type\":\"resize\",\"cols\",\"rows\"} or "
			      "{\"type\":\"end\"}");
	}
	json_decref(msg);
}

static void term_on_message(struct http_ws *ws, int text, const uint8_t *data, size_t len,
			    void *arg)
{
	struct term *t = arg;

	t->con.bytes_in += len;
	if (text && len && data[0] == '{') {
		term_control(t, data, len);
		return;
	}
	if (t->stream && vm_stream_write(t->stream, data, len) == 1 && !t->ws_paused) {
		t->ws_paused = 1;
		http_ws_pause(ws);
	}
}

static void term_on_ws_drain(struct http_ws *ws, void *arg)
{
	struct term *t = arg;

	if (t->stream_paused && t->stream) {
		t->stream_paused = 0;
		vm_stream_resume(t->stream);
	}
}

static void term_on_ws_close(struct http_ws *ws, int code, void *arg)
{
	struct term *t = arg;

	t->con.code = code;
	t->con.ws = NULL;
	/* The shell goes with its terminal; tmux's session stays. */
	if (t->stream)
		vm_stream_close(t->stream, "the viewer disconnected");
	t->stream = NULL;
	uv_close((uv_handle_t *)&t->timer, term_timer_closed);
	console_unref(&t->con);
}

static const struct http_ws_callbacks term_ws_cbs = {
    .on_message = term_on_message,
    .on_drain = term_on_ws_drain,
    .on_close = term_on_ws_close,
};

/* The agent opened the terminal: now the browser gets its WebSocket. */
static void term_on_open(struct vm_stream *s, json_t *info, void *arg)
{
	struct term *t = arg;
	struct api_ctx *c = t->con.c;
	char line[96];

	uv_timer_stop(&t->timer);
	t->con.c = NULL;
	t->con.ws = http_ws_accept(c->req, NULL, &term_ws_cbs, t);
	api_ctx_free(c);
	if (!t->con.ws) {
		vm_stream_close(s, "the viewer went away");
		t->stream = NULL;
		uv_close((uv_handle_t *)&t->timer, term_timer_closed);
		return;
	}
	t->con.accepted = 1;
	t->con.refs++;
	http_ws_set_watermarks(t->con.ws, TERM_WS_HIGH, TERM_WS_LOW);
	http_ws_set_max_message(t->con.ws, TERM_MAX_MESSAGE);
	log_info("console open desktop=%s kind=terminal session=%s user=%s", t->con.desktop_id,
		 t->session, t->con.user_id);
	/* The pty kind runs a login shell; it becomes tmux (attach or
	 * create), whose session outlives this connection. */
	if (t->tmux) {
		snprintf(line, sizeof(line), " exec tmux -u new-session -A -s %s\r", t->session);
		vm_stream_write(s, line, strlen(line));
	}
}

/* The agent never answered the open. */
static void term_on_open_timeout(uv_timer_t *h)
{
	struct term *t = h->data;
	struct api_ctx *c = t->con.c;
	struct err err = ERR_INIT;

	t->con.c = NULL;
	vm_stream_close(t->stream, "open timed out");
	t->stream = NULL;
	err_set(&err, 504, "agent_timeout", "the agent did not open a terminal in time");
	api_respond_err(c, &err);
	uv_close((uv_handle_t *)&t->timer, term_timer_closed);
}

static const struct vm_stream_callbacks term_stream_cbs = {
    .on_open = term_on_open,
    .on_data = term_on_data,
    .on_drain = term_on_stream_drain,
    .on_close = term_on_stream_close,
};

void console_terminal_open(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	struct err err = ERR_INIT;
	struct term *t;
	json_t *open;

	if (!vm || !vm_agent_connected(vm)) {
		err_set(&err, 409, "agent_unavailable",
			"the desktop's agent is not connected (is it still booting?)");
		api_respond_err(c, &err);
		return;
	}
	t = xcalloc(1, sizeof(*t));
	console_init(&t->con, c, "terminal");
	if (http_req_query(c->req, "session", t->session, sizeof(t->session)) < 0)
		snprintf(t->session, sizeof(t->session), "%s", TERM_DEFAULT_SESSION);
	t->tmux = !strcmp(c->d.image, "desktop");
	open = json_pack("{s:s, s:s, s:i, s:i}", "kind", "pty", "user", "agent", "cols", 80, "rows",
			 24);
	t->stream = vm_stream_open(vm, open, &term_stream_cbs, t, &err);
	json_decref(open);
	if (!t->stream) {
		free(t);
		api_respond_err(c, &err);
		return;
	}
	uv_timer_init(c->app->loop, &t->timer);
	t->timer.data = t;
	t->con.refs = 1; /* the timer; the WebSocket adds one */
	uv_timer_start(&t->timer, term_on_open_timeout, TERM_OPEN_TIMEOUT_MS, 0);
}
