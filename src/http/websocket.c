/* WebSockets: the RFC 6455 handshake, then wslay for the framing on a
 * socket taken over from the HTTP connection that asked for the upgrade.
 *
 * Bytes read go through wslay's event API: its recv callback serves them
 * from our input buffer (and says "would block" while the owner has paused
 * reading), its send callback appends frames to an output buffer that is
 * handed to libuv in one write per flush. What libuv has not written yet
 * is the queue the watermarks look at. The WebSocket ends once the closing
 * handshake is done (or timed out, or the peer vanished); on_close runs
 * from the loop, once, and the struct is freed in the last close
 * callback. */
#include "http/http_int.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "common/log.h"
#include "common/xalloc.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_B64_LEN 24 /* a 16-byte nonce in base64 */
#define WS_HIGH_WATER (1024 * 1024)
#define WS_LOW_WATER (256 * 1024)
#define WS_PROTOCOL_MAX 64

struct ws_write {
	uv_write_t req; /* first: the callback's pointer converts back */
	struct http_ws *ws;
	char *data;
	size_t len;
};

struct http_ws {
	struct http_server *srv;
	struct http_ws *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer; /* ping period, close wait, deferred close */
	wslay_event_context_ptr ctx;
	struct http_ws_callbacks cbs;
	void *arg;
	struct buf in;	/* read, not yet given to wslay */
	struct buf out; /* frames wslay produced during one flush */
	size_t pending; /* handed to libuv, not yet written */
	size_t high, low;
	uint64_t last_heard; /* loop time of the last bytes from the peer */
	int nhandles, close_code;
	unsigned reading : 1, paused : 1, over_high : 1, closing : 1, closed : 1, failed : 1,
	    in_call : 1, end_pending : 1, close_pending : 1;
	char close_reason[123];
	char protocol[WS_PROTOCOL_MAX];
	char remote[64];
};

static void ws_advance(struct http_ws *ws, int from_loop);
static void ws_queue_close(struct http_ws *ws);
static void ws_on_timer(uv_timer_t *t);

/* ---- the handshake ---- */

/* Whether the comma-separated header value lists token (any case). */
static int header_has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);

	while (value && *value) {
		const char *end;
		size_t len;

		value += strspn(value, " \t,");
		end = value + strcspn(value, ",");
		len = (size_t)(end - value);
		while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
			len--;
		if (len == tlen && !strncasecmp(value, token, tlen))
			return 1;
		value = end;
	}
	return 0;
}

int http_ws_check(const struct http_req *req, struct err *err)
{
	const char *version = http_req_header(req, "sec-websocket-version");
	const char *key = http_req_header(req, "sec-websocket-key");
	uint8_t raw[BASE64_DECODE_LENGTH(WS_KEY_B64_LEN)];
	struct base64_decode_ctx b64;
	size_t n = sizeof(raw);

	if (strcmp(req->method, "GET") ||
	    !header_has_token(http_req_header(req, "upgrade"), "websocket") ||
	    !header_has_token(http_req_header(req, "connection"), "upgrade"))
		return err_set(err, 400, "websocket_required",
			       "this endpoint speaks WebSocket only (GET with Upgrade: websocket)");
	if (!version || strcmp(version, "13"))
		return err_set(err, 426, "websocket_version", "Sec-WebSocket-Version must be 13");
	base64_decode_init(&b64);
	if (!key || strlen(key) != WS_KEY_B64_LEN ||
	    !base64_decode_update(&b64, &n, raw, WS_KEY_B64_LEN, key) ||
	    !base64_decode_final(&b64) || n != 16)
		return err_set(err, 400, "websocket_key",
			       "Sec-WebSocket-Key must be 16 bytes in base64");
	return 0;
}

int http_ws_origin_ok(const struct http_req *req)
{
	const char *origin = http_req_header(req, "origin");
	const char *host = http_req_header(req, "host");
	const char *rest;

	if (!origin)
		return 1;
	if (!host)
		return 0;
	if (!strncasecmp(origin, "http://", 7))
		rest = origin + 7;
	else if (!strncasecmp(origin, "https://", 8))
		rest = origin + 8;
	else
		return 0;
	return !strcasecmp(rest, host);
}

const char *http_ws_protocol_pick(const struct http_req *req, const char *const supported[])
{
	int looked = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const char *v = req->headers[i].value;

		if (strcmp(req->headers[i].name, "sec-websocket-protocol"))
			continue;
		while (*v && looked++ < HTTP_WS_MAX_PROTOCOLS) {
			size_t len;

			v += strspn(v, " \t,");
			len = strcspn(v, " \t,");
			for (size_t k = 0; len && supported[k]; k++)
				if (strlen(supported[k]) == len && !strncmp(v, supported[k], len))
					return supported[k];
			v += len;
		}
	}
	return NULL;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key GUID)). */
