#include "api/api.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/alerts.h"
#include "core/core.h"
#include "vm/driver.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_COOKIE "bureau_session"

static void health(struct api_ctx *c);

static const struct api_route api_routes[] = {
	{"GET", "/api/health", NULL, health, NULL, API_PUBLIC},
	{"POST", "/api/auth/login", auth_login, NULL, "auth.login", API_PUBLIC},
	{"POST", "/api/auth/logout", auth_logout, NULL, "auth.logout", API_NOBODY},
	{"GET", "/api/auth/me", auth_me, NULL, NULL, 0},
	{"GET", "/api/auth/session", auth_session, NULL, NULL, API_GUEST},
	{"GET", "/api/users", users_list, NULL, NULL, API_ADMIN},
	{"POST", "/api/users", users_create, NULL, "user.create", API_ADMIN},
	{"GET", "/api/workspaces", workspaces_list, NULL, NULL, 0},
	{"POST", "/api/workspaces", workspaces_create, NULL, "workspace.create", 0},
	{"GET", "/api/workspaces/{id}", workspaces_get, NULL, NULL, 0},
	{"GET", "/api/workspaces/{id}/members", members_list, NULL, NULL, 0},
	{"POST", "/api/workspaces/{id}/members", members_add, NULL, "workspace.member.add", 0},
	{"GET", "/api/api-keys", keys_list, NULL, NULL, 0},
	{"POST", "/api/api-keys", keys_create, NULL, "apikey.create", 0},
	{"DELETE", "/api/api-keys/{id}", keys_revoke, NULL, "apikey.revoke", API_NOBODY},
	{"GET", "/api/tiers", tiers_list, NULL, NULL, 0},
	{"GET", "/api/desktops", desktops_list, NULL, NULL, 0},
	{"POST", "/api/desktops", desktops_create, desktops_create_loop, "desktop.create", 0},
	{"POST", "/api/desktops/bulk", desktops_bulk, desktops_bulk_loop, "desktop.bulk", 0},
	{"GET", "/api/desktops/{id}", desktops_get, NULL, NULL, 0},
	{"DELETE", "/api/desktops/{id}", desktops_delete, NULL, "desktop.destroy", API_NOBODY},
	{"POST", "/api/desktops/{id}/start", desktops_start, NULL, "desktop.start", API_NOBODY},
	{"POST", "/api/desktops/{id}/stop", desktops_stop, desktops_stop_loop, "desktop.stop", 0},
	{"GET", "/api/desktops/{id}/snapshots", snapshots_list, NULL, NULL, 0},
	{"POST", "/api/desktops/{id}/snapshots", snapshots_create, snapshots_queue,
	 "desktop.snapshot.create", 0},
	{"POST", "/api/desktops/{id}/snapshots/{sid}/restore", snapshots_restore, snapshots_queue,
	 "desktop.snapshot.restore", API_NOBODY},
	{"DELETE", "/api/desktops/{id}/snapshots/{sid}", snapshots_delete, snapshots_queue,
	 "desktop.snapshot.delete", API_NOBODY},
	{"GET", "/api/templates", templates_auth, templates_list, NULL, 0},
	{"POST", "/api/templates", templates_check, templates_build, "template.build", API_ADMIN},
	{"GET", "/api/workspaces/{id}/ssh-keys", ssh_keys_get, NULL, NULL, 0},
	{"PUT", "/api/workspaces/{id}/ssh-keys", ssh_keys_put, NULL, "workspace.ssh_keys.set", 0},
	{"POST", "/api/desktops/{id}/restart", desktops_restart, NULL, "desktop.restart",
	 API_NOBODY},
	{"PUT", "/api/desktops/{id}/screen", desktops_screen_put, NULL, "desktop.screen.set", 0},
	{"GET", "/api/desktops/{id}/screenshot", desktops_screenshot_check, desktops_screenshot,
	 NULL, 0},
	{"POST", "/api/desktops/{id}/exec", desktops_exec_check, desktops_exec, "desktop.exec",
	 0},
	{"GET", "/api/desktops/{id}/files", files_check, files_download, NULL, 0},
	{"PUT", "/api/desktops/{id}/files", files_upload_check, files_upload, "desktop.file.upload",
	 API_UPLOAD},
	{"DELETE", "/api/desktops/{id}/files", files_delete_check, files_delete,
	 "desktop.file.delete", API_NOBODY},
	{"GET", "/api/desktops/{id}/files/list", files_check, files_list, NULL, 0},
	{"GET", "/api/desktops/{id}/files/stat", files_check, files_stat, NULL, 0},
	{"POST", "/api/desktops/{id}/files/mkdir", files_mkdir_check, files_mkdir,
	 "desktop.file.mkdir", 0},
	{"POST", "/api/desktops/{id}/files/move", files_move_check, files_move,
	 "desktop.file.move", 0},
	{"POST", "/api/desktops/{id}/console-ticket", console_ticket_create, NULL,
	 "desktop.console.ticket", API_NOBODY},
	{"GET", "/api/desktops/{id}/vnc", console_vnc_check, console_vnc_open,
	 "desktop.console.connect", API_TICKET},
	{"GET", "/api/desktops/{id}/terminal", console_terminal_check, console_terminal_open,
	 "desktop.console.connect", API_TICKET},
	/* Issue 6: the pilot (chat.c, approvals.c) */
	{"POST", "/api/desktops/{id}/chat", chat_post, chat_post_deliver, "chat.send", 0},
	{"GET", "/api/desktops/{id}/chat", chat_list, NULL, NULL, 0},
	{"POST", "/api/desktops/{id}/chat/interrupt", chat_interrupt_check, chat_interrupt,
	 "chat.interrupt", API_NOBODY},
	{"GET", "/api/desktops/{id}/usage", chat_usage, NULL, NULL, 0},
	{"GET", "/api/desktops/{id}/egress", egress_log_list, NULL, NULL, 0},
	{"GET", "/api/workspaces/{id}/egress", egress_allow_get, NULL, NULL, 0},
	{"PUT", "/api/workspaces/{id}/egress", egress_allow_put, egress_allow_apply,
	 "workspace.egress.set", 0},
	{"GET", "/api/workspaces/{id}/approval-rules", approval_rules_get, NULL, NULL, 0},
	{"PUT", "/api/workspaces/{id}/approval-rules", approval_rules_put, NULL,
	 "workspace.approval_rules.set", 0},
	{"GET", "/api/approvals", approvals_list, NULL, NULL, 0},
	{"GET", "/api/approvals/{id}", approvals_get, NULL, NULL, 0},
	{"POST", "/api/approvals/{id}", approvals_decide, approvals_decided, "approval.decide", 0},
	{"GET", "/api/approvals/{id}/screenshot", approvals_screenshot_load,
	 approvals_screenshot_send, NULL, 0},
	{"GET", "/api/events", events_open, events_stream, "events.subscribe", 0},
	{"GET", "/api/audit", audit_list, NULL, NULL, 0},
	{"GET", "/api/usage", usage_get, NULL, NULL, 0},
	{"GET", "/api/desktops/{id}/metrics", desktops_metrics, NULL, NULL, 0},
	{"GET", "/metrics", prom_collect, prom_respond, NULL, API_PUBLIC},
	{"GET", "/api/desktops/{id}/services", services_list, NULL, NULL, 0},
	{"POST", "/api/desktops/{id}/services", services_create, services_changed,
	 "desktop.service.add", 0},
	{"DELETE", "/api/desktops/{id}/services/{name}", services_delete, services_changed,
	 "desktop.service.remove", API_NOBODY},
	{"GET", "/api/alerts", alerts_list, NULL, NULL, 0},
	{"POST", "/api/alerts/{id}/ack", alerts_ack, alerts_ack_deliver, "alert.acknowledge",
	 API_NOBODY},
	{"GET", "/api/workspaces/{id}/alert-rules", alert_rules_get, NULL, NULL, 0},
	{"PUT", "/api/workspaces/{id}/alert-rules", alert_rules_put, alert_rules_changed,
	 "workspace.alert_rules.set", 0},
	{"GET", "/api/workspaces/{id}/webhook", webhook_get, NULL, NULL, 0},
	{"PUT", "/api/workspaces/{id}/webhook", webhook_put, NULL, "workspace.webhook.set", 0},
	{"DELETE", "/api/workspaces/{id}/webhook", webhook_delete, NULL,
	 "workspace.webhook.delete", API_NOBODY},
};

