/* Read-only views: the audit log, usage and cost, the tiers. */
#include "api/api.h"
#include "core/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 500
#define AUDIT_ACTION_MAX 63 /* struct audit_entry's action */

/* A numeric query parameter within [min, max]; def when absent. */
static int query_int(struct api_ctx *c, const char *name, long long min, long long max,
		     long long def, long long *out)
{
	char v[32], *end;

	*out = def;
	if (http_req_query(c->req, name, v, sizeof(v)) < 0)
		return 0;
	*out = strtoll(v, &end, 10);
	if (!*v || *end || *out < min || *out > max)
		return err_set(&c->err, 400, "invalid_request", "%s must be a number in %lld..%lld",
			       name, min, max);
	return 0;
}

/* A text query parameter of 1..max bytes into out (max + 1 bytes); ""
 * when absent. */
static int query_text(struct api_ctx *c, const char *name, size_t max, char *out)
{
	char v[HTTP_MAX_URL_LEN];
	int len = http_req_query(c->req, name, v, sizeof(v));

	out[0] = '\0';
	if (len < 0)
		return 0;
	if (len == 0 || (size_t)len > max || strlen(v) != (size_t)len)
		return err_set(&c->err, 400, "invalid_request", "%s must be 1..%zu characters",
			       name, max);
	memcpy(out, v, (size_t)len + 1);
	return 0;
}

/* The workspaceId query parameter, checked for membership; "" when absent. */
static int query_workspace(struct api_ctx *c, char ws[ID_MAX], struct workspace *w)
{
	if (query_text(c, "workspaceId", ID_MAX - 1, ws))
		return -1;
	if (!*ws)
		return 0;
	if (store_workspace_get(c->s, c->user.id, ws, w, &c->err))
		return -1;
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", ws);
	return 0;
}

