/* bureau-agent: the guest side of the host <-> guest channel
 * (src/guest/channel.h). One process, one poll() loop: the virtio-serial
 * port, the children of exec requests, the ACPI power button and a timer
 * that watches for readiness. Nothing on the loop blocks. */
#ifndef BUREAU_AGENT_H
#define BUREAU_AGENT_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_VERSION "bureau-agent 0.1"
#define AGENT_PROTO 1

/* How long to wait before polling the port again while no host is connected
 * (the port reports POLLHUP then, so polling it would spin). */
#define AGENT_PORT_RETRY_MS 200

/* A callback for a watched file descriptor. */
typedef void (*agent_fd_cb)(void *obj, int fd, short revents);

/* The poll set of one loop iteration, rebuilt every time. */
struct agent_poll {
	struct pollfd fds[256];
	agent_fd_cb cbs[256];
	void *objs[256];
	int n;
	int64_t deadline; /* earliest timer, monotonic ms; 0 for none */
};

/* Adds fd to the set (ignored when the set is full). */
void agent_poll_add(struct agent_poll *p, int fd, short events, agent_fd_cb cb, void *obj);
/* Asks the loop to wake up no later than at (monotonic ms). */
void agent_poll_wake(struct agent_poll *p, int64_t at);

int64_t agent_now_ms(void);

/* Sends one JSON object on the control stream of the current session.
 * gen is the session the reply belongs to: messages for an older session
 * are dropped. Returns -1 when it is not sent. */
int agent_send(uint64_t gen, const json_t *msg);
/* The current session's generation (bumped by every host HELLO). */
uint64_t agent_session(void);
/* Sends {"type":"error","id":id,"message":msg}. id may be NULL. */
void agent_send_error(uint64_t gen, json_t *id, const char *msg);
/* "tiny" or "desktop". */
const char *agent_image(void);

/* exec.c: the "exec" request. msg is borrowed. */
void exec_request(json_t *msg, uint64_t gen);
/* Adds the children's pipes and timeouts to the poll set. */
void exec_poll(struct agent_poll *p);
/* A child changed state (from waitpid). Returns 0 when it was an exec. */
int exec_child_status(int pid, int status);
int exec_count(void);

/* ready.c: readiness stages, "boot" then (desktop image) "desktop". */
void ready_init(int desktop);
/* The latest stage reached, or NULL. */
const char *ready_stage(void);
/* Adds the screen check timer; calls agent_send when a stage is reached. */
void ready_poll(struct agent_poll *p);
/* Checks a framebuffer dump: 1 when it looks drawn by a desktop (many
 * colours, which a text console never has). Exposed for tests. */
int ready_pixels_drawn(const uint8_t *px, size_t count, size_t bytes_per_pixel);

/* power.c: the ACPI power button (KEY_POWER on an input device) runs
 * poweroff. Only used where nothing else handles the button (tiny). */
void power_init(void);
void power_poll(struct agent_poll *p);

/* text.c: copies len bytes of s into out as valid UTF-8, each invalid byte
 * replaced by U+FFFD. */
struct buf;
void text_utf8_sanitize(struct buf *out, const char *s, size_t len);
/* The longest prefix of the valid UTF-8 string s that is at most max bytes
 * and does not cut a character. */
size_t text_utf8_prefix(const char *s, size_t len, size_t max);

#endif