#define NROUTES (sizeof(api_routes) / sizeof(api_routes[0]))

static struct route routes[NROUTES];

void api_print_routes(void)
{
	for (size_t i = 0; i < NROUTES; i++)
		printf("%s %s\n", api_routes[i].method, api_routes[i].pattern);
}

/* Helpers for handlers */

const char *api_param(struct api_ctx *c, const char *name)
{
	const char *v = route_param(&c->m, name);
	return v ? v : "";
}

json_t *api_body(struct api_ctx *c, const char *const allowed[], int optional)
{
	json_t *j;

	if (c->req->body_len == 0 && optional)
		return json_object();
	j = json_parse_object(c->req->body, c->req->body_len, &c->err);
	if (!j) {
		c->status = c->err.status;
		return NULL;
	}
	if (json_only_fields(j, allowed, &c->err)) {
		c->status = c->err.status;
		json_decref(j);
		return NULL;
	}
	return j;
}

void api_ok(struct api_ctx *c, int status, json_t *body)
{
	c->status = status;
	if (c->resp)
		json_decref(c->resp);
	c->resp = body;
}

int api_fail(struct api_ctx *c, const struct err *err)
{
	if (err != &c->err)
		c->err = *err;
	c->status = c->err.status ? c->err.status : 500;
	if (!*c->err.code)
		snprintf(c->err.code, sizeof(c->err.code), "internal");
	return -1;
}

