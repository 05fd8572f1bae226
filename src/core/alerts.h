/* Alerts: per-workspace rules (defaults from the seeds: a desktop in error,
 * an agent error, CPU over 90 % for 5 minutes, memory over 95 %, disk over
 * 90 %, a burst of refused requests), evaluated on the loop thread as
 * samples, state changes and answers arrive. A condition raises one alert
 * per episode: it must hold for the rule's duration to raise, and must
 * clear (below the threshold minus a hysteresis margin, for as long) before
 * it can raise again; the store refuses a second open alert of the same
 * episode too, so a restart of bureaud does not raise it twice.
 *
 * Alerts are stored, published on the event bus ("alert.raised",
 * "alert.resolved", "alert.acknowledged") and POSTed to the workspace's
 * webhook, signed with HMAC-SHA256 (X-Bureau-Signature: sha256=<hex>),
 * retried with exponential backoff, from libuv's thread pool. */
#ifndef BUREAU_ALERTS_H
#define BUREAU_ALERTS_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define ALERT_SIG_LEN (7 + 64 + 1) /* "sha256=" + hex + NUL */
#define ALERT_DELIVERY_ATTEMPTS 5
#define ALERT_BACKOFF_BASE_MS 1000 /* 1 s, 2 s, 4 s, 8 s between attempts */
#define ALERT_BURST_MAX 1000	   /* the largest refused-burst count */
#define ALERT_DURATION_MAX (24 * 3600)

struct app;
struct metrics_sample;

enum alert_kind {
	ALERT_DESKTOP_ERROR,
	ALERT_AGENT_ERROR,
	ALERT_CPU,
	ALERT_MEMORY,
	ALERT_DISK,
	ALERT_REFUSED_BURST,
	ALERT__COUNT
};

/* threshold: percent (cpu, memory, disk) or a count (refusedBurst);
 * seconds: how long the condition must hold, or the burst's window. */
struct alert_rule {
	int enabled;
	double threshold;
	int seconds;
};
struct alert_rules {
	struct alert_rule r[ALERT__COUNT];
};

const char *alert_kind_name(enum alert_kind k);
void alert_rules_default(struct alert_rules *rules);
/* Merges a partial rules object ({"cpu":{"thresholdPercent":50}}) into
 * rules. Unknown kinds or fields, wrong types and values out of range fill
 * err (400) and leave rules unchanged. */
int alert_rules_apply(struct alert_rules *rules, json_t *body, struct err *err);
json_t *alert_rules_json(const struct alert_rules *rules);

/* One condition's episode. */
struct alert_track {
	int raised;
	int64_t over_since;  /* when the condition started holding; 0: not */
	int64_t clear_since; /* when it started being clear while raised */
};
enum alert_step { ALERT_STEP_NONE, ALERT_STEP_RAISE, ALERT_STEP_RESOLVE };
/* Feeds one observation at now: `over` (the condition holds) or `clear`
 * (it is well below, past the hysteresis margin; both may be false in
 * between). Raises once `over` held for hold_ms, resolves once `clear`
 * held for clear_ms. */
enum alert_step alert_track_update(struct alert_track *t, int over, int clear, int64_t now,
				   int64_t hold_ms, int64_t clear_ms);
/* The level below which a percent condition counts as clear. */
double alert_clear_level(double threshold);

/* Counts events in a sliding window (refused requests). */
struct alert_burst {
	int64_t at[ALERT_BURST_MAX];
	int head, count;
};
void alert_burst_add(struct alert_burst *b, int64_t now);
/* How many of the remembered events are newer than now - window_ms. */
int alert_burst_count(const struct alert_burst *b, int64_t now, int64_t window_ms);

/* "sha256=" + lower-case hex HMAC-SHA256 of body keyed with secret. */
void alert_signature(const char *secret, const void *body, size_t len, char out[ALERT_SIG_LEN]);

/* An alert as the API and the webhook show it. */
json_t *alert_json(const struct alert *a);

/* The engine, on the loop thread. */
void alerts_init(struct app *app);
void alerts_on_sample(struct app *app, const struct desktop *d, const struct metrics_sample *s);
void alerts_on_agent_error(struct app *app, const struct desktop *d, const char *message);
/* An API answer: 4xx answers count towards the refused burst of ws. */
void alerts_note_answer(struct app *app, const char *workspace_id, int status);
/* New rules were stored for a workspace. */
void alerts_rules_changed(struct app *app, const char *workspace_id,
			  const struct alert_rules *rules);
/* POSTs {"event":event,"eventId":…,"alert":…} to the webhook (may be NULL:
 * nothing to do). track: record the delivery's outcome on the alert. */
void alerts_deliver(struct app *app, const struct webhook *w, const char *event, int64_t event_id,
		    const struct alert *a, int track);

/* On a worker: stores an event of type ("alert.acknowledged", …) for a,
 * filling ev for core_publish. name: the desktop's name, or NULL. */
int alerts_store_event(struct store *s, const struct alert *a, const char *type, const char *name,
		       struct event *ev, struct err *err);
/* On a worker: the workspace's rules (defaults when none are stored). */
int alerts_rules_load(struct store *s, const char *workspace_id, struct alert_rules *rules,
		      struct err *err);

#endif
