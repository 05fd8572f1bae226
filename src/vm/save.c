/* Saved machines: a VM's memory and device state written next to the disk
 * it belongs to, and read back into a new QEMU.
 *
 * Files of a saved machine, in a desktop folder or a snapshot's:
 *   memory       QEMU's migration stream (raw, or zstd: saved.json says)
 *   saved.json   what the memory belongs to: the disk's size and mtime,
 *                the machine's size, where it came from
 * The image is written as memory.tmp while the guest is paused (QEMU's
 * `stop` flushes the disk first), fsynced and renamed; saved.json is
 * written last and removed first, so it is the commit point: a crash at
 * any moment leaves either a complete saved machine or none (and the
 * desktop cold-boots from a disk that was paused, never one that ran on
 * after the memory was taken). A resumed guest consumes its saved machine
 * before it runs again. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define SAVED_JSON_MAX 4096

enum save_kind { SAVE_HIBERNATE, SAVE_TEMPLATE, SAVE_SNAPSHOT };
enum save_step { STEP_PAUSING, STEP_MIGRATING, STEP_QUITTING, STEP_COMMITTING };

struct vm_save {
	struct vm *vm;
	struct vm_driver *d;
	enum save_kind kind;
	enum save_step step;
	char dir[PATH_MAX];    /* where the memory goes */
	char rel[PATH_MAX];    /* the same, relative to the VM's folder (QEMU's cwd) */
	char vm_dir[PATH_MAX]; /* the VM's folder (its disk) */
	struct vm_spec spec;
	char format[8];
	int64_t bytes;
	int failed;
	struct err err;
	uv_work_t work;
	vm_status_cb cb;
	vm_size_cb size_cb;
	void *arg;
};

static const char *const save_sources[] = {"hibernation", "template", "snapshot"};

void vm_driver_set_compress(struct vm_driver *d, const char *how)
{
	snprintf(d->save_compress, sizeof(d->save_compress), "%s",
		 how && !strcmp(how, "zstd") ? "zstd" : "none");
}

static const char *save_format(struct vm_driver *d)
{
	return d->save_compress[0] ? d->save_compress : "none";
}

/* ---- files ---- */

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = fsync(fd) ? -errno : 0;
	close(fd);
	return r;
}

/* Copies src to dst (through dst.tmp, fsynced, renamed). The kernel may
 * share extents (copy_file_range on a filesystem with reflinks). */
