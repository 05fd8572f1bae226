/* The agent's commands: `bureau chat` (post, then follow the desktop's
 * events and print the reply as it streams), `bureau approvals` and
 * `bureau egress`. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/xalloc.h"

#define CHAT_IDLE_S 600L /* a reply silent this long is given up */
#define CHAT_MAX_ERROR_BODY (64 * 1024)

static int fail(struct cli_ctx *ctx, const struct err *err)
{
	int rc = cli_fail(err);

	if (err->status == 401 && !ctx->key)
		fputs("bureau: no API key: run `bureau login`, or set BUREAU_API_KEY\n", stderr);
	return rc;
}

/* Text from the server, printed without control characters but newlines
 * and tabs: nothing it sends may drive the terminal. */
static void print_clean(FILE *out, const char *s)
{
	for (; s && *s; s++)
		fputc(((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') || *s == 0x7f ? '?' : *s,
		      out);
}

/* ---- chat ----------------------------------------------------------------- */

struct chat {
	struct cli_ctx *ctx;
	struct cli_ctx post; /* its own curl handle: the post runs inside a callback */
	struct sse_parser sse;
	const char *path, *text;
	char *msg_id;
	long status;
	struct buf error_body;
	int posted, answered, done, failed, open_line;
	struct err err;
};

static int chat_mine(struct chat *ch, json_t *obj)
{
	const char *r = json_string_value(json_object_get(obj, "replyTo"));

	return ch->msg_id && r && !strcmp(r, ch->msg_id);
}

static void chat_line_end(struct chat *ch)
{
	if (ch->open_line)
		fputc('\n', ch->ctx->out);
	ch->open_line = 0;
}

static void chat_on_message(struct chat *ch, json_t *m)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	const char *content = json_string_value(json_object_get(m, "content"));

	if (!role)
		return;
	if (!strcmp(role, "assistant")) {
		if (!ch->open_line)
			print_clean(ch->ctx->out, content);
		chat_line_end(ch);
		ch->answered = 1;
	} else if (!strcmp(role, "error")) {
		chat_line_end(ch);
		fputs("bureau: agent error: ", stderr);
		print_clean(stderr, content);
		fputc('\n', stderr);
		ch->answered = ch->failed = 1;
	} else {
		chat_line_end(ch);
		fprintf(ch->ctx->out, "[%s] ", role);
		print_clean(ch->ctx->out, content);
		fputc('\n', ch->ctx->out);
	}
}

/* The reply is over when the agent is idle (or in error) again after an
 * answer to this message. */
static void chat_on_event(void *arg, const char *id, const char *event, const char *data)
{
	struct chat *ch = arg;
	json_t *e = json_loads(data, 0, NULL), *m;
	const char *status;

	(void)id;
	if (!e)
		return;
	m = json_object_get(e, "message");
	if (ch->ctx->args->json && (chat_mine(ch, e) || chat_mine(ch, m)))
		fprintf(ch->ctx->out, "%s\n", data);
	/* chat.delta is not printed: deltas are stored by parallel jobs and
	 * may come out of order; each whole message is printed as it lands. */
	if ((!strcmp(event, "chat.message") || !strcmp(event, "chat.tool")) &&
		   chat_mine(ch, m)) {
		if (ch->ctx->args->json) {
			const char *role = json_string_value(json_object_get(m, "role"));
			ch->answered |= role && (!strcmp(role, "assistant") || !strcmp(role, "error"));
			ch->failed |= role && !strcmp(role, "error");
		} else {
			chat_on_message(ch, m);
		}
	} else if (!strcmp(event, "agent.status") && ch->answered) {
		status = json_string_value(json_object_get(json_object_get(e, "agent"), "status"));
		ch->done = status && (!strcmp(status, "idle") || !strcmp(status, "error"));
	}
	fflush(ch->ctx->out);
	json_decref(e);
}

/* Once the stream's headers are in, the subscription exists: only then is
 * the message posted, so no part of the reply can come before it. */
static int chat_post(struct chat *ch)
{
	json_t *body = json_pack("{s:s}", "message", ch->text), *r = NULL;
	char *full = xasprintf("%s/chat", ch->path);
	int rc = cli_api(&ch->post, "POST", full, body, &r, &ch->err);

	free(full);
	json_decref(body);
	if (!rc && json_string_value(json_object_get(r, "id")))
		ch->msg_id = xstrdup(json_string_value(json_object_get(r, "id")));
	else if (!rc)
		rc = err_set(&ch->err, 0, "invalid_reply", "the chat answer has no message id");
	json_decref(r);
	return rc;
}

static size_t chat_on_header(char *data, size_t size, size_t n, void *arg)
{
	struct chat *ch = arg;
	size_t len = size * n;

	if (len <= 2 && (data[0] == '\r' || data[0] == '\n') && !ch->posted) {
		curl_easy_getinfo(ch->ctx->curl, CURLINFO_RESPONSE_CODE, &ch->status);
		if (ch->status == 200) {
			ch->posted = 1;
			if (chat_post(ch))
				return 0;
		}
	}
	return len;
}

static size_t chat_on_data(char *data, size_t size, size_t n, void *arg)
{
	struct chat *ch = arg;
	size_t len = size * n;

	if (ch->status != 200) {
		if (ch->error_body.len + len <= CHAT_MAX_ERROR_BODY)
			buf_append(&ch->error_body, data, len);
		return len;
	}
	sse_feed(&ch->sse, data, len);
	return ch->done ? 0 : len; /* 0 ends the transfer */
}

static int chat_follow(struct chat *ch, const char *id)
{
	struct cli_ctx *ctx = ch->ctx;
	struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
	struct buf url = BUF_INIT;
	CURLcode cc;

	if (ctx->key) {
		char *auth = xasprintf("Authorization: Bearer %s", ctx->key);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	buf_printf(&url, "%s/api/events?desktopId=", ctx->endpoint);
	cli_url_escape(&url, id);
	cli_curl_setup(ctx, url.data);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_HEADERFUNCTION, chat_on_header);
	curl_easy_setopt(ctx->curl, CURLOPT_HEADERDATA, ch);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, chat_on_data);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, ch);
	curl_easy_setopt(ctx->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(ctx->curl, CURLOPT_LOW_SPEED_TIME, CHAT_IDLE_S);
	cc = curl_easy_perform(ctx->curl);
	curl_slist_free_all(h);
	buf_release(&url);
	if (ch->err.code[0])
		return fail(ctx, &ch->err);
	if (ch->status != 200) {
		cli_err_from_reply(ch->status, ch->error_body.data, ch->error_body.len, &ch->err);
		if (!ch->status)
			err_set(&ch->err, 0, "unreachable", "cannot reach %s: %s", ctx->endpoint,
				curl_easy_strerror(cc));
		return fail(ctx, &ch->err);
	}
	if (!ch->done) {
		chat_line_end(ch);
		err_set(&ch->err, 0, "stream_ended", "the event stream ended before the reply: %s",
			curl_easy_strerror(cc));
		return cli_fail(&ch->err);
	}
	return ch->failed ? CLI_EXIT_API : CLI_EXIT_OK;
}

