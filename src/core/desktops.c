/* The reconciler. Each desktop bureaud knows of has a `struct rt` on the
 * loop thread. Work on one desktop is strictly sequential: rt_step() loads
 * the desktop's row, decides one action (state_decide, plus what the
 * driver reported: the agent's readiness, an unexpected exit, a boot
 * timeout), carries it out, and steps again when it is done, until there
 * is nothing left to do. Anything that happens meanwhile only sets a flag
 * and pokes the desktop. */
#include "core/core.h"
#include "core/bus.h"
#include "core/state.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "vm/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rt {
	struct app *app;
	char id[ID_MAX];
	struct desktop d; /* the row as last loaded */
	int loaded;
	struct vm *vm;
	int busy;      /* a step is in flight */
	int again;     /* poked while busy */
	int restart;   /* stop, then boot again */
	int ready;     /* the agent reported the stage this image needs */
	int timed_out; /* boot timeout fired */
	char *exit_reason; /* the VM died without being asked */
	int64_t boot_started; /* mono ms */
	uv_timer_t boot_timer;
	int closing;
	struct rt *next;
};

struct core {
	struct app *app;
	struct rt *rts;
};

static void rt_step(struct rt *rt);
static void rt_poke(struct rt *rt);

json_t *desktop_json(const struct desktop *d)
{
	char created[32], updated[32], changed[32];

	time_iso(d->created_at, created);
	time_iso(d->updated_at, updated);
	time_iso(d->state_changed_at, changed);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:i, s:s, s:s, "
			 "s:s, s:o}",
			 "id", d->id, "name", d->name, "workspaceId", d->workspace_id, "tier",
			 d->tier, "image", d->image, "imageVersion", d->image_version, "state",
			 d->state, "desiredState", d->desired_state, "reason",
			 *d->reason ? json_string(d->reason) : json_null(), "vcpus", d->vcpus,
			 "memoryMb", d->memory_mb, "diskGb", d->disk_gb, "createdAt", created,
			 "updatedAt", updated, "stateChangedAt", changed, "readyMs",
			 d->ready_ms > 0 ? json_integer(d->ready_ms) : json_null());
}

int core_store_event(struct store *s, const struct desktop *d, const char *type, json_t *data,
		     struct event *ev, struct err *err)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->workspace_id, sizeof(ev->workspace_id), "%s", d->workspace_id);
	snprintf(ev->desktop_id, sizeof(ev->desktop_id), "%s", d->id);
	snprintf(ev->type, sizeof(ev->type), "%s", type);
	json_object_set_new(data, "name", json_string(d->name));
	ev->data = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	ev->created_at = now_ms();
	if (store_event_append(s, ev, err)) {
		free(ev->data);
		ev->data = NULL;
		return -1;
	}
	return 0;
}

int core_store_transition(struct store *s, struct desktop *d, const char *state,
			  const char *reason, int64_t ready_ms, struct event *ev, struct err *err)
{
	int64_t now = now_ms();
	int was_running = !strcmp(d->state, "running");
	json_t *data;

	if (store_desktop_set_state(s, d->id, state, reason, ready_ms, now, err))
		return -1;
	if (!strcmp(state, "running") && !was_running &&
	    store_usage_open(s, d->id, d->workspace_id, d->tier, now, err))
		return -1;
	if (strcmp(state, "running") && store_usage_close(s, d->id, now, err))
		return -1;
	snprintf(d->state, sizeof(d->state), "%s", state);
	snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
	if (ready_ms >= 0)
		d->ready_ms = ready_ms;
	d->state_changed_at = d->updated_at = now;
	data = json_pack("{s:s, s:s, s:o}", "state", state, "desiredState", d->desired_state,
			 "reason", reason ? json_string(reason) : json_null());
	if (ready_ms >= 0)
		json_object_set_new(data, "readyMs", json_integer(ready_ms));
	return core_store_event(s, d, "desktop.state", data, ev, err);
}

void core_publish(struct app *app, struct event *ev)
{
	if (ev->data && ev->id)
		bus_publish(app->bus, ev);
	free(ev->data);
	ev->data = NULL;
}

/* Runtime records */

static struct rt *rt_find(struct core *c, const char *id)
{
	for (struct rt *rt = c->rts; rt; rt = rt->next)
		if (!strcmp(rt->id, id))
			return rt;
	return NULL;
}

static struct rt *rt_get(struct app *app, const char *id)
{
	struct rt *rt = rt_find(app->core, id);

	if (rt)
		return rt;
	rt = xcalloc(1, sizeof(*rt));
	rt->app = app;
	snprintf(rt->id, sizeof(rt->id), "%s", id);
	uv_timer_init(app->loop, &rt->boot_timer);
	rt->boot_timer.data = rt;
	rt->next = app->core->rts;
	app->core->rts = rt;
	return rt;
}