static void ws_accept_value(const char *key,
			    char out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1])
{
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];

	sha1_init(&sha);
	sha1_update(&sha, strlen(key), (const uint8_t *)key);
	sha1_update(&sha, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
	sha1_digest(&sha, sizeof(digest), digest);
	base64_encode_raw(out, sizeof(digest), digest);
	out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

/* ---- closing ---- */

static void ws_on_closed(uv_handle_t *h)
{
	struct http_ws *ws = h->data;
	struct http_server *srv = ws->srv;

	if (--ws->nhandles)
		return;
	if (ws->prev)
		ws->prev->next = ws->next;
	else
		srv->ws_list = ws->next;
	if (ws->next)
		ws->next->prev = ws->prev;
	wslay_event_context_free(ws->ctx);
	buf_release(&ws->in);
	buf_release(&ws->out);
	free(ws);
	http__server_ws_gone(srv);
}

/* The close code the owner hears: the peer's, else ours, else 1006. */
static int ws_final_code(struct http_ws *ws)
{
	int code = WSLAY_CODE_ABNORMAL_CLOSURE;

	if (!ws->failed && wslay_event_get_close_received(ws->ctx))
		code = wslay_event_get_status_code_received(ws->ctx);
	else if (!ws->failed && wslay_event_get_close_sent(ws->ctx))
		code = wslay_event_get_status_code_sent(ws->ctx);
	if (code == WSLAY_CODE_NO_STATUS_RCVD)
		code = HTTP_WS_NORMAL;
	return code;
}

/* Ends the socket now; only ever called from a loop callback. */
static void ws_end(struct http_ws *ws)
{
	int code;

	if (ws->closed)
		return;
	ws->closed = 1;
	code = ws_final_code(ws);
	uv_close((uv_handle_t *)&ws->tcp, ws_on_closed);
	uv_close((uv_handle_t *)&ws->timer, ws_on_closed);
	log_info("websocket closed remote=%s code=%d", ws->remote, code);
	if (ws->cbs.on_close)
		ws->cbs.on_close(ws, code, ws->arg);
}

static void ws_on_end_timer(uv_timer_t *t)
{
	ws_end(t->data);
}

/* Ends from the loop, when the need arises inside an owner's call. */
static void ws_end_soon(struct http_ws *ws)
{
	ws->end_pending = 1;
	if (!ws->closed)
		uv_timer_start(&ws->timer, ws_on_end_timer, 0, 0);
}

/* A failure inside a call: the connection is dead, end it soon. */
static void ws_break(struct http_ws *ws)
{
	ws->failed = 1;
	ws_end_soon(ws);
}

/* ---- writing ---- */

static void ws_on_write(uv_write_t *req, int status)
{
	struct ws_write *w = (struct ws_write *)req;
	struct http_ws *ws = w->ws;

	ws->pending -= w->len;
	free(w->data);
	free(w);
	if (ws->closed)
		return;
	if (status < 0) {
		ws->failed = 1;
		ws_end(ws);
		return;
	}
	if (ws->over_high && ws->pending <= ws->low) {
		ws->over_high = 0;
		if (ws->cbs.on_drain)
			ws->cbs.on_drain(ws, ws->arg);
	}
	if (!ws->closed)
		ws_advance(ws, 1);
}

static void ws_write_raw(struct http_ws *ws, char *data, size_t len)
{
	struct ws_write *w = xmalloc(sizeof(*w));
	uv_buf_t b = uv_buf_init(data, (unsigned int)len);

	w->ws = ws;
	w->data = data;
	w->len = len;
	if (uv_write(&w->req, (uv_stream_t *)&ws->tcp, &b, 1, ws_on_write)) {
		free(data);
		free(w);
		ws_break(ws);
		return;
	}
	ws->pending += len;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			  void *user)
{
	struct http_ws *ws = user;

	buf_append(&ws->out, data, len);
	return (ssize_t)len;
}

/* Lets wslay write what it has queued, and hands it to libuv. */
static void ws_flush(struct http_ws *ws)
{
	size_t len;
	char *data;

	/* Inside wslay_event_recv (an owner answering a message): the
	 * flush after it sends. */
	if (ws->closed || ws->failed || ws->in_call)
		return;
	if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx)) {
		ws_break(ws);
		return;
	}
	if (!ws->out.len)
		return;
	data = buf_detach(&ws->out, &len);
	ws_write_raw(ws, data, len);
}

