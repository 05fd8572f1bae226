/* Warm templates (their state, and a build on request) and the workspace
 * SSH keys that every new desktop's agent user trusts. */
#include "api/api.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "core/state.h"
#include "vm/driver.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSH_KEYS_MAX 32
#define SSH_KEY_MAX 8192

static const char *const ssh_key_types[] = {
    "ssh-ed25519 ",
    "ssh-rsa ",
    "ecdsa-sha2-nistp256 ",
    "ecdsa-sha2-nistp384 ",
    "ecdsa-sha2-nistp521 ",
    "sk-ssh-ed25519@openssh.com ",
    "sk-ecdsa-sha2-nistp256@openssh.com ",
    NULL,
};

/* Any signed-in user may look (authentication is all the worker does). */
void templates_auth(struct api_ctx *c)
{
	(void)c;
}

/* On the loop: the driver knows what is building. */
void templates_list(struct api_ctx *c)
{
	api_respond_json(c, 200,
			 json_pack("{s:b, s:o}", "enabled",
				   strcmp(c->app->cfg.templates, "off") != 0, "templates",
				   vm_templates_json(c->app->driver)));
}

void templates_check(struct api_ctx *c)
{
	static const char *const allowed[] = {"image", "tier", NULL};
	const char *image, *tier_id;
	const struct tier *tier;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "image", 1, &image, &c->err) ||
	    json_get_string(b, "tier", 0, &tier_id, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (strcmp(image, "desktop") && strcmp(image, "tiny")) {
		err_set(&c->err, 400, "invalid_request",
			"unknown image \"%.32s\" (desktop or tiny)", image);
	} else if (!(tier = tier_find(tier_id ? tier_id : "free"))) {
		err_set(&c->err, 400, "invalid_request",
			"unknown tier \"%.32s\" (free, pro or max)", tier_id);
	} else if (!strcmp(c->app->cfg.templates, "off")) {
		err_set(&c->err, 409, "conflict", "templates are off (setting templates = off)");
	} else {
		c->status = 202;
		return;
	}
	api_fail(c, &c->err);
}

/* On the loop: starts the build (nothing when ready or building). */
void templates_build(struct api_ctx *c)
{
	const char *image = json_string_value(json_object_get(c->body, "image"));
	const char *tier_id = json_string_value(json_object_get(c->body, "tier"));
	const struct tier *tier = tier_find(tier_id ? tier_id : "free");
	struct vm_spec spec = {0};
	struct err err = ERR_INIT;
	static const char *const states[] = {"none", "building", "ready", "failed"};

	snprintf(spec.image, sizeof(spec.image), "%s", image);
	if (vm_image_current(c->app->driver, image, spec.image_version, sizeof(spec.image_version),
			     &err)) {
		api_respond_err(c, &err);
		return;
	}
	spec.vcpus = tier->vcpus;
	spec.memory_mb = tier->memory_mb;
	spec.disk_gb = tier->disk_gb;
	vm_template_build(c->app->driver, &spec, c->app->cfg.boot_timeout_s * 1000);
	api_respond_json(c, 202,
			 json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "image", spec.image, "version",
				   spec.image_version, "vcpus", spec.vcpus, "memoryMb",
				   spec.memory_mb, "diskGb", spec.disk_gb, "state",
				   states[vm_template_state(c->app->driver, &spec)]));
}

/* SSH keys of a workspace */

static int ssh_key_check(const char *k, size_t len, size_t i, struct err *err)
{
	const char *const *t;
	const char *p;

	if (len > SSH_KEY_MAX || strlen(k) != len || strpbrk(k, "\r\n"))
		return err_set(err, 400, "invalid_request",
			       "keys[%zu] must be one line of at most %d bytes", i, SSH_KEY_MAX);
	for (t = ssh_key_types; *t && strncmp(k, *t, strlen(*t)); t++)
		;
	if (!*t)
		return err_set(err, 400, "invalid_request",
			       "keys[%zu] is not an SSH public key (ssh-ed25519 AAAA… comment)", i);
	p = k + strlen(*t);
	if (strncmp(p, "AAAA", 4))
		return err_set(err, 400, "invalid_request", "keys[%zu] has no base64 key", i);
	for (; *p && *p != ' '; p++)
		if (!isalnum((unsigned char)*p) && !strchr("+/=", *p))
			return err_set(err, 400, "invalid_request", "keys[%zu] has no base64 key",
				       i);
	return 0;
}

/* The workspace of the path, if the caller is a member (else 404);
 * writers must be its owner or an admin. */
static int ssh_workspace(struct api_ctx *c, int write, struct workspace *w)
{
	if (store_workspace_get(c->s, c->user.id, api_param(c, "id"), w, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", w->id);
	if (write && strcmp(w->role, "owner") && strcmp(w->role, "admin")) {
		err_set(&c->err, 403, "forbidden",
			"only the workspace's owners and admins set keys");
		return api_fail(c, &c->err);
	}
	return 0;
}

void ssh_keys_get(struct api_ctx *c)
{
	struct workspace w;
	char *text;
	json_t *keys;

	if (ssh_workspace(c, 0, &w))
		return;
	if (store_ssh_keys_get(c->s, w.id, &text, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	keys = json_loads(text, 0, NULL);
	free(text);
	api_ok(c, 200, json_pack("{s:o}", "keys", json_is_array(keys) ? keys : json_array()));
}

void ssh_keys_put(struct api_ctx *c)
{
	static const char *const allowed[] = {"keys", NULL};
	struct workspace w;
	json_t *b = api_body(c, allowed, 0), *keys, *k;
	char *text;
	size_t i;

	if (!b)
		return;
	c->body = b;
	keys = json_object_get(b, "keys");
	if (!keys) {
		err_set(&c->err, 400, "invalid_request", "field \"keys\" is required");
	} else if (!json_is_array(keys) || json_array_size(keys) > SSH_KEYS_MAX) {
		err_set(&c->err, 400, "invalid_type", "keys must be an array of at most %d strings",
			SSH_KEYS_MAX);
	} else {
		json_array_foreach (keys, i, k) {
			if (!json_is_string(k)) {
				err_set(&c->err, 400, "invalid_type", "keys[%zu] must be a string",
					i);
				break;
			}
			if (ssh_key_check(json_string_value(k), json_string_length(k), i, &c->err))
				break;
		}
	}
	if (c->err.status || ssh_workspace(c, 1, &w)) {
		api_fail(c, &c->err);
		return;
	}
	text = json_dumps(keys, JSON_COMPACT);
	if (store_ssh_keys_put(c->s, w.id, text, now_ms(), &c->err)) {
		free(text);
		api_fail(c, &c->err);
		return;
	}
	free(text);
	c->audit_detail = json_pack("{s:I}", "keys", (json_int_t)json_array_size(keys));
	api_ok(c, 200, json_pack("{s:O}", "keys", keys));
}
