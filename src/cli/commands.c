/* The commands: each one request (or a few), then a table for people or the
 * API's JSON for scripts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "common/xalloc.h"

#define WAIT_POLL_US 500000

/* "/api/desktops" + "/" + escaped id + suffix. */
static char *api_path(const char *prefix, const char *id, const char *suffix)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, prefix);
	if (id) {
		buf_puts(&b, "/");
		cli_url_escape(&b, id);
	}
	if (suffix)
		buf_puts(&b, suffix);
	return buf_detach(&b, NULL);
}

void cli_query_add(struct buf *b, const char *name, const char *value)
{
	if (!value)
		return;
	buf_puts(b, strchr(b->data ? b->data : "", '?') ? "&" : "?");
	buf_puts(b, name);
	buf_puts(b, "=");
	cli_url_escape(b, value);
}

/* Reports an error, with a hint when the server wants a key we lack. */
static int fail(struct cli_ctx *ctx, const struct err *err)
{
	int rc = cli_fail(err);

	if (err->status == 401 && !ctx->key)
		fputs("bureau: no API key: run `bureau login`, or set BUREAU_API_KEY\n", stderr);
	return rc;
}

void cli_print_table(struct cli_ctx *ctx, struct table *t)
{
	struct buf b = BUF_INIT;

	table_render(t, &b);
	fwrite(b.data, 1, b.len, ctx->out);
	buf_release(&b);
	table_release(t);
}

void cli_print_list(struct cli_ctx *ctx, json_t *arr, int ncols, const char *const headers[],
		    const char *const fields[])
{
	struct table t;
	size_t i;
	json_t *item;

	table_init(&t, ncols, headers);
	json_array_foreach(arr, i, item)
	{
		char *cells[16];

		for (int c = 0; c < ncols; c++)
			cells[c] = cli_cell(json_object_get(item, fields[c]));
		table_add(&t, (const char *const *)cells);
		for (int c = 0; c < ncols; c++)
			free(cells[c]);
	}
	cli_print_table(ctx, &t);
}

/* One object as "label  value" lines; fields come in (key, label) pairs. */
static void print_fields(struct cli_ctx *ctx, json_t *obj, const char *const fields[][2])
{
	struct table t;
	int first = 1;

	for (int i = 0; fields[i][0]; i++) {
		json_t *v = json_object_get(obj, fields[i][0]);
		char *cell;

		if (!v)
			continue;
		cell = cli_cell(v);
		if (first) {
			const char *row[2] = {fields[i][1], cell};
			table_init(&t, 2, row);
			first = 0;
		} else {
			const char *row[2] = {fields[i][1], cell};
			table_add(&t, row);
		}
		free(cell);
	}
	if (!first)
		cli_print_table(ctx, &t);
}

static const char *const desktop_fields[][2] = {
    {"id", "id"},
    {"name", "name"},
    {"workspaceId", "workspace"},
    {"state", "state"},
    {"desiredState", "desired state"},
    {"reason", "reason"},
    {"tier", "tier"},
    {"vcpus", "vcpus"},
    {"memoryMb", "memory MB"},
    {"diskGb", "disk GB"},
    {"image", "image"},
    {"imageVersion", "image version"},
    {"createdAt", "created"},
    {"updatedAt", "updated"},
    {"stateChangedAt", "state changed"},
    {"readyMs", "ready ms"},
    {NULL, NULL},
};

static void print_desktop(struct cli_ctx *ctx, json_t *d)
{
	if (ctx->args->json)
		cli_print_json(ctx, d);
	else
		print_fields(ctx, d, desktop_fields);
}

int cli_workspace_resolve(struct cli_ctx *ctx, char **out, struct err *err)
{
	const char *ws = ctx->args->workspace ? ctx->args->workspace : ctx->workspace;
	json_t *list, *w;
	size_t i;

	*out = NULL;
	if (!ws)
		return 0;
	if (strncmp(ws, "ws_", 3) == 0) {
		*out = xstrdup(ws);
		return 0;
	}
	if (cli_api(ctx, "GET", "/api/workspaces", NULL, &list, err))
		return -1;
	json_array_foreach(json_object_get(list, "workspaces"), i, w)
	{
		const char *name = json_string_value(json_object_get(w, "name"));
		const char *id = json_string_value(json_object_get(w, "id"));

		if (name && id && strcmp(name, ws) == 0 && !*out)
			*out = xstrdup(id);
	}
	json_decref(list);
	if (!*out)
		return err_set(err, 404, "not_found", "no workspace named \"%s\"", ws);
	return 0;
}

