/* Alerts: rules, episodes, the engine on the loop, storage and webhook
 * delivery. See alerts.h. */
#include "core/alerts.h"
#include "core/app.h"
#include "core/bus.h"
#include "core/core.h"
#include "core/metrics.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERT_HYSTERESIS_PCT 5.0   /* points below the threshold that count as clear */
#define ALERT_SWEEP_MS 5000	   /* how often quiet bursts are looked at */
#define ALERT_BACKOFF_MAX_MS 60000 /* the longest wait between attempts */
#define ALERT_HTTP_TIMEOUT_MS 5000
#define ALERT_HTTP_CONNECT_MS 3000
#define ALERT_AGENT_MSG_MAX 160 /* characters of an agent's error kept */

/* Rules */

/* What a kind's rule holds, its JSON names, ranges and defaults. */
struct rule_spec {
	const char *name;
	const char *threshold_key; /* NULL: the rule has no threshold */
	double threshold_min, threshold_max, threshold_def;
	int threshold_integer;	 /* a count, not a percent */
	const char *seconds_key; /* NULL: no duration */
	int seconds_min, seconds_def;
};

static const struct rule_spec specs[ALERT__COUNT] = {
    [ALERT_DESKTOP_ERROR] = {"desktopError", NULL, 0, 0, 0, 0, NULL, 0, 0},
    [ALERT_AGENT_ERROR] = {"agentError", NULL, 0, 0, 0, 0, NULL, 0, 0},
    [ALERT_CPU] = {"cpu", "thresholdPercent", 1, 100, 90, 0, "forSeconds", 0, 300},
    [ALERT_MEMORY] = {"memory", "thresholdPercent", 1, 100, 95, 0, "forSeconds", 0, 60},
    [ALERT_DISK] = {"disk", "thresholdPercent", 1, 100, 90, 0, "forSeconds", 0, 0},
    [ALERT_REFUSED_BURST] = {"refusedBurst", "count", 1, ALERT_BURST_MAX, 20, 1, "windowSeconds", 1,
			     60},
};

const char *alert_kind_name(enum alert_kind k)
{
	return k < ALERT__COUNT ? specs[k].name : "?";
}

static int kind_find(const char *name)
{
	for (int k = 0; k < ALERT__COUNT; k++)
		if (!strcmp(specs[k].name, name))
			return k;
	return -1;
}

void alert_rules_default(struct alert_rules *rules)
{
	for (int k = 0; k < ALERT__COUNT; k++) {
		rules->r[k].enabled = 1;
		rules->r[k].threshold = specs[k].threshold_def;
		rules->r[k].seconds = specs[k].seconds_def;
	}
}

/* One kind's object: {"enabled"?, threshold?, seconds?}. */
static int rule_apply(const struct rule_spec *sp, struct alert_rule *r, json_t *o, struct err *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return err_set(err, 400, "invalid_type", "%s must be an object", sp->name);
	json_object_foreach (o, key, v) {
		if (!strcmp(key, "enabled")) {
			if (!json_is_boolean(v))
				return err_set(err, 400, "invalid_type",
					       "%s.enabled must be a boolean", sp->name);
			r->enabled = json_is_true(v);
		} else if (sp->threshold_key && !strcmp(key, sp->threshold_key)) {
			if (sp->threshold_integer ? !json_is_integer(v) : !json_is_number(v))
				return err_set(err, 400, "invalid_type", "%s.%s must be a %s",
					       sp->name, key,
					       sp->threshold_integer ? "whole number" : "number");
			if (json_number_value(v) < sp->threshold_min ||
			    json_number_value(v) > sp->threshold_max)
				return err_set(err, 400, "invalid_request", "%s.%s must be %g..%g",
					       sp->name, key, sp->threshold_min, sp->threshold_max);
			r->threshold = json_number_value(v);
		} else if (sp->seconds_key && !strcmp(key, sp->seconds_key)) {
			if (!json_is_integer(v) || json_integer_value(v) < sp->seconds_min ||
			    json_integer_value(v) > ALERT_DURATION_MAX)
				return err_set(err, 400, "invalid_request",
					       "%s.%s must be a whole number %d..%d", sp->name, key,
					       sp->seconds_min, ALERT_DURATION_MAX);
			r->seconds = (int)json_integer_value(v);
		} else {
			return err_set(err, 400, "unknown_field", "unknown field \"%s.%.64s\"",
				       sp->name, key);
		}
	}
	return 0;
}

