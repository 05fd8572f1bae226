/* bureau, the command-line client: the pieces main.c puts together, kept
 * apart from main so the unit tests can link them. */
#ifndef BUREAU_CLI_H
#define BUREAU_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

#ifndef BUREAU_VERSION
#define BUREAU_VERSION "0.0.0"
#endif

/* Exit codes scripts can trust; `bureau --help` lists them. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_API = 1,	  /* the API answered an error, or a --wait failed */
	CLI_EXIT_USAGE = 2,	  /* unknown command or flag, missing argument */
	CLI_EXIT_UNREACHABLE = 3, /* the endpoint could not be reached */
	CLI_EXIT_NOT_FOUND = 4,	  /* the API answered 404 */
};

#define CLI_DEFAULT_ENDPOINT "http://127.0.0.1:8080"
#define CLI_MAX_POSITIONAL 256 /* exec passes a whole command line */
#define CLI_BULK_MAX 100 /* desktops per start/stop/restart/rm (POST /api/desktops/bulk) */
#define CLI_CONFIG_MAX_LINE 4096
#define CLI_DEFAULT_WAIT_S 900

/* ---- arguments ---------------------------------------------------------- */

/* Option bits: which flags a command accepts. */
enum {
	OPT_ENDPOINT = 1 << 0,
	OPT_KEY = 1 << 1,
	OPT_JSON = 1 << 2,
	OPT_HELP = 1 << 3,
	OPT_CONFIG = 1 << 4,
	OPT_WORKSPACE = 1 << 5,
	OPT_TIER = 1 << 6,
	OPT_IMAGE = 1 << 7,
	OPT_WAIT = 1 << 8,
	OPT_TIMEOUT = 1 << 9,
	OPT_FROM = 1 << 10,
	OPT_TO = 1 << 11,
	OPT_EMAIL = 1 << 12,
	OPT_PASSWORD = 1 << 13,
	OPT_SHOW_KEY = 1 << 14,
	OPT_VERSION = 1 << 15,
	OPT_ROOT = 1 << 16,
	OPT_CWD = 1 << 17,
	OPT_STDIN = 1 << 18,
	OPT_SINCE = 1 << 19,
	OPT_USER = 1 << 20,
	OPT_STATE = 1 << 21,
	OPT_NOTE = 1 << 22,
	OPT_NAME = 1 << 23,
	OPT_FROM_SNAPSHOT = 1 << 24,
	OPT_FROM_DESKTOP = 1 << 25,
};
#define OPT_GLOBAL (OPT_ENDPOINT | OPT_KEY | OPT_JSON | OPT_HELP | OPT_CONFIG)

/* What the command line said. Strings point into argv. */
struct cli_args {
	const char *endpoint, *key, *config;
	const char *workspace, *tier, *image, *from, *to, *email, *password;
	const char *timeout_str;
	const char *cwd; /* exec --cwd */
	const char *since, *user, *state; /* metrics --since, services --user, alerts --state */
	const char *note; /* approvals approve/deny --note */
	const char *name; /* snapshots create --name */
	const char *from_snapshot, *from_desktop; /* desktops create: a fork */
	int json, help, wait, show_key, version;
	int root, stdin_send; /* exec/cp --root, exec --stdin */
	int timeout_s; /* --timeout, seconds; CLI_DEFAULT_WAIT_S when absent */
	unsigned seen; /* OPT_* bits given */
	const char *pos[CLI_MAX_POSITIONAL];
	int npos;
};

struct cli_ctx;
typedef int (*cli_cmd_fn)(struct cli_ctx *ctx);

/* One row of the command table: "desktops create NAME". */
struct cli_command {
	const char *group; /* "desktops" */
	const char *verb;  /* "create", or NULL for one-word commands */
	const char *args;  /* "NAME", for help */
	int min_args, max_args;
	unsigned opts; /* OPT_* accepted besides OPT_GLOBAL */
	cli_cmd_fn fn;
	const char *help;
};

/* The command table, ended by a row with group NULL. */
extern const struct cli_command cli_commands[];

/* Parses argv (without argv[0]) against the command table. Flags may come
 * anywhere; "--" ends them. On success *cmd is the command (NULL when only
 * --help or --version was asked) and a->pos holds its arguments. Returns 0,
 * or -1 with err filled (a usage error). */
int cli_args_parse(int argc, char **argv, struct cli_args *a, const struct cli_command **cmd,
		   struct err *err);

/* Writes the full help (commands, flags, environment, exit codes). */
void cli_usage(FILE *out);

/* ---- configuration ------------------------------------------------------ */

struct cli_config {
	char *endpoint;
	char *key;
	char *workspace;
};

