/* bureau-agent's loop and the channel session: finds and keeps open the
 * virtio-serial port, answers the host's HELLO, dispatches requests on the
 * control stream and reaps children. */
#include "agent/agent.h"
#include "agent/config.h"
#include "agent/pilot_run.h"
#include "agent/stream.h"
#include "agent/monitor.h"
#include "common/buf.h"
#include "common/log.h"
#include "guest/channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes queued for the host beyond which new messages are dropped (a host
 * that does not read). Exec replies are bounded by CH_MAX_PAYLOAD each. */
#define AGENT_OUT_MAX (8 * 1024 * 1024)

struct port {
	int fd;
	char path[256];
	int host_up;	  /* bytes came from the host since the last EOF */
	int64_t retry_at; /* while no host: when to poll the port again */
	struct ch_decoder dec;
	struct buf out;
	uint64_t gen;	/* session generation, bumped by each HELLO */
	int hello_seen; /* a HELLO started the current session */
};

static struct port port = {.fd = -1};
static char image_name[32] = "tiny";
static const char *port_override;

int64_t agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agent_poll_add(struct agent_poll *p, int fd, short events, agent_fd_cb cb, void *obj)
{
	if (p->n >= (int)(sizeof(p->fds) / sizeof(p->fds[0])))
		return;
	p->fds[p->n].fd = fd;
	p->fds[p->n].events = events;
	p->fds[p->n].revents = 0;
	p->cbs[p->n] = cb;
	p->objs[p->n] = obj;
	p->n++;
}

void agent_poll_wake(struct agent_poll *p, int64_t at)
{
	if (!p->deadline || at < p->deadline)
		p->deadline = at;
}

const char *agent_image(void)
{
	return image_name;
}

uint64_t agent_session(void)
{
	return port.gen;
}

int agent_send(uint64_t gen, const json_t *msg)
{
	if (port.fd < 0 || !port.hello_seen || gen != port.gen)
		return -1;
	if (port.out.len > AGENT_OUT_MAX) {
		log_warnx("event=drop reason=\"host not reading\" queued=%zu", port.out.len);
		return -1;
	}
	if (ch_json_append(&port.out, CH_MSG, 0, msg)) {
		log_warnx("event=drop reason=\"message too large\"");
		return -1;
	}
	return 0;
}

struct buf *agent_stream_out(uint64_t gen)
{
	if (port.fd < 0 || !port.hello_seen || gen != port.gen)
		return NULL;
	return &port.out;
}

void agent_send_error(uint64_t gen, json_t *id, const char *msg)
{
	json_t *m = json_pack("{s:s, s:O?, s:s}", "type", "error", "id", id, "message", msg);

	if (m && !json_object_get(m, "id"))
		json_object_set_new(m, "id", json_null());
	if (m)
		agent_send(gen, m);
	json_decref(m);
}

static void read_first_line(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(out, (int)n, f))
		out[strcspn(out, "\r\n")] = '\0';
	fclose(f);
}

/* The port: /dev/virtio-ports/NAME where udev made the link, else the
 * vport device whose sysfs name matches (the tiny image has no udev). */
static int port_find(char *out, size_t n)
{
	DIR *d;
	struct dirent *e;
	char path[512], name[128];

	if (port_override) {
		snprintf(out, n, "%s", port_override);
		return access(out, F_OK);
	}
	snprintf(out, n, "/dev/virtio-ports/%s", CH_PORT_NAME);
	if (access(out, F_OK) == 0)
		return 0;
	d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		read_first_line(path, name, sizeof(name));
		if (strcmp(name, CH_PORT_NAME) == 0) {
			snprintf(out, n, "/dev/%.200s", e->d_name);
			closedir(d);
			return access(out, F_OK);
		}
	}
	closedir(d);
	return -1;
}

