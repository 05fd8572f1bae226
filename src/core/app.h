/* The one context bureaud's parts share, owned by main() and living as
 * long as the process. Everything here is used on the loop thread only,
 * except `pool` and `cfg`, which worker threads use too. */
#ifndef BUREAU_APP_H
#define BUREAU_APP_H

#include <uv.h>

#include "core/config.h"

struct store;
struct store_pool;
struct vm_driver;
struct http_server;
struct bus;
struct core;

struct app {
	uv_loop_t *loop;
	struct config cfg;
	struct store_pool *pool;
	struct vm_driver *driver;
	struct http_server *http;
	struct bus *bus;
	struct core *core;
	char accel[8];
	int shutting_down;
};

typedef void (*job_work_fn)(struct store *s, void *arg);
typedef void (*job_done_fn)(void *arg);

/* Runs work(store, arg) on a worker thread with a store connection, then
 * done(arg) on the loop thread. Blocking work (SQL, password hashing)
 * goes through here, never on the loop. */
void job_submit(struct app *app, job_work_fn work, job_done_fn done, void *arg);

#endif
