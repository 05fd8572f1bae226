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

#include <stdatomic.h>
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
/* Every user, oldest first. */
int store_user_list(struct store *s, struct user **out, size_t *n, struct err *err);

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
/* What a listing of the audit log narrows to. NULL strings and 0 numbers
 * narrow nothing; the strings are the caller's. */
struct audit_filter {
	const char *workspace_id; /* one workspace (nothing unless the viewer is a member) */
	const char *user_id;	  /* entries by this user */
	const char *action;	  /* this action, or a prefix when it ends with '*' */
	const char *desktop_id;	  /* entries whose target or detail (id, desktopId) is it */
	int64_t since;		  /* created_at >= since */
	int64_t until;		  /* created_at < until */
	int64_t before_id;	  /* id < before_id */
	int limit;		  /* at most this many (0: the store's page size) */
};
/* Entries the viewer may see, newest first: those of the viewer's
 * workspaces and the viewer's own that have no workspace, narrowed by f. */
int store_audit_list(struct store *s, const char *viewer_id, const struct audit_filter *f,
		     struct audit_entry **out, size_t *n, struct err *err);
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

/* Persistent services (issue 3): commands the agent starts after every
 * boot of their desktop. */
#define STORE_SERVICES_MAX 32 /* per desktop */
struct service {
	char desktop_id[ID_MAX];
	char name[64];
	char *command; /* JSON array of strings, owned */
	char user[16]; /* "agent" or "root" */
	int64_t created_at;
};
/* 409 when the desktop already has a service of that name. */
int store_service_insert(struct store *s, const struct service *sv, struct err *err);
/* 404 when there is none of that name. */
int store_service_delete(struct store *s, const char *desktop_id, const char *name,
			 struct err *err);
/* The desktop's services by name. */
int store_service_list(struct store *s, const char *desktop_id, struct service **out, size_t *n,
		       struct err *err);
void store_services_free(struct service *sv, size_t n);

/* Alert rules of a workspace, as JSON text the caller frees; 404 when the
 * workspace keeps the defaults. */
int store_alert_rules_get(struct store *s, const char *workspace_id, char **rules,
			  struct err *err);
int store_alert_rules_set(struct store *s, const char *workspace_id, const char *rules,
			  int64_t now, struct err *err);

/* The workspace's webhook; the secret is kept to sign deliveries. */
struct webhook {
	char workspace_id[ID_MAX];
	char url[2048];
	char secret[128];
	int64_t created_at;
};
int store_webhook_get(struct store *s, const char *workspace_id, struct webhook *w,
		      struct err *err);
/* Creates or replaces. */
int store_webhook_set(struct store *s, const struct webhook *w, struct err *err);
int store_webhook_delete(struct store *s, const char *workspace_id, struct err *err);

/* Alerts: one row per episode of a condition. */
struct alert {
	char id[ID_MAX];
	char workspace_id[ID_MAX];
	char desktop_id[ID_MAX]; /* "" for workspace alerts */
	char kind[32];		 /* desktopError agentError cpu memory disk refusedBurst */
	char message[256];
	int has_value;
	double value, threshold;
	int64_t created_at;
	int64_t resolved_at;	 /* 0: the condition still holds */
	int64_t acknowledged_at; /* 0: open */
	char acknowledged_by[ID_MAX];
	char delivery[16]; /* none pending delivered failed */
	int delivery_attempts;
};
enum store_alert_filter { STORE_ALERTS_ALL, STORE_ALERTS_OPEN, STORE_ALERTS_ACKNOWLEDGED };
/* 409 while an unresolved alert of the same workspace, desktop and kind
 * exists (the episode was raised already). */
int store_alert_insert(struct store *s, const struct alert *a, struct err *err);
/* Ends the open episode of (workspace, desktop, kind), if any; *changed
 * tells whether there was one. */
int store_alert_resolve(struct store *s, const char *workspace_id, const char *desktop_id,
			const char *kind, int64_t now, int *changed, struct err *err);
/* 404 unless the user is a member of the alert's workspace. */
int store_alert_get_for_user(struct store *s, const char *user_id, const char *id,
			     struct alert *a, struct err *err);
/* Newest first; workspace_id NULL: all the user's workspaces. */
int store_alert_list(struct store *s, const char *user_id, const char *workspace_id,
		     enum store_alert_filter filter, int limit, struct alert **out, size_t *n,
		     struct err *err);
/* 409 when already acknowledged. resolve: the acknowledgement also ends
 * the episode (alerts of events rather than conditions). */