struct event *api_event_slot(struct api_ctx *c)
{
	if (c->nev >= (int)(sizeof(c->ev) / sizeof(c->ev[0])))
		return NULL;
	return &c->ev[c->nev++];
}

void api_ctx_free(struct api_ctx *c)
{
	for (int i = 0; i < c->nev; i++)
		free(c->ev[i].data);
	json_decref(c->resp);
	json_decref(c->body);
	json_decref(c->audit_detail);
	sodium_memzero(c->bearer, sizeof(c->bearer));
	sodium_memzero(c->cookie, sizeof(c->cookie));
	free(c);
}

void api_respond_json(struct api_ctx *c, int status, json_t *body)
{
	http_respond_json(c->req, status, body, *c->extra_headers ? c->extra_headers : NULL);
	api_ctx_free(c);
}

void api_respond_err(struct api_ctx *c, const struct err *err)
{
	int status = err->status ? err->status : 500;

	api_respond_json(c, status,
			 json_pack("{s:{s:s, s:s}}", "error", "code",
				   *err->code ? err->code : "internal", "message", err->msg));
}

/* Authentication, on the worker */

/* A console ticket stands for its user on its desktop's console only. */
static int authenticate_ticket(struct api_ctx *c, const char *ticket)
{
	char user_id[ID_MAX];
	struct err err = ERR_INIT;

	if (console_ticket_redeem(ticket, user_id, c->ticket_desktop) ||
	    store_user_get(c->s, user_id, &c->user, &err)) {
		c->ticket_desktop[0] = '\0';
		return err_set(&c->err, 401, "unauthorized", "invalid, expired or used ticket");
	}
	c->authed = 1;
	return 0;
}

static int authenticate(struct api_ctx *c)
{
	char hash[HASH_HEX_LEN + 1];
	char ticket[128];
	struct api_key key;
	struct err err = ERR_INIT;

	if ((c->route->flags & API_TICKET) &&
	    http_req_query(c->req, "ticket", ticket, sizeof(ticket)) >= 0) {
		int r = authenticate_ticket(c, ticket);

		sodium_memzero(ticket, sizeof(ticket));
		return r;
	}
	if (*c->bearer) {
		token_hash(c->bearer, hash);
		if (store_key_user(c->s, hash, &key, &c->user, &err) == 0) {
			snprintf(c->key_id, sizeof(c->key_id), "%s", key.id);
			if (now_ms() - key.last_used_at > 60000)
				store_key_touch(c->s, key.id, now_ms(), &err);
			c->authed = 1;
			return 0;
		}
		return err_set(&c->err, 401, "unauthorized", "invalid or revoked API key");
	}
	if (*c->cookie) {
		token_hash(c->cookie, hash);
		if (store_session_user(c->s, hash, now_ms(), &c->user, &err) == 0) {
			c->authed = 1;
			/* Browsers send Origin on cross-site writes: refuse them. */
			if (strcmp(c->req->method, "GET") && strcmp(c->req->method, "HEAD") &&
			    !c->origin_ok)
				return err_set(&c->err, 403, "csrf",
					       "cross-origin request refused (Origin does not "
					       "match the server)");
			return 0;
		}
		return err_set(&c->err, 401, "unauthorized", "session expired or invalid");
	}
	return err_set(&c->err, 401, "unauthorized",
		       "credentials required: Authorization: Bearer KEY, or log in");
}

