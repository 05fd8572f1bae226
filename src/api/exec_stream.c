/* POST /api/desktops/{id}/exec?stream=true: the command's output as it
 * comes, one JSON object per line (application/x-ndjson):
 *   {"type":"started","pid":123}
 *   {"type":"stdout","data":"…"}   {"type":"stderr","data":"…"}
 *   {"type":"exit","exitCode":0,"signal":null,"timedOut":false}
 * or, when the command could not finish, a last
 *   {"type":"error","error":{"code":"agent_unavailable","message":"…"}}.
 * Output has no size limit; data is UTF-8 text (bytes that are not are
 * replaced by U+FFFD; a character split between two pieces is kept whole).
 * The agent runs it as an "exec" stream; the client's slowness pauses the
 * stream, and the client leaving kills the command. */
#include "api/api.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "vm/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_STREAM_PAUSE (HTTP_STREAM_HIGH_WATER / 2)

struct exec_stream {
	struct api_ctx *c;
	struct vm_stream *s;
	int begun;
	/* an incomplete UTF-8 sequence at the end of the last piece, per output */
	char held[2][4];
	size_t nheld[2];
};

/* Length of the valid UTF-8 character starting at p (n bytes left), 0 when
 * invalid, -1 when it may be complete with more bytes. */
static int utf8_char(const unsigned char *p, size_t n)
{
	int len = p[0] < 0x80		  ? 1
		  : (p[0] & 0xe0) == 0xc0 ? 2
		  : (p[0] & 0xf0) == 0xe0 ? 3
		  : (p[0] & 0xf8) == 0xf0 ? 4
					  : 0;
	int i;

	if (len == 0 || (len == 2 && p[0] < 0xc2) || (len == 4 && p[0] > 0xf4))
		return 0;
	for (i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if ((len == 3 && p[0] == 0xe0 && p[1] < 0xa0) ||
	    (len == 3 && p[0] == 0xed && p[1] > 0x9f) ||
	    (len == 4 && p[0] == 0xf0 && p[1] < 0x90) || (len == 4 && p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return len;
}

/* Appends data as valid UTF-8 to out; an incomplete last character goes to
 * held (at most 3 bytes) for the next piece. */
static void utf8_take(struct buf *out, const unsigned char *p, size_t n, char *held, size_t *nheld)
{
	static const char repl[] = "\xef\xbf\xbd";
	size_t i = 0;
	int len;

	while (i < n) {
		len = utf8_char(p + i, n - i);
		if (len < 0) {
			memcpy(held, p + i, n - i);
			*nheld = n - i;
			return;
		}
		if (len == 0) {
			buf_append(out, repl, 3);
			i++;
			continue;
		}
		buf_append(out, p + i, (size_t)len);
		i += (size_t)len;
	}
}

static void exec_stream_line(struct exec_stream *x, json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT);

	json_decref(line);
	if (!s)
		return;
	http_stream_write(x->c->req, s, strlen(s));
	http_stream_write(x->c->req, "\n", 1);
	free(s);
}

static void exec_stream_http_closed(struct http_req *req, void *arg)
{
	struct exec_stream *x = arg;

	if (x->s)
		vm_stream_close(x->s, "the client went away");
	x->c->req = NULL;
	api_ctx_free(x->c);
	free(x);
}

static void exec_stream_http_drain(struct http_req *req, void *arg)
{
	struct exec_stream *x = arg;

	if (x->s)
		vm_stream_resume(x->s);
}

static void exec_stream_open(struct vm_stream *s, json_t *info, void *arg)
{
	struct exec_stream *x = arg;

	if (http_stream_begin(x->c->req, 200, "application/x-ndjson", "Cache-Control: no-store\r\n",
			      exec_stream_http_closed, x)) {
		vm_stream_close(s, "the client went away");
		x->c->req = NULL;
		api_ctx_free(x->c);
		free(x);
		return;
	}
	x->begun = 1;
	http_stream_on_drain(x->c->req, exec_stream_http_drain, x);
	exec_stream_line(x, json_pack("{s:s, s:O}", "type", "started", "pid",
				      json_object_get(info, "pid") ?: json_null()));
}

static void exec_stream_data(struct vm_stream *s, const uint8_t *data, size_t len, void *arg)
{
	struct exec_stream *x = arg;
	struct buf text = BUF_INIT;
	int which;

	if (!x->begun || len < 1 || (data[0] != 1 && data[0] != 2))
		return;
	which = data[0] - 1;
	if (x->nheld[which]) {
		/* Complete the character held back with the new bytes. */
		struct buf join = BUF_INIT;

		buf_append(&join, x->held[which], x->nheld[which]);
		buf_append(&join, data + 1, len - 1);
		x->nheld[which] = 0;
		utf8_take(&text, (const unsigned char *)join.data, join.len, x->held[which],
			  &x->nheld[which]);
		buf_release(&join);
	} else {
		utf8_take(&text, data + 1, len - 1, x->held[which], &x->nheld[which]);
	}
	if (text.len)
		exec_stream_line(x, json_pack("{s:s, s:s%}", "type", which ? "stderr" : "stdout",
					      "data", text.data, text.len));
	buf_release(&text);
	if (http_stream_pending(x->c->req) > EXEC_STREAM_PAUSE)
		vm_stream_pause(s);
}

static void exec_stream_close(struct vm_stream *s, json_t *result, const struct err *err, void *arg)
{
	struct exec_stream *x = arg;
	struct api_ctx *c = x->c;
	struct err e = ERR_INIT;
	json_t *line;

	x->s = NULL;
	if (!err && json_object_get(result, "error"))
		err_set(&e, 400, "exec_refused", "agent: %s",
			json_string_value(json_object_get(result, "error")) ?: "refused");
	else if (err)
		e = *err;
	if (!x->begun) {
		api_respond_err(c, &e);
		free(x);
		return;
	}
	if (*e.code) {
		line = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "code", e.code,
				 "message", e.msg);
	} else {
		line = json_deep_copy(result);
		json_object_set_new(line, "type", json_string("exit"));
	}
	exec_stream_line(x, line);
	http_stream_end(c->req);
	c->req = NULL;
	api_ctx_free(c);
	free(x);
}

static const struct vm_stream_callbacks exec_stream_cbs = {
    .on_open = exec_stream_open,
    .on_data = exec_stream_data,
    .on_close = exec_stream_close,
};

void exec_stream_start(struct api_ctx *c, struct vm *vm)
{
	struct exec_stream *x = xcalloc(1, sizeof(*x));
	json_t *open = json_deep_copy(c->body), *in;
	struct err err = ERR_INIT;

	x->c = c;
	in = json_incref(json_object_get(open, "stdin"));
	json_object_del(open, "stdin");
	json_object_set_new(open, "kind", json_string("exec"));
	json_object_set(open, "argv", json_object_get(c->body, "command"));
	json_object_del(open, "command");
	x->s = vm_stream_open(vm, open, &exec_stream_cbs, x, &err);
	json_decref(open);
	if (!x->s) {
		json_decref(in);
		free(x);
		api_respond_err(c, &err);
		return;
	}
	/* stdin, then its end: the command sees EOF after it. */
	if (in)
		vm_stream_write(x->s, json_string_value(in), json_string_length(in));
	vm_stream_end(x->s);
	json_decref(in);
}
