/* The QEMU driver end to end with the tiny image under TCG: provision,
 * boot, the agent's HELLO and readiness, exec, screenshot, graceful stop,
 * guest poweroff, re-attach from a second driver, SIGKILL, destroy.
 * Skips when the tiny image is not built (BUREAU_IMAGES, else var/images
 * of the source tree). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "tap.h"
#include "vm/driver.h"

static uv_loop_t *loop;
static char state[] = "/tmp/bureau-drv-XXXXXX";
static char images[4096];

/* Runs the loop until *flag is set or ms pass; returns the flag. */
static int run_until(int *flag, int ms)
{
	int64_t end = mono_ms() + ms;

	while (!*flag && mono_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
	return *flag;
}

/* A timer so UV_RUN_ONCE never blocks longer than this. */
static uv_timer_t heartbeat;
static void beat(uv_timer_t *t)
{
}

/* ---- what the callbacks saw ---- */

struct seen {
	int status_done, status;
	struct err err;
	struct vm *vm;
	int boot_done;
	int hello, ready, exited;
	char exit_reason[2048];
	int exit_null;
	json_t *reply;
	int reply_done;
	int png_done;
	size_t png_len;
	int png_ok;
	unsigned png_width, png_height; /* from IHDR */
};

static struct seen S;

static void status_cb(int status, struct err *err, void *arg)
{
	S.status_done = 1;
	S.status = status;
	if (err)
		S.err = *err;
}

static void done_cb(struct vm *vm, struct err *err, void *arg)
{
	S.boot_done = 1;
	S.vm = vm;
	if (err)
		S.err = *err;
}

static void on_msg(struct vm *vm, json_t *msg, void *arg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (type && !strcmp(type, "hello"))
		S.hello = 1;
	if (type && !strcmp(type, "ready"))
		S.ready = 1;
}

static void on_exit_cb(struct vm *vm, const char *reason, void *arg)
{
	S.exited = 1;
	S.exit_null = reason == NULL;
	snprintf(S.exit_reason, sizeof(S.exit_reason), "%s", reason ? reason : "");
}

static void reply_cb(json_t *reply, struct err *err, void *arg)
{
	S.reply_done = 1;
	S.reply = json_incref(reply);
	if (err)
		S.err = *err;
}

static void png_cb(const uint8_t *png, size_t len, struct err *err, void *arg)
{
	S.png_done = 1;
	S.png_len = len;
	S.png_ok =
	    png && len > 24 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8) && !memcmp(png + 12, "IHDR", 4);
	if (S.png_ok) {
		S.png_width = (unsigned)png[16] << 24 | png[17] << 16 | png[18] << 8 | png[19];
		S.png_height = (unsigned)png[20] << 24 | png[21] << 16 | png[22] << 8 | png[23];
	}
	if (err)
		S.err = *err;
}

static const struct vm_callbacks cbs = {on_msg, on_exit_cb, NULL};

static void reset(void)
{
	json_decref(S.reply);
	memset(&S, 0, sizeof(S));
}

static struct vm_driver *driver_new_stop(const char *image_dir, const char *qemu, int stop_ms)
{
	struct vm_driver_config cfg = {state, image_dir, "tcg", qemu, stop_ms};
	struct vm_driver *d = NULL;
	struct err err = ERR_INIT;

	if (vm_driver_new(loop, &cfg, &d, &err))
		printf("# vm_driver_new: %s\n", err.msg);
	return d;
}

static struct vm_driver *driver_new(const char *image_dir, const char *qemu)
{
	return driver_new_stop(image_dir, qemu, 20000);
}

static void driver_free(struct vm_driver *d)
{
	vm_driver_free(d);
	for (int i = 0; i < 20; i++)
		uv_run(loop, UV_RUN_NOWAIT);
}

static struct vm_spec spec_of(const char *id)
{
	struct vm_spec s = {.vcpus = 2, .memory_mb = 512, .disk_gb = 2};

