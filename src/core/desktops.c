/* The reconciler. Each desktop bureaud knows of has a `struct rt` on the
 * loop thread. Work on one desktop is strictly sequential: rt_step() loads
 * the desktop's row, decides one action (state_decide, plus what the
 * driver reported: the agent's readiness, an unexpected exit, a boot
 * timeout), carries it out, and steps again when it is done, until there
 * is nothing left to do. Anything that happens meanwhile only sets a flag
 * and pokes the desktop. */
#include "core/core.h"
#include "core/bus.h"
#include "core/metrics.h"
#include "core/pilot.h"
#include "core/services.h"
#include "core/screen.h"
#include "core/state.h"
#include "core/instant.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "vm/driver.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The agent applies a configuration in a child; ssh-keygen alone may take
 * a while under emulation. */
#define VM_AGENT_CONFIG_TIMEOUT_MS 120000

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
	int exit_crashed;  /* ... of a crash (SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE) */
	int boot_retried;  /* this start already booted again after a crash */
	int64_t boot_started; /* mono ms */
	uv_timer_t boot_timer;
	int closing;
	struct rt *next;

	/* Issue 5: boot paths, first-boot configuration, hibernation, snapshots */
	struct desktop_extra x; /* loaded with the row */
	struct screen_size screen; /* loaded with the row */
	json_t *setup;		/* first-boot configuration, secrets included: memory only */
	int personalize;	/* this boot: 0 nothing, 1 clock and seed, 2 a new identity too */
	int personalized;	/* done (or given up) for this boot */
	int setup_done;		/* configure answered for this boot */
	char boot_path[16];	/* this boot: cold, template, snapshot, hibernation */
	char boot_note[256];	/* why it is a cold boot after all */
	char next_note[256];	/* for the next boot: what happened to the last save */
	char stop_mode[16];	/* the next stop: hibernate (default) or shutdown */
	int was_running;	/* the stop under way began from running */
	struct snap_op *ops;	/* snapshot work queued by the API */
};

enum snap_op_kind { SNAP_CREATE, SNAP_RESTORE, SNAP_DELETE };

struct snap_op {
	struct snap_op *next;
	enum snap_op_kind kind;
	char sid[ID_MAX];
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
	json_t *j;

	time_iso(d->created_at, created);
	time_iso(d->updated_at, updated);
	time_iso(d->state_changed_at, changed);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:i, s:s, s:s, "
			 "s:s, s:o}",
			 "id", d->id, "name", d->name, "workspaceId", d->workspace_id, "tier",
			 d->tier, "image", d->image, "imageVersion", d->image_version, "state",
			 d->state, "desiredState", d->desired_state, "reason",
			 *d->reason ? json_string(d->reason) : json_null(), "vcpus", d->vcpus,
			 "memoryMb", d->memory_mb, "diskGb", d->disk_gb, "createdAt", created,
			 "updatedAt", updated, "stateChangedAt", changed, "readyMs",
			 d->ready_ms > 0 ? json_integer(d->ready_ms) : json_null());
	/* The newest sample of the agent, while the desktop runs. */
	json_object_set_new(j, "metrics",
			    strcmp(d->state, "running") ? json_null() : metrics_latest_json(d->id));
	/* What the pilot works on (issue 6). */
	json_object_set_new(j, "agent", chat_agent_json(d->id));
	return j;
}

int core_event_append(struct store *s, const char *workspace_id, const char *desktop_id,
		      const char *type, json_t *data, struct event *ev, struct err *err)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->workspace_id, sizeof(ev->workspace_id), "%s", workspace_id);
	snprintf(ev->desktop_id, sizeof(ev->desktop_id), "%s", desktop_id);
	snprintf(ev->type, sizeof(ev->type), "%s", type);
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

int core_store_event(struct store *s, const struct desktop *d, const char *type, json_t *data,
		     struct event *ev, struct err *err)
{
	json_object_set_new(data, "name", json_string(d->name));
	return core_event_append(s, d->workspace_id, d->id, type, data, ev, err);
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
	struct snap_op *op;

	free(rt->exit_reason);
	if (rt->setup) {
		core_setup_wipe(rt->setup);
		json_decref(rt->setup);
	}
	while ((op = rt->ops)) {
		rt->ops = op->next;
		free(op);
	}
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

