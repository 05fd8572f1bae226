#include "core/egress.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum phase { PH_HEAD, PH_RESOLVE, PH_CONNECT, PH_OPEN, PH_CLOSING };

struct tunnel {
	struct egress *e;
	uv_pipe_t guest;
	uv_tcp_t out;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	uv_connect_t conn;
	uv_shutdown_t shut_guest, shut_out;
	int out_init;
	int handles;
	enum phase phase;
	char head[EGRESS_MAX_HEAD + 1];
	size_t head_len;
	char host[256];
	int port;
	int host_is_ip;
	char why[400];
	int allowed;
	size_t pending_guest, pending_out; /* bytes queued towards each side */
	int guest_paused, out_paused;
	int guest_eof, out_eof;
	uint64_t up, down;
	struct tunnel *next;
};

struct egress {
	uv_loop_t *loop;
	uv_pipe_t server;
	egress_allow_fn allow;
	egress_log_fn log;
	void *arg;
	struct tunnel *tunnels;
	int ntunnels;
	int live; /* the listener and every tunnel not yet freed */
	int closing;
};

static void egress_unref(struct egress *e)
{
	if (--e->live == 0 && e->closing)
		free(e);
}

struct wreq {
	uv_write_t req;
	struct tunnel *t;
	int to_guest;
	size_t len;
	char data[];
};

static void tunnel_close(struct tunnel *t);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_guest_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* Parsing and matching */

int egress_parse_connect(const char *head, char *host, size_t n, int *port, struct err *err)
{
	const char *p = head, *sp, *colon, *end;
	size_t hl;
	long v;
	char *e;

	if (strncmp(p, "CONNECT ", 8))
		return err_set(err, 405, "method", "only CONNECT is supported");
	p += 8;
	sp = strchr(p, ' ');
	end = strstr(p, "\r\n");
	if (!sp || !end || sp > end || strncmp(sp, " HTTP/1.", 8))
		return err_set(err, 400, "bad_request", "malformed CONNECT line");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(sp - p));
		if (!rb || rb[1] != ':')
			return err_set(err, 400, "bad_request", "malformed [IPv6]:port");
		hl = (size_t)(rb - p - 1);
		colon = rb + 1;
		p++;
	} else {
		colon = NULL;
		for (const char *q = p; q < sp; q++)
			if (*q == ':')
				colon = q;
		if (!colon)
			return err_set(err, 400, "bad_request", "CONNECT needs host:port");
		hl = (size_t)(colon - p);
	}
	if (hl == 0 || hl >= n)
		return err_set(err, 400, "bad_request", "bad host");
	for (size_t i = 0; i < hl; i++)
		if (!(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '-' || p[i] == ':'))
			return err_set(err, 400, "bad_request", "bad character in host");
	v = strtol(colon + 1, &e, 10);
	if (e != sp || v < 1 || v > 65535)
		return err_set(err, 400, "bad_request", "bad port");
	memcpy(host, p, hl);
	host[hl] = '\0';
	for (char *c = host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	*port = (int)v;
	return 0;
}

int egress_match(const char *pattern, const char *host, int port)
{
	char pat[300];
	const char *colon;
	int want_port = 443;
	size_t pl, hl = strlen(host);

	snprintf(pat, sizeof(pat), "%s", pattern);
	colon = strrchr(pat, ':');
	if (colon && !strchr(pat, ']') && strchr(pat, ':') == colon) {
		want_port = atoi(colon + 1);
		pat[colon - pat] = '\0';
	}
	if (port != want_port || !*pat || !strcmp(pat, "*"))
		return 0;
	if (!strncmp(pat, "*.", 2)) {
		pl = strlen(pat + 1); /* ".example.com" */
		return hl > pl && !strcasecmp(host + hl - pl, pat + 1);
	}
	return !strcasecmp(pat, host);
}

