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


/* ---- streams (src/guest/stream.c) ---- */

static void test_stream_ids(void)
{
	struct ch_session host, agent;
	struct ch_stream a, b, c, x;

	ch_session_init(&host, 1);
	ch_session_init(&agent, 0);
	ok(ch_stream_add(&host, &a, 0, NULL) && a.id == 1, "the host's first stream is 1");
	ok(ch_stream_add(&host, &b, 0, NULL) && b.id == 3, "the host's ids stay odd");
	ok(ch_stream_add(&agent, &c, 0, NULL) && c.id == 2, "the agent's ids are even");
	ok(ch_stream_add(&agent, &x, 1, NULL) == &x, "the agent accepts the host's id 1");
	ok(ch_stream_add(&agent, &x, 1, NULL) == NULL, "an id in use is refused");
	ok(ch_stream_add(&agent, &x, 4, NULL) == NULL, "a peer's id of our own parity is refused");
	ok(ch_stream_add(&host, &x, 0 + 0, NULL) && x.id == 5 && !ch_stream_id_is_peers(&host, 0),
	   "stream 0 is nobody's");
	ch_stream_remove(&host, &a);
	ok(ch_stream_find(&host, 1) == NULL && ch_stream_find(&host, 3) == &b && host.count == 2,
	   "a removed stream is gone, the others stay");
	ch_stream_add(&host, &a, 0, NULL);
	ok(a.id == 7, "ids are not reused within a session");
}

static void test_stream_limit(void)
{
	static struct ch_stream many[CH_MAX_STREAMS + 1];
	struct ch_session s;
	int i, added = 0;

	ch_session_init(&s, 1);
	for (i = 0; i <= CH_MAX_STREAMS; i++)
		added += ch_stream_add(&s, &many[i], 0, NULL) != NULL;
	ok(added == CH_MAX_STREAMS, "a session holds at most CH_MAX_STREAMS streams");
}

/* Two ends of one stream with a pipe between them (a buf): the sender
 * never has more than the window in flight, and the receiver's grants
 * let it go on. */
static void test_stream_flow(void)
{
	struct ch_session hs, as;
	struct ch_stream h, a;
	struct buf wire = BUF_INIT, back = BUF_INIT;
	struct ch_decoder d;
	struct seen sn = {0};
	size_t sent = 0, n, total = 3 * CH_WINDOW_INITIAL;
	static char data[CH_MAX_PAYLOAD];
	int stalled = 0, over = 0;
	struct ch_frame f;
	uint8_t win[4];

	ch_session_init(&hs, 1);
	ch_session_init(&as, 0);
	ch_stream_add(&hs, &h, 0, NULL);
	ch_stream_add(&as, &a, h.id, NULL);
	/* The host sends until its credit is gone. */
	while ((n = ch_stream_sendable(&h, total - sent)) > 0) {
		ch_stream_data_append(&wire, &h, data, n);
		sent += n;
	}
	ok(sent == CH_WINDOW_INITIAL, "a sender stops after exactly the window");
	ok(ch_stream_sendable(&h, 1) == 0, "no credit left: nothing sendable");
	/* The agent receives it all within its window. */
	ch_decoder_init(&d);
	ch_frame_append(&back, CH_HELLO, 0, "{}", 2);
	buf_append(&back, wire.data, wire.len);
	sn.stop_after = 0;
	ch_decoder_feed(&d, back.data, back.len, collect, &sn);
	ok(sn.n == 1 + (int)(CH_WINDOW_INITIAL / CH_MAX_PAYLOAD) && sn.type[1] == CH_DATA &&
	       sn.len[1] == CH_MAX_PAYLOAD,
	   "DATA frames are at most CH_MAX_PAYLOAD");
	over = ch_stream_received(&a, CH_WINDOW_INITIAL) != 0;
	ok(!over, "the receiver takes the whole window");
	ok(ch_stream_received(&a, 1) == -1, "one byte past the window is a violation");
	/* Paused: consuming grants nothing. */
	buf_reset(&back);
	ch_stream_pause(&a);
	ch_stream_consumed(&a, &back, CH_WINDOW_INITIAL);
	ok(back.len == 0, "a paused receiver holds its WINDOW back");
	ch_stream_resume(&a, &back);
	ok(back.len == CH_HEADER_LEN + 4 && (uint8_t)back.data[3] == CH_WINDOW,
	   "resuming sends one WINDOW for everything consumed");
	f.type = CH_WINDOW;
	f.stream = h.id;
	f.len = 4;
	f.payload = (const uint8_t *)back.data + CH_HEADER_LEN;
	ok(ch_stream_window(&h, &f) == 0 && h.send_credit == CH_WINDOW_INITIAL,
	   "the WINDOW gives the sender its credit back");
	/* Small consumption is batched, but never lets the peer run dry. */
	buf_reset(&back);
	ch_stream_received(&a, 100);
	ch_stream_consumed(&a, &back, 100);
	ok(back.len == 0, "a small consumption waits to be batched");
	ch_stream_received(&a, CH_WINDOW_INITIAL - CH_WINDOW_GRANT);
	ch_stream_consumed(&a, &back, 10);
	ok(back.len == CH_HEADER_LEN + 4, "a window nearly spent is refilled at once");
	/* Malformed and excessive WINDOW frames. */
	f.len = 3;
	ok(ch_stream_window(&h, &f) == -1, "a WINDOW of 3 bytes is malformed");
	memset(win, 0xff, sizeof(win));
	f.len = 4;
	f.payload = win;
	ok(ch_stream_window(&h, &f) == -1, "a WINDOW beyond CH_WINDOW_MAX is refused");
	(void)stalled;
	ch_decoder_release(&d);
	buf_release(&wire);
	buf_release(&back);
}