int alert_rules_apply(struct alert_rules *rules, json_t *body, struct err *err)
{
	struct alert_rules next = *rules;
	const char *key;
	json_t *v;

	if (!json_is_object(body))
		return err_set(err, 400, "invalid_type", "the rules must be an object");
	json_object_foreach (body, key, v) {
		int k = kind_find(key);

		if (k < 0)
			return err_set(err, 400, "unknown_field", "unknown alert rule \"%.64s\"",
				       key);
		if (rule_apply(&specs[k], &next.r[k], v, err))
			return -1;
	}
	*rules = next;
	return 0;
}

json_t *alert_rules_json(const struct alert_rules *rules)
{
	json_t *out = json_object();

	for (int k = 0; k < ALERT__COUNT; k++) {
		const struct rule_spec *sp = &specs[k];
		json_t *o = json_pack("{s:b}", "enabled", rules->r[k].enabled);

		if (sp->threshold_key)
			json_object_set_new(o, sp->threshold_key,
					    sp->threshold_integer
						? json_integer((json_int_t)rules->r[k].threshold)
						: json_real(rules->r[k].threshold));
		if (sp->seconds_key)
			json_object_set_new(o, sp->seconds_key, json_integer(rules->r[k].seconds));
		json_object_set_new(out, sp->name, o);
	}
	return out;
}

int alerts_rules_load(struct store *s, const char *workspace_id, struct alert_rules *rules,
		      struct err *err)
{
	struct err e = ERR_INIT;
	char *text;
	json_t *j;
	int r;

	alert_rules_default(rules);
	if (store_alert_rules_get(s, workspace_id, &text, &e))
		return e.status == 404 ? 0 : (*err = e, -1);
	j = json_loads(text, 0, NULL);
	free(text);
	r = alert_rules_apply(rules, j, err);
	json_decref(j);
	return r;
}

/* Episodes */

enum alert_step alert_track_update(struct alert_track *t, int over, int clear, int64_t now,
				   int64_t hold_ms, int64_t clear_ms)
{
	if (!t->raised) {
		if (!over) {
			t->over_since = 0;
			return ALERT_STEP_NONE;
		}
		if (!t->over_since)
			t->over_since = now;
		if (now - t->over_since < hold_ms)
			return ALERT_STEP_NONE;
		t->raised = 1;
		t->clear_since = 0;
		return ALERT_STEP_RAISE;
	}
	if (!clear) {
		t->clear_since = 0;
		return ALERT_STEP_NONE;
	}
	if (!t->clear_since)
		t->clear_since = now;
	if (now - t->clear_since < clear_ms)
		return ALERT_STEP_NONE;
	t->raised = 0;
	t->over_since = 0;
	return ALERT_STEP_RESOLVE;
}

double alert_clear_level(double threshold)
{
	return threshold > 2 * ALERT_HYSTERESIS_PCT ? threshold - ALERT_HYSTERESIS_PCT
						    : threshold / 2;
}

void alert_burst_add(struct alert_burst *b, int64_t now)
{
	b->at[b->head] = now;
	b->head = (b->head + 1) % ALERT_BURST_MAX;
	if (b->count < ALERT_BURST_MAX)
		b->count++;
}

int alert_burst_count(const struct alert_burst *b, int64_t now, int64_t window_ms)
{
	int n = 0;

	for (int i = 0; i < b->count; i++)
		if (b->at[(b->head + ALERT_BURST_MAX - 1 - i) % ALERT_BURST_MAX] > now - window_ms)
			n++;
	return n;
}

void alert_signature(const char *secret, const void *body, size_t len, char out[ALERT_SIG_LEN])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(out, "sha256=", 7);
	sodium_bin2hex(out + 7, ALERT_SIG_LEN - 7, mac, sizeof(mac));
	sodium_memzero(&st, sizeof(st));
}

static json_t *time_or_null(int64_t ms)
{
	char t[32];

	if (!ms)
		return json_null();
	time_iso(ms, t);
	return json_string(t);
}