static void port_open(void)
{
	static int warned;

	if (port_find(port.path, sizeof(port.path))) {
		if (!warned++)
			log_info("event=wait-port port=%s", CH_PORT_NAME);
		return;
	}
	port.fd = open(port.path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (port.fd < 0) {
		if (!warned++)
			log_warn("open %s", port.path);
		return;
	}
	warned = 0;
	ch_decoder_init(&port.dec);
	log_info("event=port-open path=%s", port.path);
}

/* The host went away (EOF / POLLHUP): forget the session, keep the port
 * open, and look again in a moment. */
static void port_host_gone(void)
{
	if (port.host_up || port.hello_seen)
		log_info("event=host-gone session=%llu", (unsigned long long)port.gen);
	port.host_up = 0;
	port.hello_seen = 0;
	stream_session_end(CH_LOST);
	ch_decoder_reset(&port.dec);
	buf_reset(&port.out);
	port.retry_at = agent_now_ms() + AGENT_PORT_RETRY_MS;
}

/* The port itself failed (unplugged, say): close it and find it again. */
static void port_close(void)
{
	log_warnx("event=port-close path=%s", port.path);
	port_host_gone();
	close(port.fd);
	port.fd = -1;
	ch_decoder_release(&port.dec);
	buf_release(&port.out);
}

static void send_hello(void)
{
	char boot_id[64];
	json_t *m;
	const char *stage;

	read_first_line("/proc/sys/kernel/random/boot_id", boot_id, sizeof(boot_id));
	m = json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", "hello", "proto", AGENT_PROTO, "agent",
		      AGENT_VERSION, "image", image_name, "bootId", boot_id);
	ch_json_append(&port.out, CH_HELLO, 0, m);
	json_decref(m);
	stage = ready_stage();
	if (stage) {
		m = json_pack("{s:s, s:s}", "type", "ready", "stage", stage);
		agent_send(port.gen, m);
		json_decref(m);
	}
}

static void handle_ping(json_t *msg, uint64_t gen)
{
	json_t *m = json_pack("{s:s, s:O?}", "type", "pong", "id", json_object_get(msg, "id"));

	if (!json_object_get(m, "id"))
		json_object_set_new(m, "id", json_null());
	agent_send(gen, m);
	json_decref(m);
}

static const struct {
	const char *type;
	void (*fn)(json_t *msg, uint64_t gen);
} handlers[] = {
    {"exec", exec_request},
    {"ping", handle_ping},
    {"open", stream_open_request},
    {"resize", stream_resize_request},
    {"file.list", files_list_request},
    {"file.stat", files_stat_request},
    {"file.mkdir", files_mkdir_request},
    {"file.move", files_move_request},
    {"file.delete", files_delete_request},
    {"configure", config_configure_request},
    {"personalize", config_personalize_request},
    {"chat.send", pilot_run_request},
    {"chat.interrupt", pilot_run_request},
    {"approval.decision", pilot_run_request},
    {"services", services_request},
};

static void handle_msg(const struct ch_frame *f)
{
	json_t *msg = ch_json_parse(f), *type;
	size_t i;

	if (!msg) {
		agent_send_error(port.gen, NULL, "malformed message: not one JSON object");
		return;
	}
	type = json_object_get(msg, "type");
	if (!json_is_string(type)) {
		agent_send_error(port.gen, json_object_get(msg, "id"), "missing \"type\"");
		json_decref(msg);
		return;
	}
	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (strcmp(handlers[i].type, json_string_value(type)) == 0) {
			handlers[i].fn(msg, port.gen);
			json_decref(msg);
			return;
		}
	}
	{
		char text[160];

		snprintf(text, sizeof(text), "unknown message type \"%.100s\"",
			 json_string_value(type));
		agent_send_error(port.gen, json_object_get(msg, "id"), text);
	}
	json_decref(msg);
}

static int on_frame(const struct ch_frame *f, void *arg)
{
	switch (f->type) {
	case CH_HELLO:
		/* A host (re)connected: new session, fresh output queue. */
		stream_session_end("a new session started");
		port.gen++;
		port.hello_seen = 1;
		buf_reset(&port.out);
		log_info("event=hello session=%llu", (unsigned long long)port.gen);
		send_hello();
		break;
	case CH_MSG:
		if (f->stream == 0)
			handle_msg(f);
		else
			log_debug("event=ignore type=msg stream=%u", f->stream);
		break;
	case CH_DATA:
	case CH_CLOSE:
	case CH_WINDOW:
		stream_frame(f, port.gen);
		break;
	default:
		log_warnx("event=ignore type=%u stream=%u len=%u", f->type, f->stream, f->len);
		break;
	}
	return 0;
}

static void port_read(void)
{
	char b[16384];
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = read(port.fd, b, sizeof(b));
		if (n > 0) {
			port.host_up = 1;
			if (ch_decoder_feed(&port.dec, b, (size_t)n, on_frame, NULL)) {
				log_warnx("event=bad-frame action=resync");
				ch_decoder_reset(&port.dec);
			}
			continue;
		}
		if (n == 0) {
			port_host_gone();
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			log_warn("read %s", port.path);
			port_close();
		}
		return;
	}
}

