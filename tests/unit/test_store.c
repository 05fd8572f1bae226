/* The SQLite store against a real database in a temporary folder. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "tap.h"

static char dir[64] = "/tmp/bureau-store-XXXXXX";
static char path[128], dsn[160];

/* Fixed ids; the prefixes are what the callers make. */
#define USER_A "usr_aaaa"
#define USER_B "usr_bbbb"
#define WS_A "ws_aaaa"
#define WS_B "ws_bbbb"

static int is_err(const struct err *e, int status, const char *code)
{
	return e->status == status && !strcmp(e->code, code);
}

/* One integer answered by the database file directly, behind the store's back. */
static long long raw_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

/* Runs SQL on the database file directly. */
static int raw_exec(const char *sql)
{
	sqlite3 *db;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static void test_migrations(void)
{
	struct err err = ERR_INIT;
	struct store_pool *p;
	struct store *s;
	struct stat sb;
	int version;
	long long applied;

	p = store_pool_open(dsn, 2, &err);
	if (!ok(p != NULL, "pool opens a new database (%s)", err.msg))
		exit(tap_done());
	s = store_pool_acquire(p);
	version = store_schema_version(s);
	ok(version >= 1, "migrations applied, schema version %d", version);
	store_pool_release(p, s);
	store_pool_close(p);
	applied = raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1");
	ok(raw_int("SELECT COUNT(*) FROM schema_migrations") == version,
	   "one schema_migrations row per migration");

	p = store_pool_open(path, 1, &err); /* a plain path works too */
	if (!ok(p != NULL, "reopen by plain path (%s)", err.msg))
		exit(tap_done());
	s = store_pool_acquire(p);
	ok(store_schema_version(s) == version, "reopen keeps the schema version");
	store_pool_release(p, s);
	store_pool_close(p);
	ok(raw_int("SELECT COUNT(*) FROM schema_migrations") == version &&
	       raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1") == applied,
	   "reopen applies no migration again");
	ok(stat(path, &sb) == 0 && (sb.st_mode & 077) == 0, "database file is private (0600)");

	raw_exec("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 1)");
	ok(store_pool_open(dsn, 1, &err) == NULL && err.status == 500 && strstr(err.msg, "newer"),
	   "a schema newer than the build is refused (%s)", err.msg);
	raw_exec("DELETE FROM schema_migrations WHERE version = 999");
	ok(store_pool_open("postgres://localhost/x", 1, &err) == NULL && err.status == 500,
	   "postgres DSN refused in this build");
	ok(store_pool_open("sqlite:/nonexistent-dir/x.db", 1, &err) == NULL && err.status == 500,
	   "unwritable path fails with 500");
}

static void user_make(struct user *u, const char *id, const char *email)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->id, sizeof(u->id), "%s", id);
	snprintf(u->email, sizeof(u->email), "%s", email);
	snprintf(u->password_hash, sizeof(u->password_hash), "$argon2id$v=19$fake");
	u->created_at = 1000;
}

/* Users listed oldest first, ties by id, with every field. */
static void test_user_list(struct store *s)
{
	struct err err = ERR_INIT;
	struct user u, *list = NULL;
	size_t n = 0;

	user_make(&u, "usr_0000", "early@example.com");
	u.created_at = 500;
	ok(store_user_insert(s, &u, &err) == 0, "insert an older user");
	ok(store_user_list(s, &list, &n, &err) == 0 && n == 3 && !strcmp(list[0].id, "usr_0000") &&
	       !strcmp(list[1].id, USER_A) && !strcmp(list[2].id, USER_B) &&
	       list[1].is_admin == 1 && list[2].is_admin == 0 &&
	       !strcmp(list[1].email, "Alice@Example.com") && list[0].created_at == 500,
	   "user list: oldest first, then by id, with email and admin flag");
	free(list);
	ok(raw_exec("DELETE FROM users WHERE id = 'usr_0000'") == SQLITE_OK, "older user removed");
}

