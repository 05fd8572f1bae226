/* bureau-agent's side of the pilot. See pilot_run.h. */
#include "agent/pilot_run.h"
#include "agent/config.h"
#include "common/buf.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
	pid_t pid;
	int fd;		   /* our end of the socketpair */
	struct buf in;	   /* from the pilot, up to a newline */
	struct buf out;	   /* to the pilot */
	int64_t start_at;  /* when to start it again */
	int backoff_ms;
	uint64_t session;  /* the host session the pilot last heard of */
	int missing;	   /* no binary: do not spin */
} pr = {.fd = -1};

static void pilot_path(char *out, size_t n)
{
	char self[PATH_MAX - 32];
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (l <= 0) {
		snprintf(out, n, "/usr/local/sbin/bureau-pilot");
		return;
	}
	self[l] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(out, n, "%s/bureau-pilot", self);
}

static void pr_write_line(const json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);

	if (!s)
		return;
	buf_puts(&pr.out, s);
	buf_append(&pr.out, "\n", 1);
	free(s);
}

static void pr_start(void)
{
	char path[PATH_MAX], state[320];
	int sv[2];
	pid_t pid;

	pilot_path(path, sizeof(path));
	if (access(path, X_OK)) {
		if (!pr.missing++)
			log_warnx("event=pilot-missing path=%s", path);
		pr.start_at = agent_now_ms() + PILOT_RUN_RESTART_MAX_MS;
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		log_warn("socketpair");
		pr.start_at = agent_now_ms() + PILOT_RUN_RESTART_MS;
		return;
	}
	pid = fork();
	if (pid == 0) {
		const char *display = strcmp(agent_image(), "desktop") ? NULL : "--display";
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(sv[1], 0);
		dup2(sv[1], 1);
		setsid();
		/* Tools the model runs reach the network through the proxy. */
		setenv("http_proxy", "http://10.0.2.100:3128", 1);
		setenv("https_proxy", "http://10.0.2.100:3128", 1);
		setenv("HTTPS_PROXY", "http://10.0.2.100:3128", 1);
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
		if (!strcmp(agent_image(), "tiny")) {
			snprintf(state, sizeof(state), "/data/home/agent/.local/share/bureau/pilot");
			execl(path, "bureau-pilot", "--config-dir", config_dir(), "--state-dir", state,
			      (char *)NULL);
		}
		execl(path, "bureau-pilot", "--config-dir", config_dir(), display, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		pr.start_at = agent_now_ms() + PILOT_RUN_RESTART_MS;
		return;
	}
	pr.pid = pid;
	pr.fd = sv[0];
	fcntl(pr.fd, F_SETFL, O_NONBLOCK);
	pr.session = 0;
	log_info("event=pilot-start pid=%d", pid);
}

static void pr_stop_io(void)
{
	if (pr.fd >= 0)
		close(pr.fd);
	pr.fd = -1;
	buf_reset(&pr.in);
	buf_reset(&pr.out);
}

/* One line from the pilot: to the host, as is. */
static void pr_line(const char *s, size_t n)
{
	json_t *m = json_loadb(s, n, 0, NULL);

	if (json_is_object(m) && json_is_string(json_object_get(m, "type")))
		agent_send(agent_session(), m);
	json_decref(m);
}

static void pr_read(void)
{
	char b[65536];
	ssize_t n;
	char *nl;

	while ((n = read(pr.fd, b, sizeof(b))) > 0) {
		buf_append(&pr.in, b, (size_t)n);
		while (pr.in.len && (nl = memchr(pr.in.data, '\n', pr.in.len))) {
			pr_line(pr.in.data, (size_t)(nl - pr.in.data));
			buf_consume(&pr.in, (size_t)(nl - pr.in.data) + 1);
		}
		if (pr.in.len > PILOT_RUN_LINE_MAX) {
			log_warnx("event=pilot-line-too-long");
			buf_reset(&pr.in);
		}
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		/* The pilot closed its end: it is ending; the reaper restarts it. */
		pr_stop_io();
	}
}

static void pr_cb(void *obj, int fd, short revents)
{
	ssize_t n;

	if (revents & (POLLIN | POLLHUP | POLLERR))
		pr_read();
	while (pr.fd >= 0 && pr.out.len && (revents & POLLOUT)) {
		n = write(pr.fd, pr.out.data, pr.out.len);
		if (n <= 0)
			break;
		buf_consume(&pr.out, (size_t)n);
	}
}

void pilot_run_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();

	if (!pr.pid && now >= pr.start_at)
		pr_start();
	if (!pr.pid)
		agent_poll_wake(p, pr.start_at);
	if (pr.fd < 0)
		return;
	/* A new host session: the pilot repeats what may have been lost. */
	if (agent_session() && pr.session != agent_session()) {
		json_t *m = json_pack("{s:s}", "type", "host.hello");
		pr.session = agent_session();
		pr_write_line(m);
		json_decref(m);
	}
	agent_poll_add(p, pr.fd, pr.out.len ? POLLIN | POLLOUT : POLLIN, pr_cb, NULL);
}

int pilot_run_child_status(int pid, int status)
{
	if (!pr.pid || pid != pr.pid)
		return -1;
	log_warnx("event=pilot-exit pid=%d status=%d", pid, status);
	pr.pid = 0;
	pr_stop_io();
	pr.backoff_ms = pr.backoff_ms ? pr.backoff_ms * 2 : PILOT_RUN_RESTART_MS;
	if (pr.backoff_ms > PILOT_RUN_RESTART_MAX_MS)
		pr.backoff_ms = PILOT_RUN_RESTART_MAX_MS;
	pr.start_at = agent_now_ms() + pr.backoff_ms;
	return 0;
}

void pilot_run_request(json_t *msg, uint64_t gen)
{
	if (pr.fd < 0) {
		agent_send_error(gen, json_object_get(msg, "id"), "the pilot is not running");
		return;
	}
	if (pr.out.len > PILOT_RUN_OUT_MAX) {
		agent_send_error(gen, json_object_get(msg, "id"), "the pilot is not reading");
		return;
	}
	pr_write_line(msg);
	/* The pilot stayed up long enough to be asked: failures start over. */
	pr.backoff_ms = 0;
}
