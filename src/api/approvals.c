/* Approvals (issue 6):
 *   GET  /api/approvals?status=            the caller's workspaces, newest first
 *   GET  /api/approvals/{id}
 *   POST /api/approvals/{id} {"decision":"approve"|"deny","note"?}
 *   GET  /api/approvals/{id}/screenshot    the screen when it was asked (PNG)
 * The decision and who took it are in the audit log (this request's entry
 * carries them). */
#include "api/api.h"
#include "common/buf.h"
#include "common/json.h"
#include "core/core.h"
#include "core/pilot.h"

#include <stdlib.h>
#include <string.h>

#define APPROVAL_NOTE_MAX 500
#define APPROVAL_PAGE_MAX 500

void approvals_list(struct api_ctx *c)
{
	char status[16];
	int has = http_req_query(c->req, "status", status, sizeof(status)) >= 0;
	struct approval *a;
	size_t n;
	json_t *list;

	if (has && strcmp(status, "pending") && strcmp(status, "approved") &&
	    strcmp(status, "denied") && strcmp(status, "expired")) {
		err_set(&c->err, 400, "invalid_request",
			"status must be pending, approved, denied or expired");
		api_fail(c, &c->err);
		return;
	}
	if (store_approval_list(c->s, c->user.id, has ? status : NULL, APPROVAL_PAGE_MAX, &a, &n,
				&c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, approval_json(&a[i]));
	store_approvals_free(a, n);
	api_ok(c, 200, json_pack("{s:o}", "approvals", list));
}

static int approval_load(struct api_ctx *c, struct approval *a)
{
	if (store_approval_get(c->s, c->user.id, api_param(c, "id"), a, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", a->workspace_id);
	return 0;
}

void approvals_get(struct api_ctx *c)
{
	struct approval a;

	if (approval_load(c, &a))
		return;
	api_ok(c, 200, approval_json(&a));
	store_approval_release(&a);
}

/* On the worker: validates and stores the decision; the approval goes to
 * the loop function in c->data. */
static int decide(struct api_ctx *c, struct approval *a)
{
	static const char *const allowed[] = {"decision", "note", NULL};
	const char *decision, *note = NULL;
	struct desktop d;
	struct event *ev;
	json_t *b;

	if (!(b = api_body(c, allowed, 0)))
		return -1;
	c->body = b;
	if (json_get_string(b, "decision", 1, &decision, &c->err) ||
	    json_get_string(b, "note", 0, &note, &c->err))
		return api_fail(c, &c->err);
	if (strcmp(decision, "approve") && strcmp(decision, "deny")) {
		err_set(&c->err, 400, "invalid_request", "decision must be \"approve\" or \"deny\"");
		return api_fail(c, &c->err);
	}
	if (note && strlen(note) > APPROVAL_NOTE_MAX) {
		err_set(&c->err, 413, "too_large", "note longer than %d bytes", APPROVAL_NOTE_MAX);
		return api_fail(c, &c->err);
	}
	if (approval_load(c, a))
		return -1;
	c->audit_detail = json_pack("{s:s, s:s, s:s, s:s?}", "approvalId", a->id, "decision",
				    decision, "decidedBy", c->user.id, "note", note);
	store_approval_release(a);
	if (store_approval_decide(c->s, api_param(c, "id"),
				  strcmp(decision, "approve") ? "denied" : "approved", c->user.id,
				  note, now_ms(), &c->err) ||
	    store_approval_get(c->s, NULL, api_param(c, "id"), a, &c->err) ||
	    store_desktop_get(c->s, a->desktop_id, &d, &c->err))
		return api_fail(c, &c->err);
	if ((ev = api_event_slot(c)))
		core_store_event(c->s, &d, "approval.decided",
				 json_pack("{s:o}", "approval", approval_json(a)), ev, &c->err);
	api_ok(c, 200, approval_json(a));
	return 0;
}

void approvals_decide(struct api_ctx *c)
{
	struct approval *a = calloc(1, sizeof(*a));

	if (decide(c, a)) {
		store_approval_release(a);
		free(a);
		return;
	}
	c->data = a;
}

/* On the loop: the pilot hears of it. */
void approvals_decided(struct api_ctx *c)
{
	struct approval *a = c->data;

	approval_decided(c->app, a);
	store_approval_release(a);
	free(a);
	c->data = NULL;
	api_respond_json(c, c->status, json_incref(c->resp));
}

void approvals_screenshot_load(struct api_ctx *c)
{
	struct approval a;
	struct buf *png;
	void *data;
	size_t len;

	if (approval_load(c, &a))
		return;
	store_approval_release(&a);
	if (store_approval_screenshot_get(c->s, a.id, &data, &len, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	png = calloc(1, sizeof(*png));
	png->data = data;
	png->len = len;
	c->data = png;
}

void approvals_screenshot_send(struct api_ctx *c)
{
	struct buf *png = c->data;

	http_respond(c->req, 200, "image/png", png->data, png->len, "Cache-Control: no-store\r\n");
	free(png->data);
	free(png);
	c->data = NULL;
	api_ctx_free(c);
}
