/* Desktops: the seeds' API. Handlers change desired state in the store
 * (with an event) and leave the rest to the reconciler (core/). */
#include "api/api.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "core/instant.h"
#include "core/pilot.h"
#include "core/screen.h"
#include "core/state.h"
#include "vm/driver.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_MAX_ARGS 256
#define EXEC_MAX_ARG_LEN 8192
#define EXEC_MAX_STDIN (32 * 1024)
#define EXEC_MAX_ENV 64
#define EXEC_MAX_TIMEOUT_MS (60 * 60 * 1000)
/* First-boot configuration of a create. */
#define SETUP_PASSWORD_MAX 256
#define SETUP_KEY_MAX 512
#define SETUP_MODEL_MAX 128
#define SETUP_BASE_URL_MAX 2048
#define SETUP_TIMEZONE_MAX 64
#define SETUP_ENV_MAX 64
#define SETUP_ENV_VALUE_MAX 4096
/* stdout and stderr of a one-shot exec together travel in one channel
 * frame: beyond this they are cut ("truncated": true). */
#define EXEC_OUTPUT_LIMIT (64 * 1024)
#define SCREENSHOT_WIDTH_MIN 16 /* ?width= of a thumbnail */
#define SCREENSHOT_WIDTH_MAX 4096

static json_t *desktop_json_full(struct api_ctx *c, const struct desktop *d);

void desktops_list(struct api_ctx *c)
{
	char ws[ID_MAX];
	struct desktop *list;
	size_t n;
	json_t *out;
	int has_ws = http_req_query(c->req, "workspaceId", ws, sizeof(ws)) >= 0;

	if (has_ws) {
		struct workspace w;
		if (store_workspace_get(c->s, c->user.id, ws, &w, &c->err)) {
			api_fail(c, &c->err);
			return;
		}
		snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", ws);
	}
	if (store_desktop_list_for_user(c->s, c->user.id, has_ws ? ws : NULL, &list, &n,
					&c->err)) {
		api_fail(c, &c->err);
		return;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, desktop_json_full(c, &list[i]));
	free(list);
	api_ok(c, 200, json_pack("{s:o}", "desktops", out));
}

/* The workspace a new desktop goes to: the one named, or the caller's
 * only one. */
static int create_workspace(struct api_ctx *c, const char *ws_id, struct workspace *w)
{
	struct workspace *all;
	size_t n;

	if (ws_id)
		return store_workspace_get(c->s, c->user.id, ws_id, w, &c->err);
	if (store_workspace_list(c->s, c->user.id, &all, &n, &c->err))
		return -1;
	if (n != 1) {
		free(all);
		return err_set(&c->err, 400, "invalid_request",
			       n ? "workspaceId is required: you belong to several workspaces"
				 : "you belong to no workspace");
	}
	*w = all[0];
	free(all);
	return 0;
}

/* The desktop with the issue 5 fields (boot path, setup, saved machine). */
static json_t *desktop_json_full(struct api_ctx *c, const struct desktop *d)
{
	json_t *j = desktop_json(d);
	struct desktop_extra x;
	struct err err = ERR_INIT;

	struct screen_size sz;

	if (store_desktop_extra_get(c->s, d->id, &x, &err) == 0)
		desktop_json_extra(c->app, j, d, &x);
	if (screen_load(c->s, d->id, &sz, &err) == 0)
		json_object_set_new(j, "screen", screen_json(&sz));
	return j;
}

