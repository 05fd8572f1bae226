/* The desktop state machine, the reconciler's decisions, the API's
 * conflict checks, and the configuration parser. */
#include "core/config.h"
#include "core/state.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_transitions(void)
{
	ok(state_can_transition("provisioning", "booting"), "provisioning → booting");
	ok(state_can_transition("booting", "running"), "booting → running");
	ok(state_can_transition("running", "stopping"), "running → stopping");
	ok(state_can_transition("stopping", "stopped"), "stopping → stopped");
	ok(state_can_transition("stopped", "booting"), "stopped → booting");
	ok(state_can_transition("running", "error"), "running → error");
	ok(state_can_transition("stopped", "destroying"), "stopped → destroying");
	ok(state_can_transition("destroying", "destroyed"), "destroying → destroyed");
	ok(!state_can_transition("stopped", "running"), "stopped ↛ running (must boot)");
	ok(!state_can_transition("destroyed", "booting"), "destroyed is final");
	ok(!state_can_transition("destroyed", "error"), "destroyed ↛ error");
	ok(!state_can_transition("error", "error"), "error ↛ error");
	ok(!state_can_transition("running", "bogus"), "unknown state refused");
	ok(!state_is_valid("Running"), "states are case-sensitive");
}

static void test_decide(void)
{
	ok(state_decide("provisioning", "running", 0, 0) == ACT_BOOT, "new desktop boots");
	ok(state_decide("booting", "running", 1, 0) == ACT_NONE, "booting VM: wait for ready");
	ok(state_decide("running", "running", 1, 0) == ACT_NONE, "running VM: nothing to do");
	ok(state_decide("running", "running", 0, 0) == ACT_BOOT,
	   "running without VM (host reboot): boot");
	ok(state_decide("error", "running", 0, 0) == ACT_NONE, "error waits for the user");
	ok(state_decide("running", "stopped", 1, 0) == ACT_STOP, "stop asked: stop the VM");
	ok(state_decide("stopping", "stopped", 0, 0) == ACT_MARK_STOPPED,
	   "VM gone while stopping: stopped");
	ok(state_decide("stopped", "stopped", 0, 0) == ACT_NONE, "stopped stays");
	ok(state_decide("stopped", "running", 0, 0) == ACT_BOOT, "start asked: boot");
	ok(state_decide("running", "running", 1, 1) == ACT_STOP, "restart first stops");
	ok(state_decide("stopped", "running", 0, 1) == ACT_BOOT, "restart then boots");
	ok(state_decide("running", "destroyed", 1, 0) == ACT_DESTROY, "destroy a running one");
	ok(state_decide("destroyed", "destroyed", 0, 0) == ACT_NONE, "destroyed: nothing");
	ok(state_decide("stopped", "stopped", 1, 0) == ACT_STOP, "stray VM of a stopped desktop");
}

static void test_checks(void)
{
	struct err err;

	ok(state_check_start("running", "running", &err) && err.status == 409,
	   "start of a running desktop: 409");
	ok(state_check_start("stopped", "stopped", &err) == 0, "start of a stopped desktop");
	ok(state_check_start("error", "running", &err) == 0, "start of a desktop in error");
	ok(state_check_stop("stopped", "stopped", &err) && err.status == 409,
	   "stop of a stopped desktop: 409");
	ok(state_check_stop("booting", "running", &err) == 0, "stop while booting");
	ok(state_check_restart("stopped", "stopped", &err) && err.status == 409,
	   "restart of a stopped desktop: 409");
	ok(state_check_restart("running", "running", &err) == 0, "restart of a running one");
	ok(state_check_destroy("destroying", "destroyed", &err) && err.status == 409,
	   "destroy twice: 409");
	ok(state_check_destroy("error", "running", &err) == 0, "destroy from error");
}

static void test_tiers(void)
{
	const struct tier *t = tier_find("pro");

	ok(t && t->vcpus == 4 && t->memory_mb == 8192 && t->disk_gb == 40, "pro is 4/8/40");
	t = tier_find("max");
	ok(t && t->vcpus == 4 && t->memory_mb == 16384 && t->disk_gb == 80, "max is 4/16/80");
	t = tier_find("free");
	ok(t && t->vcpus == 2 && t->memory_mb == 4096 && t->disk_gb == 20, "free is 2/4/20");
	ok(!tier_find("gold"), "unknown tier");
}

