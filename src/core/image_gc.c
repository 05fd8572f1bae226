/* The image sweep's schedule and its inputs: see image_gc.h. */
#include "core/image_gc.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "vm/driver.h"
#include "vm/image_gc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sweep {
	struct app *app;
	struct vm_image_use *building; /* the driver's template builds, read on the loop */
	size_t n_building;
};

static struct {
	struct app *app;
	uv_timer_t timer;
	int started;
	int running; /* a sweep is on a worker */
} gc;

static void use_add(struct vm_image_use **v, size_t *n, const char *desktop_id, const char *image,
		    const char *version)
{
	struct vm_image_use *u;

	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	u = memset(&(*v)[(*n)++], 0, sizeof(*u));
	snprintf(u->desktop_id, sizeof(u->desktop_id), "%s", desktop_id);
	snprintf(u->image, sizeof(u->image), "%s", image);
	snprintf(u->version, sizeof(u->version), "%s", version);
}

/* What live desktops and their snapshots use, by their rows. */
static int uses_load(struct store *s, struct vm_image_use **uses, size_t *n, struct err *err)
{
	struct desktop *d;
	size_t nd;

	if (store_desktop_list_live(s, &d, &nd, err))
		return -1;
	for (size_t i = 0; i < nd; i++) {
		struct snapshot *sn;
		size_t ns;

		use_add(uses, n, d[i].id, d[i].image, d[i].image_version);
		if (store_snapshot_list(s, d[i].id, &sn, &ns, err)) {
			free(d);
			return -1;
		}
		for (size_t j = 0; j < ns; j++)
			use_add(uses, n, d[i].id, sn[j].image, sn[j].image_version);
		free(sn);
	}
	free(d);
	return 0;
}

static void sweep_work(struct store *s, void *arg)
{
	struct sweep *sw = arg;
	struct vm_image_gc_config cfg = {
	    .image_dir = sw->app->cfg.image_dir,
	    .state_dir = sw->app->cfg.state_dir,
	    .building = sw->building,
	    .n_building = sw->n_building,
	    .grace_s = VM_IMAGE_GC_GRACE_S,
	};
	struct vm_image_use *uses = NULL;
	size_t n_uses = 0, removed;
	struct vm_image_gc_plan plan;
	struct err err = ERR_INIT;
	int64_t bytes = 0;

	if (uses_load(s, &uses, &n_uses, &err)) {
		log_warnx("image gc: nothing removed: the desktops cannot be listed: %s", err.msg);
		free(uses);
		return;
	}
	cfg.uses = uses;
	cfg.n_uses = n_uses;
	cfg.now = (int64_t)time(NULL);
	if (vm_image_gc_plan(&cfg, &plan, &err)) {
		log_warnx("image gc: nothing removed: %s", err.msg);
		free(uses);
		return;
	}
	removed = vm_image_gc_apply(&cfg, &plan, &bytes);
	log_info("image gc: swept removed=%zu freed_mb=%lld kept_versions=%d kept_templates=%d",
		 removed, (long long)((bytes + (1 << 19)) >> 20), plan.kept_versions,
		 plan.kept_templates);
	vm_image_gc_plan_release(&plan);
	free(uses);
}

static void sweep_done(void *arg)
{
	struct sweep *sw = arg;

	gc.running = 0;
	free(sw->building);
	free(sw);
}

/* Templates being built this run (their folders are half written). */
static void building_load(struct sweep *sw)
{
	json_t *list = vm_templates_json(sw->app->driver), *t;
	size_t i;

	json_array_foreach (list, i, t) {
		const char *state = json_string_value(json_object_get(t, "state"));
		const char *image = json_string_value(json_object_get(t, "image"));
		const char *version = json_string_value(json_object_get(t, "version"));
		if (state && !strcmp(state, "building") && image && version)
			use_add(&sw->building, &sw->n_building, "", image, version);
	}
	json_decref(list);
}

static void tick(uv_timer_t *t)
{
	struct sweep *sw;

	if (gc.running || gc.app->shutting_down || !gc.app->driver)
		return;
	sw = xcalloc(1, sizeof(*sw));
	sw->app = gc.app;
	building_load(sw);
	gc.running = 1;
	job_submit(gc.app, sweep_work, sweep_done, sw);
}

/* Whether IMAGE_DIR lies inside STATE, as by default: then no other
 * bureaud (with desktops this one cannot see) uses its images. */
static int image_dir_owned(const struct config *cfg)
{
	char images[PATH_MAX], state[PATH_MAX];
	size_t len;

	if (!realpath(cfg->image_dir, images) || !realpath(cfg->state_dir, state))
		return 0;
	len = strlen(state);
	return !strncmp(images, state, len) && (images[len] == '/' || len == 1);
}

void image_gc_start(struct app *app)
{
	if (gc.started)
		return;
	if (!strcmp(app->cfg.image_gc, "off")) {
		log_info("image gc: off");
		return;
	}
	if (!strcmp(app->cfg.image_gc, "auto") && !image_dir_owned(&app->cfg)) {
		log_info("image gc: off: %s is outside the state folder, so other bureauds may use "
			 "its images (--image-gc on sweeps it anyway)",
			 app->cfg.image_dir);
		return;
	}
	gc.app = app;
	uv_timer_init(app->loop, &gc.timer);
	uv_timer_start(&gc.timer, tick, IMAGE_GC_FIRST_MS, IMAGE_GC_INTERVAL_MS);
	/* A pending sweep never keeps a stopping bureaud up. */
	uv_unref((uv_handle_t *)&gc.timer);
	gc.started = 1;
}

void image_gc_stop(struct app *app)
{
	if (!gc.started)
		return;
	uv_close((uv_handle_t *)&gc.timer, NULL);
	gc.started = 0;
}
