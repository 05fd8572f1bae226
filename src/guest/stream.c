/* Stream bookkeeping shared by bureaud and bureau-agent: ids, credit and
 * the WINDOW/CLOSE frames (src/guest/channel.h). Each side keeps its own
 * objects and does its own I/O; this file only counts, so the rules of the
 * protocol live in one place. */
#include "guest/channel.h"

#include <string.h>

void ch_session_init(struct ch_session *s, int host)
{
	memset(s, 0, sizeof(*s));
	s->host = host;
	s->next_id = host ? 1 : 2;
}

int ch_stream_id_is_peers(const struct ch_session *s, uint32_t id)
{
	/* The host opens odd ids, the agent even ones; 0 is the control stream. */
	return id != 0 && (id & 1) == (s->host ? 0u : 1u);
}

struct ch_stream *ch_stream_find(const struct ch_session *s, uint32_t id)
{
	struct ch_stream *st;

	for (st = s->streams; st; st = st->next)
		if (st->id == id)
			return st;
	return NULL;
}

struct ch_stream *ch_stream_add(struct ch_session *s, struct ch_stream *st, uint32_t id,
				void *owner)
{
	if (s->count >= CH_MAX_STREAMS)
		return NULL;
	if (id == 0) {
		/* Ours: the next id of our parity that is free (after a wrap). */
		do {
			id = s->next_id;
			s->next_id += 2;
			if (s->next_id < 2)
				s->next_id = s->host ? 1 : 2;
		} while (ch_stream_find(s, id));
	} else if (!ch_stream_id_is_peers(s, id) || ch_stream_find(s, id)) {
		return NULL;
	}
	memset(st, 0, sizeof(*st));
	st->id = id;
	st->send_credit = CH_WINDOW_INITIAL;
	st->recv_window = CH_WINDOW_INITIAL;
	st->owner = owner;
	st->next = s->streams;
	s->streams = st;
	s->count++;
	return st;
}

void ch_stream_remove(struct ch_session *s, struct ch_stream *st)
{
	struct ch_stream **p;

	for (p = &s->streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			st->next = NULL;
			s->count--;
			return;
		}
}

size_t ch_stream_sendable(const struct ch_stream *st, size_t want)
{
	size_t n = want < st->send_credit ? want : st->send_credit;

	return n < CH_MAX_PAYLOAD ? n : CH_MAX_PAYLOAD;
}

void ch_stream_data_append(struct buf *out, struct ch_stream *st, const void *data, size_t len)
{
	st->send_credit -= (uint32_t)len;
	ch_frame_append(out, CH_DATA, st->id, data, len);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void ch_stream_tagged_append(struct buf *out, struct ch_stream *st, uint8_t tag, const void *data,
			     size_t len)
{
	/* One frame for tag + data, without copying data twice. */
	uint8_t h[CH_HEADER_LEN + 1] = {'B', 'U', CH_VERSION, CH_DATA};

	put_u32(h + 4, st->id);
	put_u32(h + 8, (uint32_t)(len + 1));
	h[CH_HEADER_LEN] = tag;
	buf_append(out, h, sizeof(h));
	buf_append(out, data, len);
	st->send_credit -= (uint32_t)(len + 1);
}

int ch_stream_received(struct ch_stream *st, size_t len)
{
	if (len > st->recv_window)
		return -1;
	st->recv_window -= (uint32_t)len;
	return 0;
}

int ch_stream_window(struct ch_stream *st, const struct ch_frame *f)
{
	uint32_t n;

	if (f->len != 4)
		return -1;
	n = (uint32_t)f->payload[0] << 24 | (uint32_t)f->payload[1] << 16 |
	    (uint32_t)f->payload[2] << 8 | f->payload[3];
	if (n > CH_WINDOW_MAX || st->send_credit > CH_WINDOW_MAX - n)
		return -1;
	st->send_credit += n;
	return 0;
}

static void window_flush(struct ch_stream *st, struct buf *out)
{
	uint8_t p[4];

	if (!st->consumed)
		return;
	put_u32(p, st->consumed);
	ch_frame_append(out, CH_WINDOW, st->id, p, sizeof(p));
	st->recv_window += st->consumed;
	st->consumed = 0;
}

void ch_stream_consumed(struct ch_stream *st, struct buf *out, size_t n)
{
	st->consumed += (uint32_t)n;
	/* Batched so a stream of small writes does not cost a frame each, but
	 * always before the peer would run dry. */
	if (!st->paused && (st->consumed >= CH_WINDOW_GRANT || st->recv_window < CH_WINDOW_GRANT))
		window_flush(st, out);
}

void ch_stream_pause(struct ch_stream *st)
{
	st->paused = 1;
}

void ch_stream_resume(struct ch_stream *st, struct buf *out)
{
	st->paused = 0;
	window_flush(st, out);
}

void ch_close_append(struct buf *out, uint32_t stream, const json_t *result)
{
	json_t *empty = result ? NULL : json_object();

	if (ch_json_append(out, CH_CLOSE, stream, result ? result : empty))
		ch_frame_append(out, CH_CLOSE, stream, "{}", 2);
	json_decref(empty);
}

void ch_close_error_append(struct buf *out, uint32_t stream, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);

	ch_close_append(out, stream, j);
	json_decref(j);
}

json_t *ch_close_parse(const struct ch_frame *f)
{
	if (f->len == 0)
		return json_object();
	return ch_json_parse(f);
}