static void test_users(struct store *s)
{
	struct err err = ERR_INIT;
	struct user u, got;
	int64_t n = -1;

	ok(store_user_count(s, &n, &err) == 0 && n == 0, "no users at first");
	user_make(&u, USER_A, "Alice@Example.com");
	u.is_admin = 1;
	ok(store_user_insert(s, &u, &err) == 0, "insert user A");
	user_make(&u, USER_B, "bob@example.com");
	ok(store_user_insert(s, &u, &err) == 0, "insert user B");
	ok(store_user_count(s, &n, &err) == 0 && n == 2, "two users counted");

	ok(store_user_get(s, USER_A, &got, &err) == 0 && !strcmp(got.email, "Alice@Example.com") &&
	       got.is_admin == 1 && got.created_at == 1000 &&
	       !strcmp(got.password_hash, "$argon2id$v=19$fake"),
	   "get user by id returns every field");
	ok(store_user_get_by_email(s, "alice@EXAMPLE.com", &got, &err) == 0 &&
	       !strcmp(got.id, USER_A),
	   "get user by email ignores case");
	ok(store_user_get(s, "usr_none", &got, &err) == -1 && is_err(&err, 404, "not_found"),
	   "missing user is 404 not_found");
	ok(store_user_get_by_email(s, "nobody@example.com", &got, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "unknown email is 404");

	user_make(&u, "usr_cccc", "ALICE@example.COM");
	ok(store_user_insert(s, &u, &err) == -1 && is_err(&err, 409, "conflict"),
	   "duplicate email in another case is 409 conflict (%s)", err.msg);
	test_user_list(s);
}

static void test_sessions(struct store *s)
{
	struct err err = ERR_INIT;
	struct user u;

	ok(store_session_insert(s, "hash-old", USER_A, 100, 500, &err) == 0, "insert old session");
	ok(store_session_insert(s, "hash-s1", USER_A, 1000, 2000, &err) == 0, "insert session");
	ok(store_session_user(s, "hash-old", 400, &u, &err) == -1 && err.status == 404,
	   "an already expired session is purged by the next login");
	ok(store_session_user(s, "hash-s1", 1999, &u, &err) == 0 && !strcmp(u.id, USER_A),
	   "session finds its user before expiry");
	ok(store_session_user(s, "hash-s1", 2000, &u, &err) == -1 && is_err(&err, 404, "not_found"),
	   "session is not found at its expiry time");
	ok(store_session_insert(s, "hash-s2", "usr_none", 1000, 2000, &err) == -1 &&
	       err.status == 404,
	   "session of a missing user is 404");
	ok(store_session_delete(s, "hash-s1", &err) == 0, "delete session");
	ok(store_session_user(s, "hash-s1", 1500, &u, &err) == -1 && err.status == 404,
	   "deleted session is gone");
	ok(store_session_delete(s, "hash-s1", &err) == -1 && err.status == 404,
	   "deleting it again is 404");
}

static void test_keys(struct store *s)
{
	struct err err = ERR_INIT;
	struct api_key k, got, *list = NULL;
	struct user u;
	size_t n = 99;

	memset(&k, 0, sizeof(k));
	snprintf(k.id, sizeof(k.id), "key_1111");
	snprintf(k.user_id, sizeof(k.user_id), USER_A);
	snprintf(k.name, sizeof(k.name), "ci");
	snprintf(k.prefix, sizeof(k.prefix), "bk_abcd");
	k.created_at = 1000;
	ok(store_key_insert(s, &k, "khash-1", &err) == 0, "insert key");
	snprintf(k.id, sizeof(k.id), "key_2222");
	snprintf(k.name, sizeof(k.name), "laptop");
	k.created_at = 1001;
	ok(store_key_insert(s, &k, "khash-2", &err) == 0, "insert a second key");
	snprintf(k.id, sizeof(k.id), "key_3333");
	ok(store_key_insert(s, &k, "khash-2", &err) == -1 && is_err(&err, 409, "conflict"),
	   "same secret hash twice is 409");

	ok(store_key_user(s, "khash-1", &got, &u, &err) == 0 && !strcmp(got.id, "key_1111") &&
	       !strcmp(got.name, "ci") && !strcmp(got.prefix, "bk_abcd") && got.last_used_at == 0 &&
	       got.revoked_at == 0 && !strcmp(u.id, USER_A) &&
	       !strcmp(u.email, "Alice@Example.com"),
	   "key lookup by hash gives key and user");
	ok(store_key_user(s, "khash-x", &got, &u, &err) == -1 && is_err(&err, 404, "not_found"),
	   "unknown key hash is 404");
	ok(store_key_touch(s, "key_1111", 4242, &err) == 0 &&
	       store_key_user(s, "khash-1", &got, NULL, &err) == 0 && got.last_used_at == 4242,
	   "touch records last use");

	ok(store_key_list(s, USER_A, &list, &n, &err) == 0 && n == 2 &&
	       !strcmp(list[0].id, "key_1111") && !strcmp(list[1].id, "key_2222"),
	   "list the user's keys, oldest first");
	free(list);
	ok(store_key_list(s, USER_B, &list, &n, &err) == 0 && n == 0,
	   "another user lists none of them");
	free(list);

	ok(store_key_revoke(s, USER_B, "key_1111", 5000, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "revoking another user's key is 404");
	ok(store_key_revoke(s, USER_A, "key_1111", 5000, &err) == 0, "revoke own key");
	ok(store_key_user(s, "khash-1", &got, &u, &err) == -1 && err.status == 404,
	   "revoked key no longer authenticates");
	ok(store_key_revoke(s, USER_A, "key_1111", 5001, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "revoking twice is 404");
	ok(store_key_list(s, USER_A, &list, &n, &err) == 0 && n == 1 &&
	       !strcmp(list[0].id, "key_2222"),
	   "revoked key leaves the list");
	free(list);
}

static void test_workspaces(struct store *s)
{
	struct err err = ERR_INIT;
	struct workspace w, *list = NULL;
	struct member *members = NULL;
	size_t n = 0;

	memset(&w, 0, sizeof(w));
	snprintf(w.id, sizeof(w.id), WS_A);
	snprintf(w.name, sizeof(w.name), "alpha-team");
	w.created_at = 1000;
	ok(store_workspace_insert(s, &w, &err) == 0, "insert workspace A with default limit");
	snprintf(w.id, sizeof(w.id), WS_B);
	snprintf(w.name, sizeof(w.name), "bravo");
	w.plan_limit = 2;
	w.created_at = 1001;
	ok(store_workspace_insert(s, &w, &err) == 0, "insert workspace B with limit 2");
	ok(store_workspace_insert(s, &w, &err) == -1 && is_err(&err, 409, "conflict"),
	   "same workspace id twice is 409");

	ok(store_member_insert(s, WS_A, USER_A, "owner", 1000, &err) == 0 &&
	       store_member_insert(s, WS_B, USER_B, "owner", 1001, &err) == 0 &&
	       store_member_insert(s, WS_B, USER_A, "member", 1002, &err) == 0,
	   "insert members");
	ok(store_member_insert(s, WS_A, USER_A, "admin", 1003, &err) == -1 &&
	       is_err(&err, 409, "conflict"),
	   "member twice is 409");
	ok(store_member_insert(s, "ws_none", USER_A, "owner", 1003, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "member of a missing workspace is 404");

	ok(store_workspace_get(s, USER_A, WS_A, &w, &err) == 0 && w.plan_limit == 5 &&
	       !strcmp(w.role, "owner") && !strcmp(w.name, "alpha-team"),
	   "workspace A has plan limit 5 and A's role");
	ok(store_workspace_get(s, USER_A, WS_B, &w, &err) == 0 && w.plan_limit == 2 &&
	       !strcmp(w.role, "member"),
	   "workspace B seen with A's member role");
	ok(store_workspace_get(s, USER_B, WS_A, &w, &err) == -1 && is_err(&err, 404, "not_found"),
	   "B cannot get workspace A: 404");

	ok(store_workspace_list(s, USER_A, &list, &n, &err) == 0 && n == 2 &&
	       !strcmp(list[0].id, WS_A) && !strcmp(list[1].id, WS_B),
	   "A lists both workspaces");
	free(list);
	ok(store_workspace_list(s, USER_B, &list, &n, &err) == 0 && n == 1 &&
	       !strcmp(list[0].id, WS_B) && !strcmp(list[0].role, "owner"),
	   "B lists only workspace B");
	free(list);
	ok(store_member_list(s, WS_B, &members, &n, &err) == 0 && n == 2 &&
	       !strcmp(members[0].user_id, USER_B) && !strcmp(members[1].role, "member") &&
	       !strcmp(members[1].email, "Alice@Example.com"),
	   "member list has emails and roles");
	free(members);
}

static void desktop_make(struct desktop *d, const char *id, const char *ws, const char *name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->workspace_id, sizeof(d->workspace_id), "%s", ws);
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->tier, sizeof(d->tier), "free");
	snprintf(d->image, sizeof(d->image), "desktop");
	snprintf(d->image_version, sizeof(d->image_version), "2026.11.1");
	snprintf(d->state, sizeof(d->state), "provisioning");
	snprintf(d->desired_state, sizeof(d->desired_state), "running");
	d->vcpus = 2;
	d->memory_mb = 4096;
	d->disk_gb = 20;
	d->created_at = d->updated_at = d->state_changed_at = 2000;
}

static void test_desktops(struct store *s)
{
	struct err err = ERR_INIT;
	struct desktop d, got, *list = NULL;
	char longreason[700] = "";
	size_t n = 0;
	int64_t count = -1;

	desktop_make(&d, "dsk_a1", WS_A, "alpha");
	ok(store_desktop_insert(s, &d, &err) == 0, "insert desktop alpha in A");
	desktop_make(&d, "dsk_b1", WS_B, "bravo");
	ok(store_desktop_insert(s, &d, &err) == 0, "insert desktop bravo in B");
	desktop_make(&d, "dsk_a2", WS_A, "alpha");
	ok(store_desktop_insert(s, &d, &err) == -1 && is_err(&err, 409, "conflict"),
	   "a second live alpha in A is 409 (%s)", err.msg);
	desktop_make(&d, "dsk_b2", WS_B, "alpha");
	ok(store_desktop_insert(s, &d, &err) == 0, "the same name in another workspace is fine");
	desktop_make(&d, "dsk_x", "ws_none", "ghost");
	ok(store_desktop_insert(s, &d, &err) == -1 && is_err(&err, 404, "not_found"),
	   "desktop in a missing workspace is 404");

	ok(store_desktop_get_for_user(s, USER_A, "dsk_a1", &got, &err) == 0 &&
	       !strcmp(got.name, "alpha") && !strcmp(got.workspace_id, WS_A) &&
	       !strcmp(got.image_version, "2026.11.1") && got.memory_mb == 4096 &&
	       got.reason[0] == '\0' && got.ready_ms == 0,
	   "owner gets the desktop with its fields");
	ok(store_desktop_get_for_user(s, USER_B, "dsk_a1", &got, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "B cannot get A's desktop: 404");
	ok(store_desktop_list_for_user(s, USER_B, NULL, &list, &n, &err) == 0 && n == 2 &&
	       strcmp(list[0].workspace_id, WS_A) && strcmp(list[1].workspace_id, WS_A),
	   "B lists only desktops of workspace B");
	free(list);
	ok(store_desktop_list_for_user(s, USER_B, WS_A, &list, &n, &err) == 0 && n == 0,
	   "B listing workspace A gets nothing");
	free(list);
	ok(store_desktop_list_for_user(s, USER_A, NULL, &list, &n, &err) == 0 && n == 3,
	   "A lists desktops of both workspaces");
	free(list);
	ok(store_desktop_list_for_user(s, USER_A, WS_A, &list, &n, &err) == 0 && n == 1 &&
	       !strcmp(list[0].id, "dsk_a1"),
	   "A lists one workspace");
	free(list);
	ok(store_desktop_count(s, WS_B, &count, &err) == 0 && count == 2, "B counts 2 desktops");

	ok(store_desktop_set_state(s, "dsk_a1", "error", "qemu exited", 1234, 3000, &err) == 0 &&
	       store_desktop_get(s, "dsk_a1", &got, &err) == 0 && !strcmp(got.state, "error") &&
	       !strcmp(got.reason, "qemu exited") && got.ready_ms == 1234 &&
	       got.state_changed_at == 3000 && got.updated_at == 3000,
	   "set_state stores state, reason, ready_ms and times");
	ok(store_desktop_set_state(s, "dsk_a1", "error", NULL, -1, 3500, &err) == 0 &&
	       store_desktop_get(s, "dsk_a1", &got, &err) == 0 && got.reason[0] == '\0' &&
	       got.ready_ms == 1234 && got.state_changed_at == 3000 && got.updated_at == 3500,
	   "same state: NULL reason clears, ready_ms -1 kept, state_changed_at kept");
	ok(store_desktop_set_desired(s, "dsk_a1", "stopped", 3600, &err) == 0 &&
	       store_desktop_get(s, "dsk_a1", &got, &err) == 0 &&
	       !strcmp(got.desired_state, "stopped") && got.updated_at == 3600 &&
	       !strcmp(got.state, "error"),
	   "set_desired persists");
	ok(store_desktop_set_state(s, "dsk_none", "running", NULL, -1, 1, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "set_state on a missing desktop is 404");
	ok(store_desktop_set_desired(s, "dsk_none", "running", 1, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "set_desired on a missing desktop is 404");

	for (int i = 0; i < 300; i++)
		strcat(longreason, "\xc3\xa9"); /* é, two bytes */
	strcat(longreason, "x");
	ok(store_desktop_set_state(s, "dsk_a1", "error", longreason, -1, 3700, &err) == 0 &&
	       store_desktop_get(s, "dsk_a1", &got, &err) == 0 && strlen(got.reason) == 510,
	   "a long reason is cut to the field at a character boundary");

	ok(store_desktop_set_state(s, "dsk_a1", "destroyed", NULL, -1, 4000, &err) == 0,
	   "destroy alpha");
	ok(store_desktop_get_for_user(s, USER_A, "dsk_a1", &got, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "destroyed desktop is invisible to its user");
	ok(store_desktop_get(s, "dsk_a1", &got, &err) == 0 && !strcmp(got.state, "destroyed"),
	   "destroyed desktop is visible internally");
	ok(store_desktop_count(s, WS_A, &count, &err) == 0 && count == 0,
	   "destroyed desktop is not counted");
	desktop_make(&d, "dsk_a3", WS_A, "alpha");
	d.created_at = 5000;
	ok(store_desktop_insert(s, &d, &err) == 0, "name alpha is free again after destroy");
	ok(store_desktop_set_state(s, "dsk_a1", "stopped", NULL, -1, 5100, &err) == -1 &&
	       is_err(&err, 409, "conflict"),
	   "reviving the destroyed namesake is 409");
	ok(store_desktop_list_live(s, &list, &n, &err) == 0 && n == 3 &&
	       !strcmp(list[2].id, "dsk_a3"),
	   "live list skips destroyed desktops");
	free(list);
}

static void test_events(struct store *s)
{
	struct err err = ERR_INIT;
	struct event ev, *list = NULL;
	int64_t first = 0;
	size_t n = 0;
	int ordered = 1;

	for (int i = 0; i < 3; i++) {
		memset(&ev, 0, sizeof(ev));
		snprintf(ev.workspace_id, sizeof(ev.workspace_id), WS_A);
		snprintf(ev.desktop_id, sizeof(ev.desktop_id), "dsk_a3");
		snprintf(ev.type, sizeof(ev.type), "desktop.state");
		ev.data = i == 2 ? NULL : "{\"state\":\"booting\"}";
		ev.created_at = 6000 + i;
		ok(store_event_append(s, &ev, &err) == 0 && ev.id > first,
		   "append event %d gets an increasing id", i);
		if (i == 0)
			first = ev.id;
	}
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.workspace_id, sizeof(ev.workspace_id), "ws_cccc"); /* nobody's */
	snprintf(ev.type, sizeof(ev.type), "desktop.created");
	ok(store_event_append(s, &ev, &err) == 0, "append an event of another workspace");

	ok(store_event_list(s, USER_A, 0, 100, &list, &n, &err) == 0 && n == 3,
	   "A sees the three events of A");
	for (size_t i = 1; i < n; i++)
		ordered &= list[i].id > list[i - 1].id;
	ok(n == 3 && ordered && !strcmp(list[0].data, "{\"state\":\"booting\"}") &&
	       !strcmp(list[2].data, "{}") && !strcmp(list[0].desktop_id, "dsk_a3") &&
	       list[0].created_at == 6000,
	   "events come oldest first with their data");
	store_events_free(list, n);
	ok(store_event_list(s, USER_A, first, 100, &list, &n, &err) == 0 && n == 2 &&
	       list[0].id > first,
	   "after_id skips what was seen");
	store_events_free(list, n);
	ok(store_event_list(s, USER_A, 0, 1, &list, &n, &err) == 0 && n == 1 && list[0].id == first,
	   "limit bounds the page");
	store_events_free(list, n);
	ok(store_event_list(s, USER_B, 0, 0, &list, &n, &err) == 0 && n == 0,
	   "B sees no event of A");
	store_events_free(list, n);
}

static void audit_add_at(struct store *s, const char *ws, const char *user, const char *action,
			 const char *target, const char *detail, int64_t at)
{
	struct err err = ERR_INIT;
	struct audit_entry a;

	memset(&a, 0, sizeof(a));
	snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", ws);
	snprintf(a.user_id, sizeof(a.user_id), "%s", user);
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.target, sizeof(a.target), "%s", target);
	snprintf(a.remote, sizeof(a.remote), "127.0.0.1");
	a.status = 200;
	a.detail = (char *)detail;
	a.created_at = at;
	if (store_audit_append(s, &a, &err) || a.id <= 0)
		ok(0, "audit append %s: %s", action, err.msg);
}

static void audit_add(struct store *s, const char *ws, const char *user, const char *action,
		      const char *detail)
{
	audit_add_at(s, ws, user, action, "GET /api/desktops", detail, 7000);
}

/* The listing's actions, newest first, joined by spaces, into out. */
static const char *audit_actions(struct store *s, const char *viewer, const struct audit_filter *f,
				 char *out, size_t len)
{
	struct err err = ERR_INIT;
	struct audit_entry *list = NULL;
	size_t n = 0, used = 0;

	out[0] = '\0';
	if (store_audit_list(s, viewer, f, &list, &n, &err)) {
		snprintf(out, len, "error %d %.200s", err.status, err.msg);
		return out;
	}
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "",
					 list[i].action);
	store_audit_free(list, n);
	return out;
}

static void test_audit(struct store *s)
{
	struct err err = ERR_INIT;
	struct audit_entry *list = NULL;
	struct audit_filter f = {0};
	int64_t before;
	size_t n = 0;

	audit_add(s, WS_A, USER_A, "a.1", "{\"n\":1}");
	audit_add(s, "", USER_A, "a.own", NULL);
	audit_add(s, "", USER_B, "b.own", NULL);
	audit_add(s, WS_A, USER_A, "a.2", NULL);
	audit_add(s, "ws_cccc", USER_B, "c.1", NULL);
	audit_add(s, "", "", "anon", NULL);
	audit_add(s, WS_A, "", "a.3", NULL);

	f.limit = 100;
	ok(store_audit_list(s, USER_A, &f, &list, &n, &err) == 0 && n == 4 &&
	       !strcmp(list[0].action, "a.3") && !strcmp(list[1].action, "a.2") &&
	       !strcmp(list[2].action, "a.own") && !strcmp(list[3].action, "a.1"),
	   "A sees A's workspace and own entries, newest first");
	ok(n == 4 && list[3].detail && !strcmp(list[3].detail, "{\"n\":1}") && !list[2].detail &&
	       list[2].workspace_id[0] == '\0' && list[3].status == 200 &&
	       !strcmp(list[3].remote, "127.0.0.1") && list[0].user_id[0] == '\0',
	   "audit fields round-trip, empty ones as \"\" and NULL detail");
	store_audit_free(list, n);

	f.limit = 2;
	ok(store_audit_list(s, USER_A, &f, &list, &n, &err) == 0 && n == 2, "first page of two");
	before = n ? list[n - 1].id : 0;
	store_audit_free(list, n);
	f.before_id = before;
	ok(store_audit_list(s, USER_A, &f, &list, &n, &err) == 0 && n == 2 &&
	       !strcmp(list[0].action, "a.own") && !strcmp(list[1].action, "a.1"),
	   "before_id gives the next page");
	before = n ? list[n - 1].id : 0;
	store_audit_free(list, n);
	f.before_id = before;
	ok(store_audit_list(s, USER_A, &f, &list, &n, &err) == 0 && n == 0, "and then nothing");
	store_audit_free(list, n);

	memset(&f, 0, sizeof(f));
	f.workspace_id = WS_A;
	ok(store_audit_list(s, USER_A, &f, &list, &n, &err) == 0 && n == 3,
	   "filtered to workspace A: three entries, no own ones");
	store_audit_free(list, n);
	ok(store_audit_list(s, USER_B, &f, &list, &n, &err) == 0 && n == 0,
	   "B filtering on workspace A sees nothing");
	store_audit_free(list, n);
	f.workspace_id = "";
	ok(store_audit_list(s, USER_B, &f, &list, &n, &err) == 0 && n == 1 &&
	       !strcmp(list[0].action, "b.own"),
	   "B sees only its own entry");
	store_audit_free(list, n);
}

/* The filters of GET /api/audit: user, action (exact or prefix), desktop,
 * time window, each alone and together, never past what the viewer sees. */
static void test_audit_filters(struct store *s)
{
	struct audit_filter f = {0};
	char got[512];

	/* Times 10000.. so that the entries of test_audit (7000) stay out. */
	audit_add_at(s, WS_A, USER_A, "desktop.stop", "POST /api/desktops/dsk_one/stop",
		     "{\"id\":\"dsk_one\",\"route\":\"/api/desktops/{id}/stop\"}", 10000);
	audit_add_at(s, WS_A, USER_B, "desktop.start", "POST /api/desktops/dsk_two/start",
		     "{\"id\":\"dsk_two\",\"route\":\"/api/desktops/{id}/start\"}", 11000);
	audit_add_at(s, WS_A, USER_A, "desktop.create", "POST /api/desktops",
		     "{\"desktopId\":\"dsk_one\",\"route\":\"/api/desktops\"}", 12000);
	audit_add_at(s, WS_A, "", "chat.agent.assistant", "dsk_one", "{\"messageId\":\"msg_1\"}",
		     13000);
	audit_add_at(s, WS_A, USER_A, "desktopXstop", "GET /api/desktops", "not json", 14000);
	audit_add_at(s, "ws_cccc", USER_A, "desktop.stop", "POST /api/desktops/dsk_one/stop",
		     "{\"id\":\"dsk_one\"}", 15000);
	audit_add_at(s, WS_A, USER_A, "desktop_stop", "GET /api/desktops", NULL, 16000);

	f.since = 10000;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)),
		   "desktop_stop desktopXstop chat.agent.assistant desktop.create desktop.start "
		   "desktop.stop"),
	   "since: entries from then on, and not another workspace's (%s)", got);
	f.since = 11000;
	f.until = 13000;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop.create desktop.start"),
	   "since is inclusive, until exclusive (%s)", got);
	f.until = 11000;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), ""),
	   "an empty window lists nothing (%s)", got);

	memset(&f, 0, sizeof(f));
	f.since = 10000;
	f.user_id = USER_B;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop.start"),
	   "userId: only that user's entries (%s)", got);
	f.user_id = "usr_nobody";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), ""),
	   "an unknown user: nothing (%s)", got);

	memset(&f, 0, sizeof(f));
	f.since = 10000;
	f.action = "desktop.stop";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop.stop"),
	   "action: exact match only (%s)", got);
	f.action = "desktop.*";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)),
		   "desktop.create desktop.start desktop.stop"),
	   "action ending in *: a prefix, '.' taken literally (%s)", got);
	f.action = "desktop_*";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop_stop"),
	   "'_' in a prefix is no wildcard (%s)", got);
	f.action = "desktop";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), ""),
	   "without *, a prefix matches nothing (%s)", got);
	f.action = "*";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)),
		   "desktop_stop desktopXstop chat.agent.assistant desktop.create desktop.start "
		   "desktop.stop"),
	   "a lone * matches every action (%s)", got);

	memset(&f, 0, sizeof(f));
	f.since = 10000;
	f.desktop_id = "dsk_one";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)),
		   "chat.agent.assistant desktop.create desktop.stop"),
	   "desktopId: by path id, by detail desktopId, by target; malformed detail skipped "
	   "(%s)",
	   got);
	f.desktop_id = "dsk_on";
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), ""),
	   "desktopId matches whole ids only (%s)", got);

	memset(&f, 0, sizeof(f));
	f.since = 10000;
	f.desktop_id = "dsk_one";
	f.action = "desktop.*";
	f.user_id = USER_A;
	f.workspace_id = WS_A;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop.create desktop.stop"),
	   "filters combine with the workspace (%s)", got);
	f.limit = 1;
	ok(!strcmp(audit_actions(s, USER_A, &f, got, sizeof(got)), "desktop.create"),
	   "and with the limit (%s)", got);
	f.limit = 0;
	f.workspace_id = NULL;
	ok(!strcmp(audit_actions(s, USER_B, &f, got, sizeof(got)), ""),
	   "B filtering on A's user and desktop sees nothing of A's own (%s)", got);
}