/* ---- reading ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags,
			  void *user)
{
	struct http_ws *ws = user;

	if (ws->paused || !ws->in.len) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > ws->in.len)
		len = ws->in.len;
	memcpy(out, ws->in.data, len);
	buf_consume(&ws->in, len);
	return (ssize_t)len;
}

/* RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (k >= n - i)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		      void *user)
{
	struct http_ws *ws = user;
	int text = m->opcode == WSLAY_TEXT_FRAME;

	if (ws->closing || wslay_is_ctrl_frame(m->opcode))
		return;
	if (text && !utf8_valid(m->msg, m->msg_length)) {
		http_ws_close(ws, HTTP_WS_INVALID_DATA, "text message is not UTF-8");
		return;
	}
	if (ws->cbs.on_message)
		ws->cbs.on_message(ws, text, m->msg, m->msg_length, ws->arg);
}

static void ws_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct http_ws *ws = h->data;

	*b = uv_buf_init(ws->srv->rbuf, sizeof(ws->srv->rbuf));
}

static void ws_read_stop(struct http_ws *ws)
{
	if (!ws->reading)
		return;
	uv_read_stop((uv_stream_t *)&ws->tcp);
	ws->reading = 0;
}

static void ws_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct http_ws *ws = s->data;

	if (nread == 0 || ws->closed)
		return;
	if (nread < 0) {
		ws->reading = 0;
		ws->failed = !wslay_event_get_close_received(ws->ctx);
		ws_end(ws);
		return;
	}
	ws->last_heard = uv_now(s->loop);
	buf_append(&ws->in, b->base, (size_t)nread);
	ws_advance(ws, 1);
}

/* Feeds wslay, writes what it answered, reads on or not, and ends the
 * connection once the closing handshake is over (from the loop only). */
static void ws_advance(struct http_ws *ws, int from_loop)
{
	if (ws->closed || ws->in_call)
		return;
	ws->in_call = 1;
	if (ws->in.len && !ws->paused && wslay_event_get_read_enabled(ws->ctx) &&
	    wslay_event_recv(ws->ctx))
		ws->failed = 1;
	ws->in_call = 0;
	if (ws->close_pending)
		ws_queue_close(ws);
	else if (!ws->failed)
		ws_flush(ws);
	if (ws->closed)
		return;
	if (ws->failed ||
	    (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx) && !ws->pending)) {
		if (from_loop)
			ws_end(ws);
		else
			ws_end_soon(ws);
		return;
	}
	/* Input waits in the kernel while the owner is full; one read's
	 * worth at most sits in ws->in. */
	if (ws->paused || ws->in.len) {
		ws_read_stop(ws);
	} else if (!ws->reading) {
		if (uv_read_start((uv_stream_t *)&ws->tcp, ws_on_alloc, ws_on_read))
			ws_break(ws);
		else
			ws->reading = 1;
	}
}

/* Ping period, close wait and deferred ends share the timer. */
static void ws_on_timer(uv_timer_t *t)
{
	struct http_ws *ws = t->data;
	struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
	uint64_t now = uv_now(t->loop);

	/* Silence counts only while we listen: a paused reader is our doing. */
	if (ws->paused)
		ws->last_heard = now;
	if (ws->failed || ws->closing || now - ws->last_heard >= HTTP_WS_PONG_TIMEOUT_MS) {
		if (!ws->failed && !ws->closing)
			log_info("websocket silent remote=%s: dropped", ws->remote);
		ws->failed = ws->failed || !ws->closing;
		ws_end(ws);
		return;
	}
	wslay_event_queue_msg(ws->ctx, &ping);
	ws_flush(ws);
	uv_timer_start(&ws->timer, ws_on_timer, HTTP_WS_PING_MS, 0);
}

/* ---- the public calls ---- */

static const struct wslay_event_callbacks ws_wslay_cbs = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .on_msg_recv_callback = ws_on_msg,
};

static struct http_ws *ws_new(struct http_server *srv, const char *remote, const char *protocol)
{
	struct http_ws *ws = xcalloc(1, sizeof(*ws));

	ws->srv = srv;
	ws->high = WS_HIGH_WATER;
	ws->low = WS_LOW_WATER;
	ws->nhandles = 2;
	snprintf(ws->remote, sizeof(ws->remote), "%s", remote);
	snprintf(ws->protocol, sizeof(ws->protocol), "%s", protocol ? protocol : "");
	if (wslay_event_context_server_init(&ws->ctx, &ws_wslay_cbs, ws))
		fatalx("wslay: out of memory");
	wslay_event_config_set_max_recv_msg_length(ws->ctx, HTTP_WS_MAX_MESSAGE);
	uv_tcp_init(srv->loop, &ws->tcp);
	uv_timer_init(srv->loop, &ws->timer);
	ws->tcp.data = ws->timer.data = ws;
	ws->next = srv->ws_list;
	if (ws->next)
		ws->next->prev = ws;
	srv->ws_list = ws;
	srv->nws++;
	return ws;
}

