/* Persistent services, bureaud's side. See services.h. */
#include "core/services.h"
#include "core/app.h"
#include "core/core.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "vm/driver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SERVICES_PUSH_TIMEOUT_MS 15000

/* The statuses the agents reported, by desktop. */
struct status_entry {
	char id[ID_MAX];
	json_t *by_name; /* name -> status object */
	struct status_entry *next;
};

static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static struct status_entry *status_head;

/* Replaces the desktop's statuses with the list in msg. */
static void status_store(const char *desktop_id, json_t *list)
{
	struct status_entry *e;
	json_t *map = json_object(), *s;
	size_t i;

	json_array_foreach (list, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));

		if (json_is_object(s) && name)
			json_object_set(map, name, s);
	}
	pthread_mutex_lock(&status_lock);
	for (e = status_head; e && strcmp(e->id, desktop_id); e = e->next)
		;
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		snprintf(e->id, sizeof(e->id), "%s", desktop_id);
		e->next = status_head;
		status_head = e;
	}
	json_decref(e->by_name);
	e->by_name = map;
	pthread_mutex_unlock(&status_lock);
}

json_t *services_status(const char *desktop_id, const char *name)
{
	struct status_entry *e;
	json_t *s = NULL;

	pthread_mutex_lock(&status_lock);
	for (e = status_head; e && strcmp(e->id, desktop_id); e = e->next)
		;
	if (e && (s = json_object_get(e->by_name, name)))
		s = json_deep_copy(s);
	pthread_mutex_unlock(&status_lock);
	return s;
}

void services_on_status(struct app *app, const struct desktop *d, json_t *msg)
{
	json_t *list = json_object_get(msg, "services");

	if (!json_is_array(list)) {
		log_warnx("desktop=%s malformed services.status from the agent", d->id);
		return;
	}
	status_store(d->id, list);
}

/* Pushing */

struct push {
	struct app *app;
	char id[ID_MAX];
	json_t *list;
	struct err err;
	int failed;
};

static void push_work(struct store *s, void *arg)
{
	struct push *p = arg;
	struct service *sv;
	size_t n;

	if (store_service_list(s, p->id, &sv, &n, &p->err)) {
		p->failed = 1;
		return;
	}
	p->list = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *cmd = json_loads(sv[i].command, 0, NULL);

		json_array_append_new(p->list,
				      json_pack("{s:s, s:o, s:s}", "name", sv[i].name, "command",
						cmd ? cmd : json_array(), "user", sv[i].user));
	}
	store_services_free(sv, n);
}

static void push_reply(json_t *reply, struct err *err, void *arg)
{
	char *id = arg;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;

	if (type && !strcmp(type, "services.status") &&
	    json_is_array(json_object_get(reply, "services")))
		status_store(id, json_object_get(reply, "services"));
	else
		log_warnx("desktop=%s services not applied: %s", id,
			  reply ? json_string_value(json_object_get(reply, "message")) ?: "?"
				: err->msg);
	free(id);
}

static void push_done(void *arg)
{
	struct push *p = arg;
	struct vm *vm = core_vm(p->app, p->id);
	json_t *msg;

	if (p->failed) {
		log_warnx("desktop=%s services not loaded: %s", p->id, p->err.msg);
	} else if (vm && vm_agent_connected(vm)) {
		msg = json_pack("{s:s, s:O}", "type", "services", "services", p->list);
		log_info("desktop=%s services pushed n=%zu", p->id, json_array_size(p->list));
		vm_agent_request(vm, msg, SERVICES_PUSH_TIMEOUT_MS, push_reply, xstrdup(p->id));
		json_decref(msg);
	}
	json_decref(p->list);
	free(p);
}

void services_push(struct app *app, const char *desktop_id)
{
	struct push *p = xcalloc(1, sizeof(*p));

	p->app = app;
	snprintf(p->id, sizeof(p->id), "%s", desktop_id);
	job_submit(app, push_work, push_done, p);
}