static int setup_check_string(json_t *b, const char *key, size_t min, size_t max, int printable,
			      const char **out, struct err *err)
{
	if (json_get_string(b, key, 0, out, err))
		return -1;
	if (!*out)
		return 0;
	if (strlen(*out) != json_string_length(json_object_get(b, key)) || strlen(*out) < min ||
	    strlen(*out) > max)
		return err_set(err, 400, "invalid_request", "%s must be %zu..%zu characters", key,
			       min, max);
	for (const char *p = *out; printable && *p; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			return err_set(err, 400, "invalid_request",
				       "%s must be printable, without spaces", key);
	return 0;
}

/* The provider's base URL: the egress policy opens its host, so it must
 * parse the way the policy reads it. */
static int setup_check_base_url(const char *url, struct err *err)
{
	char host[256];
	int port;

	if ((strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) ||
	    egress_provider_host(NULL, url, host, sizeof(host), &port))
		return err_set(err, 400, "invalid_request",
			       "baseUrl must be an http:// or https:// URL with a host");
	return 0;
}

static int setup_check_timezone(const char *tz, struct err *err)
{
	if (strlen(tz) > SETUP_TIMEZONE_MAX || tz[0] == '/' || strstr(tz, ".."))
		return err_set(err, 400, "invalid_request", "timezone is not a zone name");
	for (const char *p = tz; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
			return err_set(err, 400, "invalid_request", "timezone is not a zone name");
	return 0;
}

static int setup_check_env(json_t *env, struct err *err)
{
	const char *k;
	json_t *v;

	if (!json_is_object(env))
		return err_set(err, 400, "invalid_type", "env must be an object of strings");
	if (json_object_size(env) > SETUP_ENV_MAX)
		return err_set(err, 400, "invalid_request", "env has more than %d variables",
			       SETUP_ENV_MAX);
	json_object_foreach(env, k, v) {
		int ok = *k && strlen(k) <= 128 && (isalpha((unsigned char)*k) || *k == '_');
		for (const char *p = k; ok && *p; p++)
			ok = isalnum((unsigned char)*p) || *p == '_';
		if (!ok)
			return err_set(err, 400, "invalid_request",
				       "env names are letters, digits and _, not starting with a digit");
		if (!json_is_string(v) || json_string_length(v) > SETUP_ENV_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return err_set(err, 400, "invalid_request",
				       "env values are strings of at most %d bytes without NUL",
				       SETUP_ENV_VALUE_MAX);
	}
	return 0;
}

/* The first-boot fields of a create: checked here, handed to the
 * reconciler in memory. *setup gets what must never be stored. */
static int setup_fill(json_t *b, json_t **setup, char *items, size_t n, struct err *err)
{
	const char *provider, *model, *key, *base, *password, *tz;
	json_t *env = json_object_get(b, "env");

	*setup = NULL;
	if (setup_check_string(b, "provider", 1, 32, 1, &provider, err) ||
	    setup_check_string(b, "model", 1, SETUP_MODEL_MAX, 1, &model, err) ||
	    setup_check_string(b, "apiKey", 8, SETUP_KEY_MAX, 1, &key, err) ||
	    setup_check_string(b, "baseUrl", 1, SETUP_BASE_URL_MAX, 1, &base, err) ||
	    setup_check_string(b, "password", 1, SETUP_PASSWORD_MAX, 0, &password, err) ||
	    setup_check_string(b, "timezone", 1, SETUP_TIMEZONE_MAX, 1, &tz, err))
		return -1;
	if (provider && strcmp(provider, "anthropic") && strcmp(provider, "openai") &&
	    strcmp(provider, "openrouter"))
		return err_set(err, 400, "invalid_request",
			       "unknown provider \"%.32s\" (anthropic, openai or openrouter)",
			       provider);
	if ((model || key || base) && !provider)
		return err_set(err, 400, "invalid_request",
			       "model, apiKey and baseUrl need a provider");
	if (base && setup_check_base_url(base, err))
		return -1;
	if ((tz && setup_check_timezone(tz, err)) || (env && setup_check_env(env, err)))
		return -1;
	snprintf(items, n, "hostname,sshKeys");
	*setup = json_object();
	if (password) {
		json_object_set_new(*setup, "password", json_string(password));
		strncat(items, ",password", n - strlen(items) - 1);
	}
	if (tz) {
		json_object_set_new(*setup, "timezone", json_string(tz));
		strncat(items, ",timezone", n - strlen(items) - 1);
	}
	if (env) {
		json_object_set_new(*setup, "env", json_deep_copy(env));
		strncat(items, ",env", n - strlen(items) - 1);
	}
	if (provider) {
		json_object_set_new(*setup, "provider",
				    json_pack("{s:s, s:s?, s:s?, s:s?}", "provider", provider,
					      "model", model, "apiKey", key, "baseUrl", base));
		strncat(items, ",provider", n - strlen(items) - 1);
	}
	return 0;
}

/* A fork takes its machine from the snapshot: same image version and
 * size, same workspace; the snapshot must be one the caller may see. */
static int fork_fill(struct api_ctx *c, const char *sid, json_t *b, struct desktop *d,
		     struct desktop_extra *x)
{
	struct snapshot sn;
	struct desktop src;
	const char *tier, *image;

	if (name_check("fromSnapshot", sid, &c->err) ||
	    store_snapshot_get(c->s, NULL, sid, &sn, &c->err) ||
	    store_desktop_get_for_user(c->s, c->user.id, sn.desktop_id, &src, &c->err)) {
		if (c->err.status == 404)
			err_set(&c->err, 404, "not_found", "snapshot %.40s not found", sid);
		return -1;
	}
	if (strcmp(sn.state, "ready"))
		return err_set(&c->err, 409, "conflict", "snapshot %s is %s, not ready", sid,
			       sn.state);
	json_get_string(b, "tier", 0, &tier, &c->err);
	json_get_string(b, "image", 0, &image, &c->err);
	if ((tier && strcmp(tier, sn.tier)) || (image && strcmp(image, sn.image)))
		return err_set(&c->err, 400, "invalid_request",
			       "a fork has its snapshot's tier (%s) and image (%s)", sn.tier,
			       sn.image);
	if (strcmp(d->workspace_id, sn.workspace_id))
		return err_set(&c->err, 400, "invalid_request",
			       "a fork lives in its snapshot's workspace (%s)", sn.workspace_id);
	snprintf(d->tier, sizeof(d->tier), "%s", sn.tier);
	snprintf(d->image, sizeof(d->image), "%s", sn.image);
	snprintf(d->image_version, sizeof(d->image_version), "%s", sn.image_version);
	d->vcpus = sn.vcpus;
	d->memory_mb = sn.memory_mb;
	d->disk_gb = sn.disk_gb;
	snprintf(x->source_snapshot, sizeof(x->source_snapshot), "%s", sn.id);
	snprintf(x->source_desktop, sizeof(x->source_desktop), "%s", sn.desktop_id);
	return 0;
}

static int create_fill(struct api_ctx *c, json_t *b, struct desktop *d, struct workspace *w,
		       struct desktop_extra *x)
{
	const char *name, *ws_id, *tier_id, *image, *sid;
	const struct tier *tier;

	if (json_get_string(b, "name", 1, &name, &c->err) ||
	    json_get_string(b, "workspaceId", 0, &ws_id, &c->err) ||
	    json_get_string(b, "tier", 0, &tier_id, &c->err) ||
	    json_get_string(b, "image", 0, &image, &c->err) ||
	    json_get_string(b, "fromSnapshot", 0, &sid, &c->err) ||
	    name_check("name", name, &c->err))
		return -1;
	tier = tier_find(tier_id ? tier_id : "free");
	if (!tier)
		return err_set(&c->err, 400, "invalid_request",
			       "unknown tier \"%.32s\" (free, pro or max)", tier_id);
	if (!image)
		image = "desktop";
	if (strcmp(image, "desktop") && strcmp(image, "tiny"))
		return err_set(&c->err, 400, "invalid_request",
			       "unknown image \"%.32s\" (desktop or tiny)", image);
	if (create_workspace(c, ws_id, w))
		return -1;
	memset(d, 0, sizeof(*d));
	memset(x, 0, sizeof(*x));
	id_new(d->id, sizeof(d->id), "dsk");
	snprintf(d->workspace_id, sizeof(d->workspace_id), "%s", w->id);
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->tier, sizeof(d->tier), "%s", tier->id);
	snprintf(d->image, sizeof(d->image), "%s", image);
	d->vcpus = tier->vcpus;
	d->memory_mb = tier->memory_mb;
	d->disk_gb = tier->disk_gb;
	if (sid ? fork_fill(c, sid, b, d, x)
		: vm_image_current(c->app->driver, image, d->image_version,
				   sizeof(d->image_version), &c->err))
		return -1;
	snprintf(d->state, sizeof(d->state), "provisioning");
	snprintf(d->desired_state, sizeof(d->desired_state), "running");
	d->created_at = d->updated_at = d->state_changed_at = now_ms();
	snprintf(x->setup_state, sizeof(x->setup_state), "pending");
	return 0;
}

/* A malformed body may hold a secret: jansson's message quotes the text
 * near the error, so that part is dropped. */
static void create_body_error_scrub(struct api_ctx *c)
{
	char *near = strstr(c->err.msg, " near ");

	if (near)
		*near = '\0';
}

/* The provider without its key, kept for the egress policy: a desktop
 * reaches its own provider's host with no workspace allowlist entry. */
static int create_provider_put(struct api_ctx *c, const struct desktop *d, json_t *setup)
{
	json_t *p = json_object_get(setup, "provider");
	json_t *pub;
	char *text;
	int rc;

	if (!p)
		return 0;
	pub = json_pack("{s:O, s:O?}", "provider", json_object_get(p, "provider"), "baseUrl",
			json_object_get(p, "baseUrl"));
	text = json_dumps(pub, JSON_COMPACT);
	json_decref(pub);
	rc = store_desktop_setting_put(c->s, d->id, "provider", text, d->created_at, &c->err);
	free(text);
	return rc;
}

/* A fork's guest resumes its snapshot's memory, so it has its source's
 * screen; anything else takes the size asked for (default 1280x800). */
static int create_screen_put(struct api_ctx *c, const struct desktop *d,
			     const struct desktop_extra *x, json_t *b)
{
	json_t *j = json_object_get(b, "screen");
	struct screen_size sz;

	if (*x->source_snapshot) {
		if (j)
			return err_set(&c->err, 400, "invalid_request",
				       "a fork has its snapshot's screen size");
		if (screen_load(c->s, x->source_desktop, &sz, &c->err))
			return -1;
	} else if (!j) {
		return 0;
	} else if (screen_parse(j, &sz, &c->err)) {
		return -1;
	}
	return screen_store(c->s, d->id, &sz, d->created_at, &c->err);
}

static void create_wipe(struct api_ctx *c)
{
	if (c->body)
		core_setup_wipe(c->body);
	if (c->req->body)
		sodium_memzero(c->req->body, c->req->body_len);
}

void desktops_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"name",	  "workspaceId", "tier",	 "image",
					      "provider", "model",	 "apiKey",	 "password",
					      "timezone", "env",	 "fromSnapshot", "baseUrl",
					      "screen",	  NULL};
	struct desktop d;
	struct desktop_extra x;
	struct workspace w;
	int64_t count;
	json_t *setup = NULL;
	json_t *b = api_body(c, allowed, 0);

	if (!b) {
		create_body_error_scrub(c);
		create_wipe(c);
		return;
	}
	c->body = b;
	if (create_fill(c, b, &d, &w, &x) ||
	    setup_fill(b, &setup, x.setup_items, sizeof(x.setup_items), &c->err)) {
		api_fail(c, &c->err);
		goto out;
	}
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w.id);
	if (store_begin(c->s, &c->err))
		goto fail;
	if (store_desktop_count(c->s, w.id, &count, &c->err))
		goto rollback;
	if (count >= w.plan_limit) {
		err_set(&c->err, 422, "plan_limit",
			"workspace %s has %lld of %d desktops its plan allows (stopped ones count); "
			"destroy one first",
			w.id, (long long)count, w.plan_limit);
		goto rollback;
	}
	if (store_desktop_insert(c->s, &d, &c->err) ||
	    store_desktop_extra_put(c->s, d.id, &x, d.created_at, &c->err) ||
	    create_provider_put(c, &d, setup) || create_screen_put(c, &d, &x, b))
		goto rollback;
	if (core_store_event(c->s, &d, "desktop.created",
			     json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "state", d.state,
				       "desiredState", d.desired_state, "tier", d.tier, "image",
				       d.image, "setupItems", x.setup_items, "fromSnapshot",
				       *x.source_snapshot ? json_string(x.source_snapshot)
							  : json_null()),
			     api_event_slot(c), &c->err))
		goto rollback;
	if (store_commit(c->s, &c->err))
		goto rollback;
	snprintf(c->kick, sizeof(c->kick), "%s", d.id);
	c->audit_detail = json_pack("{s:s, s:s, s:s}", "desktopId", d.id, "name", d.name,
				    "setupItems", x.setup_items);
	c->d = d;
	c->data = setup; /* to the reconciler, on the loop */
	setup = NULL;
	api_ok(c, 201, desktop_json_full(c, &d));
	goto out;
