/* bureau's store. A `struct store` is one connection, used by one thread at
 * a time; a `struct store_pool` hands connections to the worker threads
 * (nothing here runs on the loop thread). Every function returns 0 (or a
 * pointer) on success, and -1 (or NULL) with err filled on failure:
 * status 404 "not_found" when a row does not exist or is not visible to the
 * user, 409 "conflict" for a unique constraint, 500 otherwise.
 *
 * Times are milliseconds since the epoch. Ids are strings with a type
 * prefix made by the caller (common/util.h). Lists are arrays the caller
 * frees with the matching *_free function. The SQL and the engine
 * (SQLite today, PostgreSQL later) stay inside src/store/. */
#ifndef BUREAU_STORE_H
#define BUREAU_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

struct store;
struct store_pool;

/* dsn: "sqlite:/path/to/bureau.db" or a plain path (SQLite, WAL mode).
 * Opening runs the numbered migrations in src/store/migrations/. */
struct store_pool *store_pool_open(const char *dsn, int size, struct err *err);
void store_pool_close(struct store_pool *p);
/* Blocks until a connection is free. */
struct store *store_pool_acquire(struct store_pool *p);
void store_pool_release(struct store_pool *p, struct store *s);
/* The schema version after migrations. */
int store_schema_version(struct store *s);

int store_begin(struct store *s, struct err *err); /* a write transaction */
int store_commit(struct store *s, struct err *err);
void store_rollback(struct store *s);

/* Users and sessions */
struct user {
	char id[ID_MAX];
	char email[256];
	char password_hash[192]; /* libsodium crypto_pwhash_str */
	int is_admin;
	int64_t created_at;
};
int store_user_count(struct store *s, int64_t *n, struct err *err);
int store_user_insert(struct store *s, const struct user *u, struct err *err);
int store_user_get(struct store *s, const char *id, struct user *u, struct err *err);
int store_user_get_by_email(struct store *s, const char *email, struct user *u, struct err *err);

int store_session_insert(struct store *s, const char *token_hash, const char *user_id,
			 int64_t created_at, int64_t expires_at, struct err *err);
/* The session's user, if the session exists and has not expired at now. */
int store_session_user(struct store *s, const char *token_hash, int64_t now, struct user *u,
		       struct err *err);
int store_session_delete(struct store *s, const char *token_hash, struct err *err);

/* API keys: only the hash of the secret is stored. */
struct api_key {
	char id[ID_MAX];
	char user_id[ID_MAX];
	char name[64];
	char prefix[16]; /* first characters of the secret, to recognise it */
	int64_t created_at;
	int64_t last_used_at; /* 0: never */
	int64_t revoked_at;   /* 0: active */
};
int store_key_insert(struct store *s, const struct api_key *k, const char *token_hash,
		     struct err *err);
/* The active (not revoked) key with this hash, and its user. */
int store_key_user(struct store *s, const char *token_hash, struct api_key *k, struct user *u,
		   struct err *err);
int store_key_list(struct store *s, const char *user_id, struct api_key **out, size_t *n,
		   struct err *err);
/* 404 when the key is not the user's or already revoked. */
int store_key_revoke(struct store *s, const char *user_id, const char *key_id, int64_t now,
		     struct err *err);
int store_key_touch(struct store *s, const char *key_id, int64_t now, struct err *err);

/* Workspaces and members */
struct workspace {
	char id[ID_MAX];
	char name[64];
	int plan_limit;  /* desktops that may exist (stopped ones count) */
	char role[16];   /* the asking user's role: "owner", "admin", "member" */
	int64_t created_at;
};
struct member {
	char user_id[ID_MAX];
	char email[256];
	char role[16];
	int64_t created_at;
};
int store_workspace_insert(struct store *s, const struct workspace *w, struct err *err);
int store_member_insert(struct store *s, const char *workspace_id, const char *user_id,
			const char *role, int64_t now, struct err *err);
int store_member_list(struct store *s, const char *workspace_id, struct member **out, size_t *n,
		      struct err *err);
/* Workspaces the user is a member of, role filled. */
int store_workspace_list(struct store *s, const char *user_id, struct workspace **out, size_t *n,
			 struct err *err);
/* 404 unless the user is a member. */
int store_workspace_get(struct store *s, const char *user_id, const char *workspace_id,
			struct workspace *w, struct err *err);

