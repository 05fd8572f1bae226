/* Persistent services, bureaud's side: the desktop's services (stored by
 * the API) are pushed to the agent every time it reports ready and
 * whenever the list changes while it runs; the agent starts each one that
 * is not running and answers with their status ({"type":
 * "services.status"}), which it also sends unprompted when a service
 * changes. The last status per desktop is kept in memory for the API. */
#ifndef BUREAU_SERVICES_H
#define BUREAU_SERVICES_H

#include <jansson.h>

struct app;
struct desktop;

/* The loop: loads the desktop's services and sends them to its agent. */
void services_push(struct app *app, const char *desktop_id);
/* The loop: the agent's services.status message. */
void services_on_status(struct app *app, const struct desktop *d, json_t *msg);
/* Any thread: the status the agent last reported for a service, or NULL.
 * The caller owns the reference. */
json_t *services_status(const char *desktop_id, const char *name);

#endif