/* Writing */

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct tunnel *t = w->t;

	if (w->to_guest) {
		t->pending_guest -= w->len;
		if (t->out_paused && t->pending_guest < EGRESS_LOW_WATER && t->phase == PH_OPEN) {
			t->out_paused = 0;
			uv_read_start((uv_stream_t *)&t->out, on_alloc, on_out_read);
		}
	} else {
		t->pending_out -= w->len;
		if (t->guest_paused && t->pending_out < EGRESS_LOW_WATER && t->phase == PH_OPEN) {
			t->guest_paused = 0;
			uv_read_start((uv_stream_t *)&t->guest, on_alloc, on_guest_read);
		}
	}
	free(w);
	if (status < 0 || (t->phase == PH_CLOSING && !t->pending_guest && !t->pending_out))
		tunnel_close(t);
}

static void tunnel_send(struct tunnel *t, int to_guest, const char *data, size_t len)
{
	struct wreq *w = xmalloc(sizeof(*w) + len);
	uv_buf_t b;

	w->t = t;
	w->to_guest = to_guest;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (to_guest)
		t->pending_guest += len;
	else
		t->pending_out += len;
	if (uv_write(&w->req, to_guest ? (uv_stream_t *)&t->guest : (uv_stream_t *)&t->out, &b, 1,
		     on_written)) {
		if (to_guest)
			t->pending_guest -= len;
		else
			t->pending_out -= len;
		free(w);
		tunnel_close(t);
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 502:
		return "Bad Gateway";
	default:
		return "Bad Request";
	}
}

/* Answers the guest with an HTTP status and t->why, then ends the tunnel
 * once the answer is written. */
static void tunnel_refuse(struct tunnel *t, int status)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
			 "Content-Length: %zu\r\n\r\n%s\n",
			 status, status_text(status), strlen(t->why) + 1, t->why);

	uv_read_stop((uv_stream_t *)&t->guest);
	t->phase = PH_CLOSING;
	tunnel_send(t, 1, buf, (size_t)n);
}

/* Closing */

static void tunnel_freed(uv_handle_t *h)
{
	struct tunnel *t = h->data;
	struct egress *e = t->e;

	if (--t->handles > 0)
		return;
	if (t->allowed && e->log)
		e->log(t->host, t->port, 1, t->why, t->up, t->down, e->arg);
	free(t);
	egress_unref(e);
}

static void tunnel_unlink(struct tunnel *t)
{
	struct tunnel **pp = &t->e->tunnels;

	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = t->next;
		t->e->ntunnels--;
	}
}

static void tunnel_close(struct tunnel *t)
{
	if (uv_is_closing((uv_handle_t *)&t->guest))
		return;
	t->phase = PH_CLOSING;
	tunnel_unlink(t);
	t->handles = 2 + t->out_init;
	uv_close((uv_handle_t *)&t->guest, tunnel_freed);
	uv_close((uv_handle_t *)&t->timer, tunnel_freed);
	if (t->out_init)
		uv_close((uv_handle_t *)&t->out, tunnel_freed);
}

/* Relaying */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = xmalloc(64 * 1024);
	b->len = 64 * 1024;
}

/* One side ended: pass the end on; close when both have. */
static void tunnel_eof(struct tunnel *t, int from_guest)
{
	if (from_guest) {
		t->guest_eof = 1;
		if (t->out_init)
			uv_shutdown(&t->shut_out, (uv_stream_t *)&t->out, NULL);
	} else {
		t->out_eof = 1;
		uv_shutdown(&t->shut_guest, (uv_stream_t *)&t->guest, NULL);
	}
	if (t->guest_eof && t->out_eof)
		tunnel_close(t);
}

static void relay(struct tunnel *t, int from_guest, const char *data, size_t len)
{
	size_t pending;

	if (from_guest)
		t->up += len;
	else
		t->down += len;
	tunnel_send(t, !from_guest, data, len);
	pending = from_guest ? t->pending_out : t->pending_guest;
	if (pending > EGRESS_HIGH_WATER && t->phase == PH_OPEN) {
		uv_read_stop(from_guest ? (uv_stream_t *)&t->guest : (uv_stream_t *)&t->out);
		if (from_guest)
			t->guest_paused = 1;
		else
			t->out_paused = 1;
	}
}

