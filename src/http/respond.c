/* Answers: whole ones (http_respond*) and streams. Every answer ends with
 * one log line and frees the request, whether or not the client is still
 * there to read it. */
#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"

/* Never the query (it may carry tokens) nor header values. */
void http__req_log(struct http__req *r)
{
	double ms = (double)(uv_hrtime() - r->start_ns) / 1e6;

	log_info("http method=%s path=%s status=%d bytes=%zu ms=%.1f remote=%s%s%s",
		 r->pub.method[0] ? r->pub.method : "-", r->pub.path ? r->pub.path : "-", r->status,
		 r->bytes_out, ms, r->pub.remote, r->pub.log_extra[0] ? " " : "", r->pub.log_extra);
}

static void resp_head(struct buf *out, int status, const char *content_type, const size_t *len,
		      int keep_alive, const char *extra_headers)
{
	char date[64];
	struct tm tm;
	time_t t = time(NULL);

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	buf_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status), date);
	if (content_type)
		buf_printf(out, "Content-Type: %s\r\n", content_type);
	if (len)
		buf_printf(out, "Content-Length: %zu\r\n", *len);
	buf_printf(out, "Connection: %s\r\n", keep_alive ? "keep-alive" : "close");
	if (extra_headers)
		buf_puts(out, extra_headers);
	buf_puts(out, "\r\n");
}

/* Hands the bytes to the connection, if any is left, and takes them as
 * the answer's size for the log line. */
static void resp_send(struct http__req *r, struct buf *out)
{
	char *data;
	size_t len;

	r->bytes_out += out->len;
	data = buf_detach(out, &len);
	if (r->conn)
		http__conn_write(r->conn, data, len);
	else
		free(data);
}

void http_respond(struct http_req *req, int status, const char *content_type, const void *body,
		  size_t len, const char *extra_headers)
{
	struct http__req *r = (struct http__req *)req;
	struct http_conn *c = r->conn;
	/* 1xx, 204 and 304 have no body, and so no length either. */
	int bodiless = status < 200 || status == 204 || status == 304;
	struct buf out = BUF_INIT;

	if (c && c->srv->shutting_down)
		r->keep_alive = 0;
	/* A streamed body not read to its end: the rest cannot be skipped. */
	if (r->body_stream && !r->body_done)
		r->keep_alive = 0;
	r->status = status;
	resp_head(&out, status, content_type, bodiless ? NULL : &len, r->keep_alive, extra_headers);
	if (!bodiless && !r->head)
		buf_append(&out, body, len);
	resp_send(r, &out);
	http__req_log(r);
	if (c)
		http__conn_answered(c, r->keep_alive);
	http__req_free(r);
}

void http_respond_json(struct http_req *req, int status, json_t *body, const char *extra_headers)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	struct buf out = BUF_INIT;

	json_decref(body);
	if (!text) {
		http_respond_error(req, 500, "internal", "could not encode the answer");
		return;
	}
	buf_puts(&out, text);
	buf_puts(&out, "\n");
	free(text);
	http_respond(req, status, "application/json", out.data, out.len, extra_headers);
	buf_release(&out);
}

void http_respond_error(struct http_req *req, int status, const char *code, const char *message)
{
	static const char fallback[] =
	    "{\"error\":{\"code\":\"internal\",\"message\":\"invalid error text\"}}\n";
	json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code ? code : "internal",
				 "message", message ? message : "");

	/* Only text that is not UTF-8 gets here; never recurse on it. */
	if (!body) {
		http_respond(req, status, "application/json", fallback, sizeof(fallback) - 1, NULL);
		return;
	}
	http_respond_json(req, status, body, NULL);
}

void http_respond_err(struct http_req *req, const struct err *err)
{
	int status = err->status ? err->status : 500;

	if (status >= 500)
		log_warnx("http error path=%s status=%d code=%s: %s", req->path ? req->path : "-",
			  status, err->code[0] ? err->code : "internal", err->msg);
	http_respond_error(req, status, err->code[0] ? err->code : "internal", err->msg);
}

int http_stream_begin(struct http_req *req, int status, const char *content_type,
		      const char *extra_headers, void (*on_close)(struct http_req *req, void *arg),
		      void *arg)
{
	struct http__req *r = (struct http__req *)req;
	struct http_conn *c = r->conn;
	struct buf out = BUF_INIT;

	if (c && c->srv->shutting_down) {
		http_respond_error(req, 503, "unavailable", "server shutting down");
		return -1;
	}
	r->status = status;
	if (!c) {
		http__req_log(r);
		http__req_free(r);
		return -1;
	}
	r->streaming = 1;
	r->keep_alive = 0;
	r->on_close = on_close;
	r->close_arg = arg;
	resp_head(&out, status, content_type, NULL, 0, extra_headers);
	resp_send(r, &out);
	http__conn_stream_started(c);
	return 0;
}

int http_stream_write(struct http_req *req, const void *data, size_t len)
{
	struct http__req *r = (struct http__req *)req;
	struct http_conn *c = r->conn;

	if (!c || c->state != CONN_OPEN || c->broken || c->write_pending > HTTP_STREAM_HIGH_WATER)
		return -1;
	if (!len || r->head)
		return 0;
	r->bytes_out += len;
	http__conn_write(c, memcpy(xmalloc(len), data, len), len);
	return 0;
}

size_t http_stream_pending(const struct http_req *req)
{
	const struct http__req *r = (const struct http__req *)req;

	return r->conn ? r->conn->write_pending : 0;
}

void http_stream_end(struct http_req *req)
{
	struct http__req *r = (struct http__req *)req;

	http__req_log(r);
	if (r->conn)
		http__conn_answered(r->conn, 0);
	http__req_free(r);
}

void http__stream_closed(struct http__req *r)
{
	if (r->on_close)
		r->on_close(&r->pub, r->close_arg);
	http__req_log(r);
	http__req_free(r);
}
