/* The "exec" request: runs a command as a user, feeds it stdin, collects
 * stdout and stderr, and answers with exec.result once it has exited. Each
 * command runs in its own session (process group), which a timeout kills.
 * Children are plain fork/exec with non-blocking pipes served by the loop.
 *
 * The same commands also run as "exec" streams: stdin comes from the
 * host's DATA (an empty one closes it), stdout and stderr go out as DATA
 * tagged 1 and 2 as fast as the stream's credit allows, and the exit
 * status is the CLOSE. Nothing is kept, so output has no limit. */
#include "agent/agent.h"
#include "agent/stream.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "guest/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_MAX 64 /* concurrent commands */
#define EXEC_MAX_ARGS 4096
#define EXEC_DEFAULT_TIMEOUT_MS 60000
#define EXEC_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define EXEC_OUTPUT_KEEP CH_MAX_PAYLOAD /* bytes kept per stream */
/* After the command exits, how long to wait for its pipes to close
 * (background children may hold them open). */
#define EXEC_DRAIN_MS 500

#define user agent_user

struct exec {
	json_t *id;
	uint64_t gen;
	pid_t pid;
	int in_fd, out_fd, err_fd;
	struct buf in; /* stdin still to write */
	size_t in_off;
	struct buf out, err;
	int out_cut, err_cut; /* more output came than was kept */
	int64_t deadline;     /* timeout */
	int64_t exited_at;    /* 0 while running */
	int status;
	int timed_out;
	struct astream *st; /* an exec stream, else a one-shot request */
	int in_eof;	    /* stream: the host closed stdin */
};

static struct exec *execs[EXEC_MAX];

int exec_count(void)
{
	int i, n = 0;

	for (i = 0; i < EXEC_MAX; i++)
		n += execs[i] != NULL;
	return n;
}

static int user_groups(const struct user *u, gid_t *groups, int max);

int agent_user_lookup(const char *name, struct user *u)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024];
	int found = -1;

	if (!f)
		return -1;
	while (found && fgets(line, sizeof(line), f)) {
		char *field[7], *p = line;
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		/* strsep keeps empty fields (gecos is often empty). */
		while (n < 7 && (field[n] = strsep(&p, ":")))
			n++;
		if (n < 7 || strcmp(field[0], name))
			continue;
		snprintf(u->name, sizeof(u->name), "%s", field[0]);
		u->uid = (uid_t)strtoul(field[2], NULL, 10);
		u->gid = (gid_t)strtoul(field[3], NULL, 10);
		snprintf(u->home, sizeof(u->home), "%s", field[5][0] ? field[5] : "/");
		snprintf(u->shell, sizeof(u->shell), "%s", field[6][0] ? field[6] : "/bin/sh");
		found = 0;
	}
	fclose(f);
	if (!found)
		u->ngroups = user_groups(u, u->groups, (int)(sizeof(u->groups) / sizeof(gid_t)));
	return found;
}

int agent_user_of(json_t *msg, struct agent_user *u, char *why, size_t n)
{
	json_t *ju = json_object_get(msg, "user");
	const char *name = json_string_value(ju);

	if (ju && !json_is_string(ju)) {
		snprintf(why, n, "\"user\" must be a string");
		return -1;
	}
	if (!name)
		name = agent_user_lookup("agent", u) == 0 ? "agent" : "root";
	if (agent_user_lookup(name, u)) {
		snprintf(why, n, "unknown user \"%.64s\"", name);
		return -1;
	}
	return 0;
}

int agent_user_become(const struct agent_user *u)
{
	if (u->uid == 0 && getuid() == 0)
		return 0;
	if (setgroups((size_t)u->ngroups, u->groups) || setgid(u->gid) || setuid(u->uid))
		return -1;
	return 0;
}