/* An id query parameter: its type prefix, then letters and digits. */
static int query_id(struct api_ctx *c, const char *name, const char *prefix, char out[ID_MAX])
{
	size_t plen = strlen(prefix);

	if (query_text(c, name, ID_MAX - 1, out))
		return -1;
	if (!*out)
		return 0;
	if (strncmp(out, prefix, plen) || !out[plen] ||
	    strspn(out + plen, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
		    strlen(out + plen))
		return err_set(&c->err, 400, "invalid_request", "%s must be an id like %s…", name,
			       prefix);
	return 0;
}

/* ?action=: an action name, or a prefix of one ending with '*'. */
static int query_action(struct api_ctx *c, char out[AUDIT_ACTION_MAX + 1])
{
	size_t len, body;

	if (query_text(c, "action", AUDIT_ACTION_MAX, out))
		return -1;
	len = strlen(out);
	body = len && out[len - 1] == '*' ? len - 1 : len;
	if (strspn(out, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != body)
		return err_set(&c->err, 400, "invalid_request",
			       "action must be an action (desktop.stop) or a prefix ending with * "
			       "(desktop.*)");
	return 0;
}

/* A date or time query parameter (after 1970-01-01); 0 when absent. */
static int query_when(struct api_ctx *c, const char *name, int64_t *out)
{
	char v[40];

	*out = 0;
	if (query_text(c, name, sizeof(v) - 1, v))
		return -1;
	if (*v && (time_parse_iso(v, out) || *out <= 0))
		return err_set(&c->err, 400, "invalid_request",
			       "%s must be a date (2026-11-01) or time (2026-11-01T12:00:00Z) after "
			       "1970-01-01",
			       name);
	return 0;
}

/* ?since= (inclusive) and ?until= (exclusive), since before until. */
static int query_window(struct api_ctx *c, struct audit_filter *f)
{
	if (query_when(c, "since", &f->since) || query_when(c, "until", &f->until))
		return -1;
	if (f->since && f->until && f->since >= f->until)
		return err_set(&c->err, 400, "invalid_request", "since must be before until");
	return 0;
}

void audit_list(struct api_ctx *c)
{
	char ws[ID_MAX], user[ID_MAX], desktop[ID_MAX], action[AUDIT_ACTION_MAX + 1], created[32];
	struct workspace w;
	struct audit_entry *a;
	struct audit_filter f = {0};
	long long before, limit;
	size_t n;
	json_t *list;

	if (query_workspace(c, ws, &w) || query_int(c, "before", 0, INT64_MAX, 0, &before) ||
	    query_int(c, "limit", 1, AUDIT_LIMIT_MAX, AUDIT_LIMIT_DEFAULT, &limit) ||
	    query_id(c, "userId", "usr_", user) || query_id(c, "desktopId", "dsk_", desktop) ||
	    query_action(c, action) || query_window(c, &f)) {
		api_fail(c, &c->err);
		return;
	}
	f.workspace_id = *ws ? ws : NULL;
	f.user_id = *user ? user : NULL;
	f.desktop_id = *desktop ? desktop : NULL;
	f.action = *action ? action : NULL;
	f.before_id = before;
	f.limit = (int)limit;
	if (store_audit_list(c->s, c->user.id, &f, &a, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *detail = a[i].detail ? json_loads(a[i].detail, 0, NULL) : NULL;
		time_iso(a[i].created_at, created);
		json_array_append_new(
			list, json_pack("{s:I, s:s, s:s, s:i, s:o, s:o, s:o, s:s, s:s, s:o}", "id",
					(json_int_t)a[i].id, "action", a[i].action, "target",
					a[i].target, "status", a[i].status, "userId",
					*a[i].user_id ? json_string(a[i].user_id) : json_null(),
					"keyId", *a[i].key_id ? json_string(a[i].key_id) : json_null(),
					"workspaceId",
					*a[i].workspace_id ? json_string(a[i].workspace_id)
							   : json_null(),
					"remote", a[i].remote, "createdAt", created, "detail",
					detail ? detail : json_null()));
	}
	api_ok(c, 200,
	       json_pack("{s:o, s:o}", "entries", list, "next",
			 n == (size_t)limit ? json_integer(a[n - 1].id) : json_null()));
	store_audit_free(a, n);
}

static int64_t month_start(int64_t now)
{
	time_t t = (time_t)(now / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (int64_t)timegm(&tm) * 1000;
}

static int query_time(struct api_ctx *c, const char *name, int64_t def, int64_t *out)
{
	char v[40];

	*out = def;
	if (http_req_query(c->req, name, v, sizeof(v)) < 0)
		return 0;
	if (time_parse_iso(v, out))
		return err_set(&c->err, 400, "invalid_request",
			       "%s must be a date (2026-11-01) or time (2026-11-01T12:00:00Z)", name);
	return 0;
}

/* The workspace usage is asked for: the one named or the caller's first. */
static int usage_workspace(struct api_ctx *c, char ws[ID_MAX])
{
	struct workspace w, *all;
	size_t n;

	if (query_workspace(c, ws, &w))
		return -1;
	if (*ws)
		return 0;
	if (store_workspace_list(c->s, c->user.id, &all, &n, &c->err))
		return -1;
	if (n == 0) {
		free(all);
		return err_set(&c->err, 404, "not_found", "you belong to no workspace");
	}
	snprintf(ws, ID_MAX, "%s", all[0].id);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", ws);
	free(all);
	return 0;
}

void usage_get(struct api_ctx *c)
{
	char ws[ID_MAX], from_s[32], to_s[32];
	int64_t now = now_ms(), from, to;
	struct usage_row *rows;
	size_t n;
	double total_h = 0, total_cost = 0, tier_h[8] = {0};
	json_t *desktops, *by_tier;

	if (usage_workspace(c, ws) || query_time(c, "from", month_start(now), &from) ||
	    query_time(c, "to", now, &to)) {
		api_fail(c, &c->err);
		return;
	}
	if (to <= from) {
		err_set(&c->err, 400, "invalid_request", "to must be after from");
		api_fail(c, &c->err);
		return;
	}
	if (store_usage_query(c->s, ws, from, to, now, &rows, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	desktops = json_array();
	for (size_t i = 0; i < n; i++) {
		double h = rows[i].seconds / 3600.0, cost = h * tier_price(&c->app->cfg, rows[i].tier);
		for (int t = 0; t < ntiers; t++)
			if (!strcmp(tiers[t].id, rows[i].tier))
				tier_h[t] += h;
		total_h += h;
		total_cost += cost;
		json_array_append_new(desktops,
				      json_pack("{s:s, s:s, s:s, s:f, s:f}", "desktopId",
						rows[i].desktop_id, "name", rows[i].desktop_name,
						"tier", rows[i].tier, "hours", h, "cost", cost));
	}
	free(rows);
	by_tier = json_array();
	for (int t = 0; t < ntiers; t++)
		json_array_append_new(by_tier,
				      json_pack("{s:s, s:f, s:f, s:f}", "tier", tiers[t].id, "hours",
						tier_h[t], "pricePerHour",
						tier_price(&c->app->cfg, tiers[t].id), "cost",
						tier_h[t] * tier_price(&c->app->cfg, tiers[t].id)));
	time_iso(from, from_s);
	time_iso(to, to_s);
	api_ok(c, 200,
	       json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:f, s:f}", "workspaceId", ws, "from",
			 from_s, "to", to_s, "currency", c->app->cfg.currency, "desktops",
			 desktops, "tiers", by_tier, "totalHours", total_h, "totalCost",
			 total_cost));
}

void tiers_list(struct api_ctx *c)
{
	json_t *list = json_array();

	for (int t = 0; t < ntiers; t++)
		json_array_append_new(
			list, json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:s}", "id", tiers[t].id,
					"name", tiers[t].name, "vcpus", tiers[t].vcpus, "memoryMb",
					tiers[t].memory_mb, "diskGb", tiers[t].disk_gb,
					"pricePerHour", tier_price(&c->app->cfg, tiers[t].id),
					"currency", c->app->cfg.currency));
	api_ok(c, 200, json_pack("{s:o}", "tiers", list));
}