	snprintf(s.id, sizeof(s.id), "%s", id);
	snprintf(s.image, sizeof(s.image), "tiny");
	return s;
}

/* Boots and waits for the agent's ready; returns ms to ready or -1. */
static long boot_to_ready(struct vm_driver *d, const struct vm_spec *spec, long *to_qmp)
{
	int64_t t0 = mono_ms();

	reset();
	vm_boot(d, spec, &cbs, done_cb, NULL);
	run_until(&S.boot_done, 40000);
	if (!S.vm) {
		printf("# boot: %s\n", S.err.msg);
		return -1;
	}
	*to_qmp = (long)(mono_ms() - t0);
	run_until(&S.ready, 60000);
	if (!S.ready || !S.hello) {
		char cmd[4400];
		printf("# hello=%d ready=%d; the guest's console:\n", S.hello, S.ready);
		fflush(stdout);
		snprintf(cmd, sizeof(cmd), "tail -n 30 %s/desktops/%s/serial.log | sed 's/^/#   /'",
			 state, spec->id);
		if (system(cmd))
			printf("# (no serial.log)\n");
		return -1;
	}
	return (long)(mono_ms() - t0);
}

static void test_images(struct vm_driver *d)
{
	char version[64];
	struct err err = ERR_INIT;

	ok(vm_image_current(d, "tiny", version, sizeof(version), &err) == 0 && version[0],
	   "tiny image current version is %s", version);
	err_clear(&err);
	ok(vm_image_current(d, "nope", version, sizeof(version), &err) == -1 && err.status == 400 &&
	       !strcmp(err.code, "invalid_request"),
	   "an unknown image is 400 invalid_request");
	err_clear(&err);
	ok(vm_image_current(d, "../tiny", version, sizeof(version), &err) == -1 &&
	       err.status == 400,
	   "an image name with a slash is refused");
}

static void test_provision_errors(struct vm_driver *d)
{
	struct vm_spec s = spec_of("dsk_bad");
	char empty[4200];
	struct vm_driver *d2;

	snprintf(s.image, sizeof(s.image), "nope");
	reset();
	vm_provision(d, &s, status_cb, NULL);
	ok(!S.status_done, "provision reports from the loop, not inside the call");
	run_until(&S.status_done, 5000);
	ok(S.status == -1 && S.err.status == 400 && !strcmp(S.err.code, "invalid_request"),
	   "provision of an unknown image: 400 (%s)", S.err.msg);

	snprintf(empty, sizeof(empty), "%s/no-images", state);
	mkdir(empty, 0700);
	d2 = driver_new(empty, NULL);
	s = spec_of("dsk_bad");
	reset();
	vm_provision(d2, &s, status_cb, NULL);
	run_until(&S.status_done, 5000);
	ok(S.status == -1 && S.err.status == 503 && !strcmp(S.err.code, "image_missing"),
	   "provision of an image not built: 503 image_missing");
	driver_free(d2);
}

static void test_provision(struct vm_driver *d, const struct vm_spec *s)
{
	char path[4200];
	struct stat st;

	reset();
	vm_provision(d, s, status_cb, NULL);
	run_until(&S.status_done, 10000);
	ok(S.status == 0, "provision: linked clone made (%s)", S.err.msg);
	snprintf(path, sizeof(path), "%s/desktops/%s", state, s->id);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "desktop folder is mode 0700");
	snprintf(path, sizeof(path), "%s/desktops/%s/disk.qcow2", state, s->id);
	ok(access(path, F_OK) == 0, "disk.qcow2 exists");
	reset();
	vm_provision(d, s, status_cb, NULL);
	run_until(&S.status_done, 10000);
	ok(S.status == -1 && S.err.status == 409, "provisioning twice is a 409");
}