/* The supplementary groups of a user, from /etc/group. */
static int user_groups(const struct user *u, gid_t *groups, int max)
{
	FILE *f = fopen("/etc/group", "re");
	char line[4096];
	int n = 0;

	groups[n++] = u->gid;
	if (!f)
		return n;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *p = line, *name, *gid, *members, *m;

		line[strcspn(line, "\n")] = '\0';
		name = strsep(&p, ":");
		strsep(&p, ":");
		gid = strsep(&p, ":");
		members = p;
		if (!name || !gid || !members)
			continue;
		while ((m = strsep(&members, ",")))
			if (strcmp(m, u->name) == 0) {
				groups[n++] = (gid_t)strtoul(gid, NULL, 10);
				break;
			}
	}
	fclose(f);
	return n;
}

static void exec_free(struct exec *e)
{
	if (e->st)
		e->st->impl = NULL;
	int i;

	for (i = 0; i < EXEC_MAX; i++)
		if (execs[i] == e)
			execs[i] = NULL;
	if (e->in_fd >= 0)
		close(e->in_fd);
	if (e->out_fd >= 0)
		close(e->out_fd);
	if (e->err_fd >= 0)
		close(e->err_fd);
	buf_release(&e->in);
	buf_release(&e->out);
	buf_release(&e->err);
	json_decref(e->id);
	free(e);
}

/* Builds exec.result with outputs cut to fit in one frame. */
static json_t *exec_result(struct exec *e)
{
	struct buf so = BUF_INIT, se = BUF_INIT;
	size_t keep_o, keep_e;
	int truncated = e->out_cut || e->err_cut;
	json_t *m = NULL;

	text_utf8_sanitize(&so, e->out.data ? e->out.data : "", e->out.len);
	text_utf8_sanitize(&se, e->err.data ? e->err.data : "", e->err.len);
	keep_o = so.len;
	keep_e = se.len;
	for (;;) {
		char *s;
		size_t len, over;

		json_decref(m);
		m = json_pack(
		    "{s:s, s:O, s:o, s:o, s:b, s:s%, s:s%, s:b}", "type", "exec.result", "id",
		    e->id, "exitCode",
		    WIFEXITED(e->status) && !e->timed_out ? json_integer(WEXITSTATUS(e->status))
							  : json_null(),
		    "signal",
		    WIFSIGNALED(e->status) ? json_integer(WTERMSIG(e->status)) : json_null(),
		    "timedOut", e->timed_out, "stdout", so.data ? so.data : "", keep_o, "stderr",
		    se.data ? se.data : "", keep_e, "truncated", truncated);
		s = json_dumps(m, JSON_COMPACT);
		len = s ? strlen(s) : 0;
		free(s);
		if (len <= CH_MAX_PAYLOAD || (!keep_o && !keep_e))
			break;
		/* Escapes make the JSON longer than the text: trim the
		 * larger output by the overflow and try again. */
		over = len - CH_MAX_PAYLOAD + 64;
		truncated = 1;
		if (keep_o >= keep_e)
			keep_o =
			    text_utf8_prefix(so.data, keep_o, keep_o > over ? keep_o - over : 0);
		else
			keep_e =
			    text_utf8_prefix(se.data, keep_e, keep_e > over ? keep_e - over : 0);
	}
	buf_release(&so);
	buf_release(&se);
	return m;
}

/* The command exited and its pipes are drained (or the drain time is up). */
static void exec_finish(struct exec *e)
{
	json_t *m;

	if (e->st) {
		m = json_pack(
		    "{s:o, s:o, s:b}", "exitCode",
		    WIFEXITED(e->status) && !e->timed_out ? json_integer(WEXITSTATUS(e->status))
							  : json_null(),
		    "signal",
		    WIFSIGNALED(e->status) ? json_integer(WTERMSIG(e->status)) : json_null(),
		    "timedOut", e->timed_out);
		log_info("event=exec-stream-done pid=%d status=%d timedOut=%d stream=%u", e->pid,
			 e->status, e->timed_out, e->st->ch.id);
		stream_finish(e->st, m);
		json_decref(m);
		exec_free(e);
		return;
	}
	m = exec_result(e);
	log_info("event=exec-done pid=%d status=%d timedOut=%d stdout=%zu stderr=%zu", e->pid,
		 e->status, e->timed_out, e->out.len, e->err.len);
	agent_send(e->gen, m);
	json_decref(m);
	exec_free(e);
}

