/* The HTTP server end to end on loopback: the server runs in its own loop
 * on a second thread, and the tests drive it with plain blocking sockets
 * from the main thread, as a client would. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "http/http.h"
#include "tap.h"

/* ---- the server under test, on its own thread ---- */

struct tserver {
	uv_loop_t loop;
	uv_async_t async;
	uv_thread_t thread;
	struct http_server *srv;
	int port;
	atomic_int want_shutdown, done;
};

static atomic_int stream_closes, slow_answers;

struct slow {
	uv_timer_t timer;
	struct http_req *req;
};

static void slow_on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void slow_on_timer(uv_timer_t *t)
{
	struct slow *s = t->data;

	http_respond(s->req, 200, "text/plain", "slow done", 9, NULL);
	atomic_fetch_add(&slow_answers, 1);
	uv_close((uv_handle_t *)t, slow_on_closed);
}

/* Answers later, from a timer: the asynchronous handler. */
static void handle_slow(struct http_req *req)
{
	struct slow *s = xcalloc(1, sizeof(*s));
	char ms[16] = "50";

	http_req_query(req, "ms", ms, sizeof(ms));
	s->req = req;
	uv_timer_init(req->data, &s->timer);
	s->timer.data = s;
	uv_timer_start(&s->timer, slow_on_timer, (uint64_t)atoi(ms), 0);
}

struct tstream {
	uv_timer_t timer;
	struct http_req *req;
	int sent, max;
};

static void tstream_on_close(struct http_req *req, void *arg)
{
	struct tstream *s = arg;

	atomic_fetch_add(&stream_closes, 1);
	s->req = NULL;
	uv_close((uv_handle_t *)&s->timer, slow_on_closed);
}

/* Writes an event every 20 ms; ends after max events (0: never). */
static void tstream_on_timer(uv_timer_t *t)
{
	struct tstream *s = t->data;
	char ev[64];
	int n = snprintf(ev, sizeof(ev), "data: event %d\n\n", ++s->sent);

	http_stream_write(s->req, ev, (size_t)n);
	if (s->max && s->sent >= s->max) {
		http_stream_end(s->req);
		s->req = NULL;
		uv_close((uv_handle_t *)t, slow_on_closed);
	}
}

static void handle_stream(struct http_req *req, int max)
{
	struct tstream *s = xcalloc(1, sizeof(*s));

	s->req = req;
	s->max = max;
	uv_timer_init(req->data, &s->timer);
	s->timer.data = s;
	if (http_stream_begin(req, 200, "text/event-stream", "Cache-Control: no-store\r\n",
			      tstream_on_close, s)) {
		uv_close((uv_handle_t *)&s->timer, slow_on_closed);
		return;
	}
	uv_timer_start(&s->timer, tstream_on_timer, 20, 20);
}

static void handle_misc(struct http_req *req)
{
	char out[256], v[64];
	struct err err = ERR_INIT;

	if (!strcmp(req->path, "/echo") || !strcmp(req->path, "/small")) {
		http_respond(req, 200, "application/octet-stream", req->body, req->body_len, NULL);
	} else if (!strncmp(req->path, "/path", 5)) {
		snprintf(out, sizeof(out), "%s|%s", req->path, req->query ? req->query : "(null)");
		http_respond(req, 200, "text/plain", out, strlen(out), NULL);
	} else if (!strcmp(req->path, "/json")) {
		http_respond_json(req, 201, json_pack("{s:i}", "n", 7), "X-Extra: yes\r\n");
	} else if (!strcmp(req->path, "/error")) {
		http_respond_error(req, 404, "not_found", "no such thing");
	} else if (!strcmp(req->path, "/err")) {
		err_set(&err, 0, "", "boom");
		http_respond_err(req, &err);
	} else if (!strcmp(req->path, "/cookie")) {
		if (http_req_cookie(req, "sid", v, sizeof(v)) < 0)
			strcpy(v, "(none)");
		snprintf(out, sizeof(out), "%s|%s", v, http_req_header(req, "X-TEST") ?: "(none)");
		http_respond(req, 200, "text/plain", out, strlen(out), NULL);
	} else {
		http_respond_error(req, 404, "not_found", "no such page");
	}
}

