/* Listener and connections. A connection reads only while it waits for a
 * request: once one is whole it goes to the handler and reading stops until
 * the answer is queued (pipelining in order, and backpressure). Answers
 * that end a connection are followed by a lingering close so the client
 * reads the answer instead of a reset. */
#include "http/http_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"

static void conn_advance(struct http_conn *c);
static void conn_close(struct http_conn *c);
static void conn_finish(struct http_conn *c);

struct http_write {
	uv_write_t req; /* first: the callback's pointer converts back */
	struct http_conn *conn;
	char *data;
	size_t len;
};

struct http_server *http_server_new(uv_loop_t *loop, http_handler handler, void *arg)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));

	srv->loop = loop;
	srv->handler = handler;
	srv->arg = arg;
	srv->idle_ms = HTTP_IDLE_TIMEOUT_MS;
	srv->max_conns = HTTP_MAX_CONNECTIONS;
	/* Initialised now so shutdown always has a handle to close, and its
	 * callback always comes from the loop, never from inside the call. */
	uv_tcp_init(loop, &srv->listener);
	srv->listener.data = srv;
	return srv;
}

void http_server_set_idle_timeout(struct http_server *srv, uint64_t ms)
{
	srv->idle_ms = ms;
}

void http_server_set_max_connections(struct http_server *srv, size_t n)
{
	srv->max_conns = n;
}

void http_server_set_body_limit(struct http_server *srv, http_body_limit_fn fn, void *arg)
{
	srv->body_limit = fn;
	srv->body_limit_arg = arg;
}

int http_server_port(const struct http_server *srv)
{
	return srv->port;
}

static void server_maybe_done(struct http_server *srv)
{
	if (!srv->shutting_down || !srv->listener_closed || srv->nconns || srv->nws)
		return;
	if (srv->done_cb)
		srv->done_cb(srv->done_arg);
	free(srv);
}

/* ---- timers ---- */

static void conn_on_timer(uv_timer_t *t)
{
	struct http_conn *c = t->data;

	/* Half a request after the idle time is a slow client: say so. */
	if (!c->broken && c->state == CONN_OPEN && c->parsing && !c->active) {
		http__conn_fail(c, 408, "timeout", "request not received in time");
		return;
	}
	conn_close(c);
}

/* Starts the wait for the next request, once per request: bytes arriving
 * do not extend it, so a client dribbling headers is closed too. */
static void conn_idle_arm(struct http_conn *c)
{
	if (c->idle_armed || c->broken)
		return;
	c->idle_armed = 1;
	uv_timer_start(&c->timer, conn_on_timer, c->srv->idle_ms, 0);
}

static void conn_idle_disarm(struct http_conn *c)
{
	c->idle_armed = 0;
	if (!c->broken)
		uv_timer_stop(&c->timer);
}

/* A failure found inside a caller's call (a write that could not even be
 * queued): close from the loop instead, so callbacks never reenter. */
static void conn_break(struct http_conn *c)
{
	c->broken = 1;
	uv_timer_start(&c->timer, conn_on_timer, 0, 0);
}

/* ---- reading ---- */

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct http_conn *c = h->data;

	/* Each read is consumed in its callback, so one buffer serves all. */
	*b = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct http_conn *c = s->data;

	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	if (nread < 0) {
		c->reading = 0;
		/* A client that half-closes after its request still gets the
		 * answer being written. */
		if (nread == UV_EOF && c->state == CONN_OPEN && c->nwrites && !c->active) {
			conn_finish(c);
			return;
		}
		conn_close(c);
		return;
	}
	/* The active request's body, streamed to its handler (body.c). */
	if (c->state == CONN_OPEN && c->active && c->active->body_stream &&
	    !c->active->body_done) {
		buf_append(&c->in, b->base, (size_t)nread);
		http__body_input(c);
		return;
	}
	/* Lingering, or a stream running: input only tells us the peer lives. */
	if (c->state != CONN_OPEN || c->active)
		return;
	buf_append(&c->in, b->base, (size_t)nread);
	conn_advance(c);
}

static void conn_read_start(struct http_conn *c)
{
	if (c->reading)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read)) {
		conn_break(c);
		return;
	}
	c->reading = 1;
}

static void conn_read_stop(struct http_conn *c)
{
	if (!c->reading)
		return;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = 0;
}

/* ---- closing ---- */

static void conn_on_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	struct http_server *srv = c->srv;

	if (--c->nhandles)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	buf_release(&c->in);
	free(c);
	server_maybe_done(srv);
}

/* Closes now. A request still with its handler stays valid (its answer is
 * dropped); a stream's on_close runs here. */
static void conn_close(struct http_conn *c)
{
	struct http__req *r = c->active;

	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->active = NULL;
	http__req_free(c->ready);
	http__req_free(c->parsing);
	c->ready = c->parsing = NULL;
	uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
	uv_close((uv_handle_t *)&c->timer, conn_on_closed);
	if (r) {
		r->conn = NULL;
		if (r->streaming)
			http__stream_closed(r);
		else if (r->body_stream && !r->body_done)
			http__body_abort(r, "the client went away during the upload");
	}
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct http_conn *c = req->data;

	if (status < 0 && c->state != CONN_CLOSING)
		conn_close(c);
}

