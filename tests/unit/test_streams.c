/* Channel streams through the driver (vm_stream_*) with the tiny image
 * under TCG: a terminal ("pty": login shell, its size, resize, exit
 * status), flow control (a paused stream receives no more than its window
 * while the control stream and other streams go on), a refused open, and
 * every stream failing with "agent connection lost" when the agent dies.
 * Skips when the tiny image is not built. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "guest/channel.h"
#include "tap.h"
#include "vm/driver.h"

static uv_loop_t *loop;
static char state[] = "/tmp/bureau-streams-XXXXXX";
static uv_timer_t heartbeat;

static void beat(uv_timer_t *t)
{
}

static int run_until(int *flag, int ms)
{
	int64_t end = mono_ms() + ms;

	while (!*flag && mono_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
	return *flag;
}

static void run_for(int ms)
{
	int64_t end = mono_ms() + ms;

	while (mono_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
}

/* ---- the VM ---- */

static struct vm *vm;
static int booted, ready;

static void on_msg(struct vm *v, json_t *msg, void *arg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (type && !strcmp(type, "ready"))
		ready = 1;
}

static void on_exit_cb(struct vm *v, const char *reason, void *arg)
{
	vm = NULL;
}

static void done_cb(struct vm *v, struct err *err, void *arg)
{
	booted = 1;
	vm = v;
	if (err)
		printf("# boot: %s\n", err->msg);
}

static void status_cb(int status, struct err *err, void *arg)
{
	*(int *)arg = 1;
}

static const struct vm_callbacks vm_cbs = {on_msg, on_exit_cb, NULL};

/* ---- one stream's view ---- */

struct view {
	struct vm_stream *s;
	int opened, closed;
	json_t *info, *result;
	struct err err;
	int has_err;
	struct buf data;
	int pause_at_first; /* pause as soon as data arrives */
};

static void v_open(struct vm_stream *s, json_t *info, void *arg)
{
	struct view *v = arg;

	v->opened = 1;
	v->info = json_incref(info);
}

static void v_data(struct vm_stream *s, const uint8_t *data, size_t len, void *arg)
{
	struct view *v = arg;

	buf_append(&v->data, data, len);
	if (v->pause_at_first) {
		vm_stream_pause(s);
		v->pause_at_first = 0;
	}
}

static void v_close(struct vm_stream *s, json_t *result, const struct err *err, void *arg)
{
	struct view *v = arg;

	v->closed = 1;
	v->s = NULL;
	v->result = result ? json_incref(result) : NULL;
	if (err) {
		v->err = *err;
		v->has_err = 1;
	}
}

static const struct vm_stream_callbacks view_cbs = {v_open, v_data, NULL, v_close};

static void view_release(struct view *v)
{
	json_decref(v->info);
	json_decref(v->result);
	buf_release(&v->data);
	memset(v, 0, sizeof(*v));
}

static int view_open(struct view *v, json_t *open)
{
	struct err err = ERR_INIT;

	v->s = vm_stream_open(vm, open, &view_cbs, v, &err);
	json_decref(open);
	if (!v->s)
		printf("# open: %s\n", err.msg);
	return v->s != NULL;
}

static int view_has(struct view *v, const char *text)
{
	buf_reserve(&v->data, 1);
	v->data.data[v->data.len] = '\0';
	return v->data.len && strstr(v->data.data, text) != NULL;
}