static const struct usage_row *usage_find(const struct usage_row *r, size_t n, const char *id,
					  const char *tier)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].desktop_id, id) && !strcmp(r[i].tier, tier))
			return &r[i];
	return NULL;
}

static void test_usage(struct store *s)
{
	struct err err = ERR_INIT;
	struct usage_row *rows = NULL;
	const struct usage_row *r;
	struct desktop d;
	size_t n = 0;

	desktop_make(&d, "dsk_u1", WS_A, "usage-one");
	store_desktop_insert(s, &d, &err);
	/* closed [10s, 50s); open from 80s */
	ok(store_usage_open(s, "dsk_u1", WS_A, "free", 10000, &err) == 0, "open interval");
	ok(store_usage_open(s, "dsk_u1", WS_A, "free", 20000, &err) == 0,
	   "opening again keeps the open interval");
	ok(store_usage_close(s, "dsk_u1", 50000, &err) == 0, "close interval");
	ok(store_usage_close(s, "dsk_u1", 60000, &err) == 0, "closing with none open is fine");
	ok(store_usage_open(s, "dsk_u1", WS_A, "pro", 80000, &err) == 0, "open a pro interval");
	ok(store_usage_open(s, "dsk_none", WS_A, "free", 1, &err) == -1 &&
	       is_err(&err, 404, "not_found"),
	   "usage of a missing desktop is 404");

	ok(store_usage_query(s, WS_A, 20000, 100000, 90000, &rows, &n, &err) == 0 && n == 2,
	   "query gives one row per desktop and tier");
	r = usage_find(rows, n, "dsk_u1", "free");
	ok(r && r->seconds == 30 && !strcmp(r->desktop_name, "usage-one"),
	   "closed interval clipped at from: 30 s");
	r = usage_find(rows, n, "dsk_u1", "pro");
	ok(r && r->seconds == 10, "open interval counts up to now: 10 s");
	free(rows);

	ok(store_usage_query(s, WS_A, 0, 30000, 90000, &rows, &n, &err) == 0 && n == 1 &&
	       rows[0].seconds == 20,
	   "closed interval clipped at to: 20 s");
	free(rows);
	ok(store_usage_query(s, WS_A, 0, 85000, 200000, &rows, &n, &err) == 0 && n == 2 &&
	       (r = usage_find(rows, n, "dsk_u1", "pro")) && r->seconds == 5,
	   "open interval clipped at to: 5 s");
	free(rows);
	ok(store_usage_query(s, WS_B, 0, 100000, 90000, &rows, &n, &err) == 0 && n == 0,
	   "another workspace has no usage");
	free(rows);
	ok(store_usage_query(s, NULL, 20000, 100000, 90000, &rows, &n, &err) == 0 && n == 2,
	   "NULL workspace queries every workspace");
	free(rows);
	ok(store_usage_query(s, WS_A, 60000, 70000, 90000, &rows, &n, &err) == 0 && n == 0,
	   "a window with no running time is empty");
	free(rows);
}

