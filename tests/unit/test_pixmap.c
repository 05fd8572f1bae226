/* Screenshot thumbnails without a VM: the strict PPM reader, the box
 * downscale and the PNG encoder (checked by decoding with libpng). */
#include "common/buf.h"
#include "common/xalloc.h"
#include "tap.h"
#include "vm/pixmap.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A PPM of header followed by body bytes of pixels (a repeating ramp). */
static uint8_t *ppm_make(const char *header, size_t body, size_t *len)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, header);
	for (size_t i = 0; i < body; i++)
		buf_append(&b, &(uint8_t){(uint8_t)(i * 7)}, 1);
	return (uint8_t *)buf_detach(&b, len);
}

static int ppm_refused(const char *header, size_t body)
{
	struct err err = ERR_INIT;
	struct pixmap pm;
	size_t len;
	uint8_t *p = ppm_make(header, body, &len);
	int r = pixmap_ppm_parse(p, len, &pm, &err);

	free(p);
	return r == -1 && err.status == 502 && !strcmp(err.code, "bad_screendump");
}

static void test_ppm_good(void)
{
	struct err err = ERR_INIT;
	struct pixmap pm = {0};
	size_t len;
	uint8_t *p = ppm_make("P6\n4 2\n255\n", 24, &len);

	ok(pixmap_ppm_parse(p, len, &pm, &err) == 0 && pm.width == 4 && pm.height == 2 &&
	       pm.rgb == p + 11 && pm.rgb[3] == 21,
	   "a PPM as QEMU writes it: 4x2, pixels right after the header");
	free(p);
	p = ppm_make("P6 \t4\r\n\n2 255\t", 24, &len);
	ok(pixmap_ppm_parse(p, len, &pm, &err) == 0 && pm.width == 4 && pm.height == 2 &&
	       pm.rgb == p + 14,
	   "any PPM whitespace between the header's fields");
	free(p);
	p = ppm_make("P6\n16384 1\n255\n", 16384 * 3, &len);
	ok(pixmap_ppm_parse(p, len, &pm, &err) == 0 && pm.width == 16384,
	   "16384 wide is the largest accepted");
	free(p);
	/* the single whitespace ends the header: a pixel that looks like one
	 * is a pixel */
	p = ppm_make("P6\n1 1\n255\n", 0, &len);
	p = xrealloc(p, len + 3);
	memcpy(p + len, "\n\n\n", 3);
	ok(pixmap_ppm_parse(p, len + 3, &pm, &err) == 0 && pm.rgb[0] == '\n',
	   "pixels that are whitespace bytes are pixels");
	free(p);
}

static void test_ppm_bad(void)
{
	struct err err = ERR_INIT;
	struct pixmap pm;

	ok(pixmap_ppm_parse((const uint8_t *)"", 0, &pm, &err) == -1, "an empty file: refused");
	ok(ppm_refused("P3\n4 2\n255\n", 24), "ASCII PPM (P3): refused");
	ok(ppm_refused("P5\n4 2\n255\n", 8), "greyscale PGM (P5): refused");
	ok(ppm_refused("\x89PNG\r\n\x1a\n", 24), "a PNG: refused");
	ok(ppm_refused("P6", 0), "the magic alone: refused");
	ok(ppm_refused("P6\n4 2\n", 24), "no maxval: refused");
	ok(ppm_refused("P6\n4 2\n255", 0), "no whitespace after maxval: refused");
	ok(ppm_refused("P6\n0 2\n255\n", 0), "zero width: refused");
	ok(ppm_refused("P6\n4 0\n255\n", 0), "zero height: refused");
	ok(ppm_refused("P6\n16385 1\n255\n", 16385 * 3), "16385 wide: refused");
	ok(ppm_refused("P6\n1 16385\n255\n", 16385 * 3), "16385 tall: refused");
	ok(ppm_refused("P6\n99999999999999999999 1\n255\n", 3), "a 20-digit width: refused");
	ok(ppm_refused("P6\n-4 2\n255\n", 24), "a negative width: refused");
	ok(ppm_refused("P6\n4 2\n65535\n", 48), "maxval 65535 (16-bit): refused");
	ok(ppm_refused("P6\n4 2\n254\n", 24), "maxval 254: refused");
	ok(ppm_refused("P6\n4 2\n0\n", 24), "maxval 0: refused");
	ok(ppm_refused("P6\n4 2\n255\n", 23), "a body one byte short: refused");
	ok(ppm_refused("P6\n4 2\n255\n", 0), "no body: refused");
	ok(ppm_refused("P6\n4 2\n255\n", 25), "a body one byte long: refused");
	ok(ppm_refused("P6\n4 2\n255\n", 48), "a body twice as long: refused");
	ok(ppm_refused("P6\n4 x\n255\n", 24), "a letter for the height: refused");
	ok(ppm_refused("P64 2 255\n", 24), "no whitespace after the magic: refused");
	ok(ppm_refused("P6\n# by qemu\n4 2\n255\n", 24), "a comment line: refused");
	ok(ppm_refused("P6\n4.0 2\n255\n", 24), "a decimal point: refused");
	ok(ppm_refused("P6\n+4 2\n255\n", 24), "a plus sign: refused");
}

