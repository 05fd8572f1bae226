/* The chat with a desktop's pilot, its token usage and its egress (issue 6):
 *   POST /api/desktops/{id}/chat {"message"}     202, queued for the pilot
 *   GET  /api/desktops/{id}/chat?before=&limit=  the conversation, paged
 *   POST /api/desktops/{id}/chat/interrupt       stops the running task
 *   GET  /api/desktops/{id}/usage                LLM tokens, summed
 *   GET  /api/desktops/{id}/egress?before=&limit= the egress log
 *   GET|PUT /api/workspaces/{id}/egress          the allowlist
 * The live stream is GET /api/events?desktopId=. */
#include "api/api.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "core/pilot.h"
#include "vm/driver.h"

#include <stdlib.h>
#include <string.h>

#define EGRESS_PAGE_DEFAULT 100

static int desktop_visible(struct api_ctx *c)
{
	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	return 0;
}

/* ?limit=N within 1..max; -1 with 400 otherwise. */
static int query_limit(struct api_ctx *c, int def, int max)
{
	char q[16], *end;
	long v;

	if (http_req_query(c->req, "limit", q, sizeof(q)) < 0)
		return def;
	v = strtol(q, &end, 10);
	if (*end || v < 1 || v > max) {
		err_set(&c->err, 400, "invalid_request", "limit must be an integer from 1 to %d", max);
		return api_fail(c, &c->err);
	}
	return (int)v;
}

