/* Persistent services: the host sends the desktop's whole list after every
 * boot (and on each change); each listed service runs as its user in its
 * own session with output appended to SERVICES_LOG_DIR/NAME.log, and is
 * started again with backoff when it exits. A service the list no longer
 * holds (or whose command changed) gets SIGTERM, then SIGKILL after a
 * grace period.
 *
 * A pid file per service (SERVICES_RUN_DIR/NAME.pid: pid, start time,
 * hash of the spec) lets a restarted agent recognise a service that is
 * still running instead of starting it twice; such an adopted process is
 * not our child, so its end is noticed by polling. */
#include "agent/monitor.h"
#include "agent/stream.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SERVICES_MAX 32
#define SERVICES_NAME_MAX 63
#define SERVICES_ARGS_MAX 64
#define SERVICES_LOG_DIR "/var/log/bureau/services"
#define SERVICES_RUN_DIR "/run/bureau/services"
#define SERVICES_LOG_MAX (8 * 1024 * 1024) /* rotated to .1 beyond this at start */
#define SERVICES_BACKOFF_MIN_MS 1000
#define SERVICES_BACKOFF_MAX_MS 60000
#define SERVICES_STABLE_MS 60000 /* a run this long resets the backoff */
#define SERVICES_STOP_GRACE_MS 5000
#define SERVICES_ADOPTED_POLL_MS 1000

struct svc {
	char name[SERVICES_NAME_MAX + 1];
	json_t *argv;
	char user[32];
	unsigned long hash; /* of name, argv and user */
	int wanted;	    /* in the host's list; 0: being stopped */
	pid_t pid;	    /* 0: not running */
	int adopted;	    /* started by an earlier agent: poll, do not wait */
	int64_t started_at;
	int64_t next_start; /* when to start (again); 0: not scheduled */
	int64_t backoff;
	int64_t kill_at; /* stopping: SIGKILL then */
	int restarts;
	int has_exit, exit_code, exit_signal;
	char error[160];
};

static struct svc *svcs[SERVICES_MAX];

/* djb2 over the spec: a changed command or user restarts the service. */
static unsigned long spec_hash(const char *name, json_t *argv, const char *user)
{
	char *text = json_dumps(argv, JSON_COMPACT);
	unsigned long h = 5381;
	const char *parts[3] = {name, text ? text : "", user};

	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p; p++)
			h = h * 33 + (unsigned char)*p;
	free(text);
	return h;
}

static void svc_path(char *out, size_t n, const char *dir, const char *name, const char *ext)
{
	snprintf(out, n, "%s/%s%s", dir, name, ext);
}

static void mkdirs(const char *path)
{
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	mkdir(tmp, 0755);
}

/* Field 22 of /proc/<pid>/stat: tells a pid apart from a reused one. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], text[1024], *p;
	unsigned long long start = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (!(p = strrchr(text, ')')) ||
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
		   "%*d %*d %llu",
		   &start) != 1)
		return 0;
	return start;
}

static void pidfile_write(const struct svc *s)
{
	char path[256];
	FILE *f;

	mkdirs(SERVICES_RUN_DIR);
	svc_path(path, sizeof(path), SERVICES_RUN_DIR, s->name, ".pid");
	if ((f = fopen(path, "we"))) {
		fprintf(f, "%d %llu %lu\n", (int)s->pid, proc_start_time(s->pid), s->hash);
		fclose(f);
	}
}

static void pidfile_remove(const struct svc *s)
{
	char path[256];

	svc_path(path, sizeof(path), SERVICES_RUN_DIR, s->name, ".pid");
	unlink(path);
}

/* The pid of a still-running process an earlier agent started for this
 * very spec, or 0. */
