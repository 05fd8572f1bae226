/* Alerts, their rules and the workspace webhook. The engine that raises
 * alerts and delivers them is core/alerts.c. */
#include "api/api.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "core/alerts.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ALERTS_LIST_DEFAULT 100
#define WEBHOOK_URL_MAX 2000
#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_SECRET_MAX 120

/* GET /api/alerts?state=open|acknowledged|all&workspaceId=&limit= */
void alerts_list(struct api_ctx *c)
{
	static const char *const names[] = {"all", "open", "acknowledged"};
	enum store_alert_filter filter = STORE_ALERTS_OPEN;
	char state[16] = "", ws[ID_MAX], lim[12];
	int has_ws = http_req_query(c->req, "workspaceId", ws, sizeof(ws)) >= 0;
	long limit = ALERTS_LIST_DEFAULT;
	struct workspace w;
	struct alert *list;
	size_t n, i;
	json_t *out;

	if (http_req_query(c->req, "state", state, sizeof(state)) >= 0) {
		for (i = 0; i < 3 && strcmp(state, names[i]); i++)
			;
		if (i == 3) {
			err_set(&c->err, 400, "invalid_request",
				"state must be open, acknowledged or all");
			api_fail(c, &c->err);
			return;
		}
		filter = (enum store_alert_filter)i;
	}
	if (http_req_query(c->req, "limit", lim, sizeof(lim)) >= 0) {
		char *end;
		limit = strtol(lim, &end, 10);
		if (*end || end == lim || limit < 1 || limit > 1000) {
			err_set(&c->err, 400, "invalid_request", "limit must be 1..1000");
			api_fail(c, &c->err);
			return;
		}
	}
	if (has_ws && store_workspace_get(c->s, c->user.id, ws, &w, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (has_ws)
		snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", ws);
	if (store_alert_list(c->s, c->user.id, has_ws ? ws : NULL, filter, (int)limit, &list, &n,
			     &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	out = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(out, alert_json(&list[i]));
	free(list);
	api_ok(c, 200, json_pack("{s:o}", "alerts", out));
}

/* What the acknowledgement's loop half delivers. */
struct ack {
	struct alert a;
	struct webhook w;
	int have_webhook;
	int64_t event_id;
};

void alerts_ack(struct api_ctx *c)
{
	struct ack *k = xcalloc(1, sizeof(*k));
	struct event *ev;
	struct err e = ERR_INIT;

	if (store_alert_get_for_user(c->s, c->user.id, api_param(c, "id"), &k->a, &c->err))
		goto fail;
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", k->a.workspace_id);
	if (store_begin(c->s, &c->err))
		goto fail;
	/* An agent error is an event, not a condition: acknowledging it ends
	 * its episode, so the next error raises again. */
	if (store_alert_ack(c->s, k->a.id, c->user.id, now_ms(), !strcmp(k->a.kind, "agentError"),
			    &c->err) ||
	    store_alert_get_for_user(c->s, c->user.id, k->a.id, &k->a, &c->err) ||
	    !(ev = api_event_slot(c)) ||
	    alerts_store_event(c->s, &k->a, "alert.acknowledged", NULL, ev, &c->err) ||
	    store_commit(c->s, &c->err)) {
		store_rollback(c->s);
		goto fail;
	}
	k->event_id = ev->id;
	k->have_webhook = store_webhook_get(c->s, k->a.workspace_id, &k->w, &e) == 0;
	c->data = k;
	api_ok(c, 200, alert_json(&k->a));
	return;
fail:
	free(k);
	api_fail(c, &c->err);
}

void alerts_ack_deliver(struct api_ctx *c)
{
	struct ack *k = c->data;

	c->data = NULL;
	if (k->have_webhook)
		alerts_deliver(c->app, &k->w, "alert.acknowledged", k->event_id, &k->a, 0);
	sodium_memzero(k->w.secret, sizeof(k->w.secret));
	free(k);
	api_respond_json(c, 200, json_incref(c->resp));
}

/* The workspace of the path; changes need its owner or an admin. */
static int alert_workspace(struct api_ctx *c, int change, struct workspace *w)
{
	if (store_workspace_get(c->s, c->user.id, api_param(c, "id"), w, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w->id);
	if (change && strcmp(w->role, "owner") && strcmp(w->role, "admin")) {
		err_set(&c->err, 403, "forbidden",
			"only the workspace's owner or admins change it");
		return api_fail(c, &c->err);
	}
	return 0;
}

void alert_rules_get(struct api_ctx *c)
{
	struct alert_rules rules;
	struct workspace w;

	if (alert_workspace(c, 0, &w) || alerts_rules_load(c->s, w.id, &rules, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	api_ok(c, 200, alert_rules_json(&rules));
}

/* PUT merges: the kinds and fields given change, the rest stays. */
void alert_rules_put(struct api_ctx *c)
{
	struct alert_rules *rules = xcalloc(1, sizeof(*rules));
	struct workspace w;
	json_t *b, *full = NULL;
	char *text = NULL;

	if (alert_workspace(c, 1, &w))
		goto out;
	if (!(b = json_parse_object(c->req->body, c->req->body_len, &c->err)))
		goto fail;
	c->body = b;
	if (alerts_rules_load(c->s, w.id, rules, &c->err) || alert_rules_apply(rules, b, &c->err))
		goto fail;
	full = alert_rules_json(rules);
	text = json_dumps(full, JSON_COMPACT);
	if (store_alert_rules_set(c->s, w.id, text, now_ms(), &c->err))
		goto fail;
	free(text);
	c->data = rules;
	api_ok(c, 200, full);
	return;
fail:
	api_fail(c, &c->err);
	free(text);
	json_decref(full);
out:
	free(rules);
}

void alert_rules_changed(struct api_ctx *c)
{
	struct alert_rules *rules = c->data;

	c->data = NULL;
	alerts_rules_changed(c->app, api_param(c, "id"), rules);
	free(rules);
	api_respond_json(c, 200, json_incref(c->resp));
}

static json_t *webhook_json(const struct webhook *w, const char *shown_secret)
{
	char created[32];
	json_t *j;

	time_iso(w->created_at, created);
	j = json_pack("{s:s, s:s, s:s}", "workspaceId", w->workspace_id, "url", w->url, "createdAt",
		      created);
	if (shown_secret)
		json_object_set_new(j, "secret", json_string(shown_secret));
	return j;
}

void webhook_get(struct api_ctx *c)
{
	struct workspace w;
	struct webhook h;

	if (alert_workspace(c, 0, &w)) {
		api_fail(c, &c->err);
		return;
	}
	/* None set is an answer, not an error: {"url": null}. */
	if (store_webhook_get(c->s, w.id, &h, &c->err)) {
		if (c->err.status != 404) {
			api_fail(c, &c->err);
			return;
		}
		c->err = (struct err)ERR_INIT;
		api_ok(c, 200, json_pack("{s:s, s:n, s:n}", "workspaceId", w.id, "url", "createdAt"));
		return;
	}
	api_ok(c, 200, webhook_json(&h, NULL));
	sodium_memzero(h.secret, sizeof(h.secret));
}

/* http:// or https://, a host, no spaces or control characters. */
static int url_check(const char *url, struct err *err)
{
	const char *host;

	if (strlen(url) > WEBHOOK_URL_MAX)
		return err_set(err, 400, "invalid_request", "url is longer than %d characters",
			       WEBHOOK_URL_MAX);
	if (!strncmp(url, "http://", 7))
		host = url + 7;
	else if (!strncmp(url, "https://", 8))
		host = url + 8;
	else
		return err_set(err, 400, "invalid_request",
			       "url must be an http:// or https:// URL");
	if (!*host || *host == '/' || *host == ':' || *host == '?')
		return err_set(err, 400, "invalid_request", "url has no host");
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return err_set(err, 400, "invalid_request",
				       "url must not contain spaces or control characters");
	return 0;
}

static int secret_check(const char *secret, struct err *err)
{
	size_t len = strlen(secret);

	if (len < WEBHOOK_SECRET_MIN || len > WEBHOOK_SECRET_MAX)
		return err_set(err, 400, "invalid_request", "secret must be %d..%d characters",
			       WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX);
	for (const unsigned char *p = (const unsigned char *)secret; *p; p++)
		if (*p < ' ' || *p >= 0x7f)
			return err_set(err, 400, "invalid_request",
				       "secret must be printable ASCII");
	return 0;
}

void webhook_put(struct api_ctx *c)
{
	static const char *const allowed[] = {"url", "secret", NULL};
	struct workspace w;
	struct webhook h = {0};
	const char *url, *secret;
	char made[TOKEN_MAX];
	json_t *b;

	if (alert_workspace(c, 1, &w) || !(b = api_body(c, allowed, 0)))
		return;
	c->body = b;
	if (json_get_string(b, "url", 1, &url, &c->err) ||
	    json_get_string(b, "secret", 0, &secret, &c->err) || url_check(url, &c->err) ||
	    (secret && secret_check(secret, &c->err))) {
		api_fail(c, &c->err);
		return;
	}
	if (!secret)
		token_new(made, sizeof(made), "whsec");
	snprintf(h.workspace_id, sizeof(h.workspace_id), "%s", w.id);
	snprintf(h.url, sizeof(h.url), "%s", url);
	snprintf(h.secret, sizeof(h.secret), "%s", secret ? secret : made);
	h.created_at = now_ms();
	if (store_webhook_set(c->s, &h, &c->err))
		api_fail(c, &c->err);
	else
		api_ok(c, 200, webhook_json(&h, secret ? NULL : made));
	c->audit_detail = json_pack("{s:s}", "url", h.url);
	sodium_memzero(h.secret, sizeof(h.secret));
	sodium_memzero(made, sizeof(made));
}

void webhook_delete(struct api_ctx *c)
{
	struct workspace w;

	if (alert_workspace(c, 1, &w) || store_webhook_delete(c->s, w.id, &c->err))
		api_fail(c, &c->err);
	else
		c->status = 204;
}