static void test_exec_and_screen(struct vm *vm)
{
	json_t *req = json_pack("{s:s, s:[s, s]}", "type", "exec", "argv", "echo", "hi");
	unsigned full_w, full_h;
	int64_t t0;

	reset();
	vm_agent_request(vm, req, 20000, reply_cb, NULL);
	json_decref(req);
	run_until(&S.reply_done, 20000);
	ok(S.reply &&
	       !strcmp(json_string_value(json_object_get(S.reply, "type")) ?: "", "exec.result") &&
	       json_integer_value(json_object_get(S.reply, "exitCode")) == 0 &&
	       !strcmp(json_string_value(json_object_get(S.reply, "stdout")) ?: "", "hi\n"),
	   "exec echo hi answers exec.result with stdout hi");

	reset();
	t0 = mono_ms();
	vm_screenshot(vm, 0, png_cb, NULL);
	run_until(&S.png_done, 15000);
	ok(S.png_ok, "screenshot is a PNG (%zu bytes, %lld ms)", S.png_len,
	   (long long)(mono_ms() - t0));
	full_w = S.png_width;
	full_h = S.png_height;

	reset();
	t0 = mono_ms();
	vm_screenshot(vm, 64, png_cb, NULL);
	run_until(&S.png_done, 15000);
	ok(S.png_ok && S.png_width == 64 && full_w > 64 &&
	       llabs((long long)S.png_height * full_w - (long long)full_h * 64) <= full_w,
	   "a screenshot at most 64 wide is a %ux%u PNG scaled from %ux%u (%zu bytes, %lld ms)",
	   S.png_width, S.png_height, full_w, full_h, S.png_len, (long long)(mono_ms() - t0));

	reset();
	vm_screenshot(vm, 4096, png_cb, NULL);
	run_until(&S.png_done, 15000);
	ok(S.png_ok && S.png_width == full_w && S.png_height == full_h,
	   "a screenshot at most 4096 wide keeps the screen's %ux%u (%ux%u)", full_w, full_h,
	   S.png_width, S.png_height);
}

/* The agent dies inside the guest; busybox init starts it again and the
 * driver greets the new one (QMP VSERPORT_CHANGE) without reconnecting. */
static void test_agent_restart(struct vm *vm)
{
	json_t *req =
	    json_pack("{s:s, s:s, s:[s, s]}", "type", "exec", "user", "root", "argv", "sleep", "5");
	int64_t t0;

	reset();
	S.vm = vm;
	vm_agent_request(vm, req, 300, reply_cb, NULL);
	json_decref(req);
	run_until(&S.reply_done, 5000);
	ok(!S.reply && !strcmp(S.err.code, "agent_timeout") && S.err.status == 504,
	   "a request the agent does not answer in time: 504 agent_timeout");

	reset();
	S.vm = vm;
	req = json_pack("{s:s, s:s, s:[s, s, s]}", "type", "exec", "user", "root", "argv", "sh",
			"-c", "kill -9 $PPID");
	t0 = mono_ms();
	vm_agent_request(vm, req, 10000, reply_cb, NULL);
	json_decref(req);
	run_until(&S.reply_done, 10000);
	ok(!S.reply && !strcmp(S.err.code, "agent_unavailable"),
	   "a request whose agent dies fails with agent_unavailable (%s)", S.err.msg);
	run_until(&S.hello, 15000);
	ok(S.hello && vm_agent_connected(vm), "the restarted agent is greeted again (%lld ms)",
	   (long long)(mono_ms() - t0));
}

/* A guest that does not act on the power button within stop_timeout_ms
 * (here: one that has not even booted) is asked to quit. */
