/* The channel framing of src/guest/channel.h: encode/decode round trips,
 * delivery in pieces, resynchronisation and limits. */
#include "common/buf.h"
#include "guest/channel.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 16

struct seen {
	int n;
	uint8_t type[MAX_SEEN];
	uint32_t stream[MAX_SEEN];
	uint32_t len[MAX_SEEN];
	char payload[MAX_SEEN][256];
	int stop_after; /* stop decoding after this many frames; 0: never */
};

static int collect(const struct ch_frame *f, void *arg)
{
	struct seen *s = arg;

	if (s->n < MAX_SEEN) {
		s->type[s->n] = f->type;
		s->stream[s->n] = f->stream;
		s->len[s->n] = f->len;
		memcpy(s->payload[s->n], f->payload, f->len < 255 ? f->len : 255);
		s->payload[s->n][f->len < 255 ? f->len : 255] = '\0';
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

static void test_header_layout(void)
{
	struct buf b = BUF_INIT;
	const uint8_t *p;

	ch_frame_append(&b, CH_DATA, 0x01020304, "xyz", 3);
	p = (const uint8_t *)b.data;
	ok(b.len == CH_HEADER_LEN + 3, "frame is a 12-byte header plus payload");
	ok(p[0] == 'B' && p[1] == 'U' && p[2] == CH_VERSION && p[3] == CH_DATA,
	   "header starts with magic, version and type");
	ok(p[4] == 1 && p[5] == 2 && p[6] == 3 && p[7] == 4, "stream is big-endian");
	ok(p[8] == 0 && p[9] == 0 && p[10] == 0 && p[11] == 3, "length is big-endian");
	buf_release(&b);
}

static void test_round_trip(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};

	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_frame_append(&b, CH_MSG, 0, "{\"type\":\"ping\"}", 15);
	ch_frame_append(&b, CH_DATA, 7, "", 0);
	ch_frame_append(&b, CH_CLOSE, 7, "bye", 3);
	ch_decoder_init(&d);
	ok(ch_decoder_feed(&d, b.data, b.len, collect, &s) == 0, "feed of whole frames succeeds");
	ok(s.n == 4, "four frames decoded (got %d)", s.n);
	ok(s.type[0] == CH_HELLO && s.type[1] == CH_MSG && s.type[2] == CH_DATA &&
	       s.type[3] == CH_CLOSE,
	   "frame types kept in order");
	ok(strcmp(s.payload[1], "{\"type\":\"ping\"}") == 0, "MSG payload round trips");
	ok(s.stream[2] == 7 && s.len[2] == 0, "empty DATA frame on stream 7");
	ok(s.stream[3] == 7 && strcmp(s.payload[3], "bye") == 0, "CLOSE payload and stream");
	ok(d.in.len == 0, "decoder keeps nothing after complete frames");
	ch_decoder_release(&d);
	buf_release(&b);
}

static void test_byte_by_byte(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};
	size_t i;
	int bad = 0;

	ch_frame_append(&b, CH_HELLO, 0, "{\"type\":\"hello\"}", 16);
	ch_frame_append(&b, CH_MSG, 3, "abcdefghij", 10);
	ch_decoder_init(&d);
	for (i = 0; i < b.len; i++) {
		bad |= ch_decoder_feed(&d, b.data + i, 1, collect, &s);
		if (i == b.len - 2 && s.n != 1)
			bad = 1;
	}
	ok(!bad, "byte-by-byte feed never fails and delivers nothing early");
	ok(s.n == 2 && s.type[1] == CH_MSG && s.stream[1] == 3 &&
	       strcmp(s.payload[1], "abcdefghij") == 0,
	   "byte-by-byte feed delivers both frames intact");
	ch_decoder_release(&d);
	buf_release(&b);
}

static void test_resync(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};

	/* Noise, a torn header, a non-HELLO frame: all skipped before HELLO. */
	buf_append(&b, "\x00\xffnoiseBU", 8);
	buf_append(&b, "BU\x01", 3);
	ch_frame_append(&b, CH_MSG, 0, "{\"lost\":1}", 10);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_frame_append(&b, CH_MSG, 0, "{\"kept\":1}", 10);
	ch_decoder_init(&d);
	ok(ch_decoder_feed(&d, b.data, b.len, collect, &s) == 0,
	   "garbage before HELLO is no error");
	ok(s.n == 2 && s.type[0] == CH_HELLO && strcmp(s.payload[1], "{\"kept\":1}") == 0,
	   "decoder skips to the first HELLO and decodes from there");
	ok(d.synced, "decoder is synced after HELLO");

	/* The garbage comes split with a HELLO header across two feeds. */
	buf_reset(&b);
	ch_decoder_reset(&d);
	memset(&s, 0, sizeof(s));
	buf_append(&b, "zzzzzzz", 7);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_decoder_feed(&d, b.data, 9, collect, &s);
	ch_decoder_feed(&d, b.data + 9, b.len - 9, collect, &s);
	ok(s.n == 1 && s.type[0] == CH_HELLO, "HELLO split across feeds after garbage is found");

	/* After reset the decoder ignores everything until the next HELLO. */
	ch_decoder_reset(&d);
	memset(&s, 0, sizeof(s));
	buf_reset(&b);
	ch_frame_append(&b, CH_MSG, 0, "{}", 2);
	ch_decoder_feed(&d, b.data, b.len, collect, &s);
	ok(s.n == 0 && !d.synced, "after reset, frames before a HELLO are dropped");
	ch_decoder_release(&d);
	buf_release(&b);
}

