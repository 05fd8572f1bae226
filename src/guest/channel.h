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
 * stream; WINDOW grants the peer more bytes to send on a stream.
 *
 * Streams (everything but stream 0) multiplex exec, file transfers and
 * terminals over the one port:
 *   - Either side opens one with a MSG on stream 0
 *     {"type":"open","stream":N,"kind":"exec"|"file.read"|"file.write"|"pty",…}.
 *     The host picks odd ids, the agent even ones, each side counting up
 *     and never reusing an id within a session, so the two never collide.
 *     The opened side answers {"type":"opened","stream":N,…} on stream 0,
 *     or refuses with a CLOSE carrying {"error":…}.
 *   - DATA carries the stream's bytes. An empty DATA is end-of-data from
 *     its sender (stdin closed, upload complete). For "exec" the agent's
 *     DATA starts with one byte saying which output it is (1 stdout, 2
 *     stderr); everything else is raw.
 *   - Flow control: each direction of a stream starts with CH_WINDOW_INITIAL
 *     bytes of credit; DATA payload bytes spend it; the receiver gives it
 *     back with WINDOW frames (payload: u32 big-endian increment) as it
 *     consumes what it got. A sender never has more than its credit in
 *     flight, so a stream whose reader is slow stops on its own while the
 *     others, and stream 0, go on. A receiver closes a stream whose peer
 *     overruns the window.
 *   - CLOSE ends the stream on both sides at once; its payload is a JSON
 *     object: the result ({"exitCode":0}, {"size":N}) or {"error":"…"}. The
 *     receiver of a CLOSE never answers it; frames that arrive for a stream
 *     that is gone are dropped.
 *   - A new HELLO, or the connection dropping, ends every stream of the old
 *     session on both sides with the error CH_LOST: nothing is resumed or
 *     replayed, so nothing can be duplicated. */
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

/* ---- streams: the bookkeeping both sides share (no I/O) ---- */

#define CH_WINDOW_INITIAL (256 * 1024) /* credit of each direction at open */
#define CH_WINDOW_MAX (16u * 1024 * 1024) /* credit beyond this is a protocol error */
#define CH_WINDOW_GRANT (64 * 1024) /* give credit back once this much is consumed */
#define CH_MAX_STREAMS 256	    /* open streams per session, per side */
#define CH_LOST "agent connection lost"

struct ch_stream {
	struct ch_stream *next;
	uint32_t id;
	uint32_t send_credit; /* bytes we may still send */
	uint32_t recv_window; /* bytes the peer may still send us */
	uint32_t consumed;    /* consumed but not yet given back */
	unsigned paused : 1;  /* hold WINDOW frames back (the reader is full) */
	void *owner;	      /* the side's own object for this stream */
};

struct ch_session {
	struct ch_stream *streams;
	uint32_t next_id; /* the next id this side opens */
	int host;	  /* 1: this side is the host (odd ids) */
	size_t count;
};

void ch_session_init(struct ch_session *s, int host);
/* A new stream of ours (id 0: the next free one) or of the peer's (the
 * peer's id, which must have the peer's parity). NULL when the id is bad,
 * already used or the session has CH_MAX_STREAMS open. Not allocated: the
 * caller provides st (embedded in its own object) and owns it. */
struct ch_stream *ch_stream_add(struct ch_session *s, struct ch_stream *st, uint32_t id,
				void *owner);
struct ch_stream *ch_stream_find(const struct ch_session *s, uint32_t id);
void ch_stream_remove(struct ch_session *s, struct ch_stream *st);
/* Whether id is one the peer may open. */
int ch_stream_id_is_peers(const struct ch_session *s, uint32_t id);

/* How many bytes may go into the next DATA frame (credit, frame limit). */
size_t ch_stream_sendable(const struct ch_stream *st, size_t want);
/* Appends DATA frames for data (len <= ch_stream_sendable) and spends the
 * credit. len 0 appends the end-of-data frame. */
void ch_stream_data_append(struct buf *out, struct ch_stream *st, const void *data, size_t len);
/* Like ch_stream_data_append for "exec" output: tag byte then data; len
 * + 1 must be sendable. */
void ch_stream_tagged_append(struct buf *out, struct ch_stream *st, uint8_t tag,
			     const void *data, size_t len);
/* A received DATA frame of len bytes: -1 when it overruns the window. */
int ch_stream_received(struct ch_stream *st, size_t len);
/* A received WINDOW frame: -1 when malformed or over CH_WINDOW_MAX. */
int ch_stream_window(struct ch_stream *st, const struct ch_frame *f);
/* n received bytes were consumed: appends a WINDOW frame when enough is
 * due and the stream is not paused. */
void ch_stream_consumed(struct ch_stream *st, struct buf *out, size_t n);
void ch_stream_pause(struct ch_stream *st);
/* Resumes and appends the WINDOW frame held back, if any. */
void ch_stream_resume(struct ch_stream *st, struct buf *out);

/* Appends a CLOSE carrying result (may be NULL: {}). */
void ch_close_append(struct buf *out, uint32_t stream, const json_t *result);
/* Appends a CLOSE carrying {"error":msg}. */
void ch_close_error_append(struct buf *out, uint32_t stream, const char *msg);
/* The JSON object of a CLOSE; an empty payload gives {}. NULL when it is
 * not an object. */
json_t *ch_close_parse(const struct ch_frame *f);

#endif