static int file_copy(const char *src, const char *dst)
{
	char tmp[PATH_MAX];
	struct stat st;
	int in, out, r = 0;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(in, &st) ||
	    (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while ((n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0)
		;
	if (n < 0 || fsync(out))
		r = -errno;
	close(in);
	if (close(out) && !r)
		r = -errno;
	if (!r && rename(tmp, dst))
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

static void saved_remove(const char *dir)
{
	static const char *const names[] = {"saved.json", "saved.json.tmp", "memory", "memory.tmp",
					    NULL};
	char path[PATH_MAX];

	for (const char *const *n = names; *n; n++)
		unlink(vm__path(path, dir, *n));
}

int vm__saved_commit(const char *dir, const char *source, const struct vm_spec *s,
		     const char *format, struct err *err)
{
	char mem[PATH_MAX], tmp[PATH_MAX], disk[PATH_MAX], path[PATH_MAX], *text;
	struct stat ms, ds;
	json_t *j;
	int r;

	vm__path(mem, dir, "memory");
	vm__path(tmp, dir, "memory.tmp");
	vm__path(disk, dir, "disk.qcow2");
	if (access(tmp, F_OK) == 0 && ((r = fsync_path(tmp, 0)) || rename(tmp, mem)))
		return err_sys(err, r ? -r : errno, "commit %s", tmp);
	if (stat(mem, &ms) || stat(disk, &ds))
		return err_sys(err, errno, "saved machine in %s", dir);
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:s, s:s}", "source", source,
		      "format", format, "memoryBytes", (json_int_t)ms.st_size, "diskBytes",
		      (json_int_t)ds.st_size, "diskMtimeNs",
		      (json_int_t)ds.st_mtim.tv_sec * 1000000000 + ds.st_mtim.tv_nsec, "savedAt",
		      (json_int_t)now_ms(), "vcpus", s->vcpus, "memoryMb", s->memory_mb, "diskGb",
		      s->disk_gb, "image", s->image, "imageVersion", s->image_version);
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	vm__path(path, dir, "saved.json");
	r = vm__file_write(path, text, strlen(text));
	free(text);
	if (r || (r = fsync_path(path, 0)) || (r = fsync_path(dir, 1)))
		return err_sys(err, -r, "write %s", path);
	return 0;
}

static int why_set(char *why, size_t n, const char *msg)
{
	if (why)
		snprintf(why, n, "%s", msg);
	return 0;
}

static int64_t json_int(json_t *j, const char *key)
{
	return json_integer_value(json_object_get(j, key));
}

/* Why the saved machine j (saved.json) cannot be resumed from dir, or
 * NULL when it can; fills *ms with the memory image's stat. */
static const char *saved_mismatch(const char *dir, json_t *j, const struct vm_spec *s,
				  struct stat *ms)
{
	char path[PATH_MAX];
	struct stat ds;

	if (stat(vm__path(path, dir, "memory"), ms) || ms->st_size != json_int(j, "memoryBytes"))
		return "the memory image is missing or cut";
	if (stat(vm__path(path, dir, "disk.qcow2"), &ds) ||
	    ds.st_size != json_int(j, "diskBytes") ||
	    ds.st_mtim.tv_sec * 1000000000LL + ds.st_mtim.tv_nsec != json_int(j, "diskMtimeNs"))
		return "the disk changed after the memory was saved";
	if (s && (s->vcpus != json_int(j, "vcpus") || s->memory_mb != json_int(j, "memoryMb")))
		return "the saved machine has another size";
	return NULL;
}

/* The saved machine in dir, checked against its disk and (when given)
 * the machine it must boot as. Returns 1 and fills out, or 0 with why. */
static int saved_check(const char *dir, const struct vm_spec *s, struct vm_saved *out, char *why,
		       size_t n)
{
	char path[PATH_MAX], *text;
	const char *bad;
	struct stat ms;
	json_t *j;

	if (!(text = vm__file_read(vm__path(path, dir, "saved.json"), SAVED_JSON_MAX, NULL)))
		return why_set(why, n,
			       access(vm__path(path, dir, "memory.tmp"), F_OK) == 0
				   ? "the last save did not complete (no saved.json)"
				   : "no saved machine");
	j = json_loads(text, 0, NULL);
	free(text);
	if (!j)
		return why_set(why, n, "saved.json is unreadable");
	if ((bad = saved_mismatch(dir, j, s, &ms))) {
		json_decref(j);
		return why_set(why, n, bad);
	}
	if (out) {
		memset(out, 0, sizeof(*out));
		snprintf(out->source, sizeof(out->source), "%s",
			 json_string_value(json_object_get(j, "source")) ?: "");
		snprintf(out->format, sizeof(out->format), "%s",
			 json_string_value(json_object_get(j, "format")) ?: "none");
		out->memory_bytes = ms.st_size;
		out->saved_at = json_int(j, "savedAt");
	}
	json_decref(j);
	return 1;
}

static void desktop_dir(struct vm_driver *d, const char *id, char *out)
{
	snprintf(out, PATH_MAX, "%s/desktops/%s", d->state_dir, id);
}

int vm_saved_get(struct vm_driver *d, const char *id, struct vm_saved *out, char *why, size_t n)
{
	char dir[PATH_MAX];

	if (name_check("desktop id", id, NULL))
		return 0;
	desktop_dir(d, id, dir);
	return saved_check(dir, NULL, out, why, n);
}

void vm_saved_discard(struct vm_driver *d, const char *id)
{
	char dir[PATH_MAX];

	if (name_check("desktop id", id, NULL))
		return;
	desktop_dir(d, id, dir);
	saved_remove(dir);
}

/* ---- saving ---- */

static void save_finish(struct vm_save *s)
{
	if (s->vm && s->vm->save == s)
		s->vm->save = NULL;
	if (s->failed)
		log_warnx("vm=%s save failed: %s", s->spec.id, s->err.msg);
	else
		log_info("vm=%s state=saved kind=%s bytes=%lld format=%s", s->spec.id,
			 save_sources[s->kind], (long long)s->bytes, s->format);
	if (s->size_cb)
		s->size_cb(s->failed ? -1 : s->bytes, s->kind == SAVE_SNAPSHOT && s->bytes > 0,
			   s->failed ? &s->err : NULL, s->arg);
	else
		s->cb(s->failed ? -1 : 0, s->failed ? &s->err : NULL, s->arg);
	vm__driver_unref(s->d);
	free(s);
}

static void save_cont_done(json_t *ret, struct err *err, void *arg)
{
	struct vm_save *s = arg;

	if (err)
		log_warnx("vm=%s cont after save: %s", s->spec.id, err->msg);
	save_finish(s);
}

/* The guest runs on (a snapshot, or a failed hibernation). */
static void save_resume_guest(struct vm_save *s)
{
	struct vm *vm = s->vm;

	if (vm && vm->state == VM_RUNNING && vm->qmp && qmp_is_ready(vm->qmp)) {
		vm->save = NULL;
		qmp_command(vm->qmp, "cont", NULL, 10000, save_cont_done, s);
		return;
	}
	save_finish(s);
}

static void save_fail(struct vm_save *s, const struct err *err, const char *what)
{
	char path[PATH_MAX];

	if (!s->failed) {
		s->failed = 1;
		s->err = *err;
		err_prefix(&s->err, "%s", what);
	}
	unlink(vm__path(path, s->dir, "memory.tmp"));
	if (s->vm)
		uv_timer_stop(&s->vm->save_timer);
	save_resume_guest(s);
}

static void save_commit_work(uv_work_t *w)
{
	struct vm_save *s = w->data;
	char src[PATH_MAX], dst[PATH_MAX];
	struct stat st;
	int r;

	if (s->kind == SAVE_SNAPSHOT) {
		vm__path(src, s->vm_dir, "disk.qcow2");
		vm__path(dst, s->dir, "disk.qcow2");
		if ((r = file_copy(src, dst))) {
			err_sys(&s->err, -r, "copy the disk");
			s->failed = 1;
			return;
		}
	}
	if (vm__saved_commit(s->dir, save_sources[s->kind], &s->spec, s->format, &s->err)) {
		s->failed = 1;
		return;
	}
	vm__path(src, s->dir, "memory");
	vm__path(dst, s->dir, "disk.qcow2");
	s->bytes = (stat(src, &st) ? 0 : st.st_size);
	if (s->kind == SAVE_SNAPSHOT && stat(dst, &st) == 0)
		s->bytes += st.st_size;
}

static void save_commit_done(uv_work_t *w, int status)
{
	struct vm_save *s = w->data;

	if (s->failed) {
		char path[PATH_MAX];
		unlink(vm__path(path, s->dir, "memory.tmp"));
	}
	if (s->kind == SAVE_SNAPSHOT)
		save_resume_guest(s);
	else
		save_finish(s);
}

static void save_commit(struct vm_save *s)
{
	s->step = STEP_COMMITTING;
	s->work.data = s;
	uv_queue_work(s->d->loop, &s->work, save_commit_work, save_commit_done);
}

/* QEMU is gone after a hibernation or a template: the disk is final. */
static void save_vm_gone(int status, struct err *err, void *arg)
{
	struct vm_save *s = arg;

	s->vm = NULL;
	save_commit(s);
}

static void save_poll(uv_timer_t *t);

static void save_migrate_status(json_t *ret, struct err *err, void *arg)
{
	struct vm_save *s = arg;
	const char *st = ret ? json_string_value(json_object_get(ret, "status")) : NULL;
	struct err e = ERR_INIT;

	if (!s->vm || s->step != STEP_MIGRATING)
		return; /* aborted meanwhile */
	if (!ret) {
		save_fail(s, err, "query-migrate");
		return;
	}
	if (st && !strcmp(st, "completed")) {
		if (s->kind == SAVE_SNAPSHOT) {
			save_commit(s);
			return;
		}
		s->step = STEP_QUITTING;
		s->vm->save = NULL;
		vm_stop(s->vm, 1, save_vm_gone, s);
		return;
	}
	if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
		err_set(&e, 500, "save_failed", "migration %s: %s", st,
			json_string_value(json_object_get(ret, "error-desc")) ?: "no detail");
		save_fail(s, &e, "save memory");
		return;
	}
	if (uv_now(s->d->loop) > s->vm->save_deadline) {
		err_set(&e, 504, "save_timeout", "the memory image took over %d s",
			VM_SAVE_TIMEOUT_MS / 1000);
		qmp_command(s->vm->qmp, "migrate_cancel", NULL, 5000, NULL, NULL);
		save_fail(s, &e, "save memory");
		return;
	}
	uv_timer_start(&s->vm->save_timer, save_poll, VM_SAVE_POLL_MS, 0);
}

