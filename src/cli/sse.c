/* A text/event-stream parser after the WHATWG rules, fed in chunks as they
 * arrive: an event is dispatched at a blank line when it has data. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define SSE_MAX_LINE (1024 * 1024)

void sse_init(struct sse_parser *p, sse_event_fn fn, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->fn = fn;
	p->arg = arg;
}

static void dispatch(struct sse_parser *p)
{
	if (p->has_data) {
		const char *data = p->data.data ? p->data.data : "";
		size_t n = p->data.len;

		/* the data buffer ends with one '\n' too many */
		if (n > 0 && data[n - 1] == '\n')
			p->data.data[n - 1] = '\0';
		p->fn(p->arg, p->last_id, p->event[0] ? p->event : "message", data);
	}
	buf_reset(&p->data);
	p->has_data = 0;
	p->event[0] = '\0';
}

static void field(struct sse_parser *p, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len), *value = "";
	size_t nlen = colon ? (size_t)(colon - line) : len, vlen = 0;

	if (len == 0) {
		dispatch(p);
		return;
	}
	if (colon == line)
		return; /* a comment, often a keep-alive */
	if (colon) {
		value = colon + 1;
		vlen = len - nlen - 1;
		if (vlen > 0 && *value == ' ') {
			value++;
			vlen--;
		}
	}
	if (nlen == 4 && memcmp(line, "data", 4) == 0) {
		buf_append(&p->data, value, vlen);
		buf_append(&p->data, "\n", 1);
		p->has_data = 1;
	} else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
		snprintf(p->event, sizeof(p->event), "%.*s", (int)vlen, value);
	} else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
		if (!memchr(value, '\0', vlen))
			snprintf(p->last_id, sizeof(p->last_id), "%.*s", (int)vlen, value);
	}
}

void sse_feed(struct sse_parser *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (p->cr && c == '\n') {
			p->cr = 0;
			continue;
		}
		p->cr = c == '\r';
		if (c == '\r' || c == '\n') {
			field(p, p->line.data ? p->line.data : "", p->line.len);
			buf_reset(&p->line);
		} else if (p->line.len < SSE_MAX_LINE) {
			buf_append(&p->line, &c, 1);
		}
	}
}

void sse_release(struct sse_parser *p)
{
	buf_release(&p->line);
	buf_release(&p->data);
}
