/* The local QEMU driver: provisioning, boot, attach, stop, exit detection,
 * destroy and screenshots. The agent channel is in agent.c, the
 * accelerator probe in probe.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/pixmap.h"
#include "vm/qemu_priv.h"

#define VM_DEFAULT_STOP_TIMEOUT_MS 30000
#define VM_DESTROY_KILL_WAIT_MS 5000
#define VM_QMP_LOST_GRACE_MS 5000 /* QMP closed, yet the pid lives on */
#define VM_ARGS_MAX 96

/* QEMU runs under a shell that outlives bureaud with it and records how
 * QEMU ended, so a later bureaud can still tell a crash from a poweroff. */
#define VM_LAUNCH_SCRIPT                                                                           \
	"\"$0\" \"$@\" >qemu.log 2>&1; s=$?; echo $s >exit-status.tmp; mv -f exit-status.tmp "     \
	"exit-status"

struct vm_launcher {
	struct vm_launcher *next;
	uv_process_t proc;
	struct vm_driver *d;
	struct vm *vm;
};

/* ---- deferred calls ---- */

struct vm_later {
	uv_timer_t timer;
	void (*fn)(void *arg);
	void *arg;
};

static void vm__later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void vm__later_fired(uv_timer_t *t)
{
	struct vm_later *l = t->data;

	l->fn(l->arg);
	uv_close((uv_handle_t *)t, vm__later_closed);
}

void vm__later_ms(uv_loop_t *loop, uint64_t ms, void (*fn)(void *arg), void *arg)
{
	struct vm_later *l = xcalloc(1, sizeof(*l));

	l->fn = fn;
	l->arg = arg;
	uv_timer_init(loop, &l->timer);
	l->timer.data = l;
	uv_timer_start(&l->timer, vm__later_fired, ms, 0);
}

void vm__later(uv_loop_t *loop, void (*fn)(void *arg), void *arg)
{
	vm__later_ms(loop, 0, fn, arg);
}

struct vm_result {
	vm_status_cb status_cb;
	vm_done_cb done_cb;
	int status;
	int failed;
	struct err err;
	void *arg;
};

static void vm__result_fire(void *p)
{
	struct vm_result *r = p;

	if (r->status_cb)
		r->status_cb(r->status, r->failed ? &r->err : NULL, r->arg);
	else
		r->done_cb(NULL, &r->err, r->arg);
	free(r);
}

void vm__status_later(uv_loop_t *loop, vm_status_cb cb, int status, const struct err *err,
		      void *arg)
{
	struct vm_result *r = xcalloc(1, sizeof(*r));

	r->status_cb = cb;
	r->status = status;
	r->arg = arg;
	if (err) {
		r->failed = 1;
		r->err = *err;
	}
	vm__later(loop, vm__result_fire, r);
}

static void vm__done_later(uv_loop_t *loop, vm_done_cb cb, const struct err *err, void *arg)
{
	struct vm_result *r = xcalloc(1, sizeof(*r));

	r->done_cb = cb;
	r->err = *err;
	r->arg = arg;
	vm__later(loop, vm__result_fire, r);
}

/* ---- the driver ---- */

static char *vm__path_abs(const char *p)
{
	char cwd[PATH_MAX];

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return xstrdup(p);
	return xasprintf("%s/%s", cwd, p);
}

int vm_driver_new(uv_loop_t *loop, const struct vm_driver_config *cfg, struct vm_driver **out,
		  struct err *err)
{
	const char *accel = cfg->accel ? cfg->accel : "auto";
	struct vm_driver *d;
	char *desktops;
	int r;

	if (strcmp(accel, "auto") && strcmp(accel, "kvm") && strcmp(accel, "tcg"))
		return err_set(err, 500, "internal", "accel must be auto, kvm or tcg, not %s",
			       accel);
	if (strlen(cfg->state_dir) >= VM_DIR_MAX / 2 || strlen(cfg->image_dir) >= VM_DIR_MAX / 2)
		return err_set(err, 500, "internal", "state or image dir path too long");
	d = xcalloc(1, sizeof(*d));
	d->loop = loop;
	d->refs = 1;
	d->state_dir = vm__path_abs(cfg->state_dir);
	d->image_dir = vm__path_abs(cfg->image_dir);
	d->qemu = xstrdup(cfg->qemu_binary ? cfg->qemu_binary : "qemu-system-x86_64");
	d->stop_timeout_ms =
	    cfg->stop_timeout_ms > 0 ? cfg->stop_timeout_ms : VM_DEFAULT_STOP_TIMEOUT_MS;
	snprintf(d->accel_cfg, sizeof(d->accel_cfg), "%s", accel);
	if (strcmp(accel, "auto"))
		snprintf(d->accel, sizeof(d->accel), "%s", accel);
	desktops = xasprintf("%s/desktops", d->state_dir);
	r = mkdir_p(desktops, err);
	free(desktops);
	if (r) {
		vm__driver_unref(d);
		return -1;
	}
	*out = d;
	return 0;
}

void vm__driver_unref(struct vm_driver *d)
{
	if (--d->refs > 0)
		return;
	free(d->state_dir);
	free(d->image_dir);
	free(d->qemu);
	free(d);
}

void vm_driver_set_free_page_reporting(struct vm_driver *d, int on)
{
	d->no_free_page_reporting = !on;
}

const char *vm_driver_accel(struct vm_driver *d)
{
	return d->accel[0] ? d->accel : "tcg";
}

struct vm *vm__find(struct vm_driver *d, const char *id)
{
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (!strcmp(vm->spec.id, id))
			return vm;
	return NULL;
}

/* ---- a vm's life ---- */

static void vm__tick_fired(uv_timer_t *t);

static void vm__tick_at(struct vm *vm, uint64_t ms)
{
	if (vm->state != VM_GONE)
		uv_timer_start(&vm->tick, vm__tick_fired, ms, 0);
}

/* Socket paths must fit sockaddr_un; a long state dir is reached through
 * the folder's descriptor instead (/proc/self/fd/N/qmp.sock). */
