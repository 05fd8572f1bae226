/* The RFB client stream, message by message (RFC 6143 and the extensions
 * noVNC and QEMU use). Each message is a fixed head, sometimes longer
 * depending on its first bytes (QEMU's), then a payload whose length the
 * head says. Heads are collected (at most RFB_MAX_HEAD bytes); payloads
 * stream through or are skipped without being buffered. */
#include "api/rfb.h"

#include <string.h>

#define RFB_VERSION_LEN 12 /* "RFB 003.008\n" */
#define RFB_SEC_NONE 1
#define RFB_SEC_VNC_AUTH 2
#define RFB_VNC_AUTH_LEN 16

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* QEMU's client message 255: subtype 0 is an extended key event, subtype
 * 1 audio control (operation 2 carries a format). */
static size_t qemu_head(const uint8_t *h, size_t have)
{
	if (have < 2)
		return 2;
	if (h[1] == 0)
		return 12;
	if (h[1] != 1)
		return 0;
	if (have < 4)
		return 4;
	switch (be16(h + 2)) {
	case 0:
	case 1:
		return 4;
	case 2:
		return 10;
	}
	return 0;
}

static int qemu_input(const uint8_t *h)
{
	return h[1] == 0;
}

static uint64_t encodings_payload(const uint8_t *h)
{
	return 4 * (uint64_t)be16(h + 2);
}

/* The length is signed: negative announces an extended clipboard message
 * of that many bytes. */
static uint64_t cut_text_payload(const uint8_t *h)
{
	int32_t len = (int32_t)be32(h + 4);

	return len < 0 ? (uint64_t)(-(int64_t)len) : (uint64_t)len;
}

static uint64_t fence_payload(const uint8_t *h)
{
	return h[8];
}

static uint64_t desktop_size_payload(const uint8_t *h)
{
	return 16 * (uint64_t)h[6];
}

struct rfb_msg {
	uint8_t type;
	size_t head;					  /* fixed head, type included */
	size_t (*head_fn)(const uint8_t *h, size_t have); /* or a head that depends */
	uint64_t (*payload)(const uint8_t *h);
	int input;			   /* acts on the desktop */
	int (*input_fn)(const uint8_t *h); /* or depends on the head */
};

static const struct rfb_msg rfb_msgs[] = {
    {0, 20, NULL, NULL, 0, NULL},		   /* SetPixelFormat */
    {2, 4, NULL, encodings_payload, 0, NULL},	   /* SetEncodings */
    {3, 10, NULL, NULL, 0, NULL},		   /* FramebufferUpdateRequest */
    {4, 8, NULL, NULL, 1, NULL},		   /* KeyEvent */
    {5, 6, NULL, NULL, 1, NULL},		   /* PointerEvent */
    {6, 8, NULL, cut_text_payload, 1, NULL},	   /* ClientCutText */
    {150, 10, NULL, NULL, 0, NULL},		   /* EnableContinuousUpdates */
    {248, 9, NULL, fence_payload, 0, NULL},	   /* ClientFence */
    {250, 4, NULL, NULL, 1, NULL},		   /* xvp: shutdown, reboot */
    {251, 8, NULL, desktop_size_payload, 1, NULL}, /* SetDesktopSize */
    {255, 0, qemu_head, NULL, 0, qemu_input},	   /* QEMU */
};

static const struct rfb_msg *rfb_msg_find(uint8_t type)
{
	for (size_t i = 0; i < sizeof(rfb_msgs) / sizeof(rfb_msgs[0]); i++)
		if (rfb_msgs[i].type == type)
			return &rfb_msgs[i];
	return NULL;
}

void rfb_filter_init(struct rfb_filter *f, int view_only)
{
	memset(f, 0, sizeof(*f));
	f->view_only = view_only;
}

/* Collects bytes into head until it holds want; returns how many of in
 * were taken. */
static size_t head_collect(struct rfb_filter *f, const uint8_t *in, size_t n, size_t want)
{
	size_t take = want - f->have;

	if (take > n)
		take = n;
	memcpy(f->head + f->have, in, take);
	f->have += take;
	return take;
}

