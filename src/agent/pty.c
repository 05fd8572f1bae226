/* The "pty" stream kind: a login shell on a pseudo-terminal as the agent
 * user (or root when asked), for the web terminal. The host's DATA is
 * typed into the terminal, the terminal's output goes back as DATA while
 * the stream has credit (a terminal whose viewer stalls simply stops being
 * read, as a real one would), "resize" messages set its size, and the CLOSE
 * carries the shell's exit status. */
#include "agent/stream.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PTY_DEFAULT_COLS 80
#define PTY_DEFAULT_ROWS 24
#define PTY_MAX_DIM 1000

struct pty {
	struct pty *next;
	struct astream *s;
	int fd;
	pid_t pid;
	int status, exited, eof;
	struct buf in; /* typed bytes not yet written */
	size_t in_off;
};

static struct pty *ptys;

static int pty_dim(json_t *msg, const char *key, int def, int *out)
{
	json_t *j = json_object_get(msg, key);

	if (!j) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > PTY_MAX_DIM)
		return -1;
	*out = (int)json_integer_value(j);
	return 0;
}

/* Never returns: becomes the user and runs the login shell. */
static void pty_child(const struct agent_user *u)
{
	char argv0[260], *argv[2];
	const char *base = strrchr(u->shell, '/');
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (agent_user_become(u)) {
		dprintf(2, "bureau-agent: cannot become %s: %s\r\n", u->name, strerror(errno));
		_exit(126);
	}
	if (chdir(u->home))
		(void)chdir("/");
	clearenv();
	setenv("TERM", "xterm-256color", 1);
	setenv("HOME", u->home, 1);
	setenv("USER", u->name, 1);
	setenv("LOGNAME", u->name, 1);
	setenv("SHELL", u->shell, 1);
	setenv("LANG", "C.UTF-8", 1);
	setenv("PATH",
	       u->uid ? "/usr/local/bin:/usr/bin:/bin"
		      : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	       1);
	if (!strcmp(agent_image(), "desktop"))
		setenv("DISPLAY", ":0", 1);
	/* A leading '-' in argv[0] makes it a login shell. */
	snprintf(argv0, sizeof(argv0), "-%s", base ? base + 1 : u->shell);
	argv[0] = argv0;
	argv[1] = NULL;
	execv(u->shell, argv);
	dprintf(2, "bureau-agent: cannot run %s: %s\r\n", u->shell, strerror(errno));
	_exit(127);
}

static int pty_open(struct astream *s, json_t *msg, json_t *opened, char *why, size_t n)
{
	struct agent_user u;
	struct winsize ws = {0};
	struct pty *t;
	int cols, rows, fd;
	pid_t pid;

	if (pty_dim(msg, "cols", PTY_DEFAULT_COLS, &cols) ||
	    pty_dim(msg, "rows", PTY_DEFAULT_ROWS, &rows)) {
		snprintf(why, n, "\"cols\" and \"rows\" must be integers 1..%d", PTY_MAX_DIM);
		return -1;
	}
	if (agent_user_of(msg, &u, why, n))
		return -1;
	ws.ws_col = (unsigned short)cols;
	ws.ws_row = (unsigned short)rows;
	pid = forkpty(&fd, NULL, NULL, &ws);
	if (pid < 0) {
		snprintf(why, n, "cannot open a terminal: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		pty_child(&u);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	t = xcalloc(1, sizeof(*t));
	t->s = s;
	t->fd = fd;
	t->pid = pid;
	t->next = ptys;
	ptys = t;
	s->impl = t;
	json_object_set_new(opened, "pid", json_integer(pid));
	log_info("event=pty-open pid=%d user=%s cols=%d rows=%d stream=%u", pid, u.name, cols, rows,
		 s->ch.id);
	return 0;
}

static void pty_data(struct astream *s, const uint8_t *p, size_t len)
{
	struct pty *t = s->impl;

	if (!len || t->eof) {
		stream_consumed(s, len); /* the terminal has no end of input */
		return;
	}
	buf_append(&t->in, p, len);
}

static void pty_write_cb(void *obj, int fd, short revents)
{
	struct pty *t = obj;
	ssize_t n;

	if (t->s->done)
		return;
	while (t->in_off < t->in.len) {
		n = write(fd, t->in.data + t->in_off, t->in.len - t->in_off);
		if (n > 0) {
			t->in_off += (size_t)n;
			stream_consumed(t->s, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		stream_consumed(t->s, t->in.len - t->in_off);
		break;
	}
	buf_reset(&t->in);
	t->in_off = 0;
}

static void pty_read_cb(void *obj, int fd, short revents)
{
	struct pty *t = obj;
	char tmp[CH_MAX_PAYLOAD];
	size_t room;
	ssize_t n;

	if (t->s->done)
		return;
	room = stream_room(t->s, sizeof(tmp));
	if (!room)
		return;
	n = read(fd, tmp, room);
	if (n > 0)
		stream_send(t->s, tmp, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		t->eof = 1; /* EIO: every writer of the terminal is gone */
}

static void pty_finish(struct pty *t)
{
	json_t *m = json_pack(
	    "{s:o, s:o}", "exitCode",
	    WIFEXITED(t->status) ? json_integer(WEXITSTATUS(t->status)) : json_null(), "signal",
	    WIFSIGNALED(t->status) ? json_integer(WTERMSIG(t->status)) : json_null());

	log_info("event=pty-done pid=%d status=%d stream=%u", t->pid, t->status, t->s->ch.id);
	stream_finish(t->s, m);
	json_decref(m);
}

static void pty_poll(struct astream *s, struct agent_poll *p)
{
	struct pty *t = s->impl;
	short ev = 0;

	if (t->exited && t->eof) {
		pty_finish(t);
		return;
	}
	if (!t->eof && stream_room(s, 1))
		ev |= POLLIN;
	if (t->in_off < t->in.len)
		ev |= POLLOUT;
	if (ev & POLLIN)
		agent_poll_add(p, t->fd, POLLIN, pty_read_cb, t);
	if (ev & POLLOUT)
		agent_poll_add(p, t->fd, POLLOUT, pty_write_cb, t);
}

static int pty_resize(struct astream *s, int cols, int rows)
{
	struct pty *t = s->impl;
	struct winsize ws = {0};

	ws.ws_col = (unsigned short)cols;
	ws.ws_row = (unsigned short)rows;
	/* The kernel sends SIGWINCH to the terminal's foreground group. */
	return ioctl(t->fd, TIOCSWINSZ, &ws);
}

static void pty_free(struct astream *s, int aborted)
{
	struct pty *t = s->impl, **p;

	if (!t)
		return;
	if (!t->exited) {
		kill(-t->pid, SIGHUP);
		kill(t->pid, SIGKILL);
	}
	close(t->fd);
	for (p = &ptys; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	buf_release(&t->in);
	free(t);
}

int pty_child_status(int pid, int status)
{
	struct pty *t;

	for (t = ptys; t; t = t->next)
		if (t->pid == pid && !t->exited) {
			t->exited = 1;
			t->status = status;
			return 0;
		}
	return -1;
}

const struct stream_kind stream_kind_pty = {
    .name = "pty",
    .open = pty_open,
    .data = pty_data,
    .poll = pty_poll,
    .resize = pty_resize,
    .free = pty_free,
};
