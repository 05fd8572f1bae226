#include "core/app.h"
#include "common/xalloc.h"
#include "store/store.h"

#include <stdlib.h>

struct job {
	uv_work_t work;
	struct app *app;
	job_work_fn fn;
	job_done_fn done;
	void *arg;
};

static void job_run(uv_work_t *w)
{
	struct job *j = w->data;
	struct store *s = store_pool_acquire(j->app->pool);

	j->fn(s, j->arg);
	store_pool_release(j->app->pool, s);
}

static void job_after(uv_work_t *w, int status)
{
	struct job *j = w->data;

	(void)status;
	if (j->done)
		j->done(j->arg);
	free(j);
}

void job_submit(struct app *app, job_work_fn work, job_done_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->app = app;
	j->fn = work;
	j->done = done;
	j->arg = arg;
	j->work.data = j;
	uv_queue_work(app->loop, &j->work, job_run, job_after);
}