static int desktop_path(struct cli_ctx *ctx, const char *ref, char **path, struct err *err);

int cli_desktop_path(struct cli_ctx *ctx, const char *ref, char **path, struct err *err)
{
	return desktop_path(ctx, ref, path, err);
}

/* The id of a desktop given by id ("dsk_...") or by name. */
static int desktop_id(struct cli_ctx *ctx, const char *ref, char **id, struct err *err)
{
	struct buf q = BUF_INIT;
	json_t *list, *d;
	const char *found = NULL;
	char *ws;
	int matches = 0, rc = 0;
	size_t i;

	*id = NULL;
	if (strncmp(ref, "dsk_", 4) == 0) {
		*id = xstrdup(ref);
		return 0;
	}
	if (cli_workspace_resolve(ctx, &ws, err))
		return -1;
	buf_puts(&q, "/api/desktops");
	cli_query_add(&q, "workspaceId", ws);
	free(ws);
	rc = cli_api(ctx, "GET", q.data, NULL, &list, err);
	buf_release(&q);
	if (rc)
		return -1;
	json_array_foreach(json_object_get(list, "desktops"), i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));

		if (name && strcmp(name, ref) == 0) {
			found = json_string_value(json_object_get(d, "id"));
			matches++;
		}
	}
	if (matches == 1 && found)
		*id = xstrdup(found);
	else if (matches == 0)
		rc = err_set(err, 404, "not_found", "no desktop named \"%s\"", ref);
	else
		rc =
		    err_set(err, 409, "ambiguous",
			    "%d desktops are named \"%s\": use an id or --workspace", matches, ref);
	json_decref(list);
	return rc;
}

/* The API path of a desktop given by id or by name. */
static int desktop_path(struct cli_ctx *ctx, const char *ref, char **path, struct err *err)
{
	char *id;

	*path = NULL;
	if (desktop_id(ctx, ref, &id, err))
		return -1;
	*path = api_path("/api/desktops", id, NULL);
	free(id);
	return 0;
}

/* Polls the desktop until cli_wait_check says done or failed, or the
 * timeout passes. *last (may be NULL) gets the final desktop. */
static int wait_for(struct cli_ctx *ctx, const char *path, const char *target, const char *since,
		    json_t **last, struct err *err)
{
	int64_t deadline = mono_ms() + (int64_t)ctx->args->timeout_s * 1000;
	int tty = isatty(STDERR_FILENO);
	char shown[32] = "";

	if (last)
		*last = NULL;
	for (;;) {
		json_t *d;
		int rc;

		if (cli_api(ctx, "GET", path, NULL, &d, err)) {
			if (err->status == 404 && strcmp(target, "gone") == 0)
				return 0;
			if (strcmp(err->code, "unreachable") != 0 || mono_ms() > deadline)
				return -1;
		} else {
			const char *state = json_string_value(json_object_get(d, "state"));

			if (tty && state && strcmp(state, shown) != 0) {
				fprintf(stderr, "bureau: %s\n", state);
				snprintf(shown, sizeof(shown), "%s", state);
			}
			rc = cli_wait_check(d, target, since, err);
			if (rc != 0) {
				if (last && rc > 0)
					*last = d;
				else
					json_decref(d);
				return rc > 0 ? 0 : -1;
			}
			json_decref(d);
		}
		if (mono_ms() > deadline)
			return err_set(err, 408, "timeout", "the desktop is not %s after %d s",
				       target, ctx->args->timeout_s);
		usleep(WAIT_POLL_US);
	}
}

int cli_desktop_wait(struct cli_ctx *ctx, const char *path, const char *target, const char *since,
		     json_t **last, struct err *err)
{
	return wait_for(ctx, path, target, since, last, err);
}