/* Our FIN is out; read and drop until the client's (or the timer), since
 * closing with unread input would reset the answer away. */
static void conn_linger(struct http_conn *c)
{
	if (c->broken) {
		conn_close(c);
		return;
	}
	c->state = CONN_LINGER;
	c->shutdown.data = c;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_on_shutdown)) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, conn_on_timer, HTTP_LINGER_MS, 0);
	conn_read_start(c);
}

/* No more requests on this connection: close once the answer is out. */
static void conn_finish(struct http_conn *c)
{
	if (c->state != CONN_OPEN)
		return;
	c->state = CONN_FINISHING;
	http__req_free(c->ready);
	http__req_free(c->parsing);
	c->ready = c->parsing = NULL;
	conn_read_stop(c);
	if (!c->nwrites) {
		conn_linger(c);
		return;
	}
	/* A client that never reads the answer must not hold us forever. */
	c->idle_armed = 0;
	conn_idle_arm(c);
}

/* ---- writing ---- */

static void conn_on_write(uv_write_t *req, int status)
{
	struct http_write *w = (struct http_write *)req;
	struct http_conn *c = w->conn;

	c->nwrites--;
	c->write_pending -= w->len;
	free(w->data);
	free(w);
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	/* A stream's producer waiting for room (http_stream_on_drain). */
	if (c->active && c->active->streaming && c->active->on_drain &&
	    c->write_pending <= HTTP_STREAM_LOW_WATER)
		c->active->on_drain(&c->active->pub, c->active->drain_arg);
	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_FINISHING && !c->nwrites)
		conn_linger(c);
	else if (c->state == CONN_OPEN)
		conn_advance(c);
}

/* Queues data (malloc'd; the connection frees it once written). */
void http__conn_write(struct http_conn *c, char *data, size_t len)
{
	struct http_write *w;
	uv_buf_t b;

	if (!len || c->state == CONN_CLOSING || c->state == CONN_LINGER || c->broken) {
		free(data);
		return;
	}
	w = xmalloc(sizeof(*w));
	w->conn = c;
	w->data = data;
	w->len = len;
	b = uv_buf_init(data, (unsigned int)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write)) {
		free(data);
		free(w);
		conn_break(c);
		return;
	}
	c->nwrites++;
	c->write_pending += len;
}

/* ---- requests ---- */

static void conn_dispatch(struct http_conn *c)
{
	struct http__req *r = c->ready;

	c->ready = NULL;
	c->active = r;
	conn_read_stop(c);
	conn_idle_disarm(c);
	if (c->srv->shutting_down)
		r->keep_alive = 0;
	c->srv->handler(&r->pub, c->srv->arg);
}

/* Runs the parser over buffered input; a whole request lands in c->ready. */
static void conn_parse(struct http_conn *c)
{
	enum llhttp_errno e = llhttp_execute(&c->parser, c->in.data, c->in.len);

	if (e == HPE_OK) {
		buf_reset(&c->in);
		return;
	}
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
		buf_consume(&c->in, (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data));
		if (e == HPE_PAUSED)
			llhttp_resume(&c->parser);
		if (!c->ready) /* an upgrade with nothing to answer: stop here */
			http__conn_fail(c, 400, "bad_request", "unexpected protocol upgrade");
		return;
	}
	if (!c->fail_status)
		http__conn_fail(c, 400, "bad_request", llhttp_errno_name(e));
	else
		http__conn_fail(c, c->fail_status, c->fail_code, c->fail_msg);
}

/* Moves the connection on: dispatch the next request, or parse, or wait
 * for input. Answers given inside the handler return here through
 * http__conn_answered, which the busy flag turns into one more turn of
 * this loop instead of recursion. */
static void conn_advance(struct http_conn *c)
{
	if (c->busy)
		return;
	c->busy = 1;
	while (c->state == CONN_OPEN && !c->active && !c->broken) {
		/* A client that sends requests but does not read the answers. */
		if (c->write_pending > HTTP_STREAM_HIGH_WATER) {
			conn_read_stop(c);
			conn_idle_arm(c);
			break;
		}
		if (c->ready) {
			conn_dispatch(c);
			continue;
		}
		if (!c->in.len) {
			conn_idle_arm(c);
			conn_read_start(c);
			break;
		}
		conn_parse(c);
	}
	c->busy = 0;
}

void http__conn_answered(struct http_conn *c, int keep_alive)
{
	c->active = NULL;
	if (!keep_alive) {
		conn_finish(c);
		return;
	}
	c->idle_armed = 0;
	conn_advance(c);
}

void http__conn_reading(struct http_conn *c, int on)
{
	if (on)
		conn_read_start(c);
	else
		conn_read_stop(c);
}

void http__conn_idle_rearm(struct http_conn *c)
{
	c->idle_armed = 0;
	conn_idle_arm(c);
}