static void vm__sock_path(struct vm *vm, const char *name, char *out)
{
	if (snprintf(out, VM_SOCK_MAX, "%s/%s", vm->dir, name) < VM_SOCK_MAX)
		return;
	if (vm->dirfd < 0)
		vm->dirfd = open(vm->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(out, VM_SOCK_MAX, "/proc/self/fd/%d/%s", vm->dirfd, name);
}

static struct vm *vm__new(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
			  const struct vm_callbacks *cbs)
{
	struct vm *vm = xcalloc(1, sizeof(*vm));
	uv_timer_t *timers[] = {&vm->tick, &vm->stop_timer, &vm->agent_timer, &vm->req_timer,
				&vm->save_timer};

	vm->d = d;
	vm->spec = *spec;
	vm->cbs = *cbs;
	vm->dirfd = -1;
	vm->exit_status = -1;
	snprintf(vm->dir, sizeof(vm->dir), "%s", dir);
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
		uv_timer_init(d->loop, timers[i]);
		timers[i]->data = vm;
		vm->handles++;
	}
	vm->agent.data = vm;
	ch_decoder_init(&vm->dec);
	vm__sock_path(vm, "qmp.sock", vm->qmp_path);
	vm__sock_path(vm, "agent.sock", vm->agent_path);
	vm__sock_path(vm, "vnc.sock", vm->vnc_path);
	vm->next = d->vms;
	d->vms = vm;
	d->refs++;
	return vm;
}

void vm__handle_closed(uv_handle_t *h)
{
	struct vm *vm = h->data;
	struct vm_driver *d = vm->d;

	if (--vm->handles > 0)
		return;
	ch_decoder_release(&vm->dec);
	if (vm->dirfd >= 0)
		close(vm->dirfd);
	free(vm);
	vm__driver_unref(d);
}

static void vm__waiters_call(struct vm *vm, int status, const struct err *err)
{
	struct vm_waiter *w;

	while ((w = vm->waiters)) {
		vm->waiters = w->next;
		vm__status_later(vm->d->loop, w->cb, status, err, w->arg);
		free(w);
	}
}

/* Forgets the vm: connections closed, timers closed, freed once libuv has
 * let go of every handle. The QEMU process is not touched. */
