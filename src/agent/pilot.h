/* bureau-pilot: the AI agent loop inside the guest (issue 6).
 *
 * Why a second binary: the pilot speaks HTTPS to LLM providers through
 * libcurl, and a static libcurl drags in OpenSSL, nghttp2, libssh2, LDAP,
 * Kerberos and more, most without static archives on Debian. bureau-agent
 * stays static (it must run before anything else in any guest) and starts
 * and supervises bureau-pilot (pilot_run.c), which links libcurl
 * dynamically (jansson statically); the tiny image carries its shared
 * libraries (image/build.sh copies the ldd closure), the desktop image has
 * libcurl already. A crash of the pilot never takes the agent down.
 *
 * The two talk over a socketpair on the pilot's stdin/stdout, one JSON
 * object per line: the agent forwards the host's chat.send,
 * chat.interrupt and approval.decision, and relays everything the pilot
 * prints to the host (see core/pilot.h for the messages).
 *
 * The pilot reads CONFIG_DIR/provider.json (written by config.c: provider,
 * apiKey, model?, baseUrl?) before each task, and keeps its conversation
 * and queue in STATE_DIR (~agent/.local/share/bureau/pilot, root only), so
 * work picks up after a restart of the pilot or of the desktop. */
#ifndef BUREAU_AGENT_PILOT_H
#define BUREAU_AGENT_PILOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define PILOT_PROXY_DEFAULT "http://10.0.2.100:3128"
#define PILOT_SSE_LINE_MAX (4 * 1024 * 1024) /* one SSE event's data, bytes */
#define PILOT_SHELL_TIMEOUT_DEFAULT_S 120
#define PILOT_SHELL_TIMEOUT_MAX_S 3600
#define PILOT_OUTPUT_MAX (32 * 1024)	 /* tool output kept for the model */
#define PILOT_FILE_MAX (1024 * 1024)	 /* files tool: read/write size */
#define PILOT_STEPS_MAX 50		 /* model calls per task */
#define PILOT_RETRIES 3			 /* per call, for 429, 5xx, cut streams */
#define PILOT_SCREENSHOTS_KEPT 3	 /* in the conversation; older ones dropped */
#define PILOT_MAX_TOKENS 4096
#define PILOT_DISPLAY_W 1280 /* when the screen's size cannot be read */
#define PILOT_DISPLAY_H 800

/* ---- SSE (pilot_sse.c) ---- */
typedef int (*sse_event_fn)(const char *event, const char *data, size_t len, void *arg);
struct sse_parser {
	struct buf line;  /* the line being read */
	struct buf data;  /* the event's data lines, joined by \n */
	char event[64];	  /* the event's name ("" : "message") */
	int has_data;
	int skip_lf;	  /* the last line ended with \r */
};
void sse_init(struct sse_parser *p);
void sse_release(struct sse_parser *p);
/* Feeds bytes; calls fn per complete event. Returns 0, -1 when a line is
 * larger than PILOT_SSE_LINE_MAX, or what fn returned when not 0. */
int sse_feed(struct sse_parser *p, const char *b, size_t n, sse_event_fn fn, void *arg);

/* ---- one model call (pilot_llm.c) ---- */
enum llm_format { LLM_ANTHROPIC, LLM_OPENAI };

struct llm_tool_call {
	char id[128];
	char name[64];
	struct buf args; /* JSON text as streamed */
	json_t *input;	 /* parsed at the end */
};

/* What one streamed response came to, whatever the format. */
struct llm_turn {
	enum llm_format fmt;
	struct buf text;
	struct llm_tool_call calls[16];
	int ncalls;
	int block_kind[64]; /* anthropic: content block index → 1 text, 2 tool, 0 other */
	int block_call[64];
	int64_t input_tokens, output_tokens;
	char stop[32];
	int done;	   /* message_stop / [DONE] seen */
	char error[512];   /* a protocol or provider error in the stream */
	char error_kind[32]; /* malformed, overloaded, server, ... */
	/* streamed text goes here as it arrives */
	void (*on_text)(const char *t, size_t n, void *arg);
	void *arg;
};
void llm_turn_init(struct llm_turn *t, enum llm_format fmt);
void llm_turn_release(struct llm_turn *t);
/* The SSE event handler of each format (an sse_event_fn with the turn). */
int llm_anthropic_event(const char *event, const char *data, size_t len, void *turn);
int llm_openai_event(const char *event, const char *data, size_t len, void *turn);
/* After the stream ended: parses the tool calls' arguments; fills error
 * when the stream was cut or malformed. Returns 0 or -1. */
int llm_turn_finish(struct llm_turn *t);

/* ---- tools (pilot_tools.c) ---- */
/* Validates a tool call's input; fills why. The action string is what the
 * approval policy reads ("the command", "write /path", "left_click 1,2"). */
int tool_check(const char *name, const json_t *input, int have_display, char *action, size_t n,
	       char *why, size_t wn);
struct tool_result {
	struct buf out;	 /* text for the model */
	char *image_b64; /* a PNG screenshot, or NULL */
	int is_error;
};
/* Runs a checked tool call; *stop is polled (interrupt). */
void tool_run(const char *name, const json_t *input, volatile int *stop, struct tool_result *r);
void tool_result_release(struct tool_result *r);
/* The home folder of the agent user, and its uid/gid. */
const char *tool_home(void);
char *base64_encode(const unsigned char *b, size_t n);

/* The X screen's size, read once: Xorg draws into the fbdev framebuffer,
 * which the kernel sized from the VGA mode QEMU offered (the desktop's
 * screen setting). */
void pilot_display_size(int *w, int *h);

#endif