json_t *alert_json(const struct alert *a)
{
	char created[32];

	time_iso(a->created_at, created);
	return json_pack(
	    "{s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:{s:s, s:i}}", "id",
	    a->id, "workspaceId", a->workspace_id, "desktopId",
	    *a->desktop_id ? json_string(a->desktop_id) : json_null(), "kind", a->kind, "message",
	    a->message, "value",
	    a->has_value ? json_real(round(a->value * 100) / 100) : json_null(), "threshold",
	    a->has_value ? json_real(a->threshold) : json_null(), "state",
	    a->acknowledged_at ? "acknowledged" : "open", "createdAt", created, "resolvedAt",
	    time_or_null(a->resolved_at), "acknowledgedAt", time_or_null(a->acknowledged_at),
	    "acknowledgedBy", *a->acknowledged_by ? json_string(a->acknowledged_by) : json_null(),
	    "delivery", "state", a->delivery, "attempts", a->delivery_attempts);
}

/* The engine's state, on the loop thread. */

struct ws_state {
	char id[ID_MAX];
	int ready;   /* rules loaded */
	int loading; /* a load is in flight */
	struct alert_rules rules;
	struct alert_burst burst;
	struct alert_track burst_track;
	struct ws_state *next;
};

/* cpu, memory, disk of one desktop */
#define DSK_TRACKS 3
struct dsk_state {
	char id[ID_MAX];
	char workspace_id[ID_MAX];
	struct alert_track t[DSK_TRACKS];
	struct dsk_state *next;
};

static struct {
	struct app *app;
	struct ws_state *ws;
	struct dsk_state *dsk;
	uv_timer_t sweep;
	int started;
} eng;

static struct ws_state *ws_get(const char *id)
{
	struct ws_state *w;

	for (w = eng.ws; w; w = w->next)
		if (!strcmp(w->id, id))
			return w;
	w = xcalloc(1, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", id);
	alert_rules_default(&w->rules);
	w->next = eng.ws;
	eng.ws = w;
	return w;
}

static struct dsk_state *dsk_get(const char *id, const char *workspace_id)
{
	struct dsk_state *d;

