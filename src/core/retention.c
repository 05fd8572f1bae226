/* Retention: the hourly prune of the logs. See retention.h. */
#include "core/retention.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "core/app.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdlib.h>

#define DAY_MS (24LL * 3600 * 1000)

static struct {
	struct app *app;
	uv_timer_t timer;
	int started;
	int running;	 /* a prune is on a worker: a tick meanwhile skips */
	atomic_int stop; /* read by the worker between batches */
} ret;

struct prune {
	int64_t before; /* rows created earlier go; 0: the logs are kept */
	int64_t now;
	struct store_pruned removed;
	struct err err;
	int failed;
};

static void prune_work(struct store *s, void *arg)
{
	struct prune *p = arg;

	p->failed = store_prune(s, p->before, p->now, STORE_PRUNE_BATCH, &ret.stop, &p->removed,
				&p->err) != 0;
}

static void prune_done(void *arg)
{
	struct prune *p = arg;
	const struct store_pruned *r = &p->removed;

	ret.running = 0;
	if (r->audit || r->events || r->egress || r->sessions)
		log_info("retention removed audit=%lld events=%lld egress=%lld sessions=%lld",
			 (long long)r->audit, (long long)r->events, (long long)r->egress,
			 (long long)r->sessions);
	else
		log_debug("retention removed nothing");
	if (p->failed)
		log_warnx("retention: %s", p->err.msg);
	free(p);
}

static void tick(uv_timer_t *t)
{
	struct prune *p;
	int days = ret.app->cfg.retention_days;

	(void)t;
	if (ret.running || ret.app->shutting_down)
		return;
	p = xcalloc(1, sizeof(*p));
	p->now = now_ms();
	p->before = days > 0 ? p->now - days * DAY_MS : 0;
	ret.running = 1;
	job_submit(ret.app, prune_work, prune_done, p);
}

void retention_start(struct app *app)
{
	ret.app = app;
	atomic_store(&ret.stop, 0);
	uv_timer_init(app->loop, &ret.timer);
	uv_timer_start(&ret.timer, tick, RETENTION_FIRST_MS, RETENTION_EVERY_MS);
	/* The timer alone does not keep a stopping bureaud up. */
	uv_unref((uv_handle_t *)&ret.timer);
	ret.started = 1;
}

void retention_stop(void)
{
	if (!ret.started)
		return;
	ret.started = 0;
	atomic_store(&ret.stop, 1);
	uv_close((uv_handle_t *)&ret.timer, NULL);
}