int cmd_desktops_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID", "NAME", "STATE", "TIER", "IMAGE", "CREATED"};
	static const char *const fields[] = {"id", "name", "state", "tier", "image", "createdAt"};
	struct err err = ERR_INIT;
	struct buf q = BUF_INIT;
	json_t *list;
	char *ws;
	int rc;

	if (cli_workspace_resolve(ctx, &ws, &err))
		return fail(ctx, &err);
	buf_puts(&q, "/api/desktops");
	cli_query_add(&q, "workspaceId", ws);
	free(ws);
	rc = cli_api(ctx, "GET", q.data, NULL, &list, &err);
	buf_release(&q);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, list);
	else
		cli_print_list(ctx, json_object_get(list, "desktops"), 6, headers, fields);
	json_decref(list);
	return CLI_EXIT_OK;
}

/* Prints the desktop, after waiting for target when --wait was given. */
static int finish(struct cli_ctx *ctx, json_t *d, const char *target, const char *since)
{
	struct err err = ERR_INIT;
	json_t *final = NULL;
	char *path;
	int rc;

	if (!ctx->args->wait) {
		print_desktop(ctx, d);
		return CLI_EXIT_OK;
	}
	path = api_path("/api/desktops", json_string_value(json_object_get(d, "id")), NULL);
	rc = wait_for(ctx, path, target, since, &final, &err);
	free(path);
	if (rc)
		return fail(ctx, &err);
	print_desktop(ctx, final ? final : d);
	json_decref(final);
	return CLI_EXIT_OK;
}

/* A fork's "fromSnapshot" and workspace. With --from-desktop the snapshot
 * may be a name of that desktop's, and the fork goes to that desktop's
 * workspace unless --workspace says otherwise (the server checks they are
 * the same); without, it must be an id. Returns 0, or -1 with err. */
static int fork_source(struct cli_ctx *ctx, json_t *body, char **ws, struct err *err)
{
	const char *ref = ctx->args->from_snapshot;
	char *path, *sid;
	json_t *src;
	int rc;

	if (!ctx->args->from_desktop) {
		if (strncmp(ref, "snp_", 4) != 0)
			return err_set(err, 2, "usage",
				       "--from-snapshot %s: a snapshot name needs --from-desktop "
				       "(or give its id, snp_...)",
				       ref);
		json_object_set_new(body, "fromSnapshot", json_string(ref));
		return 0;
	}
	if (desktop_path(ctx, ctx->args->from_desktop, &path, err))
		return -1;
	rc = cli_api(ctx, "GET", path, NULL, &src, err);
	if (rc == 0) {
		rc = cli_snapshot_id(ctx, path, ref, &sid, err);
		if (rc == 0) {
			json_object_set_new(body, "fromSnapshot", json_string(sid));
			free(sid);
		}
		if (rc == 0 && !ctx->args->workspace) {
			free(*ws);
			*ws = xstrdup(json_string_value(json_object_get(src, "workspaceId")) ?: "");
		}
		json_decref(src);
	}
	free(path);
	return rc;
}

int cmd_desktops_create(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	json_t *body = json_object(), *d;
	char *ws;
	int rc;

	if (cli_workspace_resolve(ctx, &ws, &err)) {
		json_decref(body);
		return fail(ctx, &err);
	}
	if (ctx->args->from_snapshot && fork_source(ctx, body, &ws, &err)) {
		free(ws);
		json_decref(body);
		return fail(ctx, &err);
	}
	json_object_set_new(body, "name", json_string(ctx->args->pos[0]));
	if (ws && *ws)
		json_object_set_new(body, "workspaceId", json_string(ws));
	if (ctx->args->tier)
		json_object_set_new(body, "tier", json_string(ctx->args->tier));
	if (ctx->args->image)
		json_object_set_new(body, "image", json_string(ctx->args->image));
	free(ws);
	rc = cli_api(ctx, "POST", "/api/desktops", body, &d, &err);
	json_decref(body);
	if (rc)
		return fail(ctx, &err);
	rc = finish(ctx, d, "running", NULL);
	json_decref(d);
	return rc;
}

