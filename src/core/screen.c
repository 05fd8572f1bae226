#include "core/screen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes measured to come up as the guest's framebuffer and Xorg screen. */
static const struct screen_size screen_sizes[] = {
	{1024, 768}, {1280, 800}, {1280, 1024}, {1440, 900}, {1600, 900}, {1920, 1080},
};
#define SCREEN_SETTING "screen"

int screen_supported(int width, int height)
{
	for (size_t i = 0; i < sizeof(screen_sizes) / sizeof(screen_sizes[0]); i++)
		if (screen_sizes[i].width == width && screen_sizes[i].height == height)
			return 1;
	return 0;
}

int screen_is_default(const struct screen_size *sz)
{
	return sz->width == SCREEN_DEFAULT_WIDTH && sz->height == SCREEN_DEFAULT_HEIGHT;
}

static int screen_dim(json_t *j, const char *key, int *out)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

int screen_parse(json_t *j, struct screen_size *out, struct err *err)
{
	static const char hint[] =
		"1024x768, 1280x800, 1280x1024, 1440x900, 1600x900 or 1920x1080";

	if (!json_is_object(j) || json_object_size(j) != 2 || screen_dim(j, "width", &out->width) ||
	    screen_dim(j, "height", &out->height))
		return err_set(err, 400, "invalid_request",
			       "screen is {\"width\": W, \"height\": H} with integers (%s)", hint);
	if (!screen_supported(out->width, out->height))
		return err_set(err, 400, "invalid_request", "screen %dx%d is not supported (%s)",
			       out->width, out->height, hint);
	return 0;
}

int screen_load(struct store *s, const char *desktop_id, struct screen_size *out, struct err *err)
{
	char *text = NULL;
	json_t *j;
	struct err e2 = ERR_INIT;

	out->width = SCREEN_DEFAULT_WIDTH;
	out->height = SCREEN_DEFAULT_HEIGHT;
	if (store_desktop_setting_get(s, desktop_id, SCREEN_SETTING, &text, &e2))
		return e2.status == 404 ? 0 : (*err = e2, -1);
	j = json_loads(text, 0, NULL);
	free(text);
	/* A stored size the list no longer has falls back to the default. */
	if (screen_parse(j, out, &e2)) {
		out->width = SCREEN_DEFAULT_WIDTH;
		out->height = SCREEN_DEFAULT_HEIGHT;
	}
	json_decref(j);
	return 0;
}

int screen_store(struct store *s, const char *desktop_id, const struct screen_size *sz, int64_t now,
		 struct err *err)
{
	char text[64];

	snprintf(text, sizeof(text), "{\"width\":%d,\"height\":%d}", sz->width, sz->height);
	return store_desktop_setting_put(s, desktop_id, SCREEN_SETTING, text, now, err);
}

json_t *screen_json(const struct screen_size *sz)
{
	return json_pack("{s:i, s:i}", "width", sz->width, "height", sz->height);
}
