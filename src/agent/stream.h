/* The agent's side of channel streams (src/guest/channel.h): the stream
 * table of the current session, the kinds a host may open (exec, pty,
 * file.read, file.write) and the file requests on the control stream.
 * Everything runs on the agent's poll loop; a stream's output is produced
 * only while it has credit and the port's queue is below
 * STREAM_OUT_HIGH, so one busy stream never holds the others back. */
#ifndef BUREAU_AGENT_STREAM_H
#define BUREAU_AGENT_STREAM_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/agent.h"
#include "common/buf.h"
#include "guest/channel.h"

/* Port bytes queued beyond which streams stop producing DATA. */
#define STREAM_OUT_HIGH (256 * 1024)

struct astream;

/* One kind of stream. open fills opened (sent in the "opened" answer) or
 * returns -1 with why (and may put "errno" into opened, which then goes
 * into the refusal). data gets the host's bytes (len 0: end of data) and
 * calls stream_consumed as it takes them. free releases everything;
 * aborted says the stream did not finish (host gone, host's CLOSE). */
struct stream_kind {
	const char *name;
	int (*open)(struct astream *s, json_t *msg, json_t *opened, char *why, size_t n);
	void (*data)(struct astream *s, const uint8_t *p, size_t len);
	void (*poll)(struct astream *s, struct agent_poll *p);
	int (*resize)(struct astream *s, int cols, int rows);
	void (*free)(struct astream *s, int aborted);
};

struct astream {
	struct ch_stream ch;
	const struct stream_kind *kind;
	uint64_t gen;
	int done;    /* CLOSE sent or received, or the session ended */
	int aborted; /* ended without finishing: kind->free cleans up */
	struct astream *dead_next;
	void *impl;
};

/* main.c: the port's output queue when gen is the current session, else
 * NULL (the host is gone; nothing should be sent). */
struct buf *agent_stream_out(uint64_t gen);

/* stream.c: the control messages and frames main.c routes here. */
void stream_open_request(json_t *msg, uint64_t gen);
void stream_resize_request(json_t *msg, uint64_t gen);
void stream_frame(const struct ch_frame *f, uint64_t gen);
void stream_poll(struct agent_poll *p);
/* Ends every stream of the session: the host is gone or starts afresh. */
void stream_session_end(const char *why);
int stream_count(void);

/* For kinds: how many bytes may be sent now (credit, frame, port queue). */
size_t stream_room(struct astream *s, size_t want);
void stream_send(struct astream *s, const void *data, size_t len);
void stream_send_tagged(struct astream *s, uint8_t tag, const void *data, size_t len);
void stream_consumed(struct astream *s, size_t n);
/* Ends the stream with result (borrowed) or {"error":why}. */
void stream_finish(struct astream *s, json_t *result);
void stream_fail(struct astream *s, const char *why);

/* exec.c */
extern const struct stream_kind stream_kind_exec;
/* pty.c */
extern const struct stream_kind stream_kind_pty;
/* A child changed state (from waitpid). Returns 0 when it was a pty's. */
int pty_child_status(int pid, int status);
/* files.c */
extern const struct stream_kind stream_kind_file_read;
extern const struct stream_kind stream_kind_file_write;
void files_list_request(json_t *msg, uint64_t gen);
void files_stat_request(json_t *msg, uint64_t gen);
void files_mkdir_request(json_t *msg, uint64_t gen);
void files_move_request(json_t *msg, uint64_t gen);
void files_delete_request(json_t *msg, uint64_t gen);

/* Users, from /etc/passwd and /etc/group (the agent is static: no NSS). */
struct agent_user {
	char name[64];
	uid_t uid;
	gid_t gid;
	char home[256];
	char shell[256];
	gid_t groups[64];
	int ngroups;
};
/* Looks a user up in /etc/passwd and /etc/group directly: the agent is
 * static, so NSS is not available. Returns 0 when found. */
int agent_user_lookup(const char *name, struct agent_user *u);
/* The user a request names ("user": absent means "agent" where it
 * exists, else root). Returns -1 with why filled. */
int agent_user_of(json_t *msg, struct agent_user *u, char *why, size_t n);
/* In a forked child: become u (groups, gid, uid). Returns -1 on failure. */
int agent_user_become(const struct agent_user *u);

#endif