	for (d = eng.dsk; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	d = xcalloc(1, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->workspace_id, sizeof(d->workspace_id), "%s", workspace_id);
	d->next = eng.dsk;
	eng.dsk = d;
	return d;
}

static void dsk_reset(const char *id)
{
	for (struct dsk_state *d = eng.dsk; d; d = d->next)
		if (!strcmp(d->id, id))
			memset(d->t, 0, sizeof(d->t));
}

static void dsk_forget(const char *id)
{
	for (struct dsk_state **pp = &eng.dsk; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id)) {
			struct dsk_state *d = *pp;
			*pp = d->next;
			free(d);
			return;
		}
}

/* Rules, loaded once per workspace */

struct rules_load {
	struct ws_state *w;
	struct alert_rules rules;
	struct err err;
	int failed;
};

static void rules_load_work(struct store *s, void *arg)
{
	struct rules_load *l = arg;

	l->failed = alerts_rules_load(s, l->w->id, &l->rules, &l->err) != 0;
}

static void rules_load_done(void *arg)
{
	struct rules_load *l = arg;

	l->w->loading = 0;
	if (l->failed)
		log_warnx("workspace=%s alert rules unreadable, defaults apply: %s", l->w->id,
			  l->err.msg);
	else if (!l->w->ready)
		l->w->rules = l->rules;
	l->w->ready = 1;
	free(l);
}

/* The workspace's rules, or NULL while they are being loaded. */
static const struct alert_rules *rules_of(const char *workspace_id)
{
	struct ws_state *w = ws_get(workspace_id);
	struct rules_load *l;

	if (w->ready)
		return &w->rules;
	if (!w->loading) {
		w->loading = 1;
		l = xcalloc(1, sizeof(*l));
		l->w = w;
		job_submit(eng.app, rules_load_work, rules_load_done, l);
	}
	return NULL;
}

void alerts_rules_changed(struct app *app, const char *workspace_id,
			  const struct alert_rules *rules)
{
	struct ws_state *w = ws_get(workspace_id);

	w->rules = *rules;
	w->ready = 1;
}

/* Raising and resolving, stored on a worker */

struct raise {
	struct app *app;
	struct alert a;
	char name[64];
	int check_enabled; /* look the rule up in the store (event kinds) */
	struct event ev;
	struct webhook w;
	int have_webhook;
	int raised;
	struct err err;
};

static int kind_enabled(struct store *s, const struct alert *a, struct err *err)
{
	struct alert_rules rules;
	int k = kind_find(a->kind);

	if (k < 0 || alerts_rules_load(s, a->workspace_id, &rules, err))
		return 0;
	return rules.r[k].enabled;
}

static json_t *alert_event_data(const struct alert *a, const char *name)
{
	json_t *data =
	    json_pack("{s:s, s:s, s:s}", "alertId", a->id, "kind", a->kind, "message", a->message);

	if (a->has_value) {
		json_object_set_new(data, "value", json_real(round(a->value * 100) / 100));
		json_object_set_new(data, "threshold", json_real(a->threshold));
	}
	if (name && *name)
		json_object_set_new(data, "name", json_string(name));
	return data;
}

int alerts_store_event(struct store *s, const struct alert *a, const char *type, const char *name,
		       struct event *ev, struct err *err)
{
	return core_event_append(s, a->workspace_id, a->desktop_id, type, alert_event_data(a, name),
				 ev, err);
}

static void raise_work(struct store *s, void *arg)
{
	struct raise *r = arg;
	struct err e = ERR_INIT;

	if (r->check_enabled && !kind_enabled(s, &r->a, &r->err))
		return;
	r->have_webhook = store_webhook_get(s, r->a.workspace_id, &r->w, &e) == 0;
	snprintf(r->a.delivery, sizeof(r->a.delivery), "%s", r->have_webhook ? "pending" : "none");
	if (store_begin(s, &r->err))
		return;
	if (store_alert_insert(s, &r->a, &r->err) ||
	    alerts_store_event(s, &r->a, "alert.raised", r->name, &r->ev, &r->err) ||
	    store_commit(s, &r->err)) {
		store_rollback(s);
		return;
	}
	r->raised = 1;
}

static void raise_done(void *arg)
{
	struct raise *r = arg;

	if (r->raised) {
		log_info("alert=%s kind=%s workspace=%s desktop=%s raised: %s", r->a.id, r->a.kind,
			 r->a.workspace_id, *r->a.desktop_id ? r->a.desktop_id : "-", r->a.message);
		if (r->have_webhook)
			alerts_deliver(r->app, &r->w, "alert.raised", r->ev.id, &r->a, 1);
		core_publish(r->app, &r->ev);
	} else if (r->err.status && r->err.status != 409) {
		log_warnx("alert kind=%s workspace=%s not stored: %s", r->a.kind, r->a.workspace_id,
			  r->err.msg);
	}
	free(r->ev.data);
	sodium_memzero(r->w.secret, sizeof(r->w.secret));
	free(r);
}

static void alert_raise(const char *workspace_id, const struct desktop *d, enum alert_kind k,
			int check_enabled, int has_value, double value, double threshold,
			const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static void alert_raise(const char *workspace_id, const struct desktop *d, enum alert_kind k,
			int check_enabled, int has_value, double value, double threshold,
			const char *fmt, ...)
{
	struct raise *r = xcalloc(1, sizeof(*r));
	va_list ap;

	r->app = eng.app;
	id_new(r->a.id, sizeof(r->a.id), "alr");
	snprintf(r->a.workspace_id, sizeof(r->a.workspace_id), "%s", workspace_id);
	if (d) {
		snprintf(r->a.desktop_id, sizeof(r->a.desktop_id), "%s", d->id);
		snprintf(r->name, sizeof(r->name), "%s", d->name);
	}
	snprintf(r->a.kind, sizeof(r->a.kind), "%s", alert_kind_name(k));
	va_start(ap, fmt);
	vsnprintf(r->a.message, sizeof(r->a.message), fmt, ap);
	va_end(ap);
	r->a.has_value = has_value;
	r->a.value = value;
	r->a.threshold = threshold;
	r->a.created_at = now_ms();
	r->check_enabled = check_enabled;
	job_submit(eng.app, raise_work, raise_done, r);
}

struct resolve {
	struct app *app;
	char workspace_id[ID_MAX];
	char desktop_id[ID_MAX];
	char name[64];
	unsigned kinds; /* bit per enum alert_kind */
	struct event ev[ALERT__COUNT];
	int nev;
};

static void resolve_work(struct store *s, void *arg)
{
	struct resolve *r = arg;
	struct err err = ERR_INIT;

	for (int k = 0; k < ALERT__COUNT; k++) {
		struct alert a = {0};
		int changed;

		if (!(r->kinds & (1u << k)))
			continue;
		if (store_alert_resolve(s, r->workspace_id, r->desktop_id, alert_kind_name(k),
					now_ms(), &changed, &err)) {
			log_warnx("alert resolve failed: %s", err.msg);
			continue;
		}
		if (!changed)
			continue;
		snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", r->workspace_id);
		snprintf(a.desktop_id, sizeof(a.desktop_id), "%s", r->desktop_id);
		snprintf(a.kind, sizeof(a.kind), "%s", alert_kind_name(k));
		snprintf(a.message, sizeof(a.message), "%s cleared", alert_kind_name(k));
		if (alerts_store_event(s, &a, "alert.resolved", r->name, &r->ev[r->nev], &err) == 0)
			r->nev++;
	}
}

static void resolve_done(void *arg)
{
	struct resolve *r = arg;

	for (int i = 0; i < r->nev; i++)
		core_publish(r->app, &r->ev[i]);
	free(r);
}

static void alert_resolve(const char *workspace_id, const struct desktop *d, const char *desktop_id,
			  unsigned kinds)
{
	struct resolve *r = xcalloc(1, sizeof(*r));

	r->app = eng.app;
	snprintf(r->workspace_id, sizeof(r->workspace_id), "%s", workspace_id);
	snprintf(r->desktop_id, sizeof(r->desktop_id), "%s", d ? d->id : desktop_id);
	if (d)
		snprintf(r->name, sizeof(r->name), "%s", d->name);
	r->kinds = kinds;
	job_submit(eng.app, resolve_work, resolve_done, r);
}

/* Conditions */

struct threshold_kind {
	enum alert_kind kind;
	const char *label;
	double (*value)(const struct metrics_sample *s);
};

static double cpu_value(const struct metrics_sample *s)
{
	return s->cpu_pct;
}

static const struct threshold_kind threshold_kinds[DSK_TRACKS] = {
    {ALERT_CPU, "CPU", cpu_value},
    {ALERT_MEMORY, "memory", metrics_mem_pct},
    {ALERT_DISK, "disk", metrics_disk_pct},
};

void alerts_on_sample(struct app *app, const struct desktop *d, const struct metrics_sample *s)
{
	const struct alert_rules *rules = rules_of(d->workspace_id);
	struct dsk_state *ds = dsk_get(d->id, d->workspace_id);
	int64_t now = mono_ms();

	if (!rules)
		return;
	for (int i = 0; i < DSK_TRACKS; i++) {
		const struct threshold_kind *tk = &threshold_kinds[i];
		const struct alert_rule *rule = &rules->r[tk->kind];
		double v = tk->value(s);
		int64_t hold = (int64_t)rule->seconds * 1000;

		if (!rule->enabled)
			continue;
		switch (alert_track_update(&ds->t[i], v > rule->threshold,
					   v < alert_clear_level(rule->threshold), now, hold,
					   hold)) {
		case ALERT_STEP_RAISE:
			alert_raise(d->workspace_id, d, tk->kind, 0, 1, v, rule->threshold,
				    "%s of %s at %.0f%%, over %.0f%% for %d s", tk->label, d->name,
				    v, rule->threshold, rule->seconds);
			break;
		case ALERT_STEP_RESOLVE:
			alert_resolve(d->workspace_id, d, NULL, 1u << tk->kind);
			break;
		case ALERT_STEP_NONE:
			break;
		}
	}
}

void alerts_on_agent_error(struct app *app, const struct desktop *d, const char *message)
{
	alert_raise(d->workspace_id, d, ALERT_AGENT_ERROR, 1, 0, 0, 0, "agent of %s: %.*s", d->name,
		    ALERT_AGENT_MSG_MAX, message ? message : "error");
}

static void burst_step(struct ws_state *w, int64_t now)
{
	const struct alert_rule *rule = &w->rules.r[ALERT_REFUSED_BURST];
	int64_t window = (int64_t)rule->seconds * 1000;
	int n = alert_burst_count(&w->burst, now, window);

	switch (alert_track_update(&w->burst_track, n >= (int)rule->threshold,
				   n < (int)rule->threshold, now, 0, window)) {
	case ALERT_STEP_RAISE:
		alert_raise(w->id, NULL, ALERT_REFUSED_BURST, 0, 1, n, rule->threshold,
			    "%d refused requests within %d s", n, rule->seconds);
		break;
	case ALERT_STEP_RESOLVE:
		alert_resolve(w->id, NULL, "", 1u << ALERT_REFUSED_BURST);
		break;
	case ALERT_STEP_NONE:
		break;
	}
}

void alerts_note_answer(struct app *app, const char *workspace_id, int status)
{
	const struct alert_rules *rules;
	struct ws_state *w;

	if (!eng.started || status < 400 || status >= 500 || !workspace_id || !*workspace_id)
		return;
	if (!(rules = rules_of(workspace_id)) || !rules->r[ALERT_REFUSED_BURST].enabled)
		return;
	w = ws_get(workspace_id);
	alert_burst_add(&w->burst, mono_ms());
	burst_step(w, mono_ms());
}

/* Bursts end without a request to notice it: look now and then. */
static void sweep(uv_timer_t *t)
{
	for (struct ws_state *w = eng.ws; w; w = w->next)
		if (w->ready && w->burst_track.raised)
			burst_step(w, mono_ms());
}

/* A desktop in error raises; leaving error, stopping or going away ends
 * the episodes of the desktop. */
static void on_event(const struct event *ev, void *arg)
{
	json_t *data;
	const char *state, *reason, *name;
	struct desktop d = {0};

	if (strcmp(ev->type, "desktop.state") || !ev->data)
		return;
	if (!(data = json_loads(ev->data, 0, NULL)))
		return;
	state = json_string_value(json_object_get(data, "state"));
	reason = json_string_value(json_object_get(data, "reason"));
	name = json_string_value(json_object_get(data, "name"));
	snprintf(d.id, sizeof(d.id), "%s", ev->desktop_id);
	snprintf(d.workspace_id, sizeof(d.workspace_id), "%s", ev->workspace_id);
	snprintf(d.name, sizeof(d.name), "%s", name ? name : "");
	if (state && !strcmp(state, "error")) {
		alert_raise(d.workspace_id, &d, ALERT_DESKTOP_ERROR, 1, 0, 0, 0,
			    "%s is in error: %s", d.name, reason ? reason : "unknown reason");
	} else if (state && (!strcmp(state, "stopped") || !strcmp(state, "destroying") ||
			     !strcmp(state, "booting"))) {
		dsk_reset(d.id);
		alert_resolve(d.workspace_id, &d, NULL,
			      1u << ALERT_DESKTOP_ERROR | 1u << ALERT_CPU | 1u << ALERT_MEMORY |
				  1u << ALERT_DISK);
	}
	if (state && !strcmp(state, "destroyed")) {
		metrics_forget(d.id);
		dsk_forget(d.id);
	}
	json_decref(data);
}

void alerts_init(struct app *app)
{
	eng.app = app;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	bus_subscribe(app->bus, on_event, NULL);
	uv_timer_init(app->loop, &eng.sweep);
	uv_timer_start(&eng.sweep, sweep, ALERT_SWEEP_MS, ALERT_SWEEP_MS);
	/* Neither the sweep nor a pending retry keeps a stopping bureaud up. */
	uv_unref((uv_handle_t *)&eng.sweep);
	eng.started = 1;
}

/* Webhook delivery */

struct delivery {
	uv_work_t work;
	uv_timer_t timer; /* the backoff between attempts */
	struct app *app;
	char alert_id[ID_MAX];
	int track;
	char url[2048];
	char secret[128];
	char event[32];
	char *body;
	size_t len;
	int attempts;
	long status; /* of the last attempt; 0: no answer */
	char error[CURL_ERROR_SIZE];
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* One POST, on a worker thread. */
static void delivery_work(uv_work_t *w)
{
	struct delivery *dl = w->data;
	struct curl_slist *h = NULL;
	char line[160], sig[ALERT_SIG_LEN];
	CURL *c = curl_easy_init();
	CURLcode rc;

	dl->status = 0;
	dl->error[0] = '\0';
	if (!c) {
		snprintf(dl->error, sizeof(dl->error), "curl_easy_init failed");
		return;
	}
	alert_signature(dl->secret, dl->body, dl->len, sig);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	snprintf(line, sizeof(line), "X-Bureau-Event: %s", dl->event);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Bureau-Signature: %s", sig);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Bureau-Delivery-Attempt: %d", dl->attempts + 1);
	h = curl_slist_append(h, line);
	curl_easy_setopt(c, CURLOPT_URL, dl->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, dl->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)dl->len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ALERT_HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ALERT_HTTP_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "bureaud-webhook");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, dl->error);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &dl->status);
	else if (!dl->error[0])
		snprintf(dl->error, sizeof(dl->error), "%s", curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	sodium_memzero(sig, sizeof(sig));
}