rollback:
	store_rollback(c->s);
fail:
	api_fail(c, &c->err);
out:
	if (setup) {
		core_setup_wipe(setup);
		json_decref(setup);
	}
	create_wipe(c);
}

/* On the loop: the secrets go to the reconciler's memory. */
void desktops_create_loop(struct api_ctx *c)
{
	core_setup_give(c->app, c->d.id, c->data);
	c->data = NULL;
	api_respond_json(c, c->status, json_incref(c->resp));
}

/* The desktop named by the path, if the caller may see it (else 404). */
static int desktop_load(struct api_ctx *c)
{
	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	return 0;
}

void desktops_get(struct api_ctx *c)
{
	if (desktop_load(c) == 0)
		api_ok(c, 200, desktop_json_full(c, &c->d));
}

/* Moves the desired state (and, when given, the observed state first) in
 * one transaction, then hands the desktop to the reconciler. */
static void desktop_change(struct api_ctx *c, const char *state, const char *desired)
{
	struct event *ev;

	if (store_begin(c->s, &c->err))
		goto fail;
	if (state && core_store_transition(c->s, &c->d, state, NULL, -1, api_event_slot(c),
					   &c->err))
		goto rollback;
	if (store_desktop_set_desired(c->s, c->d.id, desired, now_ms(), &c->err))
		goto rollback;
	snprintf(c->d.desired_state, sizeof(c->d.desired_state), "%s", desired);
	ev = api_event_slot(c);
	if (ev && core_store_event(c->s, &c->d, "desktop.desired",
				   json_pack("{s:s, s:s}", "state", c->d.state, "desiredState",
					     desired),
				   ev, &c->err))
		goto rollback;
	if (store_commit(c->s, &c->err))
		goto rollback;
	snprintf(c->kick, sizeof(c->kick), "%s", c->d.id);
	api_ok(c, 202, desktop_json_full(c, &c->d));
	return;
rollback:
	store_rollback(c->s);
fail:
	api_fail(c, &c->err);
}