static void test_bad_frames(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};
	uint8_t h[CH_HEADER_LEN] = {'B', 'U', CH_VERSION, CH_MSG, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01};

	ch_decoder_init(&d);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_decoder_feed(&d, b.data, b.len, collect, &s);
	/* 0x00010001 = 65537 > CH_MAX_PAYLOAD */
	ok(ch_decoder_feed(&d, h, sizeof(h), collect, &s) == -1, "oversized length is rejected");
	ok(!d.synced, "decoder is unsynced after an oversized frame");
	ch_decoder_reset(&d);

	buf_reset(&b);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	buf_append(&b, "XXXXXXXXXXXXXXXX", 16);
	ok(ch_decoder_feed(&d, b.data, b.len, collect, &s) == -1,
	   "bad magic after HELLO is an error");
	ch_decoder_reset(&d);

	/* A frame of exactly CH_MAX_PAYLOAD is fine. */
	{
		char *big = calloc(1, CH_MAX_PAYLOAD);

		buf_reset(&b);
		memset(&s, 0, sizeof(s));
		ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
		ch_frame_append(&b, CH_DATA, 1, big, CH_MAX_PAYLOAD);
		ok(ch_decoder_feed(&d, b.data, b.len, collect, &s) == 0 && s.n == 2 &&
		       s.len[1] == CH_MAX_PAYLOAD,
		   "a frame of exactly CH_MAX_PAYLOAD is accepted");
		free(big);
	}

	/* Unknown types are delivered; the receiver decides. */
	{
		uint8_t u[CH_HEADER_LEN] = {'B', 'U', CH_VERSION, 99, 0, 0, 0, 5, 0, 0, 0, 0};

		memset(&s, 0, sizeof(s));
		ok(ch_decoder_feed(&d, u, sizeof(u), collect, &s) == 0 && s.n == 1 &&
		       s.type[0] == 99 && s.stream[0] == 5,
		   "unknown frame type is delivered");
	}
	ch_decoder_release(&d);
	buf_release(&b);
}

static void test_stop(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};

	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_frame_append(&b, CH_MSG, 0, "{\"a\":1}", 7);
	ch_frame_append(&b, CH_MSG, 0, "{\"b\":2}", 7);
	ch_decoder_init(&d);
	s.stop_after = 2;
	ch_decoder_feed(&d, b.data, b.len, collect, &s);
	ok(s.n == 2, "callback returning non-zero stops decoding");
	s.stop_after = 0;
	ch_decoder_feed(&d, "", 0, collect, &s);
	ok(s.n == 3 && strcmp(s.payload[2], "{\"b\":2}") == 0,
	   "the remaining frame is delivered by the next feed");
	ch_decoder_release(&d);
	buf_release(&b);
}

static void test_json(void)
{
	struct buf b = BUF_INIT;
	struct ch_decoder d;
	struct seen s = {0};
	struct ch_frame f;
	json_t *m, *back;
	char *big;

	m = json_pack("{s:s, s:i, s:[s,s]}", "type", "exec", "id", 42, "argv", "sh", "-c");
	ok(ch_json_append(&b, CH_MSG, 0, m) == 0, "ch_json_append encodes an object");
	ok(memchr(b.data + CH_HEADER_LEN, ' ', b.len - CH_HEADER_LEN) == NULL,
	   "JSON is serialised compactly");
	f.type = CH_MSG;
	f.stream = 0;
	f.len = (uint32_t)(b.len - CH_HEADER_LEN);
	f.payload = (const uint8_t *)b.data + CH_HEADER_LEN;
	back = ch_json_parse(&f);
	ok(back && json_equal(m, back), "ch_json_parse gives the same object back");
	json_decref(back);

	ch_decoder_init(&d);
	buf_reset(&b);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_json_append(&b, CH_MSG, 0, m);
	ch_decoder_feed(&d, b.data, b.len, collect, &s);
	ok(s.n == 2 && strstr(s.payload[1], "\"id\":42"), "JSON frame decodes through the decoder");
	ch_decoder_release(&d);
	json_decref(m);

	f.payload = (const uint8_t *)"[1,2]";
	f.len = 5;
	ok(ch_json_parse(&f) == NULL, "ch_json_parse refuses a non-object");
	f.payload = (const uint8_t *)"{\"a\":";
	f.len = 5;
	ok(ch_json_parse(&f) == NULL, "ch_json_parse refuses malformed JSON");
	f.payload = (const uint8_t *)"{\"a\":1}trailing";
	f.len = 7; /* only the object: the length bounds the parse */
	back = ch_json_parse(&f);
	ok(back && json_integer_value(json_object_get(back, "a")) == 1,
	   "ch_json_parse reads exactly the frame's length");
	json_decref(back);

	big = malloc(CH_MAX_PAYLOAD + 1);
	memset(big, 'a', CH_MAX_PAYLOAD);
	big[CH_MAX_PAYLOAD] = '\0';
	m = json_pack("{s:s}", "x", big);
	buf_reset(&b);
	ok(ch_json_append(&b, CH_MSG, 0, m) == -1 && b.len == 0,
	   "ch_json_append refuses JSON larger than one frame and appends nothing");
	json_decref(m);
	free(big);
	buf_release(&b);
}

int main(void)
{
	test_header_layout();
	test_round_trip();
	test_byte_by_byte();
	test_resync();
	test_bad_frames();
	test_stop();
	test_json();
	return tap_done();
}