static void test_meta(struct store *s)
{
	struct err err = ERR_INIT;
	char v[64], small[4];

	ok(store_meta_get(s, "accel", v, sizeof(v), &err) == -1 && is_err(&err, 404, "not_found"),
	   "missing setting is 404");
	ok(store_meta_set(s, "accel", "tcg", &err) == 0 &&
	       store_meta_get(s, "accel", v, sizeof(v), &err) == 0 && !strcmp(v, "tcg"),
	   "set and get a setting");
	ok(store_meta_set(s, "accel", "kvm-ok", &err) == 0 &&
	       store_meta_get(s, "accel", v, sizeof(v), &err) == 0 && !strcmp(v, "kvm-ok"),
	   "set overwrites");
	ok(store_meta_get(s, "accel", small, sizeof(small), &err) == 0 && !strcmp(small, "kvm"),
	   "value is cut to the buffer");
}

static void test_transactions(struct store *s)
{
	struct err err = ERR_INIT;
	int64_t n = 0;

	ok(store_begin(s, &err) == 0 && store_meta_set(s, "tx", "1", &err) == 0, "begin and write");
	ok(store_begin(s, &err) == -1 && err.status == 500, "nested begin is refused");
	store_rollback(s);
	ok(store_meta_get(s, "tx", (char[8]){0}, 8, &err) == -1 && err.status == 404,
	   "rollback undoes the write");
	ok(store_begin(s, &err) == 0 && store_meta_set(s, "tx", "2", &err) == 0 &&
	       store_commit(s, &err) == 0 && store_user_count(s, &n, &err) == 0,
	   "begin, write, commit");
	ok(store_meta_get(s, "tx", (char[8]){0}, 8, &err) == 0, "commit keeps the write");
}

