/* An asynchronous QMP client on the loop: one connection to a QEMU's QMP
 * unix socket. It reads the greeting, negotiates capabilities, then sends
 * commands, each with its own callback matched to the reply by "id", and
 * passes events (SHUTDOWN, STOP, RESUME, POWERDOWN, ...) as they come.
 *
 * Lifetime: qmp_connect() allocates the client; it is freed after the
 * connection ends, either by qmp_close() or because QEMU went away (then
 * on_close runs first). Every command gets exactly one callback. */
#ifndef BUREAU_QMP_H
#define BUREAU_QMP_H

#include <jansson.h>
#include <uv.h>

#include "common/err.h"

/* A reply line may be large (query-qmp-schema is ~200 KB); beyond this the
 * connection is dropped rather than buffering without bound. */
#define QMP_MAX_LINE (16 * 1024 * 1024)
/* How long the greeting and qmp_capabilities may take. */
#define QMP_HANDSHAKE_TIMEOUT_MS 5000

struct qmp;

/* ret is the reply's "return" value (borrowed) or NULL with err filled:
 * 500 "qmp_error" (QEMU's class and desc in the message), 504 "qmp_timeout",
 * 502 "qmp_closed". */
typedef void (*qmp_reply_cb)(json_t *ret, struct err *err, void *arg);

struct qmp_callbacks {
	/* Handshake done (err NULL), or failed: then q is released after the
	 * callback returns and no other callback follows. */
	void (*on_ready)(struct qmp *q, struct err *err, void *arg);
	/* An asynchronous event; data is borrowed and may be NULL. */
	void (*on_event)(struct qmp *q, const char *event, json_t *data, void *arg);
	/* The socket ended after a successful handshake (QEMU exited, most
	 * likely). Pending commands have failed already; q is released after
	 * the callback returns. */
	void (*on_close)(struct qmp *q, void *arg);
	void *arg;
};

/* Starts connecting to the socket at path (at most 107 bytes). Returns the
 * client, or NULL with err filled when the connection cannot even start.
 * cbs is copied. */
struct qmp *qmp_connect(uv_loop_t *loop, const char *path, const struct qmp_callbacks *cbs,
			struct err *err);

/* Sends {"execute": cmd, "arguments": args}. args is stolen (NULL for
 * none). timeout_ms <= 0 means no timeout. Commands sent before on_ready
 * are queued until the handshake is done. Once the connection has ended
 * (inside a failing command's callback, say) cb fails at once. */
void qmp_command(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, qmp_reply_cb cb,
		 void *arg);

/* Ends the connection. Pending commands fail with 502 "qmp_closed" before
 * this returns; on_ready/on_event/on_close never run afterwards. */
void qmp_close(struct qmp *q);

/* Non-zero once the handshake is done and until the connection ends. */
int qmp_is_ready(const struct qmp *q);

#endif