static void save_poll(uv_timer_t *t)
{
	struct vm *vm = t->data;

	if (vm->save && vm->qmp)
		qmp_command(vm->qmp, "query-migrate", NULL, 10000, save_migrate_status, vm->save);
}

static void save_migrate_started(json_t *ret, struct err *err, void *arg)
{
	struct vm_save *s = arg;

	if (!s->vm || s->step != STEP_MIGRATING)
		return;
	if (!ret) {
		save_fail(s, err, "migrate");
		return;
	}
	uv_timer_start(&s->vm->save_timer, save_poll, VM_SAVE_POLL_MS, 0);
}

static void save_params_set(json_t *ret, struct err *err, void *arg)
{
	struct vm_save *s = arg;
	char uri[PATH_MAX + 64];

	if (!s->vm || s->step != STEP_MIGRATING)
		return;
	if (!ret) {
		save_fail(s, err, "migrate-set-parameters");
		return;
	}
	if (!strcmp(s->format, "zstd"))
		snprintf(uri, sizeof(uri), "exec:zstd -q -1 -T2 > '%s/memory.tmp'", s->rel);
	else
		snprintf(uri, sizeof(uri), "exec:cat > '%s/memory.tmp'", s->rel);
	qmp_command(s->vm->qmp, "migrate", json_pack("{s:s}", "uri", uri), 10000,
		    save_migrate_started, s);
}

