/* Warm templates: a golden image version booted once until its agent says
 * the guest is ready (the desktop drawn), then saved like a hibernation.
 * New desktops are overlays on the template's disk resuming its memory,
 * which takes about as long as reading that memory back.
 *
 * STATE/templates/<image>/<version>/<vcpus>c-<memory>m-<disk>g/ holds
 * disk.qcow2 (read-only from then on: clones are overlays on it), memory
 * and saved.json. It is built in a ".tmp" folder beside it and renamed
 * when complete, so a template folder is never half written; a build
 * interrupted by a crash is started afresh. A new image version gets its
 * own templates; old ones stay, since desktops made from them use their
 * disks as backing files. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define TEMPLATE_ERROR_MAX 512

struct vm_template {
	struct vm_template *next;
	struct vm_driver *d;
	struct vm_spec spec; /* id: tpl-<image>-<size> */
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
	enum vm_template_state state;
	char error[TEMPLATE_ERROR_MAX];
	struct vm *vm;
	int saving;
	int gone; /* the driver closed: callbacks do nothing */
	int ready_timeout_ms;
	uv_timer_t timer; /* the ready timeout */
	uint64_t started;
	int64_t build_ms;
};

static void template_dir(struct vm_driver *d, const struct vm_spec *s, char *out)
{
	snprintf(out, PATH_MAX, "%s/templates/%s/%s/%dc-%dm-%dg", d->state_dir, s->image,
		 s->image_version, s->vcpus, s->memory_mb, s->disk_gb);
}

static int template_on_disk(const char *dir)
{
	char path[PATH_MAX];

	return access(vm__path(path, dir, "saved.json"), F_OK) == 0;
}

static struct vm_template *template_find(struct vm_driver *d, const struct vm_spec *s)
{
	char dir[PATH_MAX];

	template_dir(d, s, dir);
	for (struct vm_template *t = d->templates; t; t = t->next)
		if (!strcmp(t->dir, dir))
			return t;
	return NULL;
}

enum vm_template_state vm_template_state(struct vm_driver *d, const struct vm_spec *spec)
{
	char dir[PATH_MAX];
	struct vm_template *t;

	if (!spec->image_version[0])
		return VM_TEMPLATE_NONE;
	template_dir(d, spec, dir);
	if (template_on_disk(dir))
		return VM_TEMPLATE_READY;
	t = template_find(d, spec);
	return t ? t->state : VM_TEMPLATE_NONE;
}