static void test_fit(void)
{
	int w, h;

	pixmap_fit(1281, 801, 320, &w, &h);
	ok(w == 320 && h == 200, "1281x801 fitted to 320 wide: 320x200 (%dx%d)", w, h);
	pixmap_fit(1280, 800, 160, &w, &h);
	ok(w == 160 && h == 100, "1280x800 to 160: 160x100 (%dx%d)", w, h);
	pixmap_fit(1024, 768, 100, &w, &h);
	ok(w == 100 && h == 75, "1024x768 to 100: 100x75 (%dx%d)", w, h);
	pixmap_fit(1000, 3, 16, &w, &h);
	ok(w == 16 && h == 1, "a thin strip keeps at least 1 px of height (%dx%d)", w, h);
	pixmap_fit(1280, 800, 1280, &w, &h);
	ok(w == 1280 && h == 800, "the screen's own width: unchanged (%dx%d)", w, h);
	pixmap_fit(1280, 800, 4096, &w, &h);
	ok(w == 1280 && h == 800, "wider than the screen: never enlarged (%dx%d)", w, h);
	pixmap_fit(1280, 800, 0, &w, &h);
	ok(w == 1280 && h == 800, "no width: unchanged (%dx%d)", w, h);
}

static struct pixmap pixmap_new(int w, int h)
{
	struct pixmap pm = {w, h, xcalloc((size_t)w * (size_t)h, 3)};
	return pm;
}

static void put(struct pixmap *pm, int x, int y, uint8_t r, uint8_t g, uint8_t b)
{
	uint8_t *p = pm->rgb + ((size_t)y * (size_t)pm->width + (size_t)x) * 3;

	p[0] = r;
	p[1] = g;
	p[2] = b;
}

static int is(const struct pixmap *pm, int x, int y, uint8_t r, uint8_t g, uint8_t b)
{
	const uint8_t *p = pm->rgb + ((size_t)y * (size_t)pm->width + (size_t)x) * 3;

	return p[0] == r && p[1] == g && p[2] == b;
}

/* 8x4 made of 4x2 blocks of 2x2 solid colours: halving gives each block's
 * colour back exactly. */
static void test_downscale_blocks(void)
{
	struct pixmap src = pixmap_new(8, 4), dst = pixmap_new(4, 2);
	int good = 1;

	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 8; x++)
			put(&src, x, y, (uint8_t)(x / 2 * 60), (uint8_t)(y / 2 * 200),
			    (uint8_t)(x / 2 + y / 2 * 4));
	pixmap_downscale(&src, &dst);
	for (int y = 0; y < 2; y++)
		for (int x = 0; x < 4; x++)
			good &= is(&dst, x, y, (uint8_t)(x * 60), (uint8_t)(y * 200),
				   (uint8_t)(x + y * 4));
	ok(good, "4x2 blocks of solid colours halve to exactly those colours");
	free(src.rgb);
	free(dst.rgb);
}

static void test_downscale_averages(void)
{
	struct pixmap src = pixmap_new(4, 2), dst = pixmap_new(2, 1);

	/* 2x2 blocks: (0,10,20,30) averages 15; (1,2,2,2) 1.75 → 2;
	 * (0,0,0,1) 0.25 → 0; (0,1,0,1) 0.5 → 1 (rounded half up) */
	put(&src, 0, 0, 0, 1, 0);
	put(&src, 1, 0, 10, 2, 0);
	put(&src, 0, 1, 20, 2, 0);
	put(&src, 1, 1, 30, 2, 1);
	put(&src, 2, 0, 255, 0, 255);
	put(&src, 3, 0, 255, 1, 255);
	put(&src, 2, 1, 254, 0, 255);
	put(&src, 3, 1, 254, 1, 255);
	pixmap_downscale(&src, &dst);
	ok(is(&dst, 0, 0, 15, 2, 0), "each output pixel is its 2x2 block's mean, rounded");
	ok(is(&dst, 1, 0, 255, 1, 255), "means round half up (254.5 → 255, 0.5 → 1)");
	free(src.rgb);
	free(dst.rgb);

	/* 3 → 2 across: 0 covers pixel 0 and half of 1, 1 the other half and 2 */
	src = pixmap_new(3, 1);
	dst = pixmap_new(2, 1);
	put(&src, 0, 0, 30, 0, 255);
	put(&src, 1, 0, 60, 0, 255);
	put(&src, 2, 0, 90, 0, 255);
	pixmap_downscale(&src, &dst);
	ok(is(&dst, 0, 0, 40, 0, 255) && is(&dst, 1, 0, 80, 0, 255),
	   "a partly covered pixel counts by its share (3 → 2: 40, 80)");
	free(src.rgb);
	free(dst.rgb);

	/* a 1-px checkerboard averages to grey */
	src = pixmap_new(64, 64);
	dst = pixmap_new(16, 16);
	for (int y = 0; y < 64; y++)
		for (int x = 0; x < 64; x++)
			if ((x + y) % 2)
				put(&src, x, y, 255, 255, 255);
	pixmap_downscale(&src, &dst);
	int grey = 1;
	for (int i = 0; i < 16 * 16 * 3; i++)
		grey &= dst.rgb[i] == 128;
	ok(grey, "a 1-px black and white checkerboard downscales to even grey (128)");
	free(src.rgb);
	free(dst.rgb);
}

