/* Commands over metrics, persistent services and alerts (issue 3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/xalloc.h"

static int fail(struct cli_ctx *ctx, const struct err *err)
{
	int rc = cli_fail(err);

	if (err->status == 401 && !ctx->key)
		fputs("bureau: no API key: run `bureau login`, or set BUREAU_API_KEY\n", stderr);
	return rc;
}

static double num(json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* GET on a desktop's sub-resource: the desktop path + suffix. */
static int desktop_get(struct cli_ctx *ctx, const char *ref, const char *suffix, json_t **out,
		       struct err *err)
{
	char *path, *full;
	int rc;

	if (cli_desktop_path(ctx, ref, &path, err))
		return -1;
	full = xasprintf("%s%s", path, suffix);
	rc = cli_api(ctx, "GET", full, NULL, out, err);
	free(full);
	free(path);
	return rc;
}

int cmd_metrics(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"TIME", "CPU %", "MEM %",	     "DISK %",
					      "LOAD", "PROCS", "QEMU CPU %", "QEMU RSS MB"};
	struct err err = ERR_INIT;
	struct buf q = BUF_INIT;
	struct table t;
	json_t *m, *s;
	size_t i;

	buf_puts(&q, "/metrics");
	if (ctx->args->since) {
		buf_puts(&q, "?since=");
		cli_url_escape(&q, ctx->args->since);
	}
	if (desktop_get(ctx, ctx->args->pos[0], q.data, &m, &err)) {
		buf_release(&q);
		return fail(ctx, &err);
	}
	buf_release(&q);
	if (ctx->args->json) {
		cli_print_json(ctx, m);
		json_decref(m);
		return CLI_EXIT_OK;
	}
	table_init(&t, 8, headers);
	json_array_foreach (json_object_get(m, "samples"), i, s) {
		json_t *host = json_object_get(s, "host");
		char *c[8];

		c[0] = cli_cell(json_object_get(s, "at"));
		c[1] = xasprintf("%.1f", num(json_object_get(s, "cpuPercent")));
		c[2] = xasprintf("%.1f",
				 num(json_object_get(json_object_get(s, "memory"), "percent")));
		c[3] =
		    xasprintf("%.1f", num(json_object_get(json_object_get(s, "disk"), "percent")));
		c[4] = xasprintf("%.2f", num(json_array_get(json_object_get(s, "load"), 0)));
		c[5] = cli_cell(json_object_get(s, "processes"));
		c[6] = json_is_object(host)
			   ? xasprintf("%.1f", num(json_object_get(host, "cpuPercent")))
			   : xstrdup("-");
		c[7] = json_is_object(host)
			   ? xasprintf("%.0f", num(json_object_get(host, "rssBytes")) / 1048576.0)
			   : xstrdup("-");
		table_add(&t, (const char *const *)c);
		for (int k = 0; k < 8; k++)
			free(c[k]);
	}
	cli_print_table(ctx, &t);
	json_decref(m);
	return CLI_EXIT_OK;
}

int cmd_services_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"NAME", "USER",	  "STATE",
					      "PID",  "RESTARTS", "COMMAND"};
	struct err err = ERR_INIT;
	struct table t;
	json_t *list, *s;
	size_t i;

	if (desktop_get(ctx, ctx->args->pos[0], "/services", &list, &err))
		return fail(ctx, &err);
	if (ctx->args->json) {
		cli_print_json(ctx, list);
		json_decref(list);
		return CLI_EXIT_OK;
	}
	table_init(&t, 6, headers);
	json_array_foreach (json_object_get(list, "services"), i, s) {
		json_t *st = json_object_get(s, "status");
		char *cmd = json_dumps(json_object_get(s, "command"), JSON_COMPACT);
		char *c[6] = {cli_cell(json_object_get(s, "name")),
			      cli_cell(json_object_get(s, "user")),
			      json_is_object(st) ? cli_cell(json_object_get(st, "state"))
						 : xstrdup("not running"),
			      cli_cell(json_object_get(st, "pid")),
			      cli_cell(json_object_get(st, "restarts")),
			      cmd ? cmd : xstrdup("")};

		table_add(&t, (const char *const *)c);
		for (int k = 0; k < 6; k++)
			free(c[k]);
	}
	cli_print_table(ctx, &t);
	json_decref(list);
	return CLI_EXIT_OK;
}

int cmd_services_add(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	json_t *body, *cmd = json_array(), *s;
	char *path, *full;
	int rc;

	for (int i = 2; i < ctx->args->npos; i++)
		json_array_append_new(cmd, json_string(ctx->args->pos[i]));
	body = json_pack("{s:s, s:o}", "name", ctx->args->pos[1], "command", cmd);
	if (ctx->args->user)
		json_object_set_new(body, "user", json_string(ctx->args->user));
	if (cli_desktop_path(ctx, ctx->args->pos[0], &path, &err)) {
		json_decref(body);
		return fail(ctx, &err);
	}
	full = xasprintf("%s/services", path);
	rc = cli_api(ctx, "POST", full, body, &s, &err);
	free(full);
	free(path);
	json_decref(body);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, s);
	else
		fprintf(ctx->out,
			"service %s added; it starts now if the desktop runs, and after "
			"every boot\n",
			ctx->args->pos[1]);
	json_decref(s);
	return CLI_EXIT_OK;
}

int cmd_services_rm(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	struct buf full = BUF_INIT;
	char *path;
	int rc;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	buf_printf(&full, "%s/services/", path);
	cli_url_escape(&full, ctx->args->pos[1]);
	rc = cli_api(ctx, "DELETE", full.data, NULL, NULL, &err);
	buf_release(&full);
	free(path);
	if (rc)
		return fail(ctx, &err);
	if (!ctx->args->json)
		fprintf(ctx->out, "service %s removed\n", ctx->args->pos[1]);
	return CLI_EXIT_OK;
}

int cmd_alerts_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID",	 "KIND",     "STATE",  "DESKTOP",
					      "CREATED", "RESOLVED", "MESSAGE"};
	static const char *const fields[] = {"id",	  "kind",	"state",  "desktopId",
					     "createdAt", "resolvedAt", "message"};
	struct err err = ERR_INIT;
	struct buf q = BUF_INIT;
	json_t *list;
	char *ws;
	int rc;

	if (cli_workspace_resolve(ctx, &ws, &err))
		return fail(ctx, &err);
	buf_puts(&q, "/api/alerts");
	cli_query_add(&q, "state", ctx->args->state ? ctx->args->state : "open");
	cli_query_add(&q, "workspaceId", ws);
	free(ws);
	rc = cli_api(ctx, "GET", q.data, NULL, &list, &err);
	buf_release(&q);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json) {
		cli_print_json(ctx, list);
		json_decref(list);
		return CLI_EXIT_OK;
	}
	cli_print_list(ctx, json_object_get(list, "alerts"), 7, headers, fields);
	json_decref(list);
	return CLI_EXIT_OK;
}

int cmd_alerts_ack(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	struct buf path = BUF_INIT;
	json_t *a;
	int rc;

	buf_puts(&path, "/api/alerts/");
	cli_url_escape(&path, ctx->args->pos[0]);
	buf_puts(&path, "/ack");
	rc = cli_api(ctx, "POST", path.data, NULL, &a, &err);
	buf_release(&path);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, a);
	else
		fprintf(ctx->out, "%s acknowledged\n", ctx->args->pos[0]);
	json_decref(a);
	return CLI_EXIT_OK;
}