static void ws_head(struct buf *out, const char *key, const char *protocol)
{
	char accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];

	ws_accept_value(key, accept);
	buf_printf(out,
		   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
		   accept);
	if (protocol)
		buf_printf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
	buf_puts(out, "\r\n");
}

struct http_ws *http_ws_accept(struct http_req *req, const char *protocol,
			       const struct http_ws_callbacks *cbs, void *arg)
{
	struct http__req *r = (struct http__req *)req;
	struct http_conn *c = r->conn;
	struct buf rest = BUF_INIT, head = BUF_INIT;
	struct http_server *srv;
	struct http_ws *ws;
	char *data;
	size_t len;
	int fd;

	if (c && c->srv->shutting_down) {
		http_respond_error(req, 503, "unavailable", "server shutting down");
		return NULL;
	}
	fd = c ? http__conn_detach(c, &rest) : -1;
	if (fd < 0) {
		r->status = 499; /* the client went away first */
		http__req_log(r);
		http__req_free(r);
		return NULL;
	}
	srv = c->srv;
	ws = ws_new(srv, req->remote, protocol);
	ws->cbs = *cbs;
	ws->arg = arg;
	ws->in = rest;
	ws->last_heard = uv_now(srv->loop);
	if (uv_tcp_open(&ws->tcp, fd)) {
		close(fd);
		ws->failed = 1;
	}
	ws_head(&head, http_req_header(req, "sec-websocket-key"), protocol);
	r->status = 101;
	r->bytes_out = head.len;
	http__req_log(r);
	http__req_free(r);
	data = buf_detach(&head, &len);
	if (ws->failed) {
		free(data);
		ws_break(ws);
		return ws;
	}
	ws_write_raw(ws, data, len);
	uv_timer_start(&ws->timer, ws_on_timer, HTTP_WS_PING_MS, 0);
	ws_advance(ws, 0);
	return ws;
}

int http_ws_send(struct http_ws *ws, int text, const void *data, size_t len)
{
	struct wslay_event_msg m = {text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, data, len};

	if (ws->closed || ws->closing || ws->failed)
		return -1;
	if (wslay_event_queue_msg(ws->ctx, &m))
		return -1;
	ws_flush(ws);
	if (ws->pending > ws->high) {
		ws->over_high = 1;
		return 1;
	}
	return 0;
}

size_t http_ws_queued(const struct http_ws *ws)
{
	return ws->pending + ws->out.len;
}

void http_ws_set_watermarks(struct http_ws *ws, size_t high, size_t low)
{
	ws->high = high;
	ws->low = low < high ? low : high;
}

void http_ws_set_max_message(struct http_ws *ws, size_t max)
{
	wslay_event_config_set_max_recv_msg_length(ws->ctx, max);
}

void http_ws_pause(struct http_ws *ws)
{
	ws->paused = 1;
	if (!ws->closed)
		ws_read_stop(ws);
}

void http_ws_resume(struct http_ws *ws)
{
	if (!ws->paused)
		return;
	ws->paused = 0;
	/* From the loop: the owner may be inside one of our callbacks. */
	if (!ws->closed && !ws->in_call)
		ws_advance(ws, 0);
}

/* The close frame goes after the messages already queued (wslay would
 * send it first: control frames jump its queue). */
static void ws_queue_close(struct http_ws *ws)
{
	ws->close_pending = 0;
	ws_flush(ws);
	if (wslay_event_queue_close(ws->ctx, (uint16_t)ws->close_code,
				    (const uint8_t *)ws->close_reason, strlen(ws->close_reason)))
		ws->failed = !wslay_event_get_close_received(ws->ctx);
	ws_flush(ws);
	/* The peer answers our close frame, or is dropped after a while. */
	if (!ws->closed && !ws->end_pending)
		uv_timer_start(&ws->timer, ws_on_timer, ws->failed ? 0 : HTTP_WS_CLOSE_TIMEOUT_MS,
			       0);
	ws->paused = 0;
}

void http_ws_close(struct http_ws *ws, int code, const char *reason)
{
	if (ws->closed || ws->closing)
		return;
	ws->closing = 1;
	ws->close_code = code;
	snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
	if (ws->in_call)
		ws->close_pending = 1; /* after wslay_event_recv, in ws_advance */
	else
		ws_queue_close(ws);
}

const char *http_ws_remote(const struct http_ws *ws)
{
	return ws->remote;
}

const char *http_ws_protocol(const struct http_ws *ws)
{
	return ws->protocol;
}

void http__ws_shutdown(struct http_server *srv)
{
	for (struct http_ws *ws = srv->ws_list; ws; ws = ws->next)
		http_ws_close(ws, HTTP_WS_GOING_AWAY, "server shutting down");
}