static void vm__release(struct vm *vm)
{
	uv_timer_t *timers[] = {&vm->tick, &vm->stop_timer, &vm->agent_timer, &vm->req_timer,
				&vm->save_timer};

	if (vm->state == VM_GONE)
		return;
	vm->state = VM_GONE;
	for (struct vm **p = &vm->d->vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	if (vm->launcher)
		vm->launcher->vm = NULL;
	if (vm->qmp) {
		struct qmp *q = vm->qmp;
		vm->qmp = NULL;
		qmp_close(q);
	}
	vm__agent_release(vm);
	vm__waiters_call(vm, 0, NULL);
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		uv_close((uv_handle_t *)timers[i], vm__handle_closed);
}

const char *vm_id(const struct vm *vm)
{
	return vm->spec.id;
}

int vm_pid(const struct vm *vm)
{
	return vm->pid;
}

int vm_exit_status(const struct vm *vm)
{
	return vm->exit_status;
}

int vm_exit_crashed(int status)
{
	int sig = status > 128 ? status - 128 : 0;

	return sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGILL || sig == SIGFPE;
}

const char *vm_vnc_path(const struct vm *vm)
{
	return vm->vnc_path;
}

/* ---- exit ---- */

static int vm__exit_status_read(const char *dir)
{
	char path[PATH_MAX], *s;
	int status = -1;

	if ((s = vm__file_read(vm__path(path, dir, "exit-status"), 64, NULL))) {
		if (s[0] >= '0' && s[0] <= '9')
			status = atoi(s);
		free(s);
	}
	return status;
}

/* Why a VM ended, for people: QEMU's status, then the guest's last words. */
static char *vm__exit_reason(const char *dir, int status, int guest_shutdown)
{
	char path[PATH_MAX], *serial, *qlog;
	struct buf b = BUF_INIT;

	buf_puts(&b, guest_shutdown ? "guest powered off" : "qemu exited");
	if (status < 0)
		buf_puts(&b, " (status unknown)");
	else if (status > 128)
		buf_printf(&b, " with status %d (killed by signal %d)", status, status - 128);
	else
		buf_printf(&b, " with status %d", status);
	qlog = vm__file_tail(vm__path(path, dir, "qemu.log"), 3);
	if (*qlog && status != 0)
		buf_printf(&b, "; qemu: %s", qlog);
	serial = vm__file_tail(vm__path(path, dir, "serial.log"), VM_SERIAL_TAIL_LINES);
	buf_printf(&b, "; serial: %s", serial);
	free(qlog);
	free(serial);
	return buf_detach(&b, NULL);
}

int vm_last_exit(struct vm_driver *d, const char *id, char *reason, size_t n)
{
	char dir[PATH_MAX], *r;
	int status;

	if (name_check("desktop id", id, NULL))
		return 0;
	snprintf(dir, sizeof(dir), "%s/desktops/%s", d->state_dir, id);
	if ((status = vm__exit_status_read(dir)) < 0)
		return 0;
	r = vm__exit_reason(dir, status, 0);
	snprintf(reason, n, "%s", r);
	free(r);
	return 1;
}

static void vm__exit_finish(struct vm *vm)
{
	char *reason;

	vm->exit_status = vm__exit_status_read(vm->dir);
	reason = vm->stop_requested ? NULL
				    : vm__exit_reason(vm->dir, vm->exit_status, vm->guest_shutdown);

	log_info("vm=%s state=exited pid=%d reason=%s", vm->spec.id, vm->pid,
		 reason ? reason : "stopped");
	uv_timer_stop(&vm->stop_timer);
	vm__save_abort(vm, reason ? reason : "it was stopped");
	vm__waiters_call(vm, 0, NULL);
	if (vm->incoming && vm->done_cb) {
		/* It died while loading a saved machine: the boot failed. */
		vm_done_cb cb = vm->done_cb;
		void *arg = vm->done_arg;
		struct err err = ERR_INIT;
		err_set(&err, 500, "restore_failed", "QEMU ended while restoring: %s",
			reason ? reason : "stopped");
		vm->done_cb = NULL;
		vm->incoming = 0;
		free(reason);
		vm__release(vm);
		cb(NULL, &err, arg);
		return;
	}
	if (vm->cbs.on_exit)
		vm->cbs.on_exit(vm, reason, vm->cbs.arg);
	free(reason);
	vm__release(vm);
}

/* QEMU is gone or going: stop talking to it and collect why. */
static void vm__exit_begin(struct vm *vm)
{
	if (vm->state != VM_RUNNING)
		return;
	vm->state = VM_EXITING;
	vm->exit_since = uv_now(vm->d->loop);
	if (vm->qmp) {
		struct qmp *q = vm->qmp;
		vm->qmp = NULL;
		qmp_close(q);
	}
	vm__agent_fail_all(vm, "the VM exited");
	vm__tick_at(vm, 0);
}

/* Waits for the pid to vanish and for the launcher's exit-status. */
static void vm__exit_step(struct vm *vm)
{
	uint64_t waited = uv_now(vm->d->loop) - vm->exit_since;
	char path[PATH_MAX];

	if (vm__pid_alive(vm->pid)) {
		if (waited < VM_QMP_LOST_GRACE_MS) {
			vm__tick_at(vm, 50);
			return;
		}
		log_warnx("vm=%s QMP closed but pid %d lives on; reconnecting", vm->spec.id,
			  vm->pid);
		vm->state = VM_RUNNING;
		vm__agent_start(vm);
		vm__tick_at(vm, 0);
		return;
	}
	vm__path(path, vm->dir, "exit-status");
	if (!vm->launcher_done && access(path, F_OK) && waited < VM_EXIT_STATUS_WAIT_MS) {
		vm__tick_at(vm, 50);
		return;
	}
	vm__exit_finish(vm);
}

/* ---- QMP ---- */

static void vm__booted(struct vm *vm);

static void vm__qmp_ready(struct qmp *q, struct err *err, void *arg)
{
	struct vm *vm = arg;

	if (!err) {
		if (vm->state == VM_BOOTING)
			vm__booted(vm);
		return;
	}
	vm->qmp = NULL;
	if (vm->state == VM_BOOTING && vm->attaching)
		vm__boot_fail(vm, err);
	/* else: booting QEMU not listening yet, or a lost QMP; the tick retries */
}

static void vm__qmp_event(struct qmp *q, const char *event, json_t *data, void *arg)
{
	struct vm *vm = arg;

	if (!strcmp(event, "VSERPORT_CHANGE")) {
		if (!strcmp(json_string_value(json_object_get(data, "id")) ?: "", "agentport"))
			vm__agent_port_changed(vm, json_is_true(json_object_get(data, "open")));
		return;
	}
	if (!strcmp(event, "SHUTDOWN") && json_is_true(json_object_get(data, "guest")))
		vm->guest_shutdown = 1;
	log_info("vm=%s qmp_event=%s reason=%s", vm->spec.id, event,
		 json_string_value(json_object_get(data, "reason")) ?: "-");
}

static void vm__qmp_closed(struct qmp *q, void *arg)
{
	struct vm *vm = arg;

	vm->qmp = NULL;
	vm__exit_begin(vm);
}

static void vm__qmp_connect(struct vm *vm)
{
	struct qmp_callbacks cbs = {vm__qmp_ready, vm__qmp_event, vm__qmp_closed, vm};
	struct err err = ERR_INIT;

	if (vm->qmp)
		return;
	vm->qmp = qmp_connect(vm->d->loop, vm->qmp_path, &cbs, &err);
	if (!vm->qmp)
		log_warnx("vm=%s %s", vm->spec.id, err.msg);
}

/* ---- boot ---- */

struct vm_args {
	char *v[VM_ARGS_MAX];
	int n;
};

static void vm__arg(struct vm_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vm__arg(struct vm_args *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->n >= VM_ARGS_MAX - 1)
		fatalx("vm: too many qemu arguments");
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		fatalx("vm: out of memory");
	va_end(ap);
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void vm__args_free(struct vm_args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* The part of the QEMU command line every VM shares. QEMU runs with the
 * desktop folder as its cwd, so every path the VM owns is short and
 * relative (unix socket paths are limited to 107 bytes). */
/* clang-format off */
static const char *const vm_args_common[] = {
	"-machine", "q35",
	"-nodefaults", "-no-user-config",
	"-drive", "file=disk.qcow2,if=virtio,format=qcow2,cache=writeback,discard=unmap",
	"-vga", "std", "-display", "none", "-vnc", "unix:vnc.sock",
	"-qmp", "unix:qmp.sock,server=on,wait=off",
	"-device", "virtio-serial-pci,id=vser0",
	"-chardev", "socket,id=agent,path=agent.sock,server=on,wait=off",
	"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" CH_PORT_NAME ",id=agentport",
	"-chardev", "file,id=serial,path=serial.log", "-serial", "chardev:serial",
	"-device", "virtio-rng-pci",
	/* No route out (restrict=on): the guest reaches only 10.0.2.100:3128,
	 * forwarded to bureaud's egress proxy for this desktop (issue 6). The
	 * socket path is relative to the desktop folder, QEMU's cwd. */
	"-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:socat STDIO UNIX-CONNECT:egress.sock",
	"-device", "virtio-net-pci,netdev=n0",
	"-pidfile", "qemu.pid",
	NULL,
};
/* clang-format on */

static void vm__args_build(struct vm_args *a, const struct vm_spec *s, const struct vm_manifest *m,
			   const char *accel, int d_free_page_reporting)
{
	int kvm = !strcmp(accel, "kvm");

	vm__arg(a, "-name");
	vm__arg(a, "%s", s->id);
	vm__arg(a, "-accel");
	vm__arg(a, "%s", kvm ? "kvm" : "tcg,tb-size=256");
	if (kvm) {
		vm__arg(a, "-cpu");
		vm__arg(a, "host");
	}
	vm__arg(a, "-smp");
	vm__arg(a, "%d", s->vcpus);
	vm__arg(a, "-m");
	vm__arg(a, "%d", s->memory_mb);
	vm__arg(a, "-kernel");
	vm__arg(a, "%s", m->kernel);
	vm__arg(a, "-initrd");
	vm__arg(a, "%s", m->initrd);
	vm__arg(a, "-append");
	vm__arg(a, "%s", m->cmdline);
	/* The guest's kernel sets the EDID preferred mode at boot. */
	if (s->screen_width > 0 && s->screen_height > 0) {
		vm__arg(a, "-global");
		vm__arg(a, "VGA.xres=%d", s->screen_width);
		vm__arg(a, "-global");
		vm__arg(a, "VGA.yres=%d", s->screen_height);
	}
	/* Density: the guest hands the pages it frees back to the host (KSM
	 * merges identical ones where it runs; QEMU's mem-merge is on). A
	 * saved machine must be resumed with the same setting. */
	vm__arg(a, "-device");
	vm__arg(a, "virtio-balloon-pci,id=balloon0,free-page-reporting=%s",
		d_free_page_reporting ? "on" : "off");
	for (const char *const *c = vm_args_common; *c; c++)
		vm__arg(a, "%s", *c);
}

static void vm__launcher_closed(uv_handle_t *h)
{
	struct vm_launcher *l = h->data;
	struct vm_driver *d = l->d;

	for (struct vm_launcher **p = &d->launchers; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	free(l);
	vm__driver_unref(d);
}

static void vm__launcher_exited(uv_process_t *p, int64_t status, int sig)
{
	struct vm_launcher *l = p->data;

	if (l->vm) {
		l->vm->launcher = NULL;
		l->vm->launcher_done = 1;
		vm__tick_at(l->vm, 0);
	}
	uv_close((uv_handle_t *)p, vm__launcher_closed);
}

/* Starts `sh -c LAUNCH_SCRIPT qemu args...` in its own session, unref'd:
 * bureaud may exit while it runs. */
static int vm__launch(struct vm *vm, struct vm_args *a, struct err *err)
{
	struct vm_launcher *l = xcalloc(1, sizeof(*l));
	char *argv[VM_ARGS_MAX + 4] = {"/bin/sh", "-c", VM_LAUNCH_SCRIPT, vm->d->qemu};
	uv_process_options_t o = {0};
	int r;

	memcpy(argv + 4, a->v, sizeof(char *) * (size_t)(a->n + 1));
	o.file = argv[0];
	o.args = argv;
	o.cwd = vm->dir;
	o.flags = UV_PROCESS_DETACHED;
	o.exit_cb = vm__launcher_exited;
	l->proc.data = l;
	l->d = vm->d;
	if ((r = uv_spawn(vm->d->loop, &l->proc, &o)) < 0) {
		uv_close((uv_handle_t *)&l->proc, vm__later_closed); /* libuv wants it closed */
		return err_set(err, 500, "internal", "spawn qemu: %s", uv_strerror(r));
	}
	uv_unref((uv_handle_t *)&l->proc);
	l->vm = vm;
	l->next = vm->d->launchers;
	vm->d->launchers = l;
	vm->d->refs++;
	vm->launcher = l;
	return 0;
}

void vm__boot_fail(struct vm *vm, struct err *err)
{
	vm_done_cb cb = vm->done_cb;
	void *arg = vm->done_arg;
	int pid = vm->pid ? vm->pid : vm__pid_read(vm->dir);

	if (!vm->attaching && pid && vm__pid_is_qemu_of(pid, vm->spec.id))
		kill(pid, SIGKILL);
	log_warnx("vm=%s %s failed: %s", vm->spec.id, vm->attaching ? "attach" : "boot", err->msg);
	vm->done_cb = NULL;
	vm__release(vm);
	if (cb)
		cb(NULL, err, arg);
}

/* QEMU ended before QMP answered: its own log says why. */
static void vm__boot_fail_exited(struct vm *vm)
{
	char path[PATH_MAX], *log, sig[40] = "";
	struct err err = ERR_INIT;
	int status = vm__exit_status_read(vm->dir);

	vm__path(path, vm->dir, "qemu.log");
	log = vm__file_tail(path, 5);
	if (status > 128)
		snprintf(sig, sizeof(sig), " (killed by signal %d)", status - 128);
	err_set(&err, 500, vm_exit_crashed(status) ? "qemu_crashed" : "boot_failed",
		"qemu exited with status %d%s: %s", status, sig, *log ? log : "(qemu.log is empty)");
	free(log);
	vm__boot_fail(vm, &err);
}

static void vm__boot_step(struct vm *vm)
{
	struct err err = ERR_INIT;

	if (vm->launcher_done) {
		vm__boot_fail_exited(vm);
		return;
	}
	if (uv_now(vm->d->loop) > vm->deadline) {
		err_set(&err, 504, "boot_timeout", "QEMU did not answer on QMP within %d ms",
			VM_BOOT_TIMEOUT_MS);
		vm__boot_fail(vm, &err);
		return;
	}
	if (!vm->attaching && !vm->qmp && access(vm->qmp_path, F_OK) == 0)
		vm__qmp_connect(vm);
	vm__tick_at(vm, 50);
}

static void vm__booted(struct vm *vm)
{
	vm_done_cb cb = vm->done_cb;

	if (!vm->pid)
		vm->pid = vm__pid_read(vm->dir);
	if (!vm->pid) { /* QEMU writes it before it opens QMP; without it no liveness check */
		struct err err = ERR_INIT;
		err_set(&err, 500, "boot_failed", "QEMU answered on QMP but wrote no qemu.pid");
		vm__boot_fail(vm, &err);
		return;
	}
	vm->state = VM_RUNNING;
	if (vm->incoming) {
		/* save.c loads the saved machine, then calls done_cb. */
		vm__tick_at(vm, VM_WATCH_MS);
		vm__incoming_start(vm);
		return;
	}
	vm->done_cb = NULL;
	log_info("vm=%s state=running pid=%d attached=%d", vm->spec.id, vm->pid, vm->attaching);
	vm__tick_at(vm, VM_WATCH_MS);
	vm__agent_start(vm);
	cb(vm, NULL, vm->done_arg);
}

/* A running VM is checked every few seconds: QMP closing is the usual
 * sign of an exit, this catches the rest. */
static void vm__watch(struct vm *vm)
{
	if (vm->launcher_done || !vm__pid_alive(vm->pid)) {
		vm__exit_begin(vm);
		return;
	}
	if (!vm->qmp)
		vm__qmp_connect(vm);
	vm__tick_at(vm, vm->stop_requested ? VM_STOP_WATCH_MS : VM_WATCH_MS);
}

static void vm__tick_fired(uv_timer_t *t)
{
	struct vm *vm = t->data;

	if (vm->state == VM_BOOTING)
		vm__boot_step(vm);
	else if (vm->state == VM_RUNNING)
		vm__watch(vm);
	else if (vm->state == VM_EXITING)
		vm__exit_step(vm);
}

int vm__spec_check(const struct vm_spec *s, struct err *err)
{
	if (name_check("desktop id", s->id, err))
		return -1;
	if (s->vcpus < 1 || s->vcpus > 64)
		return err_set(err, 400, "invalid_request", "vcpus must be 1..64");
	if (s->memory_mb < 64 || s->memory_mb > 1024 * 1024)
		return err_set(err, 400, "invalid_request", "memory must be 64 MB..1 TB");
	if (s->disk_gb < 0 || s->disk_gb > 16384)
		return err_set(err, 400, "invalid_request", "disk must be 0..16384 GB");
	return 0;
}

static int vm__spec_write(const char *dir, const struct vm_spec *s)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "id", s->id, "image", s->image,
			      "imageVersion", s->image_version, "vcpus", s->vcpus, "memoryMb",
			      s->memory_mb, "diskGb", s->disk_gb);
	char *text = json_dumps(j, JSON_INDENT(2));
	char path[PATH_MAX];
	int r;

	vm__path(path, dir, "spec.json");
	r = vm__file_write(path, text, strlen(text));
	free(text);
	json_decref(j);
	return r;
}

/* spec.json as provisioning wrote it; fields missing stay as they are. */
static void vm__spec_read(const char *dir, struct vm_spec *s)
{
	char path[PATH_MAX];
	json_t *j;
	const char *image, *version;

	vm__path(path, dir, "spec.json");
	if (!(j = json_load_file(path, 0, NULL)))
		return;
	image = json_string_value(json_object_get(j, "image"));
	version = json_string_value(json_object_get(j, "imageVersion"));
	if (image && !s->image[0])
		snprintf(s->image, sizeof(s->image), "%s", image);
	if (version && !s->image_version[0])
		snprintf(s->image_version, sizeof(s->image_version), "%s", version);
	if (!s->vcpus)
		s->vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
	if (!s->memory_mb)
		s->memory_mb = (int)json_integer_value(json_object_get(j, "memoryMb"));
	if (!s->disk_gb)
		s->disk_gb = (int)json_integer_value(json_object_get(j, "diskGb"));
	json_decref(j);
}

static void vm__stale_files_remove(const char *dir)
{
	static const char *const names[] = {"qmp.sock", "agent.sock",  "vnc.sock",
					    "qemu.pid", "exit-status", "exit-status.tmp",
					    NULL};
	char path[PATH_MAX];

	for (const char *const *n = names; *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
}

/* Everything a boot needs that can fail before QEMU starts. */
static int vm__boot_prepare(struct vm_driver *d, const char *dir, struct vm_spec *s,
			    struct vm_manifest *m, struct err *err)
{
	char path[PATH_MAX];
	int pid;

	if (vm__find(d, s->id))
		return err_set(err, 409, "conflict", "desktop %s is running already", s->id);
	vm__path(path, dir, "disk.qcow2");
	if (access(path, F_OK))
		return err_set(err, 404, "not_found", "desktop %s is not provisioned", s->id);
	if ((pid = vm__pid_read(dir)) && vm__pid_alive(pid) && vm__pid_is_qemu_of(pid, s->id))
		return err_set(err, 409, "conflict", "a QEMU (pid %d) runs for %s already", pid,
			       s->id);
	vm__spec_read(dir, s);
	if (vm__spec_check(s, err) ||
	    vm__image_version_dir(d, s->image, s->image_version, path, sizeof(path), err) ||
	    vm__manifest_read(path, m, err))
		return -1;
	return 0;
}

static void vm__boot_dir_opts(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
			      const char *accel, const struct vm_callbacks *cbs, vm_done_cb cb,
			      void *arg, int incoming)
{
	struct vm_spec s = *spec;
	struct vm_manifest m;
	struct vm_args a = {0};
	struct err err = ERR_INIT;
	struct vm *vm;

	if (vm__boot_prepare(d, dir, &s, &m, &err)) {
		vm__done_later(d->loop, cb, &err, arg);
		return;
	}
	vm = vm__new(d, dir, &s, cbs);
	vm->done_cb = cb;
	vm->done_arg = arg;
	vm->deadline = uv_now(d->loop) + VM_BOOT_TIMEOUT_MS;
	vm__stale_files_remove(dir);
	vm__spec_write(dir, &s);
	vm__args_build(&a, &s, &m, accel, !d->no_free_page_reporting);
	vm->incoming = incoming;
	if (incoming) {
		vm__arg(&a, "-incoming");
		vm__arg(&a, "defer");
		vm__arg(&a, "-S");
	}
	log_info("vm=%s state=booting accel=%s vcpus=%d memory_mb=%d image=%s/%s incoming=%d",
		 s.id, accel, s.vcpus, s.memory_mb, s.image, s.image_version, incoming);
	if (vm__launch(vm, &a, &err)) {
		vm__args_free(&a);
		vm__release(vm);
		vm__done_later(d->loop, cb, &err, arg);
		return;
	}
	vm__args_free(&a);
	vm__tick_at(vm, 50);
}

void vm__boot_dir(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
		  const char *accel, const struct vm_callbacks *cbs, vm_done_cb cb, void *arg)
{
	vm__boot_dir_opts(d, dir, spec, accel, cbs, cb, arg, 0);
}

void vm__boot_dir_incoming(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
			   const char *accel, const struct vm_callbacks *cbs, vm_done_cb cb,
			   void *arg)
{
	vm__boot_dir_opts(d, dir, spec, accel, cbs, cb, arg, 1);
}

void vm_boot(struct vm_driver *d, const struct vm_spec *spec, const struct vm_callbacks *cbs,
	     vm_done_cb cb, void *arg)
{
	char dir[PATH_MAX];
	struct err err = ERR_INIT;

	if (name_check("desktop id", spec->id, &err)) {
		vm__done_later(d->loop, cb, &err, arg);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/desktops/%s", d->state_dir, spec->id);
	vm__boot_dir(d, dir, spec, vm_driver_accel(d), cbs, cb, arg);
}

/* ---- attach ---- */

void vm_attach(struct vm_driver *d, const char *id, const struct vm_callbacks *cbs, vm_done_cb cb,
	       void *arg)
{
	struct vm_spec s = {0};
	struct err err = ERR_INIT;
	char dir[PATH_MAX];
	struct vm *vm;
	int pid = 0;

	if (name_check("desktop id", id, &err)) {
		vm__done_later(d->loop, cb, &err, arg);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/desktops/%s", d->state_dir, id);
	if (vm__find(d, id)) {
		err_set(&err, 409, "conflict", "desktop %s is attached already", id);
	} else if (!(pid = vm__pid_read(dir)) || !vm__pid_alive(pid) ||
		   !vm__pid_is_qemu_of(pid, id)) {
		err_set(&err, 404, "not_running", "no QEMU runs for desktop %s", id);
		err.errnum = ESRCH;
	}
	if (err.status) {
		vm__done_later(d->loop, cb, &err, arg);
		return;
	}
	snprintf(s.id, sizeof(s.id), "%s", id);
	vm__spec_read(dir, &s);
	vm = vm__new(d, dir, &s, cbs);
	vm->pid = pid;
	vm->attaching = 1;
	vm->done_cb = cb;
	vm->done_arg = arg;
	vm->deadline = uv_now(d->loop) + QMP_HANDSHAKE_TIMEOUT_MS + 1000;
	vm__qmp_connect(vm);
	vm__tick_at(vm, 50);
}

/* ---- stop ---- */

static void vm__stop_timer_fired(uv_timer_t *t);

static void vm__stop_cmd_done(json_t *ret, struct err *err, void *arg)
{
	struct vm *vm = arg;

	if (err && vm->state == VM_RUNNING)
		log_warnx("vm=%s stop step %d: %s", vm->spec.id, vm->stop_phase, err->msg);
}

/* Phase 2: ask QEMU to quit (SIGTERM without QMP); phase 3: SIGKILL. */
static void vm__stop_escalate(struct vm *vm)
{
	vm->stop_phase++;
	if (vm->stop_phase == 2 && vm->qmp && qmp_is_ready(vm->qmp)) {
		qmp_command(vm->qmp, "quit", NULL, VM_QUIT_GRACE_MS, vm__stop_cmd_done, vm);
	} else if (vm->stop_phase == 2) {
		kill(vm->pid, SIGTERM);
	} else {
		log_warnx("vm=%s stop: SIGKILL pid %d", vm->spec.id, vm->pid);
		kill(vm->pid, SIGKILL);
	}
	uv_timer_start(&vm->stop_timer, vm__stop_timer_fired, VM_QUIT_GRACE_MS, 0);
}

static void vm__stop_timer_fired(uv_timer_t *t)
{
	struct vm *vm = t->data;

	if (vm->state == VM_RUNNING || vm->state == VM_EXITING)
		vm__stop_escalate(vm);
}

void vm_stop(struct vm *vm, int force, vm_status_cb cb, void *arg)
{
	struct vm_waiter *w = xcalloc(1, sizeof(*w));

	w->cb = cb;
	w->arg = arg;
	w->next = vm->waiters;
	vm->waiters = w;
	if (vm->state != VM_RUNNING || (vm->stop_requested && (!force || vm->stop_phase >= 2)))
		return;
	vm->stop_requested = 1;
	log_info("vm=%s state=stopping force=%d", vm->spec.id, force);
	if (!force && vm->stop_phase == 0 && vm->qmp && qmp_is_ready(vm->qmp)) {
		vm->stop_phase = 1;
		qmp_command(vm->qmp, "system_powerdown", NULL, VM_QUIT_GRACE_MS, vm__stop_cmd_done,
			    vm);
		uv_timer_start(&vm->stop_timer, vm__stop_timer_fired,
			       (uint64_t)vm->d->stop_timeout_ms, 0);
	} else {
		vm->stop_phase = 1;
		vm__stop_escalate(vm);
	}
	vm__tick_at(vm, VM_STOP_WATCH_MS);
}

/* ---- provision ---- */

struct vm_prov {
	char dir[PATH_MAX];
	vm_status_cb cb;
	void *arg;
};

static void vm__provision_done(int status, const char *output, void *arg)
{
	struct vm_prov *p = arg;
	struct err err = ERR_INIT;
	char tmp[PATH_MAX], disk[PATH_MAX];

	vm__path(tmp, p->dir, "disk.qcow2.tmp");
	vm__path(disk, p->dir, "disk.qcow2");
	if (status)
		err_set(&err, 500, "provision_failed", "qemu-img create: status %d: %s", status,
			output);
	else if (rename(tmp, disk))
		err_sys(&err, errno, "rename %s", tmp);
	if (err.status) {
		unlink(tmp);
		log_warnx("provision dir=%s failed: %s", p->dir, err.msg);
	}
	p->cb(err.status ? -1 : 0, err.status ? &err : NULL, p->arg);
	free(p);
}

/* The clone is made beside its final name and renamed, so a crash
 * mid-way never leaves a disk.qcow2 that looks provisioned. */
static int vm__provision_start(struct vm_driver *d, const char *dir, const char *golden,
			       int disk_gb, struct vm_prov *p, struct err *err)
{
	char size[32];
	char *argv[] = {"qemu-img",
			"create",
			"-q",
			"-f",
			"qcow2",
			"-F",
			"qcow2",
			"-b",
			(char *)golden,
			"disk.qcow2.tmp",
			disk_gb > 0 ? size : NULL,
			NULL};

	snprintf(size, sizeof(size), "%dG", disk_gb);
	return vm__run(d->loop, argv, dir, vm__provision_done, p, err);
}

static int vm__provision_prepare(struct vm_driver *d, const char *dir, struct vm_spec *s,
				 char *golden, struct err *err)
{
	char vdir[PATH_MAX], path[PATH_MAX];
	struct vm_manifest m;

	if (vm__image_version_dir(d, s->image, s->image_version, vdir, sizeof(vdir), err) ||
	    vm__manifest_read(vdir, &m, err))
		return -1;
	if (!s->image_version[0])
		snprintf(s->image_version, sizeof(s->image_version), "%s", strrchr(vdir, '/') + 1);
	if (!realpath(m.disk, golden))
		return err_set(err, 503, "image_missing", "golden disk %s: %s", m.disk,
			       strerror(errno));
	if (mkdir_p(dir, err))
		return -1;
	vm__path(path, dir, "disk.qcow2");
	if (access(path, F_OK) == 0)
		return err_set(err, 409, "conflict", "desktop %s is provisioned already", s->id);
	if (vm__spec_write(dir, s))
		return err_sys(err, errno, "write %s/spec.json", dir);
	return 0;
}

void vm__provision_dir(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
		       vm_status_cb cb, void *arg)
{
	struct vm_prov *p = xcalloc(1, sizeof(*p));
	struct vm_spec s = *spec;
	char golden[PATH_MAX];
	struct err err = ERR_INIT;

	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	p->cb = cb;
	p->arg = arg;
	if (vm__spec_check(&s, &err) || vm__provision_prepare(d, dir, &s, golden, &err) ||
	    vm__provision_start(d, dir, golden, s.disk_gb, p, &err)) {
		err_prefix(&err, "provision %s", s.id);
		vm__status_later(d->loop, cb, -1, &err, arg);
		free(p);
		return;
	}
	log_info("vm=%s state=provisioning image=%s/%s disk_gb=%d", s.id, s.image, s.image_version,
		 s.disk_gb);
}

void vm_provision(struct vm_driver *d, const struct vm_spec *spec, vm_status_cb cb, void *arg)
{
	char dir[PATH_MAX];
	struct err err = ERR_INIT;

	if (name_check("desktop id", spec->id, &err)) {
		vm__status_later(d->loop, cb, -1, &err, arg);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/desktops/%s", d->state_dir, spec->id);
	vm__provision_dir(d, dir, spec, cb, arg);
}

/* ---- destroy ---- */

struct vm_rm {
	uv_work_t work;
	char dir[PATH_MAX];
	int r;
	vm_status_cb cb;
	void *arg;
};

static void vm__rm_work(uv_work_t *w)
{
	struct vm_rm *rm = w->data;

	rm->r = rm_rf(rm->dir);
}

static void vm__rm_done(uv_work_t *w, int status)
{
	struct vm_rm *rm = w->data;
	struct err err = ERR_INIT;

	if (rm->r)
		err_sys(&err, -rm->r, "remove %s", rm->dir);
	rm->cb(rm->r ? -1 : 0, rm->r ? &err : NULL, rm->arg);
	free(rm);
}

void vm__rm_async(uv_loop_t *loop, const char *dir, vm_status_cb cb, void *arg)
{
	struct vm_rm *rm = xcalloc(1, sizeof(*rm));

	snprintf(rm->dir, sizeof(rm->dir), "%s", dir);
	rm->cb = cb;
	rm->arg = arg;
	rm->work.data = rm;
	uv_queue_work(loop, &rm->work, vm__rm_work, vm__rm_done);
}

struct vm_destroy {
	struct vm_driver *d;
	char id[ID_MAX];
	char dir[PATH_MAX];
	uint64_t kill_deadline;
	vm_status_cb cb;
	void *arg;
};

static void vm__destroy_step(void *arg);

static void vm__destroy_stopped(int status, struct err *err, void *arg)
{
	struct vm_destroy *x = arg;

	vm__later(x->d->loop, vm__destroy_step, x); /* once the vm is released */
}

static void vm__destroy_finish(struct vm_destroy *x, const struct err *err)
{
	if (err)
		vm__status_later(x->d->loop, x->cb, -1, err, x->arg);
	else
		vm__rm_async(x->d->loop, x->dir, x->cb, x->arg);
	log_info("vm=%s state=destroyed%s", x->id, err ? " (failed)" : "");
	vm__driver_unref(x->d);
	free(x);
}

/* Ends whatever QEMU still runs for the desktop, then removes its folder. */
static void vm__destroy_step(void *arg)
{
	struct vm_destroy *x = arg;
	struct vm *vm = vm__find(x->d, x->id);
	struct err err = ERR_INIT;
	int pid;

	if (vm && vm->state == VM_BOOTING) {
		vm__later_ms(x->d->loop, 200, vm__destroy_step, x);
		return;
	}
	if (vm) {
		vm_stop(vm, 1, vm__destroy_stopped, x);
		return;
	}
	pid = vm__pid_read(x->dir);
	if (pid && vm__pid_alive(pid) && vm__pid_is_qemu_of(pid, x->id)) {
		if (!x->kill_deadline)
			x->kill_deadline = uv_now(x->d->loop) + VM_DESTROY_KILL_WAIT_MS;
		if (uv_now(x->d->loop) > x->kill_deadline) {
			err_set(&err, 500, "internal", "QEMU pid %d does not die", pid);
			vm__destroy_finish(x, &err);
			return;
		}
		kill(pid, SIGKILL);
		vm__later_ms(x->d->loop, 50, vm__destroy_step, x);
		return;
	}
	vm__destroy_finish(x, NULL);
}

void vm_destroy(struct vm_driver *d, const char *id, vm_status_cb cb, void *arg)
{
	struct vm_destroy *x;
	struct err err = ERR_INIT;

	if (name_check("desktop id", id, &err)) {
		vm__status_later(d->loop, cb, -1, &err, arg);
		return;
	}
	x = xcalloc(1, sizeof(*x));
	x->d = d;
	d->refs++;
	snprintf(x->id, sizeof(x->id), "%s", id);
	snprintf(x->dir, sizeof(x->dir), "%s/desktops/%s", d->state_dir, id);
	x->cb = cb;
	x->arg = arg;
	vm__later(d->loop, vm__destroy_step, x);
}

/* ---- screenshot ---- */

struct vm_shot {
	uv_work_t work;
	uv_loop_t *loop;
	char path[PATH_MAX];
	int max_width; /* 0: QEMU's own PNG */
	uint8_t *png;
	size_t len;
	struct err err;
	void (*cb)(const uint8_t *png, size_t len, struct err *err, void *arg);
	void *arg;
};

/* QEMU's PPM fitted to max_width and encoded as a PNG (on the pool). */
static uint8_t *vm__shot_scale(const uint8_t *ppm, size_t len, int max_width, size_t *out_len,
			       struct err *err)
{
	struct pixmap src, dst;
	uint8_t *png;

	if (pixmap_ppm_parse(ppm, len, &src, err))
		return NULL;
	pixmap_fit(src.width, src.height, max_width, &dst.width, &dst.height);
	if (dst.width == src.width && dst.height == src.height)
		return pixmap_png_encode(&src, PIXMAP_PNG_LEVEL, out_len, err);
	dst.rgb = xmalloc((size_t)dst.width * (size_t)dst.height * 3);
	pixmap_downscale(&src, &dst);
	png = pixmap_png_encode(&dst, PIXMAP_PNG_LEVEL, out_len, err);
	free(dst.rgb);
	return png;
}

static void vm__shot_read(uv_work_t *w)
{
	struct vm_shot *s = w->data;
	uint8_t *raw = (uint8_t *)vm__file_read(s->path, VM_SCREENSHOT_MAX, &s->len);

	if (!raw)
		err_sys(&s->err, errno, "read screendump");
	unlink(s->path);
	if (raw && s->max_width) {
		s->png = vm__shot_scale(raw, s->len, s->max_width, &s->len, &s->err);
		free(raw);
	} else {
		s->png = raw;
	}
}

static void vm__shot_done(uv_work_t *w, int status)
{
	struct vm_shot *s = w->data;

	s->cb(s->png, s->len, s->png ? NULL : &s->err, s->arg);
	free(s->png);
	free(s);
}

static void vm__shot_failed(void *arg)
{
	struct vm_shot *s = arg;

	s->cb(NULL, 0, &s->err, s->arg);
	free(s);
}

static void vm__shot_dumped(json_t *ret, struct err *err, void *arg)
{
	struct vm_shot *s = arg;

	if (!ret) {
		unlink(s->path);
		err_prefix(err, "screendump");
		s->cb(NULL, 0, err, s->arg);
		free(s);
		return;
	}
	uv_queue_work(s->loop, &s->work, vm__shot_read, vm__shot_done);
}

void vm_screenshot(struct vm *vm, int max_width,
		   void (*cb)(const uint8_t *png, size_t len, struct err *err, void *arg),
		   void *arg)
{
	static unsigned seq;
	struct vm_shot *s = xcalloc(1, sizeof(*s));
	const char *format = max_width > 0 ? "ppm" : "png";
	char name[64];

	s->cb = cb;
	s->arg = arg;
	s->work.data = s;
	s->loop = vm->d->loop;
	s->max_width = max_width > 0 ? max_width : 0;
	if (vm->state != VM_RUNNING || !vm->qmp || !qmp_is_ready(vm->qmp)) {
		err_set(&s->err, 409, "not_running", "desktop %s has no screen now", vm->spec.id);
		vm__later(vm->d->loop, vm__shot_failed, s);
		return;
	}
	snprintf(name, sizeof(name), "screendump-%u.%s", ++seq, format);
	vm__path(s->path, vm->dir, name);
	qmp_command(vm->qmp, "screendump",
		    json_pack("{s:s, s:s}", "filename", s->path, "format", format),
		    VM_SCREENSHOT_TIMEOUT_MS, vm__shot_dumped, s);
}

/* ---- driver teardown ---- */

/* Lets go of a VM without touching it: it keeps running for the next
 * bureaud to attach. Callers waiting on it learn the driver is closing. */
static void vm__detach(struct vm *vm)
{
	struct err err = ERR_INIT;
	struct vm_waiter *w;
	vm_done_cb cb = vm->done_cb;
	void *arg = vm->done_arg;

	err_set(&err, 503, "shutting_down", "the VM driver is closing");
	while ((w = vm->waiters)) {
		vm->waiters = w->next;
		w->cb(-1, &err, w->arg);
		free(w);
	}
	vm->done_cb = NULL;
	vm__release(vm);
	if (cb)
		cb(NULL, &err, arg);
}

void vm_driver_free(struct vm_driver *d)
{
	d->freeing = 1;
	vm__templates_free(d);
	if (d->probe)
		vm__probe_abort(d->probe);
	while (d->vms)
		vm__detach(d->vms);
	for (struct vm_launcher *l = d->launchers; l; l = l->next)
		if (!uv_is_closing((uv_handle_t *)&l->proc))
			uv_close((uv_handle_t *)&l->proc, vm__launcher_closed);
	vm__driver_unref(d);
}