int cmd_desktops_get(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	char *path;
	json_t *d;
	int rc;

	if (desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	rc = cli_api(ctx, "GET", path, NULL, &d, &err);
	free(path);
	if (rc)
		return fail(ctx, &err);
	print_desktop(ctx, d);
	json_decref(d);
	return CLI_EXIT_OK;
}

/* The stateChangedAt of each desktop, for restart --wait (NULL entries
 * where the desktop cannot be read: the bulk answer will say why). */
static void bulk_since(struct cli_ctx *ctx, json_t *ids, char *since[])
{
	struct err err = ERR_INIT;
	json_t *v, *d;
	size_t i;

	json_array_foreach(ids, i, v)
	{
		char *path = api_path("/api/desktops", json_string_value(v), NULL);

		since[i] = NULL;
		if (cli_api(ctx, "GET", path, NULL, &d, &err) == 0) {
			since[i] = xstrdup(
			    json_string_value(json_object_get(d, "stateChangedAt")) ?: "");
			json_decref(d);
		}
		free(path);
	}
}

/* Waits for each desktop the bulk request acted on; its entry gets the
 * final desktop, or the error of the wait. Returns the entries failed. */
static int bulk_wait(struct cli_ctx *ctx, json_t *results, const char *target, char *since[])
{
	json_t *e;
	size_t i;
	int failed = 0;

	json_array_foreach(results, i, e)
	{
		struct err err = ERR_INIT;
		const char *id = json_string_value(json_object_get(e, "id"));
		json_t *final = NULL;
		char *path;

		if (json_integer_value(json_object_get(e, "status")) >= 400 || !id)
			continue;
		path = api_path("/api/desktops", id, NULL);
		if (wait_for(ctx, path, target, since[i], &final, &err)) {
			json_object_set_new(e, "error", json_pack("{s:s, s:s}", "code", err.code,
								  "message", err.msg));
			failed++;
		} else if (final) {
			json_object_set_new(e, "desktop", final);
		} else {
			json_object_set_new(json_object_get(e, "desktop"), "state",
					    json_string("destroyed"));
		}
		free(path);
	}
	return failed;
}

/* One line per desktop: its id, the status its action got, and its state
 * or the error. */
static void bulk_print(struct cli_ctx *ctx, json_t *results)
{
	static const char *const headers[] = {"ID", "STATUS", "STATE", "DESIRED", "ERROR"};
	static const char *const fields[] = {"id", "status", "state", "desiredState", "message"};
	json_t *rows = json_array(), *e;
	size_t i;

	json_array_foreach(results, i, e)
	{
		json_t *d = json_object_get(e, "desktop"), *er = json_object_get(e, "error");

		json_array_append_new(
		    rows, json_pack("{s:O, s:O, s:O?, s:O?, s:O?}", "id", json_object_get(e, "id"),
				    "status", json_object_get(e, "status"), "state",
				    json_object_get(d, "state"), "desiredState",
				    json_object_get(d, "desiredState"), "message",
				    json_object_get(er, "message")));
	}
	cli_print_list(ctx, rows, 5, headers, fields);
	json_decref(rows);
}

/* Several desktops: one POST /api/desktops/bulk, then maybe wait for each
 * one acted on. Exits as the first refused desktop's error would (1, or 4
 * when not found). */
static int desktops_bulk(struct cli_ctx *ctx, const char *action, const char *target)
{
	struct err err = ERR_INIT;
	json_t *ids = json_array(), *body, *ans, *e;
	char *since[CLI_MAX_POSITIONAL] = {NULL};
	int rc = CLI_EXIT_OK;
	size_t i;

	for (int n = 0; n < ctx->args->npos; n++) {
		char *id;

		if (desktop_id(ctx, ctx->args->pos[n], &id, &err)) {
			json_decref(ids);
			return fail(ctx, &err);
		}
		json_array_append_new(ids, json_string(id));
		free(id);
	}
	if (ctx->args->wait && strcmp(action, "restart") == 0)
		bulk_since(ctx, ids, since);
	body = json_pack("{s:s, s:o}", "action", action, "ids", ids);
	rc = cli_api(ctx, "POST", "/api/desktops/bulk", body, &ans, &err);
	json_decref(body);
	if (rc) {
		rc = fail(ctx, &err);
		goto out;
	}
	if (ctx->args->wait && bulk_wait(ctx, json_object_get(ans, "results"), target, since))
		rc = CLI_EXIT_API;
	json_array_foreach(json_object_get(ans, "results"), i, e)
	{
		json_int_t status = json_integer_value(json_object_get(e, "status"));

		if (rc == CLI_EXIT_OK && status >= 400)
			rc = status == 404 ? CLI_EXIT_NOT_FOUND : CLI_EXIT_API;
	}
	if (ctx->args->json)
		cli_print_json(ctx, ans);
	else
		bulk_print(ctx, json_object_get(ans, "results"));
	json_decref(ans);
out:
	for (i = 0; i < CLI_MAX_POSITIONAL; i++)
		free(since[i]);
	return rc;
}

/* start, stop, restart: POST .../ACTION, then maybe wait for target. */
static int desktop_action(struct cli_ctx *ctx, const char *action, const char *target)
{
	struct err err = ERR_INIT;
	char *path, *apath, *since = NULL;
	json_t *d;
	int rc;

	if (ctx->args->npos > 1)
		return desktops_bulk(ctx, action, target);
	if (desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	if (ctx->args->wait && strcmp(action, "restart") == 0) {
		/* done means running again, with a newer stateChangedAt */
		if (cli_api(ctx, "GET", path, NULL, &d, &err)) {
			free(path);
			return fail(ctx, &err);
		}
		since = xstrdup(json_string_value(json_object_get(d, "stateChangedAt")) ?: "");
		json_decref(d);
	}
	apath = xasprintf("%s/%s", path, action);
	rc = cli_api(ctx, "POST", apath, NULL, &d, &err);
	free(apath);
	free(path);
	if (rc) {
		free(since);
		return fail(ctx, &err);
	}
	rc = finish(ctx, d, target, since);
	json_decref(d);
	free(since);
	return rc;
}

int cmd_desktops_start(struct cli_ctx *ctx)
{
	return desktop_action(ctx, "start", "running");
}

int cmd_desktops_stop(struct cli_ctx *ctx)
{
	return desktop_action(ctx, "stop", "stopped");
}

int cmd_desktops_restart(struct cli_ctx *ctx)
{
	return desktop_action(ctx, "restart", "running");
}

int cmd_desktops_rm(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	const char *id;
	char *path;
	json_t *d;
	int rc;

	if (ctx->args->npos > 1)
		return desktops_bulk(ctx, "destroy", "gone");
	if (desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	rc = cli_api(ctx, "DELETE", path, NULL, &d, &err);
	if (rc == 0 && ctx->args->wait)
		rc = wait_for(ctx, path, "gone", NULL, NULL, &err);
	free(path);
	if (rc) {
		json_decref(d);
		return fail(ctx, &err);
	}
	id = json_string_value(json_object_get(d, "id"));
	if (ctx->args->json)
		cli_print_json(ctx, d);
	else
		fprintf(ctx->out, "%s %s\n", id ? id : ctx->args->pos[0],
			ctx->args->wait ? "destroyed" : "destroying");
	json_decref(d);
	return CLI_EXIT_OK;
}

int cmd_keys_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID",	 "NAME",      "PREFIX",
					      "CREATED", "LAST USED", "REVOKED"};
	static const char *const fields[] = {"id",	  "name",	"prefix",
					     "createdAt", "lastUsedAt", "revokedAt"};
	struct err err = ERR_INIT;
	json_t *list;

	if (cli_api(ctx, "GET", "/api/api-keys", NULL, &list, &err))
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, list);
	else
		cli_print_list(ctx, json_object_get(list, "apiKeys"), 6, headers, fields);
	json_decref(list);
	return CLI_EXIT_OK;
}

