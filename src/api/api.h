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
/* Ends a request whose loop function answered: frees the context. */
void api_ctx_free(struct api_ctx *c);
/* Answers from a loop function and frees the context. */
void api_respond_json(struct api_ctx *c, int status, json_t *body);
void api_respond_err(struct api_ctx *c, const struct err *err);

/* Handlers, one file per resource */
void auth_login(struct api_ctx *c);
void auth_logout(struct api_ctx *c);
void auth_me(struct api_ctx *c);
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
void desktops_restart(struct api_ctx *c);
void desktops_running(struct api_ctx *c);
void desktops_exec_check(struct api_ctx *c);
void desktops_screenshot(struct api_ctx *c);
void desktops_exec(struct api_ctx *c);
void events_open(struct api_ctx *c);
void events_stream(struct api_ctx *c);
void api_events_hold(struct api_ctx *c);
void api_events_release(struct api_ctx *c);
void audit_list(struct api_ctx *c);
void usage_get(struct api_ctx *c);

#endif