	if (type && strcmp(type, "ready")) {
		if (pilot_agent_msg(rt->app, &rt->d, vm, msg))
			return;
		metrics_agent_msg(rt->app, &rt->d, vm, msg);
		return;
	}
	if (!type || !stage)
		return;
	services_push(rt->app, rt->id);
	chat_push(rt->app, rt->id);
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
	egress_desktop_close(rt->app, rt->id);
	rt->vm = NULL;
	rt->ready = 0;
	uv_timer_stop(&rt->boot_timer);
	if (reason) {
		log_warnx("desktop=%s vm exited: %s", rt->id, reason);
		free(rt->exit_reason);
		rt->exit_reason = xstrdup(reason);
		rt->exit_crashed = vm_exit_crashed(vm_exit_status(vm));
		rt_poke(rt);
	}
}

static struct vm_callbacks rt_callbacks(struct rt *rt)
{
	struct vm_callbacks cbs = {on_agent_msg, on_exit_cb, rt};
	return cbs;
}

/* Boot */

/* Notes: stored side effects of a step (the extras row, an event, a
 * snapshot row), written in one transaction, then `then` or the next step. */

struct rt_note {
	struct rt *rt;
	int put_extra;
	struct desktop_extra x;
	char type[48];
	json_t *data;
	struct event ev;
	char sid[ID_MAX]; /* a snapshot row to settle */
	char sn_state[16];
	char sn_kind[16];
	int64_t sn_bytes;
	char sn_reason[512];
	int sn_delete;
	struct err err;
	void (*then)(struct rt *rt);
};

static void note_work(struct store *s, void *arg)
{
	struct rt_note *n = arg;
	struct rt *rt = n->rt;
	int failed = 1;

	if (store_begin(s, &n->err))
		return;
	if (n->put_extra && store_desktop_extra_put(s, rt->id, &n->x, now_ms(), &n->err))
		goto out;
	if (*n->sid && n->sn_delete && store_snapshot_delete(s, n->sid, &n->err))
		goto out;
	if (*n->sid && !n->sn_delete &&
	    store_snapshot_set_state(s, n->sid, n->sn_state, *n->sn_kind ? n->sn_kind : NULL,
				     n->sn_bytes, n->sn_reason, &n->err))
		goto out;
	if (n->data) {
		json_t *data = n->data;
		n->data = NULL;
		if (core_store_event(s, &rt->d, n->type, data, &n->ev, &n->err))
			goto out;
	}
	failed = store_commit(s, &n->err) != 0;
out:
	if (failed) {
		store_rollback(s);
		log_warnx("desktop=%s store %s: %s", rt->id, n->type, n->err.msg);
	}
}

static void note_done(void *arg)
{
	struct rt_note *n = arg;
	struct rt *rt = n->rt;

	json_decref(n->data);
	core_publish(rt->app, &n->ev);
	if (n->then) {
		n->then(rt);
	} else {
		rt->busy = 0;
		rt_step(rt);
	}
	free(n);
}

static struct rt_note *note_new(struct rt *rt, const char *type, json_t *data)
{
	struct rt_note *n = xcalloc(1, sizeof(*n));

	n->rt = rt;
	snprintf(n->type, sizeof(n->type), "%s", type);
	n->data = data;
	return n;
}

static void note_submit(struct rt_note *n, void (*then)(struct rt *rt))
{
	n->then = then;
	job_submit(n->rt->app, note_work, note_done, n);
}

/* Stores rt->x with an event, then steps (or then). */
static void rt_note_extra(struct rt *rt, const char *type, json_t *data,
			  void (*then)(struct rt *rt))
{
	struct rt_note *n = note_new(rt, type, data);

	n->put_extra = 1;
	n->x = rt->x;
	note_submit(n, then);
}

/* Boot: which path, and what the guest is told once its agent answers */

static void boot_timeout(uv_timer_t *t)
{
	struct rt *rt = t->data;

	rt->timed_out = 1;
	rt_poke(rt);
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
	spec.screen_width = rt->screen.width;
	spec.screen_height = rt->screen.height;
	return spec;
}

/* The VM is up (cold, or its saved machine loaded and continued). */
static void boot_vm_up(struct rt *rt, struct vm *vm)
{
	int first = !strcmp(rt->x.setup_state, "pending");

	rt->vm = vm;
	uv_timer_start(&rt->boot_timer, boot_timeout,
		       (uint64_t)rt->app->cfg.boot_timeout_s * 1000, 0);
	/* A restored guest must not keep its template's (or sibling's)
	 * identity, and every restored guest needs the time set. */
	rt->personalize = first ? 2 : strcmp(rt->boot_path, "cold") ? 1 : 0;
	snprintf(rt->x.boot_path, sizeof(rt->x.boot_path), "%s", rt->boot_path);
	snprintf(rt->x.boot_note, sizeof(rt->x.boot_note), "%s", rt->boot_note);
	log_info("desktop=%s boot_path=%s%s%s", rt->id, rt->boot_path, *rt->boot_note ? " note=" : "",
		 rt->boot_note);
	rt_note_extra(rt, "desktop.boot",
		      json_pack("{s:s, s:o}", "path", rt->boot_path, "note",
				*rt->boot_note ? json_string(rt->boot_note) : json_null()),
		      NULL);
}