/* The handshake, byte-exact; returns bytes consumed or -1. */
static long handshake_feed(struct rfb_filter *f, const uint8_t *in, size_t n, struct buf *out,
			   struct err *err)
{
	size_t used;

	switch (f->stage) {
	case RFB_VERSION:
		used = head_collect(f, in, n, RFB_VERSION_LEN);
		if (f->have < RFB_VERSION_LEN)
			return (long)used;
		if (memcmp(f->head, "RFB 003.", 8))
			return err_set(err, 400, "rfb", "not an RFB protocol version");
		buf_append(out, f->head, RFB_VERSION_LEN);
		/* 3.3: the server picks the security type; ours offers None. */
		f->stage = !memcmp(f->head + 8, "003", 3) ? RFB_INIT : RFB_SECURITY;
		f->have = 0;
		return (long)used;
	case RFB_SECURITY:
		if (in[0] != RFB_SEC_NONE && in[0] != RFB_SEC_VNC_AUTH)
			return err_set(err, 400, "rfb", "unsupported RFB security type %u", in[0]);
		buf_append(out, in, 1);
		f->stage = in[0] == RFB_SEC_VNC_AUTH ? RFB_AUTH : RFB_INIT;
		f->auth_left = RFB_VNC_AUTH_LEN;
		return 1;
	case RFB_AUTH:
		used = n < f->auth_left ? n : f->auth_left;
		buf_append(out, in, used);
		f->auth_left -= used;
		if (!f->auth_left)
			f->stage = RFB_INIT;
		return (long)used;
	default: {
		/* Shared, always: an exclusive client would disconnect the others. */
		uint8_t shared = 1;

		buf_append(out, &shared, 1);
		f->stage = RFB_MESSAGES;
		return 1;
	}
	}
}

/* Collects the current message's head; returns bytes consumed or -1, and
 * sets *done once the head is whole (pass and skip are then decided). */
static long message_head_feed(struct rfb_filter *f, const uint8_t *in, size_t n, int *done,
			      struct err *err)
{
	size_t used = 0;

	*done = 0;
	for (;;) {
		const struct rfb_msg *m = f->have ? rfb_msg_find(f->head[0]) : NULL;
		size_t want = 1;

		if (f->have && !m)
			return err_set(err, 400, "rfb", "unsupported RFB client message %u",
				       f->head[0]);
		if (m)
			want = m->head_fn ? m->head_fn(f->head, f->have) : m->head;
		if (!want || want > RFB_MAX_HEAD)
			return err_set(err, 400, "rfb", "malformed RFB client message %u",
				       f->head[0]);
		if (f->have >= want) {
			int input = m->input_fn ? m->input_fn(f->head) : m->input;

			f->pass = !(input && f->view_only);
			f->skip = m->payload ? m->payload(f->head) : 0;
			*done = 1;
			return (long)used;
		}
		if (used == n)
			return (long)used;
		used += head_collect(f, in + used, n - used, want);
	}
}

/* Payload bytes pass or are skipped as they come. */
static size_t payload_feed(struct rfb_filter *f, const uint8_t *in, size_t n, struct buf *out)
{
	size_t used = n < f->skip ? n : (size_t)f->skip;

	if (f->pass)
		buf_append(out, in, used);
	f->skip -= used;
	return used;
}

int rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t n, struct buf *out,
		    struct err *err)
{
	while (n) {
		long used;
		int done;

		if (f->stage != RFB_MESSAGES) {
			used = handshake_feed(f, in, n, out, err);
		} else if (f->skip) {
			used = (long)payload_feed(f, in, n, out);
		} else {
			used = message_head_feed(f, in, n, &done, err);
			if (used >= 0 && done) {
				if (f->pass)
					buf_append(out, f->head, f->have);
				if (f->pass)
					f->passed++;
				else
					f->dropped++;
				f->have = 0;
			}
		}
		if (used < 0)
			return -1;
		in += used;
		n -= (size_t)used;
	}
	return 0;
}
