/* The desktop's screen size: chosen at create, changed later with a
 * restart. QEMU's std VGA offers the size as its EDID preferred mode
 * (VGA.xres/yres), bochs-drm sets it at boot and Xorg's fbdev driver
 * draws at whatever /dev/fb0 has; the fbdev driver cannot switch modes
 * live, so a change takes a cold boot. Kept as the desktop setting
 * "screen" ({"width","height"}); no setting means the default. */
#ifndef BUREAU_CORE_SCREEN_H
#define BUREAU_CORE_SCREEN_H

#include "common/err.h"
#include "store/store.h"

#include <jansson.h>

#define SCREEN_DEFAULT_WIDTH 1280
#define SCREEN_DEFAULT_HEIGHT 800

struct screen_size {
	int width;
	int height;
};

/* Whether the guest can show that size (the supported list). */
int screen_supported(int width, int height);
/* Parses {"width":W,"height":H} (exactly those keys, a supported size);
 * 400 otherwise. */
int screen_parse(json_t *j, struct screen_size *out, struct err *err);
/* The desktop's size; the default when it has none. */
int screen_load(struct store *s, const char *desktop_id, struct screen_size *out, struct err *err);
int screen_store(struct store *s, const char *desktop_id, const struct screen_size *sz, int64_t now,
		 struct err *err);
int screen_is_default(const struct screen_size *sz);
json_t *screen_json(const struct screen_size *sz);

#endif
