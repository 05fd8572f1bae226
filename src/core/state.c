#include "core/state.h"

#include <string.h>

static const char *const states[] = {"provisioning", "booting", "running", "stopping",
				     "stopped", "error", "destroying", "destroyed"};

/* Edges of the state machine, besides `any → error` and
 * `any live → destroying`. */
static const struct {
	const char *from, *to;
} edges[] = {
	{"provisioning", "booting"}, {"provisioning", "stopped"}, {"booting", "running"},
	{"booting", "stopping"},     {"booting", "stopped"},      {"running", "stopping"},
	{"running", "stopped"},      {"stopping", "stopped"},     {"stopped", "booting"},
	{"error", "booting"},        {"error", "stopped"},        {"destroying", "destroyed"},
};

int state_is_valid(const char *state)
{
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(states[i], state))
			return 1;
	return 0;
}

int state_can_transition(const char *from, const char *to)
{
	if (!state_is_valid(from) || !state_is_valid(to) || !strcmp(from, "destroyed"))
		return 0;
	if (!strcmp(to, "error"))
		return strcmp(from, "error") != 0;
	if (!strcmp(to, "destroying"))
		return strcmp(from, "destroying") != 0;
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		if (!strcmp(edges[i].from, from) && !strcmp(edges[i].to, to))
			return 1;
	return 0;
}

static int is(const char *s, const char *a)
{
	return !strcmp(s, a);
}

enum core_action state_decide(const char *state, const char *desired, int vm_alive, int restart)
{
	if (is(state, "destroyed"))
		return ACT_NONE;
	if (is(desired, "destroyed"))
		return ACT_DESTROY;
	if (is(desired, "running")) {
		if (vm_alive)
			return restart ? ACT_STOP : ACT_NONE;
		/* A VM that died leaves the desktop in error until the user
		 * starts it again; everything else without a VM boots. */
		return is(state, "error") ? ACT_NONE : ACT_BOOT;
	}
	if (vm_alive)
		return ACT_STOP;
	if (is(state, "stopped") || is(state, "error"))
		return ACT_NONE;
	return ACT_MARK_STOPPED;
}

int state_check_start(const char *state, const char *desired, struct err *err)
{
	if (is(state, "stopped") || is(state, "error"))
		return 0;
	if (is(state, "stopping"))
		return err_set(err, 409, "conflict", "desktop is stopping; start it once stopped");
	if (is(state, "destroying"))
		return err_set(err, 409, "conflict", "desktop is being destroyed");
	return err_set(err, 409, "conflict", "desktop is already %s", state);
}

int state_check_stop(const char *state, const char *desired, struct err *err)
{
	if (is(state, "destroying"))
		return err_set(err, 409, "conflict", "desktop is being destroyed");
	if (is(state, "stopped") || is(state, "stopping") || is(desired, "stopped"))
		return err_set(err, 409, "conflict", "desktop is already %s",
			       is(state, "stopping") ? "stopping" : "stopped");
	return 0;
}

int state_check_restart(const char *state, const char *desired, struct err *err)
{
	if (is(state, "running") && is(desired, "running"))
		return 0;
	return err_set(err, 409, "conflict", "only a running desktop can be restarted (it is %s)",
		       state);
}

int state_check_destroy(const char *state, const char *desired, struct err *err)
{
	if (is(state, "destroying") || is(desired, "destroyed"))
		return err_set(err, 409, "conflict", "desktop is already being destroyed");
	return 0;
}

int state_check_snapshot(const char *state, const char *desired, struct err *err)
{
	if ((is(state, "running") && is(desired, "running")) ||
	    (is(state, "stopped") && is(desired, "stopped")))
		return 0;
	return err_set(err, 409, "conflict",
		       "only a running or stopped desktop can be snapshotted (it is %s%s%s)",
		       state, strcmp(state, desired) ? ", heading for " : "",
		       strcmp(state, desired) ? desired : "");
}

int state_check_stop_mode(const char *mode, struct err *err)
{
	if (!mode || is(mode, "hibernate") || is(mode, "shutdown"))
		return 0;
	return err_set(err, 400, "invalid_request",
		       "unknown stop mode \"%.32s\" (hibernate or shutdown)", mode);
}

/* The seeds' tiers: hard caps for -smp, -m and the disk's virtual size. */
const struct tier tiers[] = {
	{"free", "Free", 2, 4096, 20, 3, 20},
	{"pro", "Pro", 4, 8192, 40, 10, 80},
	{"max", "Max", 4, 16384, 80, 25, 200},
};
const int ntiers = sizeof(tiers) / sizeof(tiers[0]);

const struct tier *tier_find(const char *id)
{
	for (int i = 0; i < ntiers; i++)
		if (!strcmp(tiers[i].id, id))
			return &tiers[i];
	return NULL;
}

double tier_price(const struct config *cfg, const char *id)
{
	if (!strcmp(id, "pro"))
		return cfg->price_pro;
	if (!strcmp(id, "max"))
		return cfg->price_max;
	return cfg->price_free;
}