void http__conn_stream_started(struct http_conn *c)
{
	conn_idle_disarm(c);
	conn_read_start(c);
}

int http__conn_detach(struct http_conn *c, struct buf *rest)
{
	uv_os_fd_t fd;
	int copy;

	if (c->state != CONN_OPEN || c->broken || c->nwrites ||
	    uv_fileno((uv_handle_t *)&c->tcp, &fd))
		return -1;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0)
		return -1;
	*rest = c->in;
	c->in = (struct buf)BUF_INIT;
	c->active = NULL;
	conn_close(c);
	return copy;
}

void http__server_ws_gone(struct http_server *srv)
{
	srv->nws--;
	server_maybe_done(srv);
}

void http__conn_fail(struct http_conn *c, int status, const char *code, const char *msg)
{
	struct http__req *r = c->parsing ? c->parsing : http__req_new(c);

	c->parsing = NULL;
	c->active = r;
	r->keep_alive = 0;
	r->head = 0;
	http_respond_error(&r->pub, status, code, msg);
}

/* ---- accepting ---- */

static void conn_remote_name(struct http_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	snprintf(c->remote, sizeof(c->remote), "-");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
		return;
	if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
	else
		uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
}

static struct http_conn *conn_new(struct http_server *srv)
{
	struct http_conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->nhandles = 2;
	uv_tcp_init(srv->loop, &c->tcp);
	uv_timer_init(srv->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	llhttp_init(&c->parser, HTTP_REQUEST, &http__parser_settings);
	c->parser.data = c;
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
	return c;
}

static void server_on_connection(uv_stream_t *s, int status)
{
	struct http_server *srv = s->data;
	struct http_conn *c;

	if (status < 0) {
		log_warnx("http accept: %s", uv_strerror(status));
		return;
	}
	c = conn_new(srv);
	if (uv_accept(s, (uv_stream_t *)&c->tcp) || srv->shutting_down ||
	    srv->nconns > srv->max_conns * HTTP_FAIL_DISCARD) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	conn_remote_name(c);
	if (srv->nconns > srv->max_conns) {
		http__conn_fail(c, 503, "unavailable", "too many connections");
		return;
	}
	conn_advance(c);
}

/* Fills addr from "HOST:PORT", "[V6]:PORT", ":PORT" or "localhost:PORT". */
static int server_addr_parse(const char *text, struct sockaddr_storage *addr, struct err *err)
{
	char host[128];
	const char *colon = strrchr(text, ':');
	const char *h = text;
	size_t hlen;
	char *end;
	long port;

	if (!colon)
		return err_set(err, 0, "invalid_config", "listen address %s: no port", text);
	port = strtol(colon + 1, &end, 10);
	hlen = (size_t)(colon - text);
	if (*end || end == colon + 1 || port < 0 || port > 65535 || hlen >= sizeof(host))
		return err_set(err, 0, "invalid_config", "listen address %s: bad port", text);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		memcpy(host, h + 1, hlen - 2);
		host[hlen - 2] = '\0';
		if (!uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr))
			return 0;
	} else {
		memcpy(host, h, hlen);
		host[hlen] = '\0';
		if (!hlen || !strcmp(host, "*"))
			snprintf(host, sizeof(host), "0.0.0.0");
		else if (!strcmp(host, "localhost"))
			snprintf(host, sizeof(host), "127.0.0.1");
		if (!uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr))
			return 0;
	}
	return err_set(err, 0, "invalid_config", "listen address %s: bad host", text);
}

int http_server_listen(struct http_server *srv, const char *addr, struct err *err)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), r;

	memset(&ss, 0, sizeof(ss));
	if (server_addr_parse(addr, &ss, err))
		return -1;
	r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
	if (!r)
		r = uv_listen((uv_stream_t *)&srv->listener, 511, server_on_connection);
	if (!r)
		r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
	if (r)
		return err_sys(err, -r, "listen on %s", addr);
	srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("http listening addr=%s port=%d", addr, srv->port);
	return 0;
}

/* ---- shutdown ---- */

static void server_on_listener_closed(uv_handle_t *h)
{
	struct http_server *srv = h->data;

	srv->listener_closed = 1;
	server_maybe_done(srv);
}

/* Idle connections close now, streams end, a request with its handler is
 * answered first (with Connection: close), an answer being written is
 * flushed first. */
static void conn_shutdown(struct http_conn *c)
{
	if (c->state != CONN_OPEN)
		return;
	if (c->active && !c->active->streaming) {
		c->active->keep_alive = 0;
		return;
	}
	if (c->nwrites && !c->active) {
		conn_finish(c);
		return;
	}
	conn_close(c);
}

void http_server_shutdown(struct http_server *srv, void (*cb)(void *arg), void *arg)
{
	struct http_conn *c, *next;

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	srv->done_cb = cb;
	srv->done_arg = arg;
	uv_close((uv_handle_t *)&srv->listener, server_on_listener_closed);
	http__ws_shutdown(srv);
	for (c = srv->conns; c; c = next) {
		next = c->next;
		conn_shutdown(c);
	}
}