static void test_stream_independent(void)
{
	struct ch_session s;
	struct ch_stream busy, other;
	struct buf out = BUF_INIT;
	static char data[CH_MAX_PAYLOAD];

	ch_session_init(&s, 1);
	ch_stream_add(&s, &busy, 0, NULL);
	ch_stream_add(&s, &other, 0, NULL);
	while (ch_stream_sendable(&busy, sizeof(data)))
		ch_stream_data_append(&out, &busy, data, ch_stream_sendable(&busy, sizeof(data)));
	ok(ch_stream_sendable(&other, 10) == 10,
	   "a stream out of credit leaves the others' credit alone");
	buf_release(&out);
}

static void test_stream_frames(void)
{
	struct buf b = BUF_INIT;
	struct ch_session s;
	struct ch_stream st;
	struct ch_frame f;
	json_t *j;

	ch_session_init(&s, 0);
	ch_stream_add(&s, &st, 9, NULL);
	ch_stream_tagged_append(&b, &st, 2, "err", 3);
	ok(b.len == CH_HEADER_LEN + 4 && b.data[CH_HEADER_LEN] == 2 &&
	       !memcmp(b.data + CH_HEADER_LEN + 1, "err", 3) && (uint8_t)b.data[11] == 4,
	   "a tagged DATA frame is the tag then the bytes");
	ok(st.send_credit == CH_WINDOW_INITIAL - 4, "the tag counts against the credit");
	buf_reset(&b);
	ch_close_error_append(&b, 9, "no");
	f.type = CH_CLOSE;
	f.stream = 9;
	f.len = (uint32_t)(b.len - CH_HEADER_LEN);
	f.payload = (const uint8_t *)b.data + CH_HEADER_LEN;
	j = ch_close_parse(&f);
	ok(j && !strcmp(json_string_value(json_object_get(j, "error")), "no"),
	   "CLOSE carries {\"error\":…}");
	json_decref(j);
	f.len = 0;
	j = ch_close_parse(&f);
	ok(j && json_object_size(j) == 0, "an empty CLOSE is {}");
	json_decref(j);
	f.payload = (const uint8_t *)"[]";
	f.len = 2;
	ok(ch_close_parse(&f) == NULL, "a CLOSE that is not an object is refused");
	buf_release(&b);
}

/* Random bytes, truncated and oversized frames, wrong versions: the
 * decoder neither crashes nor delivers a frame longer than the limit,
 * and a HELLO afterwards still starts a session. */
static int check_frame(const struct ch_frame *f, void *arg)
{
	int *bad = arg;

	if (f->len > CH_MAX_PAYLOAD)
		*bad = 1;
	return 0;
}

static void test_garbage(void)
{
	struct ch_decoder d;
	struct buf b = BUF_INIT;
	struct seen s = {0};
	unsigned seed = 12345;
	int bad = 0, i, j;
	uint8_t junk[4096];

	ch_decoder_init(&d);
	for (i = 0; i < 2000; i++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(junk));

		for (j = 0; j < (int)n; j++)
			junk[j] = (uint8_t)rand_r(&seed);
		/* Now and then a plausible header, to reach the deeper paths. */
		if (n >= CH_HEADER_LEN && i % 3 == 0) {
			junk[0] = 'B';
			junk[1] = 'U';
			junk[2] = i % 9 ? CH_VERSION : 7;
			junk[3] = (uint8_t)(i % 7);
		}
		if (ch_decoder_feed(&d, junk, n, check_frame, &bad) < 0)
			ch_decoder_reset(&d);
	}
	ok(!bad, "random input never yields a frame over the limit");
	ch_decoder_reset(&d);
	ch_frame_append(&b, CH_HELLO, 0, "{}", 2);
	ch_frame_append(&b, CH_MSG, 0, "{\"ok\":1}", 8);
	ch_decoder_feed(&d, b.data, b.len, collect, &s);
	ok(s.n == 2 && s.type[1] == CH_MSG, "a HELLO after garbage starts a clean session");
	ch_decoder_release(&d);
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
	test_stream_ids();
	test_stream_limit();
	test_stream_flow();
	test_stream_independent();
	test_stream_frames();
	test_garbage();
	return tap_done();
}