static void exec_pipe_read(struct exec *e, int *fd, struct buf *b, int *cut)
{
	char tmp[16384];
	ssize_t n;
	int i;

	for (i = 0; i < 8; i++) {
		n = read(*fd, tmp, sizeof(tmp));
		if (n > 0) {
			size_t room = b->len < EXEC_OUTPUT_KEEP ? EXEC_OUTPUT_KEEP - b->len : 0;

			if ((size_t)n > room)
				*cut = 1;
			buf_append(b, tmp, (size_t)n < room ? (size_t)n : room);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close(*fd);
		*fd = -1;
		return;
	}
}

/* Stream mode: forwards what the credit allows, tagged with the output. */
static void exec_pipe_forward(struct exec *e, int *fd, uint8_t tag)
{
	char tmp[CH_MAX_PAYLOAD];
	size_t room = stream_room(e->st, sizeof(tmp));
	ssize_t n;

	if (room < 2)
		return;
	n = read(*fd, tmp, room - 1);
	if (n > 0) {
		stream_send_tagged(e->st, tag, tmp, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(*fd);
	*fd = -1;
}

static void exec_out_cb(void *obj, int fd, short revents)
{
	struct exec *e = obj;

	if (e->st) {
		if (e->st->done)
			return;
		if (fd == e->out_fd)
			exec_pipe_forward(e, &e->out_fd, 1);
		else if (fd == e->err_fd)
			exec_pipe_forward(e, &e->err_fd, 2);
		return;
	}
	if (fd == e->out_fd)
		exec_pipe_read(e, &e->out_fd, &e->out, &e->out_cut);
	else if (fd == e->err_fd)
		exec_pipe_read(e, &e->err_fd, &e->err, &e->err_cut);
}

static void exec_stdin_close(struct exec *e)
{
	if (e->in_fd >= 0)
		close(e->in_fd);
	e->in_fd = -1;
	buf_reset(&e->in);
	e->in_off = 0;
}

static void exec_in_cb(void *obj, int fd, short revents)
{
	struct exec *e = obj;
	ssize_t n;

	while (e->in_off < e->in.len) {
		n = write(fd, e->in.data + e->in_off, e->in.len - e->in_off);
		if (n > 0) {
			e->in_off += (size_t)n;
			if (e->st)
				stream_consumed(e->st, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		/* EPIPE: the command does not read its stdin. */
		if (e->st)
			stream_consumed(e->st, e->in.len - e->in_off);
		exec_stdin_close(e);
		return;
	}
	buf_reset(&e->in);
	e->in_off = 0;
	/* A stream's stdin stays open until the host says it is done. */
	if (!e->st || e->in_eof)
		exec_stdin_close(e);
}

/* Whether output can be taken now: always for a request (it keeps a
 * bounded part), for a stream only while it has credit and room. */
static int exec_can_read(struct exec *e)
{
	return !e->st || stream_room(e->st, 2) >= 2;
}

void exec_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();
	int i;

	for (i = 0; i < EXEC_MAX; i++) {
		struct exec *e = execs[i];

		if (!e)
			continue;
		if (!e->exited_at && !e->timed_out && now >= e->deadline) {
			log_info("event=exec-timeout pid=%d", e->pid);
			kill(-e->pid, SIGKILL);
			e->timed_out = 1;
		}
		if (e->exited_at && ((e->out_fd < 0 && e->err_fd < 0) ||
				     (now >= e->exited_at + EXEC_DRAIN_MS && exec_can_read(e)))) {
			exec_finish(e);
			continue;
		}
		if (e->st && e->in_eof && e->in_fd >= 0 && e->in_off >= e->in.len) {
			close(e->in_fd);
			e->in_fd = -1;
		}
		if (e->in_fd >= 0 && (!e->st || e->in_off < e->in.len))
			agent_poll_add(p, e->in_fd, POLLOUT, exec_in_cb, e);
		if (e->out_fd >= 0 && exec_can_read(e))
			agent_poll_add(p, e->out_fd, POLLIN, exec_out_cb, e);
		if (e->err_fd >= 0 && exec_can_read(e))
			agent_poll_add(p, e->err_fd, POLLIN, exec_out_cb, e);
		if (e->exited_at)
			agent_poll_wake(p, e->exited_at + EXEC_DRAIN_MS);
		else if (!e->timed_out)
			agent_poll_wake(p, e->deadline);
	}
}

int exec_child_status(int pid, int status)
{
	int i;

	for (i = 0; i < EXEC_MAX; i++) {
		struct exec *e = execs[i];

		if (e && e->pid == pid && !e->exited_at) {
			e->status = status;
			e->exited_at = agent_now_ms();
			return 0;
		}
	}
	return -1;
}

/* Never returns: sets up the child and execs argv, or reports on stderr
 * and exits 126/127 as a shell would. */
static void exec_child(char **argv, char **envp, const struct user *u, const char *cwd, int in,
		       int out, int err)
{
	sigset_t none;
	int code;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (agent_user_become(u)) {
		dprintf(2, "bureau-agent: cannot become %s: %s\n", u->name, strerror(errno));
		_exit(126);
	}
	if (chdir(cwd)) {
		dprintf(2, "bureau-agent: cannot enter %s: %s\n", cwd, strerror(errno));
		_exit(126);
	}
	execvpe(argv[0], argv, envp);
	code = errno == ENOENT ? 127 : 126;
	dprintf(2, "bureau-agent: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(code);
}

static void env_set(char ***envp, int *n, const char *key, const char *val)
{
	size_t kl = strlen(key);
	int i;

	for (i = 0; i < *n; i++)
		if (strncmp((*envp)[i], key, kl) == 0 && (*envp)[i][kl] == '=') {
			free((*envp)[i]);
			(*envp)[i] = xasprintf("%s=%s", key, val);
			return;
		}
	*envp = xrealloc(*envp, sizeof(char *) * (size_t)(*n + 2));
	(*envp)[(*n)++] = xasprintf("%s=%s", key, val);
	(*envp)[*n] = NULL;
}

/* Checks the request; returns a message for the error reply, or NULL. */
static const char *exec_check(json_t *msg, const char **user, const char **cwd, long long *timeout)
{
	json_t *argv = json_object_get(msg, "argv"), *v;
	json_t *env = json_object_get(msg, "env"), *in = json_object_get(msg, "stdin");
	json_t *ju = json_object_get(msg, "user"), *jc = json_object_get(msg, "cwd");
	json_t *jt = json_object_get(msg, "timeoutMs");
	const char *k;
	size_t i;

	if (!json_is_array(argv) || json_array_size(argv) == 0)
		return "\"argv\" must be a non-empty array of strings";
	if (json_array_size(argv) > EXEC_MAX_ARGS)
		return "\"argv\" has too many elements";
	json_array_foreach (argv, i, v) {
		if (!json_is_string(v))
			return "\"argv\" must be a non-empty array of strings";
	}
	if (!json_string_length(json_array_get(argv, 0)))
		return "\"argv[0]\" is empty";
	if (env && !json_is_object(env))
		return "\"env\" must be an object of strings";
	json_object_foreach (env, k, v) {
		if (!json_is_string(v) || !k[0] || strchr(k, '='))
			return "\"env\" must be an object of strings";
	}
	if (in && !json_is_string(in))
		return "\"stdin\" must be a string";
	if (ju && !json_is_string(ju))
		return "\"user\" must be a string";
	if (jc && (!json_is_string(jc) || json_string_value(jc)[0] != '/'))
		return "\"cwd\" must be an absolute path";
	if (jt && (!json_is_integer(jt) || json_integer_value(jt) <= 0 ||
		   json_integer_value(jt) > EXEC_MAX_TIMEOUT_MS))
		return "\"timeoutMs\" must be a positive integer (at most one day)";
	*user = ju ? json_string_value(ju) : NULL;
	*cwd = jc ? json_string_value(jc) : NULL;
	*timeout = jt ? json_integer_value(jt) : EXEC_DEFAULT_TIMEOUT_MS;
	return NULL;
}

/* The environment of a command: a login-like base, then the request's. */
static char **exec_env(json_t *msg, const struct user *u, int *n)
{
	char **envp = xcalloc(1, sizeof(char *));
	json_t *env = json_object_get(msg, "env"), *v;
	const char *k;

	*n = 0;
	env_set(&envp, n, "PATH",
		u->uid ? "/usr/local/bin:/usr/bin:/bin"
		       : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	env_set(&envp, n, "HOME", u->home);
	env_set(&envp, n, "USER", u->name);
	env_set(&envp, n, "LOGNAME", u->name);
	env_set(&envp, n, "SHELL", u->shell);
	env_set(&envp, n, "LANG", "C.UTF-8");
	if (strcmp(agent_image(), "desktop") == 0) {
		char xa[300];

		snprintf(xa, sizeof(xa), "%s/.Xauthority", u->uid ? u->home : "/home/agent");
		env_set(&envp, n, "DISPLAY", ":0");
		env_set(&envp, n, "XAUTHORITY", xa);
	}
	json_object_foreach (env, k, v) {
		env_set(&envp, n, k, json_string_value(v));
	}
	return envp;
}

static int pipe_pair(int p[2])
{
	if (pipe2(p, O_CLOEXEC))
		return -1;
	return 0;
}

/* Starts the command; fills e's pipes and pid. Returns 0 or -errno. */
static int exec_spawn(struct exec *e, json_t *msg, const struct user *u, const char *cwd,
		      int stdin_pipe)
{
	json_t *argv = json_object_get(msg, "argv"), *in = json_object_get(msg, "stdin");
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, n, err = 0;
	size_t i, argc = json_array_size(argv);
	char **args = xcalloc(argc + 1, sizeof(char *)), **envp = exec_env(msg, u, &n);
	pid_t pid;

	for (i = 0; i < argc; i++)
		args[i] = (char *)json_string_value(json_array_get(argv, i));
	if (in || stdin_pipe) {
		if (pipe_pair(pin))
			goto fail;
	} else if ((pin[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		goto fail;
	}
	if (pipe_pair(pout) || pipe_pair(perr))
		goto fail;
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0)
		exec_child(args, envp, u, cwd, pin[0], pout[1], perr[1]);
	e->pid = pid;
	e->in_fd = pin[1];
	e->out_fd = pout[0];
	e->err_fd = perr[0];
	if (in)
		buf_append(&e->in, json_string_value(in), json_string_length(in));
	if (e->in_fd >= 0)
		fcntl(e->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(e->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(e->err_fd, F_SETFL, O_NONBLOCK);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	goto out;
fail:
	err = -errno;
	for (i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
out:
	for (i = 0; envp[i]; i++)
		free(envp[i]);
	free(envp);
	free(args);
	return err;
}

void exec_request(json_t *msg, uint64_t gen)
{
	json_t *id = json_object_get(msg, "id");
	const char *uname, *cwd, *why;
	long long timeout;
	struct user u;
	struct exec *e;
	struct stat st;
	int slot, r;
	char text[300];

	why = exec_check(msg, &uname, &cwd, &timeout);
	if (why) {
		agent_send_error(gen, id, why);
		return;
	}
	for (slot = 0; slot < EXEC_MAX && execs[slot]; slot++)
		;
	if (slot == EXEC_MAX) {
		agent_send_error(gen, id, "too many commands running");
		return;
	}
	if (!uname)
		uname = agent_user_lookup("agent", &u) == 0 ? "agent" : "root";
	if (agent_user_lookup(uname, &u)) {
		snprintf(text, sizeof(text), "unknown user \"%.64s\"", uname);
		agent_send_error(gen, id, text);
		return;
	}
	if (!cwd)
		cwd = stat(u.home, &st) == 0 && S_ISDIR(st.st_mode) ? u.home : "/";
	e = xcalloc(1, sizeof(*e));
	e->id = id ? json_incref(id) : json_null();
	e->gen = gen;
	e->in_fd = e->out_fd = e->err_fd = -1;
	e->deadline = agent_now_ms() + timeout;
	r = exec_spawn(e, msg, &u, cwd, 0);
	if (r) {
		snprintf(text, sizeof(text), "cannot start command: %s", strerror(-r));
		agent_send_error(gen, id, text);
		exec_free(e);
		return;
	}
	execs[slot] = e;
	log_info("event=exec pid=%d user=%s argv0=\"%.64s\" timeoutMs=%lld", e->pid, u.name,
		 json_string_value(json_array_get(json_object_get(msg, "argv"), 0)), timeout);
}

/* ---- the "exec" stream kind ---- */

static int exec_stream_open(struct astream *s, json_t *msg, json_t *opened, char *why, size_t n)
{
	const char *uname, *cwd, *bad;
	long long timeout;
	struct user u;
	struct exec *e;
	struct stat st;
	int slot, r;

	if ((bad = exec_check(msg, &uname, &cwd, &timeout))) {
		snprintf(why, n, "%s", bad);
		return -1;
	}
	if (json_object_get(msg, "stdin")) {
		snprintf(why, n, "a stream's stdin comes as DATA, not \"stdin\"");
		return -1;
	}
	for (slot = 0; slot < EXEC_MAX && execs[slot]; slot++)
		;
	if (slot == EXEC_MAX) {
		snprintf(why, n, "too many commands running");
		return -1;
	}
	if (agent_user_of(msg, &u, why, n))
		return -1;
	if (!cwd)
		cwd = stat(u.home, &st) == 0 && S_ISDIR(st.st_mode) ? u.home : "/";
	e = xcalloc(1, sizeof(*e));
	e->id = json_null();
	e->in_fd = e->out_fd = e->err_fd = -1;
	e->deadline = agent_now_ms() + timeout;
	r = exec_spawn(e, msg, &u, cwd, 1);
	if (r) {
		snprintf(why, n, "cannot start command: %s", strerror(-r));
		exec_free(e);
		return -1;
	}
	e->st = s;
	s->impl = e;
	execs[slot] = e;
	json_object_set_new(opened, "pid", json_integer(e->pid));
	log_info("event=exec-stream pid=%d user=%s argv0=\"%.64s\" stream=%u", e->pid, u.name,
		 json_string_value(json_array_get(json_object_get(msg, "argv"), 0)), s->ch.id);
	return 0;
}

/* The host's stdin bytes wait in e->in; the window bounds them, and they
 * are given back as the command reads them. */
static void exec_stream_data(struct astream *s, const uint8_t *p, size_t len)
{
	struct exec *e = s->impl;

	if (!e || e->in_fd < 0) {
		stream_consumed(s, len); /* stdin closed: dropped, but taken */
		if (e && !len)
			e->in_eof = 1;
		return;
	}
	if (!len) {
		e->in_eof = 1;
		return;
	}
	buf_append(&e->in, p, len);
}

static void exec_stream_free(struct astream *s, int aborted)
{
	struct exec *e = s->impl;

	if (!e)
		return;
	if (!e->exited_at) {
		log_info("event=exec-stream-abort pid=%d", e->pid);
		kill(-e->pid, SIGKILL);
	}
	exec_free(e);
}

const struct stream_kind stream_kind_exec = {
    .name = "exec",
    .open = exec_stream_open,
    .data = exec_stream_data,
    .free = exec_stream_free,
};
