/* Snapshots a user names: memory and disk of a running desktop, the disk
 * (and hibernation image) of a stopped one; restore (rollback) and delete.
 * Handlers check and record the request in the store; the reconciler
 * (core/desktops.c) does the work in the desktop's turn and settles the
 * row, with an event. Forks are creates with "fromSnapshot". */
#include "api/api.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "core/instant.h"
#include "core/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *snapshot_json(const struct snapshot *sn)
{
	char created[32];

	time_iso(sn->created_at, created);
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:s, s:s, s:s, s:s}", "id", sn->id,
			 "desktopId", sn->desktop_id, "name", sn->name, "state", sn->state, "kind",
			 *sn->kind ? json_string(sn->kind) : json_null(), "sizeBytes",
			 (json_int_t)sn->size_bytes, "reason",
			 *sn->reason ? json_string(sn->reason) : json_null(), "tier", sn->tier,
			 "image", sn->image, "imageVersion", sn->image_version, "createdAt",
			 created);
}

/* The desktop of the path, if the caller may see it (else 404). */
static int snap_desktop(struct api_ctx *c)
{
	if (store_desktop_get_for_user(c->s, c->user.id, api_param(c, "id"), &c->d, &c->err))
		return api_fail(c, &c->err);
	snprintf(c->audit_ws, sizeof(c->audit_ws), "%s", c->d.workspace_id);
	return 0;
}

void snapshots_list(struct api_ctx *c)
{
	struct snapshot *list;
	size_t n;
	json_t *out;

	if (snap_desktop(c))
		return;
	if (store_snapshot_list(c->s, c->d.id, &list, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, snapshot_json(&list[i]));
	free(list);
	api_ok(c, 200, json_pack("{s:o}", "snapshots", out));
}

/* The tier's quota: a count and a total size per desktop. */
static int snap_quota(struct api_ctx *c)
{
	const struct tier *t = tier_find(c->d.tier);
	int64_t count, bytes;

	if (!t || store_snapshot_usage(c->s, c->d.id, &count, &bytes, &c->err))
		return t ? -1 : err_set(&c->err, 500, "internal", "unknown tier %s", c->d.tier);
	if (count >= t->snapshots_max)
		return err_set(&c->err, 422, "snapshot_quota",
			       "desktop %s has %lld of the %d snapshots its tier (%s) allows; "
			       "delete one first",
			       c->d.id, (long long)count, t->snapshots_max, t->id);
	if (bytes >= (int64_t)t->snapshots_gb << 30)
		return err_set(&c->err, 422, "snapshot_quota",
			       "desktop %s's snapshots take %lld MB of the %d GB its tier (%s) "
			       "allows; delete one first",
			       c->d.id, (long long)(bytes >> 20), t->snapshots_gb, t->id);
	return 0;
}

static int snap_event(struct api_ctx *c, const struct snapshot *sn, const char *type)
{
	return core_store_event(c->s, &c->d, type,
				json_pack("{s:s, s:s, s:s}", "snapshotId", sn->id, "name", sn->name,
					  "state", sn->state),
				api_event_slot(c), &c->err);
}

void snapshots_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"name", NULL};
	struct snapshot sn = {0};
	const char *name;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "name", 1, &name, &c->err) || name_check("name", name, &c->err) ||
	    snap_desktop(c) || state_check_snapshot(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	id_new(sn.id, sizeof(sn.id), "snp");
	snprintf(sn.desktop_id, sizeof(sn.desktop_id), "%s", c->d.id);
	snprintf(sn.workspace_id, sizeof(sn.workspace_id), "%s", c->d.workspace_id);
	snprintf(sn.name, sizeof(sn.name), "%s", name);
	snprintf(sn.state, sizeof(sn.state), "creating");
	snprintf(sn.tier, sizeof(sn.tier), "%s", c->d.tier);
	snprintf(sn.image, sizeof(sn.image), "%s", c->d.image);
	snprintf(sn.image_version, sizeof(sn.image_version), "%s", c->d.image_version);
	sn.vcpus = c->d.vcpus;
	sn.memory_mb = c->d.memory_mb;
	sn.disk_gb = c->d.disk_gb;
	sn.created_at = now_ms();
	if (store_begin(c->s, &c->err))
		goto fail;
	if (snap_quota(c) || store_snapshot_insert(c->s, &sn, &c->err) ||
	    snap_event(c, &sn, "desktop.snapshot") || store_commit(c->s, &c->err)) {
		store_rollback(c->s);
		goto fail;
	}
	c->audit_detail = json_pack("{s:s, s:s}", "snapshotId", sn.id, "name", sn.name);
	c->data = (void *)(intptr_t)CORE_SNAP_CREATE;
	api_ok(c, 202, snapshot_json(&sn));
	return;
fail:
	api_fail(c, &c->err);
}

/* The snapshot of the path, of the desktop of the path. */
static int snap_load(struct api_ctx *c, struct snapshot *sn)
{
	if (snap_desktop(c) || store_snapshot_get(c->s, c->d.id, api_param(c, "sid"), sn, &c->err))
		return api_fail(c, &c->err);
	return 0;
}

static void snap_change(struct api_ctx *c, struct snapshot *sn, const char *state, const char *type,
			enum core_snap_op op)
{
	if (store_begin(c->s, &c->err))
		goto fail;
	if (store_snapshot_set_state(c->s, sn->id, state, NULL, sn->size_bytes, NULL, &c->err) ||
	    (snprintf(sn->state, sizeof(sn->state), "%s", state), 0) || snap_event(c, sn, type) ||
	    store_commit(c->s, &c->err)) {
		store_rollback(c->s);
		goto fail;
	}
	c->audit_detail = json_pack("{s:s}", "snapshotId", sn->id);
	c->data = (void *)(intptr_t)op;
	api_ok(c, 202, snapshot_json(sn));
	return;
fail:
	api_fail(c, &c->err);
}

void snapshots_restore(struct api_ctx *c)
{
	struct snapshot sn;

	if (snap_load(c, &sn))
		return;
	if (strcmp(sn.state, "ready")) {
		err_set(&c->err, 409, "conflict", "snapshot %s is %s, not ready", sn.id, sn.state);
		api_fail(c, &c->err);
		return;
	}
	if (state_check_snapshot(c->d.state, c->d.desired_state, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	snap_change(c, &sn, "restoring", "desktop.snapshot.restore", CORE_SNAP_RESTORE);
}

void snapshots_delete(struct api_ctx *c)
{
	struct snapshot sn;

	if (snap_load(c, &sn))
		return;
	if (strcmp(sn.state, "ready") && strcmp(sn.state, "failed")) {
		err_set(&c->err, 409, "conflict", "snapshot %s is %s; wait until it settles", sn.id,
			sn.state);
		api_fail(c, &c->err);
		return;
	}
	snap_change(c, &sn, "deleting", "desktop.snapshot.delete", CORE_SNAP_DELETE);
}

/* On the loop: the work goes to the desktop's reconciler. */
void snapshots_queue(struct api_ctx *c)
{
	const char *sid = json_string_value(json_object_get(c->resp, "id"));

	core_snapshot_op(c->app, c->d.id, sid, (enum core_snap_op)(intptr_t)c->data);
	c->data = NULL;
	api_respond_json(c, c->status, json_incref(c->resp));
}