static void save_paused(json_t *ret, struct err *err, void *arg)
{
	struct vm_save *s = arg;

	if (!s->vm || s->step != STEP_PAUSING)
		return;
	if (!ret) {
		save_fail(s, err, "pause");
		return;
	}
	s->step = STEP_MIGRATING;
	qmp_command(s->vm->qmp, "migrate-set-parameters",
		    json_pack("{s:I}", "max-bandwidth", (json_int_t)VM_SAVE_BANDWIDTH), 10000,
		    save_params_set, s);
}

static void save_fail_later(void *arg)
{
	struct vm_save *s = arg;

	save_finish(s);
}

/* Pauses the guest (QEMU flushes its disk on stop) and streams its memory
 * to dir/memory.tmp; what follows depends on the kind. */
static void save_start(struct vm *vm, enum save_kind kind, const char *dir, const char *rel,
		       vm_status_cb cb, vm_size_cb size_cb, void *arg)
{
	struct vm_save *s = xcalloc(1, sizeof(*s));
	char path[PATH_MAX];

	s->vm = vm;
	s->d = vm->d;
	vm->d->refs++;
	s->kind = kind;
	s->cb = cb;
	s->size_cb = size_cb;
	s->arg = arg;
	s->spec = vm->spec;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(s->rel, sizeof(s->rel), "%s", rel);
	snprintf(s->vm_dir, sizeof(s->vm_dir), "%s", vm->dir);
	snprintf(s->format, sizeof(s->format), "%s", save_format(vm->d));
	if (vm->state != VM_RUNNING || !vm->qmp || !qmp_is_ready(vm->qmp) || vm->save ||
	    vm->stop_requested || vm->incoming) {
		s->failed = 1;
		err_set(&s->err, 409, "conflict", "desktop %s cannot be saved now (%s)",
			vm->spec.id, vm->save ? "a save is under way" : "its VM is not running");
		s->vm = NULL;
		vm__later(vm->d->loop, save_fail_later, s);
		return;
	}
	if (kind != SAVE_SNAPSHOT)
		saved_remove(dir);
	unlink(vm__path(path, dir, "memory.tmp"));
	vm->save = s;
	vm->save_deadline = uv_now(vm->d->loop) + VM_SAVE_TIMEOUT_MS;
	log_info("vm=%s state=saving kind=%s format=%s", vm->spec.id, save_sources[kind],
		 s->format);
	qmp_command(vm->qmp, "stop", NULL, 30000, save_paused, s);
}

void vm__save_abort(struct vm *vm, const char *why)
{
	struct vm_save *s = vm->save;
	struct err err = ERR_INIT;

	if (!s)
		return;
	vm->save = NULL;
	s->vm = NULL;
	err_set(&err, 500, "save_failed", "QEMU ended during the save: %s", why);
	if (s->step <= STEP_MIGRATING)
		save_fail(s, &err, "save");
}

void vm_hibernate(struct vm *vm, vm_status_cb cb, void *arg)
{
	save_start(vm, SAVE_HIBERNATE, vm->dir, ".", cb, NULL, arg);
}

void vm__save_template(struct vm *vm, vm_status_cb cb, void *arg)
{
	save_start(vm, SAVE_TEMPLATE, vm->dir, ".", cb, NULL, arg);
}

/* ---- restoring ---- */