/* Pool: more threads than connections, every one writing. */
#define POOL_SIZE 3
#define THREADS 6
#define ROUNDS 60

static struct store_pool *shared_pool;

static void *writer(void *arg)
{
	long t = (long)arg, failures = 0;
	struct err err = ERR_INIT;

	for (int i = 0; i < ROUNDS; i++) {
		struct store *s = store_pool_acquire(shared_pool);
		struct event ev = {0};
		struct desktop d;
		char id[ID_MAX], name[64];
		int64_t n;

		snprintf(ev.workspace_id, sizeof(ev.workspace_id), WS_B);
		snprintf(ev.type, sizeof(ev.type), "test.thread");
		ev.data = "{}";
		ev.created_at = i;
		if (store_event_append(s, &ev, &err))
			failures++;
		if (i % 10 == 0) {
			snprintf(id, sizeof(id), "dsk_t%ld_%d", t, i);
			snprintf(name, sizeof(name), "t%ld-%d", t, i);
			desktop_make(&d, id, WS_B, name);
			if (store_begin(s, &err) || store_desktop_count(s, WS_B, &n, &err) ||
			    store_desktop_insert(s, &d, &err) || store_commit(s, &err)) {
				store_rollback(s);
				failures++;
			}
		}
		store_pool_release(shared_pool, s);
	}
	if (failures)
		fprintf(stderr, "writer %ld: %ld failures, last: %s\n", t, failures, err.msg);
	return (void *)failures;
}

