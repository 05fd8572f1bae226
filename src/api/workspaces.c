/* Workspaces and their members. */
#include "api/api.h"
#include "common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *workspace_json(const struct workspace *w)
{
	char created[32];

	time_iso(w->created_at, created);
	return json_pack("{s:s, s:s, s:i, s:s, s:s}", "id", w->id, "name", w->name, "planLimit",
			 w->plan_limit, "role", w->role, "createdAt", created);
}

void workspaces_list(struct api_ctx *c)
{
	struct workspace *ws;
	size_t n;
	json_t *list = json_array();

	if (store_workspace_list(c->s, c->user.id, &ws, &n, &c->err)) {
		json_decref(list);
		api_fail(c, &c->err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, workspace_json(&ws[i]));
	free(ws);
	api_ok(c, 200, json_pack("{s:o}", "workspaces", list));
}

void workspaces_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"name", NULL};
	struct workspace w = {0};
	const char *name;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "name", 1, &name, &c->err) ||
	    name_check("workspace name", name, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	id_new(w.id, sizeof(w.id), "ws");
	snprintf(w.name, sizeof(w.name), "%s", name);
	snprintf(w.role, sizeof(w.role), "owner");
	w.plan_limit = c->app->cfg.plan_limit;
	w.created_at = now_ms();
	if (store_begin(c->s, &c->err) || store_workspace_insert(c->s, &w, &c->err) ||
	    store_member_insert(c->s, w.id, c->user.id, "owner", w.created_at, &c->err) ||
	    store_commit(c->s, &c->err)) {
		store_rollback(c->s);
		api_fail(c, &c->err);
		return;
	}
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w.id);
	api_ok(c, 201, workspace_json(&w));
}

/* The workspace named by the path, if the caller is a member (else 404). */
static int workspace_load(struct api_ctx *c, struct workspace *w)
{
	if (store_workspace_get(c->s, c->user.id, api_param(c, "id"), w, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w->id);
	return 0;
}

void workspaces_get(struct api_ctx *c)
{
	struct workspace w;

	if (workspace_load(c, &w) == 0)
		api_ok(c, 200, workspace_json(&w));
}

static json_t *member_json(const struct member *m)
{
	char created[32];

	time_iso(m->created_at, created);
	return json_pack("{s:s, s:s, s:s, s:s}", "userId", m->user_id, "email", m->email, "role",
			 m->role, "createdAt", created);
}

void members_list(struct api_ctx *c)
{
	struct workspace w;
	struct member *m;
	size_t n;
	json_t *list;

	if (workspace_load(c, &w))
		return;
	if (store_member_list(c->s, w.id, &m, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, member_json(&m[i]));
	free(m);
	api_ok(c, 200, json_pack("{s:o}", "members", list));
}

void members_add(struct api_ctx *c)
{
	static const char *const allowed[] = {"email", "role", NULL};
	struct workspace w;
	struct user u;
	struct member m = {0};
	const char *email, *role;
	json_t *b;

	if (workspace_load(c, &w))
		return;
	b = api_body(c, allowed, 0);
	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "email", 1, &email, &c->err) ||
	    json_get_string(b, "role", 0, &role, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (!role)
		role = "member";
	if (strcmp(role, "member") && strcmp(role, "admin")) {
		err_set(&c->err, 400, "invalid_request", "role must be \"member\" or \"admin\"");
		api_fail(c, &c->err);
		return;
	}
	if (strcmp(w.role, "owner") && strcmp(w.role, "admin")) {
		err_set(&c->err, 403, "forbidden", "only the workspace's owner or admins add members");
		api_fail(c, &c->err);
		return;
	}
	if (store_user_get_by_email(c->s, email, &u, &c->err)) {
		err_set(&c->err, 404, "not_found", "no user with that email");
		api_fail(c, &c->err);
		return;
	}
	m.created_at = now_ms();
	if (store_member_insert(c->s, w.id, u.id, role, m.created_at, &c->err)) {
		if (c->err.status == 409)
			snprintf(c->err.msg, sizeof(c->err.msg), "already a member");
		api_fail(c, &c->err);
		return;
	}
	snprintf(m.user_id, sizeof(m.user_id), "%s", u.id);
	snprintf(m.email, sizeof(m.email), "%s", u.email);
	snprintf(m.role, sizeof(m.role), "%s", role);
	api_ok(c, 201, member_json(&m));
}
