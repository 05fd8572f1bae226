/* Server-sent events, as the WHATWG spec reads them: lines end with \n,
 * \r\n or \r; "event:" names the event, "data:" lines join with \n, a
 * blank line dispatches, ":" starts a comment. Both LLM formats use it. */
#include "agent/pilot.h"

#include <string.h>

void sse_init(struct sse_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void sse_release(struct sse_parser *p)
{
	buf_release(&p->line);
	buf_release(&p->data);
}

static int sse_dispatch(struct sse_parser *p, sse_event_fn fn, void *arg)
{
	int r = 0;

	if (p->has_data)
		r = fn(*p->event ? p->event : "message", p->data.data ? p->data.data : "",
		       p->data.len, arg);
	buf_reset(&p->data);
	p->has_data = 0;
	p->event[0] = '\0';
	return r;
}

static int sse_line(struct sse_parser *p, sse_event_fn fn, void *arg)
{
	char *l = p->line.data ? p->line.data : "";
	size_t n = p->line.len, flen;
	const char *v;

	if (n == 0)
		return sse_dispatch(p, fn, arg);
	if (l[0] == ':')
		return 0;
	v = memchr(l, ':', n);
	flen = v ? (size_t)(v - l) : n;
	if (v) {
		v++;
		if (v < l + n && *v == ' ')
			v++;
	} else {
		v = l + n;
	}
	if (flen == 5 && !memcmp(l, "event", 5)) {
		size_t vl = (size_t)(l + n - v);
		if (vl >= sizeof(p->event))
			vl = sizeof(p->event) - 1;
		memcpy(p->event, v, vl);
		p->event[vl] = '\0';
	} else if (flen == 4 && !memcmp(l, "data", 4)) {
		if (p->has_data)
			buf_append(&p->data, "\n", 1);
		buf_append(&p->data, v, (size_t)(l + n - v));
		p->has_data = 1;
		if (p->data.len > PILOT_SSE_LINE_MAX)
			return -1;
	}
	/* id:, retry: and unknown fields mean nothing to a one-shot stream. */
	return 0;
}

int sse_feed(struct sse_parser *p, const char *b, size_t n, sse_event_fn fn, void *arg)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		char c = b[i];

		if (p->skip_lf) {
			p->skip_lf = 0;
			if (c == '\n')
				continue;
		}
		if (c == '\r' || c == '\n') {
			p->skip_lf = c == '\r';
			r = sse_line(p, fn, arg);
			buf_reset(&p->line);
			if (r)
				return r;
			continue;
		}
		if (p->line.len >= PILOT_SSE_LINE_MAX)
			return -1;
		buf_append(&p->line, &c, 1);
	}
	return 0;
}