int cmd_chat(struct cli_ctx *ctx)
{
	struct chat ch = {.ctx = ctx, .text = ctx->args->pos[1], .err = ERR_INIT};
	char *path;
	int rc;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &path, &ch.err))
		return fail(ctx, &ch.err);
	ch.path = path;
	ch.post = *ctx;
	ch.post.curl = curl_easy_init();
	if (!ch.post.curl) {
		free(path);
		err_set(&ch.err, 0, "curl", "cannot start an HTTP client");
		return cli_fail(&ch.err);
	}
	sse_init(&ch.sse, chat_on_event, &ch);
	rc = chat_follow(&ch, strrchr(path, '/') + 1);
	sse_release(&ch.sse);
	buf_release(&ch.error_body);
	curl_easy_cleanup(ch.post.curl);
	free(ch.msg_id);
	free(path);
	return rc;
}

/* ---- approvals -------------------------------------------------------------- */

int cmd_approvals_ls(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"ID",   "DESKTOP", "STATUS",
					      "KIND", "CREATED", "ACTION"};
	struct err err = ERR_INIT;
	struct table t;
	struct buf b = BUF_INIT;
	json_t *list, *a;
	size_t i;

	if (cli_api(ctx, "GET", "/api/approvals", NULL, &list, &err))
		return fail(ctx, &err);
	if (ctx->args->json) {
		cli_print_json(ctx, list);
		json_decref(list);
		return CLI_EXIT_OK;
	}
	table_init(&t, 6, headers);
	json_array_foreach (json_object_get(list, "approvals"), i, a) {
		char *c[6] = {cli_cell(json_object_get(a, "id")),
			      cli_cell(json_object_get(a, "desktopId")),
			      cli_cell(json_object_get(a, "status")),
			      cli_cell(json_object_get(a, "kind")),
			      cli_cell(json_object_get(a, "createdAt")),
			      cli_cell(json_object_get(a, "action"))};

		table_add(&t, (const char *const *)c);
		for (int k = 0; k < 6; k++)
			free(c[k]);
	}
	table_render(&t, &b);
	fwrite(b.data, 1, b.len, ctx->out);
	buf_release(&b);
	table_release(&t);
	json_decref(list);
	return CLI_EXIT_OK;
}