int cmd_keys_create(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	json_t *body = json_pack("{s:s}", "name", ctx->args->pos[0]), *k;
	const char *key, *id;
	int rc;

	rc = cli_api(ctx, "POST", "/api/api-keys", body, &k, &err);
	json_decref(body);
	if (rc)
		return fail(ctx, &err);
	key = json_string_value(json_object_get(k, "key"));
	id = json_string_value(json_object_get(k, "id"));
	if (ctx->args->json) {
		cli_print_json(ctx, k);
	} else {
		fprintf(stderr, "Created API key %s. It is shown this once; store it now:\n",
			id ? id : "?");
		fprintf(ctx->out, "%s\n", key ? key : "");
	}
	json_decref(k);
	return CLI_EXIT_OK;
}

int cmd_keys_rm(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	char *path = api_path("/api/api-keys", ctx->args->pos[0], NULL);
	int rc = cli_api(ctx, "DELETE", path, NULL, NULL, &err);

	free(path);
	if (rc)
		return fail(ctx, &err);
	if (!ctx->args->json)
		fprintf(ctx->out, "%s revoked\n", ctx->args->pos[0]);
	return CLI_EXIT_OK;
}

int cmd_workspaces_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID", "NAME", "ROLE", "PLAN LIMIT", "CREATED"};
	static const char *const fields[] = {"id", "name", "role", "planLimit", "createdAt"};
	struct err err = ERR_INIT;
	json_t *list;

	if (cli_api(ctx, "GET", "/api/workspaces", NULL, &list, &err))
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, list);
	else
		cli_print_list(ctx, json_object_get(list, "workspaces"), 5, headers, fields);
	json_decref(list);
	return CLI_EXIT_OK;
}