static void boot_now(struct rt *rt);

/* QEMU crashing while the guest boots (seen rarely under TCG) is worth one
 * more boot of this start; a second crash, or any other end, is an error
 * the user sees. Returns whether it boots again. */
static int boot_again(struct rt *rt, const char *reason)
{
	if (rt->boot_retried || strcmp(rt->d.desired_state, "running"))
		return 0;
	rt->boot_retried = 1;
	log_warnx("desktop=%s qemu crashed while booting; booting once more", rt->id);
	snprintf(rt->next_note, sizeof(rt->next_note), "booted again after QEMU crashed (%.200s)",
		 reason);
	boot_now(rt);
	return 1;
}

static void booted(struct vm *vm, struct err *err, void *arg)
{
	struct rt *rt = arg;
	char reason[600];

	if (!vm) {
		egress_desktop_close(rt->app, rt->id);
		snprintf(reason, sizeof(reason), "boot failed: %s", err->msg);
		if (!strcmp(err->code, "qemu_crashed") && boot_again(rt, reason))
			return;
		rt_fail(rt, reason);
		return;
	}
	boot_vm_up(rt, vm);
}

static void boot_cold(struct rt *rt)
{
	struct vm_spec spec = rt_spec(rt);
	struct vm_callbacks cbs = rt_callbacks(rt);

	snprintf(rt->boot_path, sizeof(rt->boot_path), "cold");
	vm_saved_discard(rt->app->driver, rt->id);
	vm_boot(rt->app->driver, &spec, &cbs, booted, rt);
}

/* A saved machine that cannot be loaded costs the memory, not the disk. */
static void resumed(struct vm *vm, struct err *err, void *arg)
{
	struct rt *rt = arg;

	if (vm) {
		boot_vm_up(rt, vm);
		return;
	}
	log_warnx("desktop=%s resume failed: %s", rt->id, err->msg);
	snprintf(rt->boot_note, sizeof(rt->boot_note), "resuming the %s failed (%.180s)",
		 rt->boot_path, err->msg);
	boot_cold(rt);
}

/* The disk is there: resume its saved machine if it has one, else boot. */
static void boot_disk(struct rt *rt)
{
	struct vm_spec spec = rt_spec(rt);
	struct vm_callbacks cbs = rt_callbacks(rt);
	struct vm_saved sv;
	char why[256];

	/* The guest's only way out (issue 6): QEMU's guestfwd connects to
	 * STATE/desktops/<id>/egress.sock. */
	egress_desktop_open(rt->app, &rt->d);
	if (vm_saved_get(rt->app->driver, rt->id, &sv, why, sizeof(why))) {
		snprintf(rt->boot_path, sizeof(rt->boot_path), "%s", sv.source);
		vm_resume(rt->app->driver, &spec, &cbs, resumed, rt);
		return;
	}
	if (!*rt->boot_note && *rt->next_note)
		snprintf(rt->boot_note, sizeof(rt->boot_note), "%s", rt->next_note);
	else if (!*rt->boot_note && strcmp(why, "no saved machine"))
		snprintf(rt->boot_note, sizeof(rt->boot_note), "%s", why);
	rt->next_note[0] = '\0';
	boot_cold(rt);
}

static void provisioned(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct vm_spec spec = rt_spec(rt);
	char reason[600];

	if (status && !strcmp(rt->boot_path, "template")) {
		/* The template let us down: a cold disk will do. */
		snprintf(rt->boot_note, sizeof(rt->boot_note), "template unusable (%.180s)",
			 err->msg);
		snprintf(rt->boot_path, sizeof(rt->boot_path), "cold");
		vm_provision(rt->app->driver, &spec, provisioned, rt);
		return;
	}
	if (status) {
		snprintf(reason, sizeof(reason), "provisioning failed: %s", err->msg);
		rt_fail(rt, reason);
		return;
	}
	boot_disk(rt);
}

/* A new desktop's disk: a fork's snapshot, the warm template, or the
 * golden image (and the template is built for the next one). */
