/* The pilot's tools: shell (as the agent user, with a timeout and an output
 * limit), computer (the X display :0 through scrot and xdotool) and files
 * (read, write, edit). tool_check validates a call before anything runs and
 * names the action for the approval policy. */
#include "agent/pilot.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOOL_TAIL_KEPT (8 * 1024) /* of an output over the limit, the end kept */
#define TOOL_TEXT_MAX (64 * 1024) /* computer "type" text */
#define TOOL_SHOT_PATH "/tmp/bureau-pilot-shot.png"

static const char *const computer_actions[] = {
    "screenshot",  "mouse_move", "left_click",	 "right_click", "middle_click",
    "double_click", "left_click_drag", "type", "key", "scroll", "cursor_position",
};

const char *tool_home(void)
{
	struct passwd *pw = getpwnam("agent");
	static char home[256];

	snprintf(home, sizeof(home), "%s", pw ? pw->pw_dir : "/root");
	return home;
}

void pilot_display_size(int *w, int *h)
{
	static int cw, ch;
	FILE *f;
	int a, b;

	if (!cw) {
		cw = PILOT_DISPLAY_W;
		ch = PILOT_DISPLAY_H;
		f = fopen("/sys/class/graphics/fb0/virtual_size", "re");
		if (f && fscanf(f, "%d,%d", &a, &b) == 2 && a >= 640 && b >= 480 && a <= 8192 &&
		    b <= 8192) {
			cw = a;
			ch = b;
		}
		if (f)
			fclose(f);
	}
	*w = cw;
	*h = ch;
}

static int coord_get(const json_t *in, const char *key, int *x, int *y)
{
	json_t *c = json_object_get(in, key);
	int w, h;

	if (!json_is_array(c) || json_array_size(c) != 2 || !json_is_integer(json_array_get(c, 0)) ||
	    !json_is_integer(json_array_get(c, 1)))
		return -1;
	*x = (int)json_integer_value(json_array_get(c, 0));
	*y = (int)json_integer_value(json_array_get(c, 1));
	pilot_display_size(&w, &h);
	return *x < 0 || *y < 0 || *x >= w || *y >= h ? -1 : 0;
}

static int check_shell(const json_t *in, char *action, size_t n, char *why, size_t wn)
{
	json_t *cmd = json_object_get(in, "command"), *to = json_object_get(in, "timeout");

	if (!json_is_string(cmd) || !json_string_length(cmd))
		return snprintf(why, wn, "shell needs \"command\", a non-empty string"), -1;
	if (json_string_length(cmd) > 64 * 1024)
		return snprintf(why, wn, "command longer than 64 KiB"), -1;
	if (to && (!json_is_integer(to) || json_integer_value(to) < 1 ||
		   json_integer_value(to) > PILOT_SHELL_TIMEOUT_MAX_S))
		return snprintf(why, wn, "timeout must be 1 to %d seconds", PILOT_SHELL_TIMEOUT_MAX_S), -1;
	snprintf(action, n, "%s", json_string_value(cmd));
	return 0;
}

static int check_files(const json_t *in, char *action, size_t n, char *why, size_t wn)
{
	const char *op = json_string_value(json_object_get(in, "op"));
	const char *path = json_string_value(json_object_get(in, "path"));
	json_t *content = json_object_get(in, "content");

	if (!op || (strcmp(op, "read") && strcmp(op, "write") && strcmp(op, "edit")))
		return snprintf(why, wn, "files needs \"op\": read, write or edit"), -1;
	if (!path || path[0] != '/' || strlen(path) > 4096)
		return snprintf(why, wn, "files needs \"path\", an absolute path"), -1;
	if (!strcmp(op, "write") && (!json_is_string(content) ||
				     json_string_length(content) > PILOT_FILE_MAX))
		return snprintf(why, wn, "write needs \"content\", a string of at most 1 MiB"), -1;
	if (!strcmp(op, "edit") && (!json_is_string(json_object_get(in, "old")) ||
				    !json_string_length(json_object_get(in, "old")) ||
				    !json_is_string(json_object_get(in, "new"))))
		return snprintf(why, wn, "edit needs \"old\" (non-empty) and \"new\" strings"), -1;
	snprintf(action, n, "%s %s", op, path);
	return 0;
}