/* Parses "key = value" lines (blank lines and # comments allowed; unknown
 * keys ignored). Values replace what cfg holds. Returns 0, or -1 with err
 * naming the line. */
int cli_config_parse(const char *text, struct cli_config *cfg, struct err *err);
/* Reads and parses a file; a missing file is not an error (returns 0). */
int cli_config_load(const char *path, struct cli_config *cfg, struct err *err);
/* Writes cfg to path atomically with mode 0600, creating the folder (0700). */
int cli_config_write(const char *path, const struct cli_config *cfg, struct err *err);
/* $BUREAU_CONFIG, else $XDG_CONFIG_HOME/bureau/config, else
 * ~/.config/bureau/config. The caller frees it; NULL without a home. */
char *cli_config_path(void);
void cli_config_release(struct cli_config *cfg);

/* ---- text helpers -------------------------------------------------------- */

/* Appends s percent-encoded for a URL path segment or query value: all but
 * A-Z a-z 0-9 - . _ ~ are escaped, and so is a segment of only dots. */
void cli_url_escape(struct buf *out, const char *s);

/* An aligned text table. Cells are copied; control characters are shown as
 * '?', so that nothing the server sends can drive the terminal. */
struct table {
	int ncols;
	int nrows;    /* rows after the header */
	char **cells; /* (nrows + 1) * ncols */
	int cap;
};

void table_init(struct table *t, int ncols, const char *const headers[]);
/* Adds a row of ncols strings (NULL prints as "-"). */
void table_add(struct table *t, const char *const cells[]);
/* Renders columns separated by two spaces, the last one not padded. */
void table_render(const struct table *t, struct buf *out);
void table_release(struct table *t);
/* Display width of a UTF-8 string (code points). */
size_t cli_text_width(const char *s);

/* A JSON value as a table cell: strings as they are, null as "-", numbers
 * and booleans as text. The caller frees it. */
char *cli_cell(json_t *v);
/* A byte count for people: "512 B", "1.5 KB", "193.0 MB", "2.0 GB"; "-"
 * when v is not a number. The caller frees it. */
char *cli_size_cell(json_t *v);
/* Appends "?name=value" or "&name=value", escaped; nothing when value is NULL. */
void cli_query_add(struct buf *b, const char *name, const char *value);
/* Prints a table (and releases it). */
void cli_print_table(struct cli_ctx *ctx, struct table *t);
/* Prints an array of objects as a table, one column per field. */
void cli_print_list(struct cli_ctx *ctx, json_t *arr, int ncols, const char *const headers[],
		    const char *const fields[]);

/* ---- server-sent events ------------------------------------------------- */

typedef void (*sse_event_fn)(void *arg, const char *id, const char *event, const char *data);

/* An incremental text/event-stream parser (the WHATWG rules: \n, \r\n or
 * \r line ends, ':' comments, multi-line data, id persists). */
struct sse_parser {
	struct buf line;
	struct buf data;
	char event[64];
	char last_id[128];
	int has_data;
	int cr; /* the last byte was '\r' */
	sse_event_fn fn;
	void *arg;
};

void sse_init(struct sse_parser *p, sse_event_fn fn, void *arg);
void sse_feed(struct sse_parser *p, const char *data, size_t len);
void sse_release(struct sse_parser *p);

/* ---- the HTTP client ---------------------------------------------------- */

struct cli_reply {
	long status;
	struct buf body;
	char content_type[128];
};

/* Sends one request to endpoint + path. body (may be NULL) is sent as JSON.
 * Returns 0 whatever the status, or -1 with err (status 0, code
 * "unreachable") when the endpoint could not be reached. */
int cli_http(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
	     struct cli_reply *r, struct err *err);
/* Like cli_http, but a status >= 400 is an error too: err carries the
 * status and the API's code and message. *out (may be NULL) gets the
 * parsed JSON body, or NULL for an empty one; the caller decrefs it. */
int cli_api(struct cli_ctx *ctx, const char *method, const char *path, json_t *body, json_t **out,
	    struct err *err);
void cli_reply_release(struct cli_reply *r);
/* Resets ctx->curl and sets what every request shares (URL, timeouts,
 * user agent, http and https only). */
void cli_curl_setup(struct cli_ctx *ctx, const char *url);
/* Fills err from an error answer: {"error":{"code","message"}}. */
void cli_err_from_reply(long status, const char *body, size_t len, struct err *err);
/* The exit code for an error. */
int cli_exit_code(const struct err *err);

/* ---- the session of one command ------------------------------------------ */

struct cli_ctx {
	struct cli_args *args;
	char *endpoint; /* without a trailing '/' */
	char *key;
	char *workspace; /* default from the config, may be NULL */
	char *config_path;
	void *curl;
	int use_cookies; /* send Origin, keep cookies (login) */
	char *session;	 /* "bureau_session=..." while logging in */
	FILE *out;
};

