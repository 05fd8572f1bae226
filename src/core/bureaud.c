/* bureaud: the control plane. One process, one libuv loop: the REST API,
 * the event stream, the reconciler and the VM driver. Blocking work
 * (SQLite, password hashing) runs on libuv's worker threads. */
#include "api/api.h"
#include "common/log.h"
#include "common/util.h"
#include "core/app.h"
#include "core/bus.h"
#include "core/core.h"
#include "core/image_gc.h"
#include "core/retention.h"
#include "store/store.h"
#include "vm/driver.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_POOL_SIZE 4

static struct app app;
static uv_signal_t sigterm, sigint;

static void shutdown_done(void *arg)
{
	(void)arg;
	app.http = NULL;
	log_info("http server closed");
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	if (app.shutting_down)
		return;
	log_info("signal %d: shutting down (desktops keep running)", signum);
	core_shutdown(&app);
	retention_stop();
	image_gc_stop(&app);
	if (app.http)
		http_server_shutdown(app.http, shutdown_done, NULL);
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	/* Drops QMP and agent connections; the VMs keep running. */
	vm_driver_free(app.driver);
	app.driver = NULL;
}

static void probed(const char *accel, void *arg)
{
	(void)arg;
	snprintf(app.accel, sizeof(app.accel), "%s", accel);
	log_info("accelerator: %s", accel);
	if (app.shutting_down)
		return;
	core_start(&app);
	image_gc_start(&app);
}

static int open_store(struct err *err)
{
	struct store *s;
	int r;

	app.pool = store_pool_open(app.cfg.store, STORE_POOL_SIZE, err);
	if (!app.pool)
		return -1;
	s = store_pool_acquire(app.pool);
	r = api_bootstrap(s, &app.cfg, err);
	store_pool_release(app.pool, s);
	return r;
}

static int open_driver(struct err *err)
{
	struct vm_driver_config dc = {
		.state_dir = app.cfg.state_dir,
		.image_dir = app.cfg.image_dir,
		.accel = app.cfg.accel,
		.qemu_binary = NULL,
		.stop_timeout_ms = app.cfg.stop_timeout_s * 1000,
	};
	char dir[1100];

	snprintf(dir, sizeof(dir), "%s/desktops", app.cfg.state_dir);
	if (mkdir_p(dir, err))
		return -1;
	return vm_driver_new(app.loop, &dc, &app.driver, err);
}

int main(int argc, char **argv)
{
	struct err err = ERR_INIT;
	int r;

	log_set_name("bureaud");
	r = config_load(&app.cfg, argc, argv, &err);
	if (r == 1)
		return 0;
	if (r) {
		fprintf(stderr, "bureaud: %s\n", err.msg);
		return 2;
	}
	if (app.cfg.print_routes) {
		api_print_routes();
		return 0;
	}
	if (!strcmp(app.cfg.log_level, "debug"))
		log_set_level(LOG_LEVEL_DEBUG);
	else if (!strcmp(app.cfg.log_level, "warn"))
		log_set_level(LOG_LEVEL_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		fatalx("libsodium failed to initialise");
	app.loop = uv_default_loop();
	app.bus = bus_new();
	if (mkdir_p(app.cfg.state_dir, &err) || open_store(&err) || open_driver(&err))
		fatalx("%s", err.msg);
	core_new(&app);
	api_init(&app);
	if (http_server_listen(app.http, app.cfg.listen, &err))
		fatalx("listen on %s: %s", app.cfg.listen, err.msg);
	log_info("listening on %s state=%s images=%s", app.cfg.listen, app.cfg.state_dir,
		 app.cfg.image_dir);
	retention_start(&app);
	uv_signal_init(app.loop, &sigterm);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_init(app.loop, &sigint);
	uv_signal_start(&sigint, on_signal, SIGINT);
	vm_driver_probe(app.driver, probed, NULL);
	uv_run(app.loop, UV_RUN_DEFAULT);
	store_pool_close(app.pool);
	bus_free(app.bus);
	log_info("stopped");
	return 0;
}
