/* The desktop state machine and the tiers: pure functions, no I/O, so
 * they are unit-tested on their own (tests/unit/test_state.c).
 *
 *   provisioning → booting → running → stopping → stopped → booting → …
 *   any → error (with a reason); any → destroying → destroyed
 *
 * `state` is what is observed, `desired_state` what the user asked for;
 * the reconciler (core/desktops.c) drives one towards the other. */
#ifndef BUREAU_STATE_H
#define BUREAU_STATE_H

#include "common/err.h"
#include "core/config.h"

enum core_action {
	ACT_NONE,
	ACT_BOOT,         /* provision the disk if missing, then boot */
	ACT_STOP,         /* graceful stop of the running VM */
	ACT_MARK_STOPPED, /* no VM runs: record that it is stopped */
	ACT_DESTROY,
};

int state_is_valid(const char *state);
/* Whether `from → to` is an edge of the state machine. */
int state_can_transition(const char *from, const char *to);
/* What the reconciler does next for a desktop. vm_alive: a VM process runs
 * for it; restart: a restart was asked and its stop half is pending. */
enum core_action state_decide(const char *state, const char *desired, int vm_alive, int restart);

/* Whether the user's start/stop/restart/destroy may go ahead from state
 * and desired; fills err (409) when not. */
int state_check_start(const char *state, const char *desired, struct err *err);
int state_check_stop(const char *state, const char *desired, struct err *err);
int state_check_restart(const char *state, const char *desired, struct err *err);
int state_check_destroy(const char *state, const char *desired, struct err *err);

struct tier {
	const char *id;
	const char *name;
	int vcpus;
	int memory_mb;
	int disk_gb;
	int snapshots_max;   /* user-named snapshots per desktop */
	int snapshots_gb;    /* their total size per desktop */
};

extern const struct tier tiers[];
extern const int ntiers;
const struct tier *tier_find(const char *id);
/* Whether a desktop may be snapshotted now (running or stopped, nothing
 * under way); fills err (409) when not. */
int state_check_snapshot(const char *state, const char *desired, struct err *err);
/* A stop's mode: "hibernate" (default: memory kept) or "shutdown"; 400
 * for anything else. */
int state_check_stop_mode(const char *mode, struct err *err);
/* The configured price per running hour of a tier. */
double tier_price(const struct config *cfg, const char *id);

#endif