static void test_config(void)
{
	struct config cfg;
	struct err err;
	char *argv1[] = {"bureaud", "--state-dir", "/tmp/x", "--plan-limit", "7", NULL};
	char *argv2[] = {"bureaud", "--bogus", "1", NULL};
	char *argv3[] = {"bureaud", "--plan-limit", "many", NULL};
	char *argv4[] = {"bureaud", "--accel", "hvf", NULL};
	char *argv5[] = {"bureaud", "--config", "/nonexistent/bureau.conf", NULL};
	char path[] = "/tmp/bureau-test-conf-XXXXXX";
	char *argv6[] = {"bureaud", "--config", path, "--listen", "127.0.0.1:9", NULL};
	FILE *f;
	int fd;

	ok(config_load(&cfg, 5, argv1, &err) == 0 && cfg.plan_limit == 7 &&
	   !strcmp(cfg.state_dir, "/tmp/x") && !strcmp(cfg.image_dir, "/tmp/x/images") &&
	   !strcmp(cfg.store, "sqlite:/tmp/x/bureau.db") && !strcmp(cfg.listen, "127.0.0.1:8080"),
	   "flags and derived defaults");
	ok(config_load(&cfg, 3, argv2, &err) == -1 && strstr(err.msg, "unknown option"),
	   "unknown flag refused");
	ok(config_load(&cfg, 3, argv3, &err) == -1, "non-numeric number refused");
	ok(config_load(&cfg, 3, argv4, &err) == -1, "unknown accelerator refused");
	ok(config_load(&cfg, 3, argv5, &err) == -1, "missing config file refused");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "# comment\nlisten = 127.0.0.1:1234\nprice-pro = 0.5\nstate-dir=/tmp/y\n");
	fclose(f);
	ok(config_load(&cfg, 5, argv6, &err) == 0 && !strcmp(cfg.listen, "127.0.0.1:9") &&
	   cfg.price_pro == 0.5 && !strcmp(cfg.state_dir, "/tmp/y"),
	   "config file, overridden by flags");
	f = fopen(path, "w");
	fprintf(f, "nonsense line\n");
	fclose(f);
	ok(config_load(&cfg, 5, argv6, &err) == -1 && strstr(err.msg, ":1:"),
	   "bad config line reported with its number");
	remove(path);
}

/* Issue 5: snapshots only of settled desktops, the stop's mode, quotas. */
static void test_instant(void)
{
	struct err err = ERR_INIT;
	const struct tier *f = tier_find("free"), *m = tier_find("max");

	ok(state_check_snapshot("running", "running", &err) == 0, "a running desktop may be snapshotted");
	ok(state_check_snapshot("stopped", "stopped", &err) == 0, "so may a stopped one");
	ok(state_check_snapshot("booting", "running", &err) == -1 && err.status == 409,
	   "a booting desktop may not (409)");
	ok(state_check_snapshot("running", "stopped", &err) == -1 && strstr(err.msg, "stopped"),
	   "nor one on its way to stopped, and the message says so");
	ok(state_check_snapshot("stopped", "running", &err) == -1, "nor one starting");
	ok(state_check_stop_mode(NULL, &err) == 0, "no stop mode: the default (hibernate)");
	ok(state_check_stop_mode("hibernate", &err) == 0 && state_check_stop_mode("shutdown", &err) == 0,
	   "hibernate and shutdown are stop modes");
	ok(state_check_stop_mode("Shutdown", &err) == -1 && err.status == 400,
	   "stop modes are case-sensitive (400)");
	ok(state_check_stop_mode("", &err) == -1, "an empty stop mode is refused");
	{
		struct config cfg;
		char *bad1[] = {"bureaud", "--templates", "maybe", NULL};
		char *bad2[] = {"bureaud", "--hibernate-compress", "xz", NULL};
		char *good[] = {"bureaud", "--hibernate-compress", "zstd", NULL};
		ok(config_load(&cfg, 3, bad1, &err) == -1, "templates is on or off");
		ok(config_load(&cfg, 3, bad2, &err) == -1, "hibernate-compress is none or zstd");
		ok(config_load(&cfg, 3, good, &err) == 0 && !strcmp(cfg.templates, "on") &&
		       !strcmp(cfg.free_page_reporting, "on"),
		   "zstd is accepted; templates and free page reporting default to on");
	}
	ok(f->snapshots_max > 0 && m->snapshots_max > f->snapshots_max &&
	   m->snapshots_gb > f->snapshots_gb,
	   "every tier has a snapshot quota, larger for bigger tiers");
}

int main(void)
{
	test_instant();
	test_transitions();
	test_decide();
	test_checks();
	test_tiers();
	test_config();
	return tap_done();
}
