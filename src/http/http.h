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

/* Streamed request bodies (uploads of any size). fn decides once the
 * headers are in (like the body limit): when it returns 1 and the request
 * has a body, the handler gets the request before its body (body NULL,
 * body_len 0) and reads it with http_req_body_read; the route's body
 * limit still applies (413). Other requests keep the whole-body mode. */
typedef int (*http_body_stream_fn)(const struct http_req *req, void *arg);
void http_server_set_body_stream(struct http_server *srv, http_body_stream_fn fn, void *arg);

struct http_body_callbacks {
	/* A piece of the body, borrowed. Must not answer the request. */
	void (*on_data)(struct http_req *req, const char *data, size_t len, void *arg);
	/* The body is complete (err NULL) or never will be (err: the client
	 * left, a malformed chunk, over the limit). Not called once the
	 * handler has answered. */
	void (*on_end)(struct http_req *req, const struct err *err, void *arg);
};

/* Whether req's body comes through http_req_body_read. */
int http_req_body_streaming(const struct http_req *req);
/* Starts delivering the body: callbacks come from the loop, first on the
 * next turn. The handler may answer at any time; answering before on_end
 * closes the connection after the answer. */
void http_req_body_read(struct http_req *req, const struct http_body_callbacks *cbs, void *arg);
/* Backpressure: stop reading the client (the consumer is over its high
 * watermark) and start again (below its low one). */
void http_req_body_pause(struct http_req *req);
void http_req_body_resume(struct http_req *req);

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
/* Calls cb after writes while no more than HTTP_STREAM_LOW_WATER bytes
 * wait: a producer paused at the high mark resumes from there. */
#define HTTP_STREAM_LOW_WATER (256 * 1024)
void http_stream_on_drain(struct http_req *req, void (*cb)(struct http_req *req, void *arg),
			  void *arg);
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

/* WebSockets (RFC 6455, framing by wslay). A handler checks the upgrade
 * request with http_ws_check(), authenticates, then calls
 * http_ws_accept(): from then on the connection belongs to the WebSocket
 * layer and the request is freed. Everything runs on the loop thread. */
#define HTTP_WS_MAX_MESSAGE (1024 * 1024) /* default; a larger message: close 1009 */
#define HTTP_WS_PING_MS 20000		  /* keep-alive ping period */
#define HTTP_WS_PONG_TIMEOUT_MS 60000	  /* nothing heard for this long: dropped */
#define HTTP_WS_CLOSE_TIMEOUT_MS 5000	  /* wait for the peer's close frame */
#define HTTP_WS_MAX_PROTOCOLS 8		  /* offered subprotocols looked at */

enum http_ws_close_code {
	HTTP_WS_NORMAL = 1000,
	HTTP_WS_GOING_AWAY = 1001,
	HTTP_WS_PROTOCOL_ERROR = 1002,
	HTTP_WS_UNSUPPORTED = 1003,
	HTTP_WS_ABNORMAL = 1006, /* never sent: the TCP connection just ended */
	HTTP_WS_INVALID_DATA = 1007,
	HTTP_WS_POLICY = 1008,
	HTTP_WS_TOO_BIG = 1009,
	HTTP_WS_INTERNAL = 1011,
};

struct http_ws;

struct http_ws_callbacks {
	/* One whole message (text is valid UTF-8); data is borrowed. */
	void (*on_message)(struct http_ws *ws, int text, const uint8_t *data, size_t len,
			   void *arg);
	/* After http_ws_send() reported the high watermark: the queue fell
	 * to the low one, the producer may resume. May be NULL. */
	void (*on_drain)(struct http_ws *ws, void *arg);
	/* Exactly once, from the loop (never inside an http_ws_* call), when
	 * the connection is gone for any reason: code is the close code the
	 * peer sent, or the one we sent, or 1006. ws is freed right after. */
	void (*on_close)(struct http_ws *ws, int code, void *arg);
};

/* Whether req is a well-formed WebSocket upgrade (GET, Upgrade: websocket,
 * Connection: upgrade, version 13, a 16-byte key). Returns 0, or -1 with
 * err: 400, or 426 for another version. */
int http_ws_check(const struct http_req *req, struct err *err);
/* Whether the request's Origin is absent or names this server (Host),
 * as a browser's same-origin connection does. Ambient credentials
 * (cookies) must only be honoured when it does (cross-site hijacking). */
int http_ws_origin_ok(const struct http_req *req);
/* Picks the first of the client's Sec-WebSocket-Protocol offers that is
 * in supported (NULL-terminated); NULL when none fits or none was offered. */
const char *http_ws_protocol_pick(const struct http_req *req, const char *const supported[]);
/* Answers 101 (with protocol, which may be NULL) and turns the connection
 * into a WebSocket. Returns the WebSocket, or NULL when the client is
 * gone or the connection cannot be handed over (then req is answered or
 * dropped, freed, and no callback runs). */
struct http_ws *http_ws_accept(struct http_req *req, const char *protocol,
			       const struct http_ws_callbacks *cbs, void *arg);
/* Queues one message. Returns 0; 1 when the bytes queued are now over the
 * high watermark (stop producing until on_drain); -1 when the connection
 * is closing (the message is dropped). */
int http_ws_send(struct http_ws *ws, int text, const void *data, size_t len);
/* Bytes queued towards the peer and not yet written to the socket. */
size_t http_ws_queued(const struct http_ws *ws);
/* Watermarks for http_ws_send()/on_drain (defaults 1 MiB / 256 KiB). */
void http_ws_set_watermarks(struct http_ws *ws, size_t high, size_t low);
void http_ws_set_max_message(struct http_ws *ws, size_t max);
/* Stops and restarts reading from the peer (the consumer is full). */
void http_ws_pause(struct http_ws *ws);
void http_ws_resume(struct http_ws *ws);
/* Starts the closing handshake; on_close follows. reason may be NULL. */
void http_ws_close(struct http_ws *ws, int code, const char *reason);
/* The peer's address, and the negotiated subprotocol ("" when none). */
const char *http_ws_remote(const struct http_ws *ws);
const char *http_ws_protocol(const struct http_ws *ws);

#endif
