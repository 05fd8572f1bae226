/* Desktop lifecycle on the loop thread: the reconciler drives each
 * desktop's observed state towards its desired state through the VM
 * driver, stores every transition with an event, and keeps the in-memory
 * handles of running VMs. The API changes desired state in the store and
 * then calls core_kick(). */
#ifndef BUREAU_CORE_H
#define BUREAU_CORE_H

#include <jansson.h>

#include "core/app.h"
#include "store/store.h"

struct vm;

int core_new(struct app *app);
/* Startup reconciliation: re-attach to VMs still running, mark desktops
 * whose VM died as error (with the reason), boot those meant to run. */
void core_start(struct app *app);
/* The desktop's desired state may have changed: look again. */
void core_kick(struct app *app, const char *desktop_id);
/* Ask for a restart of a running desktop (stop, then boot). */
void core_restart(struct app *app, const char *desktop_id);
/* The running VM of a desktop, or NULL. */
struct vm *core_vm(struct app *app, const char *desktop_id);
/* Stops timers and forgets VM handles; the VMs keep running. */
void core_shutdown(struct app *app);

/* On a worker, inside the caller's transaction: records a state
 * transition of d (updates d) with its event and usage interval. ev is
 * filled for publishing. reason may be NULL. */
int core_store_transition(struct store *s, struct desktop *d, const char *state,
			  const char *reason, int64_t ready_ms, struct event *ev, struct err *err);
/* On a worker: stores an event of a workspace (desktop_id may be ""); takes
 * the reference to data, the event's type-specific fields. */
int core_event_append(struct store *s, const char *workspace_id, const char *desktop_id,
		      const char *type, json_t *data, struct event *ev, struct err *err);
/* On a worker: stores an event of a desktop; takes the reference to
 * data, the event's type-specific fields. */
int core_store_event(struct store *s, const struct desktop *d, const char *type, json_t *data,
		     struct event *ev, struct err *err);
/* On the loop: publishes a stored event and frees its data. */
void core_publish(struct app *app, struct event *ev);

/* The desktop as the API shows it. */
json_t *desktop_json(const struct desktop *d);

#endif