static void delivery_closed(uv_handle_t *h)
{
	struct delivery *dl = h->data;

	sodium_memzero(dl->secret, sizeof(dl->secret));
	free(dl->body);
	free(dl);
}

struct delivery_record {
	char alert_id[ID_MAX];
	char state[16];
	int attempts;
};

static void record_work(struct store *s, void *arg)
{
	struct delivery_record *r = arg;
	struct err err = ERR_INIT;

	if (store_alert_set_delivery(s, r->alert_id, r->state, r->attempts, &err))
		log_warnx("alert=%s delivery not recorded: %s", r->alert_id, err.msg);
}

static void record_done(void *arg)
{
	free(arg);
}

static void delivery_record(struct delivery *dl, const char *state)
{
	struct delivery_record *r;

	if (!dl->track)
		return;
	r = xcalloc(1, sizeof(*r));
	snprintf(r->alert_id, sizeof(r->alert_id), "%s", dl->alert_id);
	snprintf(r->state, sizeof(r->state), "%s", state);
	r->attempts = dl->attempts;
	job_submit(dl->app, record_work, record_done, r);
}

static void delivery_after(uv_work_t *w, int status);

static void delivery_attempt(struct delivery *dl)
{
	dl->work.data = dl;
	uv_queue_work(dl->app->loop, &dl->work, delivery_work, delivery_after);
}

