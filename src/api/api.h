/* The REST API. Each request becomes one api_ctx. Its `work` function runs
 * on a worker thread with a store connection, after authentication, and
 * fills status and body (or err). A route whose answer needs the loop (a
 * VM, a stream) also has a `loop` function that runs afterwards on the
 * loop thread and answers itself. Every request leaves an audit entry. */
#ifndef BUREAU_API_H
#define BUREAU_API_H

#include <jansson.h>

#include "common/err.h"
#include "common/util.h"
#include "core/app.h"
#include "http/http.h"
#include "store/store.h"

#define API_PUBLIC 1 /* no credentials needed */
#define API_ADMIN 2  /* the caller must be an administrator */
#define API_NOBODY 4 /* the request must not carry a body beyond "{}" */
#define API_TICKET 8 /* a console ticket (?ticket=) also authenticates */
#define API_UPLOAD 16 /* the body streams to the handler, up to API_UPLOAD_MAX */
#define API_GUEST 32  /* credentials optional: without valid ones c->authed stays 0 */
#define API_UPLOAD_MAX (64ULL * 1024 * 1024 * 1024)

struct api_ctx;

struct api_route {
	const char *method;
	const char *pattern;
	void (*work)(struct api_ctx *c);
	void (*loop)(struct api_ctx *c);
	const char *action; /* audit action; NULL: "http.request" */
	int flags;
};

struct api_ctx {
	struct app *app;
	struct http_req *req;
	const struct api_route *route;
	struct route_match m;
	struct store *s; /* during work only */

	/* credentials, copied from the request on the loop */
	char bearer[128];
	char cookie[128];
	int origin_ok;

	/* the caller */
	int authed;
	struct user user;
	char key_id[ID_MAX];
	char ticket_desktop[ID_MAX]; /* authenticated by a ticket for this desktop */

	/* the answer */
	int status;
	json_t *resp;
	struct err err;
	char extra_headers[512];

	/* effects to carry out on the loop after work */
	struct event ev[4];
	int nev;
	char kick[ID_MAX];
	int restart;

	/* audit */
	char audit_ws[ID_MAX];
	json_t *audit_detail;
	char audit_target[128]; /* "" : the request's "METHOD /path" */

	/* what loop functions need */
	struct desktop d;
	json_t *body;
	void *data;
};

/* Builds the route table; installs the HTTP handler. */
void api_init(struct app *app);
/* Prints "METHOD /pattern" per route. */
void api_print_routes(void);
/* First start: creates the administrator and the default workspace. */
int api_bootstrap(struct store *s, const struct config *cfg, struct err *err);

/* For handlers */
/* The parsed JSON body, required to be an object with only `allowed`
 * fields; NULL with c->err filled otherwise. An empty body gives {} when
 * optional. */
json_t *api_body(struct api_ctx *c, const char *const allowed[], int optional);
const char *api_param(struct api_ctx *c, const char *name);
/* Answer helpers: they set status/resp (stealing the reference). */
void api_ok(struct api_ctx *c, int status, json_t *body);
int api_fail(struct api_ctx *c, const struct err *err);
/* Queues an event stored during work for publishing on the loop. */
struct event *api_event_slot(struct api_ctx *c);
/* One request acting on many resources (POST /api/desktops/bulk): a
 * context for what the route `method path` does, on behalf of parent's
 * caller, on parent's worker and store connection. The caller runs the
 * route's work on it on the worker, then api_sub_audit() (the audit entry
 * the route's own request would leave, target "method path"), and on the
 * loop api_sub_effects() (its events and the reconciler). NULL when no route
 * matches; free with api_ctx_free() (the request stays parent's). */
struct api_ctx *api_sub_new(struct api_ctx *parent, const char *method, const char *path);
void api_sub_audit(struct api_ctx *c);
void api_sub_effects(struct api_ctx *c);
/* Ends a request whose loop function answered: frees the context. */
void api_ctx_free(struct api_ctx *c);
/* Answers from a loop function and frees the context. */
void api_respond_json(struct api_ctx *c, int status, json_t *body);
void api_respond_err(struct api_ctx *c, const struct err *err);