int cmd_workspaces_create(struct cli_ctx *ctx)
{
	static const char *const fields[][2] = {
	    {"id", "id"},
	    {"name", "name"},
	    {"role", "role"},
	    {"planLimit", "plan limit"},
	    {"createdAt", "created"},
	    {NULL, NULL},
	};
	struct err err = ERR_INIT;
	json_t *body = json_pack("{s:s}", "name", ctx->args->pos[0]), *w;
	int rc;

	rc = cli_api(ctx, "POST", "/api/workspaces", body, &w, &err);
	json_decref(body);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, w);
	else
		print_fields(ctx, w, fields);
	json_decref(w);
	return CLI_EXIT_OK;
}

int cmd_workspaces_members(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"USER", "EMAIL", "ROLE", "SINCE"};
	static const char *const fields[] = {"userId", "email", "role", "createdAt"};
	struct err err = ERR_INIT;
	json_t *list;
	char *ws, *path;
	int rc;

	ctx->args->workspace = ctx->args->pos[0];
	if (cli_workspace_resolve(ctx, &ws, &err))
		return fail(ctx, &err);
	path = api_path("/api/workspaces", ws, "/members");
	free(ws);
	rc = cli_api(ctx, "GET", path, NULL, &list, &err);
	free(path);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, list);
	else
		cli_print_list(ctx, json_object_get(list, "members"), 4, headers, fields);
	json_decref(list);
	return CLI_EXIT_OK;
}

static int check_date(const char *flag, const char *s, struct err *err)
{
	int64_t ms;

	if (s && time_parse_iso(s, &ms))
		return err_set(err, 2, "usage", "--%s wants a date like 2026-11-01, not \"%s\"",
			       flag, s);
	return 0;
}

static double number(json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : 0.0;
}