static int check_computer(const json_t *in, int have_display, char *action, size_t n, char *why,
			  size_t wn)
{
	const char *a = json_string_value(json_object_get(in, "action"));
	const char *text = json_string_value(json_object_get(in, "text"));
	size_t i;
	int x, y, x0, y0;

	if (!have_display)
		return snprintf(why, wn, "this desktop has no display"), -1;
	for (i = 0; a && i < sizeof(computer_actions) / sizeof(computer_actions[0]); i++)
		if (!strcmp(a, computer_actions[i]))
			break;
	if (!a || i == sizeof(computer_actions) / sizeof(computer_actions[0]))
		return snprintf(why, wn, "unknown computer action"), -1;
	if (!strcmp(a, "type") || !strcmp(a, "key")) {
		if (!text || !*text || strlen(text) > TOOL_TEXT_MAX)
			return snprintf(why, wn, "%s needs \"text\"", a), -1;
		snprintf(action, n, "%s %s", a, text);
		return 0;
	}
	if (!strcmp(a, "left_click_drag")) {
		if (coord_get(in, "start_coordinate", &x0, &y0) || coord_get(in, "coordinate", &x, &y))
			return snprintf(why, wn, "left_click_drag needs start_coordinate and coordinate "
					"inside the screen"), -1;
		snprintf(action, n, "%s %d,%d %d,%d", a, x0, y0, x, y);
		return 0;
	}
	if (!strcmp(a, "mouse_move") || !strcmp(a, "scroll") ||
	    (json_object_get(in, "coordinate") && strstr(a, "click"))) {
		if (coord_get(in, "coordinate", &x, &y))
			return snprintf(why, wn, "%s needs \"coordinate\": [x, y] inside the screen",
					a), -1;
		snprintf(action, n, "%s %d,%d", a, x, y);
		return 0;
	}
	snprintf(action, n, "%s", a);
	return 0;
}

int tool_check(const char *name, const json_t *input, int have_display, char *action, size_t n,
	       char *why, size_t wn)
{
	if (!json_is_object(input))
		return snprintf(why, wn, "the input must be an object"), -1;
	if (!strcmp(name, "shell"))
		return check_shell(input, action, n, why, wn);
	if (!strcmp(name, "files"))
		return check_files(input, action, n, why, wn);
	if (!strcmp(name, "computer"))
		return check_computer(input, have_display, action, n, why, wn);
	snprintf(why, wn, "unknown tool \"%.60s\"", name);
	return -1;
}

void tool_result_release(struct tool_result *r)
{
	buf_release(&r->out);
	free(r->image_b64);
	r->image_b64 = NULL;
}