static void provision_now(struct rt *rt)
{
	struct vm_spec spec = rt_spec(rt);
	struct vm_driver *d = rt->app->driver;
	/* Templates run at the default screen size; a restored guest keeps
	 * the size it was saved with, so another size boots cold. */
	int templates = strcmp(rt->app->cfg.templates, "off") != 0 && screen_is_default(&rt->screen);

	if (*rt->x.source_snapshot) {
		snprintf(rt->boot_path, sizeof(rt->boot_path), "snapshot");
		vm_provision_snapshot(d, &spec, rt->x.source_desktop, rt->x.source_snapshot,
				      provisioned, rt);
		return;
	}
	if (templates && vm_template_state(d, &spec) == VM_TEMPLATE_READY) {
		snprintf(rt->boot_path, sizeof(rt->boot_path), "template");
		vm_provision_template(d, &spec, provisioned, rt);
		return;
	}
	if (templates) {
		vm_template_build(d, &spec, rt->app->cfg.boot_timeout_s * 1000);
		snprintf(rt->boot_note, sizeof(rt->boot_note),
			 "no warm template ready yet for %s/%s (%s)", spec.image, spec.image_version,
			 vm_template_state(d, &spec) == VM_TEMPLATE_FAILED ? "its build failed"
									   : "building");
	}
	snprintf(rt->boot_path, sizeof(rt->boot_path), "cold");
	vm_provision(d, &spec, provisioned, rt);
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
	rt->ready = 0;
	rt->timed_out = 0;
	rt->personalize = rt->personalized = rt->setup_done = 0;
	rt->boot_path[0] = rt->boot_note[0] = '\0';
	rt->boot_started = mono_ms();
	free(rt->exit_reason);
	rt->exit_reason = NULL;
	if (!disk_exists(rt))
		provision_now(rt);
	else
		boot_disk(rt);
}

void desktop_hostname(const char *name, char *out, size_t n)
{
	size_t j = 0;

	for (const char *p = name; *p && j + 1 < n && j < 63; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			out[j++] = c;
		else if (j && out[j - 1] != '-')
			out[j++] = '-';
	}
	while (j && out[j - 1] == '-')
		j--;
	out[j] = '\0';
	if (!j)
		snprintf(out, n, "desktop");
}

static void personalized_cb(json_t *reply, struct err *err, void *arg)
{
	struct rt *rt = arg;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;

	if (!reply || !type || strcmp(type, "personalize.done"))
		log_warnx("desktop=%s personalize: %s", rt->id,
			  reply ? json_string_value(json_object_get(reply, "message")) ?: "unexpected answer"
				: err->msg);
	else if (json_array_size(json_object_get(reply, "errors")))
		log_warnx("desktop=%s personalize errors=%zu", rt->id,
			  json_array_size(json_object_get(reply, "errors")));
	rt->personalized = 1;
	rt->busy = 0;
	rt_step(rt);
}

/* Clock and fresh entropy for every restored guest; a new identity
 * (host name, machine-id, SSH host keys) at a desktop's first boot. */
static void personalize_now(struct rt *rt)
{
	unsigned char seed[64], mid[16];
	char seed_hex[sizeof(seed) * 2 + 1], mid_hex[sizeof(mid) * 2 + 1], host[64];
	json_t *msg;

	randombytes_buf(seed, sizeof(seed));
	sodium_bin2hex(seed_hex, sizeof(seed_hex), seed, sizeof(seed));
	msg = json_pack("{s:s, s:I, s:s}", "type", "personalize", "timeMs", (json_int_t)now_ms(),
			"seed", seed_hex);
	if (rt->personalize == 2) {
		randombytes_buf(mid, sizeof(mid));
		sodium_bin2hex(mid_hex, sizeof(mid_hex), mid, sizeof(mid));
		desktop_hostname(rt->d.name, host, sizeof(host));
		json_object_set_new(msg, "hostname", json_string(host));
		json_object_set_new(msg, "machineId", json_string(mid_hex));
		json_object_set_new(msg, "regenerateHostKeys", json_true());
	}
	vm_agent_request(rt->vm, msg, VM_AGENT_CONFIG_TIMEOUT_MS, personalized_cb, rt);
	core_setup_wipe(msg);
	json_decref(msg);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(seed_hex, sizeof(seed_hex));
}

struct setup_load {
	struct rt *rt;
	char *keys; /* the workspace's SSH keys, JSON text */
};

static void setup_keys_work(struct store *s, void *arg)
{
	struct setup_load *l = arg;
	struct err err = ERR_INIT;

	if (store_ssh_keys_get(s, l->rt->d.workspace_id, &l->keys, &err))
		log_warnx("desktop=%s ssh keys: %s", l->rt->id, err.msg);
}

