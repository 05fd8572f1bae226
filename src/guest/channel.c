#include "guest/channel.h"

#include <stdlib.h>
#include <string.h>

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void ch_decoder_init(struct ch_decoder *d)
{
	memset(d, 0, sizeof(*d));
}

void ch_decoder_reset(struct ch_decoder *d)
{
	buf_reset(&d->in);
	d->synced = 0;
}

void ch_decoder_release(struct ch_decoder *d)
{
	buf_release(&d->in);
	d->synced = 0;
}

static int is_header(const uint8_t *p)
{
	return p[0] == 'B' && p[1] == 'U' && p[2] == CH_VERSION;
}

/* Drops bytes until a HELLO header starts the buffer. */
static void resync(struct ch_decoder *d)
{
	const uint8_t *p = (const uint8_t *)d->in.data;
	size_t i;

	for (i = 0; i + 4 <= d->in.len; i++)
		if (is_header(p + i) && p[i + 3] == CH_HELLO)
			break;
	if (i + 4 > d->in.len)
		i = d->in.len > 3 ? d->in.len - 3 : 0;
	buf_consume(&d->in, i);
	if (d->in.len >= 4 && is_header(p) && p[3] == CH_HELLO)
		d->synced = 1;
}

int ch_decoder_feed(struct ch_decoder *d, const void *data, size_t len, ch_frame_cb cb, void *arg)
{
	size_t off = 0;
	int stop = 0;

	buf_append(&d->in, data, len);
	if (!d->synced)
		resync(d);
	while (d->synced && !stop && d->in.len - off >= CH_HEADER_LEN) {
		const uint8_t *p = (const uint8_t *)d->in.data + off;
		struct ch_frame f;

		if (!is_header(p)) {
			/* Drop the bad byte too, so the next resync moves on. */
			buf_consume(&d->in, off + 1);
			d->synced = 0;
			return -1;
		}
		f.type = p[3];
		f.stream = get_u32(p + 4);
		f.len = get_u32(p + 8);
		if (f.len > CH_MAX_PAYLOAD) {
			buf_consume(&d->in, off + 1);
			d->synced = 0;
			return -1;
		}
		if (d->in.len - off - CH_HEADER_LEN < f.len)
			break;
		f.payload = p + CH_HEADER_LEN;
		off += CH_HEADER_LEN + f.len;
		stop = cb(&f, arg);
	}
	buf_consume(&d->in, off);
	return 0;
}

void ch_frame_append(struct buf *out, enum ch_type type, uint32_t stream, const void *payload,
		     size_t len)
{
	uint8_t h[CH_HEADER_LEN] = {'B', 'U', CH_VERSION, (uint8_t)type};

	put_u32(h + 4, stream);
	put_u32(h + 8, (uint32_t)len);
	buf_append(out, h, sizeof(h));
	buf_append(out, payload, len);
}

int ch_json_append(struct buf *out, enum ch_type type, uint32_t stream, const json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	size_t len;

	if (!s)
		return -1;
	len = strlen(s);
	if (len > CH_MAX_PAYLOAD) {
		free(s);
		return -1;
	}
	ch_frame_append(out, type, stream, s, len);
	free(s);
	return 0;
}

json_t *ch_json_parse(const struct ch_frame *f)
{
	json_t *j = json_loadb((const char *)f->payload, f->len, 0, NULL);

	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}