static void template_fail(struct vm_template *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void template_fail(struct vm_template *t, const char *fmt, ...)
{
	va_list ap;

	if (t->state != VM_TEMPLATE_BUILDING)
		return;
	va_start(ap, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	t->state = VM_TEMPLATE_FAILED;
	uv_timer_stop(&t->timer);
	log_warnx("template=%s state=failed reason=%s", t->spec.id, t->error);
	if (t->vm)
		vm_stop(t->vm, 1, NULL, NULL);
}

/* Published: the build folder becomes the template, its disk read-only. */
static void template_saved(int status, struct err *err, void *arg)
{
	struct vm_template *t = arg;
	char path[PATH_MAX], parent[PATH_MAX];
	static const char *const scratch[] = {"qmp.sock", "agent.sock", "vnc.sock", "qemu.pid",
					      NULL};
	struct err e = ERR_INIT;

	if (t->gone)
		return;
	t->saving = 0;
	if (status) {
		template_fail(t, "save: %s", err ? err->msg : "failed");
		return;
	}
	for (const char *const *n = scratch; *n; n++)
		unlink(vm__path(path, t->tmp, *n));
	chmod(vm__path(path, t->tmp, "disk.qcow2"), 0444);
	snprintf(parent, sizeof(parent), "%s", t->dir);
	*strrchr(parent, '/') = '\0';
	if (mkdir_p(parent, &e) || rename(t->tmp, t->dir)) {
		template_fail(t, "publish %s: %s", t->dir, e.status ? e.msg : strerror(errno));
		return;
	}
	t->state = VM_TEMPLATE_READY;
	uv_timer_stop(&t->timer);
	t->build_ms = (int64_t)(uv_now(t->d->loop) - t->started);
	log_info("template=%s state=ready build_ms=%lld", t->spec.id, (long long)t->build_ms);
}

static void template_agent_msg(struct vm *vm, json_t *msg, void *arg)
{
	struct vm_template *t = arg;
	const char *type = json_string_value(json_object_get(msg, "type"));
	const char *stage = json_string_value(json_object_get(msg, "stage"));
	const char *need = strcmp(t->spec.image, "desktop") ? "boot" : "desktop";

	if (t->gone || t->saving || t->state != VM_TEMPLATE_BUILDING || !type ||
	    strcmp(type, "ready") || !stage || strcmp(stage, need))
		return;
	t->saving = 1;
	log_info("template=%s ready stage=%s; saving", t->spec.id, stage);
	vm__save_template(vm, template_saved, t);
}

static void template_exit(struct vm *vm, const char *reason, void *arg)
{
	struct vm_template *t = arg;

	if (t->gone)
		return;
	t->vm = NULL;
	if (reason && !t->saving)
		template_fail(t, "%s", reason);
}

static void template_timeout(uv_timer_t *timer)
{
	struct vm_template *t = timer->data;

	if (t->gone || t->saving || t->state != VM_TEMPLATE_BUILDING)
		return;
	template_fail(t, "the guest was not ready within %d s", t->ready_timeout_ms / 1000);
}

static void template_booted(struct vm *vm, struct err *err, void *arg)
{
	struct vm_template *t = arg;

	if (t->gone)
		return;
	if (!vm) {
		template_fail(t, "boot: %s", err->msg);
		return;
	}
	t->vm = vm;
	if (t->state != VM_TEMPLATE_BUILDING) { /* failed meanwhile */
		vm_stop(vm, 1, NULL, NULL);
		return;
	}
	uv_timer_start(&t->timer, template_timeout, (uint64_t)t->ready_timeout_ms, 0);
}

static void template_provisioned(int status, struct err *err, void *arg)
{
	struct vm_template *t = arg;
	struct vm_callbacks cbs = {template_agent_msg, template_exit, t};

	if (t->gone)
		return;
	if (status) {
		template_fail(t, "provision: %s", err->msg);
		return;
	}
	vm__boot_dir(t->d, t->tmp, &t->spec, vm_driver_accel(t->d), &cbs, template_booted, t);
}

static void template_cleaned(int status, struct err *err, void *arg)
{
	struct vm_template *t = arg;

	if (t->gone)
		return;
	vm__provision_dir(t->d, t->tmp, &t->spec, template_provisioned, t);
}

void vm_template_build(struct vm_driver *d, const struct vm_spec *spec, int ready_timeout_ms)
{
	struct vm_template *t = template_find(d, spec);
	char id[ID_MAX];
	int pid;

	if (vm_template_state(d, spec) == VM_TEMPLATE_READY ||
	    (t && t->state == VM_TEMPLATE_BUILDING))
		return;
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->d = d;
		uv_timer_init(d->loop, &t->timer);
		t->timer.data = t;
		t->next = d->templates;
		d->templates = t;
	}
	t->spec = *spec;
	snprintf(id, sizeof(id), "tpl-%.8s-%dc%dm%dg", spec->image, spec->vcpus, spec->memory_mb,
		 spec->disk_gb);
	snprintf(t->spec.id, sizeof(t->spec.id), "%s", id);
	template_dir(d, spec, t->dir);
	snprintf(t->tmp, sizeof(t->tmp), "%s.tmp", t->dir);
	t->state = VM_TEMPLATE_BUILDING;
	t->error[0] = '\0';
	t->saving = 0;
	t->ready_timeout_ms = ready_timeout_ms > 0 ? ready_timeout_ms : 600000;
	t->started = uv_now(d->loop);
	/* A build an earlier bureaud left behind is not resumed. */
	if ((pid = vm__pid_read(t->tmp)) && vm__pid_alive(pid) && vm__pid_is_qemu_of(pid, id))
		kill(pid, SIGKILL);
	log_info("template=%s state=building image=%s/%s", id, spec->image, spec->image_version);
	vm__rm_async(d->loop, t->tmp, template_cleaned, t);
}

void vm_provision_template(struct vm_driver *d, const struct vm_spec *spec, vm_status_cb cb,
			   void *arg)
{
	char dir[PATH_MAX];

	template_dir(d, spec, dir);
	vm__provision_saved(d, spec, dir, cb, arg);
}

static const char *const template_states[] = {"none", "building", "ready", "failed"};

static json_t *template_json(const char *image, const char *version, int vcpus, int mem, int disk,
			     const char *state)
{
	return json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "image", image, "version", version,
			 "vcpus", vcpus, "memoryMb", mem, "diskGb", disk, "state", state);
}