/* Prints "bureau: message [code]" to stderr and returns the exit code. */
int cli_fail(const struct err *err);
/* Prints "bureau: message" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a JSON value for scripts (indented, one value). */
void cli_print_json(struct cli_ctx *ctx, json_t *v);

/* The workspace to act in: --workspace, else the config's, else NULL. A
 * value that is not an id ("ws_...") is looked up by name. *out is the
 * caller's to free. */
int cli_workspace_resolve(struct cli_ctx *ctx, char **out, struct err *err);

/* Is a desktop in the target state of a --wait? Returns 1 done, 0 not yet,
 * -1 failed (state error, message in err). target: "running", "stopped" or
 * "gone"; since (may be NULL) is a stateChangedAt the answer must differ
 * from (restart). */
int cli_wait_check(json_t *desktop, const char *target, const char *since, struct err *err);

/* Command implementations (commands.c). */
int cmd_desktops_ls(struct cli_ctx *ctx);
int cmd_desktops_create(struct cli_ctx *ctx);
int cmd_desktops_get(struct cli_ctx *ctx);
int cmd_desktops_start(struct cli_ctx *ctx);
int cmd_desktops_stop(struct cli_ctx *ctx);
int cmd_desktops_restart(struct cli_ctx *ctx);
int cmd_desktops_rm(struct cli_ctx *ctx);
int cmd_keys_ls(struct cli_ctx *ctx);
int cmd_keys_create(struct cli_ctx *ctx);
int cmd_keys_rm(struct cli_ctx *ctx);
int cmd_workspaces_ls(struct cli_ctx *ctx);
int cmd_workspaces_create(struct cli_ctx *ctx);
int cmd_workspaces_members(struct cli_ctx *ctx);
int cmd_events(struct cli_ctx *ctx);
int cmd_usage(struct cli_ctx *ctx);
int cmd_login(struct cli_ctx *ctx);
int cmd_screenshot(struct cli_ctx *ctx);
int cmd_health(struct cli_ctx *ctx);
/* transfer.c: commands that stream (exec output, file copies). */
int cmd_exec(struct cli_ctx *ctx);
int cmd_cp(struct cli_ctx *ctx);
/* monitor.c: metrics, persistent services, alerts. */
int cmd_metrics(struct cli_ctx *ctx);
int cmd_services_ls(struct cli_ctx *ctx);
int cmd_services_add(struct cli_ctx *ctx);
int cmd_services_rm(struct cli_ctx *ctx);
int cmd_alerts_ls(struct cli_ctx *ctx);
int cmd_alerts_ack(struct cli_ctx *ctx);
/* pilot.c: chat with a desktop's agent, approvals, egress. */
int cmd_chat(struct cli_ctx *ctx);
int cmd_approvals_ls(struct cli_ctx *ctx);
int cmd_approvals_approve(struct cli_ctx *ctx);
int cmd_approvals_deny(struct cli_ctx *ctx);
int cmd_egress_ls(struct cli_ctx *ctx);
int cmd_egress_allow(struct cli_ctx *ctx);
int cmd_egress_deny(struct cli_ctx *ctx);
int cmd_egress_log(struct cli_ctx *ctx);
/* snapshots.c: a desktop's snapshots. */
int cmd_snapshots_ls(struct cli_ctx *ctx);
int cmd_snapshots_create(struct cli_ctx *ctx);
int cmd_snapshots_restore(struct cli_ctx *ctx);
int cmd_snapshots_rm(struct cli_ctx *ctx);
/* The API path of a desktop given by id ("dsk_...") or by name; the
 * caller frees *path. */
int cli_desktop_path(struct cli_ctx *ctx, const char *ref, char **path, struct err *err);
/* Polls the desktop at path (every half second, up to --timeout) until
 * cli_wait_check says done (0) or failed (-1, err filled). *last (may be
 * NULL) gets the final desktop, which the caller decrefs. */
int cli_desktop_wait(struct cli_ctx *ctx, const char *path, const char *target, const char *since,
		     json_t **last, struct err *err);
/* The id of a snapshot of the desktop at dpath, given by id ("snp_...",
 * passed on as it is: the server says whether it exists) or by name (looked
 * up in the desktop's list; 404 when none has it). The caller frees *id. */
int cli_snapshot_id(struct cli_ctx *ctx, const char *dpath, const char *ref, char **id,
		    struct err *err);

/* Runs a parsed command: resolves endpoint, key and workspace from flags,
 * environment and config file, then calls it. Returns the exit code. */
int cli_run(struct cli_args *a, const struct cli_command *cmd);

#endif