/* Runs the loop until the view's output holds text. */
static int wait_text(struct view *v, const char *text, int ms)
{
	int64_t end = mono_ms() + ms;

	while (!view_has(v, text) && !v->closed && mono_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
	return view_has(v, text);
}

static void test_pty(void)
{
	struct view v = {0};
	const char *type = "stty size; echo MARK$((40+2)); exit 7\n";

	if (!ok(view_open(&v, json_pack("{s:s, s:i, s:i}", "kind", "pty", "cols", 100, "rows", 30)),
		"open a pty stream"))
		return;
	run_until(&v.opened, 20000);
	ok(v.opened && json_integer_value(json_object_get(v.info, "pid")) > 0,
	   "the agent answers opened with the shell's pid");
	vm_stream_write(v.s, "echo TERM=$TERM; id -un\n", 24);
	ok(wait_text(&v, "TERM=xterm-256color", 20000), "the shell has TERM=xterm-256color");
	ok(wait_text(&v, "agent", 10000), "the shell runs as the agent user");
	vm_stream_resize(v.s, 120, 40);
	vm_stream_write(v.s, "stty size\n", 10);
	ok(wait_text(&v, "40 120", 10000), "resize changes the terminal's size (stty: 40 120)");
	vm_stream_write(v.s, type, strlen(type));
	ok(wait_text(&v, "MARK42", 10000), "typed input runs in the shell");
	run_until(&v.closed, 20000);
	ok(v.closed && !v.has_err && json_integer_value(json_object_get(v.result, "exitCode")) == 7,
	   "the stream closes with the shell's exit status");
	view_release(&v);
}

/* A paused stream holds at most the window; the control stream and other
 * streams keep working meanwhile; resuming delivers the rest in order. */
static void test_flow(void)
{
	struct view big = {0}, small = {0};
	size_t held;
	const size_t total = 3000000;

	big.pause_at_first = 1;
	if (!ok(view_open(&big, json_pack("{s:s, s:[s,s,s]}", "kind", "exec", "argv", "sh", "-c",
					  "head -c 3000000 /dev/zero | tr '\\0' z")),
		"open an exec stream with 3 MB of output"))
		return;
	while (!big.data.len && !big.closed)
		uv_run(loop, UV_RUN_ONCE);
	run_for(2000);
	held = big.data.len;
	ok(held > 0 && held <= CH_WINDOW_INITIAL,
	   "paused, it received %zu bytes: no more than the window (%d)", held, CH_WINDOW_INITIAL);
	ok(!big.closed, "a paused stream stays open");
	if (ok(view_open(&small, json_pack("{s:s, s:[s,s]}", "kind", "exec", "argv", "echo",
					   "independent")),
	       "another stream opens meanwhile")) {
		run_until(&small.closed, 20000);
		ok(view_has(&small, "\001independent") &&
		       json_integer_value(json_object_get(small.result, "exitCode")) == 0,
		   "and completes while the first is paused (stdout tagged 1)");
	}
	vm_stream_resume(big.s);
	run_until(&big.closed, 60000);
	{
		size_t i, z = 0, tags = 0, n = big.data.len;
		const char *p = big.data.data;

		/* Each frame starts with its tag; count the output bytes. */
		(void)p;
		for (i = 0; i < n; i++)
			z += p[i] == 'z';
		tags = n - z;
		ok(big.closed && z == total && tags > 0 &&
		       json_integer_value(json_object_get(big.result, "exitCode")) == 0,
		   "resumed, every byte arrives (%zu of %zu) and the exit status", z, total);
	}
	view_release(&big);
	view_release(&small);
}

static void test_refused(void)
{
	struct view v = {0};

	view_open(&v, json_pack("{s:s, s:s}", "kind", "file.read", "path", "/no/such/file"));
	run_until(&v.closed, 20000);
	ok(v.closed && !v.opened && !v.has_err &&
	       !strcmp(json_string_value(json_object_get(v.result, "errno")) ?: "", "EACCES"),
	   "a file outside the agent user's area is refused with its errno");
	view_release(&v);
	view_open(&v, json_pack("{s:s}", "kind", "teleport"));
	run_until(&v.closed, 20000);
	ok(v.closed && json_object_get(v.result, "error"), "an unknown kind is refused");
	view_release(&v);
	view_open(&v, json_pack("{s:s, s:i}", "kind", "pty", "cols", 5000));
	run_until(&v.closed, 20000);
	ok(v.closed && json_object_get(v.result, "error"), "a pty of 5000 columns is refused");
	view_release(&v);
}

static void kill_reply(json_t *reply, struct err *err, void *arg)
{
	*(int *)arg = 1;
}

/* The agent dies under open streams: each ends with the error, none
 * hangs, and the new agent takes new streams. */
static void test_lost(void)
{
	struct view a = {0}, b = {0}, c = {0};
	int done = 0;
	json_t *req;

	view_open(&a, json_pack("{s:s, s:[s,s]}", "kind", "exec", "argv", "sleep", "60"));
	view_open(&b, json_pack("{s:s}", "kind", "pty"));
	run_until(&b.opened, 20000);
	req = json_pack("{s:s, s:s, s:[s,s,s]}", "type", "exec", "user", "root", "argv", "sh", "-c",
			"kill -9 $(pidof bureau-agent)");
	vm_agent_request(vm, req, 20000, kill_reply, &done);
	json_decref(req);
	run_until(&a.closed, 30000);
	run_until(&b.closed, 5000);
	ok(a.closed && b.closed, "both streams end when the agent dies");
	ok(a.has_err && !strcmp(a.err.code, "agent_unavailable") &&
	       strstr(a.err.msg, CH_LOST) != NULL,
	   "with the error \"%s\" (%s)", CH_LOST, a.err.msg);
	run_until(&done, 20000);
	ready = 0;
	run_until(&ready, 30000);
	view_open(&c, json_pack("{s:s, s:[s,s]}", "kind", "exec", "argv", "echo", "back"));
	run_until(&c.closed, 20000);
	ok(c.closed && view_has(&c, "back"), "the respawned agent takes new streams");
	view_release(&a);
	view_release(&b);
	view_release(&c);
}

int main(void)
{
	struct vm_driver_config cfg = {state, NULL, "tcg", NULL, 20000};
	struct vm_spec spec = {.vcpus = 2, .memory_mb = 512, .disk_gb = 2};
	struct vm_driver *d = NULL;
	struct err err = ERR_INIT;
	const char *env = getenv("BUREAU_IMAGES");
	char images[4096], path[4200];
	int provisioned = 0, stopped = 0;

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
	cfg.image_dir = images;
	if (!ok(vm_driver_new(loop, &cfg, &d, &err) == 0, "driver created"))
		return tap_done();
	snprintf(spec.id, sizeof(spec.id), "dsk_streams1");
	snprintf(spec.image, sizeof(spec.image), "tiny");
	if (vm_image_current(d, "tiny", spec.image_version, sizeof(spec.image_version), &err))
		printf("# %s\n", err.msg);
	vm_provision(d, &spec, status_cb, &provisioned);
	run_until(&provisioned, 30000);
	vm_boot(d, &spec, &vm_cbs, done_cb, NULL);
	run_until(&booted, 40000);
	run_until(&ready, 60000);
	if (!ok(vm && ready && vm_agent_connected(vm), "the tiny guest's agent is ready"))
		goto out;
	test_pty();
	test_flow();
	test_refused();
	test_lost();
	if (vm) {
		vm_stop(vm, 1, status_cb, &stopped);
		run_until(&stopped, 30000);
	}
out:
	vm_driver_free(d);
	for (int i = 0; i < 20; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	rm_rf(state);
	return tap_done();
}