/* Ready templates found on disk, under one image. */
static void templates_scan(struct vm_driver *d, const char *image, json_t *out)
{
	char path[PATH_MAX];
	DIR *vd, *kd;
	struct dirent *v, *k;

	snprintf(path, sizeof(path), "%s/templates/%s", d->state_dir, image);
	if (!(vd = opendir(path)))
		return;
	while ((v = readdir(vd))) {
		char vpath[PATH_MAX];
		if (v->d_name[0] == '.')
			continue;
		snprintf(vpath, sizeof(vpath), "%s/%s", path, v->d_name);
		if (!(kd = opendir(vpath)))
			continue;
		while ((k = readdir(kd))) {
			char kpath[PATH_MAX], tail[8];
			int c, m, g;
			json_t *j, *saved;
			if (sscanf(k->d_name, "%dc-%dm-%dg%7s", &c, &m, &g, tail) != 3)
				continue;
			snprintf(kpath, sizeof(kpath), "%s/%s/saved.json", vpath, k->d_name);
			if (!(saved = json_load_file(kpath, 0, NULL)))
				continue;
			j = template_json(image, v->d_name, c, m, g, "ready");
			json_object_set(j, "memoryBytes", json_object_get(saved, "memoryBytes"));
			json_object_set(j, "format", json_object_get(saved, "format"));
			json_object_set(j, "savedAt", json_object_get(saved, "savedAt"));
			json_decref(saved);
			json_array_append_new(out, j);
		}
		closedir(kd);
	}
	closedir(vd);
}

json_t *vm_templates_json(struct vm_driver *d)
{
	json_t *out = json_array();
	static const char *const images[] = {"desktop", "tiny"};

	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++)
		templates_scan(d, images[i], out);
	for (struct vm_template *t = d->templates; t; t = t->next) {
		json_t *j;
		size_t i;
		if (t->state == VM_TEMPLATE_READY) { /* on disk: listed, add the build time */
			json_array_foreach (out, i, j) {
				char dir[PATH_MAX];
				struct vm_spec s = t->spec;
				snprintf(s.image, sizeof(s.image), "%s",
					 json_string_value(json_object_get(j, "image")));
				snprintf(s.image_version, sizeof(s.image_version), "%s",
					 json_string_value(json_object_get(j, "version")));
				s.vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
				s.memory_mb =
				    (int)json_integer_value(json_object_get(j, "memoryMb"));
				s.disk_gb = (int)json_integer_value(json_object_get(j, "diskGb"));
				template_dir(d, &s, dir);
				if (!strcmp(dir, t->dir))
					json_object_set_new(j, "buildMs",
							    json_integer(t->build_ms));
			}
			continue;
		}
		j = template_json(t->spec.image, t->spec.image_version, t->spec.vcpus,
				  t->spec.memory_mb, t->spec.disk_gb, template_states[t->state]);
		if (*t->error)
			json_object_set_new(j, "error", json_string(t->error));
		json_array_append_new(out, j);
	}
	return out;
}

static void template_closed(uv_handle_t *h)
{
	struct vm_template *t = h->data;

	/* Callbacks still in flight hold a building one: it is left to them
	 * (a few bytes at exit) rather than freed under them. */
	if (t->state != VM_TEMPLATE_BUILDING)
		free(t);
}

/* bureaud is leaving: a half-built template is of no use to the next
 * one (it starts afresh), so its VM ends now. */
void vm__templates_free(struct vm_driver *d)
{
	struct vm_template *t;

	while ((t = d->templates)) {
		d->templates = t->next;
		if (t->vm && t->vm->pid)
			kill(t->vm->pid, SIGKILL);
		t->gone = 1;
		t->vm = NULL;
		uv_close((uv_handle_t *)&t->timer, template_closed);
	}
}