static void print_usage_report(struct cli_ctx *ctx, json_t *u)
{
	static const char *const dh[] = {"DESKTOP", "NAME", "TIER", "HOURS", "COST"};
	static const char *const th[] = {"TIER", "HOURS", "COST"};
	const char *cur = json_string_value(json_object_get(u, "currency"));
	struct table t;
	json_t *row;
	size_t i;

	cur = cur ? cur : "";
	fprintf(ctx->out, "Workspace %s, %s to %s\n\n",
		json_string_value(json_object_get(u, "workspaceId")) ?: "-",
		json_string_value(json_object_get(u, "from")) ?: "-",
		json_string_value(json_object_get(u, "to")) ?: "-");
	table_init(&t, 5, dh);
	json_array_foreach(json_object_get(u, "desktops"), i, row)
	{
		char *id = cli_cell(json_object_get(row, "desktopId"));
		char *name = cli_cell(json_object_get(row, "name"));
		char *tier = cli_cell(json_object_get(row, "tier"));
		char *hours = xasprintf("%.2f", number(json_object_get(row, "hours")));
		char *cost = xasprintf("%.2f %s", number(json_object_get(row, "cost")), cur);
		const char *cells[5] = {id, name, tier, hours, cost};

		table_add(&t, cells);
		free(id), free(name), free(tier), free(hours), free(cost);
	}
	cli_print_table(ctx, &t);
	fputc('\n', ctx->out);
	table_init(&t, 3, th);
	json_array_foreach(json_object_get(u, "tiers"), i, row)
	{
		char *tier = cli_cell(json_object_get(row, "tier"));
		char *hours = xasprintf("%.2f", number(json_object_get(row, "hours")));
		char *cost = xasprintf("%.2f %s", number(json_object_get(row, "cost")), cur);
		const char *cells[3] = {tier, hours, cost};

		table_add(&t, cells);
		free(tier), free(hours), free(cost);
	}
	cli_print_table(ctx, &t);
	fprintf(ctx->out, "\nTotal: %.2f hours, %.2f %s\n",
		number(json_object_get(u, "totalHours")), number(json_object_get(u, "totalCost")),
		cur);
}

int cmd_usage(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	struct buf q = BUF_INIT;
	json_t *u;
	char *ws;
	int rc;

	if (check_date("from", ctx->args->from, &err) || check_date("to", ctx->args->to, &err))
		return fail(ctx, &err);
	/* without one, the server reports on the caller's first workspace */
	if (cli_workspace_resolve(ctx, &ws, &err))
		return fail(ctx, &err);
	buf_puts(&q, "/api/usage");
	cli_query_add(&q, "workspaceId", ws);
	cli_query_add(&q, "from", ctx->args->from);
	cli_query_add(&q, "to", ctx->args->to);
	free(ws);
	rc = cli_api(ctx, "GET", q.data, NULL, &u, &err);
	buf_release(&q);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, u);
	else
		print_usage_report(ctx, u);
	json_decref(u);
	return CLI_EXIT_OK;
}

int cmd_health(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	json_t *h;

	if (cli_api(ctx, "GET", "/api/health", NULL, &h, &err))
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, h);
	else
		fprintf(ctx->out, "%s: %s, bureaud %s, accel %s\n", ctx->endpoint,
			json_string_value(json_object_get(h, "status")) ?: "?",
			json_string_value(json_object_get(h, "version")) ?: "?",
			json_string_value(json_object_get(h, "accel")) ?: "?");
	json_decref(h);
	return CLI_EXIT_OK;
}

int cmd_screenshot(struct cli_ctx *ctx)
{
	const char *file = ctx->args->pos[1];
	struct err err = ERR_INIT;
	struct cli_reply r;
	char *path, *spath;
	int rc;

	if (desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	spath = xasprintf("%s/screenshot", path);
	rc = cli_http(ctx, "GET", spath, NULL, &r, &err);
	free(spath);
	free(path);
	if (rc)
		return fail(ctx, &err);
	if (r.status >= 400) {
		cli_err_from_reply(r.status, r.body.data, r.body.len, &err);
		cli_reply_release(&r);
		return fail(ctx, &err);
	}
	if (strncmp(r.content_type, "image/png", 9) != 0) {
		cli_reply_release(&r);
		err_set(&err, 502, "bad_response", "expected image/png, got \"%s\"",
			r.content_type);
		return fail(ctx, &err);
	}
	if (strcmp(file, "-") == 0) {
		rc = fwrite(r.body.data, 1, r.body.len, ctx->out) == r.body.len ? 0 : -1;
	} else {
		FILE *f = fopen(file, "wb");

		rc = -1;
		if (f) {
			rc = fwrite(r.body.data, 1, r.body.len, f) == r.body.len ? 0 : -1;
			if (fclose(f))
				rc = -1;
		}
	}
	cli_reply_release(&r);
	if (rc) {
		err_sys(&err, errno, "write %s", file);
		return fail(ctx, &err);
	}
	if (strcmp(file, "-") != 0 && !ctx->args->json)
		fprintf(stderr, "saved %s\n", file);
	return CLI_EXIT_OK;
}