int store_alert_ack(struct store *s, const char *id, const char *user_id, int64_t now,
		    int resolve, struct err *err);
int store_alert_set_delivery(struct store *s, const char *id, const char *delivery,
			     int attempts, struct err *err);

/* Small key/value settings (the accelerator probe's answer, ...). */
int store_meta_get(struct store *s, const char *key, char *value, size_t n, struct err *err);
int store_meta_set(struct store *s, const char *key, const char *value, struct err *err);

/* Issue 5: how a desktop last booted and what became of its first-boot
 * configuration. Only item names are stored, never a secret. A desktop
 * without a row reads as all "" and setup_state "none". */
struct desktop_extra {
	char boot_path[16];	  /* "", cold, template, snapshot, hibernation */
	char boot_note[256];	  /* why a cold boot when another path was tried */
	char setup_state[16];	  /* none, pending, applied, failed */
	char setup_items[128];	  /* "hostname,password,provider,..." */
	char setup_reason[512];	  /* what failed, for people */
	char source_snapshot[ID_MAX]; /* a fork: the snapshot it came from */
	char source_desktop[ID_MAX];
};
int store_desktop_extra_get(struct store *s, const char *desktop_id, struct desktop_extra *x,
			    struct err *err);
int store_desktop_extra_put(struct store *s, const char *desktop_id,
			    const struct desktop_extra *x, int64_t now, struct err *err);

/* Snapshots a user named. Files live in the desktop's folder. */
struct snapshot {
	char id[ID_MAX];
	char desktop_id[ID_MAX];
	char workspace_id[ID_MAX];
	char name[64];
	char state[16]; /* creating, ready, failed, restoring, deleting */
	char kind[16];	/* memory (memory and disk) or disk */
	int64_t size_bytes;
	char reason[512];
	char tier[16];
	char image[32];
	char image_version[64];
	int vcpus;
	int memory_mb;
	int disk_gb;
	int64_t created_at;
};
/* 409 when the desktop has a snapshot of that name. */
int store_snapshot_insert(struct store *s, const struct snapshot *sn, struct err *err);
/* 404 unless the snapshot exists (desktop_id NULL: any desktop). */
int store_snapshot_get(struct store *s, const char *desktop_id, const char *id,
		       struct snapshot *sn, struct err *err);
int store_snapshot_list(struct store *s, const char *desktop_id, struct snapshot **out,
			size_t *n, struct err *err);
/* kind and reason may be NULL (unchanged / cleared); a size_bytes below 0
 * leaves the size as it is. */
int store_snapshot_set_state(struct store *s, const char *id, const char *state,
			     const char *kind, int64_t size_bytes, const char *reason,
			     struct err *err);
int store_snapshot_delete(struct store *s, const char *id, struct err *err);
/* Snapshots of the desktop and their total size (failed ones excluded). */
int store_snapshot_usage(struct store *s, const char *desktop_id, int64_t *count,
			 int64_t *bytes, struct err *err);

/* The workspace's SSH public keys as a JSON array text ("[]" when none);
 * *json is the caller's to free. */
int store_ssh_keys_get(struct store *s, const char *workspace_id, char **json, struct err *err);
int store_ssh_keys_put(struct store *s, const char *workspace_id, const char *json, int64_t now,
		       struct err *err);

/* Issue 6: the pilot's conversation, token usage, egress log, settings and
 * approvals. */
struct chat_msg {
	int64_t seq; /* increasing per database: the conversation's order */
	char id[ID_MAX];
	char desktop_id[ID_MAX];
	char workspace_id[ID_MAX];
	char role[16];	 /* user assistant tool_call tool_result error */
	char status[16]; /* user messages: queued, delivered; else "" */
	char user_id[ID_MAX];
	char reply_to[ID_MAX];
	char *content; /* owned */
	char *data;    /* JSON text or NULL, owned */
	int64_t created_at;
	int64_t delivered_at; /* 0: not yet */
};
/* Fills m->seq. 409 when the id exists. */
int store_chat_insert(struct store *s, struct chat_msg *m, struct err *err);
/* The page of the desktop's messages before the message `before` (NULL:
 * the newest), oldest first. */
int store_chat_list(struct store *s, const char *desktop_id, const char *before, int limit,
		    struct chat_msg **out, size_t *n, struct err *err);
/* The desktop's user messages still queued, oldest first. */
int store_chat_queued(struct store *s, const char *desktop_id, struct chat_msg **out, size_t *n,
		      struct err *err);
