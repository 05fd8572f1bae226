/* bureaud's HTTP/1.1 server on libuv, parsing with llhttp.
 *
 * The server reads a whole request (headers and body, within the limits
 * below) and hands it to one handler. The handler answers later, from the
 * loop thread, exactly once: http_respond*() or a stream. The request stays
 * valid until then even if the client goes away (the answer is then
 * dropped), so handlers may do their work asynchronously. Keep-alive and
 * pipelined requests are answered in order. */
#ifndef BUREAU_HTTP_H
#define BUREAU_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

#define HTTP_MAX_HEADER_LEN (16 * 1024) /* all header bytes: 431 */
#define HTTP_MAX_HEADERS 64             /* 431 */
#define HTTP_MAX_URL_LEN 4096           /* 414 */
#define HTTP_MAX_BODY_LEN (1024 * 1024) /* 413, unless the handler's route allows more */
#define HTTP_IDLE_TIMEOUT_MS 60000      /* keep-alive and slow clients: closed */
#define HTTP_MAX_CONNECTIONS 1024       /* beyond: 503 and close */
#define HTTP_STREAM_HIGH_WATER (1024 * 1024) /* stream writes over this are refused */

struct http_server;
struct http_req;

struct http_header {
	char *name; /* lower-cased */
	char *value;
};

struct http_req {
	char method[16];
	char *path;  /* percent-decoded path, no query; never contains NUL */
	char *query; /* raw query string after '?', or NULL */
	struct http_header *headers;
	size_t nheaders;
	char *body; /* NUL-terminated for convenience; body_len excludes it */
	size_t body_len;
	char remote[64]; /* peer address as text */
	/* Wall clock (ms since the epoch) at the request's first byte. */
	int64_t start_ms;
	void *data; /* free for the handler */
	/* Filled by handlers for the request's log line, e.g. "user=usr_…". */
	char log_extra[128];
};

typedef void (*http_handler)(struct http_req *req, void *arg);

struct http_server *http_server_new(uv_loop_t *loop, http_handler handler, void *arg);
/* Listens on "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one. */
int http_server_listen(struct http_server *srv, const char *addr, struct err *err);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *srv);
/* Graceful shutdown: stop accepting, let requests in flight finish, close
 * idle connections and streams; cb runs when every connection is gone and
 * the server is freed. */
void http_server_shutdown(struct http_server *srv, void (*cb)(void *arg), void *arg);

/* Settings, before or after listening. The idle timeout bounds both a
 * keep-alive connection waiting for its next request and the time to
 * receive a whole request (a client that dribbles its headers is answered
 * 408 and closed). */
void http_server_set_idle_timeout(struct http_server *srv, uint64_t ms);
/* Connections beyond n are answered 503 and closed (HTTP_MAX_CONNECTIONS). */
void http_server_set_max_connections(struct http_server *srv, size_t n);
/* Decides a request's body limit once its headers are in (method, path,
 * query and headers are set; body is not): routes that take uploads may
 * allow more than HTTP_MAX_BODY_LEN. Returns the limit in bytes. */
typedef size_t (*http_body_limit_fn)(const struct http_req *req, void *arg);
void http_server_set_body_limit(struct http_server *srv, http_body_limit_fn fn, void *arg);

/* Case-insensitive header lookup; NULL when absent. */
const char *http_req_header(const struct http_req *req, const char *name);
/* A query parameter, percent-decoded into out. Returns its length, or -1
 * when absent or too long for out. */
int http_req_query(const struct http_req *req, const char *key, char *out, size_t n);
/* A cookie's value into out. Returns its length, or -1. */
int http_req_cookie(const struct http_req *req, const char *name, char *out, size_t n);

/* Answers the request. extra_headers are complete lines ("Set-Cookie:
 * …\r\n"), or NULL. The request is freed once the answer is queued. */
void http_respond(struct http_req *req, int status, const char *content_type, const void *body,
		  size_t len, const char *extra_headers);
/* Answers with a JSON body (takes the reference). */
void http_respond_json(struct http_req *req, int status, json_t *body, const char *extra_headers);
/* Answers {"error":{"code":…,"message":…}}. */
void http_respond_error(struct http_req *req, int status, const char *code, const char *message);
void http_respond_err(struct http_req *req, const struct err *err);

/* A long answer written piece by piece (server-sent events, large files):
 * the head goes out now without Content-Length and the connection closes
 * when the stream ends. on_close runs once if the client goes away first
 * (or the server shuts down); after it the request is freed and must not
 * be used. Returns 0, or -1 when the client is already gone or the server
 * is shutting down: the request is then answered (or dropped) and freed,
 * and on_close never runs. */
int http_stream_begin(struct http_req *req, int status, const char *content_type,
		      const char *extra_headers, void (*on_close)(struct http_req *req, void *arg),
		      void *arg);
/* Queues bytes; returns -1 when the client is gone or more than
 * HTTP_STREAM_HIGH_WATER bytes are already waiting. */
int http_stream_write(struct http_req *req, const void *data, size_t len);
size_t http_stream_pending(const struct http_req *req);
/* Ends the stream and frees the request; on_close does not run. */
void http_stream_end(struct http_req *req);

/* The reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

/* Route table. Patterns are literal segments and {name} placeholders that
 * match one non-empty segment: "/api/desktops/{id}/start". */
#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_MAX 128

struct route {
	const char *method;
	const char *pattern;
	void *handler; /* opaque to the router */
};

struct route_match {
	const struct route *route;
	int nparams;
	char names[ROUTE_MAX_PARAMS][32];
	char values[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
};

/* Returns 200 with m filled, 404 when no pattern matches the path, 405
 * when patterns match but not the method (then *allow lists the methods,
 * "GET, POST"). */
int route_find(const struct route *routes, size_t n, const char *method, const char *path,
	       struct route_match *m, char *allow, size_t allow_len);
/* A matched placeholder's value, or NULL. */
const char *route_param(const struct route_match *m, const char *name);

#endif