static void test_pool(void)
{
	struct err err = ERR_INIT;
	pthread_t th[THREADS];
	long failures = 0;
	int64_t before, after;
	struct store *s;

	shared_pool = store_pool_open(dsn, POOL_SIZE, &err);
	if (!ok(shared_pool != NULL, "open a pool of %d", POOL_SIZE))
		return;
	before = raw_int("SELECT COUNT(*) FROM events");
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	for (int i = 0; i < THREADS; i++) {
		void *r;

		pthread_join(th[i], &r);
		failures += (long)r;
	}
	after = raw_int("SELECT COUNT(*) FROM events");
	ok(failures == 0, "%d threads on %d connections: no failures", THREADS, POOL_SIZE);
	ok(after - before == THREADS * ROUNDS, "every event was written (%lld)",
	   (long long)(after - before));
	s = store_pool_acquire(shared_pool);
	ok(store_desktop_count(s, WS_B, &after, &err) == 0 && after == 2 + THREADS * ROUNDS / 10,
	   "every transaction committed");
	ok(store_begin(s, &err) == 0, "begin, then release without commit");
	store_pool_release(shared_pool, s);
	s = store_pool_acquire(shared_pool);
	ok(store_begin(s, &err) == 0, "a released connection comes back without a transaction");
	store_rollback(s);
	store_pool_release(shared_pool, s);
	store_pool_close(shared_pool);
}

/* Issue 5: boot paths and setup state, snapshots, workspace SSH keys. */
static void test_instant(struct store *s)
{
	struct err err = ERR_INIT;
	struct desktop_extra x, got;
	struct snapshot sn, sg, *list = NULL;
	size_t n = 0;
	int64_t count = -1, bytes = -1;
	char *keys = NULL;

	ok(store_desktop_extra_get(s, "dsk_a1", &got, &err) == 0 && !strcmp(got.setup_state, "none") &&
	       !*got.boot_path,
	   "a desktop without extras reads as setup none, no boot path");
	memset(&x, 0, sizeof(x));
	snprintf(x.setup_state, sizeof(x.setup_state), "pending");
	snprintf(x.setup_items, sizeof(x.setup_items), "hostname,sshKeys,provider");
	ok(store_desktop_extra_put(s, "dsk_a1", &x, 3000, &err) == 0, "store extras");
	snprintf(x.boot_path, sizeof(x.boot_path), "template");
	snprintf(x.setup_state, sizeof(x.setup_state), "failed");
	snprintf(x.setup_reason, sizeof(x.setup_reason), "not delivered: provider");
	ok(store_desktop_extra_put(s, "dsk_a1", &x, 3001, &err) == 0 &&
	       store_desktop_extra_get(s, "dsk_a1", &got, &err) == 0 &&
	       !strcmp(got.boot_path, "template") && !strcmp(got.setup_state, "failed") &&
	       !strcmp(got.setup_items, "hostname,sshKeys,provider") &&
	       !strcmp(got.setup_reason, "not delivered: provider"),
	   "extras are replaced as a whole and read back");
	ok(store_desktop_extra_put(s, "dsk_nope", &x, 3002, &err) == -1 && err.status == 404,
	   "extras of an unknown desktop: 404");

	memset(&sn, 0, sizeof(sn));
	snprintf(sn.id, sizeof(sn.id), "snp_1");
	snprintf(sn.desktop_id, sizeof(sn.desktop_id), "dsk_a1");
	snprintf(sn.workspace_id, sizeof(sn.workspace_id), WS_A);
	snprintf(sn.name, sizeof(sn.name), "base");
	snprintf(sn.state, sizeof(sn.state), "creating");
	snprintf(sn.tier, sizeof(sn.tier), "free");
	snprintf(sn.image, sizeof(sn.image), "tiny");
	snprintf(sn.image_version, sizeof(sn.image_version), "v1");
	sn.vcpus = 2;
	sn.memory_mb = 4096;
	sn.disk_gb = 20;
	sn.created_at = 3100;
	ok(store_snapshot_insert(s, &sn, &err) == 0, "insert a snapshot");
	snprintf(sn.id, sizeof(sn.id), "snp_2");
	ok(store_snapshot_insert(s, &sn, &err) == -1 && is_err(&err, 409, "conflict"),
	   "a second snapshot of that name on the desktop: 409");
	snprintf(sn.name, sizeof(sn.name), "other");
	ok(store_snapshot_insert(s, &sn, &err) == 0, "another name is fine");
	ok(store_snapshot_set_state(s, "snp_1", "ready", "memory", 5000, NULL, &err) == 0 &&
	       store_snapshot_set_state(s, "snp_2", "failed", NULL, 0, "disk full", &err) == 0,
	   "settle the snapshots");
	ok(store_snapshot_get(s, "dsk_a1", "snp_1", &sg, &err) == 0 && !strcmp(sg.state, "ready") &&
	       !strcmp(sg.kind, "memory") && sg.size_bytes == 5000 && sg.vcpus == 2,
	   "get a snapshot of its desktop");
	ok(store_snapshot_get(s, "dsk_b1", "snp_1", &sg, &err) == -1 && err.status == 404,
	   "through another desktop it is not found");
	ok(store_snapshot_get(s, NULL, "snp_2", &sg, &err) == 0 && !strcmp(sg.reason, "disk full"),
	   "by id alone, with its failure reason");
	ok(store_snapshot_set_state(s, "snp_1", "restoring", NULL, 5000, NULL, &err) == 0 &&
	       store_snapshot_set_state(s, "snp_1", "ready", NULL, -1, NULL, &err) == 0 &&
	       store_snapshot_get(s, NULL, "snp_1", &sg, &err) == 0 && !strcmp(sg.state, "ready") &&
	       sg.size_bytes == 5000 && !strcmp(sg.kind, "memory"),
	   "settling with a size below 0 and no kind keeps both (a restore)");
	ok(store_snapshot_usage(s, "dsk_a1", &count, &bytes, &err) == 0 && count == 1 && bytes == 5000,
	   "usage counts the ones not failed");
	ok(store_snapshot_list(s, "dsk_a1", &list, &n, &err) == 0 && n == 2 &&
	       !strcmp(list[0].id, "snp_1"),
	   "list, oldest first");
	free(list);
	ok(store_snapshot_delete(s, "snp_2", &err) == 0 &&
	       store_snapshot_delete(s, "snp_2", &err) == -1 && err.status == 404,
	   "delete once, then 404");
	ok(store_snapshot_set_state(s, "snp_none", "ready", NULL, 0, NULL, &err) == -1 &&
	       err.status == 404,
	   "settling an unknown snapshot: 404");

	ok(store_ssh_keys_get(s, WS_A, &keys, &err) == 0 && !strcmp(keys, "[]"),
	   "a workspace without keys reads []");
	free(keys);
	ok(store_ssh_keys_put(s, WS_A, "[\"ssh-ed25519 AAAA x\"]", 3200, &err) == 0 &&
	       store_ssh_keys_get(s, WS_A, &keys, &err) == 0 && strstr(keys, "AAAA"),
	   "keys are stored and read back");
	free(keys);
	ok(store_ssh_keys_put(s, "ws_none", "[]", 3201, &err) == -1 && err.status == 404,
	   "keys of an unknown workspace: 404");
}

