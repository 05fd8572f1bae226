/* Text helpers: URL escaping, aligned tables, JSON values as cells. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/xalloc.h"

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

void cli_url_escape(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	/* "." and ".." would be read as dot segments: escape them whole. */
	int dots = s[0] != '\0' && strspn(s, ".") == strlen(s);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) && !dots) {
			buf_append(out, p, 1);
		} else {
			char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			buf_append(out, enc, 3);
		}
	}
}

size_t cli_text_width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			w++;
	return w;
}

/* A copy fit for a terminal: control characters (C0, DEL) become '?'. */
static char *cell_copy(const char *s)
{
	char *c = xstrdup(s ? s : "-");

	for (unsigned char *p = (unsigned char *)c; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

void table_init(struct table *t, int ncols, const char *const headers[])
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->cap = 8;
	t->cells = xcalloc((size_t)t->cap * (size_t)ncols, sizeof(char *));
	for (int i = 0; i < ncols; i++)
		t->cells[i] = cell_copy(headers[i]);
}

void table_add(struct table *t, const char *const cells[])
{
	int row = t->nrows + 1;

	if (row + 1 > t->cap) {
		t->cap *= 2;
		t->cells = xrealloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	for (int i = 0; i < t->ncols; i++)
		t->cells[row * t->ncols + i] = cell_copy(cells[i]);
	t->nrows++;
}

void table_render(const struct table *t, struct buf *out)
{
	size_t *width = xcalloc((size_t)t->ncols, sizeof(size_t));

	for (int r = 0; r <= t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			size_t w = cli_text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (int r = 0; r <= t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			buf_puts(out, cell);
			if (c + 1 < t->ncols) {
				size_t pad = width[c] - cli_text_width(cell) + 2;
				for (size_t i = 0; i < pad; i++)
					buf_append(out, " ", 1);
			}
		}
		buf_append(out, "\n", 1);
	}
	free(width);
}

void table_release(struct table *t)
{
	for (int i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

char *cli_cell(json_t *v)
{
	char num[64];

	if (!v || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return xstrdup(num);
	}
	if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.2f", json_real_value(v));
		return xstrdup(num);
	}
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "yes" : "no");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

char *cli_size_cell(json_t *v)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
	double n;
	int u = 0;

	if (!json_is_number(v))
		return xstrdup("-");
	n = json_number_value(v);
	while (n >= 1024 && u < 4) {
		n /= 1024;
		u++;
	}
	return u ? xasprintf("%.1f %s", n, units[u]) : xasprintf("%.0f B", n);
}
