/* Persistent services of a desktop: stored here, pushed to the running
 * agent by core/services.c (now, and after every boot). */
#include "api/api.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "core/services.h"

#include <stdlib.h>
#include <string.h>

#define SERVICE_MAX_ARGS 64
#define SERVICE_MAX_ARG_LEN 4096
#define SERVICE_MAX_COMMAND 16384 /* bytes of the whole command as JSON */

/* The desktop of the path, if the caller may see it (else 404). */
static int service_desktop(struct api_ctx *c)
{
	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	return 0;
}

static json_t *service_json(const struct service *sv, const char *state)
{
	char created[32];
	json_t *cmd = json_loads(sv->command, 0, NULL);
	json_t *status =
	    strcmp(state, "running") ? NULL : services_status(sv->desktop_id, sv->name);

	time_iso(sv->created_at, created);
	return json_pack("{s:s, s:o, s:s, s:s, s:o}", "name", sv->name, "command",
			 cmd ? cmd : json_array(), "user", sv->user, "createdAt", created, "status",
			 status ? status : json_null());
}

void services_list(struct api_ctx *c)
{
	struct service *sv;
	size_t n;
	json_t *out;

	if (service_desktop(c) || store_service_list(c->s, c->d.id, &sv, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, service_json(&sv[i], c->d.state));
	store_services_free(sv, n);
	api_ok(c, 200, json_pack("{s:o}", "services", out));
}

static int command_check(json_t *cmd, struct err *err)
{
	json_t *v;
	size_t i;
	char *text;
	int too_long;

	if (!cmd)
		return err_set(err, 400, "invalid_request", "field \"command\" is required");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0 ||
	    json_array_size(cmd) > SERVICE_MAX_ARGS)
		return err_set(err, 400, "invalid_type",
			       "command must be a non-empty array of at most %d strings",
			       SERVICE_MAX_ARGS);
	json_array_foreach (cmd, i, v) {
		if (!json_is_string(v) || json_string_length(v) > SERVICE_MAX_ARG_LEN ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    (i == 0 && !json_string_length(v)))
			return err_set(err, 400, "invalid_type",
				       "command[%zu] must be a non-empty string without NUL bytes",
				       i);
	}
	text = json_dumps(cmd, JSON_COMPACT);
	too_long = !text || strlen(text) > SERVICE_MAX_COMMAND;
	free(text);
	if (too_long)
		return err_set(err, 413, "too_large", "command is longer than %d bytes",
			       SERVICE_MAX_COMMAND);
	return 0;
}

static int service_fill(struct api_ctx *c, json_t *b, struct service *sv)
{
	const char *name, *user;
	json_t *cmd = json_object_get(b, "command");

	if (json_get_string(b, "name", 1, &name, &c->err) ||
	    json_get_string(b, "user", 0, &user, &c->err) || name_check("name", name, &c->err) ||
	    command_check(cmd, &c->err))
		return -1;
	if (user && strcmp(user, "agent") && strcmp(user, "root"))
		return err_set(&c->err, 400, "invalid_request",
			       "user must be \"agent\" or \"root\"");
	memset(sv, 0, sizeof(*sv));
	snprintf(sv->desktop_id, sizeof(sv->desktop_id), "%s", c->d.id);
	snprintf(sv->name, sizeof(sv->name), "%s", name);
	snprintf(sv->user, sizeof(sv->user), "%s", user ? user : "agent");
	sv->command = json_dumps(cmd, JSON_COMPACT);
	sv->created_at = now_ms();
	return 0;
}

void services_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"name", "command", "user", NULL};
	struct service sv = {0}, *list;
	size_t n;
	json_t *b;

	if (service_desktop(c) || !(b = api_body(c, allowed, 0)))
		return;
	c->body = b;
	if (service_fill(c, b, &sv) || store_begin(c->s, &c->err))
		goto fail;
	if (store_service_list(c->s, c->d.id, &list, &n, &c->err))
		goto rollback;
	store_services_free(list, n);
	if (n >= STORE_SERVICES_MAX) {
		err_set(&c->err, 422, "limit", "a desktop has at most %d services",
			STORE_SERVICES_MAX);
		goto rollback;
	}
	if (store_service_insert(c->s, &sv, &c->err) || store_commit(c->s, &c->err))
		goto rollback;
	c->audit_detail = json_pack("{s:s}", "service", sv.name);
	api_ok(c, 201, service_json(&sv, "stopped"));
	free(sv.command);
	return;
rollback:
	store_rollback(c->s);
fail:
	free(sv.command);
	api_fail(c, &c->err);
}

void services_delete(struct api_ctx *c)
{
	if (service_desktop(c) ||
	    store_service_delete(c->s, c->d.id, api_param(c, "name"), &c->err))
		api_fail(c, &c->err);
	else
		c->status = 204;
}

/* After a change: a running agent gets the new list now. */
void services_changed(struct api_ctx *c)
{
	if (!strcmp(c->d.state, "running") || !strcmp(c->d.state, "booting"))
		services_push(c->app, c->d.id);
	if (c->status == 204) {
		http_respond(c->req, 204, NULL, NULL, 0, NULL);
		api_ctx_free(c);
		return;
	}
	api_respond_json(c, c->status, c->resp ? json_incref(c->resp) : json_object());
}
