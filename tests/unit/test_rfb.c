/* The RFB filter of the VNC bridge: what a view-only or a control client
 * may send QEMU, whatever way the bytes are split into messages. */
#include <stdlib.h>
#include <string.h>

#include "api/rfb.h"
#include "tap.h"

/* A client's whole stream: handshake (3.8, security None, ClientInit
 * exclusive), then one message of each kind. */
static const uint8_t handshake[] = {'R', 'F', 'B', ' ', '0',  '0', '3',
				    '.', '0', '0', '8', '\n', 1,   0};
static const uint8_t set_pixel_format[20] = {0, 0,   0, 0,   32, 24, 0, 1, 0, 255,
					     0, 255, 0, 255, 16, 8,  0, 0, 0, 0};
static const uint8_t set_encodings[] = {2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21};
static const uint8_t fbur[] = {3, 0, 0, 0, 0, 0, 0x05, 0x00, 0x03, 0x20};
static const uint8_t key[] = {4, 1, 0, 0, 0, 0, 0, 0x61};
static const uint8_t pointer[] = {5, 0, 0, 100, 0, 200};
static const uint8_t cut[] = {6, 0, 0, 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
/* Extended clipboard: a negative length announces 4 bytes. */
static const uint8_t cut_ext[] = {6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4};
static const uint8_t qemu_key[] = {255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30};
static const uint8_t qemu_audio[] = {255, 1, 0, 2, 3, 2, 0, 0, 0xac, 0x44};
static const uint8_t fence[] = {248, 0, 0, 0, 0, 0, 0, 1, 2, 0xaa, 0xbb};
static const uint8_t desktop_size[] = {251, 0, 5, 0, 3, 0x20, 1, 0,    0, 0, 0, 0,
				       0,   0, 0, 0, 5, 0,    3, 0x20, 0, 0, 0, 0};

struct piece {
	const uint8_t *p;
	size_t n;
	int input;
};

static const struct piece pieces[] = {
    {set_pixel_format, sizeof(set_pixel_format), 0},
    {set_encodings, sizeof(set_encodings), 0},
    {key, sizeof(key), 1},
    {fbur, sizeof(fbur), 0},
    {pointer, sizeof(pointer), 1},
    {cut, sizeof(cut), 1},
    {qemu_audio, sizeof(qemu_audio), 0},
    {cut_ext, sizeof(cut_ext), 1},
    {qemu_key, sizeof(qemu_key), 1},
    {fence, sizeof(fence), 0},
    {desktop_size, sizeof(desktop_size), 1},
    {fbur, sizeof(fbur), 0},
};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

/* The stream, and what the server should get from it. */
static void build(struct buf *in, struct buf *want, int view_only)
{
	uint8_t shared_hs[sizeof(handshake)];

	memcpy(shared_hs, handshake, sizeof(handshake));
	shared_hs[sizeof(handshake) - 1] = 1; /* forced shared */
	buf_append(in, handshake, sizeof(handshake));
	buf_append(want, shared_hs, sizeof(shared_hs));
	for (size_t i = 0; i < NPIECES; i++) {
		buf_append(in, pieces[i].p, pieces[i].n);
		if (!view_only || !pieces[i].input)
			buf_append(want, pieces[i].p, pieces[i].n);
	}
}

/* Feeds the stream in chunks of step bytes (0: one call). */
static int run(int view_only, size_t step, struct rfb_filter *f, struct buf *out)
{
	struct buf in = BUF_INIT, want = BUF_INIT;
	struct err err = ERR_INIT;
	int same;

	build(&in, &want, view_only);
	rfb_filter_init(f, view_only);
	for (size_t off = 0; off < in.len;) {
		size_t n = step && in.len - off > step ? step : in.len - off;

		if (rfb_filter_feed(f, (uint8_t *)in.data + off, n, out, &err))
			return 0;
		off += n;
	}
	same = out->len == want.len && !memcmp(out->data, want.data, want.len);
	buf_release(&in);
	buf_release(&want);
	return same;
}

static void test_modes(void)
{
	struct rfb_filter f;
	struct buf out = BUF_INIT;

	ok(run(0, 0, &f, &out), "control: every message reaches the server, ClientInit shared");
	ok(f.passed == NPIECES && f.dropped == 0, "control: %llu passed, %llu dropped",
	   (unsigned long long)f.passed, (unsigned long long)f.dropped);
	buf_reset(&out);
	ok(run(1, 0, &f, &out), "view-only: keys, pointer, clipboard, QEMU keys, resize dropped");
	ok(f.dropped == 6, "view-only: 6 input messages dropped (got %llu)",
	   (unsigned long long)f.dropped);
	buf_release(&out);
}

/* Every split, down to one byte per WebSocket message, gives the same. */
static void test_splits(void)
{
	struct rfb_filter f;
	struct buf out = BUF_INIT;
	int all = 1;

	for (size_t step = 1; step <= 24; step++) {
		buf_reset(&out);
		all &= run(1, step, &f, &out);
		buf_reset(&out);
		all &= run(0, step, &f, &out);
	}
	ok(all, "messages split at any byte boundary are followed exactly");
	buf_release(&out);
}

static int feed_after_handshake(const uint8_t *msg, size_t n, int view_only, struct buf *out)
{
	struct rfb_filter f;
	struct err err = ERR_INIT;

	rfb_filter_init(&f, view_only);
	if (rfb_filter_feed(&f, handshake, sizeof(handshake), out, &err))
		return -1;
	buf_reset(out);
	return rfb_filter_feed(&f, msg, n, out, &err);
}

static void test_refusals(void)
{
	static const uint8_t unknown[] = {7, 0, 0, 0};
	static const uint8_t qemu_bad[] = {255, 9, 0, 0};
	static const uint8_t bad_version[] = "HTTP/1.1 200";
	struct rfb_filter f;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	uint8_t sec;

	ok(feed_after_handshake(unknown, sizeof(unknown), 1, &out) < 0,
	   "an unknown message type ends the connection");
	ok(feed_after_handshake(qemu_bad, sizeof(qemu_bad), 0, &out) < 0,
	   "an unknown QEMU subtype ends the connection");
	rfb_filter_init(&f, 1);
	ok(rfb_filter_feed(&f, bad_version, 12, &out, &err) < 0,
	   "a stream that is not RFB is refused");
	rfb_filter_init(&f, 1);
	sec = 16; /* Tight: not offered by QEMU, and not followed */
	ok(rfb_filter_feed(&f, handshake, 12, &out, &err) == 0 &&
	       rfb_filter_feed(&f, &sec, 1, &out, &err) < 0,
	   "a security type other than None or VNC auth is refused");
	buf_release(&out);
}

/* A big clipboard in view-only mode is skipped without being kept. */
static void test_big_cut_text(void)
{
	static const uint8_t head[] = {6, 0, 0, 0, 0x00, 0x10, 0x00, 0x00}; /* 1 MiB */
	struct rfb_filter f;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	uint8_t *chunk = calloc(1, 4096);
	int fine = 1;

	rfb_filter_init(&f, 1);
	fine &= !rfb_filter_feed(&f, handshake, sizeof(handshake), &out, &err);
	buf_reset(&out);
	fine &= !rfb_filter_feed(&f, head, sizeof(head), &out, &err);
	for (int i = 0; i < 256; i++)
		fine &= !rfb_filter_feed(&f, chunk, 4096, &out, &err);
	fine &= !rfb_filter_feed(&f, fbur, sizeof(fbur), &out, &err);
	ok(fine && out.len == sizeof(fbur) && !memcmp(out.data, fbur, sizeof(fbur)),
	   "1 MiB of view-only clipboard is skipped, the next message passes");
	free(chunk);
	buf_release(&out);
}

/* RFB 3.3: no security byte from the client, ClientInit right away. */
static void test_v33(void)
{
	static const uint8_t hs[] = {'R', 'F', 'B', ' ', '0',  '0', '3',
				     '.', '0', '0', '3', '\n', 0};
	struct rfb_filter f;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;

	rfb_filter_init(&f, 1);
	ok(!rfb_filter_feed(&f, hs, sizeof(hs), &out, &err) &&
	       !rfb_filter_feed(&f, pointer, sizeof(pointer), &out, &err) &&
	       out.len == sizeof(hs) && out.data[12] == 1 && f.dropped == 1,
	   "RFB 3.3: ClientInit forced shared, pointer dropped");
	buf_release(&out);
}

int main(void)
{
	test_modes();
	test_splits();
	test_refusals();
	test_big_cut_text();
	test_v33();
	return tap_done();
}