static void test_downscale_sizes(void)
{
	struct pixmap src = pixmap_new(1281, 801), dst;
	int w, h, same = 1;

	for (int y = 0; y < 801; y++)
		for (int x = 0; x < 1281; x++)
			put(&src, x, y, 12, 34, 56);
	put(&src, 1280, 800, 255, 255, 255); /* one bright corner pixel */
	pixmap_fit(src.width, src.height, 320, &w, &h);
	dst = pixmap_new(w, h);
	pixmap_downscale(&src, &dst);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			if (!(x == w - 1 && y == h - 1))
				same &= is(&dst, x, y, 12, 34, 56);
	ok(dst.width == 320 && dst.height == 200 && same,
	   "1281x801 solid colour to 320 wide: 320x200 of that colour");
	ok(!is(&dst, 319, 199, 12, 34, 56) && dst.rgb[(199 * 320 + 319) * 3] > 12,
	   "the bright corner pixel still lightens the corner of the thumbnail");
	free(dst.rgb);

	dst = pixmap_new(1281, 801);
	pixmap_downscale(&src, &dst);
	ok(!memcmp(dst.rgb, src.rgb, (size_t)1281 * 801 * 3), "downscale to its own size: a copy");
	free(dst.rgb);
	free(src.rgb);
}

/* Decodes a PNG with libpng's simplified API into 8-bit RGB. */
static uint8_t *png_decode(const uint8_t *data, size_t len, int *w, int *h)
{
	png_image img;
	uint8_t *px;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, data, len))
		return NULL;
	img.format = PNG_FORMAT_RGB;
	px = xmalloc(PNG_IMAGE_SIZE(img));
	if (!png_image_finish_read(&img, NULL, px, 0, NULL)) {
		free(px);
		return NULL;
	}
	*w = (int)img.width;
	*h = (int)img.height;
	return px;
}

static void test_png(void)
{
	struct pixmap pm = pixmap_new(37, 23);
	struct err err = ERR_INIT;
	uint8_t *png, *back;
	size_t len;
	int w = 0, h = 0;

	srand(7);
	for (size_t i = 0; i < (size_t)37 * 23 * 3; i++)
		pm.rgb[i] = (uint8_t)rand();
	for (int level = 0; level <= 9; level += 3) {
		png = pixmap_png_encode(&pm, level, &len, &err);
		back = png ? png_decode(png, len, &w, &h) : NULL;
		ok(png && len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8) && back && w == 37 &&
		       h == 23 && !memcmp(back, pm.rgb, (size_t)37 * 23 * 3),
		   "PNG at zlib level %d decodes to the same 37x23 pixels (%zu bytes)", level, len);
		free(png);
		free(back);
	}
	free(pm.rgb);

	pm = pixmap_new(1, 1);
	put(&pm, 0, 0, 1, 2, 3);
	png = pixmap_png_encode(&pm, PIXMAP_PNG_LEVEL, &len, &err);
	back = png ? png_decode(png, len, &w, &h) : NULL;
	ok(back && w == 1 && h == 1 && back[0] == 1 && back[1] == 2 && back[2] == 3,
	   "a 1x1 PNG round-trips");
	free(png);
	free(back);
}

/* The whole thumbnail path as the driver runs it: PPM in, PNG out. */
static void test_pipeline(void)
{
	struct err err = ERR_INIT;
	struct pixmap src, dst;
	size_t len, plen;
	uint8_t *ppm = ppm_make("P6\n1280 800\n255\n", (size_t)1280 * 800 * 3, &len), *png, *back;
	int w = 0, h = 0;

	ok(pixmap_ppm_parse(ppm, len, &src, &err) == 0, "a 1280x800 screendump parses");
	pixmap_fit(src.width, src.height, 160, &dst.width, &dst.height);
	dst.rgb = xmalloc((size_t)dst.width * (size_t)dst.height * 3);
	pixmap_downscale(&src, &dst);
	png = pixmap_png_encode(&dst, PIXMAP_PNG_LEVEL, &plen, &err);
	back = png ? png_decode(png, plen, &w, &h) : NULL;
	ok(back && w == 160 && h == 100 && !memcmp(back, dst.rgb, (size_t)160 * 100 * 3),
	   "its 160-wide thumbnail is a 160x100 PNG of the scaled pixels (%zu bytes)", plen);
	free(back);
	free(png);
	free(dst.rgb);
	free(ppm);
}

int main(void)
{
	test_ppm_good();
	test_ppm_bad();
	test_fit();
	test_downscale_blocks();
	test_downscale_averages();
	test_downscale_sizes();
	test_png();
	test_pipeline();
	return tap_done();
}