static void delivery_retry(uv_timer_t *t)
{
	delivery_attempt(t->data);
}

static void delivery_after(uv_work_t *w, int status)
{
	struct delivery *dl = w->data;
	uint64_t wait;

	dl->attempts++;
	if (dl->status >= 200 && dl->status < 300) {
		log_info("alert=%s webhook event=%s delivered status=%ld attempts=%d", dl->alert_id,
			 dl->event, dl->status, dl->attempts);
		delivery_record(dl, "delivered");
		uv_close((uv_handle_t *)&dl->timer, delivery_closed);
		return;
	}
	log_warnx("alert=%s webhook event=%s attempt=%d failed: %s%ld %s", dl->alert_id, dl->event,
		  dl->attempts, dl->status ? "status " : "", dl->status, dl->error);
	if (dl->attempts >= ALERT_DELIVERY_ATTEMPTS || dl->app->shutting_down) {
		delivery_record(dl, "failed");
		uv_close((uv_handle_t *)&dl->timer, delivery_closed);
		return;
	}
	delivery_record(dl, "pending");
	wait = (uint64_t)ALERT_BACKOFF_BASE_MS << (dl->attempts - 1);
	uv_timer_start(&dl->timer, delivery_retry,
		       wait < ALERT_BACKOFF_MAX_MS ? wait : ALERT_BACKOFF_MAX_MS, 0);
}

void alerts_deliver(struct app *app, const struct webhook *w, const char *event, int64_t event_id,
		    const struct alert *a, int track)
{
	struct delivery *dl;
	json_t *body;

	if (!w || !*w->url)
		return;
	dl = xcalloc(1, sizeof(*dl));
	dl->app = app;
	dl->track = track;
	snprintf(dl->alert_id, sizeof(dl->alert_id), "%s", a->id);
	snprintf(dl->url, sizeof(dl->url), "%s", w->url);
	snprintf(dl->secret, sizeof(dl->secret), "%s", w->secret);
	snprintf(dl->event, sizeof(dl->event), "%s", event);
	body = json_pack("{s:s, s:I, s:o}", "event", event, "eventId", (json_int_t)event_id,
			 "alert", alert_json(a));
	dl->body = json_dumps(body, JSON_COMPACT);
	dl->len = strlen(dl->body);
	json_decref(body);
	uv_timer_init(app->loop, &dl->timer);
	dl->timer.data = dl;
	uv_unref((uv_handle_t *)&dl->timer);
	delivery_attempt(dl);
}
