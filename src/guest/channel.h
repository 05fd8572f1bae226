/* The host <-> guest channel: framed, multiplexed and versioned, carried
 * over the desktop's virtio-serial port "org.bureau.agent". bureaud and
 * bureau-agent both use this file; it does no I/O of its own.
 *
 * A frame is a 12-byte header followed by its payload:
 *
 *   0  'B' 'U'        magic
 *   2  u8  version    CH_VERSION
 *   3  u8  type       enum ch_type
 *   4  u32 stream     big-endian; 0 is the control stream
 *   8  u32 length     big-endian payload length, at most CH_MAX_PAYLOAD
 *
 * HELLO opens a session: the host sends one whenever it (re)connects, the
 * agent answers with its own and then re-announces its state (readiness),
 * so either side may restart at any time. Before the peer's HELLO a side
 * skips bytes until it finds one, which resynchronises after a torn frame.
 * MSG carries one JSON object; DATA raw bytes of a stream; CLOSE ends a
 * stream; WINDOW grants the peer more bytes to send on a stream. */
#ifndef BUREAU_CHANNEL_H
#define BUREAU_CHANNEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CH_VERSION 1
#define CH_HEADER_LEN 12
#define CH_MAX_PAYLOAD (64 * 1024)
#define CH_PORT_NAME "org.bureau.agent"

enum ch_type {
	CH_HELLO = 1,
	CH_MSG = 2,
	CH_DATA = 3,
	CH_CLOSE = 4,
	CH_WINDOW = 5,
};

struct ch_frame {
	uint8_t type;
	uint32_t stream;
	uint32_t len;
	const uint8_t *payload; /* points into the decoder's buffer */
};

/* Called once per complete frame; return non-zero to stop decoding. */
typedef int (*ch_frame_cb)(const struct ch_frame *f, void *arg);

struct ch_decoder {
	struct buf in;
	int synced; /* a HELLO has been seen since the last reset */
};

void ch_decoder_init(struct ch_decoder *d);
/* Forget any partial frame and wait for a HELLO again. */
void ch_decoder_reset(struct ch_decoder *d);
void ch_decoder_release(struct ch_decoder *d);
/* Appends bytes and delivers every complete frame. Returns 0, or -1 on a
 * frame with an oversized length (the caller should reset the session).
 * Unknown types are delivered; the receiver decides. */
int ch_decoder_feed(struct ch_decoder *d, const void *data, size_t len, ch_frame_cb cb,
		    void *arg);

/* Appends an encoded frame to out. len must be <= CH_MAX_PAYLOAD. */
void ch_frame_append(struct buf *out, enum ch_type type, uint32_t stream, const void *payload,
		     size_t len);
/* Appends a MSG (or HELLO) frame carrying msg serialised compactly.
 * Returns -1 when the JSON does not fit in one frame. */
int ch_json_append(struct buf *out, enum ch_type type, uint32_t stream, const json_t *msg);
/* Parses a MSG/HELLO payload; NULL unless it is one JSON object. */
json_t *ch_json_parse(const struct ch_frame *f);

#endif
