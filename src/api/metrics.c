/* Metrics: a desktop's time series, and the fleet as Prometheus text.
 *
 * GET /metrics is for scrapers: it answers an administrator's API key, or
 * the --metrics-token of the configuration (a credential that reads
 * nothing else), and 401 without either. */
#include "api/api.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/metrics.h"
#include "core/state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SINCE_MAX 40 /* characters of ?since= */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ?since= as milliseconds since the epoch or an ISO time; 0 when absent. */
static int since_parse(struct api_ctx *c, int64_t *since)
{
	char v[METRICS_SINCE_MAX + 1], *end;
	long long ms;
	int len = http_req_query(c->req, "since", v, sizeof(v));

	*since = 0;
	if (len < 0 && c->req->query && strstr(c->req->query, "since="))
		return err_set(&c->err, 400, "invalid_request", "since is too long");
	if (len < 0)
		return 0;
	errno = 0;
	ms = strtoll(v, &end, 10);
	if (len > 0 && !*end && !errno && ms >= 0) {
		*since = ms;
		return 0;
	}
	if (time_parse_iso(v, since) == 0)
		return 0;
	return err_set(&c->err, 400, "invalid_request",
		       "since must be milliseconds since the epoch or a time like "
		       "2026-11-22T14:24:29.123Z");
}

void desktops_metrics(struct api_ctx *c)
{
	int64_t since;

	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	if (since_parse(c, &since)) {
		api_fail(c, &c->err);
		return;
	}
	api_ok(c, 200, metrics_series_json(c->d.id, since));
}

/* The scrape token or an administrator's key. */
static int prom_authorize(struct api_ctx *c)
{
	char hash[HASH_HEX_LEN + 1];
	struct api_key key;
	struct err err = ERR_INIT;

	if (!*c->bearer)
		return err_set(&c->err, 401, "unauthorized",
			       "credentials required: Authorization: Bearer with an "
			       "administrator's API key or the metrics token");
	if (*c->app->cfg.metrics_token && secret_equal(c->bearer, c->app->cfg.metrics_token))
		return 0;
	token_hash(c->bearer, hash);
	if (store_key_user(c->s, hash, &key, &c->user, &err))
		return err_set(&c->err, 401, "unauthorized", "invalid API key or metrics token");
	c->authed = 1;
	snprintf(c->key_id, sizeof(c->key_id), "%s", key.id);
	if (!c->user.is_admin)
		return err_set(&c->err, 403, "forbidden",
			       "the fleet's metrics are for administrators");
	return 0;
}

static const char *const prom_states[] = {"provisioning", "booting", "running",	  "stopping",
					  "stopped",	  "error",   "destroying"};
#define NPROM_STATES (sizeof(prom_states) / sizeof(prom_states[0]))

void prom_collect(struct api_ctx *c)
{
	struct metrics_prom_state states[NPROM_STATES];
	struct metrics_prom_desktop *ds;
	struct metrics_sample *samples;
	struct desktop *list;
	struct buf out = BUF_INIT;
	size_t n;

	if (prom_authorize(c) || store_desktop_list_live(c->s, &list, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	ds = xcalloc(n + 1, sizeof(*ds));
	samples = xcalloc(n + 1, sizeof(*samples));
	for (size_t i = 0; i < NPROM_STATES; i++) {
		states[i].state = prom_states[i];
		states[i].count = 0;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < NPROM_STATES; k++)
			states[k].count += !strcmp(list[i].state, prom_states[k]);
		ds[i].id = list[i].id;
		ds[i].workspace = list[i].workspace_id;
		ds[i].tier = list[i].tier;
		ds[i].name = list[i].name;
		if (!strcmp(list[i].state, "running") &&
		    metrics_latest(list[i].id, &samples[i]) == 0)
			ds[i].s = &samples[i];
	}
	metrics_prom_format(&out, states, NPROM_STATES, ds, n);
	free(ds);
	free(samples);
	free(list);
	c->data = buf_detach(&out, NULL);
}

void prom_respond(struct api_ctx *c)
{
	char *text = c->data;

	c->data = NULL;
	http_respond(c->req, 200, PROM_CONTENT_TYPE, text, strlen(text),
		     "Cache-Control: no-store\r\n");
	free(text);
	api_ctx_free(c);
}