char *base64_encode(const unsigned char *b, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc(4 * ((n + 2) / 3) + 1), *p = o;
	size_t i;

	if (!o)
		abort();
	for (i = 0; i + 2 < n; i += 3) {
		*p++ = tbl[b[i] >> 2];
		*p++ = tbl[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
		*p++ = tbl[((b[i + 1] & 15) << 2) | (b[i + 2] >> 6)];
		*p++ = tbl[b[i + 2] & 63];
	}
	if (i < n) {
		*p++ = tbl[b[i] >> 2];
		if (i + 1 < n) {
			*p++ = tbl[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
			*p++ = tbl[(b[i + 1] & 15) << 2];
		} else {
			*p++ = tbl[(b[i] & 3) << 4];
			*p++ = '=';
		}
		*p++ = '=';
	}
	*p = '\0';
	return o;
}

/* ---- running a process as the agent user ---- */

static void child_become_agent(void)
{
	struct passwd *pw = getpwnam("agent");

	if (!pw || getuid() != 0)
		return;
	if (setgroups(0, NULL) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
		_exit(126);
}

/* Runs argv (argv[0] looked up in PATH) as the agent user in its home,
 * output (stdout and stderr) into out, bounded; returns the exit status,
 * or -1 (timeout, interrupt, spawn failure) with a note in out. */
static int run_as_agent(char *const argv[], int timeout_s, volatile int *stop, struct buf *out)
{
	int fds[2], status = 0, r;
	size_t total = 0;
	struct buf tail = BUF_INIT;
	pid_t pid;
	time_t deadline = time(NULL) + timeout_s;
	const char *home = tool_home();
	char hbuf[300];

	if (pipe2(fds, O_CLOEXEC))
		return buf_printf(out, "pipe: %s", strerror(errno)), -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return buf_printf(out, "fork: %s", strerror(errno)), -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		setsid();
		dup2(devnull, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		child_become_agent();
		snprintf(hbuf, sizeof(hbuf), "%s", home);
		setenv("HOME", hbuf, 1);
		setenv("USER", "agent", 1);
		setenv("DISPLAY", ":0", 1);
		snprintf(hbuf, sizeof(hbuf), "%s/.Xauthority", home);
		setenv("XAUTHORITY", hbuf, 1);
		if (chdir(home))
			(void)chdir("/");
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = {fds[0], POLLIN, 0};
		char b[8192];
		ssize_t n;

		if (*stop || time(NULL) >= deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			buf_printf(&tail, "\n[%s]", *stop ? "interrupted" : "timed out");
			status = -1;
			break;
		}
		r = poll(&p, 1, 200);
		if (r <= 0)
			continue;
		n = read(fds[0], b, sizeof(b));
		if (n <= 0)
			break;
		total += (size_t)n;
		if (out->len < PILOT_OUTPUT_MAX) {
			size_t take = (size_t)n < PILOT_OUTPUT_MAX - out->len ? (size_t)n
									    : PILOT_OUTPUT_MAX - out->len;
			buf_append(out, b, take);
		} else {
			buf_append(&tail, b, (size_t)n);
			if (tail.len > TOOL_TAIL_KEPT)
				buf_consume(&tail, tail.len - TOOL_TAIL_KEPT);
		}
	}
	close(fds[0]);
	if (total > PILOT_OUTPUT_MAX + tail.len)
		buf_printf(out, "\n[... %zu bytes omitted ...]\n",
			   total - PILOT_OUTPUT_MAX - (tail.len > TOOL_TAIL_KEPT ? 0 : tail.len));
	if (tail.len)
		buf_append(out, tail.data, tail.len);
	buf_release(&tail);
	if (waitpid(pid, &r, 0) == pid && status == 0)
		status = WIFEXITED(r) ? WEXITSTATUS(r) : 128 + WTERMSIG(r);
	return status;
}

static void run_shell(const json_t *in, volatile int *stop, struct tool_result *r)
{
	json_t *to = json_object_get(in, "timeout");
	char *argv[] = {"/bin/sh", "-c", (char *)json_string_value(json_object_get(in, "command")),
			NULL};
	int st = run_as_agent(argv, to ? (int)json_integer_value(to) : PILOT_SHELL_TIMEOUT_DEFAULT_S,
			      stop, &r->out);

	buf_printf(&r->out, "\n[exit status %d]", st);
	r->is_error = st != 0;
}

/* ---- files ---- */

static int read_all(const char *path, struct buf *b, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char tmp[65536];
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
		if (b->len + (size_t)n > max) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
		buf_append(b, tmp, (size_t)n);
	}
	close(fd);
	return n < 0 ? -1 : 0;
}

/* Files are written as the agent user would: by a child with its ids. */
static int write_as_agent(const char *path, const char *data, size_t len)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		char tmp[4200];
		int fd;

		child_become_agent();
		snprintf(tmp, sizeof(tmp), "%s.pilot-tmp", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			_exit(errno & 0xff);
		if (write(fd, data, len) != (ssize_t)len || fsync(fd) || close(fd) || rename(tmp, path))
			_exit(errno & 0xff);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	errno = WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
	return errno ? -1 : 0;
}

static void run_files(const json_t *in, struct tool_result *r)
{
	const char *op = json_string_value(json_object_get(in, "op"));
	const char *path = json_string_value(json_object_get(in, "path"));
	struct buf b = BUF_INIT;

	if (!strcmp(op, "write")) {
		json_t *c = json_object_get(in, "content");
		if (write_as_agent(path, json_string_value(c), json_string_length(c)))
			buf_printf(&r->out, "write %s: %s", path, strerror(errno)), r->is_error = 1;
		else
			buf_printf(&r->out, "wrote %zu bytes to %s", json_string_length(c), path);
		return;
	}
	if (read_all(path, &b, PILOT_FILE_MAX)) {
		buf_printf(&r->out, "%s %s: %s", op, path, strerror(errno));
		r->is_error = 1;
	} else if (!strcmp(op, "read")) {
		buf_append(&r->out, b.data ? b.data : "", b.len < PILOT_OUTPUT_MAX ? b.len : PILOT_OUTPUT_MAX);
		if (b.len > PILOT_OUTPUT_MAX)
			buf_printf(&r->out, "\n[... %zu more bytes]", b.len - PILOT_OUTPUT_MAX);
	} else {
		const char *old = json_string_value(json_object_get(in, "old"));
		const char *nw = json_string_value(json_object_get(in, "new"));
		char *at = b.data ? strstr(b.data, old) : NULL;
		struct buf o = BUF_INIT;

		if (!at || strstr(at + 1, old)) {
			buf_printf(&r->out, "edit %s: \"old\" must occur exactly once (found %s)", path,
				   at ? "several" : "none");
			r->is_error = 1;
		} else {
			buf_append(&o, b.data, (size_t)(at - b.data));
			buf_puts(&o, nw);
			buf_puts(&o, at + strlen(old));
			if (write_as_agent(path, o.data, o.len))
				buf_printf(&r->out, "edit %s: %s", path, strerror(errno)), r->is_error = 1;
			else
				buf_printf(&r->out, "edited %s", path);
		}
		buf_release(&o);
	}
	buf_release(&b);
}

/* ---- computer ---- */

static void screenshot(volatile int *stop, struct tool_result *r)
{
	char *argv[] = {"scrot", "-o", "-p", TOOL_SHOT_PATH, NULL};
	struct buf png = BUF_INIT, out = BUF_INIT;

	unlink(TOOL_SHOT_PATH);
	if (run_as_agent(argv, 30, stop, &out) != 0 || read_all(TOOL_SHOT_PATH, &png, 16 << 20)) {
		buf_printf(&r->out, "screenshot failed: %s", out.data ? out.data : strerror(errno));
		r->is_error = 1;
	} else {
		r->image_b64 = base64_encode((unsigned char *)png.data, png.len);
		int w, h;

		pilot_display_size(&w, &h);
		buf_printf(&r->out, "screenshot %dx%d", w, h);
	}
	unlink(TOOL_SHOT_PATH);
	buf_release(&png);
	buf_release(&out);
}

static void xdo(volatile int *stop, struct tool_result *r, char *const argv[])
{
	int st = run_as_agent(argv, 30, stop, &r->out);

	if (st)
		buf_printf(&r->out, "\nxdotool failed (status %d)", st), r->is_error = 1;
}

static void run_computer(const json_t *in, volatile int *stop, struct tool_result *r)
{
	const char *a = json_string_value(json_object_get(in, "action"));
	const char *text = json_string_value(json_object_get(in, "text"));
	const char *dir = json_string_value(json_object_get(in, "scroll_direction"));
	json_int_t amount = json_integer_value(json_object_get(in, "scroll_amount"));
	char xs[16], ys[16], x0s[16], y0s[16], btn[8], reps[16];
	int x = 0, y = 0, x0 = 0, y0 = 0, has = !coord_get(in, "coordinate", &x, &y);

	snprintf(xs, sizeof(xs), "%d", x);
	snprintf(ys, sizeof(ys), "%d", y);
	if (!strcmp(a, "screenshot")) {
		screenshot(stop, r);
		return;
	}
	if (!strcmp(a, "cursor_position")) {
		char *argv[] = {"xdotool", "getmouselocation", NULL};
		xdo(stop, r, argv);
		return;
	}
	if (!strcmp(a, "type")) {
		char *argv[] = {"xdotool", "type", "--delay", "12", "--", (char *)text, NULL};
		xdo(stop, r, argv);
	} else if (!strcmp(a, "key")) {
		char *argv[] = {"xdotool", "key", "--", (char *)text, NULL};
		xdo(stop, r, argv);
	} else if (!strcmp(a, "mouse_move")) {
		char *argv[] = {"xdotool", "mousemove", xs, ys, NULL};
		xdo(stop, r, argv);
	} else if (!strcmp(a, "left_click_drag")) {
		coord_get(in, "start_coordinate", &x0, &y0);
		snprintf(x0s, sizeof(x0s), "%d", x0);
		snprintf(y0s, sizeof(y0s), "%d", y0);
		char *argv[] = {"xdotool", "mousemove", x0s, y0s, "mousedown", "1", "mousemove",
				xs, ys, "mouseup", "1", NULL};
		xdo(stop, r, argv);
	} else if (!strcmp(a, "scroll")) {
		snprintf(btn, sizeof(btn), "%d", dir && !strcmp(dir, "up") ? 4 : dir && !strcmp(dir, "left") ? 6
						   : dir && !strcmp(dir, "right") ? 7 : 5);
		snprintf(reps, sizeof(reps), "%d", amount > 0 && amount < 50 ? (int)amount : 3);
		char *argv[] = {"xdotool", "mousemove", xs, ys, "click", "--repeat", reps, btn, NULL};
		xdo(stop, r, argv);
	} else {
		/* the clicks, at the coordinate when given */
		snprintf(btn, sizeof(btn), "%d", !strcmp(a, "right_click") ? 3 : !strcmp(a, "middle_click") ? 2 : 1);
		snprintf(reps, sizeof(reps), "%d", !strcmp(a, "double_click") ? 2 : 1);
		char *with[] = {"xdotool", "mousemove", xs, ys, "click", "--repeat", reps, btn, NULL};
		char *without[] = {"xdotool", "click", "--repeat", reps, btn, NULL};
		xdo(stop, r, has ? with : without);
	}
	if (!r->is_error)
		buf_printf(&r->out, "%sdone: %s", r->out.len ? "\n" : "", a);
}

void tool_run(const char *name, const json_t *input, volatile int *stop, struct tool_result *r)
{
	memset(r, 0, sizeof(*r));
	if (!strcmp(name, "shell"))
		run_shell(input, stop, r);
	else if (!strcmp(name, "files"))
		run_files(input, r);
	else
		run_computer(input, stop, r);
}