/* Retention */

#define RET_NOW 20000000000LL		    /* "now" of the prune, in ms */
#define RET_CUT (RET_NOW - 90 * 86400000LL) /* rows created before it go */
#define RET_OLD (RET_CUT - 1)
#define RET_AUDIT_OLD 12000 /* more than two batches */

static void event_add_at(struct store *s, int64_t at, int64_t *id)
{
	struct err err = ERR_INIT;
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	snprintf(ev.workspace_id, sizeof(ev.workspace_id), WS_A);
	snprintf(ev.desktop_id, sizeof(ev.desktop_id), "dsk_a1");
	snprintf(ev.type, sizeof(ev.type), "chat.delta");
	ev.created_at = at;
	if (store_event_append(s, &ev, &err))
		ok(0, "event append: %s", err.msg);
	if (id)
		*id = ev.id;
}

static void egress_add_at(struct store *s, int64_t at)
{
	struct err err = ERR_INIT;
	struct egress_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.desktop_id, sizeof(e.desktop_id), "dsk_a1");
	snprintf(e.workspace_id, sizeof(e.workspace_id), WS_A);
	snprintf(e.host, sizeof(e.host), "example.org");
	e.port = 443;
	e.created_at = at;
	if (store_egress_append(s, &e, &err))
		ok(0, "egress append: %s", err.msg);
}

/* Rows of a table created before RET_CUT, and from it on. */
static long long ret_old(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s WHERE created_at < %lld", table,
		 RET_CUT);
	return raw_int(sql);
}

static long long ret_new(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s WHERE created_at >= %lld", table,
		 RET_CUT);
	return raw_int(sql);
}

/* Old audit, event and egress rows, some between newer ones (a row's time
 * need not follow its id), user data of the same age, and sessions. */
static void retention_fill(struct store *s)
{
	struct err err = ERR_INIT;
	struct chat_msg m;
	int good = 1;

	good &= store_begin(s, &err) == 0;
	for (int i = 0; i < RET_AUDIT_OLD; i++)
		audit_add_at(s, WS_A, USER_A, "http.request", "GET /api/desktops", NULL,
			     RET_OLD - RET_AUDIT_OLD + i);
	good &= store_commit(s, &err) == 0;
	ok(good, "insert %d old audit rows in one transaction (%s)", RET_AUDIT_OLD, err.msg);
	audit_add_at(s, WS_A, USER_A, "kept.boundary", "", NULL, RET_CUT);
	audit_add_at(s, WS_A, USER_A, "http.request", "", NULL, RET_OLD);
	audit_add_at(s, WS_A, USER_A, "kept.new", "", NULL, RET_NOW);
	audit_add_at(s, WS_A, USER_A, "http.request", "", NULL, 1);
	for (int i = 0; i < 3; i++)
		event_add_at(s, RET_OLD - i, NULL);
	event_add_at(s, RET_CUT, NULL);
	event_add_at(s, RET_OLD, NULL);
	event_add_at(s, RET_NOW, NULL);
	for (int i = 0; i < 14; i++)
		egress_add_at(s, RET_OLD - 100 + i);
	egress_add_at(s, RET_NOW);

	memset(&m, 0, sizeof(m));
	snprintf(m.id, sizeof(m.id), "msg_retained");
	snprintf(m.desktop_id, sizeof(m.desktop_id), "dsk_a1");
	snprintf(m.workspace_id, sizeof(m.workspace_id), WS_A);
	snprintf(m.role, sizeof(m.role), "user");
	snprintf(m.status, sizeof(m.status), "delivered");
	m.content = "an old question";
	m.created_at = 5;
	ok(store_chat_insert(s, &m, &err) == 0 &&
	       store_llm_usage_add(s, "dsk_a1", WS_A, "anthropic", "claude", 10, 20, 5, &err) ==
		   0 &&
	       store_usage_open(s, "dsk_a1", WS_A, "free", 5, &err) == 0 &&
	       store_usage_close(s, "dsk_a1", 6, &err) == 0,
	   "old chat, LLM usage and running time are stored (%s)", err.msg);
	ok(store_session_insert(s, "hash-ret-old", USER_A, 100, RET_NOW - 1, &err) == 0 &&
	       store_session_insert(s, "hash-ret-now", USER_A, 100, RET_NOW, &err) == 0 &&
	       store_session_insert(s, "hash-ret-live", USER_A, 100, RET_NOW + 1, &err) == 0,
	   "sessions expired before now, at now, and after now");
}

