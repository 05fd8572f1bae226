/* Issue 5's entry points into the reconciler (core/desktops.c): the
 * first-boot configuration held in memory, the stop mode, and snapshot
 * work. All on the loop thread. */
#ifndef BUREAU_INSTANT_H
#define BUREAU_INSTANT_H

#include <jansson.h>

#include "core/app.h"
#include "store/store.h"

/* Items of the first-boot configuration that exist only in bureaud's
 * memory until the agent acknowledges them (never stored, never logged). */
#define SETUP_MEMORY_ITEMS "password", "timezone", "env", "provider"

/* Hands the desktop's first-boot configuration (a JSON object with
 * password, timezone, env, provider{provider, model, apiKey}) to the
 * reconciler, which owns it from now on and wipes it once the agent has
 * acknowledged it (or the desktop is gone). */
void core_setup_give(struct app *app, const char *desktop_id, json_t *setup);
/* Zeroes every string inside j (objects and arrays, recursively). */
void core_setup_wipe(json_t *j);
/* How the desktop's next stop ends: "hibernate" (the default) or
 * "shutdown" (graceful power-off). */
void core_stop_mode(struct app *app, const char *desktop_id, const char *mode);

enum core_snap_op { CORE_SNAP_CREATE, CORE_SNAP_RESTORE, CORE_SNAP_DELETE };
/* Queues snapshot work on the desktop; its store row is in place already
 * (state creating, restoring or deleting) and is settled when done. */
void core_snapshot_op(struct app *app, const char *desktop_id, const char *sid,
		      enum core_snap_op op);

/* The issue 5 fields of a desktop's JSON: bootPath, bootNote, setup,
 * forkOf, saved (the hibernation image or null). */
void desktop_json_extra(struct app *app, json_t *j, const struct desktop *d,
			const struct desktop_extra *x);
/* The host name a desktop gets from its name (RFC 1123 label). */
void desktop_hostname(const char *name, char *out, size_t n);

#endif