/* Handlers, one file per resource */
void auth_login(struct api_ctx *c);
void auth_logout(struct api_ctx *c);
void auth_me(struct api_ctx *c);
void auth_session(struct api_ctx *c);
void users_list(struct api_ctx *c);
void users_create(struct api_ctx *c);
void workspaces_list(struct api_ctx *c);
void workspaces_create(struct api_ctx *c);
void workspaces_get(struct api_ctx *c);
void members_list(struct api_ctx *c);
void members_add(struct api_ctx *c);
void keys_list(struct api_ctx *c);
void keys_create(struct api_ctx *c);
void keys_revoke(struct api_ctx *c);
void tiers_list(struct api_ctx *c);
void desktops_list(struct api_ctx *c);
void desktops_create(struct api_ctx *c);
void desktops_get(struct api_ctx *c);
void desktops_delete(struct api_ctx *c);
void desktops_start(struct api_ctx *c);
void desktops_stop(struct api_ctx *c);
/* Start, stop, restart or destroy of many desktops, answered per desktop. */
void desktops_bulk(struct api_ctx *c);
void desktops_bulk_loop(struct api_ctx *c);
/* issue 5: create/stop on the loop, snapshots.c, templates.c */
void desktops_create_loop(struct api_ctx *c);
void desktops_stop_loop(struct api_ctx *c);
void snapshots_list(struct api_ctx *c);
void snapshots_create(struct api_ctx *c);
void snapshots_restore(struct api_ctx *c);
void snapshots_delete(struct api_ctx *c);
void snapshots_queue(struct api_ctx *c);
void templates_auth(struct api_ctx *c);
void templates_list(struct api_ctx *c);
void templates_check(struct api_ctx *c);
void templates_build(struct api_ctx *c);
void ssh_keys_get(struct api_ctx *c);
void ssh_keys_put(struct api_ctx *c);
void desktops_restart(struct api_ctx *c);
void desktops_screen_put(struct api_ctx *c);
void desktops_running(struct api_ctx *c);
void desktops_exec_check(struct api_ctx *c);
void desktops_screenshot_check(struct api_ctx *c);
void desktops_screenshot(struct api_ctx *c);
void desktops_exec(struct api_ctx *c);
/* exec_stream.c: the ?stream=true answer of exec (c->body is checked). */
struct vm;
void exec_stream_start(struct api_ctx *c, struct vm *vm);
/* files.c: files of a desktop through its agent */
void files_check(struct api_ctx *c);
void files_delete_check(struct api_ctx *c);
void files_upload_check(struct api_ctx *c);
void files_mkdir_check(struct api_ctx *c);
void files_move_check(struct api_ctx *c);
void files_download(struct api_ctx *c);
void files_upload(struct api_ctx *c);
void files_delete(struct api_ctx *c);
void files_list(struct api_ctx *c);
void files_stat(struct api_ctx *c);
void files_mkdir(struct api_ctx *c);
void files_move(struct api_ctx *c);
/* The agent's error answer ({"message"|"error","errno"}) as an API error. */
void files_agent_err(json_t *j, struct err *err);
void events_open(struct api_ctx *c);
void events_stream(struct api_ctx *c);
void api_events_hold(struct api_ctx *c);
void api_events_release(struct api_ctx *c);
void audit_list(struct api_ctx *c);
void usage_get(struct api_ctx *c);
/* metrics.c, services.c, alerts.c (issue 3) */
void desktops_metrics(struct api_ctx *c);
void prom_collect(struct api_ctx *c);
void prom_respond(struct api_ctx *c);
void services_list(struct api_ctx *c);
void services_create(struct api_ctx *c);
void services_delete(struct api_ctx *c);
void services_changed(struct api_ctx *c);
void alerts_list(struct api_ctx *c);
void alerts_ack(struct api_ctx *c);
void alerts_ack_deliver(struct api_ctx *c);
void alert_rules_get(struct api_ctx *c);
void alert_rules_put(struct api_ctx *c);
void alert_rules_changed(struct api_ctx *c);
void webhook_get(struct api_ctx *c);
void webhook_put(struct api_ctx *c);
void webhook_delete(struct api_ctx *c);
/* chat.c, approvals.c: the pilot (issue 6) */
void chat_post(struct api_ctx *c);
void chat_post_deliver(struct api_ctx *c);
void chat_list(struct api_ctx *c);
void chat_interrupt_check(struct api_ctx *c);
void chat_interrupt(struct api_ctx *c);
void chat_usage(struct api_ctx *c);
void egress_log_list(struct api_ctx *c);
void egress_allow_get(struct api_ctx *c);
void egress_allow_put(struct api_ctx *c);
void egress_allow_apply(struct api_ctx *c);
void approval_rules_get(struct api_ctx *c);
void approval_rules_put(struct api_ctx *c);
void approvals_list(struct api_ctx *c);
void approvals_get(struct api_ctx *c);
void approvals_decide(struct api_ctx *c);
void approvals_decided(struct api_ctx *c);
void approvals_screenshot_load(struct api_ctx *c);
void approvals_screenshot_send(struct api_ctx *c);
/* console.c: tickets, the screen (VNC) and the terminal over WebSockets */
void console_ticket_create(struct api_ctx *c);
void console_vnc_check(struct api_ctx *c);
void console_vnc_open(struct api_ctx *c);
void console_terminal_check(struct api_ctx *c);
void console_terminal_open(struct api_ctx *c);
/* Takes a console ticket (any thread): fills the user and desktop it was
 * issued for and forgets it. Returns -1 for an unknown, used or expired
 * ticket. */
int console_ticket_redeem(const char *token, char user_id[ID_MAX], char desktop_id[ID_MAX]);
/* static.c: GET/HEAD of the pages and their files (web/, the vendored
 * libraries). Returns 1 when it answered the request, 0 when the path is
 * not one of its own. */
int static_serve(struct app *app, struct http_req *req);

#endif