static int approvals_decide(struct cli_ctx *ctx, const char *decision)
{
	struct err err = ERR_INIT;
	struct buf path = BUF_INIT;
	json_t *body = json_pack("{s:s}", "decision", decision), *a = NULL;
	int rc;

	if (ctx->args->note)
		json_object_set_new(body, "note", json_string(ctx->args->note));
	buf_puts(&path, "/api/approvals/");
	cli_url_escape(&path, ctx->args->pos[0]);
	rc = cli_api(ctx, "POST", path.data, body, &a, &err);
	buf_release(&path);
	json_decref(body);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json)
		cli_print_json(ctx, a);
	else
		fprintf(ctx->out, "%s %s\n", ctx->args->pos[0],
			!strcmp(decision, "approve") ? "approved" : "denied");
	json_decref(a);
	return CLI_EXIT_OK;
}

int cmd_approvals_approve(struct cli_ctx *ctx)
{
	return approvals_decide(ctx, "approve");
}

int cmd_approvals_deny(struct cli_ctx *ctx)
{
	return approvals_decide(ctx, "deny");
}

/* ---- egress ------------------------------------------------------------------- */

/* The path of the allowlist of the workspace named by the first argument. */
static int egress_allow_path(struct cli_ctx *ctx, struct buf *path, struct err *err)
{
	char *ws = NULL;
	const char *saved = ctx->args->workspace;

	ctx->args->workspace = ctx->args->pos[0];
	if (cli_workspace_resolve(ctx, &ws, err)) {
		ctx->args->workspace = saved;
		return -1;
	}
	ctx->args->workspace = saved;
	buf_puts(path, "/api/workspaces/");
	cli_url_escape(path, ws);
	buf_puts(path, "/egress");
	free(ws);
	return 0;
}

static void egress_allow_print(struct cli_ctx *ctx, json_t *doc)
{
	size_t i;
	json_t *p;

	if (ctx->args->json) {
		cli_print_json(ctx, doc);
		return;
	}
	json_array_foreach (json_object_get(doc, "allow"), i, p) {
		print_clean(ctx->out, json_string_value(p));
		fputc('\n', ctx->out);
	}
}

/* allow adds the pattern (once), deny removes it. */
static int egress_change(struct cli_ctx *ctx, int add)
{
	struct err err = ERR_INIT;
	struct buf path = BUF_INIT;
	const char *pat = ctx->args->pos[1];
	json_t *doc = NULL, *allow, *p, *out = NULL, *body;
	size_t i, found = (size_t)-1;
	int rc = -1;

	if (egress_allow_path(ctx, &path, &err) || cli_api(ctx, "GET", path.data, NULL, &doc, &err))
		goto done;
	allow = json_object_get(doc, "allow");
	if (!json_is_array(allow)) {
		err_set(&err, 0, "invalid_reply", "the egress answer has no allow list");
		goto done;
	}
	json_array_foreach (allow, i, p)
		if (json_string_value(p) && !strcmp(json_string_value(p), pat))
			found = i;
	if (add && found == (size_t)-1)
		json_array_append_new(allow, json_string(pat));
	else if (!add && found != (size_t)-1)
		json_array_remove(allow, found);
	body = json_pack("{s:O}", "allow", allow);
	rc = cli_api(ctx, "PUT", path.data, body, &out, &err);
	json_decref(body);
	if (!rc)
		egress_allow_print(ctx, out);
done:
	json_decref(doc);
	json_decref(out);
	buf_release(&path);
	return rc ? fail(ctx, &err) : CLI_EXIT_OK;
}

int cmd_egress_ls(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	struct buf path = BUF_INIT;
	json_t *doc = NULL;
	int rc = egress_allow_path(ctx, &path, &err) ||
		 cli_api(ctx, "GET", path.data, NULL, &doc, &err);

	buf_release(&path);
	if (rc)
		return fail(ctx, &err);
	egress_allow_print(ctx, doc);
	json_decref(doc);
	return CLI_EXIT_OK;
}

int cmd_egress_allow(struct cli_ctx *ctx)
{
	return egress_change(ctx, 1);
}

int cmd_egress_deny(struct cli_ctx *ctx)
{
	return egress_change(ctx, 0);
}

int cmd_egress_log(struct cli_ctx *ctx)
{
	static const char *const headers[] = {"TIME", "HOST", "PORT", "ALLOWED", "REASON", "UP",
					      "DOWN"};
	static const char *const fields[] = {"createdAt", "host",    "port",     "allowed",
					     "reason",	  "bytesUp", "bytesDown"};
	struct err err = ERR_INIT;
	char *path, *full;
	json_t *doc = NULL;
	int rc;

	if (cli_desktop_path(ctx, ctx->args->pos[0], &path, &err))
		return fail(ctx, &err);
	full = xasprintf("%s/egress", path);
	rc = cli_api(ctx, "GET", full, NULL, &doc, &err);
	free(full);
	free(path);
	if (rc)
		return fail(ctx, &err);
	if (ctx->args->json) {
		cli_print_json(ctx, doc);
		json_decref(doc);
		return CLI_EXIT_OK;
	}
	cli_print_list(ctx, json_object_get(doc, "entries"), 7, headers, fields);
	json_decref(doc);
	return CLI_EXIT_OK;
}
