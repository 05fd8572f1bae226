/* Request bodies streamed to the handler: uploads of any size go through
 * in pieces of at most one socket read, and the handler's pause stops
 * reading the socket, so memory stays bounded by the consumer's own
 * watermarks. The parser (parse.c) keeps filling the active request; this
 * file runs it over the input and hands the pieces on. */
#include "http/http_int.h"

#include <stdlib.h>

void http_server_set_body_stream(struct http_server *srv, http_body_stream_fn fn, void *arg)
{
	srv->body_stream = fn;
	srv->body_stream_arg = arg;
}

int http_req_body_streaming(const struct http_req *req)
{
	return ((const struct http__req *)req)->body_stream;
}

static void body_kick(uv_timer_t *t)
{
	struct http_conn *c = t->data;

	if (c->active && c->active->body_stream)
		http__body_input(c);
}

/* Runs the parser over what is buffered. Returns 0, or -1 with err. */
static int body_parse(struct http_conn *c, struct err *err)
{
	enum llhttp_errno e;

	if (!c->in.len)
		return 0;
	e = llhttp_execute(&c->parser, c->in.data, c->in.len);
	if (e == HPE_OK) {
		buf_reset(&c->in);
		return 0;
	}
	if (e == HPE_PAUSED) { /* the body's end: the rest is the next request */
		buf_consume(&c->in, (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data));
		llhttp_resume(&c->parser);
		return 0;
	}
	if (c->fail_status)
		return err_set(err, c->fail_status, c->fail_code, "%s", c->fail_msg);
	return err_set(err, 400, "bad_request", "malformed request body: %s", llhttp_errno_name(e));
}

void http__body_input(struct http_conn *c)
{
	struct http__req *r = c->active;
	struct err err = ERR_INIT;
	struct buf chunk;
	int failed;

	if (!r->body_started || r->body_paused || r->body_done || r->body_failed) {
		http__conn_reading(c, 0);
		return;
	}
	failed = body_parse(c, &err);
	if (r->body.len) {
		chunk = r->body;
		r->body = (struct buf)BUF_INIT;
		r->body_cbs->on_data(&r->pub, chunk.data, chunk.len, r->body_arg);
		buf_release(&chunk);
	}
	if (failed || r->body_done) {
		http__conn_reading(c, 0);
		if (!c->broken) {
			uv_timer_stop(&c->timer);
			c->idle_armed = 0;
		}
		r->body_failed = (unsigned)failed;
		/* The handler answers from here: r may be gone afterwards. */
		r->body_cbs->on_end(&r->pub, failed ? &err : NULL, r->body_arg);
		return;
	}
	if (!r->body_paused) {
		http__conn_reading(c, 1);
		http__conn_idle_rearm(c);
	}
}

void http__body_abort(struct http__req *r, const char *why)
{
	struct err err = ERR_INIT;

	if (r->body_failed || r->body_done)
		return;
	r->body_failed = 1;
	if (!r->body_cbs)
		return; /* http_req_body_read will say so */
	err_set(&err, 499, "client_gone", "%s", why);
	r->body_cbs->on_end(&r->pub, &err, r->body_arg);
}

void http_req_body_read(struct http_req *req, const struct http_body_callbacks *cbs, void *arg)
{
	struct http__req *r = (struct http__req *)req;
	struct err err = ERR_INIT;

	r->body_cbs = cbs;
	r->body_arg = arg;
	r->body_started = 1;
	if (!r->conn || r->body_failed) {
		/* The client left before the handler got here. */
		r->body_failed = 1;
		err_set(&err, 499, "client_gone", "the client went away during the upload");
		cbs->on_end(req, &err, arg);
		return;
	}
	if (!r->conn->broken) /* else its timer is closing it already */
		uv_timer_start(&r->conn->timer, body_kick, 0, 0);
}

void http_req_body_pause(struct http_req *req)
{
	struct http__req *r = (struct http__req *)req;

	r->body_paused = 1;
	if (!r->conn)
		return;
	http__conn_reading(r->conn, 0);
	if (r->conn->broken)
		return;
	/* Our own backpressure is not the client being slow. */
	uv_timer_stop(&r->conn->timer);
	r->conn->idle_armed = 0;
}

void http_req_body_resume(struct http_req *req)
{
	struct http__req *r = (struct http__req *)req;

	if (!r->body_paused)
		return;
	r->body_paused = 0;
	if (r->conn && !r->conn->broken && !r->body_done && !r->body_failed)
		uv_timer_start(&r->conn->timer, body_kick, 0, 0);
}

void http_stream_on_drain(struct http_req *req, void (*cb)(struct http_req *req, void *arg),
			  void *arg)
{
	struct http__req *r = (struct http__req *)req;

	r->on_drain = cb;
	r->drain_arg = arg;
}