static void test_stop_timeout(const struct vm_spec *s)
{
	struct vm_driver *d = driver_new_stop(images, NULL, 500);
	int64_t t0;

	reset();
	vm_boot(d, s, &cbs, done_cb, NULL);
	run_until(&S.boot_done, 40000);
	if (ok(S.vm != NULL, "dsk_test2 boots (%s)", S.err.msg)) {
		struct vm *vm = S.vm;
		reset();
		t0 = mono_ms();
		vm_stop(vm, 0, status_cb, NULL);
		run_until(&S.status_done, 10000);
		ok(S.exited && S.exit_null && S.status == 0,
		   "graceful stop past stop_timeout_ms falls back to quit (%lld ms)",
		   (long long)(mono_ms() - t0));
	}
	driver_free(d);
}

/* Destroying a desktop whose VM runs ends the VM first. */
static void test_destroy_running(struct vm_driver *d)
{
	struct vm_spec s = spec_of("dsk_test2");
	char path[4200];
	int pid;

	reset();
	vm_provision(d, &s, status_cb, NULL);
	run_until(&S.status_done, 10000);
	test_stop_timeout(&s);
	reset();
	vm_boot(d, &s, &cbs, done_cb, NULL);
	run_until(&S.boot_done, 40000);
	if (!ok(S.vm != NULL, "dsk_test2 boots again (%s)", S.err.msg))
		return;
	pid = vm_pid(S.vm);
	reset();
	vm_destroy(d, "dsk_test2", status_cb, NULL);
	run_until(&S.status_done, 20000);
	snprintf(path, sizeof(path), "%s/desktops/dsk_test2", state);
	ok(S.status == 0 && S.exited && S.exit_null && kill(pid, 0) == -1 &&
	       access(path, F_OK) == -1,
	   "destroy of a running desktop: VM gone (on_exit NULL), folder gone");
}

static void test_boot_failure(const struct vm_spec *s)
{
	struct vm_driver *d = driver_new(images, "/bin/false");

	reset();
	vm_boot(d, s, &cbs, done_cb, NULL);
	run_until(&S.boot_done, 10000);
	ok(!S.vm && strstr(S.err.msg, "qemu exited with status 1"),
	   "a QEMU that exits at once fails the boot with its status (%s)", S.err.msg);
	driver_free(d);
}

