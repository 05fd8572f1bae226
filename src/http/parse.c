/* The llhttp callbacks: collect one request (URL, headers, body) into a
 * struct http__req and enforce the limits in http.h as the bytes arrive, so
 * nothing over a limit is ever buffered. A crossed limit sets the answer
 * (fail_status) and stops the parser; server.c sends it and closes. */
#include "http/http_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "common/xalloc.h"

struct http__req *http__req_new(struct http_conn *c)
{
	struct http__req *r = xcalloc(1, sizeof(*r));

	r->conn = c;
	r->start_ns = uv_hrtime();
	r->pub.start_ms = now_ms();
	r->body_limit = HTTP_MAX_BODY_LEN;
	snprintf(r->pub.remote, sizeof(r->pub.remote), "%s", c->remote);
	return r;
}

void http__req_free(struct http__req *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->pub.nheaders; i++) {
		free(r->pub.headers[i].name);
		free(r->pub.headers[i].value);
	}
	free(r->pub.headers);
	free(r->pub.path);
	free(r->pub.query);
	buf_release(&r->url);
	buf_release(&r->body);
	buf_release(&r->field);
	buf_release(&r->value);
	free(r);
}

/* Records the answer for a crossed limit and stops the parser. */
static int parse_fail(struct http_conn *c, int status, const char *code, const char *msg)
{
	c->fail_status = status;
	c->fail_code = code;
	c->fail_msg = msg;
	return HPE_USER;
}

static struct http_conn *parse_conn(llhttp_t *p)
{
	return p->data;
}

/* The request the parser is filling: the one being received, or the
 * active one whose body streams to its handler (body.c). */
static struct http__req *parse_req(llhttp_t *p)
{
	struct http_conn *c = p->data;

	return c->parsing ? c->parsing : c->active;
}

static int on_message_begin(llhttp_t *p)
{
	struct http_conn *c = parse_conn(p);

	http__req_free(c->parsing);
	c->parsing = http__req_new(c);
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http__req *r = parse_conn(p)->parsing;

	if (!r->pub.method[0])
		snprintf(r->pub.method, sizeof(r->pub.method), "%s",
			 llhttp_method_name((llhttp_method_t)p->method));
	if (r->url.len + len > HTTP_MAX_URL_LEN)
		return parse_fail(r->conn, 414, "uri_too_long", "request URL too long");
	buf_append(&r->url, at, len);
	return 0;
}

/* Counts header bytes against HTTP_MAX_HEADER_LEN as they arrive. */
static int header_bytes_add(struct http__req *r, size_t len)
{
	r->header_bytes += len;
	if (r->header_bytes > HTTP_MAX_HEADER_LEN)
		return parse_fail(r->conn, 431, "headers_too_large", "request headers too large");
	return 0;
}

static char *header_value_trim(const struct buf *b)
{
	const char *s = b->data ? b->data : "";
	size_t len = b->len;

	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return xstrndup(s, len);
}

/* Moves the collected field and value into the header array. */
static int header_push(struct http__req *r)
{
	struct http_header *h;
	size_t i;

	r->in_header = 0;
	if (r->pub.nheaders >= HTTP_MAX_HEADERS)
		return parse_fail(r->conn, 431, "headers_too_large", "too many request headers");
	if (r->pub.nheaders == r->header_cap) {
		r->header_cap = r->header_cap ? r->header_cap * 2 : 16;
		r->pub.headers = xrealloc(r->pub.headers, r->header_cap * sizeof(*h));
	}
	h = &r->pub.headers[r->pub.nheaders++];
	h->name = xstrndup(r->field.data ? r->field.data : "", r->field.len);
	for (i = 0; h->name[i]; i++)
		h->name[i] = (char)tolower((unsigned char)h->name[i]);
	h->value = header_value_trim(&r->value);
	buf_reset(&r->field);
	buf_reset(&r->value);
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http__req *r = parse_req(p);

	/* Trailers after a chunked body are not headers the handler asked for. */
	if (r->headers_done)
		return 0;
	if (r->in_header && header_push(r))
		return HPE_USER;
	if (header_bytes_add(r, len))
		return HPE_USER;
	buf_append(&r->field, at, len);
	return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
	struct http__req *r = parse_req(p);

	if (!r->headers_done)
		r->in_header = 1;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http__req *r = parse_req(p);

	if (r->headers_done)
		return 0;
	if (header_bytes_add(r, len))
		return HPE_USER;
	buf_append(&r->value, at, len);
	return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct http__req *r = parse_req(p);

	if (r->headers_done || !r->in_header)
		return 0;
	return header_push(r) ? HPE_USER : 0;
}