static void handler(struct http_req *req, void *arg)
{
	struct tserver *ts = arg;

	req->data = &ts->loop;
	snprintf(req->log_extra, sizeof(req->log_extra), "test=1");
	if (!strcmp(req->path, "/hello"))
		http_respond(req, 200, "text/plain", "hello world", 11, NULL);
	else if (!strcmp(req->path, "/slow"))
		handle_slow(req);
	else if (!strcmp(req->path, "/stream"))
		handle_stream(req, 3);
	else if (!strcmp(req->path, "/stream-hold"))
		handle_stream(req, 0);
	else
		handle_misc(req);
}

/* A route with its own, smaller body limit. */
static size_t body_limit(const struct http_req *req, void *arg)
{
	return strcmp(req->path, "/small") ? HTTP_MAX_BODY_LEN : 8;
}

static void ts_on_shutdown(void *arg)
{
	struct tserver *ts = arg;

	atomic_store(&ts->done, 1);
	uv_close((uv_handle_t *)&ts->async, NULL);
}

static void ts_on_async(uv_async_t *a)
{
	struct tserver *ts = a->data;

	if (atomic_load(&ts->want_shutdown))
		http_server_shutdown(ts->srv, ts_on_shutdown, ts);
}

static void ts_run(void *arg)
{
	struct tserver *ts = arg;

	uv_run(&ts->loop, UV_RUN_DEFAULT);
}

static struct tserver *ts_start(uint64_t idle_ms, size_t max_conns)
{
	struct tserver *ts = xcalloc(1, sizeof(*ts));
	struct err err = ERR_INIT;

	uv_loop_init(&ts->loop);
	ts->srv = http_server_new(&ts->loop, handler, ts);
	http_server_set_idle_timeout(ts->srv, idle_ms);
	http_server_set_max_connections(ts->srv, max_conns);
	http_server_set_body_limit(ts->srv, body_limit, NULL);
	if (http_server_listen(ts->srv, "127.0.0.1:0", &err))
		fatalx("listen: %s", err.msg);
	ts->port = http_server_port(ts->srv);
	uv_async_init(&ts->loop, &ts->async, ts_on_async);
	ts->async.data = ts;
	uv_thread_create(&ts->thread, ts_run, ts);
	return ts;
}

static int64_t mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Asks for a graceful shutdown; returns 1 when it completed in time. */
static int ts_stop(struct tserver *ts, int wait_ms)
{
	int64_t end = mono_now() + wait_ms;

	atomic_store(&ts->want_shutdown, 1);
	uv_async_send(&ts->async);
	while (!atomic_load(&ts->done) && mono_now() < end)
		usleep(5000);
	if (!atomic_load(&ts->done))
		return 0;
	uv_thread_join(&ts->thread);
	uv_loop_close(&ts->loop);
	free(ts);
	return 1;
}

/* ---- a blocking client ---- */

struct client {
	int fd;
	char *buf;
	size_t len, cap;
};

struct resp {
	int status;
	char head[16384];
	char *body;
	size_t body_len;
};

static struct client *cl_open(int port)
{
	struct client *cl = xcalloc(1, sizeof(*cl));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cl->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(cl->fd);
		free(cl);
		return NULL;
	}
	return cl;
}

static void cl_close(struct client *cl)
{
	if (!cl)
		return;
	close(cl->fd);
	free(cl->buf);
	free(cl);
}