int store_chat_delivered(struct store *s, const char *id, int64_t now, struct err *err);
void store_chat_free(struct chat_msg *m, size_t n);

int store_llm_usage_add(struct store *s, const char *desktop_id, const char *workspace_id,
			const char *provider, const char *model, int64_t input_tokens,
			int64_t output_tokens, int64_t now, struct err *err);
/* Sums over the desktop's calls. */
int store_llm_usage_sum(struct store *s, const char *desktop_id, int64_t *calls,
			int64_t *input_tokens, int64_t *output_tokens, struct err *err);

struct egress_entry {
	int64_t id;
	char desktop_id[ID_MAX];
	char workspace_id[ID_MAX];
	char host[256];
	int port;
	int allowed;
	char reason[128];
	int64_t bytes_up, bytes_down;
	int64_t created_at;
};
/* Fills e->id. */
int store_egress_append(struct store *s, struct egress_entry *e, struct err *err);
/* Newest first, id < before_id (0: no bound). */
int store_egress_list(struct store *s, const char *desktop_id, int64_t before_id, int limit,
		      struct egress_entry **out, size_t *n, struct err *err);

/* JSON settings by name; *value is the caller's to free; 404 when unset. */
int store_workspace_setting_get(struct store *s, const char *workspace_id, const char *name,
				char **value, struct err *err);
int store_workspace_setting_put(struct store *s, const char *workspace_id, const char *name,
				const char *value, int64_t now, struct err *err);
int store_desktop_setting_get(struct store *s, const char *desktop_id, const char *name,
			      char **value, struct err *err);
int store_desktop_setting_put(struct store *s, const char *desktop_id, const char *name,
			      const char *value, int64_t now, struct err *err);
struct desktop_setting {
	char desktop_id[ID_MAX];
	char *value; /* owned */
};
/* Every live desktop's setting of that name. */
int store_desktop_setting_all(struct store *s, const char *name, struct desktop_setting **out,
			      size_t *n, struct err *err);
void store_desktop_settings_free(struct desktop_setting *v, size_t n);

struct approval {
	char id[ID_MAX];
	char desktop_id[ID_MAX];
	char workspace_id[ID_MAX];
	char ref[64];
	char kind[16];
	char *action; /* owned */
	char *input;  /* JSON text, owned */
	char reason[256];
	char status[16]; /* pending approved denied expired */
	char decided_by[ID_MAX];
	char note[512];
	int has_screenshot;
	int64_t created_at, expires_at, decided_at;
};
int store_approval_insert(struct store *s, const struct approval *a, struct err *err);
/* user_id NULL: any approval (internal use); else 404 unless the user is a
 * member of its workspace. */
int store_approval_get(struct store *s, const char *user_id, const char *id, struct approval *a,
		       struct err *err);
/* Newest first; status NULL: any; user_id NULL: every workspace. */
int store_approval_list(struct store *s, const char *user_id, const char *status, int limit,
			struct approval **out, size_t *n, struct err *err);
/* pending → status; 409 when already decided. */
int store_approval_decide(struct store *s, const char *id, const char *status,
			  const char *decided_by, const char *note, int64_t now, struct err *err);
int store_approval_screenshot_put(struct store *s, const char *id, const void *png, size_t len,
				  struct err *err);
/* *png is the caller's to free; 404 when there is none. */
int store_approval_screenshot_get(struct store *s, const char *id, void **png, size_t *len,
				  struct err *err);
void store_approvals_free(struct approval *a, size_t n);
void store_approval_release(struct approval *a);

/* Retention: the logs that grow with every request, event and guest
 * connection. Chat history, usage, alerts and approvals are user data and
 * never pruned. */
struct store_pruned {
	int64_t audit, events, egress; /* log rows removed */
	int64_t sessions;	       /* expired sessions removed */
};
#define STORE_PRUNE_BATCH 5000 /* rows per write transaction */
/* Deletes audit, events and egress_log rows created before `before` (<= 0:
 * keeps them all) and the sessions expired at `now`, table by table, at
 * most `batch` rows per short write transaction, so that writers never wait
 * long for the lock. Event ids are never reused: an event appended later
 * gets a larger id than any before. Adds what it removed to *out, also on
 * failure. When stop is not NULL it is read after each batch and a non-zero
 * value ends the prune early (returning 0). */
int store_prune(struct store *s, int64_t before, int64_t now, int batch, const atomic_int *stop,
		struct store_pruned *out, struct err *err);

#endif