static pid_t pidfile_adopt(const struct svc *s)
{
	char path[256];
	unsigned long long start;
	unsigned long hash;
	int pid;
	FILE *f;

	svc_path(path, sizeof(path), SERVICES_RUN_DIR, s->name, ".pid");
	if (!(f = fopen(path, "re")))
		return 0;
	if (fscanf(f, "%d %llu %lu", &pid, &start, &hash) != 3)
		pid = 0;
	fclose(f);
	if (pid <= 0 || hash != s->hash || !start || proc_start_time(pid) != start)
		return 0;
	return pid;
}

/* Opens the log for appending, moving a large one aside first. */
static int log_open(const char *name)
{
	char path[256], old[270];
	struct stat st;

	mkdirs(SERVICES_LOG_DIR);
	svc_path(path, sizeof(path), SERVICES_LOG_DIR, name, ".log");
	if (stat(path, &st) == 0 && st.st_size > SERVICES_LOG_MAX) {
		snprintf(old, sizeof(old), "%s.1", path);
		rename(path, old);
	}
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* In the child: never returns. */
static void svc_exec(const struct svc *s, int logfd, const struct agent_user *u)
{
	char *args[SERVICES_ARGS_MAX + 1], env_home[300], env_user[80], env_logname[80];
	char *envp[10];
	sigset_t none;
	size_t i, n = json_array_size(s->argv);
	int k = 0, null = open("/dev/null", O_RDONLY);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	dup2(null >= 0 ? null : 0, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	if (agent_user_become(u)) {
		dprintf(2, "bureau-agent: cannot become %s: %s\n", s->user, strerror(errno));
		_exit(126);
	}
	if (chdir(u->home))
		chdir("/");
	for (i = 0; i < n && i < SERVICES_ARGS_MAX; i++)
		args[i] = (char *)json_string_value(json_array_get(s->argv, i));
	args[i] = NULL;
	snprintf(env_home, sizeof(env_home), "HOME=%s", u->home);
	snprintf(env_user, sizeof(env_user), "USER=%s", s->user);
	snprintf(env_logname, sizeof(env_logname), "LOGNAME=%s", s->user);
	envp[k++] = u->uid ? "PATH=/usr/local/bin:/usr/bin:/bin"
			: "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	envp[k++] = env_home;
	envp[k++] = env_user;
	envp[k++] = env_logname;
	envp[k++] = "LANG=C.UTF-8";
	if (!strcmp(agent_image(), "desktop"))
		envp[k++] = "DISPLAY=:0";
	envp[k] = NULL;
	execvpe(args[0], args, envp);
	dprintf(2, "bureau-agent: cannot run %s: %s\n", args[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static void svc_start(struct svc *s)
{
	struct agent_user u;
	int logfd;
	pid_t pid;

	s->next_start = 0;
	if (agent_user_lookup(s->user, &u)) {
		snprintf(s->error, sizeof(s->error), "unknown user \"%.32s\"", s->user);
		return;
	}
	if ((logfd = log_open(s->name)) < 0) {
		snprintf(s->error, sizeof(s->error), "cannot open its log: %s", strerror(errno));
		s->next_start = agent_now_ms() + SERVICES_BACKOFF_MAX_MS;
		return;
	}
	fchown(logfd, u.uid, u.gid);
	dprintf(logfd, "bureau-agent: starting %s\n", s->name);
	pid = fork();
	if (pid == 0)
		svc_exec(s, logfd, &u);
	close(logfd);
	if (pid < 0) {
		snprintf(s->error, sizeof(s->error), "fork: %s", strerror(errno));
		s->next_start = agent_now_ms() + s->backoff;
		return;
	}
	s->pid = pid;
	s->adopted = 0;
	s->error[0] = '\0';
	s->started_at = agent_now_ms();
	pidfile_write(s);
	log_info("event=service-start name=%s pid=%d user=%s", s->name, (int)pid, s->user);
}

static json_t *svc_status_json(const struct svc *s)
{
	char log[256];
	const char *state = s->pid ? "running" : s->next_start ? "restarting" : "failed";

	svc_path(log, sizeof(log), SERVICES_LOG_DIR, s->name, ".log");
	return json_pack(
	    "{s:s, s:s, s:o, s:i, s:o, s:o, s:s, s:o}", "name", s->name, "state", state, "pid",
	    s->pid ? json_integer(s->pid) : json_null(), "restarts", s->restarts, "lastExitCode",
	    s->has_exit && s->exit_signal < 0 ? json_integer(s->exit_code) : json_null(),
	    "lastSignal",
	    s->has_exit && s->exit_signal >= 0 ? json_integer(s->exit_signal) : json_null(), "log",
	    log, "error", s->error[0] ? json_string(s->error) : json_null());
}

static void status_send(uint64_t gen, json_t *id)
{
	json_t *list = json_array(), *m;

	for (int i = 0; i < SERVICES_MAX; i++)
		if (svcs[i] && svcs[i]->wanted)
			json_array_append_new(list, svc_status_json(svcs[i]));
	m = json_pack("{s:s, s:o}", "type", "services.status", "services", list);
	if (id)
		json_object_set(m, "id", id);
	agent_send(gen, m);
	json_decref(m);
}

static void svc_free(struct svc *s)
{
	for (int i = 0; i < SERVICES_MAX; i++)
		if (svcs[i] == s)
			svcs[i] = NULL;
	json_decref(s->argv);
	free(s);
}

/* Not wanted any more: ask it to end, and forget it once it has. */
static void svc_stop(struct svc *s)
{
	s->wanted = 0;
	s->next_start = 0;
	if (!s->pid) {
		svc_free(s);
		return;
	}
	log_info("event=service-stop name=%s pid=%d", s->name, (int)s->pid);
	kill(-s->pid, SIGTERM);
	s->kill_at = agent_now_ms() + SERVICES_STOP_GRACE_MS;
	pidfile_remove(s);
}

static struct svc *svc_find_wanted(const char *name)
{
	for (int i = 0; i < SERVICES_MAX; i++)
		if (svcs[i] && svcs[i]->wanted && !strcmp(svcs[i]->name, name))
			return svcs[i];
	return NULL;
}

static int name_ok(const char *n)
{
	size_t len = strlen(n);

	if (!len || len > SERVICES_NAME_MAX || n[0] == '.' || n[0] == '-')
		return 0;
	return strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       len;
}

/* Checks the list; returns a message for the error reply, or NULL. */
static const char *list_check(json_t *list)
{
	json_t *s, *a;
	size_t i, k;

	if (!json_is_array(list) || json_array_size(list) > SERVICES_MAX)
		return "\"services\" must be an array of at most 32 services";
	json_array_foreach (list, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));
		json_t *argv = json_object_get(s, "command");

		if (!name || !name_ok(name))
			return "a service needs a valid \"name\"";
		if (!json_is_string(json_object_get(s, "user")))
			return "a service needs a \"user\"";
		if (!json_is_array(argv) || !json_array_size(argv) ||
		    json_array_size(argv) > SERVICES_ARGS_MAX)
			return "a service's \"command\" must be a non-empty array of strings";
		json_array_foreach (argv, k, a) {
			if (!json_is_string(a) || (k == 0 && !json_string_length(a)))
				return "a service's \"command\" must be a non-empty array of "
				       "strings";
		}
	}
	return NULL;
}

/* Brings the running set in line with the list. */
static void services_apply(json_t *list)
{
	json_t *s;
	size_t i;

	for (int k = 0; k < SERVICES_MAX; k++) {
		struct svc *v = svcs[k];
		int keep = 0;

		if (!v || !v->wanted)
			continue;
		json_array_foreach (list, i, s) {
			const char *name = json_string_value(json_object_get(s, "name"));
			if (!strcmp(name, v->name) &&
			    spec_hash(name, json_object_get(s, "command"),
				      json_string_value(json_object_get(s, "user"))) == v->hash)
				keep = 1;
		}
		if (!keep)
			svc_stop(v);
	}
	json_array_foreach (list, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));
		struct svc *v;
		int slot;

		if (svc_find_wanted(name))
			continue;
		for (slot = 0; slot < SERVICES_MAX && svcs[slot]; slot++)
			;
		if (slot == SERVICES_MAX)
			break;
		v = xcalloc(1, sizeof(*v));
		snprintf(v->name, sizeof(v->name), "%s", name);
		v->argv = json_incref(json_object_get(s, "command"));
		snprintf(v->user, sizeof(v->user), "%s",
			 json_string_value(json_object_get(s, "user")));
		v->hash = spec_hash(v->name, v->argv, v->user);
		v->wanted = 1;
		v->backoff = SERVICES_BACKOFF_MIN_MS;
		svcs[slot] = v;
		if ((v->pid = pidfile_adopt(v))) {
			v->adopted = 1;
			v->started_at = agent_now_ms();
			log_info("event=service-adopt name=%s pid=%d", v->name, (int)v->pid);
		} else {
			svc_start(v);
		}
	}
}

void services_request(json_t *msg, uint64_t gen)
{
	json_t *list = json_object_get(msg, "services");
	const char *why = list_check(list);

	if (why) {
		agent_send_error(gen, json_object_get(msg, "id"), why);
		return;
	}
	services_apply(list);
	status_send(gen, json_object_get(msg, "id"));
}

/* The service ended (status from waitpid, or -1 for an adopted one). */
static void svc_ended(struct svc *s, int status)
{
	int64_t now = agent_now_ms();

	s->has_exit = 1;
	s->exit_code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	s->exit_signal = status >= 0 && WIFSIGNALED(status) ? WTERMSIG(status) : -1;
	log_info("event=service-exit name=%s pid=%d code=%d signal=%d", s->name, (int)s->pid,
		 s->exit_code, s->exit_signal);
	s->pid = 0;
	if (!s->wanted) {
		svc_free(s);
		return;
	}
	pidfile_remove(s);
	if (now - s->started_at >= SERVICES_STABLE_MS)
		s->backoff = SERVICES_BACKOFF_MIN_MS;
	s->next_start = now + s->backoff;
	s->backoff =
	    s->backoff * 2 > SERVICES_BACKOFF_MAX_MS ? SERVICES_BACKOFF_MAX_MS : s->backoff * 2;
	status_send(agent_session(), NULL);
}

int services_child_status(int pid, int status)
{
	for (int i = 0; i < SERVICES_MAX; i++) {
		struct svc *s = svcs[i];

		if (s && s->pid == pid && !s->adopted) {
			svc_ended(s, status);
			return 0;
		}
	}
	return -1;
}

static void svc_tick(struct svc *s, struct agent_poll *p, int64_t now)
{
	if (s->pid && s->adopted && kill(s->pid, 0) && errno == ESRCH) {
		svc_ended(s, -1);
		return;
	}
	if (s->pid && s->adopted)
		agent_poll_wake(p, now + SERVICES_ADOPTED_POLL_MS);
	if (!s->wanted && s->pid && s->kill_at) {
		if (now >= s->kill_at) {
			kill(-s->pid, SIGKILL);
			s->kill_at = 0;
		} else {
			agent_poll_wake(p, s->kill_at);
		}
		if (s->adopted)
			agent_poll_wake(p, now + SERVICES_ADOPTED_POLL_MS);
	}
	if (s->wanted && !s->pid && s->next_start) {
		if (now >= s->next_start) {
			s->restarts++;
			svc_start(s);
			status_send(agent_session(), NULL);
		} else {
			agent_poll_wake(p, s->next_start);
		}
	}
}

void services_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();

	for (int i = 0; i < SERVICES_MAX; i++)
		if (svcs[i])
			svc_tick(svcs[i], p, now);
}