/* Requested items the agent cannot get: held in memory by an earlier
 * bureaud, gone with it. */
static void setup_lost_items(const struct rt *rt, char *out, size_t n)
{
	static const char *const mem[] = {SETUP_MEMORY_ITEMS};
	char items[160];
	size_t j = 0;

	out[0] = '\0';
	if (rt->setup)
		return;
	snprintf(items, sizeof(items), ",%s,", rt->x.setup_items);
	for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
		char want[32];
		snprintf(want, sizeof(want), ",%s,", mem[i]);
		if (strstr(items, want))
			j += (size_t)snprintf(out + j, j < n ? n - j : 0, "%s%s", j ? ", " : "",
					      !strcmp(mem[i], "provider") ? "provider (API key)" : mem[i]);
	}
}

static void configured_cb(json_t *reply, struct err *err, void *arg)
{
	struct rt *rt = arg;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;
	json_t *errors = reply ? json_object_get(reply, "errors") : NULL, *e;
	char lost[200];
	struct buf why = BUF_INIT;
	size_t i;

	setup_lost_items(rt, lost, sizeof(lost));
	if (!reply)
		buf_printf(&why, "not delivered: %s", err->msg);
	else if (!type || strcmp(type, "configure.done"))
		buf_printf(&why, "the agent refused it: %s",
			   json_string_value(json_object_get(reply, "message")) ?: "unexpected answer");
	json_array_foreach(errors, i, e)
		buf_printf(&why, "%s%s: %s", why.len ? "; " : "",
			   json_string_value(json_object_get(e, "item")) ?: "?",
			   json_string_value(json_object_get(e, "message")) ?: "failed");
	if (*lost)
		buf_printf(&why, "%snot delivered: %s (held only in the memory of a bureaud that "
				 "restarted before the agent acknowledged them; never stored; give "
				 "them again by creating the desktop anew)",
			   why.len ? "; " : "", lost);
	/* Acknowledged or not, the secrets go now. */
	if (rt->setup) {
		core_setup_wipe(rt->setup);
		json_decref(rt->setup);
		rt->setup = NULL;
	}
	snprintf(rt->x.setup_state, sizeof(rt->x.setup_state), "%s", why.len ? "failed" : "applied");
	snprintf(rt->x.setup_reason, sizeof(rt->x.setup_reason), "%s", why.len ? why.data : "");
	rt->setup_done = 1;
	log_info("desktop=%s setup=%s", rt->id, rt->x.setup_state);
	rt_note_extra(rt, "desktop.setup",
		      json_pack("{s:s, s:O?, s:o}", "state", rt->x.setup_state, "items",
				reply ? json_object_get(reply, "items") : NULL, "reason",
				why.len ? json_string(why.data) : json_null()),
		      NULL);
	buf_release(&why);
}

static void setup_keys_done(void *arg)
{
	struct setup_load *l = arg;
	struct rt *rt = l->rt;
	json_t *keys = l->keys ? json_loads(l->keys, 0, NULL) : NULL, *msg;
	char host[64];
	const char *k;
	json_t *v;

	free(l->keys);
	free(l);
	if (!rt->vm) {
		rt->busy = 0;
		rt_step(rt);
		json_decref(keys);
		return;
	}
	desktop_hostname(rt->d.name, host, sizeof(host));
	msg = json_pack("{s:s, s:s, s:s, s:o}", "type", "configure", "desktopId", rt->id,
			"hostname", host, "sshKeys", json_is_array(keys) ? keys : json_array());
	if (!json_is_array(keys))
		json_decref(keys);
	if (rt->setup)
		json_object_foreach(rt->setup, k, v) json_object_set(msg, k, v);
	vm_agent_request(rt->vm, msg, VM_AGENT_CONFIG_TIMEOUT_MS, configured_cb, rt);
	json_decref(msg); /* the secrets inside are rt->setup's, wiped on the answer */
}

static void configure_now(struct rt *rt)
{
	struct setup_load *l = xcalloc(1, sizeof(*l));

	l->rt = rt;
	job_submit(rt->app, setup_keys_work, setup_keys_done, l);
}

/* Stop: hibernation by default, a graceful power-off when asked */

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

static void hibernated_then(struct rt *rt)
{
	rt_transition(rt, "stopped", NULL, -1, NULL);
}

/* The save failed: the guest runs on (power it off instead), or QEMU is
 * gone (its exit reason takes the desktop to error). */
static void hibernate_fallback(struct rt *rt)
{
	if (rt->vm) {
		vm_stop(rt->vm, 0, stopped_cb, rt);
		return;
	}
	rt->busy = 0;
	rt_step(rt);
}