static void rt_closed(uv_handle_t *h)
{
	struct rt *rt = h->data;

	free(rt->exit_reason);
	free(rt);
}

/* Forgets a destroyed desktop. */
static void rt_remove(struct rt *rt)
{
	struct rt **pp = &rt->app->core->rts;

	if (rt->closing)
		return;
	while (*pp && *pp != rt)
		pp = &(*pp)->next;
	if (*pp)
		*pp = rt->next;
	rt->closing = 1;
	uv_close((uv_handle_t *)&rt->boot_timer, rt_closed);
}

/* Transitions, on a worker, then back on the loop */

struct transition {
	struct rt *rt;
	char state[16];
	char *reason;
	int64_t ready_ms;
	struct event ev;
	struct err err;
	int failed;
	void (*then)(struct rt *rt);
};

static void transition_work(struct store *s, void *arg)
{
	struct transition *t = arg;

	t->failed = 1;
	if (store_begin(s, &t->err))
		return;
	if (core_store_transition(s, &t->rt->d, t->state, t->reason, t->ready_ms, &t->ev,
				  &t->err)) {
		store_rollback(s);
		return;
	}
	t->failed = store_commit(s, &t->err) != 0;
	if (t->failed)
		store_rollback(s);
}

static void transition_done(void *arg)
{
	struct transition *t = arg;
	struct rt *rt = t->rt;

	if (t->failed)
		log_warnx("desktop=%s transition to %s failed: %s", rt->id, t->state, t->err.msg);
	else
		log_info("desktop=%s state=%s%s%s", rt->id, t->state, t->reason ? " reason=" : "",
			 t->reason ? t->reason : "");
	core_publish(rt->app, &t->ev);
	free(t->reason);
	if (t->then)
		t->then(rt);
	else {
		rt->busy = 0;
		rt_step(rt);
	}
	free(t);
}

/* Stores `state` for the desktop, then runs then(rt), or steps again. */
static void rt_transition(struct rt *rt, const char *state, const char *reason, int64_t ready_ms,
			  void (*then)(struct rt *rt))
{
	struct transition *t = xcalloc(1, sizeof(*t));

	t->rt = rt;
	snprintf(t->state, sizeof(t->state), "%s", state);
	t->reason = reason ? xstrdup(reason) : NULL;
	t->ready_ms = ready_ms;
	t->then = then;
	job_submit(rt->app, transition_work, transition_done, t);
}

static void rt_fail(struct rt *rt, const char *reason)
{
	rt_transition(rt, "error", reason, -1, NULL);
}

/* Driver callbacks */

static void on_agent_msg(struct vm *vm, json_t *msg, void *arg)
{
	struct rt *rt = arg;
	const char *type = json_string_value(json_object_get(msg, "type"));
	const char *stage = json_string_value(json_object_get(msg, "stage"));
	const char *need;

	(void)vm;
	if (!type || strcmp(type, "ready") || !stage)
		return;
	need = strcmp(rt->d.image, "desktop") ? "boot" : "desktop";
	log_debug("desktop=%s agent ready stage=%s", rt->id, stage);
	if (!strcmp(stage, need) && !rt->ready) {
		rt->ready = 1;
		rt_poke(rt);
	}
}

static void on_exit_cb(struct vm *vm, const char *reason, void *arg)
{
	struct rt *rt = arg;

	if (rt->vm != vm)
		return;
	rt->vm = NULL;
	rt->ready = 0;
	uv_timer_stop(&rt->boot_timer);
	if (reason) {
		log_warnx("desktop=%s vm exited: %s", rt->id, reason);
		free(rt->exit_reason);
		rt->exit_reason = xstrdup(reason);
		rt_poke(rt);
	}
}

static struct vm_callbacks rt_callbacks(struct rt *rt)
{
	struct vm_callbacks cbs = {on_agent_msg, on_exit_cb, rt};
	return cbs;
}

/* Boot */

static void boot_timeout(uv_timer_t *t)
{
	struct rt *rt = t->data;

	rt->timed_out = 1;
	rt_poke(rt);
}

static void booted(struct vm *vm, struct err *err, void *arg)
{
	struct rt *rt = arg;
	char reason[600];

	if (!vm) {
		snprintf(reason, sizeof(reason), "boot failed: %s", err->msg);
		rt_fail(rt, reason);
		return;
	}
	rt->vm = vm;
	uv_timer_start(&rt->boot_timer, boot_timeout,
		       (uint64_t)rt->app->cfg.boot_timeout_s * 1000, 0);
	rt->busy = 0;
	rt_step(rt);
}

static struct vm_spec rt_spec(const struct rt *rt)
{
	struct vm_spec spec = {0};