static void audit(struct api_ctx *c)
{
	struct audit_entry a = {0};
	struct err err = ERR_INIT;
	const char *pattern = c->route ? c->route->pattern : c->req->path;

	snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", c->audit_ws);
	if (c->authed)
		snprintf(a.user_id, sizeof(a.user_id), "%s", c->user.id);
	snprintf(a.key_id, sizeof(a.key_id), "%s", c->key_id);
	snprintf(a.action, sizeof(a.action), "%s",
		 c->route && c->route->action ? c->route->action : "http.request");
	if (*c->audit_target)
		snprintf(a.target, sizeof(a.target), "%s", c->audit_target);
	else
		snprintf(a.target, sizeof(a.target), "%s %s", c->req->method, c->req->path);
	a.status = c->status;
	snprintf(a.remote, sizeof(a.remote), "%s", c->req->remote);
	if (c->m.nparams || c->audit_detail) {
		json_t *d = c->audit_detail ? json_incref(c->audit_detail) : json_object();
		for (int i = 0; i < c->m.nparams; i++)
			json_object_set_new(d, c->m.names[i], json_string(c->m.values[i]));
		json_object_set_new(d, "route", json_string(pattern));
		a.detail = json_dumps(d, JSON_COMPACT);
		json_decref(d);
	}
	a.created_at = now_ms();
	if (store_audit_append(c->s, &a, &err))
		log_warnx("audit append failed: %s", err.msg);
	free(a.detail);
}

static void api_work(struct store *s, void *arg)
{
	struct api_ctx *c = arg;

	c->s = s;
	c->status = 200;
	if (!(c->route->flags & API_PUBLIC) && authenticate(c) &&
	    !((c->route->flags & API_GUEST) && c->err.status == 401)) {
		c->status = c->err.status;
	} else if ((c->route->flags & API_ADMIN) && !c->user.is_admin) {
		err_set(&c->err, 403, "forbidden", "administrators only");
		c->status = 403;
	} else if ((c->route->flags & API_NOBODY) && c->req->body_len &&
		   !api_body(c, (const char *const[]){NULL}, 1)) {
		/* api_body filled err */
	} else {
		c->route->work(c);
	}
	audit(c);
	c->s = NULL;
}

/* On the loop, after work: what the work stored reaches the rest. */
static void api_effects(struct api_ctx *c)
{
	for (int i = 0; i < c->nev; i++)
		core_publish(c->app, &c->ev[i]);
	alerts_note_answer(c->app, c->audit_ws, c->status);
	if (*c->kick) {
		if (c->restart)
			core_restart(c->app, c->kick);
		else
			core_kick(c->app, c->kick);
	}
}

static void api_done(void *arg)
{
	struct api_ctx *c = arg;

	api_effects(c);
	snprintf(c->req->log_extra, sizeof(c->req->log_extra), "user=%s%s%s",
		 c->authed ? c->user.id : "-", *c->key_id ? " key=" : "", c->key_id);
	if (c->status >= 400) {
		if (c->route->work == events_open)
			api_events_release(c);
		if (c->status == 401)
			snprintf(c->extra_headers, sizeof(c->extra_headers),
				 "WWW-Authenticate: Bearer realm=\"bureau\"\r\n");
		if (!*c->err.code)
			err_set(&c->err, c->status, "internal", "internal error");
		c->err.status = c->status;
		api_respond_err(c, &c->err);
		return;
	}
	if (c->route->loop) {
		c->route->loop(c);
		return;
	}
	if (c->status == 204) {
		http_respond(c->req, 204, NULL, NULL, 0, NULL);
		api_ctx_free(c);
		return;
	}
	api_respond_json(c, c->status, c->resp ? json_incref(c->resp) : json_object());
}

struct api_ctx *api_sub_new(struct api_ctx *parent, const char *method, const char *path)
{
	struct api_ctx *c;
	struct route_match m;
	char allow[128];

