/* GET /api/events: server-sent events of the caller's workspaces.
 *
 * The stream subscribes to the bus as soon as the request arrives, and
 * holds live events back while the worker authenticates and reads the
 * backlog after Last-Event-ID. Then it sends the backlog and the held
 * events with a larger id, so nothing is lost or sent twice between the
 * two. A client that does not keep up is dropped; it resumes with
 * Last-Event-ID. */
#include "api/api.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_BACKLOG_MAX 1000
#define SSE_HELD_MAX 10000
#define SSE_PING_MS 15000
#define SSE_MAX_WORKSPACES 256

struct sse {
	struct api_ctx *c;
	struct bus_sub *sub;
	int live;
	int64_t last_id;
	char (*ws)[ID_MAX];
	size_t nws;
	char desktop[ID_MAX]; /* ?desktopId=: that desktop's events only */
	struct event *held;
	size_t nheld;
	struct event *backlog;
	size_t nbacklog;
	uv_timer_t ping;
	int closed;
};

static int sse_wants(const struct sse *x, const struct event *ev)
{
	if (*x->desktop && strcmp(x->desktop, ev->desktop_id))
		return 0;
	for (size_t i = 0; i < x->nws; i++)
		if (!strcmp(x->ws[i], ev->workspace_id))
			return 1;
	return 0;
}

static void sse_close(struct sse *x, int end_stream);

static void sse_send(struct sse *x, const struct event *ev)
{
	char created[32];
	json_t *data;
	char *text, *frame;

	if (ev->id <= x->last_id || !sse_wants(x, ev))
		return;
	data = json_loads(ev->data ? ev->data : "{}", 0, NULL);
	if (!data)
		data = json_object();
	time_iso(ev->created_at, created);
	json_object_set_new(data, "id", json_integer(ev->id));
	json_object_set_new(data, "type", json_string(ev->type));
	json_object_set_new(data, "desktopId", json_string(ev->desktop_id));
	json_object_set_new(data, "workspaceId", json_string(ev->workspace_id));
	json_object_set_new(data, "createdAt", json_string(created));
	text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	frame = xasprintf("id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev->id, ev->type, text);
	free(text);
	x->last_id = ev->id;
	if (http_stream_write(x->c->req, frame, strlen(frame))) {
		free(frame);
		log_info("sse: dropping a subscriber that does not keep up");
		sse_close(x, 1);
		return;
	}
	free(frame);
}

static void sse_on_event(const struct event *ev, void *arg)
{
	struct sse *x = arg;

	if (x->closed)
		return;
	if (x->live) {
		sse_send(x, ev);
		return;
	}
	if (x->nheld >= SSE_HELD_MAX)
		return;
	x->held = xrealloc(x->held, (x->nheld + 1) * sizeof(*x->held));
	x->held[x->nheld] = *ev;
	x->held[x->nheld].data = ev->data ? xstrdup(ev->data) : NULL;
	x->nheld++;
}

static void sse_ping(uv_timer_t *t)
{
	struct sse *x = t->data;

	if (http_stream_write(x->c->req, ": ping\n\n", 8))
		sse_close(x, 1);
}

static void sse_free(struct sse *x)
{
	store_events_free(x->held, x->nheld);
	store_events_free(x->backlog, x->nbacklog);
	free(x->ws);
	free(x);
}

static void sse_ping_closed(uv_handle_t *h)
{
	sse_free(h->data);
}

static void sse_close(struct sse *x, int end_stream)
{
	struct api_ctx *c = x->c;

	if (x->closed)
		return;
	x->closed = 1;
	bus_unsubscribe(c->app->bus, x->sub);
	if (end_stream && x->live)
		http_stream_end(c->req);
	c->data = NULL;
	api_ctx_free(c);
	if (x->live)
		uv_close((uv_handle_t *)&x->ping, sse_ping_closed);
	else
		sse_free(x);
}

static void sse_peer_closed(struct http_req *req, void *arg)
{
	(void)req;
	sse_close(arg, 0);
}

/* On the worker, after authentication: the caller's workspaces and the
 * backlog. */
void events_open(struct api_ctx *c)
{
	struct sse *x = c->data;
	struct workspace *ws;
	const char *last = http_req_header(c->req, "last-event-id");
	char q[32], wsq[ID_MAX];
	size_t n;
	int64_t after = 0;

	if (!last && http_req_query(c->req, "lastEventId", q, sizeof(q)) >= 0)
		last = q;
	if (last) {
		char *end;
		after = strtoll(last, &end, 10);
		if (*end || after < 0) {
			err_set(&c->err, 400, "invalid_request", "Last-Event-ID must be a number");
			api_fail(c, &c->err);
			return;
		}
	}
	if (store_workspace_list(c->s, c->user.id, &ws, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (http_req_query(c->req, "workspaceId", wsq, sizeof(wsq)) >= 0) {
		size_t keep = 0;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(ws[i].id, wsq))
				ws[keep++] = ws[i];
		if (!keep) {
			free(ws);
			err_set(&c->err, 404, "not_found", "workspace not found");
			api_fail(c, &c->err);
			return;
		}
		n = keep;
	}
	if (http_req_query(c->req, "desktopId", x->desktop, sizeof(x->desktop)) >= 0) {
		struct desktop d;

		if (store_desktop_get_for_user(c->s, c->user.id, x->desktop, &d, &c->err)) {
			free(ws);
			api_fail(c, &c->err);
			return;
		}
	}
	x->nws = n < SSE_MAX_WORKSPACES ? n : SSE_MAX_WORKSPACES;
	x->ws = xcalloc(x->nws ? x->nws : 1, ID_MAX);
	for (size_t i = 0; i < x->nws; i++)
		snprintf(x->ws[i], ID_MAX, "%s", ws[i].id);
	free(ws);
	x->last_id = after;
	if (last && store_event_list(c->s, c->user.id, after, SSE_BACKLOG_MAX, &x->backlog,
				     &x->nbacklog, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
}

/* On the loop: the request as it arrives (subscribe and hold), then, as
 * route loop function, the start of the stream. */
void events_stream(struct api_ctx *c)
{
	struct sse *x = c->data;

	if (!x) {
		/* Called by the dispatcher before the work (see api_events_hold). */
		return;
	}
	if (http_stream_begin(c->req, 200, "text/event-stream",
			      "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n",
			      sse_peer_closed, x)) {
		sse_close(x, 0);
		return;
	}
	x->live = 1;
	uv_timer_init(c->app->loop, &x->ping);
	x->ping.data = x;
	uv_timer_start(&x->ping, sse_ping, SSE_PING_MS, SSE_PING_MS);
	http_stream_write(c->req, "retry: 2000\n\n", 13);
	for (size_t i = 0; i < x->nbacklog && !x->closed; i++)
		sse_send(x, &x->backlog[i]);
	for (size_t i = 0; i < x->nheld && !x->closed; i++)
		sse_send(x, &x->held[i]);
}

/* Subscribes before the worker reads the backlog (called by the
 * dispatcher for this route). */
void api_events_hold(struct api_ctx *c)
{
	struct sse *x = xcalloc(1, sizeof(*x));

	x->c = c;
	c->data = x;
	x->sub = bus_subscribe(c->app->bus, sse_on_event, x);
}

/* The request failed before streaming (401, 404...): drop the hold. */
void api_events_release(struct api_ctx *c)
{
	struct sse *x = c->data;

	if (!x)
		return;
	bus_unsubscribe(c->app->bus, x->sub);
	sse_free(x);
	c->data = NULL;
}
