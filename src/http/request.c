/* Read-only helpers over a parsed request: headers, query parameters,
 * cookies, and the reason phrases of status codes. */
#include "http/http.h"
#include "http/http_int.h"

#include <string.h>
#include <strings.h>

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http__pct_decode(const char *src, size_t len, char *out, size_t n, int plus_space)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)src[i];

		if (c == '%') {
			int hi = i + 2 < len ? hex_value(src[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(src[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		/* An encoded NUL would cut C strings short behind the checks that
		 * looked at the whole value (path traversal, ids). */
		if (c == 0 || o + 1 >= n)
			return -1;
		out[o++] = (char)c;
	}
	if (o >= n)
		return -1;
	out[o] = '\0';
	return (int)o;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++)
		if (!strcasecmp(req->headers[i].name, name))
			return req->headers[i].value;
	return NULL;
}

/* Walks "k=v&k2=v2" and decodes the value of the first pair whose decoded
 * key is key. */
int http_req_query(const struct http_req *req, const char *key, char *out, size_t n)
{
	const char *p = req->query;
	char name[256];

	while (p && *p) {
		const char *end = p + strcspn(p, "&");
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *kend = eq ? eq : end;

		if (http__pct_decode(p, (size_t)(kend - p), name, sizeof(name), 1) >= 0 &&
		    !strcmp(name, key)) {
			if (!eq)
				return n ? (out[0] = '\0', 0) : -1;
			return http__pct_decode(eq + 1, (size_t)(end - eq - 1), out, n, 1);
		}
		p = *end ? end + 1 : end;
	}
	return -1;
}

/* Finds name in one Cookie header value ("a=1; b=2"). */
static int cookie_find(const char *s, const char *name, char *out, size_t n)
{
	size_t nlen = strlen(name);

	while (*s) {
		const char *end, *v;
		size_t vlen;

		s += strspn(s, " \t;");
		end = s + strcspn(s, ";");
		if ((size_t)(end - s) > nlen && !strncmp(s, name, nlen) && s[nlen] == '=') {
			v = s + nlen + 1;
			vlen = (size_t)(end - v);
			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
				v++;
				vlen -= 2;
			}
			if (vlen + 1 > n)
				return -1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return (int)vlen;
		}
		s = end;
	}
	return -1;
}

int http_req_cookie(const struct http_req *req, const char *name, char *out, size_t n)
{
	size_t i;
	int r;

	for (i = 0; i < req->nheaders; i++) {
		if (strcmp(req->headers[i].name, "cookie"))
			continue;
		r = cookie_find(req->headers[i].value, name, out, n);
		if (r >= 0)
			return r;
	}
	return -1;
}

static const struct {
	int status;
	const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {507, "Insufficient Storage"},
};

const char *http_status_text(int status)
{
	size_t i;

	for (i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++)
		if (status_texts[i].status == status)
			return status_texts[i].text;
	return "Unknown";
}