static void hibernated_cb(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct vm_saved sv = {0};

	if (status) {
		log_warnx("desktop=%s hibernation failed: %s", rt->id, err->msg);
		snprintf(rt->next_note, sizeof(rt->next_note),
			 "the last hibernation did not complete (%.180s)", err->msg);
		note_submit(note_new(rt, "desktop.hibernated",
				     json_pack("{s:b, s:s}", "ok", 0, "reason", err->msg)),
			    hibernate_fallback);
		return;
	}
	rt->vm = NULL;
	rt->restart = 0;
	vm_saved_get(rt->app->driver, rt->id, &sv, NULL, 0);
	note_submit(note_new(rt, "desktop.hibernated",
			     json_pack("{s:b, s:I, s:s}", "ok", 1, "memoryBytes",
				       (json_int_t)sv.memory_bytes, "format", sv.format)),
		    hibernated_then);
}

static void stop_now(struct rt *rt)
{
	int hibernate = rt->was_running && strcmp(rt->stop_mode, "shutdown") && !rt->restart &&
			!rt->timed_out;

	uv_timer_stop(&rt->boot_timer);
	rt->stop_mode[0] = '\0';
	rt->was_running = 0;
	if (hibernate)
		vm_hibernate(rt->vm, hibernated_cb, rt);
	else
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
	if (rt->setup) {
		core_setup_wipe(rt->setup);
		json_decref(rt->setup);
		rt->setup = NULL;
	}
	rt_transition(rt, "destroyed", NULL, -1, rt_remove);
}

static void destroy_now(struct rt *rt)
{
	uv_timer_stop(&rt->boot_timer);
	vm_destroy(rt->app->driver, rt->id, destroyed_cb, rt);
}

/* Snapshots */

static struct snap_op *snap_op_pop(struct rt *rt)
{
	struct snap_op *op = rt->ops;

	if (op)
		rt->ops = op->next;
	return op;
}

static void snap_settle(struct rt *rt, const char *sid, const char *type, const char *state,
			const char *kind, int64_t bytes, const struct err *err, int del,
			void (*then)(struct rt *rt))
{
	struct rt_note *n = note_new(rt, type,
				     json_pack("{s:s, s:s, s:o}", "snapshotId", sid, "state", state,
					       "reason", err ? json_string(err->msg) : json_null()));

	snprintf(n->sid, sizeof(n->sid), "%s", sid);
	snprintf(n->sn_state, sizeof(n->sn_state), "%s", state);
	snprintf(n->sn_kind, sizeof(n->sn_kind), "%s", kind ? kind : "");
	snprintf(n->sn_reason, sizeof(n->sn_reason), "%s", err ? err->msg : "");
	n->sn_bytes = bytes; /* below 0: the size stays (a restore, a failed delete) */
	n->sn_delete = del;
	if (bytes > 0)
		json_object_set_new(n->data, "sizeBytes", json_integer(bytes));
	note_submit(n, then);
}

static void snap_saved(int64_t bytes, int with_memory, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct snap_op *op = snap_op_pop(rt);

	snap_settle(rt, op->sid, "desktop.snapshot", err ? "failed" : "ready",
		    with_memory ? "memory" : "disk", bytes, err, 0, NULL);
	free(op);
}

static void snap_restore_then(struct rt *rt)
{
	if (!strcmp(rt->d.state, "stopping")) {
		rt_transition(rt, "stopped", NULL, -1, NULL);
		return;
	}
	rt->busy = 0;
	rt_step(rt);
}

static void snap_restored(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct snap_op *op = snap_op_pop(rt);

	snap_settle(rt, op->sid, "desktop.snapshot.restored", "ready", NULL, -1, err, 0,
		    snap_restore_then);
	free(op);
}

static void snap_restore_files(struct rt *rt)
{
	vm_snapshot_restore(rt->app->driver, rt->id, rt->ops->sid, snap_restored, rt);
}

static void snap_restore_stopped(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;

	rt->vm = NULL;
	snap_restore_files(rt);
}

/* Rollback of a running desktop: its VM ends (nothing to keep: the
 * snapshot replaces it), then boots from the snapshot. */
static void snap_restore_kill(struct rt *rt)
{
	uv_timer_stop(&rt->boot_timer);
	vm_stop(rt->vm, 1, snap_restore_stopped, rt);
}

static void snap_deleted(int status, struct err *err, void *arg)
{
	struct rt *rt = arg;
	struct snap_op *op = snap_op_pop(rt);

	snap_settle(rt, op->sid, "desktop.snapshot.deleted", status ? "failed" : "deleted", NULL,
		    -1, err, status == 0, NULL);
	free(op);
}