static void incoming_fail(struct vm *vm, const struct err *err)
{
	struct err e = *err;

	if (vm->state == VM_GONE)
		return;
	vm->incoming = 0;
	uv_timer_stop(&vm->save_timer);
	err_prefix(&e, "restore the saved machine");
	vm__boot_fail(vm, &e);
}

static void incoming_continued(json_t *ret, struct err *err, void *arg)
{
	struct vm *vm = arg;
	vm_done_cb cb = vm->done_cb;

	if (!vm->incoming)
		return;
	if (!ret) {
		incoming_fail(vm, err);
		return;
	}
	vm->incoming = 0;
	vm->done_cb = NULL;
	log_info("vm=%s state=running pid=%d restored=1", vm->spec.id, vm->pid);
	vm__agent_start(vm);
	if (cb)
		cb(vm, NULL, vm->done_arg);
}

static void incoming_poll(uv_timer_t *t);

/* Loaded: the saved machine is spent (removed before the guest runs on,
 * so it can never be resumed twice, nor after the disk moved on). */
static void incoming_status(json_t *ret, struct err *err, void *arg)
{
	struct vm *vm = arg;
	const char *st = ret ? json_string_value(json_object_get(ret, "status")) : NULL;
	struct err e = ERR_INIT;

	if (!vm->incoming)
		return;
	if (!ret) {
		incoming_fail(vm, err);
		return;
	}
	if (st && !strcmp(st, "inmigrate")) {
		if (uv_now(vm->d->loop) > vm->save_deadline) {
			err_set(&e, 504, "restore_timeout", "loading took over %d s",
				VM_RESTORE_TIMEOUT_MS / 1000);
			incoming_fail(vm, &e);
			return;
		}
		uv_timer_start(&vm->save_timer, incoming_poll, VM_SAVE_POLL_MS, 0);
		return;
	}
	saved_remove(vm->dir);
	fsync_path(vm->dir, 1);
	qmp_command(vm->qmp, "cont", NULL, 10000, incoming_continued, vm);
}

static void incoming_poll(uv_timer_t *t)
{
	struct vm *vm = t->data;

	if (vm->incoming && vm->qmp)
		qmp_command(vm->qmp, "query-status", NULL, 10000, incoming_status, vm);
}

static void incoming_started(json_t *ret, struct err *err, void *arg)
{
	struct vm *vm = arg;

	if (!vm->incoming)
		return;
	if (!ret) {
		incoming_fail(vm, err);
		return;
	}
	uv_timer_start(&vm->save_timer, incoming_poll, VM_SAVE_POLL_MS, 0);
}

void vm__incoming_start(struct vm *vm)
{
	struct vm_saved sv;
	char why[256], uri[64];
	struct err err = ERR_INIT;

	if (!saved_check(vm->dir, &vm->spec, &sv, why, sizeof(why))) {
		err_set(&err, 409, "no_saved_machine", "%s", why);
		incoming_fail(vm, &err);
		return;
	}
	vm->save_deadline = uv_now(vm->d->loop) + VM_RESTORE_TIMEOUT_MS;
	snprintf(uri, sizeof(uri), "%s",
		 !strcmp(sv.format, "zstd") ? "exec:zstd -q -d -c memory" : "exec:cat memory");
	log_info("vm=%s state=restoring source=%s bytes=%lld", vm->spec.id, sv.source,
		 (long long)sv.memory_bytes);
	qmp_command(vm->qmp, "migrate-incoming", json_pack("{s:s}", "uri", uri), 10000,
		    incoming_started, vm);
}

void vm_resume(struct vm_driver *d, const struct vm_spec *spec, const struct vm_callbacks *cbs,
	       vm_done_cb cb, void *arg)
{
	char dir[PATH_MAX];

	desktop_dir(d, spec->id, dir);
	vm__boot_dir_incoming(d, dir, spec, vm_driver_accel(d), cbs, cb, arg);
}

/* ---- provisioning from a saved machine (templates, snapshots) ---- */

struct vm_prov2 {
	uv_work_t work;
	struct vm_driver *d;
	struct vm_spec spec;
	char dir[PATH_MAX]; /* the new desktop's folder */
	char src[PATH_MAX]; /* the template's or snapshot's folder */
	char source[16];
	int link_disk; /* 1: overlay on src/disk.qcow2 (template); 0: copy */
	int failed;
	struct err err;
	vm_status_cb cb;
	void *arg;
};

