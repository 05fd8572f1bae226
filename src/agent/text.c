#include "agent/agent.h"
#include "common/buf.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void text_utf8_sanitize(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start = 0, n;

	buf_reserve(out, len);
	while (i < len) {
		n = utf8_seq(p + i, len - i);
		if (n) {
			i += n;
			continue;
		}
		buf_append(out, s + start, i - start);
		buf_append(out, "\xEF\xBF\xBD", 3);
		i++;
		start = i;
	}
	buf_append(out, s + start, i - start);
}

size_t text_utf8_prefix(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len <= max)
		return len;
	i = max;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}