/* Snapshot work waits for a settled desktop: running, or without a VM. */
static int snap_op_run(struct rt *rt)
{
	const char *state = rt->d.state;
	int up = rt->vm && !strcmp(state, "running") && !strcmp(rt->d.desired_state, "running") &&
		 !rt->restart;
	int down = !rt->vm && (!strcmp(state, "stopped") || !strcmp(state, "error"));

	if (!rt->ops || (!up && !down))
		return 0;
	switch (rt->ops->kind) {
	case SNAP_CREATE:
		vm_snapshot_save(rt->app->driver, up ? rt->vm : NULL, rt->id, rt->ops->sid,
				 snap_saved, rt);
		break;
	case SNAP_RESTORE:
		if (up)
			rt_transition(rt, "stopping", NULL, -1, snap_restore_kill);
		else
			snap_restore_files(rt);
		break;
	case SNAP_DELETE:
		vm_snapshot_delete(rt->app->driver, rt->id, rt->ops->sid, snap_deleted, rt);
		break;
	}
	return 1;
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
		if (rt->exit_crashed && !strcmp(state, "booting") && boot_again(rt, reason)) {
			free(reason);
			return;
		}
		rt_fail(rt, reason);
		free(reason);
		return;
	}
	if (strcmp(rt->d.desired_state, "destroyed") && snap_op_run(rt))
		return;
	if (rt->vm && rt->timed_out && !strcmp(state, "booting")) {
		vm_stop(rt->vm, 1, stopped_cb, rt);
		return;
	}
	if (rt->vm && rt->ready && !strcmp(state, "booting") &&
	    !strcmp(rt->d.desired_state, "running")) {
		/* A first boot gets a new identity, also one a restarted
		 * bureaud found under way. */
		if (!strcmp(rt->x.setup_state, "pending") && !rt->personalized)
			rt->personalize = 2;
		if (rt->personalize && !rt->personalized) {
			personalize_now(rt);
			return;
		}
		if (!strcmp(rt->x.setup_state, "pending") && !rt->setup_done) {
			configure_now(rt);
			return;
		}
		uv_timer_stop(&rt->boot_timer);
		ready_ms = rt->boot_started ? mono_ms() - rt->boot_started : -1;
		rt->boot_retried = 0;
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
		if (!strcmp(state, "booting")) {
			boot_now(rt);
		} else {
			rt->boot_retried = 0; /* a new start */
			rt_transition(rt, "booting", NULL, -1, boot_now);
		}
		return;
	case ACT_STOP:
		if (!strcmp(state, "stopping")) {
			stop_now(rt);
		} else {
			rt->was_running = !strcmp(state, "running");
			rt_transition(rt, "stopping", NULL, -1, stop_now);
		}
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
	struct desktop_extra x;
	struct screen_size screen;
	int found;
};

static void load_work(struct store *s, void *arg)
{
	struct load *l = arg;
	struct err err = ERR_INIT;

	l->found = store_desktop_get(s, l->rt->id, &l->d, &err) == 0 &&
		   store_desktop_extra_get(s, l->rt->id, &l->x, &err) == 0 &&
		   screen_load(s, l->rt->id, &l->screen, &err) == 0;
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
	rt->x = l->x;
	rt->screen = l->screen;
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
		egress_desktop_open(rt->app, &rt->d);
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

/* Snapshot work an earlier bureaud left under way is not resumed: the
 * rows say what became of it (a failed one can be deleted). */
static void snapshots_settle_orphans(struct store *s, const char *desktop_id)
{
	struct snapshot *list;
	struct err err = ERR_INIT;
	size_t n;

	if (store_snapshot_list(s, desktop_id, &list, &n, &err))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *st = list[i].state;
		if (!strcmp(st, "creating") || !strcmp(st, "deleting"))
			store_snapshot_set_state(s, list[i].id, "failed", NULL, list[i].size_bytes,
						 "interrupted by a restart of bureaud", &err);
		else if (!strcmp(st, "restoring"))
			store_snapshot_set_state(s, list[i].id, "ready", NULL, list[i].size_bytes,
						 "a restore was interrupted by a restart of bureaud",
						 &err);
	}
	free(list);
}