static void prov2_finish(struct vm_prov2 *p)
{
	if (p->failed) {
		char path[PATH_MAX];
		saved_remove(p->dir);
		unlink(vm__path(path, p->dir, "disk.qcow2"));
		log_warnx("vm=%s provision from %s failed: %s", p->spec.id, p->source, p->err.msg);
	} else {
		log_info("vm=%s state=provisioned from=%s", p->spec.id, p->source);
	}
	p->cb(p->failed ? -1 : 0, p->failed ? &p->err : NULL, p->arg);
	vm__driver_unref(p->d);
	free(p);
}

/* Memory: a hard link (the image is never written again); then saved.json
 * names the new disk. */
static void prov2_memory_work(uv_work_t *w)
{
	struct vm_prov2 *p = w->data;
	char src[PATH_MAX], dst[PATH_MAX], fmt[8] = "none";
	struct vm_saved sv;
	int r;

	if (!p->link_disk) {
		vm__path(src, p->src, "disk.qcow2");
		vm__path(dst, p->dir, "disk.qcow2");
		if ((r = file_copy(src, dst))) {
			p->failed = 1;
			err_sys(&p->err, -r, "copy %s", src);
			return;
		}
	}
	if (!saved_check(p->src, NULL, &sv, NULL, 0)) {
		if (!p->link_disk)
			return; /* a disk-only snapshot: the copy cold-boots */
	} else {
		snprintf(fmt, sizeof(fmt), "%s", sv.format);
	}
	vm__path(src, p->src, "memory");
	vm__path(dst, p->dir, "memory.tmp");
	unlink(dst);
	if (link(src, dst) && (r = file_copy(src, dst))) {
		p->failed = 1;
		err_sys(&p->err, -r, "link %s", src);
		return;
	}
	if (vm__saved_commit(p->dir, p->source, &p->spec, fmt, &p->err))
		p->failed = 1;
}

static void prov2_memory_done(uv_work_t *w, int status)
{
	prov2_finish(w->data);
}

static void prov2_memory(struct vm_prov2 *p)
{
	p->work.data = p;
	uv_queue_work(p->d->loop, &p->work, prov2_memory_work, prov2_memory_done);
}

static void prov2_cloned(int status, const char *output, void *arg)
{
	struct vm_prov2 *p = arg;
	char tmp[PATH_MAX], disk[PATH_MAX];

	vm__path(tmp, p->dir, "disk.qcow2.tmp");
	vm__path(disk, p->dir, "disk.qcow2");
	if (status || rename(tmp, disk)) {
		unlink(tmp);
		p->failed = 1;
		err_set(&p->err, 500, "provision_failed", "qemu-img create: status %d: %s", status,
			output);
		prov2_finish(p);
		return;
	}
	prov2_memory(p);
}

static int prov2_prepare(struct vm_prov2 *p, struct err *err)
{
	char path[PATH_MAX];
	json_t *j;
	char *text;
	int r;

	if (vm__spec_check(&p->spec, err) || mkdir_p(p->dir, err))
		return -1;
	if (access(vm__path(path, p->dir, "disk.qcow2"), F_OK) == 0)
		return err_set(err, 409, "conflict", "desktop %s is provisioned already",
			       p->spec.id);
	j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "id", p->spec.id, "image", p->spec.image,
		      "imageVersion", p->spec.image_version, "vcpus", p->spec.vcpus, "memoryMb",
		      p->spec.memory_mb, "diskGb", p->spec.disk_gb);
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	r = vm__file_write(vm__path(path, p->dir, "spec.json"), text, strlen(text));
	free(text);
	return r ? err_sys(err, -r, "write spec.json") : 0;
}

static void prov2_start(struct vm_driver *d, const struct vm_spec *spec, const char *src,
			const char *source, int link_disk, vm_status_cb cb, void *arg)
{
	struct vm_prov2 *p = xcalloc(1, sizeof(*p));
	char base[PATH_MAX], size[32];
	struct err err = ERR_INIT;

	p->d = d;
	d->refs++;
	p->spec = *spec;
	p->link_disk = link_disk;
	p->cb = cb;
	p->arg = arg;
	snprintf(p->src, sizeof(p->src), "%s", src);
	snprintf(p->source, sizeof(p->source), "%s", source);
	desktop_dir(d, spec->id, p->dir);
	if (prov2_prepare(p, &err)) {
		p->failed = 1;
		p->err = err;
		prov2_finish(p);
		return;
	}
	if (!link_disk) {
		prov2_memory(p);
		return;
	}
	snprintf(size, sizeof(size), "%dG", spec->disk_gb);
	vm__path(base, src, "disk.qcow2");
	{
		char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2",
				"-F",	    "qcow2",  "-b", base, "disk.qcow2.tmp",
				size,	    NULL};
		if (vm__run(d->loop, argv, p->dir, prov2_cloned, p, &p->err)) {
			p->failed = 1;
			prov2_finish(p);
		}
	}
}

