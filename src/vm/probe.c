/* Choosing the accelerator. /dev/kvm existing proves little: a nested host
 * may offer a KVM that cannot run a stock kernel (QEMU-NOTES.md). So, in
 * "auto", the tiny image is booted under KVM and KVM is chosen only if its
 * agent says HELLO in time. The answer is kept in STATE/accel. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define VM_PROBE_TIMEOUT_MS 30000
#define VM_PROBE_ID "bureau-probe"
/* What the tiny guest prints on its console once the agent runs. */
#define VM_PROBE_AGENT_MARK "bureau-agent"

struct vm_probe {
	struct vm_driver *d;
	void (*cb)(const char *accel, void *arg);
	void *arg;
	char dir[PATH_MAX];
	struct vm_spec spec;
	struct vm *vm;
	uv_timer_t timer;
	uint64_t started;
	int decided, save, cleaning;
};

static void vm__probe_freed(uv_handle_t *h)
{
	struct vm_probe *p = h->data;
	struct vm_driver *d = p->d;

	if (d->probe == p)
		d->probe = NULL;
	free(p);
	vm__driver_unref(d);
}

static void vm__probe_removed(int status, struct err *err, void *arg)
{
	struct vm_probe *p = arg;
	char path[PATH_MAX];

	if (p->save) {
		vm__path(path, p->d->state_dir, "accel");
		if (vm__file_write(path, p->d->accel, strlen(p->d->accel)))
			log_warnx("accel: cannot write %s", path);
	}
	if (p->cb && !p->d->freeing)
		p->cb(p->d->accel, p->arg);
	uv_close((uv_handle_t *)&p->timer, vm__probe_freed);
}

static void vm__probe_cleanup(struct vm_probe *p)
{
	if (p->cleaning)
		return;
	p->cleaning = 1;
	uv_timer_stop(&p->timer);
	if (p->dir[0])
		vm__rm_async(p->d->loop, p->dir, vm__probe_removed, p);
	else
		vm__status_later(p->d->loop, vm__probe_removed, 0, NULL, p);
}

static void vm__probe_stopped(int status, struct err *err, void *arg)
{
	vm__probe_cleanup(arg);
}

static void vm__probe_decide(struct vm_probe *p, const char *accel, int save, const char *why)
{
	if (p->decided)
		return;
	p->decided = 1;
	p->save = save;
	snprintf(p->d->accel, sizeof(p->d->accel), "%s", accel);
	log_info("accel=%s why=\"%s\" probe_ms=%llu", accel, why,
		 p->started ? (unsigned long long)(uv_now(p->d->loop) - p->started) : 0ULL);
	if (p->vm)
		vm_stop(p->vm, 1, vm__probe_stopped, p);
	else
		vm__probe_cleanup(p);
}

static void vm__probe_msg(struct vm *vm, json_t *msg, void *arg)
{
	if (!strcmp(json_string_value(json_object_get(msg, "type")) ?: "", "hello"))
		vm__probe_decide(arg, "kvm", 1, "the tiny guest's agent answered under KVM");
}

static void vm__probe_exit(struct vm *vm, const char *reason, void *arg)
{
	struct vm_probe *p = arg;

	p->vm = NULL;
	if (!p->decided) {
		log_info("accel probe: the KVM guest ended: %s", reason ? reason : "stopped");
		vm__probe_decide(p, "tcg", 1, "the tiny guest died under KVM");
	}
}

static void vm__probe_booted(struct vm *vm, struct err *err, void *arg)
{
	struct vm_probe *p = arg;

	if (!vm) {
		log_info("accel probe: %s", err->msg);
		vm__probe_decide(p, "tcg", 1, "QEMU would not start with -accel kvm");
		return;
	}
	p->vm = vm;
}

/* At the deadline a console line from the agent still counts: the guest
 * got that far under KVM. */
