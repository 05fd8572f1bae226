/* The QMP client against a real QEMU (-machine none starts at once, no
 * guest needed) and against a scripted fake server for what a real QEMU
 * will not do on demand: replies torn across reads, silence, hang-ups. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "tap.h"
#include "vm/qmp.h"

static uv_loop_t *loop;
static char tmpdir[] = "/tmp/bureau-qmp-XXXXXX";

/* Runs the loop until *flag is set or ms pass; returns the flag. */
static int run_until(int *flag, int ms)
{
	int64_t end = mono_ms() + ms;

	while (!*flag && mono_ms() < end)
		uv_run(loop, UV_RUN_NOWAIT), usleep(2000);
	return *flag;
}

/* What the callbacks saw. */
struct seen {
	int ready, ready_failed, closed, replies;
	struct err err;
	json_t *ret; /* the last reply's return value (a reference) */
	char events[256];
	long order[16];
	char codes[8][32];
};

static void on_ready(struct qmp *q, struct err *err, void *arg)
{
	struct seen *s = arg;

	if (err) {
		s->ready_failed = 1;
		s->err = *err;
	} else {
		s->ready = 1;
	}
}

static void on_event(struct qmp *q, const char *event, json_t *data, void *arg)
{
	struct seen *s = arg;

	strncat(s->events, event, sizeof(s->events) - strlen(s->events) - 2);
	strcat(s->events, " ");
}

static void on_close(struct qmp *q, void *arg)
{
	((struct seen *)arg)->closed = 1;
}

/* A reply slot: which command, and what came back. */
struct slot {
	struct seen *s;
	int n;
	int done;
	json_t *ret;
	struct err err;
};

static void on_reply(json_t *ret, struct err *err, void *arg)
{
	struct slot *sl = arg;

	sl->done = 1;
	sl->ret = json_incref(ret);
	if (err)
		sl->err = *err;
	sl->s->order[sl->s->replies++ % 16] = sl->n;
}

static struct qmp_callbacks cbs_for(struct seen *s)
{
	return (struct qmp_callbacks){on_ready, on_event, on_close, s};
}

/* QEMU creates its socket a moment after it starts: retry briefly. */
static struct qmp *connect_retry(const char *path, struct seen *s)
{
	struct qmp_callbacks cbs = cbs_for(s);

	for (int i = 0; i < 100; i++) {
		struct qmp *q = qmp_connect(loop, path, &cbs, NULL);

		for (int64_t end = mono_ms() + 6000;
		     !s->ready && !s->ready_failed && mono_ms() < end;)
			uv_run(loop, UV_RUN_NOWAIT), usleep(2000);
		if (s->ready)
			return q;
		s->ready_failed = 0;
		usleep(50000);
	}
	return NULL;
}

/* ---- real QEMU ---- */

static uv_process_t qemu_proc;
static int qemu_exited;

static void qemu_exit(uv_process_t *p, int64_t status, int sig)
{
	qemu_exited = 1;
	uv_close((uv_handle_t *)p, NULL);
}

static int qemu_start(const char *sock)
{
	char qmp_arg[300];
	char *args[] = {"qemu-system-x86_64",
			"-machine",
			"none",
			"-nodefaults",
			"-display",
			"none",
			"-qmp",
			qmp_arg,
			NULL};
	uv_process_options_t o = {0};

	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", sock);
	o.file = args[0];
	o.args = args;
	o.exit_cb = qemu_exit;
	return uv_spawn(loop, &qemu_proc, &o);
}

static void test_real_qemu(void)
{
	char sock[256];
	struct seen s = {0};
	struct slot st = {.s = &s, .n = 0}, bad = {.s = &s, .n = 0}, early = {.s = &s, .n = 0},
		    big = {.s = &s, .n = 0};
	struct slot many[5];
	const char *many_cmds[5] = {"query-status", "query-version", "query-name", "query-kvm",
				    "query-machines"};
	struct qmp *q;
	int all;

	snprintf(sock, sizeof(sock), "%s/qmp.sock", tmpdir);
	if (!ok(qemu_start(sock) == 0, "qemu -machine none starts"))
		return;
	q = connect_retry(sock, &s);
	ok(q && s.ready, "greeting read and qmp_capabilities accepted");
	if (!q)
		return;

	qmp_command(q, "query-status", NULL, 5000, on_reply, &st);
	run_until(&st.done, 5000);
	ok(st.ret && json_is_string(json_object_get(st.ret, "status")),
	   "query-status returns a status");

	qmp_command(q, "no-such-command", NULL, 5000, on_reply, &bad);
	run_until(&bad.done, 5000);
	ok(!bad.ret && !strcmp(bad.err.code, "qmp_error") && strstr(bad.err.msg, "CommandNotFound"),
	   "a bad command fails with QEMU's error class (%s)", bad.err.msg);

	s.replies = 0;
	for (int i = 0; i < 5; i++) {
		many[i] = (struct slot){.s = &s, .n = i};
		qmp_command(q, many_cmds[i], NULL, 5000, on_reply, &many[i]);
	}
	all = 0;
	for (int64_t end = mono_ms() + 5000; !all && mono_ms() < end;) {
		run_until(&many[4].done, 100);
		all = many[0].done && many[1].done && many[2].done && many[3].done && many[4].done;
	}
	ok(all && json_object_get(many[1].ret, "qemu") &&
	       json_is_string(json_object_get(many[0].ret, "status")) &&
	       json_is_object(many[2].ret) && json_object_get(many[3].ret, "enabled") &&
	       json_is_array(many[4].ret),
	   "five commands in flight each get their own reply");

	qmp_command(q, "query-qmp-schema", NULL, 10000, on_reply, &big);
	run_until(&big.done, 10000);
	ok(json_is_array(big.ret) && json_array_size(big.ret) > 500,
	   "a reply larger than one read (query-qmp-schema, %zu entries)",
	   json_array_size(big.ret));

	qmp_command(q, "stop", NULL, 5000, on_reply, &early);
	early.done = 0;
	run_until(&early.done, 5000);
	for (int64_t end = mono_ms() + 2000; !strstr(s.events, "STOP") && mono_ms() < end;)
		uv_run(loop, UV_RUN_NOWAIT), usleep(2000);
	ok(strstr(s.events, "STOP") != NULL, "the STOP event reaches the event callback");

	ok(kill(qemu_proc.pid, SIGKILL) == 0, "qemu killed by its pid");
	run_until(&s.closed, 5000);
	ok(s.closed, "close callback when qemu dies");
	run_until(&qemu_exited, 5000);

	json_decref(st.ret);
	json_decref(big.ret);
	json_decref(early.ret);
	for (int i = 0; i < 5; i++)
		json_decref(many[i].ret);
}