void vm__provision_saved(struct vm_driver *d, const struct vm_spec *spec, const char *src,
			 vm_status_cb cb, void *arg)
{
	prov2_start(d, spec, src, "template", 1, cb, arg);
}

/* ---- snapshots ---- */

static int snapshot_dir(struct vm_driver *d, const char *id, const char *sid, char *out,
			struct err *err)
{
	if (name_check("desktop id", id, err) || name_check("snapshot id", sid, err))
		return -1;
	snprintf(out, PATH_MAX, "%s/desktops/%s/snapshots/%s", d->state_dir, id, sid);
	return 0;
}

struct vm_snapfile {
	uv_work_t work;
	struct vm_driver *d;
	char id[ID_MAX];
	char dir[PATH_MAX];  /* the desktop's folder */
	char sdir[PATH_MAX]; /* the snapshot's folder */
	int op;		     /* 0 save (stopped), 1 restore */
	int64_t bytes;
	int with_memory;
	int failed;
	struct err err;
	vm_status_cb cb;
	vm_size_cb size_cb;
	void *arg;
};

/* A stopped desktop: its disk, and its saved machine when hibernated. */
static void snap_save_stopped_work(struct vm_snapfile *f)
{
	char src[PATH_MAX], dst[PATH_MAX];
	struct vm_saved sv;
	struct stat st;
	int r;

	vm__path(src, f->dir, "disk.qcow2");
	vm__path(dst, f->sdir, "disk.qcow2");
	if ((r = file_copy(src, dst))) {
		err_sys(&f->err, -r, "copy the disk");
		f->failed = 1;
		return;
	}
	f->bytes = stat(dst, &st) ? 0 : st.st_size;
	if (!saved_check(f->dir, NULL, &sv, NULL, 0))
		return;
	vm__path(src, f->dir, "memory");
	vm__path(dst, f->sdir, "memory");
	if (link(src, dst) && (r = file_copy(src, dst))) {
		err_sys(&f->err, -r, "copy the saved machine");
		f->failed = 1;
		return;
	}
	/* A new saved.json names the copied disk (same size, another mtime). */
	{
		struct vm_spec s = {0};
		json_t *j = json_load_file(vm__path(src, f->dir, "saved.json"), 0, NULL);
		s.vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
		s.memory_mb = (int)json_integer_value(json_object_get(j, "memoryMb"));
		s.disk_gb = (int)json_integer_value(json_object_get(j, "diskGb"));
		snprintf(s.image, sizeof(s.image), "%s",
			 json_string_value(json_object_get(j, "image")) ?: "");
		snprintf(s.image_version, sizeof(s.image_version), "%s",
			 json_string_value(json_object_get(j, "imageVersion")) ?: "");
		json_decref(j);
		if (vm__saved_commit(f->sdir, "snapshot", &s, sv.format, &f->err)) {
			f->failed = 1;
			return;
		}
	}
	f->with_memory = 1;
	f->bytes += sv.memory_bytes;
}

/* The desktop's disk and saved machine become the snapshot's: disk
 * copied, memory linked, saved.json rewritten for the new disk. */
static void snap_restore_work(struct vm_snapfile *f)
{
	char src[PATH_MAX], dst[PATH_MAX], fmt[8] = "none";
	struct vm_saved sv;
	struct vm_spec s = {0};
	json_t *j;
	int r, mem = saved_check(f->sdir, NULL, &sv, NULL, 0);

	saved_remove(f->dir);
	if ((r = file_copy(vm__path(src, f->sdir, "disk.qcow2"),
			   vm__path(dst, f->dir, "disk.qcow2")))) {
		err_sys(&f->err, -r, "copy the snapshot's disk");
		f->failed = 1;
		return;
	}
	if (!mem)
		return;
	snprintf(fmt, sizeof(fmt), "%s", sv.format);
	j = json_load_file(vm__path(src, f->sdir, "saved.json"), 0, NULL);
	s.vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
	s.memory_mb = (int)json_integer_value(json_object_get(j, "memoryMb"));
	s.disk_gb = (int)json_integer_value(json_object_get(j, "diskGb"));
	json_decref(j);
	vm__path(src, f->sdir, "memory");
	vm__path(dst, f->dir, "memory.tmp");
	if ((link(src, dst) && (r = file_copy(src, dst))) ||
	    vm__saved_commit(f->dir, "snapshot", &s, fmt, &f->err)) {
		if (r)
			err_sys(&f->err, -r, "link the snapshot's memory");
		f->failed = 1;
		saved_remove(f->dir);
	}
}