	if (route_find(routes, NROUTES, method, path, &m, allow, sizeof(allow)) != 200)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->app = parent->app;
	c->req = parent->req;
	c->m = m;
	c->route = m.route->handler;
	c->s = parent->s;
	c->authed = parent->authed;
	c->user = parent->user;
	snprintf(c->key_id, sizeof(c->key_id), "%s", parent->key_id);
	snprintf(c->audit_target, sizeof(c->audit_target), "%s %s", method, path);
	c->status = 200;
	return c;
}

void api_sub_audit(struct api_ctx *c)
{
	audit(c);
}

void api_sub_effects(struct api_ctx *c)
{
	api_effects(c);
}

/* Whether Origin (when sent) names this server, as a browser's same-origin
 * request does. */
static int origin_matches(const struct http_req *req)
{
	const char *origin = http_req_header(req, "origin");
	const char *host = http_req_header(req, "host");
	char want[300];

	if (!origin || !host)
		return 0;
	snprintf(want, sizeof(want), "http://%s", host);
	if (!strcmp(origin, want))
		return 1;
	snprintf(want, sizeof(want), "https://%s", host);
	return !strcmp(origin, want);
}

static void api_handle(struct http_req *req, void *arg)
{
	struct app *app = arg;
	struct api_ctx *c;
	struct route_match m;
	char allow[128];
	const char *auth;
	int r;

	r = route_find(routes, NROUTES, req->method, req->path, &m, allow, sizeof(allow));
	if (r == 404 && static_serve(app, req))
		return;
	if (r == 404) {
		http_respond_error(req, 404, "no_route", "no such endpoint");
		return;
	}
	if (r == 405) {
		char hdr[200];
		snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
		http_respond_json(req, 405,
				  json_pack("{s:{s:s, s:s}}", "error", "code", "method_not_allowed",
					    "message", "method not allowed"),
				  hdr);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->app = app;
	c->req = req;
	c->m = m;
	c->route = m.route->handler;
	auth = http_req_header(req, "authorization");
	if (auth && !strncasecmp(auth, "Bearer ", 7) && strlen(auth + 7) < sizeof(c->bearer))
		snprintf(c->bearer, sizeof(c->bearer), "%s", auth + 7);
	else if (auth)
		snprintf(c->bearer, sizeof(c->bearer), "invalid");
	if (http_req_cookie(req, SESSION_COOKIE, c->cookie, sizeof(c->cookie)) < 0)
		c->cookie[0] = '\0';
	c->origin_ok = origin_matches(req);
	if (!c->route->work) {
		c->route->loop(c);
		return;
	}
	if (c->route->work == events_open)
		api_events_hold(c);
	job_submit(app, api_work, api_done, c);
}

static void health(struct api_ctx *c)
{
	api_respond_json(c, 200,
			 json_pack("{s:s, s:s, s:s}", "status", "ok", "version", BUREAU_VERSION,
				   "accel", *c->app->accel ? c->app->accel : "probing"));
}

static const struct api_route *api_route_of(const struct http_req *req)
{
	struct route_match m;
	char allow[128];

	if (route_find(routes, NROUTES, req->method, req->path, &m, allow, sizeof(allow)) != 200)
		return NULL;
	return m.route->handler;
}

/* Uploads (API_UPLOAD) take large bodies, streamed; the rest the default. */
static size_t api_body_limit(const struct http_req *req, void *arg)
{
	const struct api_route *r = api_route_of(req);

	return r && (r->flags & API_UPLOAD) ? (size_t)API_UPLOAD_MAX : HTTP_MAX_BODY_LEN;
}

static int api_body_stream(const struct http_req *req, void *arg)
{
	const struct api_route *r = api_route_of(req);

	return r && (r->flags & API_UPLOAD);
}

void api_init(struct app *app)
{
	for (size_t i = 0; i < NROUTES; i++) {
		routes[i].method = api_routes[i].method;
		routes[i].pattern = api_routes[i].pattern;
		routes[i].handler = (void *)&api_routes[i];
	}
	app->http = http_server_new(app->loop, api_handle, app);
	http_server_set_body_limit(app->http, api_body_limit, NULL);
	http_server_set_body_stream(app->http, api_body_stream, NULL);
	alerts_init(app);
}