void chat_post(struct api_ctx *c)
{
	static const char *const allowed[] = {"message", NULL};
	const char *text;
	struct chat_msg m = {0};
	struct event *ev;
	json_t *b;

	if (desktop_visible(c) || !(b = api_body(c, allowed, 0)))
		return;
	c->body = b;
	if (json_get_string(b, "message", 1, &text, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (!*text || strlen(text) > CHAT_MESSAGE_MAX) {
		err_set(&c->err, *text ? 413 : 400, *text ? "too_large" : "invalid_request",
			"message must be 1 to %d bytes", CHAT_MESSAGE_MAX);
		api_fail(c, &c->err);
		return;
	}
	snprintf(m.role, sizeof(m.role), "user");
	snprintf(m.status, sizeof(m.status), "queued");
	snprintf(m.user_id, sizeof(m.user_id), "%s", c->user.id);
	m.content = (char *)text;
	ev = api_event_slot(c);
	if (chat_store_message(c->s, &c->d, &m, ev, &c->err)) {
		c->nev--;
		api_fail(c, &c->err);
		return;
	}
	c->audit_detail = json_pack("{s:s}", "messageId", m.id);
	api_ok(c, 202, chat_msg_json(&m));
}

/* After the message is stored: hand it to the pilot now if it runs. */
void chat_post_deliver(struct api_ctx *c)
{
	if (core_vm(c->app, c->d.id))
		chat_push(c->app, c->d.id);
	api_respond_json(c, c->status, json_incref(c->resp));
}

void chat_list(struct api_ctx *c)
{
	char before[ID_MAX];
	int limit = query_limit(c, CHAT_PAGE_DEFAULT, CHAT_PAGE_MAX);
	int has_before = http_req_query(c->req, "before", before, sizeof(before)) >= 0;
	struct chat_msg *list;
	size_t n;
	json_t *a;

	if (limit < 0 || desktop_visible(c))
		return;
	if (store_chat_list(c->s, c->d.id, has_before ? before : NULL, limit, &list, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, chat_msg_json(&list[i]));
	/* A full page may have older messages before it. */
	api_ok(c, 200, json_pack("{s:o, s:o}", "messages", a, "nextBefore",
				 n == (size_t)limit && n ? json_string(list[0].id) : json_null()));
	store_chat_free(list, n);
}

void chat_interrupt_check(struct api_ctx *c)
{
	desktop_visible(c);
}

void chat_interrupt(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	json_t *m = json_pack("{s:s}", "type", "chat.interrupt");
	struct err err = ERR_INIT;

	if (!vm || vm_agent_send(vm, m)) {
		json_decref(m);
		err_set(&err, 409, "conflict", "the desktop's agent is not connected (desktop %s)",
			c->d.state);
		api_respond_err(c, &err);
		return;
	}
	json_decref(m);
	api_respond_json(c, 202, json_pack("{s:s, s:s}", "desktopId", c->d.id, "status",
					   "interrupting"));
}

void chat_usage(struct api_ctx *c)
{
	int64_t calls, in, out;

	if (desktop_visible(c))
		return;
	if (store_llm_usage_sum(c->s, c->d.id, &calls, &in, &out, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	api_ok(c, 200, json_pack("{s:s, s:I, s:I, s:I, s:I}", "desktopId", c->d.id, "calls",
				 (json_int_t)calls, "inputTokens", (json_int_t)in, "outputTokens",
				 (json_int_t)out, "totalTokens", (json_int_t)(in + out)));
}

void egress_log_list(struct api_ctx *c)
{
	char q[24], *end;
	int64_t before = 0;
	int limit = query_limit(c, EGRESS_PAGE_DEFAULT, 1000);
	struct egress_entry *e;
	size_t n;
	json_t *a;

	if (limit < 0)
		return;
	if (http_req_query(c->req, "before", q, sizeof(q)) >= 0) {
		before = strtoll(q, &end, 10);
		if (*end || before < 1) {
			err_set(&c->err, 400, "invalid_request", "before must be an entry id");
			api_fail(c, &c->err);
			return;
		}
	}
	if (desktop_visible(c))
		return;
	if (store_egress_list(c->s, c->d.id, before, limit, &e, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	a = json_array();
	for (size_t i = 0; i < n; i++) {
		char at[32];
		time_iso(e[i].created_at, at);
		json_array_append_new(a, json_pack("{s:I, s:s, s:i, s:b, s:s, s:I, s:I, s:s}", "id",
						   (json_int_t)e[i].id, "host", e[i].host, "port",
						   e[i].port, "allowed", e[i].allowed, "reason",
						   e[i].reason, "bytesUp", (json_int_t)e[i].bytes_up,
						   "bytesDown", (json_int_t)e[i].bytes_down, "createdAt",
						   at));
	}
	free(e);
	api_ok(c, 200, json_pack("{s:s, s:o}", "desktopId", c->d.id, "entries", a));
}

/* Workspace settings as JSON documents. */

static int workspace_visible(struct api_ctx *c, struct workspace *w, int write)
{
	if (store_workspace_get(c->s, c->user.id, api_param(c, "id"), w, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w->id);
	if (write && strcmp(w->role, "owner") && strcmp(w->role, "admin")) {
		err_set(&c->err, 403, "forbidden", "only the workspace's owners and admins may");
		return api_fail(c, &c->err);
	}
	return 0;
}

static void setting_get(struct api_ctx *c, const char *name, json_t *def)
{
	struct workspace w;
	char *text = NULL;
	json_t *doc = NULL;
	struct err err = ERR_INIT;

	if (workspace_visible(c, &w, 0)) {
		json_decref(def);
		return;
	}
	if (!store_workspace_setting_get(c->s, w.id, name, &text, &err))
		doc = json_loads(text, 0, NULL);
	free(text);
	if (doc) {
		json_object_update_missing(doc, def);
		json_decref(def);
	}
	api_ok(c, 200, doc ? doc : def);
}

static void setting_put(struct api_ctx *c, const char *name, const char *const allowed[],
			int (*check)(const json_t *doc, struct err *err))
{
	struct workspace w;
	json_t *b;
	char *text;

	if (workspace_visible(c, &w, 1) || !(b = api_body(c, allowed, 0)))
		return;
	c->body = b;
	if (check(b, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	text = json_dumps(b, JSON_COMPACT);
	if (store_workspace_setting_put(c->s, w.id, name, text, now_ms(), &c->err)) {
		free(text);
		api_fail(c, &c->err);
		return;
	}
	c->audit_detail = json_loads(text, 0, NULL);
	free(text);
	api_ok(c, 200, json_incref(b));
}

void egress_allow_get(struct api_ctx *c)
{
	setting_get(c, "egress", json_pack("{s:[]}", "allow"));
}

void egress_allow_put(struct api_ctx *c)
{
	static const char *const allowed[] = {"allow", NULL};

	setting_put(c, "egress", allowed, egress_allow_check);
}

/* The proxies of the workspace's running desktops take the new list. */
void egress_allow_apply(struct api_ctx *c)
{
	egress_workspace_changed(c->app, api_param(c, "id"));
	api_respond_json(c, c->status, json_incref(c->resp));
}

void approval_rules_get(struct api_ctx *c)
{
	setting_get(c, "approvals",
		    json_pack("{s:[], s:i}", "rules", "timeoutSeconds", APPROVAL_TIMEOUT_DEFAULT_S));
}

void approval_rules_put(struct api_ctx *c)
{
	static const char *const allowed[] = {"rules", "timeoutSeconds", NULL};

	setting_put(c, "approvals", allowed, approval_rules_check);
}