int main(void)
{
	struct vm_driver *d;
	struct vm_spec s = spec_of("dsk_test1");
	char path[4200], reason[2048];
	const char *env = getenv("BUREAU_IMAGES");
	long ms_ready, ms_qmp;
	int64_t t0;
	int pid, rc;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("BUREAU_TEST_VERBOSE") ? LOG_LEVEL_INFO : LOG_LEVEL_WARN);
	snprintf(images, sizeof(images), "%s", env ? env : "../var/images");
	snprintf(path, sizeof(path), "%s/tiny/current/manifest.json", images);
	if (access(path, R_OK)) {
		printf("1..0 # SKIP tiny image not built (%s)\n", path);
		return 0;
	}
	loop = uv_default_loop();
	uv_timer_init(loop, &heartbeat);
	uv_timer_start(&heartbeat, beat, 20, 20);
	uv_unref((uv_handle_t *)&heartbeat);
	if (!mkdtemp(state))
		return 1;

	d = driver_new(images, NULL);
	if (!ok(d != NULL, "driver created"))
		return tap_done();
	test_images(d);
	test_provision_errors(d);
	test_provision(d, &s);
	test_boot_failure(&s);

	ms_ready = boot_to_ready(d, &s, &ms_qmp);
	ok(ms_ready > 0, "boot: QMP up in %ld ms, agent hello and ready in %ld ms", ms_qmp,
	   ms_ready);
	if (!S.vm)
		goto out;
	ok(vm_agent_connected(S.vm) && vm_pid(S.vm) > 0 && !strcmp(vm_id(S.vm), "dsk_test1"),
	   "vm reports id, pid %d and a connected agent", vm_pid(S.vm));
	snprintf(path, sizeof(path), "/proc/%d/cmdline", vm_pid(S.vm));
	ok(access(path, F_OK) == 0, "the pid is a live process");
	{
		struct vm *vm = S.vm;
		test_exec_and_screen(vm);
		pid = vm_pid(vm);
		reset();
		t0 = mono_ms();
		vm_stop(vm, 0, status_cb, NULL);
		run_until(&S.exited, 40000);
		run_until(&S.status_done, 5000);
		ok(S.exited && S.exit_null && S.status_done && S.status == 0,
		   "graceful stop: on_exit reason NULL, stop cb 0, in %lld ms",
		   (long long)(mono_ms() - t0));
		ok(kill(pid, 0) == -1 && errno == ESRCH, "QEMU process is gone after stop");
	}

	/* A guest that powers itself off. */
	ms_ready = boot_to_ready(d, &s, &ms_qmp);
	ok(ms_ready > 0, "second boot: agent ready in %ld ms", ms_ready);
	if (!S.vm)
		goto out;
	{
		struct vm *vm = S.vm;
		json_t *req = json_pack("{s:s, s:s, s:[s]}", "type", "exec", "user", "root", "argv",
					"poweroff");
		reset();
		vm_agent_request(vm, req, 20000, reply_cb, NULL);
		json_decref(req);
		run_until(&S.exited, 40000);
		ok(S.exited && strstr(S.exit_reason, "guest powered off"),
		   "guest poweroff: on_exit says so (%.80s)", S.exit_reason);
	}

	/* Re-attach after the first driver is gone; then a crash. */
	ms_ready = boot_to_ready(d, &s, &ms_qmp);
	ok(ms_ready > 0, "third boot: agent ready in %ld ms", ms_ready);
	if (!S.vm)
		goto out;
	test_agent_restart(S.vm);
	pid = vm_pid(S.vm);
	driver_free(d);
	ok(kill(pid, 0) == 0, "the VM outlives the driver that booted it");
	d = driver_new(images, NULL);
	reset();
	vm_attach(d, "dsk_test1", &cbs, done_cb, NULL);
	run_until(&S.boot_done, 10000);
	ok(S.vm && vm_pid(S.vm) == pid, "a second driver attaches to the running VM (%s)",
	   S.err.msg);
	if (!S.vm)
		goto out;
	/* The agent was just restarted above: under emulation on a loaded host
	 * its respawn can take a while, so wait for behaviour, not for time. */
	run_until(&S.hello, 30000);
	ok(S.hello && vm_agent_connected(S.vm), "the agent says HELLO again after attach");
	t0 = mono_ms();
	kill(pid, SIGKILL);
	run_until(&S.exited, 10000);
	ok(S.exited && strstr(S.exit_reason, "status 137") && strstr(S.exit_reason, "signal 9"),
	   "SIGKILL: on_exit in %lld ms says %.60s", (long long)(mono_ms() - t0), S.exit_reason);
	ok(vm_last_exit(d, "dsk_test1", reason, sizeof(reason)) == 1 && strstr(reason, "137"),
	   "vm_last_exit remembers the status");

	reset();
	vm_attach(d, "dsk_test1", &cbs, done_cb, NULL);
	run_until(&S.boot_done, 5000);
	ok(!S.vm && S.err.errnum == ESRCH, "attach to a stopped desktop: ESRCH");

	reset();
	vm_destroy(d, "dsk_test1", status_cb, NULL);
	run_until(&S.status_done, 10000);
	snprintf(path, sizeof(path), "%s/desktops/dsk_test1", state);
	ok(S.status == 0 && access(path, F_OK) && errno == ENOENT, "destroy removes the folder");
	test_destroy_running(d);
out:
	/* Whatever happened above, no QEMU of this test may outlive it. */
	reset();
	vm_destroy(d, "dsk_test1", status_cb, NULL);
	run_until(&S.status_done, 20000);
	driver_free(d);
	reset();
	rc = tap_done();
	if (rc)
		printf("# state left in %s\n", state);
	else
		rm_rf(state);
	return rc;
}