/* Desktops */
struct desktop {
	char id[ID_MAX];
	char workspace_id[ID_MAX];
	char name[64];
	char tier[16];
	char image[32];
	char image_version[64];
	char state[16];         /* provisioning booting running stopping stopped error destroying destroyed */
	char desired_state[16]; /* running stopped destroyed */
	char reason[512];       /* why the last transition happened (errors) */
	int vcpus;
	int memory_mb;
	int disk_gb;
	int64_t created_at;
	int64_t updated_at;
	int64_t state_changed_at;
	int64_t ready_ms; /* last create/start → running duration; 0: unknown */
};
/* 409 when the workspace already has a live desktop with that name. */
int store_desktop_insert(struct store *s, const struct desktop *d, struct err *err);
/* Any desktop, destroyed or not (internal use). */
int store_desktop_get(struct store *s, const char *id, struct desktop *d, struct err *err);
/* 404 unless the user is a member of its workspace and it is not destroyed. */
int store_desktop_get_for_user(struct store *s, const char *user_id, const char *id,
			       struct desktop *d, struct err *err);
/* The user's live desktops, all workspaces or one (workspace_id NULL). */
int store_desktop_list_for_user(struct store *s, const char *user_id, const char *workspace_id,
				struct desktop **out, size_t *n, struct err *err);
/* Every desktop not destroyed (the reconciler). */
int store_desktop_list_live(struct store *s, struct desktop **out, size_t *n, struct err *err);
/* Desktops not destroyed in the workspace. */
int store_desktop_count(struct store *s, const char *workspace_id, int64_t *n, struct err *err);
int store_desktop_set_desired(struct store *s, const char *id, const char *desired, int64_t now,
			      struct err *err);
/* reason may be NULL (cleared). ready_ms < 0 leaves it unchanged. */
int store_desktop_set_state(struct store *s, const char *id, const char *state,
			    const char *reason, int64_t ready_ms, int64_t now, struct err *err);

/* Events: the stored history of state transitions, streamed by SSE. */
struct event {
	int64_t id; /* increasing; the SSE event id */
	char workspace_id[ID_MAX];
	char desktop_id[ID_MAX];
	char type[48];  /* "desktop.state", "desktop.created", ... */
	char *data;     /* JSON text, owned */
	int64_t created_at;
};
/* Fills ev->id. */
int store_event_append(struct store *s, struct event *ev, struct err *err);
/* Events after after_id in the user's workspaces, oldest first. */
int store_event_list(struct store *s, const char *user_id, int64_t after_id, int limit,
		     struct event **out, size_t *n, struct err *err);
void store_events_free(struct event *ev, size_t n);

/* Audit log */
struct audit_entry {
	int64_t id;
	char workspace_id[ID_MAX]; /* "" when none applies */
	char user_id[ID_MAX];      /* "" for anonymous requests */
	char key_id[ID_MAX];       /* "" unless an API key was used */
	char action[64];           /* "http.request", "desktop.create", ... */
	char target[128];          /* "GET /api/desktops", "dsk_…" */
	int status;                /* HTTP status or 0 */
	char remote[64];
	char *detail; /* JSON text or NULL, owned */
	int64_t created_at;
};
int store_audit_append(struct store *s, struct audit_entry *a, struct err *err);
/* Entries of the user's workspaces and the user's own, newest first,
 * with id < before_id (0: no bound). */
int store_audit_list(struct store *s, const char *user_id, const char *workspace_id,
		     int64_t before_id, int limit, struct audit_entry **out, size_t *n,
		     struct err *err);
void store_audit_free(struct audit_entry *a, size_t n);

/* Usage: intervals during which a desktop ran, for cost tracking. */
int store_usage_open(struct store *s, const char *desktop_id, const char *workspace_id,
		     const char *tier, int64_t started_at, struct err *err);
/* Closes the desktop's open interval, if any. */
int store_usage_close(struct store *s, const char *desktop_id, int64_t ended_at,
		      struct err *err);
struct usage_row {
	char desktop_id[ID_MAX];
	char desktop_name[64];
	char tier[16];
	int64_t seconds; /* running time inside [from, to) */
};
/* Per desktop and tier, intervals clipped to [from, to); open intervals
 * count up to `now`. */
int store_usage_query(struct store *s, const char *workspace_id, int64_t from, int64_t to,
		      int64_t now, struct usage_row **out, size_t *n, struct err *err);

/* Small key/value settings (the accelerator probe's answer, ...). */
int store_meta_get(struct store *s, const char *key, char *value, size_t n, struct err *err);
int store_meta_set(struct store *s, const char *key, const char *value, struct err *err);

#endif
