/* Commands over a desktop's snapshots: list, take, restore (roll back) and
 * delete. The server does the work after answering 202; --wait polls the
 * desktop's list (and, for a restore, the desktop) until it is done. Forks
 * are `desktops create NAME --from-snapshot` (commands.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "common/xalloc.h"

#define SNAP_POLL_US 500000

static int fail(struct cli_ctx *ctx, const struct err *err)
{
	int rc = cli_fail(err);

	if (err->status == 401 && !ctx->key)
		fputs("bureau: no API key: run `bureau login`, or set BUREAU_API_KEY\n", stderr);
	return rc;
}

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

int cli_snapshot_id(struct cli_ctx *ctx, const char *dpath, const char *ref, char **id,
		    struct err *err)
{
	char *path;
	json_t *list, *s;
	size_t i;
	int rc;

	*id = NULL;
	if (strncmp(ref, "snp_", 4) == 0) {
		*id = xstrdup(ref);
		return 0;
	}
	path = xasprintf("%s/snapshots", dpath);
	rc = cli_api(ctx, "GET", path, NULL, &list, err);
	free(path);
	if (rc)
		return -1;
	json_array_foreach (json_object_get(list, "snapshots"), i, s) {
		const char *name = str(s, "name"), *sid = str(s, "id");

		if (name && sid && strcmp(name, ref) == 0 && !*id)
			*id = xstrdup(sid);
	}
	json_decref(list);
	if (!*id)
		return err_set(err, 404, "not_found", "the desktop has no snapshot named \"%s\"",
			       ref);
	return 0;
}

/* The snapshot sid in the desktop's list, or NULL (gone) in *out. */
static int snapshot_get(struct cli_ctx *ctx, const char *dpath, const char *sid, json_t **out,
			struct err *err)
{
	char *path = xasprintf("%s/snapshots", dpath);
	json_t *list, *s;
	size_t i;
	int rc;

	*out = NULL;
	rc = cli_api(ctx, "GET", path, NULL, &list, err);
	free(path);
	if (rc)
		return -1;
	json_array_foreach (json_object_get(list, "snapshots"), i, s) {
		const char *id = str(s, "id");

		if (id && strcmp(id, sid) == 0) {
			*out = json_incref(s);
			break;
		}
	}
	json_decref(list);
	return 0;
}

/* Polls the snapshot until it leaves `busy` (creating, restoring or
 * deleting). *last gets it then, or NULL when it is gone. A dropped
 * connection is retried until the timeout. */
static int snapshot_settle(struct cli_ctx *ctx, const char *dpath, const char *sid,
			   const char *busy, json_t **last, struct err *err)
{
	int64_t deadline = mono_ms() + (int64_t)ctx->args->timeout_s * 1000;

	for (;;) {
		json_t *s;

		if (snapshot_get(ctx, dpath, sid, &s, err) == 0) {
			const char *state = str(s, "state");

			if (!s || !state || strcmp(state, busy) != 0) {
				*last = s;
				return 0;
			}
			json_decref(s);
		} else if (strcmp(err->code, "unreachable") != 0 || mono_ms() > deadline) {
			return -1;
		}
		if (mono_ms() > deadline)
			return err_set(err, 408, "timeout", "snapshot %s is still %s after %d s",
				       sid, busy, ctx->args->timeout_s);
		usleep(SNAP_POLL_US);
	}
}

static const char *const snapshot_fields[][2] = {
    {"id", "id"},
    {"name", "name"},
    {"desktopId", "desktop"},
    {"state", "state"},
    {"reason", "reason"},
    {"kind", "kind"},
    {"sizeBytes", "size"},
    {"tier", "tier"},
    {"image", "image"},
    {"imageVersion", "image version"},
    {"createdAt", "created"},
    {NULL, NULL},
};

static void print_snapshot(struct cli_ctx *ctx, json_t *s)
{
	struct table t;

	if (ctx->args->json) {
		cli_print_json(ctx, s);
		return;
	}
	for (int i = 0; snapshot_fields[i][0]; i++) {
		json_t *v = json_object_get(s, snapshot_fields[i][0]);
		char *cell =
		    strcmp(snapshot_fields[i][0], "sizeBytes") ? cli_cell(v) : cli_size_cell(v);
		const char *row[2] = {snapshot_fields[i][1], cell};

		if (i == 0)
			table_init(&t, 2, row);
		else
			table_add(&t, row);
		free(cell);
	}
	cli_print_table(ctx, &t);
}

int cmd_snapshots_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID",   "NAME",	 "STATE", "KIND",
					      "SIZE", "CREATED", "REASON"};
	struct err err = ERR_INIT;
	struct table t;
	char *dpath, *path;
	json_t *list, *s;
	size_t i;
	int rc;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &dpath, &err))
		return fail(ctx, &err);
	path = xasprintf("%s/snapshots", dpath);
	rc = cli_api(ctx, "GET", path, NULL, &list, &err);
	free(path);
	free(dpath);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json) {
		cli_print_json(ctx, list);
		json_decref(list);
		return CLI_EXIT_OK;
	}
	table_init(&t, 7, headers);
	json_array_foreach (json_object_get(list, "snapshots"), i, s) {
		char *c[7] = {cli_cell(json_object_get(s, "id")),
			      cli_cell(json_object_get(s, "name")),
			      cli_cell(json_object_get(s, "state")),
			      cli_cell(json_object_get(s, "kind")),
			      cli_size_cell(json_object_get(s, "sizeBytes")),
			      cli_cell(json_object_get(s, "createdAt")),
			      cli_cell(json_object_get(s, "reason"))};

		table_add(&t, (const char *const *)c);
		for (int k = 0; k < 7; k++)
			free(c[k]);
	}
	cli_print_table(ctx, &t);
	json_decref(list);
	return CLI_EXIT_OK;
}