static void startup_work(struct store *s, void *arg)
{
	struct startup *st = arg;
	struct err err = ERR_INIT;

	if (store_desktop_list_live(s, &st->list, &st->n, &err))
		log_warnx("startup: cannot list desktops: %s", err.msg);
	for (size_t i = 0; i < st->n; i++)
		snapshots_settle_orphans(s, st->list[i].id);
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

/* Templates named in the config are built now, for the free tier. */
static void templates_start(struct app *app)
{
	char list[sizeof(app->cfg.template_images)], *save, *name;
	const struct tier *free_tier = tier_find("free");
	struct err err = ERR_INIT;

	if (!strcmp(app->cfg.templates, "off"))
		return;
	snprintf(list, sizeof(list), "%s", app->cfg.template_images);
	for (name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
		struct vm_spec spec = {0};
		snprintf(spec.image, sizeof(spec.image), "%s", name);
		if (vm_image_current(app->driver, name, spec.image_version,
				     sizeof(spec.image_version), &err)) {
			log_warnx("template %s: %s", name, err.msg);
			continue;
		}
		spec.vcpus = free_tier->vcpus;
		spec.memory_mb = free_tier->memory_mb;
		spec.disk_gb = free_tier->disk_gb;
		vm_template_build(app->driver, &spec, app->cfg.boot_timeout_s * 1000);
	}
}

void core_start(struct app *app)
{
	struct startup *st = xcalloc(1, sizeof(*st));

	vm_driver_set_compress(app->driver, app->cfg.hibernate_compress);
	vm_driver_set_free_page_reporting(app->driver, strcmp(app->cfg.free_page_reporting, "off"));
	templates_start(app);
	st->app = app;
	pilot_init(app);
	job_submit(app, startup_work, startup_done, st);
}

void core_shutdown(struct app *app)
{
	struct rt *rt = app->core->rts;

	/* Nothing of the pilot may keep the loop alive (issue 6): the proxies
	 * come back when the next bureaud re-attaches. */
	egress_desktop_close_all(app);
	pilot_shutdown(app);
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

/* Issue 5 entry points */

void core_setup_wipe(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_string(j))
		sodium_memzero((char *)json_string_value(j), json_string_length(j));
	else if (json_is_object(j))
		json_object_foreach(j, k, v) core_setup_wipe(v);
	else if (json_is_array(j))
		json_array_foreach(j, i, v) core_setup_wipe(v);
}

void core_setup_give(struct app *app, const char *desktop_id, json_t *setup)
{
	struct rt *rt = rt_get(app, desktop_id);

	if (rt->setup) {
		core_setup_wipe(rt->setup);
		json_decref(rt->setup);
	}
	rt->setup = setup;
}

void core_stop_mode(struct app *app, const char *desktop_id, const char *mode)
{
	struct rt *rt = rt_get(app, desktop_id);

	snprintf(rt->stop_mode, sizeof(rt->stop_mode), "%s", mode ? mode : "");
}

void core_snapshot_op(struct app *app, const char *desktop_id, const char *sid,
		      enum core_snap_op kind)
{
	static const enum snap_op_kind kinds[] = {SNAP_CREATE, SNAP_RESTORE, SNAP_DELETE};
	struct rt *rt = rt_get(app, desktop_id);
	struct snap_op *op = xcalloc(1, sizeof(*op)), **pp = &rt->ops;

	op->kind = kinds[kind];
	snprintf(op->sid, sizeof(op->sid), "%s", sid);
	while (*pp)
		pp = &(*pp)->next;
	*pp = op;
	if (*app->accel)
		rt_poke(rt);
}

void desktop_json_extra(struct app *app, json_t *j, const struct desktop *d,
			const struct desktop_extra *x)
{
	struct vm_saved sv;

	json_object_set_new(j, "bootPath", *x->boot_path ? json_string(x->boot_path) : json_null());
	json_object_set_new(j, "bootNote", *x->boot_note ? json_string(x->boot_note) : json_null());
	json_object_set_new(j, "setup", json_pack("{s:s, s:s, s:o}", "state", x->setup_state,
						  "items", x->setup_items, "reason",
						  *x->setup_reason ? json_string(x->setup_reason)
								   : json_null()));
	json_object_set_new(j, "forkOf",
			    *x->source_snapshot
				? json_pack("{s:s, s:s}", "snapshotId", x->source_snapshot,
					    "desktopId", x->source_desktop)
				: json_null());
	if (!strcmp(d->state, "stopped") &&
	    vm_saved_get(app->driver, d->id, &sv, NULL, 0))
		json_object_set_new(j, "saved",
				    json_pack("{s:s, s:I, s:s}", "source", sv.source, "memoryBytes",
					      (json_int_t)sv.memory_bytes, "format", sv.format));
	else
		json_object_set_new(j, "saved", json_null());
}