	snprintf(spec.id, sizeof(spec.id), "%s", rt->d.id);
	snprintf(spec.image, sizeof(spec.image), "%s", rt->d.image);
	snprintf(spec.image_version, sizeof(spec.image_version), "%s", rt->d.image_version);
	spec.vcpus = rt->d.vcpus;
	spec.memory_mb = rt->d.memory_mb;
	spec.disk_gb = rt->d.disk_gb;
	return spec;
}

static void provisioned(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct vm_spec spec = rt_spec(rt);
	struct vm_callbacks cbs = rt_callbacks(rt);
	char reason[600];

	if (status) {
		snprintf(reason, sizeof(reason), "provisioning failed: %s", err->msg);
		rt_fail(rt, reason);
		return;
	}
	vm_boot(rt->app->driver, &spec, &cbs, booted, rt);
}

static int disk_exists(const struct rt *rt)
{
	char path[2048];
	struct stat st;

	snprintf(path, sizeof(path), "%s/desktops/%s/disk.qcow2", rt->app->cfg.state_dir, rt->id);
	return stat(path, &st) == 0;
}

static void boot_now(struct rt *rt)
{
	struct vm_spec spec = rt_spec(rt);
	struct vm_callbacks cbs = rt_callbacks(rt);

	rt->ready = 0;
	rt->timed_out = 0;
	rt->boot_started = mono_ms();
	free(rt->exit_reason);
	rt->exit_reason = NULL;
	if (!disk_exists(rt))
		vm_provision(rt->app->driver, &spec, provisioned, rt);
	else
		vm_boot(rt->app->driver, &spec, &cbs, booted, rt);
}

/* Stop and destroy */

static void stopped_cb(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;

	if (status) {
		log_warnx("desktop=%s stop failed: %s", rt->id, err ? err->msg : "?");
		rt_fail(rt, err ? err->msg : "stop failed");
		return;
	}
	rt->vm = NULL;
	rt->restart = 0;
	if (rt->timed_out) {
		char reason[128];
		snprintf(reason, sizeof(reason), "desktop did not become ready within %d s",
			 rt->app->cfg.boot_timeout_s);
		rt->timed_out = 0;
		rt_fail(rt, reason);
		return;
	}
	rt_transition(rt, "stopped", NULL, -1, NULL);
}

static void stop_now(struct rt *rt)
{
	uv_timer_stop(&rt->boot_timer);
	vm_stop(rt->vm, 0, stopped_cb, rt);
}

static void destroyed_cb(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;

	if (status) {
		rt_fail(rt, err ? err->msg : "destroy failed");
		return;
	}
	rt->vm = NULL;
	rt_transition(rt, "destroyed", NULL, -1, rt_remove);
}

static void destroy_now(struct rt *rt)
{
	uv_timer_stop(&rt->boot_timer);
	vm_destroy(rt->app->driver, rt->id, destroyed_cb, rt);
}

/* The step */

static void rt_act(struct rt *rt)
{
	const char *state = rt->d.state;
	int64_t ready_ms;

	if (rt->exit_reason && strcmp(state, "destroying") && strcmp(state, "stopped") &&
	    strcmp(state, "error")) {
		char *reason = rt->exit_reason;
		rt->exit_reason = NULL;
		rt_fail(rt, reason);
		free(reason);
		return;
	}
	if (rt->vm && rt->timed_out && !strcmp(state, "booting")) {
		vm_stop(rt->vm, 1, stopped_cb, rt);
		return;
	}
	if (rt->vm && rt->ready && !strcmp(state, "booting") &&
	    !strcmp(rt->d.desired_state, "running")) {
		uv_timer_stop(&rt->boot_timer);
		ready_ms = rt->boot_started ? mono_ms() - rt->boot_started : -1;
		rt_transition(rt, "running", NULL, ready_ms, NULL);
		return;
	}
	switch (state_decide(state, rt->d.desired_state, rt->vm != NULL, rt->restart)) {
	case ACT_NONE:
		rt->busy = 0;
		if (rt->again) {
			rt->again = 0;
			rt_step(rt);
		}
		return;
	case ACT_BOOT:
		if (!strcmp(state, "booting"))
			boot_now(rt);
		else
			rt_transition(rt, "booting", NULL, -1, boot_now);
		return;
	case ACT_STOP:
		if (!strcmp(state, "stopping"))
			stop_now(rt);
		else
			rt_transition(rt, "stopping", NULL, -1, stop_now);
		return;
	case ACT_MARK_STOPPED:
		rt_transition(rt, "stopped", NULL, -1, NULL);
		return;
	case ACT_DESTROY:
		if (!strcmp(state, "destroying"))
			destroy_now(rt);
		else
			rt_transition(rt, "destroying", NULL, -1, destroy_now);
		return;
	}
}