static void port_write(void)
{
	ssize_t n;

	while (port.out.len) {
		n = write(port.fd, port.out.data, port.out.len);
		if (n > 0) {
			buf_consume(&port.out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EPIPE) {
			port_host_gone();
		} else if (n < 0 && errno != EAGAIN) {
			log_warn("write %s", port.path);
			port_close();
		}
		return;
	}
}

static void port_cb(void *obj, int fd, short revents)
{
	if (revents & POLLNVAL) {
		port_close();
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR))
		port_read();
	if (port.fd < 0)
		return;
	if (port.fd >= 0 && port.retry_at == 0 && (revents & POLLOUT))
		port_write();
	/* POLLHUP without data: no host. Wait before polling again. */
	if ((revents & POLLHUP) && !(revents & POLLIN) && port.retry_at == 0)
		port_host_gone();
}

static void sig_cb(void *obj, int fd, short revents)
{
	struct signalfd_siginfo si;
	int status, pid;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("event=exit signal=%u", si.ssi_signo);
			exit(0);
		}
	}
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (exec_child_status(pid, status) && pty_child_status(pid, status) &&
		    services_child_status(pid, status) && pilot_run_child_status(pid, status))
			log_debug("event=reaped pid=%d", pid);
}

static void loop(int sfd)
{
	for (;;) {
		struct agent_poll p = {.n = 0};
		int64_t now = agent_now_ms();
		int timeout = -1, i, r, port_idx = -1;

		agent_poll_add(&p, sfd, POLLIN, sig_cb, NULL);
		if (port.fd < 0) {
			port_open();
			if (port.fd < 0)
				agent_poll_wake(&p, now + AGENT_PORT_RETRY_MS);
		}
		if (port.fd >= 0) {
			if (port.retry_at && now >= port.retry_at)
				port.retry_at = 0;
			if (port.retry_at)
				agent_poll_wake(&p, port.retry_at);
			else {
				port_idx = p.n;
				agent_poll_add(&p, port.fd, POLLIN, port_cb, NULL);
			}
		}
		exec_poll(&p);
		stream_poll(&p);
		ready_poll(&p);
		power_poll(&p);
		metrics_poll(&p);
		services_poll(&p);
		config_poll(&p);
		pilot_run_poll(&p);
		/* Those may have queued messages: write what the port takes now,
		 * and ask for POLLOUT for the rest. */
		if (port_idx >= 0 && port.out.len)
			port_write();
		if (port_idx >= 0 && port.out.len)
			p.fds[port_idx].events |= POLLOUT;
		if (p.deadline) {
			int64_t d = p.deadline - now;

			timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
		}
		r = poll(p.fds, (nfds_t)p.n, timeout);
		if (r < 0) {
			if (errno != EINTR)
				fatal("poll");
			continue;
		}
		for (i = 0; i < p.n; i++)
			if (p.fds[i].revents)
				p.cbs[i](p.objs[i], p.fds[i].fd, p.fds[i].revents);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bureau-agent [--image tiny|desktop] [--port PATH] "
		"[--power-key|--no-power-key]\n"
		"  guest agent of bureau, speaking on virtio-serial port %s\n",
		CH_PORT_NAME);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"image", required_argument, NULL, 'i'},
	    {"port", required_argument, NULL, 'p'},
	    {"power-key", no_argument, NULL, 'k'},
	    {"no-power-key", no_argument, NULL, 'K'},
	    {"debug", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, power = -1, sfd;
	sigset_t set;
	char img[24];

	log_set_name("bureau-agent");
	read_first_line("/etc/bureau/image", img, sizeof(img));
	if (img[0])
		snprintf(image_name, sizeof(image_name), "%s", img);
	else if (access("/usr/bin/startxfce4", X_OK) == 0)
		snprintf(image_name, sizeof(image_name), "desktop");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			snprintf(image_name, sizeof(image_name), "%s", optarg);
			break;
		case 'p':
			port_override = optarg;
			break;
		case 'k':
			power = 1;
			break;
		case 'K':
			power = 0;
			break;
		case 'd':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		default:
			usage();
		}
	}
	if (strcmp(image_name, "tiny") && strcmp(image_name, "desktop"))
		fatalx("unknown image \"%s\"", image_name);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		fatal("signalfd");

	log_info("event=start version=\"%s\" image=%s", AGENT_VERSION, image_name);
	ready_init(strcmp(image_name, "desktop") == 0);
	config_init();
	/* On the desktop systemd-logind owns the power button. */
	if (power == 1 || (power == -1 && strcmp(image_name, "tiny") == 0))
		power_init();
	loop(sfd);
	return 0;
}
