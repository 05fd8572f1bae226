/* Screen pixels: PPM in, box-filter downscale, PNG out (see pixmap.h). */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xalloc.h"
#include "vm/pixmap.h"

#define PPM_DIGITS_MAX 9 /* a header number longer than this is refused */

static int ppm__space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* At least one whitespace byte, then a decimal number, at *pos. */
static int ppm__number(const uint8_t *buf, size_t len, size_t *pos, long *out)
{
	size_t p = *pos, start;
	long v = 0;

	if (p >= len || !ppm__space(buf[p]))
		return -1;
	while (p < len && ppm__space(buf[p]))
		p++;
	for (start = p; p < len && buf[p] >= '0' && buf[p] <= '9'; p++) {
		if (p - start >= PPM_DIGITS_MAX)
			return -1;
		v = v * 10 + (buf[p] - '0');
	}
	if (p == start)
		return -1;
	*out = v;
	*pos = p;
	return 0;
}

int pixmap_ppm_parse(const uint8_t *buf, size_t len, struct pixmap *out, struct err *err)
{
	size_t pos = 2, body;
	long w, h, maxval;

	if (len < 2 || memcmp(buf, "P6", 2))
		return err_set(err, 502, "bad_screendump", "screendump is not a binary PPM (P6)");
	if (ppm__number(buf, len, &pos, &w) || ppm__number(buf, len, &pos, &h) ||
	    ppm__number(buf, len, &pos, &maxval) || pos >= len || !ppm__space(buf[pos]))
		return err_set(err, 502, "bad_screendump", "screendump has a malformed PPM header");
	pos++;
	if (w < 1 || h < 1 || w > PIXMAP_DIM_MAX || h > PIXMAP_DIM_MAX)
		return err_set(err, 502, "bad_screendump", "screendump is %ldx%ld (1..%d each)", w,
			       h, PIXMAP_DIM_MAX);
	if (maxval != 255)
		return err_set(err, 502, "bad_screendump", "screendump has maxval %ld, not 255",
			       maxval);
	body = (size_t)w * (size_t)h * 3;
	if (len - pos != body)
		return err_set(err, 502, "bad_screendump",
			       "screendump has %zu bytes of pixels; %ldx%ld needs %zu", len - pos,
			       w, h, body);
	out->width = (int)w;
	out->height = (int)h;
	out->rgb = (uint8_t *)buf + pos;
	return 0;
}

void pixmap_fit(int width, int height, int max_width, int *out_width, int *out_height)
{
	long long h;

	if (max_width <= 0 || max_width >= width) {
		*out_width = width;
		*out_height = height;
		return;
	}
	h = ((long long)height * max_width * 2 + width) / (2LL * width);
	*out_width = max_width;
	*out_height = h < 1 ? 1 : (int)h;
}

/* The share of source cell i (each n units long) inside the destination
 * span [lo, hi) of a line of m units per destination cell. */
static uint32_t overlap(int64_t i, int64_t n, int64_t lo, int64_t hi)
{
	int64_t a = i * n > lo ? i * n : lo;
	int64_t b = (i + 1) * n < hi ? (i + 1) * n : hi;

	return b > a ? (uint32_t)(b - a) : 0;
}

/* One source row averaged across: out[x*3+c] holds the sum of the source
 * pixels under destination column x times their overlap (in 1/tw of a
 * pixel), so each column's weights add up to sw. */
static void downscale_row(const uint8_t *in, int sw, int tw, uint32_t *out)
{
	for (int64_t x = 0; x < tw; x++) {
		int64_t lo = x * sw, hi = (x + 1) * sw;
		uint32_t r = 0, g = 0, b = 0;

		for (int64_t i = lo / tw; i * tw < hi; i++) {
			uint32_t wgt = overlap(i, tw, lo, hi);
			const uint8_t *p = in + i * 3;

			r += p[0] * wgt;
			g += p[1] * wgt;
			b += p[2] * wgt;
		}
		out[x * 3] = r;
		out[x * 3 + 1] = g;
		out[x * 3 + 2] = b;
	}
}

void pixmap_downscale(const struct pixmap *src, struct pixmap *dst)
{
	int sw = src->width, sh = src->height, tw = dst->width, th = dst->height;
	size_t stride = (size_t)sw * 3, n = (size_t)tw * 3;
	uint32_t *row = xmalloc(n * sizeof(*row));
	uint64_t *acc = xmalloc(n * sizeof(*acc));
	uint64_t total = (uint64_t)sw * (uint64_t)sh;

	for (int64_t y = 0; y < th; y++) {
		int64_t lo = y * sh, hi = (y + 1) * sh;

		memset(acc, 0, n * sizeof(*acc));
		for (int64_t j = lo / th; j * th < hi; j++) {
			uint32_t wgt = overlap(j, th, lo, hi);

			downscale_row(src->rgb + (size_t)j * stride, sw, tw, row);
			for (size_t k = 0; k < n; k++)
				acc[k] += (uint64_t)row[k] * wgt;
		}
		for (size_t k = 0; k < n; k++)
			dst->rgb[(size_t)y * n + k] = (uint8_t)((acc[k] + total / 2) / total);
	}
	free(row);
	free(acc);
}

/* ---- PNG ---- */

struct png_out {
	struct buf b;
	char msg[160];
};

static void png__write(png_structp png, png_bytep data, size_t n)
{
	struct png_out *o = png_get_io_ptr(png);

	buf_append(&o->b, data, n);
}

static void png__flush(png_structp png)
{
}

static void png__error(png_structp png, png_const_charp msg)
{
	struct png_out *o = png_get_error_ptr(png);

	snprintf(o->msg, sizeof(o->msg), "%s", msg);
	png_longjmp(png, 1);
}

static void png__warning(png_structp png, png_const_charp msg)
{
}

uint8_t *pixmap_png_encode(const struct pixmap *pm, int level, size_t *len, struct err *err)
{
	struct png_out *o = xcalloc(1, sizeof(*o));
	png_structp png;
	png_infop info = NULL;
	uint8_t *data = NULL;

	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, o, png__error, png__warning);
	if (png)
		info = png_create_info_struct(png);
	if (!png || !info) {
		err_set(err, 500, "internal", "encode PNG: libpng could not start");
		goto out;
	}
	if (setjmp(png_jmpbuf(png))) {
		err_set(err, 500, "internal", "encode PNG: %s", o->msg);
		goto out;
	}
	buf_reserve(&o->b, (size_t)pm->width * (size_t)pm->height / 2 + 1024);
	png_set_write_fn(png, o, png__write, png__flush);
	png_set_IHDR(png, info, (png_uint_32)pm->width, (png_uint_32)pm->height, 8,
		     PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, level);
	png_write_info(png, info);
	for (int y = 0; y < pm->height; y++)
		png_write_row(png, pm->rgb + (size_t)y * (size_t)pm->width * 3);
	png_write_end(png, info);
	data = (uint8_t *)buf_detach(&o->b, len);
out:
	png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
	buf_release(&o->b);
	free(o);
	return data;
}