static void test_retention(struct store *s)
{
	static const char *const logs[] = {"audit", "events", "egress_log"};
	struct err err = ERR_INIT;
	struct store_pruned r;
	struct event *list = NULL;
	struct user u;
	atomic_int stop;
	long long old_audit, old_events, old_egress, expired, kept[3], chat, llm, usage, max_id;
	int64_t id;
	size_t n = 0;
	int rc;

	retention_fill(s);
	old_audit = ret_old("audit");
	old_events = ret_old("events");
	old_egress = ret_old("egress_log");
	for (int i = 0; i < 3; i++)
		kept[i] = ret_new(logs[i]);
	expired = raw_int("SELECT COUNT(*) FROM sessions WHERE expires_at <= 20000000000");
	chat = raw_int("SELECT COUNT(*) FROM chat_messages");
	llm = raw_int("SELECT COUNT(*) FROM llm_usage");
	usage = raw_int("SELECT COUNT(*) FROM usage");
	ok(old_audit > RET_AUDIT_OLD && old_events >= 4 && old_egress == 14 && expired == 2 &&
	       kept[0] == 2 && kept[1] == 2 && kept[2] == 1,
	   "the tables hold old and new rows (audit %lld, events %lld, egress %lld old)", old_audit,
	   old_events, old_egress);

	ok(store_begin(s, &err) == 0 &&
	       store_prune(s, RET_CUT, RET_NOW, 0, NULL, &(struct store_pruned){0}, &err) == -1 &&
	       err.status == 500,
	   "a prune inside a transaction is refused");
	store_rollback(s);

	memset(&r, 0, sizeof(r));
	ok(store_prune(s, 0, RET_NOW - 10, 0, NULL, &r, &err) == 0 && !r.audit && !r.events &&
	       !r.egress && !r.sessions && ret_old("audit") == old_audit,
	   "before 0 keeps every log row (and no session had expired yet)");

	atomic_store(&stop, 1);
	memset(&r, 0, sizeof(r));
	rc = store_prune(s, RET_CUT, RET_NOW, STORE_PRUNE_BATCH, &stop, &r, &err);
	ok(rc == 0 && r.audit == STORE_PRUNE_BATCH && !r.events && !r.egress && !r.sessions &&
	       ret_old("audit") == old_audit - STORE_PRUNE_BATCH,
	   "a stop stops after one batch of %d rows (removed %lld)", STORE_PRUNE_BATCH,
	   (long long)r.audit);
	atomic_store(&stop, 0);

	rc = store_prune(s, RET_CUT, RET_NOW, STORE_PRUNE_BATCH, &stop, &r, &err);
	ok(rc == 0, "prune the rest (%s)", rc ? err.msg : "");
	ok(r.audit == old_audit && r.events == old_events && r.egress == old_egress &&
	       r.sessions == expired,
	   "it counts what it removed: audit %lld/%lld events %lld/%lld egress %lld/%lld "
	   "sessions %lld/%lld",
	   (long long)r.audit, old_audit, (long long)r.events, old_events, (long long)r.egress,
	   old_egress, (long long)r.sessions, expired);
	for (int i = 0; i < 3; i++)
		ok(ret_old(logs[i]) == 0 && ret_new(logs[i]) == kept[i],
		   "%s: every row older than the cutoff is gone, the others stay", logs[i]);
	ok(raw_int("SELECT COUNT(*) FROM audit WHERE action LIKE 'kept.%'") == 2,
	   "the audit row created at the cutoff itself stays");
	ok(raw_int("SELECT COUNT(*) FROM chat_messages") == chat &&
	       raw_int("SELECT COUNT(*) FROM llm_usage") == llm &&
	       raw_int("SELECT COUNT(*) FROM usage") == usage && chat >= 1 && llm >= 1,
	   "chat messages, LLM usage and running time older than the cutoff stay");
	ok(store_session_user(s, "hash-ret-live", RET_NOW, &u, &err) == 0 &&
	       raw_int("SELECT COUNT(*) FROM sessions WHERE token_hash LIKE 'hash-ret-%'") == 1,
	   "expired sessions are gone, the live one stays");

	memset(&r, 0, sizeof(r));
	ok(store_prune(s, RET_CUT, RET_NOW, 7, NULL, &r, &err) == 0 && !r.audit && !r.events &&
	       !r.egress && !r.sessions,
	   "a second prune finds nothing");
	for (int i = 0; i < 14; i++)
		egress_add_at(s, RET_OLD - i);
	memset(&r, 0, sizeof(r));
	rc = store_prune(s, RET_CUT, RET_NOW, 7, NULL, &r, &err);
	ok(rc == 0 && r.egress == 14 && ret_old("egress_log") == 0,
	   "batches that end exactly on the last old row: all %lld go", (long long)r.egress);

	max_id = raw_int("SELECT MAX(id) FROM events");
	memset(&r, 0, sizeof(r));
	ok(store_prune(s, RET_NOW + 1, RET_NOW, 0, NULL, &r, &err) == 0 &&
	       raw_int("SELECT COUNT(*) FROM events") == 0 && r.events == kept[1],
	   "a cutoff after every row empties the events table, the newest row too");
	ok(store_event_list(s, USER_A, 1, 100, &list, &n, &err) == 0 && n == 0,
	   "resuming from a pruned id gives what is left: nothing");
	store_events_free(list, n);
	id = 0;
	event_add_at(s, RET_NOW + 2, &id);
	ok(id > max_id, "an event appended after the prune gets a larger id (%lld > %lld)",
	   (long long)id, max_id);
	ok(store_event_list(s, USER_A, 1, 100, &list, &n, &err) == 0 && n == 1 && list[0].id == id,
	   "resuming from a pruned id gives the events kept since");
	store_events_free(list, n);
}

int main(void)
{
	struct err err = ERR_INIT;
	struct store_pool *p;
	struct store *s;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bureau.db", dir);
	snprintf(dsn, sizeof(dsn), "sqlite:%s", path);

	test_migrations();
	p = store_pool_open(dsn, 2, &err);
	if (!ok(p != NULL, "open the pool for the data tests"))
		return tap_done();
	s = store_pool_acquire(p);
	test_users(s);
	test_sessions(s);
	test_keys(s);
	test_workspaces(s);
	test_desktops(s);
	test_events(s);
	test_audit(s);
	test_audit_filters(s);
	test_usage(s);
	test_meta(s);
	test_instant(s);
	test_retention(s);
	test_transactions(s);
	store_pool_release(p, s);
	store_pool_close(p);
	test_pool();

	rm_rf(dir);
	return tap_done();
}
