/* Private to src/http: the structures behind http_server and http_req,
 * shared by the connection code (server.c), the llhttp callbacks
 * (parse.c) and the answers (respond.c). Not part of the public API. */
#ifndef BUREAU_HTTP_INT_H
#define BUREAU_HTTP_INT_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "http/http.h"

#define HTTP_LINGER_MS 2000  /* after a final answer, wait this long for the client's FIN */
#define HTTP_READ_SIZE 65536 /* one read; the parser consumes it before the next */
#define HTTP_FAIL_DISCARD 2  /* over max_conns * this: close without answering */

struct http_conn;

/* A request from its first byte to its answer. The public part comes first
 * so the handler's pointer converts back. */
struct http__req {
	struct http_req pub;
	struct http_conn *conn; /* NULL once the client is gone */
	struct buf url, body, field, value;
	size_t header_bytes, header_cap, body_limit, bytes_out;
	uint64_t start_ns;
	int status;
	unsigned in_header : 1, headers_done : 1, keep_alive : 1, head : 1, streaming : 1;
	void (*on_close)(struct http_req *req, void *arg);
	void *close_arg;
	/* body.c: a body streamed to the handler */
	unsigned body_stream : 1, body_done : 1, body_paused : 1, body_started : 1,
	    body_failed : 1;
	size_t body_total;
	const struct http_body_callbacks *body_cbs;
	void *body_arg;
	void (*on_drain)(struct http_req *req, void *arg); /* streams (body.c) */
	void *drain_arg;
};

enum http_conn_state {
	CONN_OPEN,	/* reading requests, or one is with the handler */
	CONN_FINISHING, /* no more requests: close once the answer is written */
	CONN_LINGER,	/* FIN sent; discarding input until the client's FIN */
	CONN_CLOSING,	/* uv_close called; freed in the last close callback */
};

struct http_conn {
	struct http_server *srv;
	struct http_conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer; /* idle, slow request, linger, deferred close */
	uv_shutdown_t shutdown;
	llhttp_t parser;
	struct buf in;		   /* read but not yet parsed (pipelined requests) */
	struct http__req *parsing; /* being received */
	struct http__req *ready;   /* received, waiting for its turn */
	struct http__req *active;  /* with the handler, or streaming */
	size_t write_pending;
	int nwrites, nhandles;
	enum http_conn_state state;
	int fail_status;
	const char *fail_code, *fail_msg;
	unsigned reading : 1, busy : 1, idle_armed : 1, broken : 1;
	char remote[64];
};

struct http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	http_handler handler;
	void *arg;
	http_body_limit_fn body_limit;
	void *body_limit_arg;
	http_body_stream_fn body_stream; /* body.c */
	void *body_stream_arg;
	struct http_conn *conns;
	size_t nconns, max_conns;
	uint64_t idle_ms;
	int port;
	unsigned shutting_down : 1, listener_closed : 1;
	void (*done_cb)(void *arg);
	void *done_arg;
	char rbuf[HTTP_READ_SIZE];
	/* WebSockets handed over by connections (websocket.c): the server is
	 * freed only once they are gone too. */
	struct http_ws *ws_list;
	size_t nws;
};

/* Percent-decodes src[0..len) into out (room for n bytes including the
 * NUL). plus_space turns '+' into ' ' (query strings). Returns the decoded
 * length, or -1 on a malformed escape, an encoded NUL, or too little room. */
int http__pct_decode(const char *src, size_t len, char *out, size_t n, int plus_space);

/* parse.c: the llhttp callbacks; parser.data is the connection. */
extern const llhttp_settings_t http__parser_settings;
struct http__req *http__req_new(struct http_conn *c);
void http__req_free(struct http__req *r);

/* server.c: connection plumbing used by the answers. */
void http__conn_write(struct http_conn *c, char *data, size_t len);
/* The active request has been answered: go on with the next one or close. */
void http__conn_answered(struct http_conn *c, int keep_alive);
/* Reads (and discards) while a stream runs, to notice the peer leaving. */
void http__conn_stream_started(struct http_conn *c);
/* Answers a request the server itself refuses, then closes. */
void http__conn_fail(struct http_conn *c, int status, const char *code, const char *msg);
/* Hands the connection's socket to a new owner (a WebSocket): returns a
 * duplicate descriptor and moves the input not yet parsed into *rest,
 * then closes the connection without a FIN (the active request stays
 * with its handler). Returns -1 when the client is gone or answers are
 * still being written. */
int http__conn_detach(struct http_conn *c, struct buf *rest);
/* A WebSocket of the server ended (websocket.c): the server may be done. */
void http__server_ws_gone(struct http_server *srv);
/* websocket.c: closes every WebSocket with 1001 (server shutdown). */
void http__ws_shutdown(struct http_server *srv);

/* server.c, for body.c: reading on/off and the idle timer restarted. */
void http__conn_reading(struct http_conn *c, int on);
void http__conn_idle_rearm(struct http_conn *c);

/* body.c: input for the active request's streamed body (appended to
 * c->in); and the connection closing under it. */
void http__body_input(struct http_conn *c);
void http__body_abort(struct http__req *r, const char *why);

/* respond.c */
void http__req_log(struct http__req *r);
/* The peer is gone under a stream: on_close, log, free. */
void http__stream_closed(struct http__req *r);

#endif