static void test_connect_refused(void)
{
	struct seen s = {0};
	struct qmp_callbacks cbs = cbs_for(&s);
	char sock[256];

	snprintf(sock, sizeof(sock), "%s/none.sock", tmpdir);
	qmp_connect(loop, sock, &cbs, NULL);
	run_until(&s.ready_failed, 2000);
	ok(s.ready_failed && !strcmp(s.err.code, "qmp_unavailable") && s.err.errnum == ENOENT,
	   "connecting to a missing socket fails with ENOENT");
}

/* ---- a scripted fake QMP server ---- */

struct fake {
	uv_pipe_t server, client;
	int connected, got_caps;
	struct buf in;
	char chunk[4096];
};

static void fake_write(struct fake *f, const char *s)
{
	uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));

	uv_try_write((uv_stream_t *)&f->client, &b, 1);
}

static void fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	struct fake *f = h->data;

	*b = uv_buf_init(f->chunk, sizeof(f->chunk));
}

/* Answers qmp_capabilities; everything else is left to the test. */
static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct fake *f = st->data;

	if (n <= 0)
		return;
	buf_append(&f->in, b->base, (size_t)n);
	if (!f->got_caps && strstr(f->in.data, "qmp_capabilities")) {
		f->got_caps = 1;
		fake_write(f, "{\"return\": {}, \"id\": 1}\r\n");
	}
}

static void fake_accept(uv_stream_t *server, int status)
{
	struct fake *f = server->data;

	uv_pipe_init(loop, &f->client, 0);
	f->client.data = f;
	uv_accept(server, (uv_stream_t *)&f->client);
	uv_read_start((uv_stream_t *)&f->client, fake_alloc, fake_read);
	fake_write(f, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	f->connected = 1;
}

static void test_fake_server(void)
{
	char sock[256];
	struct fake f = {0};
	struct seen s = {0};
	struct slot a = {.s = &s, .n = 1}, b = {.s = &s, .n = 2}, slow = {.s = &s, .n = 3},
		    gone = {.s = &s, .n = 4};
	struct qmp *q;

	snprintf(sock, sizeof(sock), "%s/fake.sock", tmpdir);
	uv_pipe_init(loop, &f.server, 0);
	f.server.data = &f;
	uv_pipe_bind(&f.server, sock);
	uv_listen((uv_stream_t *)&f.server, 4, fake_accept);
	q = connect_retry(sock, &s);
	if (!ok(q != NULL, "fake server: handshake"))
		return;

	/* ids 2 and 3: answered out of order, torn mid-line, an event between. */
	qmp_command(q, "a", NULL, 5000, on_reply, &a);
	qmp_command(q, "b", NULL, 5000, on_reply, &b);
	run_until(&f.connected, 100);
	fake_write(&f, "{\"return\": {\"who\": \"b\"}, \"i");
	run_until(&b.done, 100);
	ok(!b.done, "a torn line is not delivered");
	fake_write(&f, "d\": 3}\r\n{\"event\": \"POWERDOWN\", \"data\": {}}\r\n{\"return\": {\"w");
	run_until(&b.done, 1000);
	fake_write(&f, "ho\": \"a\"}, \"id\": 2}\r\n");
	run_until(&a.done, 1000);
	ok(a.done && b.done && !strcmp(json_string_value(json_object_get(a.ret, "who")), "a") &&
	       !strcmp(json_string_value(json_object_get(b.ret, "who")), "b"),
	   "replies out of order and torn across reads match their commands");
	ok(strstr(s.events, "POWERDOWN") != NULL, "an event between replies is delivered");

	qmp_command(q, "slow", NULL, 200, on_reply, &slow);
	run_until(&slow.done, 2000);
	ok(slow.done && !strcmp(slow.err.code, "qmp_timeout"), "a command times out (%s)",
	   slow.err.code);

	qmp_command(q, "never", NULL, 0, on_reply, &gone);
	run_until(&f.got_caps, 10);
	uv_close((uv_handle_t *)&f.client, NULL);
	run_until(&s.closed, 2000);
	ok(gone.done && !strcmp(gone.err.code, "qmp_closed") && s.closed,
	   "a hang-up fails pending commands, then calls on_close");

	uv_close((uv_handle_t *)&f.server, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	json_decref(a.ret);
	json_decref(b.ret);
	buf_release(&f.in);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	if (!mkdtemp(tmpdir))
		return 1;
	test_connect_refused();
	test_real_qemu();
	test_fake_server();
	uv_run(loop, UV_RUN_NOWAIT);
	rm_rf(tmpdir);
	return tap_done();
}
