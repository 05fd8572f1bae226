/* `bureau events`: follows GET /api/events, one line per event, and comes
 * back with Last-Event-ID when the connection drops. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/xalloc.h"

/* A stream silent this long is presumed dead and reopened. */
#define EVENTS_IDLE_S 90L
#define EVENTS_BACKOFF_MAX_S 30
#define EVENTS_MAX_ERROR_BODY (64 * 1024)

struct events {
	struct cli_ctx *ctx;
	struct sse_parser sse;
	long status;
	struct buf error_body;
	int streaming; /* a 200 answer began */
};

static void print_human(struct cli_ctx *ctx, const char *data)
{
	json_t *e = json_loads(data, 0, NULL);
	const char *type, *state, *desired, *reason;
	struct buf line = BUF_INIT;

	if (!e) {
		fprintf(ctx->out, "%s\n", data);
		return;
	}
	type = json_string_value(json_object_get(e, "type"));
	state = json_string_value(json_object_get(e, "state"));
	desired = json_string_value(json_object_get(e, "desiredState"));
	reason = json_string_value(json_object_get(e, "reason"));
	buf_printf(&line, "%s  %s", json_string_value(json_object_get(e, "createdAt")) ?: "-",
		   json_string_value(json_object_get(e, "desktopId")) ?: "-");
	if (json_string_value(json_object_get(e, "name")))
		buf_printf(&line, " (%s)", json_string_value(json_object_get(e, "name")));
	buf_printf(&line, "  %s", type ? type : "-");
	if (state)
		buf_printf(&line, "  %s", state);
	if (desired && (!state || strcmp(desired, state) != 0))
		buf_printf(&line, " (desired %s)", desired);
	if (reason)
		buf_printf(&line, ": %s", reason);
	/* nothing the server sends may drive the terminal */
	for (size_t i = 0; i < line.len; i++)
		if ((unsigned char)line.data[i] < 0x20 || line.data[i] == 0x7f)
			line.data[i] = '?';
	fprintf(ctx->out, "%s\n", line.data);
	buf_release(&line);
	json_decref(e);
}

static void on_event(void *arg, const char *id, const char *event, const char *data)
{
	struct events *ev = arg;

	if (ev->ctx->args->json)
		fprintf(ev->ctx->out, "%s\n", data);
	else
		print_human(ev->ctx, data);
	fflush(ev->ctx->out);
}

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	struct events *ev = arg;
	size_t len = size * n;

	if (ev->status == 0)
		curl_easy_getinfo(ev->ctx->curl, CURLINFO_RESPONSE_CODE, &ev->status);
	if (ev->status == 200) {
		ev->streaming = 1;
		sse_feed(&ev->sse, data, len);
	} else if (ev->error_body.len + len <= EVENTS_MAX_ERROR_BODY) {
		buf_append(&ev->error_body, data, len);
	}
	return len;
}

/* One connection; returns the curl result. */
static CURLcode events_connect(struct events *ev, const char *url)
{
	struct cli_ctx *ctx = ev->ctx;
	struct curl_slist *h = NULL;
	CURLcode rc;

	ev->status = 0;
	ev->streaming = 0;
	buf_reset(&ev->error_body);
	/* a half-received event of a dead connection is dropped */
	buf_reset(&ev->sse.line);
	buf_reset(&ev->sse.data);
	ev->sse.has_data = 0;
	ev->sse.event[0] = '\0';
	ev->sse.cr = 0;

	h = curl_slist_append(h, "Accept: text/event-stream");
	if (ctx->key) {
		char *auth = xasprintf("Authorization: Bearer %s", ctx->key);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (ev->sse.last_id[0]) {
		char *last = xasprintf("Last-Event-ID: %s", ev->sse.last_id);
		h = curl_slist_append(h, last);
		free(last);
	}
	cli_curl_setup(ctx, url);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, ev);
	curl_easy_setopt(ctx->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(ctx->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(ctx->curl, CURLOPT_LOW_SPEED_TIME, EVENTS_IDLE_S);
	rc = curl_easy_perform(ctx->curl);
	if (ev->status == 0)
		curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &ev->status);
	if (ev->status == 200)
		ev->streaming = 1;
	curl_slist_free_all(h);
	return rc;
}

int cmd_events(struct cli_ctx *ctx)
{
	struct events ev = {.ctx = ctx};
	struct err err = ERR_INIT;
	struct buf url = BUF_INIT;
	int backoff = 1, ever = 0, rc = CLI_EXIT_OK;
	char *ws;

	if (cli_workspace_resolve(ctx, &ws, &err))
		return cli_fail(&err);
	sse_init(&ev.sse, on_event, &ev);
	buf_printf(&url, "%s/api/events", ctx->endpoint);
	if (ws) {
		buf_puts(&url, "?workspaceId=");
		cli_url_escape(&url, ws);
		free(ws);
	}
	for (;;) {
		CURLcode cc = events_connect(&ev, url.data);

		if (ev.status >= 400) {
			cli_err_from_reply(ev.status, ev.error_body.data, ev.error_body.len, &err);
			rc = cli_fail(&err);
			break;
		}
		if (ev.streaming) {
			ever = 1;
			backoff = 1;
		} else if (!ever) {
			err_set(&err, 0, "unreachable", "cannot reach %s: %s", url.data,
				curl_easy_strerror(cc));
			rc = cli_fail(&err);
			break;
		}
		if (cc != CURLE_OK && cc != CURLE_OPERATION_TIMEDOUT && isatty(STDERR_FILENO))
			fprintf(stderr, "bureau: events: %s; reconnecting\n",
				curl_easy_strerror(cc));
		sleep((unsigned)backoff);
		if (!ev.streaming && backoff < EVENTS_BACKOFF_MAX_S)
			backoff *= 2;
	}
	sse_release(&ev.sse);
	buf_release(&ev.error_body);
	buf_release(&url);
	return rc;
}