static void vm__probe_timeout(uv_timer_t *t)
{
	struct vm_probe *p = t->data;
	char path[PATH_MAX], *serial;
	int reached;

	vm__path(path, p->dir, "serial.log");
	serial = vm__file_read(path, 4 << 20, NULL);
	reached = serial && strstr(serial, VM_PROBE_AGENT_MARK);
	free(serial);
	if (reached)
		vm__probe_decide(p, "kvm", 1, "the tiny guest reached its agent under KVM");
	else
		vm__probe_decide(p, "tcg", 1, "the tiny guest did not boot under KVM in time");
}

static void vm__probe_provisioned(int status, struct err *err, void *arg)
{
	struct vm_probe *p = arg;
	struct vm_callbacks cbs = {vm__probe_msg, vm__probe_exit, p};

	if (status) {
		log_info("accel probe: %s", err->msg);
		vm__probe_decide(p, "tcg", 0, "could not prepare the probe guest");
		return;
	}
	uv_timer_start(&p->timer, vm__probe_timeout, VM_PROBE_TIMEOUT_MS, 0);
	vm__boot_dir(p->d, p->dir, &p->spec, "kvm", &cbs, vm__probe_booted, p);
}

/* A probe guest a crashed bureaud left behind must not linger. */
static void vm__probe_stale_kill(const char *dir)
{
	int pid = vm__pid_read(dir);

	if (pid && vm__pid_alive(pid) && vm__pid_is_qemu_of(pid, VM_PROBE_ID))
		kill(pid, SIGKILL);
	rm_rf(dir);
}

/* The answers that need no guest: config, memory, no /dev/kvm, no image. */
static int vm__probe_known(struct vm_probe *p)
{
	char path[PATH_MAX], version[64], *saved;
	struct vm_driver *d = p->d;

	if (strcmp(d->accel_cfg, "auto")) {
		vm__probe_decide(p, d->accel_cfg, 0, "set in the configuration");
		return 1;
	}
	vm__path(path, d->state_dir, "accel");
	if ((saved = vm__file_read(path, 16, NULL))) {
		int kvm = !strncmp(saved, "kvm", 3), tcg = !strncmp(saved, "tcg", 3);
		free(saved);
		if (kvm || tcg) {
			vm__probe_decide(p, kvm ? "kvm" : "tcg", 0,
					 "remembered from an earlier probe");
			return 1;
		}
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		vm__probe_decide(p, "tcg", 1, "no usable /dev/kvm");
		return 1;
	}
	if (vm_image_current(d, "tiny", version, sizeof(version), NULL)) {
		vm__probe_decide(p, "tcg", 0, "the tiny image is not built, KVM untested");
		return 1;
	}
	return 0;
}

void vm_driver_probe(struct vm_driver *d, void (*cb)(const char *accel, void *arg), void *arg)
{
	struct vm_probe *p = xcalloc(1, sizeof(*p));

	p->d = d;
	p->cb = cb;
	p->arg = arg;
	d->refs++;
	d->probe = p;
	uv_timer_init(d->loop, &p->timer);
	p->timer.data = p;
	if (vm__probe_known(p))
		return;
	snprintf(p->dir, sizeof(p->dir), "%s/probe", d->state_dir);
	vm__probe_stale_kill(p->dir);
	snprintf(p->spec.id, sizeof(p->spec.id), VM_PROBE_ID);
	snprintf(p->spec.image, sizeof(p->spec.image), "tiny");
	p->spec.vcpus = 1;
	p->spec.memory_mb = 256;
	p->started = uv_now(d->loop);
	log_info("accel probe: booting the tiny image under KVM (up to %d s)",
		 VM_PROBE_TIMEOUT_MS / 1000);
	vm__provision_dir(d, p->dir, &p->spec, vm__probe_provisioned, p);
}

/* The driver is closing mid-probe: the probe guest must not outlive it. */
void vm__probe_abort(struct vm_probe *p)
{
	int pid = p->vm ? vm_pid(p->vm) : vm__pid_read(p->dir);

	if (pid && vm__pid_is_qemu_of(pid, VM_PROBE_ID))
		kill(pid, SIGKILL);
	p->vm = NULL;
	p->decided = 1;
	vm__probe_cleanup(p);
}