struct load {
	struct rt *rt;
	struct desktop d;
	int found;
};

static void load_work(struct store *s, void *arg)
{
	struct load *l = arg;
	struct err err = ERR_INIT;

	l->found = store_desktop_get(s, l->rt->id, &l->d, &err) == 0;
}

static void load_done(void *arg)
{
	struct load *l = arg;
	struct rt *rt = l->rt;

	if (!l->found || !strcmp(l->d.state, "destroyed")) {
		free(l);
		rt->busy = 0;
		if (!rt->vm)
			rt_remove(rt);
		return;
	}
	rt->d = l->d;
	rt->loaded = 1;
	free(l);
	if (rt->app->shutting_down) {
		rt->busy = 0;
		return;
	}
	rt_act(rt);
}

/* Loads the row and acts; the caller has made sure nothing is in flight. */
static void rt_step(struct rt *rt)
{
	struct load *l;

	if (rt->closing || rt->app->shutting_down) {
		rt->busy = 0;
		return;
	}
	rt->busy = 1;
	rt->again = 0;
	l = xcalloc(1, sizeof(*l));
	l->rt = rt;
	job_submit(rt->app, load_work, load_done, l);
}

static void rt_poke(struct rt *rt)
{
	if (rt->closing)
		return;
	if (rt->busy) {
		rt->again = 1;
		return;
	}
	rt_step(rt);
}

/* Public */

int core_new(struct app *app)
{
	app->core = xcalloc(1, sizeof(struct core));
	app->core->app = app;
	return 0;
}

void core_kick(struct app *app, const char *desktop_id)
{
	struct rt *rt;

	if (app->shutting_down)
		return;
	rt = rt_get(app, desktop_id);
	/* Until the accelerator is known, core_start will pick it up. */
	if (!*app->accel)
		return;
	rt_poke(rt);
}

void core_restart(struct app *app, const char *desktop_id)
{
	struct rt *rt = rt_get(app, desktop_id);

	rt->restart = 1;
	rt_poke(rt);
}

struct vm *core_vm(struct app *app, const char *desktop_id)
{
	struct rt *rt = rt_find(app->core, desktop_id);

	return rt ? rt->vm : NULL;
}

/* Startup */

struct startup {
	struct app *app;
	struct desktop *list;
	size_t n;
};

static void attached(struct vm *vm, struct err *err, void *arg)
{
	struct rt *rt = arg;
	char reason[1024];

	if (vm) {
		log_info("desktop=%s re-attached to its running vm pid=%d", rt->id, vm_pid(vm));
		rt->vm = vm;
		if (!strcmp(rt->d.state, "booting")) {
			rt->boot_started = mono_ms();
			uv_timer_start(&rt->boot_timer, boot_timeout,
				       (uint64_t)rt->app->cfg.boot_timeout_s * 1000, 0);
		}
	} else if (vm_last_exit(rt->app->driver, rt->id, reason, sizeof(reason)) == 1 &&
		   (!strcmp(rt->d.state, "running") || !strcmp(rt->d.state, "booting"))) {
		/* It died while bureaud was away; a host reboot leaves no
		 * record, and the desktop simply boots again. */
		rt->exit_reason = xstrdup(reason);
	}
	(void)err;
	rt->busy = 0;
	rt_step(rt);
}

static void startup_work(struct store *s, void *arg)
{
	struct startup *st = arg;
	struct err err = ERR_INIT;

	if (store_desktop_list_live(s, &st->list, &st->n, &err))
		log_warnx("startup: cannot list desktops: %s", err.msg);
}

static void startup_done(void *arg)
{
	struct startup *st = arg;

	log_info("reconciler: %zu desktops", st->n);
	for (size_t i = 0; i < st->n; i++) {
		struct rt *rt = rt_get(st->app, st->list[i].id);
		struct vm_callbacks cbs = rt_callbacks(rt);

		rt->d = st->list[i];
		rt->loaded = 1;
		rt->busy = 1;
		vm_attach(st->app->driver, rt->id, &cbs, attached, rt);
	}
	free(st->list);
	free(st);
}

void core_start(struct app *app)
{
	struct startup *st = xcalloc(1, sizeof(*st));

	st->app = app;
	job_submit(app, startup_work, startup_done, st);
}

void core_shutdown(struct app *app)
{
	struct rt *rt = app->core->rts;

	/* The records stay allocated: jobs in flight may still return to
	 * them, and the process ends with the loop. */
	app->shutting_down = 1;
	for (; rt; rt = rt->next) {
		if (rt->closing)
			continue;
		rt->closing = 1;
		uv_close((uv_handle_t *)&rt->boot_timer, NULL);
	}
}
