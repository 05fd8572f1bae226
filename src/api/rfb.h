/* The client-to-server half of an RFB (VNC) connection, read as it streams
 * through the console bridge: the handshake (protocol version, security
 * type, ClientInit) and then the client's messages, which may be split
 * across any number of WebSocket frames. A view-only filter drops the
 * messages that act on the desktop (keys, pointer, clipboard, screen
 * size); every filter forces ClientInit's shared flag so that no viewer
 * can disconnect the others. Pure: no I/O, for the bridge and the unit
 * tests. */
#ifndef BUREAU_RFB_H
#define BUREAU_RFB_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define RFB_MAX_HEAD 20 /* the longest fixed part of a client message */

enum rfb_stage {
	RFB_VERSION,  /* "RFB 003.008\n" */
	RFB_SECURITY, /* one byte: the chosen security type (3.7 and later) */
	RFB_AUTH,     /* VNC authentication's 16-byte response */
	RFB_INIT,     /* ClientInit: the shared flag */
	RFB_MESSAGES,
};

struct rfb_filter {
	enum rfb_stage stage;
	int view_only;
	uint8_t head[RFB_MAX_HEAD]; /* the current message's fixed part so far */
	size_t have;
	uint64_t skip; /* payload bytes of the current message still to come */
	int pass;      /* whether the current message reaches the server */
	size_t auth_left;
	uint64_t dropped; /* messages dropped (view-only) */
	uint64_t passed;  /* messages passed */
};

void rfb_filter_init(struct rfb_filter *f, int view_only);
/* Feeds n bytes from the client; appends to out what may reach the
 * server. Returns 0, or -1 with err (status 400) on something it cannot
 * follow (an unknown message type, a security type other than None or
 * VNC authentication): the connection must end then. */
int rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t n, struct buf *out,
		    struct err *err);

#endif