static int cl_send(struct client *cl, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = send(cl->fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cl_puts(struct client *cl, const char *s)
{
	return cl_send(cl, s, strlen(s));
}

/* Reads more bytes; 0 at end of file, -1 on error or timeout. */
static ssize_t cl_fill(struct client *cl)
{
	ssize_t n;

	if (cl->cap - cl->len < 65536) {
		cl->cap = cl->cap * 2 + 65536;
		cl->buf = xrealloc(cl->buf, cl->cap);
	}
	n = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len - 1, 0);
	if (n > 0) {
		cl->len += (size_t)n;
		cl->buf[cl->len] = '\0';
	}
	return n;
}

static const char *head_get(const struct resp *r, const char *name, char *out, size_t n)
{
	char key[128];
	const char *p;
	size_t len;

	snprintf(key, sizeof(key), "\r\n%s:", name);
	p = strcasestr(r->head, key);
	if (!p)
		return NULL;
	p += strlen(key);
	p += strspn(p, " ");
	len = strcspn(p, "\r");
	snprintf(out, n, "%.*s", (int)len, p);
	return out;
}

/* Reads one response: the head, then Content-Length bytes, or (no length)
 * everything up to end of file. no_body is for HEAD. Returns 0 or -1. */
static int cl_response(struct client *cl, struct resp *r, int no_body)
{
	char *end, v[64];
	size_t hlen, blen;

	memset(r, 0, sizeof(*r));
	while (!(end = cl->buf ? strstr(cl->buf, "\r\n\r\n") : NULL))
		if (cl_fill(cl) <= 0)
			return -1;
	hlen = (size_t)(end - cl->buf) + 4;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, cl->buf);
	r->status = atoi(r->head + 9);
	if (no_body || r->status == 100 || r->status == 204)
		blen = 0;
	else if (head_get(r, "content-length", v, sizeof(v)))
		blen = (size_t)atol(v);
	else
		blen = (size_t)-1;
	while (blen == (size_t)-1 ? 1 : cl->len - hlen < blen) {
		ssize_t n = cl_fill(cl);
		if (n == 0 && blen == (size_t)-1)
			break;
		if (n <= 0)
			return -1;
	}
	if (blen == (size_t)-1)
		blen = cl->len - hlen;
	r->body = xmalloc(blen + 1);
	memcpy(r->body, cl->buf + hlen, blen);
	r->body[blen] = '\0';
	r->body_len = blen;
	memmove(cl->buf, cl->buf + hlen + blen, cl->len - hlen - blen + 1);
	cl->len -= hlen + blen;
	return 0;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* True when the server closed the connection (and sent nothing more). */
static int cl_eof(struct client *cl)
{
	return cl->len == 0 && cl_fill(cl) == 0;
}

static int head_has(const struct resp *r, const char *name, const char *value)
{
	char v[256];

	return head_get(r, name, v, sizeof(v)) && !strcasecmp(v, value);
}

/* One request on a fresh connection; returns the status (or -1). */
static int one_shot(int port, const char *request, struct resp *r)
{
	struct client *cl = cl_open(port);
	int status = -1;

	memset(r, 0, sizeof(*r));
	if (cl && !cl_puts(cl, request) && !cl_response(cl, r, 0))
		status = r->status;
	cl_close(cl);
	return status;
}

/* ---- the tests ---- */

static void test_simple(int port)
{
	struct resp r;
	char v[64];

	ok(one_shot(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200, "GET answers 200");
	ok(!strcmp(r.body, "hello world"), "GET body");
	ok(head_has(&r, "content-length", "11") && head_has(&r, "content-type", "text/plain"),
	   "Content-Length and Content-Type");
	ok(head_has(&r, "connection", "keep-alive"), "HTTP/1.1 is keep-alive by default");
	ok(head_get(&r, "date", v, sizeof(v)) != NULL, "Date header");
	resp_free(&r);
}

static void test_keepalive(int port)
{
	struct client *cl = cl_open(port);
	struct resp r1, r2;

	cl_puts(cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ok(!cl_response(cl, &r1, 0) && r1.status == 200, "keep-alive: first answer");
	cl_puts(cl, "GET /path/second HTTP/1.1\r\nHost: x\r\n\r\n");
	ok(!cl_response(cl, &r2, 0) && !strcmp(r2.body, "/path/second|(null)"),
	   "keep-alive: second answer on the same connection");
	resp_free(&r1);
	resp_free(&r2);
	cl_close(cl);

	cl = cl_open(port);
	cl_puts(cl, "GET /hello HTTP/1.0\r\n\r\n");
	ok(!cl_response(cl, &r1, 0) && head_has(&r1, "connection", "close") && cl_eof(cl),
	   "HTTP/1.0 without keep-alive is closed after the answer");
	resp_free(&r1);
	cl_close(cl);

	cl = cl_open(port);
	cl_puts(cl, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	ok(!cl_response(cl, &r1, 0) && head_has(&r1, "connection", "keep-alive"),
	   "HTTP/1.0 with Connection: keep-alive stays open");
	cl_puts(cl, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
	ok(!cl_response(cl, &r2, 0) && head_has(&r2, "connection", "close") && cl_eof(cl),
	   "Connection: close is honoured");
	resp_free(&r1);
	resp_free(&r2);
	cl_close(cl);
}

static void test_pipelined(int port)
{
	struct client *cl = cl_open(port);
	struct resp r[3];
	int good = 1, i;

	/* The slow one first: answers must keep request order, not finish order. */
	cl_puts(cl, "GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
		    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
		    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde");
	for (i = 0; i < 3; i++)
		good &= !cl_response(cl, &r[i], 0);
	ok(good, "pipelined: three answers");
	ok(good && !strcmp(r[0].body, "slow done") && !strcmp(r[1].body, "hello world") &&
	       !strcmp(r[2].body, "abcde"),
	   "pipelined: answers in request order");
	for (i = 0; i < 3; i++)
		resp_free(&r[i]);
	cl_close(cl);
}

static void test_async(int port)
{
	struct resp r;
	int64_t t0 = mono_now();

	ok(one_shot(port, "GET /slow?ms=150 HTTP/1.1\r\n\r\n", &r) == 200 &&
	       !strcmp(r.body, "slow done"),
	   "asynchronous answer from a timer");
	ok(mono_now() - t0 >= 140, "asynchronous answer came after the timer");
	resp_free(&r);
}

static void test_bodies(int port)
{
	struct client *cl = cl_open(port);
	size_t n = 200000, i;
	char *body = xmalloc(n), head[128];
	struct resp r;

	for (i = 0; i < n; i++)
		body[i] = (char)(i * 7 + i / 251);
	snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
	cl_puts(cl, head);
	cl_send(cl, body, n);
	ok(!cl_response(cl, &r, 0) && r.body_len == n && !memcmp(r.body, body, n),
	   "POST body of %zu bytes received intact (binary, with NULs)", n);
	resp_free(&r);
	cl_puts(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n");
	ok(!cl_response(cl, &r, 0) && !strcmp(r.body, "hello, world"), "chunked body reassembled");
	resp_free(&r);
	cl_puts(cl, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
	ok(!cl_response(cl, &r, 0) && r.status == 100, "Expect: 100-continue gets 100 first");
	resp_free(&r);
	cl_puts(cl, "ping");
	ok(!cl_response(cl, &r, 0) && r.status == 200 && !strcmp(r.body, "ping"),
	   "then the body and the answer");
	resp_free(&r);
	free(body);
	cl_close(cl);
}

static void test_limits(int port)
{
	struct client *cl;
	struct resp r;
	char *big = xmalloc(80000);
	int i;

	cl = cl_open(port);
	cl_puts(cl, "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n");
	ok(!cl_response(cl, &r, 0) && r.status == 413, "413 for Content-Length over the limit");
	ok(head_has(&r, "connection", "close") && cl_eof(cl),
	   "413 closes without reading the body");
	ok(strstr(r.body, "\"code\":\"payload_too_large\"") != NULL, "413 has a JSON error body");
	resp_free(&r);
	cl_close(cl);

	cl = cl_open(port);
	cl_puts(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	memset(big, 'z', 65536);
	for (i = 0; i < 20; i++) {
		char sz[32];
		snprintf(sz, sizeof(sz), "10000\r\n");
		if (cl_puts(cl, sz) || cl_send(cl, big, 65536) || cl_puts(cl, "\r\n"))
			break;
	}
	ok(!cl_response(cl, &r, 0) && r.status == 413, "413 for a chunked body over the limit");
	resp_free(&r);
	cl_close(cl);

	ok(one_shot(port, "POST /small HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678", &r) == 200,
	   "per-route body limit: at the limit");
	resp_free(&r);
	ok(one_shot(port, "POST /small HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", &r) == 413,
	   "per-route body limit: over it, 413");
	resp_free(&r);
	memset(big, 'a', 20000);
	memcpy(big, "GET /hello HTTP/1.1\r\nX-Big: ", 28);
	strcpy(big + 20000, "\r\n\r\n");
	ok(one_shot(port, big, &r) == 431, "431 for one huge header");
	resp_free(&r);
	strcpy(big, "GET /hello HTTP/1.1\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS + 5; i++)
		sprintf(big + strlen(big), "X-H%d: v\r\n", i);
	strcat(big, "\r\n");
	ok(one_shot(port, big, &r) == 431, "431 for too many headers");
	resp_free(&r);
	strcpy(big, "GET /");
	memset(big + 5, 'u', HTTP_MAX_URL_LEN + 10);
	strcpy(big + 5 + HTTP_MAX_URL_LEN + 10, " HTTP/1.1\r\n\r\n");
	ok(one_shot(port, big, &r) == 414, "414 for a URL over the limit");
	resp_free(&r);
	free(big);
}

static void test_bad_requests(int port)
{
	struct resp r;
	struct client *cl;

	cl = cl_open(port);
	cl_puts(cl, "GARBAGE\r\n\r\n");
	ok(!cl_response(cl, &r, 0) && r.status == 400 && cl_eof(cl), "400 for garbage, then close");
	resp_free(&r);
	cl_close(cl);
	ok(one_shot(port, "GET /path%00x HTTP/1.1\r\n\r\n", &r) == 400, "400 for %%00 in the path");
	resp_free(&r);
	ok(one_shot(port, "GET /path%zz HTTP/1.1\r\n\r\n", &r) == 400, "400 for a bad escape");
	resp_free(&r);
	ok(one_shot(port, "GET /path%4 HTTP/1.1\r\n\r\n", &r) == 400, "400 for a cut escape");
	resp_free(&r);
	ok(one_shot(port, "GET /a/%2e%2e/etc HTTP/1.1\r\n\r\n", &r) == 400,
	   "400 for an encoded .. segment");
	resp_free(&r);
	ok(one_shot(port, "GET http://x/hello HTTP/1.1\r\n\r\n", &r) == 400,
	   "400 for a target that is not a path");
	resp_free(&r);
	ok(one_shot(port,
		    "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		    &r) == 501,
	   "501 for an unsupported Transfer-Encoding");
	resp_free(&r);
	ok(one_shot(port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &r) >= 400,
	   "a Transfer-Encoding not ending in chunked is refused");
	resp_free(&r);
}

static void test_paths_and_helpers(int port)
{
	struct client *cl;
	struct resp r;

	ok(one_shot(port, "GET /path/a%20b%2Fc?tok=s%20ecret&x=1 HTTP/1.1\r\n\r\n", &r) == 200 &&
	       !strcmp(r.body, "/path/a b/c|tok=s%20ecret&x=1"),
	   "path percent-decoded, query kept raw");
	resp_free(&r);
	ok(one_shot(port, "GET /cookie HTTP/1.1\r\nCookie: a=1; sid=\"abc\"\r\nx-test: T\r\n\r\n",
		    &r) == 200 &&
	       !strcmp(r.body, "abc|T"),
	   "cookie and case-insensitive header from a live request");
	resp_free(&r);
	ok(one_shot(port, "GET /cookie HTTP/1.1\r\nX-Test:\r\nCookie: sid=1\r\n\r\n", &r) == 200 &&
	       !strcmp(r.body, "1|"),
	   "a header with an empty value is kept");
	resp_free(&r);
	ok(one_shot(port, "GET /json HTTP/1.1\r\n\r\n", &r) == 201 &&
	       !strcmp(r.body, "{\"n\":7}\n") && head_has(&r, "x-extra", "yes") &&
	       head_has(&r, "content-type", "application/json"),
	   "http_respond_json: compact JSON, newline, extra headers");
	resp_free(&r);
	ok(one_shot(port, "GET /error HTTP/1.1\r\n\r\n", &r) == 404 &&
	       !strcmp(r.body,
		       "{\"error\":{\"code\":\"not_found\",\"message\":\"no such thing\"}}\n"),
	   "http_respond_error body");
	resp_free(&r);
	ok(one_shot(port, "GET /err HTTP/1.1\r\n\r\n", &r) == 500 &&
	       strstr(r.body, "\"code\":\"internal\"") && strstr(r.body, "boom"),
	   "http_respond_err defaults to 500 internal");
	resp_free(&r);
	cl = cl_open(port);
	cl_puts(cl, "HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
	ok(!cl_response(cl, &r, 1) && r.status == 200 && head_has(&r, "content-length", "11"),
	   "HEAD: the length of the body");
	resp_free(&r);
	ok(!cl_response(cl, &r, 0) && !strcmp(r.body, "hello world"),
	   "HEAD: no body (the next answer follows right after the head)");
	resp_free(&r);
	cl_close(cl);
}

static void test_helpers(void)
{
	struct http_header h[] = {{"content-type", "text/plain"}, {"cookie", "a=1;b=two; c=x y"}};
	struct http_req req = {.headers = h, .nheaders = 2};
	char out[16];

	ok(http_req_header(&req, "Content-Type") &&
	       !strcmp(http_req_header(&req, "CONTENT-TYPE"), "text/plain"),
	   "header lookup ignores case");
	ok(http_req_header(&req, "x-none") == NULL, "absent header is NULL");
	req.query = "q=a+b%21&empty=&flag&k%20e=y&long=0123456789abcdefghij&nul=%00";
	ok(http_req_query(&req, "q", out, sizeof(out)) == 4 && !strcmp(out, "a b!"),
	   "query: decoded, '+' is a space");
	ok(http_req_query(&req, "empty", out, sizeof(out)) == 0, "query: empty value");
	ok(http_req_query(&req, "flag", out, sizeof(out)) == 0, "query: key without '='");
	ok(http_req_query(&req, "k e", out, sizeof(out)) == 1 && !strcmp(out, "y"),
	   "query: encoded key");
	ok(http_req_query(&req, "long", out, sizeof(out)) == -1, "query: too long for out");
	ok(http_req_query(&req, "nul", out, sizeof(out)) == -1, "query: encoded NUL refused");
	ok(http_req_query(&req, "missing", out, sizeof(out)) == -1, "query: absent");
	ok(http_req_cookie(&req, "b", out, sizeof(out)) == 3 && !strcmp(out, "two"),
	   "cookie: found without space");
	ok(http_req_cookie(&req, "c", out, sizeof(out)) == 3 && !strcmp(out, "x y"),
	   "cookie: value with a space");
	ok(http_req_cookie(&req, "z", out, sizeof(out)) == -1, "cookie: absent");
	ok(!strcmp(http_status_text(404), "Not Found") &&
	       !strcmp(http_status_text(431), "Request Header Fields Too Large"),
	   "status texts");
}

static void test_disconnect_pending(int port)
{
	struct client *cl = cl_open(port);
	int before = atomic_load(&slow_answers);
	struct resp r;

	cl_puts(cl, "GET /slow?ms=150 HTTP/1.1\r\n\r\n");
	usleep(30000);
	cl_close(cl);
	usleep(300000);
	ok(atomic_load(&slow_answers) == before + 1, "handler answered after the client left");
	ok(one_shot(port, "GET /hello HTTP/1.1\r\n\r\n", &r) == 200, "server still serves");
	resp_free(&r);
}

static void test_stream(int port)
{
	struct client *cl = cl_open(port);
	struct resp r;
	char v[64];

	cl_puts(cl, "GET /stream HTTP/1.1\r\n\r\n");
	ok(!cl_response(cl, &r, 0) && r.status == 200, "stream: 200");
	ok(!head_get(&r, "content-length", v, sizeof(v)) && head_has(&r, "connection", "close") &&
	       head_has(&r, "cache-control", "no-store") &&
	       head_has(&r, "content-type", "text/event-stream"),
	   "stream head: no length, close, caller's headers");
	ok(!strcmp(r.body, "data: event 1\n\ndata: event 2\n\ndata: event 3\n\n"),
	   "stream: three events then end of file");
	resp_free(&r);
	cl_close(cl);
}

static void test_stream_client_gone(int port)
{
	struct client *cl = cl_open(port);
	int before = atomic_load(&stream_closes), i;

	cl_puts(cl, "GET /stream-hold HTTP/1.1\r\n\r\n");
	while (!strstr(cl->buf ? cl->buf : "", "event 2") && cl_fill(cl) > 0)
		;
	ok(strstr(cl->buf ? cl->buf : "", "event 2") != NULL, "held stream: events arrive");
	cl_close(cl);
	for (i = 0; i < 200 && atomic_load(&stream_closes) == before; i++)
		usleep(10000);
	ok(atomic_load(&stream_closes) == before + 1,
	   "stream on_close runs when the client leaves");
}

static void test_idle_timeout(void)
{
	struct tserver *ts = ts_start(200, 2);
	struct client *a = cl_open(ts->port), *b, *c;
	struct resp r;
	int64_t t0 = mono_now();

	ok(cl_eof(a) && mono_now() - t0 >= 150 && mono_now() - t0 < 3000,
	   "idle connection closed after the idle timeout");
	cl_close(a);
	a = cl_open(ts->port);
	cl_puts(a, "GET /hello HTTP/1.1\r\nX-Slow: ");
	ok(!cl_response(a, &r, 0) && r.status == 408 && cl_eof(a),
	   "half-sent headers (slowloris): 408 and closed");
	resp_free(&r);
	cl_close(a);
	a = cl_open(ts->port);
	b = cl_open(ts->port);
	c = cl_open(ts->port);
	cl_puts(c, "GET /hello HTTP/1.1\r\n\r\n");
	ok(!cl_response(c, &r, 0) && r.status == 503, "503 over the connection limit");
	resp_free(&r);
	cl_close(a);
	cl_close(b);
	cl_close(c);
	ok(ts_stop(ts, 5000), "shutdown of the idle-timeout server");
}

/* Shutdown with an idle keep-alive connection, an open stream, and a
 * request still with its handler. */
static void test_shutdown(struct tserver *ts)
{
	struct client *idle = cl_open(ts->port), *stream = cl_open(ts->port);
	struct client *busy = cl_open(ts->port), *late;
	int closes = atomic_load(&stream_closes);
	struct resp r;

	cl_puts(idle, "GET /hello HTTP/1.1\r\n\r\n");
	ok(!cl_response(idle, &r, 0) && r.status == 200, "shutdown: idle connection served");
	resp_free(&r);
	cl_puts(stream, "GET /stream-hold HTTP/1.1\r\n\r\n");
	ok(!cl_response(stream, &r, 1) && r.status == 200, "shutdown: stream open");
	resp_free(&r);
	cl_puts(busy, "GET /slow?ms=300 HTTP/1.1\r\n\r\n");
	usleep(50000);
	atomic_store(&ts->want_shutdown, 1);
	uv_async_send(&ts->async);
	ok(cl_eof(idle), "shutdown: idle keep-alive connection closed");
	while (cl_fill(stream) > 0)
		;
	ok(atomic_load(&stream_closes) == closes + 1, "shutdown: stream on_close ran");
	ok(!cl_response(busy, &r, 0) && r.status == 200 && head_has(&r, "connection", "close"),
	   "shutdown: request in flight answered, with Connection: close");
	resp_free(&r);
	ok(cl_eof(busy), "shutdown: then closed");
	cl_close(idle);
	cl_close(stream);
	cl_close(busy);
	late = cl_open(ts->port);
	ok(late == NULL, "shutdown: no longer accepting");
	cl_close(late);
	ok(ts_stop(ts, 5000), "shutdown: completion callback ran");
}

static void on_listen_test_done(void *arg)
{
	*(int *)arg = 1;
}

/* Listen addresses: bad ones are refused with a message; IPv6 works where
 * the host has it. */
static void test_listen_addresses(void)
{
	uv_loop_t loop;
	struct http_server *srv;
	struct err err = ERR_INIT;
	int done = 0, r;

	uv_loop_init(&loop);
	srv = http_server_new(&loop, handler, NULL);
	ok(http_server_listen(srv, "127.0.0.1", &err) == -1 && strstr(err.msg, "no port"),
	   "listen: address without a port refused");
	ok(http_server_listen(srv, "127.0.0.1:99999", &err) == -1, "listen: port out of range");
	ok(http_server_listen(srv, "nohost:80", &err) == -1 && strstr(err.msg, "bad host"),
	   "listen: host that is not an address refused");
	r = http_server_listen(srv, "[::1]:0", &err);
	ok(r == 0 ? http_server_port(srv) > 0 : strstr(err.msg, "listen on") != NULL,
	   "listen: [::1]:0 binds, or fails with a message (%s)", r ? err.msg : "bound");
	http_server_shutdown(srv, on_listen_test_done, &done);
	uv_run(&loop, UV_RUN_DEFAULT);
	ok(done, "shutdown of a server without connections completes");
	uv_loop_close(&loop);
}

int main(void)
{
	struct tserver *ts;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_WARN);
	if (getenv("HTTP_TEST_VERBOSE"))
		log_set_level(LOG_LEVEL_DEBUG);
	test_helpers();
	test_listen_addresses();
	ts = ts_start(5000, HTTP_MAX_CONNECTIONS);
	test_simple(ts->port);
	test_keepalive(ts->port);
	test_pipelined(ts->port);
	test_async(ts->port);
	test_bodies(ts->port);
	test_limits(ts->port);
	test_bad_requests(ts->port);
	test_paths_and_helpers(ts->port);
	test_disconnect_pending(ts->port);
	test_stream(ts->port);
	test_stream_client_gone(ts->port);
	test_shutdown(ts);
	test_idle_timeout();
	return tap_done();
}