void desktops_start(struct api_ctx *c)
{
	if (desktop_load(c) || state_check_start(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	desktop_change(c, !strcmp(c->d.state, "error") ? "stopped" : NULL, "running");
}

/* The stop of the desktop named by the path; mode NULL: hibernate. */
static void desktop_stop(struct api_ctx *c, const char *mode)
{
	if (state_check_stop_mode(mode, &c->err) || desktop_load(c) ||
	    state_check_stop(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	c->audit_detail = json_pack("{s:s}", "mode", mode ? mode : "hibernate");
	desktop_change(c, !strcmp(c->d.state, "error") ? "stopped" : NULL, "stopped");
}

/* {"mode":"hibernate"} (the default: memory and processes kept) or
 * {"mode":"shutdown"} (graceful power-off). */
void desktops_stop(struct api_ctx *c)
{
	static const char *const allowed[] = {"mode", NULL};
	const char *mode = NULL;
	json_t *b = api_body(c, allowed, 1);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "mode", 0, &mode, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	desktop_stop(c, mode);
}

/* On the loop, before the reconciler loads the desktop: how it stops. */
void desktops_stop_loop(struct api_ctx *c)
{
	const char *mode = json_string_value(json_object_get(c->body, "mode"));

	core_stop_mode(c->app, c->d.id, mode ? mode : "hibernate");
	api_respond_json(c, c->status, json_incref(c->resp));
}

void desktops_restart(struct api_ctx *c)
{
	if (desktop_load(c) || state_check_restart(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	snprintf(c->kick, sizeof(c->kick), "%s", c->d.id);
	c->restart = 1;
	api_ok(c, 202, desktop_json_full(c, &c->d));
}

/* Bulk: one action on up to BULK_MAX desktops, each done by the route that
 * does it alone (its checks, transaction, events, audit entry and answer),
 * on this request's worker; the loop then hands them to the reconciler. */
#define BULK_MAX 100
#define BULK_ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

static const struct bulk_action {
	const char *name;
	const char *method;
	const char *path; /* the single route's path, %s the desktop's id */
} bulk_actions[] = {
	{"start", "POST", "/api/desktops/%s/start"},
	{"stop", "POST", "/api/desktops/%s/stop"},
	{"restart", "POST", "/api/desktops/%s/restart"},
	{"destroy", "DELETE", "/api/desktops/%s"},
};

struct bulk {
	const struct bulk_action *act;
	const char *mode; /* stop's, or NULL; in the request's body */
	size_t n;
	struct api_ctx *sub[BULK_MAX]; /* NULL: no desktop can have that id */
};

static int bulk_check_ids(json_t *ids, struct err *err)
{
	json_t *v;
	size_t i;

	if (!ids)
		return err_set(err, 400, "invalid_request", "field \"ids\" is required");
	if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > BULK_MAX)
		return err_set(err, 400, "invalid_type", "ids must be an array of 1..%d desktop ids",
			       BULK_MAX);
	json_array_foreach(ids, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= ID_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return err_set(err, 400, "invalid_type",
				       "ids[%zu] must be a desktop id (dsk_…)", i);
		for (size_t j = 0; j < i; j++)
			if (json_equal(v, json_array_get(ids, j)))
				return err_set(err, 400, "invalid_request", "ids[%zu] repeats ids[%zu]",
					       i, j);
	}
	return 0;
}

static int bulk_parse(json_t *b, struct bulk *bk, struct err *err)
{
	const char *action;

	if (json_get_string(b, "action", 1, &action, err) ||
	    json_get_string(b, "mode", 0, &bk->mode, err))
		return -1;
	for (size_t i = 0; i < sizeof(bulk_actions) / sizeof(bulk_actions[0]); i++)
		if (!strcmp(action, bulk_actions[i].name))
			bk->act = &bulk_actions[i];
	if (!bk->act)
		return err_set(err, 400, "invalid_request",
			       "unknown action \"%.32s\" (start, stop, restart or destroy)", action);
	if (bk->mode && strcmp(action, "stop"))
		return err_set(err, 400, "invalid_request", "mode goes only with the stop action");
	if (state_check_stop_mode(bk->mode, err))
		return -1;
	return bulk_check_ids(json_object_get(b, "ids"), err);
}

/* The action on one desktop; its result entry. *out gets the context
 * whose effects the loop carries out. */
static json_t *bulk_one(struct api_ctx *c, const struct bulk *bk, const char *id,
			struct api_ctx **out)
{
	char path[128];
	struct api_ctx *sub = NULL;

	if (strspn(id, BULK_ID_CHARS) == strlen(id)) {
		snprintf(path, sizeof(path), bk->act->path, id);
		sub = api_sub_new(c, bk->act->method, path);
	}
	*out = sub;
	if (!sub)
		return json_pack("{s:s, s:i, s:{s:s, s:s}}", "id", id, "status", 404, "error", "code",
				 "not_found", "message", "desktop not found");
	if (!strcmp(bk->act->name, "stop"))
		desktop_stop(sub, bk->mode);
	else
		sub->route->work(sub);
	if (!sub->audit_detail)
		sub->audit_detail = json_object();
	json_object_set_new(sub->audit_detail, "bulk", json_true());
	api_sub_audit(sub);
	if (sub->status >= 400)
		return json_pack("{s:s, s:i, s:{s:s, s:s}}", "id", id, "status", sub->status, "error",
				 "code", *sub->err.code ? sub->err.code : "internal", "message",
				 sub->err.msg);
	return json_pack("{s:s, s:i, s:O}", "id", id, "status", sub->status, "desktop",
			 sub->resp ? sub->resp : json_null());
}

/* The request's own audit entry belongs to the one workspace its desktops
 * are in; when they span several, to none (the caller's own). */
static void bulk_audit_ws(struct api_ctx *c, const struct bulk *bk)
{
	for (size_t i = 0; i < bk->n; i++) {
		const char *ws = bk->sub[i] ? bk->sub[i]->audit_ws : "";

		if (!*ws)
			continue;
		if (*c->audit_ws && strcmp(c->audit_ws, ws)) {
			c->audit_ws[0] = '\0';
			return;
		}
		snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", ws);
	}
}

/* {"action", "ids", "mode"?} → 200 {"results": [{"id", "status",
 * "desktop" | "error"}]} in the order of ids. */
void desktops_bulk(struct api_ctx *c)
{
	static const char *const allowed[] = {"action", "ids", "mode", NULL};
	struct bulk *bk;
	json_t *ids, *results;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	bk = xcalloc(1, sizeof(*bk));
	if (bulk_parse(b, bk, &c->err)) {
		free(bk);
		api_fail(c, &c->err);
		return;
	}
	ids = json_object_get(b, "ids");
	results = json_array();
	for (bk->n = 0; bk->n < json_array_size(ids); bk->n++)
		json_array_append_new(results,
				      bulk_one(c, bk, json_string_value(json_array_get(ids, bk->n)),
					       &bk->sub[bk->n]));
	bulk_audit_ws(c, bk);
	c->audit_detail = json_pack("{s:s, s:O, s:s?}", "action", bk->act->name, "ids", ids,
				    "mode", bk->mode);
	c->data = bk;
	api_ok(c, 200, json_pack("{s:o}", "results", results));
}

/* On the loop: each desktop's events and reconciler kick, as its single
 * request's api_done and loop function would. */
void desktops_bulk_loop(struct api_ctx *c)
{
	struct bulk *bk = c->data;

	for (size_t i = 0; i < bk->n; i++) {
		struct api_ctx *sub = bk->sub[i];

		if (!sub)
			continue;
		if (!strcmp(bk->act->name, "stop") && sub->status < 400)
			core_stop_mode(c->app, sub->d.id, bk->mode ? bk->mode : "hibernate");
		api_sub_effects(sub);
		api_ctx_free(sub);
	}
	free(bk);
	c->data = NULL;
	api_respond_json(c, c->status, json_incref(c->resp));
}

/* A new screen size takes a cold boot (see core/screen.h): the desktop
 * must be running and restarts (202); the size it has already: 200. */
void desktops_screen_put(struct api_ctx *c)
{
	static const char *const allowed[] = {"width", "height", NULL};
	struct screen_size want, have;
	json_t *b = api_body(c, allowed, 0);

	c->body = b;
	if (!b || screen_parse(b, &want, &c->err) || desktop_load(c) ||
	    screen_load(c->s, c->d.id, &have, &c->err)) {
		if (c->err.status)
			api_fail(c, &c->err);
		return;
	}
	c->audit_detail = json_pack("{s:i, s:i}", "width", want.width, "height", want.height);
	if (want.width == have.width && want.height == have.height) {
		api_ok(c, 200, desktop_json_full(c, &c->d));
		return;
	}
	if (state_check_restart(c->d.state, c->d.desired_state, &c->err) ||
	    screen_store(c->s, c->d.id, &want, now_ms(), &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	snprintf(c->kick, sizeof(c->kick), "%s", c->d.id);
	c->restart = 1;
	api_ok(c, 202, desktop_json_full(c, &c->d));
}

void desktops_delete(struct api_ctx *c)
{
	if (desktop_load(c) || state_check_destroy(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	desktop_change(c, "destroying", "destroyed");
}

/* For the routes that need the VM: the desktop must be up. */
void desktops_running(struct api_ctx *c)
{
	if (desktop_load(c))
		return;
	if (strcmp(c->d.state, "running") && strcmp(c->d.state, "booting")) {
		err_set(&c->err, 409, "conflict", "desktop is %s, not running", c->d.state);
		api_fail(c, &c->err);
	}
}

/* key's value in the query, into out (n bytes). Unlike http_req_query(),
 * which answers the first and takes a value it cannot decode for absent,
 * a key given twice or a value that does not decode (a bad escape, %00, too
 * long for out) is malformed. Returns its length, -1 when absent, -2 when
 * malformed. */
static int query_once(const struct http_req *req, const char *key, char *out, size_t n)
{
	struct http_req one = {0};
	char pair[HTTP_MAX_URL_LEN];
	const char *p = req->query;
	int found = -1;

	while (p && *p) {
		size_t len = strcspn(p, "&"), klen = strcspn(p, "=&");

		if (len >= sizeof(pair))
			return -2;
		memcpy(pair, p, klen); /* the key alone: is it this one? */
		pair[klen] = '\0';
		one.query = pair;
		if (http_req_query(&one, key, out, n) == 0) {
			if (found != -1)
				return -2;
			memcpy(pair, p, len);
			pair[len] = '\0';
			if ((found = http_req_query(&one, key, out, n)) < 0)
				return -2;
		}
		p += len + (p[len] == '&');
	}
	return found;
}

/* ?width=N, once, N a plain integer in SCREENSHOT_WIDTH_MIN..MAX; 0 when
 * absent. */
static int screenshot_width(struct api_ctx *c, int *out)
{
	char v[HTTP_MAX_URL_LEN];
	int len = query_once(c->req, "width", v, sizeof(v));

	*out = 0;
	if (len == -1)
		return 0;
	if (len < 1 || len > 4 || strspn(v, "0123456789") != (size_t)len ||
	    (*out = atoi(v)) < SCREENSHOT_WIDTH_MIN || *out > SCREENSHOT_WIDTH_MAX)
		return err_set(&c->err, 400, "invalid_request",
			       "width must be given once, an integer from %d to %d",
			       SCREENSHOT_WIDTH_MIN, SCREENSHOT_WIDTH_MAX);
	return 0;
}

/* GET /api/desktops/{id}/screenshot[?width=N]: the query is checked before
 * anything else, then the desktop must be up. */
void desktops_screenshot_check(struct api_ctx *c)
{
	int width;

	if (screenshot_width(c, &width)) {
		api_fail(c, &c->err);
		return;
	}
	c->data = (void *)(intptr_t)width;
	desktops_running(c);
}

static void screenshot_done(const uint8_t *png, size_t len, struct err *err, void *arg)
{
	struct api_ctx *c = arg;

	if (!png) {
		api_respond_err(c, err);
		return;
	}
	http_respond(c->req, 200, "image/png", png, len, "Cache-Control: no-store\r\n");
	api_ctx_free(c);
}

void desktops_screenshot(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	struct err err = ERR_INIT;

	if (!vm) {
		err_set(&err, 409, "conflict", "desktop has no running VM");
		api_respond_err(c, &err);
		return;
	}
	vm_screenshot(vm, (int)(intptr_t)c->data, screenshot_done, c);
}

/* Exec: validated on the worker, carried out by the agent. */

static int exec_check_env(json_t *env, struct err *err)
{
	const char *k;
	json_t *v;

	if (!json_is_object(env))
		return err_set(err, 400, "invalid_type", "env must be an object of strings");
	if (json_object_size(env) > EXEC_MAX_ENV)
		return err_set(err, 400, "invalid_request", "env has more than %d variables",
			       EXEC_MAX_ENV);
	json_object_foreach(env, k, v) {
		if (!json_is_string(v) || !*k || strchr(k, '=') ||
		    json_string_length(v) > EXEC_MAX_ARG_LEN)
			return err_set(err, 400, "invalid_request",
				       "env entries must be NAME: \"value\" strings");
	}
	return 0;
}

/* ?stream=true asks for the output as it comes (exec_stream.c). */
static int exec_stream_query(struct api_ctx *c, struct err *err)
{
	char v[8];

	if (http_req_query(c->req, "stream", v, sizeof(v)) < 0 || !strcmp(v, "false") ||
	    !strcmp(v, "0"))
		return 0;
	if (strcmp(v, "true") && strcmp(v, "1"))
		return err_set(err, 400, "invalid_request", "stream must be true or false");
	c->data = (void *)1;
	return 0;
}

static int exec_check(json_t *b, struct err *err)
{
	json_t *cmd = json_object_get(b, "command"), *v;
	const char *user, *cwd, *in;
	long long timeout = 60000;
	size_t i;

	if (!cmd)
		return err_set(err, 400, "invalid_request", "field \"command\" is required");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0 ||
	    json_array_size(cmd) > EXEC_MAX_ARGS)
		return err_set(err, 400, "invalid_type",
			       "command must be a non-empty array of at most %d strings",
			       EXEC_MAX_ARGS);
	json_array_foreach(cmd, i, v) {
		if (!json_is_string(v) || json_string_length(v) > EXEC_MAX_ARG_LEN ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return err_set(err, 400, "invalid_type",
				       "command[%zu] must be a string without NUL bytes", i);
	}
	if (json_get_string(b, "user", 0, &user, err) || json_get_string(b, "cwd", 0, &cwd, err) ||
	    json_get_string(b, "stdin", 0, &in, err) ||
	    json_get_int(b, "timeoutMs", 0, &timeout, err))
		return -1;
	if (user && strcmp(user, "agent") && strcmp(user, "root"))
		return err_set(err, 400, "invalid_request", "user must be \"agent\" or \"root\"");
	if (cwd && cwd[0] != '/')
		return err_set(err, 400, "invalid_request", "cwd must be an absolute path");
	if (in && strlen(in) > EXEC_MAX_STDIN)
		return err_set(err, 413, "too_large", "stdin is larger than %d bytes",
			       EXEC_MAX_STDIN);
	if (timeout < 1 || timeout > EXEC_MAX_TIMEOUT_MS)
		return err_set(err, 400, "invalid_request", "timeoutMs must be 1..%d",
			       EXEC_MAX_TIMEOUT_MS);
	if (json_object_get(b, "env") && exec_check_env(json_object_get(b, "env"), err))
		return -1;
	return 0;
}

void desktops_exec_check(struct api_ctx *c)
{
	static const char *const allowed[] = {"command", "user", "cwd", "env", "stdin",
					      "timeoutMs", NULL};
	json_t *b;

	desktops_running(c);
	if (c->status >= 400)
		return;
	b = api_body(c, allowed, 0);
	if (!b)
		return;
	c->body = b;
	if (exec_check(b, &c->err) || exec_stream_query(c, &c->err))
		api_fail(c, &c->err);
	c->audit_detail = json_pack("{s:O}", "command", json_object_get(b, "command"));
}

static void exec_done(json_t *reply, struct err *err, void *arg)
{
	struct api_ctx *c = arg;
	json_t *out;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;

	if (!reply) {
		api_respond_err(c, err);
		return;
	}
	if (!type || strcmp(type, "exec.result")) {
		struct err e = ERR_INIT;
		const char *msg = json_string_value(json_object_get(reply, "message"));
		err_set(&e, 502, "agent_error", "agent: %s", msg ? msg : "unexpected answer");
		api_respond_err(c, &e);
		return;
	}
	out = json_object();
	json_object_update(out, reply);
	json_object_del(out, "type");
	json_object_del(out, "id");
	/* The limit, so a caller whose output was cut knows what happened. */
	json_object_set_new(out, "outputLimitBytes", json_integer(EXEC_OUTPUT_LIMIT));
	api_respond_json(c, 200, out);
}

void desktops_exec(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	struct err err = ERR_INIT;
	long long timeout = 60000;
	json_t *msg;

	if (!vm || !vm_agent_connected(vm)) {
		err_set(&err, 409, "agent_unavailable",
			"the desktop's agent is not connected (is it still booting?)");
		api_respond_err(c, &err);
		return;
	}
	if (c->data) {
		exec_stream_start(c, vm);
		return;
	}
	json_get_int(c->body, "timeoutMs", 0, &timeout, &err);
	msg = json_deep_copy(c->body);
	json_object_set_new(msg, "type", json_string("exec"));
	json_object_set(msg, "argv", json_object_get(c->body, "command"));
	json_object_del(msg, "command");
	vm_agent_request(vm, msg, (int)timeout + 10000, exec_done, c);
	json_decref(msg);
}