static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct tunnel *t = s->data;

	if (n > 0 && t->phase == PH_OPEN)
		relay(t, 0, b->base, (size_t)n);
	else if (n == UV_EOF)
		tunnel_eof(t, 0);
	else if (n < 0)
		tunnel_close(t);
	free(b->base);
}

static void on_connected(uv_connect_t *req, int status)
{
	struct tunnel *t = req->data;
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	size_t head_end;

	if (t->phase == PH_CLOSING)
		return;
	if (status < 0) {
		snprintf(t->why, sizeof(t->why), "connect to %s:%d failed: %s", t->host, t->port,
			 uv_strerror(status));
		tunnel_refuse(t, 502);
		return;
	}
	t->phase = PH_OPEN;
	tunnel_send(t, 1, ok, sizeof(ok) - 1);
	/* Bytes the guest sent right behind its request head go out first. */
	head_end = (size_t)(strstr(t->head, "\r\n\r\n") - t->head) + 4;
	if (t->head_len > head_end)
		relay(t, 1, t->head + head_end, t->head_len - head_end);
	uv_read_start((uv_stream_t *)&t->guest, on_alloc, on_guest_read);
	uv_read_start((uv_stream_t *)&t->out, on_alloc, on_out_read);
}

/* A name must not lead into the host's own networks: only an allowlist
 * entry written as an address may. */
static int addr_is_internal(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 24) == 0 ||
		       (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 16) == 0xa9fe;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
		       IN6_IS_ADDR_V4MAPPED(a) || (a->s6_addr[0] & 0xfe) == 0xfc;
	}
	return 1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	struct tunnel *t = req->data;

	if (t->phase == PH_CLOSING) {
		uv_freeaddrinfo(ai);
		return;
	}
	if (status < 0 || !ai) {
		snprintf(t->why, sizeof(t->why), "cannot resolve %s: %s", t->host,
			 uv_strerror(status));
		uv_freeaddrinfo(ai);
		tunnel_refuse(t, 502);
		return;
	}
	if (!t->host_is_ip && addr_is_internal(ai->ai_addr)) {
		snprintf(t->why, sizeof(t->why), "%s resolves to an internal address", t->host);
		t->allowed = 0;
		if (t->e->log)
			t->e->log(t->host, t->port, 0, t->why, 0, 0, t->e->arg);
		uv_freeaddrinfo(ai);
		tunnel_refuse(t, 403);
		return;
	}
	t->phase = PH_CONNECT;
	uv_tcp_init(t->e->loop, &t->out);
	t->out.data = t;
	t->out_init = 1;
	t->conn.data = t;
	if (uv_tcp_connect(&t->conn, &t->out, ai->ai_addr, on_connected)) {
		snprintf(t->why, sizeof(t->why), "cannot connect to %s", t->host);
		tunnel_refuse(t, 502);
	}
	uv_freeaddrinfo(ai);
}

/* The request head is complete: decide, then resolve. */
static void tunnel_decide(struct tunnel *t)
{
	struct err err = ERR_INIT;
	struct in6_addr a6;
	struct in_addr a4;
	char port[8];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};

	uv_timer_stop(&t->timer);
	uv_read_stop((uv_stream_t *)&t->guest);
	if (egress_parse_connect(t->head, t->host, sizeof(t->host), &t->port, &err)) {
		snprintf(t->why, sizeof(t->why), "%.300s", err.msg);
		tunnel_refuse(t, err.status);
		return;
	}
	t->allowed = t->e->allow(t->host, t->port, t->why, sizeof(t->why), t->e->arg);
	if (!t->allowed) {
		if (t->e->log)
			t->e->log(t->host, t->port, 0, t->why, 0, 0, t->e->arg);
		tunnel_refuse(t, 403);
		return;
	}
	t->host_is_ip = inet_pton(AF_INET, t->host, &a4) == 1 || inet_pton(AF_INET6, t->host, &a6) == 1;
	snprintf(port, sizeof(port), "%d", t->port);
	t->phase = PH_RESOLVE;
	t->gai.data = t;
	if (uv_getaddrinfo(t->e->loop, &t->gai, on_resolved, t->host, port, &hints)) {
		snprintf(t->why, sizeof(t->why), "cannot resolve %s", t->host);
		tunnel_refuse(t, 502);
	}
}