/* The name a snapshot gets without --name: the time, in UTC. */
static void default_name(char *out, size_t n)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, n, "snap-%Y%m%d-%H%M%S", &tm);
}

int cmd_snapshots_create(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	const char *name = ctx->args->name;
	char def[40], *dpath, *path;
	json_t *body, *s, *done = NULL;
	int rc;

	if (!name) {
		default_name(def, sizeof(def));
		name = def;
	}
	if (cli_desktop_path(ctx, ctx->args->pos[0], &dpath, &err))
		return fail(ctx, &err);
	body = json_pack("{s:s}", "name", name);
	path = xasprintf("%s/snapshots", dpath);
	rc = cli_api(ctx, "POST", path, body, &s, &err);
	free(path);
	json_decref(body);
	if (rc == 0 && ctx->args->wait) {
		rc = snapshot_settle(ctx, dpath, str(s, "id") ?: "", "creating", &done, &err);
		if (rc == 0 && !done)
			rc = err_set(&err, 409, "conflict", "snapshot %s is gone", str(s, "id"));
		else if (rc == 0 && strcmp(str(done, "state") ?: "", "ready") != 0)
			rc = err_set(&err, 409, "snapshot_failed", "snapshot %s %s: %s",
				     str(done, "id"), str(done, "state") ?: "?",
				     str(done, "reason") ?: "no reason given");
	}
	free(dpath);
	if (rc) {
		json_decref(s);
		json_decref(done);
		return fail(ctx, &err);
	}
	print_snapshot(ctx, done ? done : s);
	json_decref(s);
	json_decref(done);
	return CLI_EXIT_OK;
}

/* After the restore request: the snapshot settles (a reason then says the
 * restore failed), and a desktop that ran runs again, after a newer
 * stateChangedAt than `since`. *last gets the settled snapshot. */
static int restore_wait(struct cli_ctx *ctx, const char *dpath, const char *sid, int was_running,
			const char *since, json_t **last, struct err *err)
{
	if (snapshot_settle(ctx, dpath, sid, "restoring", last, err))
		return -1;
	if (!*last)
		return err_set(err, 409, "conflict", "snapshot %s is gone", sid);
	if (str(*last, "reason"))
		return err_set(err, 409, "restore_failed", "the restore of %s failed: %s", sid,
			       str(*last, "reason"));
	if (!was_running)
		return 0;
	return cli_desktop_wait(ctx, dpath, "running", since, NULL, err);
}

int cmd_snapshots_restore(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	char *dpath, *path = NULL, *sid = NULL, *since = NULL;
	json_t *d = NULL, *s = NULL, *done = NULL;
	int rc, was_running = 0;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &dpath, &err))
		return fail(ctx, &err);
	rc = cli_snapshot_id(ctx, dpath, ctx->args->pos[1], &sid, &err);
	if (rc == 0 && ctx->args->wait) {
		/* done means running again, with a newer stateChangedAt */
		rc = cli_api(ctx, "GET", dpath, NULL, &d, &err);
		if (rc == 0) {
			was_running = strcmp(str(d, "state") ?: "", "running") == 0;
			since = xstrdup(str(d, "stateChangedAt") ?: "");
		}
	}
	if (rc == 0) {
		struct buf b = BUF_INIT;

		buf_puts(&b, dpath);
		buf_puts(&b, "/snapshots/");
		cli_url_escape(&b, sid);
		buf_puts(&b, "/restore");
		path = buf_detach(&b, NULL);
		rc = cli_api(ctx, "POST", path, NULL, &s, &err);
	}
	if (rc == 0 && ctx->args->wait)
		rc = restore_wait(ctx, dpath, sid, was_running, since, &done, &err);
	if (rc)
		rc = fail(ctx, &err);
	else
		print_snapshot(ctx, done ? done : s);
	json_decref(d);
	json_decref(s);
	json_decref(done);
	free(since);
	free(path);
	free(sid);
	free(dpath);
	return rc;
}

int cmd_snapshots_rm(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	char *dpath, *sid, *path;
	json_t *s = NULL, *done = NULL;
	struct buf b = BUF_INIT;
	int rc;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &dpath, &err))
		return fail(ctx, &err);
	if (cli_snapshot_id(ctx, dpath, ctx->args->pos[1], &sid, &err)) {
		free(dpath);
		return fail(ctx, &err);
	}
	buf_puts(&b, dpath);
	buf_puts(&b, "/snapshots/");
	cli_url_escape(&b, sid);
	path = buf_detach(&b, NULL);
	rc = cli_api(ctx, "DELETE", path, NULL, &s, &err);
	free(path);
	if (rc == 0 && ctx->args->wait) {
		rc = snapshot_settle(ctx, dpath, sid, "deleting", &done, &err);
		if (rc == 0 && done)
			rc = err_set(&err, 409, "snapshot_failed", "snapshot %s was not deleted: %s",
				     sid, str(done, "reason") ?: str(done, "state") ?: "?");
	}
	free(dpath);
	if (rc) {
		free(sid);
		json_decref(s);
		json_decref(done);
		return fail(ctx, &err);
	}
	if (ctx->args->json)
		cli_print_json(ctx, s);
	else
		fprintf(ctx->out, "%s %s\n", str(s, "id") ?: sid,
			ctx->args->wait ? "deleted" : "deleting");
	free(sid);
	json_decref(s);
	json_decref(done);
	return CLI_EXIT_OK;
}