/* A decoded path must not smuggle what the raw one would not show: control
 * characters (log lines, headers) or ".." segments (file lookups). */
static int path_is_safe(const char *path)
{
	const char *s;

	for (s = path; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	for (s = path; (s = strstr(s, "/..")); s += 3)
		if (s[3] == '/' || s[3] == '\0')
			return 0;
	return 1;
}

/* Splits the request target into the decoded path and the raw query. */
static int req_target_parse(struct http__req *r)
{
	const char *url = r->url.data ? r->url.data : "";
	size_t plen = strcspn(url, "?#");
	char *path;

	if (url[0] != '/')
		return -1;
	path = xmalloc(plen + 1);
	if (http__pct_decode(url, plen, path, plen + 1, 0) < 0 || !path_is_safe(path)) {
		free(path);
		return -1;
	}
	r->pub.path = path;
	if (url[plen] == '?')
		r->pub.query = xstrndup(url + plen + 1, strcspn(url + plen + 1, "#"));
	return 0;
}

/* Only plain "chunked" is understood; llhttp itself rejects a request whose
 * last coding is not chunked, and anything else (gzip, chunked) is 501. */
static int req_coding_ok(const struct http__req *r)
{
	const char *te = http_req_header(&r->pub, "transfer-encoding");

	return !te || !strcasecmp(te, "chunked");
}

/* "Expect: 100-continue" asks whether to send the body: say yes now that the
 * headers passed every check (curl waits a second otherwise). */
static int req_expect(struct http__req *r, llhttp_t *p)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	const char *expect = http_req_header(&r->pub, "expect");

	if (!expect)
		return 0;
	if (strcasecmp(expect, "100-continue"))
		return parse_fail(r->conn, 417, "expectation_failed", "unsupported Expect");
	if (p->http_minor >= 1 && (p->flags & (F_CHUNKED | F_CONTENT_LENGTH)))
		http__conn_write(r->conn, xstrdup(cont), sizeof(cont) - 1);
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_conn *c = parse_conn(p);
	struct http__req *r = c->parsing;

	if (r->in_header && header_push(r))
		return -1;
	r->headers_done = 1;
	snprintf(r->pub.method, sizeof(r->pub.method), "%s",
		 llhttp_method_name((llhttp_method_t)p->method));
	r->head = p->method == HTTP_HEAD;
	/* After an upgrade the bytes are another protocol: never parse on. */
	r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
	if (req_target_parse(r))
		return parse_fail(c, 400, "bad_request", "invalid request path");
	if (!req_coding_ok(r))
		return parse_fail(c, 501, "not_implemented", "unsupported Transfer-Encoding");
	if (c->srv->body_limit)
		r->body_limit = c->srv->body_limit(&r->pub, c->srv->body_limit_arg);
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->body_limit)
		return parse_fail(c, 413, "payload_too_large", "request body too large");
	if (req_expect(r, p))
		return -1;
	/* A streamed body: hand the request over now and pause; body.c
	 * parses the rest while the handler reads. */
	if (c->srv->body_stream && !p->upgrade &&
	    ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length)) &&
	    c->srv->body_stream(&r->pub, c->srv->body_stream_arg)) {
		r->body_stream = 1;
		c->ready = r;
		c->parsing = NULL;
		return HPE_PAUSED;
	}
	return 0;
}

/* Chunked bodies announce no length: count as they stream in. */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http__req *r = parse_req(p);

	if (r->body_stream) {
		r->body_total += len;
		if (r->body_total > r->body_limit)
			return parse_fail(r->conn, 413, "payload_too_large",
					  "request body too large");
		buf_append(&r->body, at, len);
		return 0;
	}
	if (r->body.len + len > r->body_limit)
		return parse_fail(r->conn, 413, "payload_too_large", "request body too large");
	buf_append(&r->body, at, len);
	return 0;
}

/* One whole request: hand it over and pause, so pipelined requests wait in
 * the connection's buffer until this one is answered. */
static int on_message_complete(llhttp_t *p)
{
	struct http_conn *c = parse_conn(p);
	struct http__req *r = parse_req(p);

	if (r->body_stream) {
		r->body_done = 1;
		return HPE_PAUSED;
	}
	buf_reserve(&r->body, 0);
	r->pub.body = r->body.data;
	r->pub.body_len = r->body.len;
	c->ready = r;
	c->parsing = NULL;
	return HPE_PAUSED;
}

const llhttp_settings_t http__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