static void on_guest_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct tunnel *t = s->data;

	if (n > 0 && t->phase == PH_OPEN) {
		relay(t, 1, b->base, (size_t)n);
	} else if (n > 0 && t->phase == PH_HEAD) {
		if (t->head_len + (size_t)n > EGRESS_MAX_HEAD) {
			snprintf(t->why, sizeof(t->why), "request head over %d bytes",
				 EGRESS_MAX_HEAD);
			tunnel_refuse(t, 431);
		} else {
			memcpy(t->head + t->head_len, b->base, (size_t)n);
			t->head_len += (size_t)n;
			t->head[t->head_len] = '\0';
			if (memchr(t->head, '\0', t->head_len)) {
				snprintf(t->why, sizeof(t->why), "NUL byte in the request");
				tunnel_refuse(t, 400);
			} else if (strstr(t->head, "\r\n\r\n")) {
				tunnel_decide(t);
			}
		}
	} else if (n == UV_EOF && t->phase == PH_OPEN) {
		tunnel_eof(t, 1);
	} else if (n < 0) {
		tunnel_close(t);
	}
	free(b->base);
}

static void on_head_timeout(uv_timer_t *timer)
{
	struct tunnel *t = timer->data;

	snprintf(t->why, sizeof(t->why), "no complete request within %d ms",
		 EGRESS_HEAD_TIMEOUT_MS);
	tunnel_refuse(t, 400);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct egress *e = server->data;
	struct tunnel *t;

	if (status < 0 || e->closing)
		return;
	t = xcalloc(1, sizeof(*t));
	t->e = e;
	uv_pipe_init(e->loop, &t->guest, 0);
	t->guest.data = t;
	uv_timer_init(e->loop, &t->timer);
	t->timer.data = t;
	t->next = e->tunnels;
	e->tunnels = t;
	e->ntunnels++;
	e->live++;
	if (uv_accept(server, (uv_stream_t *)&t->guest)) {
		tunnel_close(t);
		return;
	}
	if (e->ntunnels > EGRESS_MAX_TUNNELS) {
		log_warnx("egress: more than %d tunnels, refusing one", EGRESS_MAX_TUNNELS);
		tunnel_close(t);
		return;
	}
	uv_timer_start(&t->timer, on_head_timeout, EGRESS_HEAD_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&t->guest, on_alloc, on_guest_read);
}

static void server_closed(uv_handle_t *h)
{
	egress_unref(h->data);
}

struct egress *egress_listen(uv_loop_t *loop, const char *path, egress_allow_fn allow,
			     egress_log_fn logfn, void *arg, struct err *err)
{
	struct egress *e = xcalloc(1, sizeof(*e));
	int r;

	e->loop = loop;
	e->allow = allow;
	e->log = logfn;
	e->arg = arg;
	e->live = 1;
	uv_pipe_init(loop, &e->server, 0);
	e->server.data = e;
	unlink(path);
	r = uv_pipe_bind(&e->server, path);
	if (!r)
		r = uv_listen((uv_stream_t *)&e->server, 64, on_connection);
	if (r) {
		err_set(err, 500, "internal", "egress proxy on %s: %s", path, uv_strerror(r));
		e->closing = 1;
		uv_close((uv_handle_t *)&e->server, server_closed);
		return NULL;
	}
	return e;
}

void egress_close(struct egress *e)
{
	e->closing = 1;
	while (e->tunnels)
		tunnel_close(e->tunnels);
	uv_close((uv_handle_t *)&e->server, server_closed);
}

int egress_tunnels(const struct egress *e)
{
	return e->ntunnels;
}
