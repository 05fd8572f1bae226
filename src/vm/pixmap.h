/* Pixels of a screen in memory: QEMU's PPM screendump read strictly, an
 * area-average (box) downscale and a PNG encoder (libpng). Pure functions
 * with no VM, so the screenshot thumbnails can be tested on their own. */
#ifndef BUREAU_PIXMAP_H
#define BUREAU_PIXMAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PIXMAP_DIM_MAX 16384 /* widest and tallest image accepted */
#define PIXMAP_PNG_LEVEL 4   /* zlib level: thumbnails are fetched often */

/* 8-bit RGB, rows top to bottom, no padding: width * height * 3 bytes. */
struct pixmap {
	int width;
	int height;
	uint8_t *rgb;
};

/* Reads a binary PPM as QEMU writes it: "P6", width, height, maxval 255,
 * each separated by whitespace (no comments), one whitespace byte, then
 * exactly width * height * 3 bytes. Dimensions are 1..PIXMAP_DIM_MAX.
 * On success out->rgb points into buf (the caller keeps owning buf).
 * Returns 0, or -1 with err (502 bad_screendump). */
int pixmap_ppm_parse(const uint8_t *buf, size_t len, struct pixmap *out, struct err *err);

/* The size of a width x height image fitted to at most max_width wide,
 * aspect ratio kept (height rounded, at least 1); never larger than it
 * is. max_width <= 0 keeps the size. */
void pixmap_fit(int width, int height, int max_width, int *out_width, int *out_height);

/* Averages src down into dst: every pixel of dst is the mean of the area
 * of src it covers, partial source pixels weighted by their share, rounded
 * to nearest. The caller sets dst->width and dst->height (1..src's) and
 * provides dst->rgb of dst->width * dst->height * 3 bytes. */
void pixmap_downscale(const struct pixmap *src, struct pixmap *dst);

/* Encodes pm as an 8-bit RGB PNG at zlib level (0..9). Returns a buffer
 * the caller frees and its length in *len, or NULL with err. */
uint8_t *pixmap_png_encode(const struct pixmap *pm, int level, size_t *len, struct err *err);

#endif
