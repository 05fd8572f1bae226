/* libFuzzer target for the channel's decoder and the stream bookkeeping
 * that reads what the peer sends (src/guest/): the input is cut into
 * feeds of varying sizes, each decoded frame goes through the parsers a
 * real side would use, and a malformed stream resets the decoder as both
 * sides do. Built and run by tests/e2e/test_fuzz_channel.py. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "guest/channel.h"

struct fz {
	struct ch_session sess;
	struct ch_stream streams[8];
	int nstreams;
	struct buf out;
};

static int on_frame(const struct ch_frame *f, void *arg)
{
	struct fz *z = arg;
	struct ch_stream *st;
	json_t *j;

	if (f->len > CH_MAX_PAYLOAD)
		__builtin_trap();
	switch (f->type) {
	case CH_HELLO:
	case CH_MSG:
		json_decref(ch_json_parse(f));
		break;
	case CH_CLOSE:
		json_decref(ch_close_parse(f));
		break;
	case CH_WINDOW:
		if ((st = ch_stream_find(&z->sess, f->stream)))
			ch_stream_window(st, f);
		break;
	case CH_DATA:
		st = ch_stream_find(&z->sess, f->stream);
		if (!st && z->nstreams < 8)
			st = ch_stream_add(&z->sess, &z->streams[z->nstreams], f->stream, NULL);
		if (st && st == &z->streams[z->nstreams])
			z->nstreams++;
		if (st && ch_stream_received(st, f->len) == 0)
			ch_stream_consumed(st, &z->out, f->len);
		break;
	}
	buf_reset(&z->out);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ch_decoder d;
	struct fz z;
	size_t off = 0, n;

	memset(&z, 0, sizeof(z));
	ch_session_init(&z.sess, 0);
	ch_decoder_init(&d);
	/* The first byte picks the feed size, so splits are explored too. */
	n = size ? (size_t)data[0] % 64 + 1 : 1;
	while (off < size) {
		size_t k = size - off < n ? size - off : n;

		if (ch_decoder_feed(&d, data + off, k, on_frame, &z) < 0)
			ch_decoder_reset(&d);
		off += k;
	}
	ch_decoder_release(&d);
	buf_release(&z.out);
	return 0;
}