static void snapfile_work(uv_work_t *w)
{
	struct vm_snapfile *f = w->data;

	if (f->op == 0)
		snap_save_stopped_work(f);
	else
		snap_restore_work(f);
}

static void snapfile_done(uv_work_t *w, int status)
{
	struct vm_snapfile *f = w->data;

	if (f->size_cb)
		f->size_cb(f->failed ? -1 : f->bytes, f->with_memory, f->failed ? &f->err : NULL,
			   f->arg);
	else
		f->cb(f->failed ? -1 : 0, f->failed ? &f->err : NULL, f->arg);
	vm__driver_unref(f->d);
	free(f);
}

static struct vm_snapfile *snapfile_new(struct vm_driver *d, const char *id, const char *sdir)
{
	struct vm_snapfile *f = xcalloc(1, sizeof(*f));

	f->d = d;
	d->refs++;
	snprintf(f->id, sizeof(f->id), "%s", id);
	desktop_dir(d, id, f->dir);
	snprintf(f->sdir, sizeof(f->sdir), "%s", sdir);
	f->work.data = f;
	return f;
}

struct vm_size_fail {
	vm_size_cb cb;
	struct err err;
	void *arg;
};

static void size_fail_fire(void *p)
{
	struct vm_size_fail *f = p;

	f->cb(-1, 0, &f->err, f->arg);
	free(f);
}

void vm_snapshot_save(struct vm_driver *d, struct vm *vm, const char *id, const char *sid,
		      vm_size_cb cb, void *arg)
{
	char sdir[PATH_MAX], rel[PATH_MAX];
	struct err err = ERR_INIT;
	struct vm_snapfile *f;

	if (snapshot_dir(d, id, sid, sdir, &err) || mkdir_p(sdir, &err)) {
		struct vm_size_fail *x = xcalloc(1, sizeof(*x));
		x->cb = cb;
		x->err = err;
		x->arg = arg;
		vm__later(d->loop, size_fail_fire, x);
		return;
	}
	if (vm) {
		snprintf(rel, sizeof(rel), "snapshots/%s", sid);
		save_start(vm, SAVE_SNAPSHOT, sdir, rel, NULL, cb, arg);
		return;
	}
	f = snapfile_new(d, id, sdir);
	f->size_cb = cb;
	f->arg = arg;
	uv_queue_work(d->loop, &f->work, snapfile_work, snapfile_done);
}

void vm_snapshot_restore(struct vm_driver *d, const char *id, const char *sid, vm_status_cb cb,
			 void *arg)
{
	char sdir[PATH_MAX], path[PATH_MAX];
	struct err err = ERR_INIT;
	struct vm_snapfile *f;

	if (snapshot_dir(d, id, sid, sdir, &err) ||
	    (vm__find(d, id) && err_set(&err, 409, "conflict", "desktop %s is running", id)) ||
	    (access(vm__path(path, sdir, "disk.qcow2"), F_OK) &&
	     err_set(&err, 404, "not_found", "snapshot %s has no files", sid))) {
		vm__status_later(d->loop, cb, -1, &err, arg);
		return;
	}
	f = snapfile_new(d, id, sdir);
	f->op = 1;
	f->cb = cb;
	f->arg = arg;
	uv_queue_work(d->loop, &f->work, snapfile_work, snapfile_done);
}

void vm_snapshot_delete(struct vm_driver *d, const char *id, const char *sid, vm_status_cb cb,
			void *arg)
{
	char sdir[PATH_MAX];
	struct err err = ERR_INIT;

	if (snapshot_dir(d, id, sid, sdir, &err)) {
		vm__status_later(d->loop, cb, -1, &err, arg);
		return;
	}
	vm__rm_async(d->loop, sdir, cb, arg);
}

void vm_provision_snapshot(struct vm_driver *d, const struct vm_spec *spec, const char *src_id,
			   const char *sid, vm_status_cb cb, void *arg)
{
	char sdir[PATH_MAX];
	struct err err = ERR_INIT;

	if (snapshot_dir(d, src_id, sid, sdir, &err) || name_check("desktop id", spec->id, &err)) {
		vm__status_later(d->loop, cb, -1, &err, arg);
		return;
	}
	prov2_start(d, spec, sdir, "snapshot", 0, cb, arg);
}
