/* The SQLite store: a pool of connections to one database in WAL mode, each
 * with its own cache of prepared statements. Every value reaches SQL as a
 * bound parameter; the SQL text is constant and lives in one table. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "store/migrations.h"

#define STORE_BUSY_TIMEOUT_MS 5000 /* how long a writer waits for the lock */
#define STORE_LIST_MAX 1000	   /* rows per page of events or audit */

/* Columns read by the row readers below, in their order. */
#define USER_COLS "u.id, u.email, u.password_hash, u.is_admin, u.created_at"
#define KEY_COLS "k.id, k.user_id, k.name, k.prefix, k.created_at, k.last_used_at, k.revoked_at"
#define KEY_NCOLS 7
#define DESKTOP_COLS                                                                               \
	"d.id, d.workspace_id, d.name, d.tier, d.image, d.image_version, d.state, "                \
	"d.desired_state, d.reason, d.vcpus, d.memory_mb, d.disk_gb, d.created_at, "               \
	"d.updated_at, d.state_changed_at, d.ready_ms"
#define ALERT_COLS                                                                                 \
	"a.id, a.workspace_id, a.desktop_id, a.kind, a.message, a.value, a.threshold, "            \
	"a.created_at, a.resolved_at, a.acknowledged_at, a.acknowledged_by, a.delivery, "          \
	"a.delivery_attempts"
#define EXTRA_COLS                                                                                 \
	"boot_path, boot_note, setup_state, setup_items, setup_reason, source_snapshot, "          \
	"source_desktop"
#define SNAPSHOT_COLS                                                                              \
	"id, desktop_id, workspace_id, name, state, kind, size_bytes, reason, tier, image, "       \
	"image_version, vcpus, memory_mb, disk_gb, created_at"
#define CHAT_COLS                                                                                  \
	"seq, id, desktop_id, workspace_id, role, status, user_id, reply_to, content, data, "       \
	"created_at, delivered_at"
#define APPROVAL_COLS                                                                              \
	"a.id, a.desktop_id, a.workspace_id, a.ref, a.kind, a.action, a.input, a.reason, "          \
	"a.status, a.decided_by, a.note, a.screenshot IS NOT NULL, a.created_at, a.expires_at, "   \
	"a.decided_at"
#define EVENT_COLS "e.id, e.workspace_id, e.desktop_id, e.type, e.data, e.created_at"
#define AUDIT_COLS                                                                                 \
	"a.id, a.workspace_id, a.user_id, a.key_id, a.action, a.target, a.status, a.remote, "      \
	"a.detail, a.created_at"

/* The audit entries a viewer (?1) may see, narrowed by the filter's
 * parameters: ?3 before id, ?4 limit, ?5 user, ?6 exact action, ?7 action
 * prefix, ?8 since, ?9 until, ?10 desktop. `scope` picks the workspaces (?2
 * is the one asked for). A desktop is named by the target of rows bureaud
 * writes for it (chat, consoles) or by the detail: a request's path {id},
 * or the desktopId of a create, a console or an approval. */
#define AUDIT_SELECT(scope)                                                                        \
	"SELECT " AUDIT_COLS " FROM audit a WHERE " scope " AND a.id < ?3 "                        \
	"AND (?5 IS NULL OR a.user_id = ?5) AND (?6 IS NULL OR a.action = ?6) "                    \
	"AND (?7 IS NULL OR substr(a.action, 1, length(?7)) = ?7) "                                \
	"AND a.created_at >= ?8 AND a.created_at < ?9 "                                            \
	"AND (?10 IS NULL OR a.target = ?10 OR (json_valid(a.detail) AND "                         \
	"(json_extract(a.detail, '$.id') = ?10 OR json_extract(a.detail, '$.desktopId') = ?10))) " \
	"ORDER BY a.id DESC LIMIT ?4"

/* Retention, one batch of a log table: how many rows older than ?2 follow
 * id ?1 (at most ?3), and the id of the last of them; then the deletion of
 * the old rows in (?1, ?2], created before ?3. */
#define PRUNE_FIND(table)                                                                          \
	"SELECT COUNT(*), MAX(id) FROM (SELECT id FROM " table " WHERE id > ?1 "                   \
	"AND created_at < ?2 ORDER BY id LIMIT ?3) AS batch"
#define PRUNE_DELETE(table) "DELETE FROM " table " WHERE id > ?1 AND id <= ?2 AND created_at < ?3"

/* The end of a usage interval inside the query window: open intervals run
 * until ?4 (now), and nothing counts past ?3 (to) or before ?2 (from). CASE
 * rather than MIN/MAX so that PostgreSQL reads it too. */
#define USAGE_END "COALESCE(u.ended_at, ?4)"
#define USAGE_CLIPPED_MS                                                                           \
	"(CASE WHEN " USAGE_END " < ?3 THEN " USAGE_END " ELSE ?3 END) - "                         \
	"(CASE WHEN u.started_at > ?2 THEN u.started_at ELSE ?2 END)"

/* Running time per desktop and tier inside [?2, ?3), with `where` narrowing
 * the intervals (it ends with AND, or is empty). */
#define USAGE_SELECT(where)                                                                        \
	"SELECT u.desktop_id, COALESCE(d.name, ''), u.tier, SUM(" USAGE_CLIPPED_MS ") "            \
	"FROM usage u LEFT JOIN desktops d ON d.id = u.desktop_id "                                \
	"WHERE " where " u.started_at < ?3 AND " USAGE_END " > ?2 "                                \
	"AND " USAGE_END " > u.started_at "                                                        \
	"GROUP BY u.desktop_id, d.name, u.tier ORDER BY d.name, u.desktop_id, u.tier"

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_USER_COUNT,
	ST_USER_INSERT,
	ST_USER_GET,
	ST_USER_GET_BY_EMAIL,
	ST_USER_LIST,
	ST_SESSION_PURGE,
	ST_SESSION_INSERT,
	ST_SESSION_USER,
	ST_SESSION_DELETE,
	ST_KEY_INSERT,
	ST_KEY_USER,
	ST_KEY_LIST,
	ST_KEY_REVOKE,
	ST_KEY_TOUCH,
	ST_WORKSPACE_INSERT,
	ST_WORKSPACE_INSERT_DEFAULT,
	ST_WORKSPACE_LIST,
	ST_WORKSPACE_GET,
	ST_MEMBER_INSERT,
	ST_MEMBER_LIST,
	ST_DESKTOP_INSERT,
	ST_DESKTOP_GET,
	ST_DESKTOP_GET_FOR_USER,
	ST_DESKTOP_LIST_FOR_USER,
	ST_DESKTOP_LIST_LIVE,
	ST_DESKTOP_COUNT,
	ST_DESKTOP_SET_DESIRED,
	ST_DESKTOP_SET_STATE,
	ST_EVENT_APPEND,
	ST_EVENT_LIST,
	ST_AUDIT_APPEND,
	ST_AUDIT_LIST,
	ST_AUDIT_LIST_WORKSPACE,
	ST_USAGE_OPEN,
	ST_USAGE_CLOSE,
	ST_USAGE_QUERY,
	ST_USAGE_QUERY_ALL,
	ST_META_GET,
	ST_META_SET,
	ST_SERVICE_INSERT,
	ST_SERVICE_DELETE,
	ST_SERVICE_LIST,
	ST_ALERT_RULES_GET,
	ST_ALERT_RULES_SET,
	ST_WEBHOOK_GET,
	ST_WEBHOOK_SET,
	ST_WEBHOOK_DELETE,
	ST_ALERT_INSERT,
	ST_ALERT_RESOLVE,
	ST_ALERT_GET_FOR_USER,
	ST_ALERT_LIST,
	ST_ALERT_ACK,
	ST_ALERT_SET_DELIVERY,
	ST_EXTRA_GET,
	ST_EXTRA_PUT,
	ST_SNAPSHOT_INSERT,
	ST_SNAPSHOT_GET,
	ST_SNAPSHOT_LIST,
	ST_SNAPSHOT_SET_STATE,
	ST_SNAPSHOT_DELETE,
	ST_SNAPSHOT_USAGE,
	ST_SSH_KEYS_GET,
	ST_SSH_KEYS_PUT,
	ST_CHAT_INSERT,
	ST_CHAT_LIST,
	ST_CHAT_QUEUED,
	ST_CHAT_DELIVERED,
	ST_LLM_USAGE_ADD,
	ST_LLM_USAGE_SUM,
	ST_EGRESS_APPEND,
	ST_EGRESS_LIST,
	ST_WS_SETTING_GET,
	ST_WS_SETTING_PUT,
	ST_DSK_SETTING_GET,
	ST_DSK_SETTING_PUT,
	ST_DSK_SETTING_ALL,
	ST_APPROVAL_INSERT,
	ST_APPROVAL_GET,
	ST_APPROVAL_LIST,
	ST_APPROVAL_DECIDE,
	ST_APPROVAL_SHOT_PUT,
	ST_APPROVAL_SHOT_GET,
	ST_PRUNE_AUDIT_FIND,
	ST_PRUNE_AUDIT_DELETE,
	ST_PRUNE_EVENTS_FIND,
	ST_PRUNE_EVENTS_DELETE,
	ST_PRUNE_EGRESS_FIND,
	ST_PRUNE_EGRESS_DELETE,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",

    [ST_USER_COUNT] = "SELECT COUNT(*) FROM users",
    [ST_USER_INSERT] = "INSERT INTO users (id, email, password_hash, is_admin, created_at) "
		       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_USER_GET] = "SELECT " USER_COLS " FROM users u WHERE u.id = ?1",
    [ST_USER_GET_BY_EMAIL] = "SELECT " USER_COLS " FROM users u WHERE lower(u.email) = lower(?1)",
    [ST_USER_LIST] = "SELECT " USER_COLS " FROM users u ORDER BY u.created_at, u.id",

    [ST_SESSION_PURGE] = "DELETE FROM sessions WHERE expires_at <= ?1",
    [ST_SESSION_INSERT] = "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
			  "VALUES (?1, ?2, ?3, ?4)",
    [ST_SESSION_USER] = "SELECT " USER_COLS " FROM sessions s JOIN users u ON u.id = s.user_id "
			"WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE token_hash = ?1",

    [ST_KEY_INSERT] = "INSERT INTO api_keys (id, user_id, name, prefix, token_hash, created_at, "
		      "last_used_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_KEY_USER] = "SELECT " KEY_COLS ", " USER_COLS " FROM api_keys k "
		    "JOIN users u ON u.id = k.user_id "
		    "WHERE k.token_hash = ?1 AND k.revoked_at IS NULL",
    [ST_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys k "
		    "WHERE k.user_id = ?1 AND k.revoked_at IS NULL ORDER BY k.created_at, k.id",
    [ST_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?3 "
		      "WHERE id = ?2 AND user_id = ?1 AND revoked_at IS NULL",
    [ST_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",

    [ST_WORKSPACE_INSERT] = "INSERT INTO workspaces (id, name, plan_limit, created_at) "
			    "VALUES (?1, ?2, ?3, ?4)",
    [ST_WORKSPACE_INSERT_DEFAULT] = "INSERT INTO workspaces (id, name, created_at) "
				    "VALUES (?1, ?2, ?4)",
    [ST_WORKSPACE_LIST] = "SELECT w.id, w.name, w.plan_limit, m.role, w.created_at "
			  "FROM members m JOIN workspaces w ON w.id = m.workspace_id "
			  "WHERE m.user_id = ?1 ORDER BY w.created_at, w.id",
    [ST_WORKSPACE_GET] = "SELECT w.id, w.name, w.plan_limit, m.role, w.created_at "
			 "FROM members m JOIN workspaces w ON w.id = m.workspace_id "
			 "WHERE m.user_id = ?1 AND m.workspace_id = ?2",
    [ST_MEMBER_INSERT] = "INSERT INTO members (workspace_id, user_id, role, created_at) "
			 "VALUES (?1, ?2, ?3, ?4)",
    [ST_MEMBER_LIST] = "SELECT m.user_id, u.email, m.role, m.created_at "
		       "FROM members m JOIN users u ON u.id = m.user_id "
		       "WHERE m.workspace_id = ?1 ORDER BY m.created_at, u.email",

    [ST_DESKTOP_INSERT] =
	"INSERT INTO desktops (id, workspace_id, name, tier, image, image_version, state, "
	"desired_state, reason, vcpus, memory_mb, disk_gb, created_at, updated_at, "
	"state_changed_at, ready_ms) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [ST_DESKTOP_GET] = "SELECT " DESKTOP_COLS " FROM desktops d WHERE d.id = ?1",
    [ST_DESKTOP_GET_FOR_USER] =
	"SELECT " DESKTOP_COLS " FROM desktops d "
	"JOIN members m ON m.workspace_id = d.workspace_id AND m.user_id = ?1 "
	"WHERE d.id = ?2 AND d.state <> 'destroyed'",
    [ST_DESKTOP_LIST_FOR_USER] = "SELECT " DESKTOP_COLS " FROM members m "
				 "JOIN desktops d ON d.workspace_id = m.workspace_id "
				 "WHERE m.user_id = ?1 AND (?2 IS NULL OR m.workspace_id = ?2) "
				 "AND d.state <> 'destroyed' ORDER BY d.created_at, d.id",
    [ST_DESKTOP_LIST_LIVE] = "SELECT " DESKTOP_COLS " FROM desktops d "
			     "WHERE d.state <> 'destroyed' ORDER BY d.created_at, d.id",
    [ST_DESKTOP_COUNT] = "SELECT COUNT(*) FROM desktops "
			 "WHERE workspace_id = ?1 AND state <> 'destroyed'",
    [ST_DESKTOP_SET_DESIRED] =
	"UPDATE desktops SET desired_state = ?2, updated_at = ?3 WHERE id = ?1",
    /* Right-hand sides see the row as it was, so state_changed_at moves
     * only when the state really changes. */
    [ST_DESKTOP_SET_STATE] =
	"UPDATE desktops SET state = ?2, reason = ?3, "
	"ready_ms = CASE WHEN ?4 >= 0 THEN ?4 ELSE ready_ms END, "
	"state_changed_at = CASE WHEN state <> ?2 THEN ?5 ELSE state_changed_at END, "
	"updated_at = ?5, "
	"destroyed_at = CASE WHEN ?2 = 'destroyed' THEN COALESCE(destroyed_at, ?5) END "
	"WHERE id = ?1",

    [ST_EVENT_APPEND] = "INSERT INTO events (workspace_id, desktop_id, type, data, created_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_LIST] = "SELECT " EVENT_COLS " FROM events e "
		      "JOIN members m ON m.workspace_id = e.workspace_id AND m.user_id = ?1 "
		      "WHERE e.id > ?2 ORDER BY e.id LIMIT ?3",

    [ST_AUDIT_APPEND] = "INSERT INTO audit (workspace_id, user_id, key_id, action, target, "
			"status, remote, detail, created_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_AUDIT_LIST] = AUDIT_SELECT(
	"(a.workspace_id IN (SELECT workspace_id FROM members WHERE user_id = ?1) "
	"OR (a.workspace_id IS NULL AND a.user_id = ?1)) AND ?2 IS NULL"),
    [ST_AUDIT_LIST_WORKSPACE] = AUDIT_SELECT(
	"a.workspace_id = ?2 "
	"AND EXISTS (SELECT 1 FROM members WHERE workspace_id = ?2 AND user_id = ?1)"),

    /* Opening an interval that is already open keeps the first one. */
    [ST_USAGE_OPEN] = "INSERT INTO usage (desktop_id, workspace_id, tier, started_at) "
		      "VALUES (?1, ?2, ?3, ?4) "
		      "ON CONFLICT (desktop_id) WHERE ended_at IS NULL DO NOTHING",
    [ST_USAGE_CLOSE] = "UPDATE usage SET "
		       "ended_at = CASE WHEN ?2 < started_at THEN started_at ELSE ?2 END "
		       "WHERE desktop_id = ?1 AND ended_at IS NULL",
    [ST_USAGE_QUERY] = USAGE_SELECT("u.workspace_id = ?1 AND"),
    [ST_USAGE_QUERY_ALL] = USAGE_SELECT(""),

    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
		    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",

    [ST_SERVICE_INSERT] = "INSERT INTO services (desktop_id, name, command, run_as, created_at) "
			  "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_SERVICE_DELETE] = "DELETE FROM services WHERE desktop_id = ?1 AND name = ?2",
    [ST_SERVICE_LIST] = "SELECT desktop_id, name, command, run_as, created_at FROM services "
			"WHERE desktop_id = ?1 ORDER BY name",
    [ST_ALERT_RULES_GET] = "SELECT rules FROM alert_rules WHERE workspace_id = ?1",
    [ST_ALERT_RULES_SET] = "INSERT INTO alert_rules (workspace_id, rules, updated_at) "
			   "VALUES (?1, ?2, ?3) ON CONFLICT (workspace_id) DO UPDATE SET "
			   "rules = excluded.rules, updated_at = excluded.updated_at",
    [ST_WEBHOOK_GET] = "SELECT workspace_id, url, secret, created_at FROM webhooks "
		       "WHERE workspace_id = ?1",
    [ST_WEBHOOK_SET] = "INSERT INTO webhooks (workspace_id, url, secret, created_at) "
		       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (workspace_id) DO UPDATE SET "
		       "url = excluded.url, secret = excluded.secret, "
		       "created_at = excluded.created_at",
    [ST_WEBHOOK_DELETE] = "DELETE FROM webhooks WHERE workspace_id = ?1",
    [ST_ALERT_INSERT] = "INSERT INTO alerts (id, workspace_id, desktop_id, kind, message, value, "
			"threshold, created_at, delivery) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_ALERT_RESOLVE] = "UPDATE alerts SET resolved_at = ?4 WHERE workspace_id = ?1 "
			 "AND COALESCE(desktop_id, '') = ?2 AND kind = ?3 AND resolved_at IS NULL",
    [ST_ALERT_GET_FOR_USER] =
	"SELECT " ALERT_COLS " FROM alerts a "
	"JOIN members m ON m.workspace_id = a.workspace_id AND m.user_id = ?1 WHERE a.id = ?2",
    [ST_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts a "
		      "JOIN members m ON m.workspace_id = a.workspace_id AND m.user_id = ?1 "
		      "WHERE (?2 IS NULL OR a.workspace_id = ?2) AND (?3 = 0 "
		      "OR (?3 = 1 AND a.acknowledged_at IS NULL) "
		      "OR (?3 = 2 AND a.acknowledged_at IS NOT NULL)) "
		      "ORDER BY a.created_at DESC, a.id DESC LIMIT ?4",
    [ST_ALERT_ACK] = "UPDATE alerts SET acknowledged_at = ?3, acknowledged_by = ?2, "
		     "resolved_at = CASE WHEN ?4 <> 0 THEN COALESCE(resolved_at, ?3) "
		     "ELSE resolved_at END WHERE id = ?1 AND acknowledged_at IS NULL",
    [ST_ALERT_SET_DELIVERY] =
	"UPDATE alerts SET delivery = ?2, delivery_attempts = ?3 WHERE id = ?1",
    [ST_EXTRA_GET] = "SELECT " EXTRA_COLS " FROM desktop_extras WHERE desktop_id = ?1",
    [ST_EXTRA_PUT] = "INSERT INTO desktop_extras (desktop_id, boot_path, boot_note, "
		     "setup_state, setup_items, setup_reason, source_snapshot, source_desktop, "
		     "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
		     "ON CONFLICT (desktop_id) DO UPDATE SET boot_path = excluded.boot_path, "
		     "boot_note = excluded.boot_note, setup_state = excluded.setup_state, "
		     "setup_items = excluded.setup_items, setup_reason = excluded.setup_reason, "
		     "source_snapshot = excluded.source_snapshot, "
		     "source_desktop = excluded.source_desktop, updated_at = excluded.updated_at",
    [ST_SNAPSHOT_INSERT] = "INSERT INTO snapshots (" SNAPSHOT_COLS ") VALUES (?1, ?2, ?3, ?4, "
			   "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [ST_SNAPSHOT_GET] = "SELECT " SNAPSHOT_COLS " FROM snapshots "
			"WHERE id = ?2 AND (?1 IS NULL OR desktop_id = ?1)",
    [ST_SNAPSHOT_LIST] = "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE desktop_id = ?1 "
			 "ORDER BY created_at, id",
    [ST_SNAPSHOT_SET_STATE] = "UPDATE snapshots SET state = ?2, kind = COALESCE(?3, kind), "
			      "size_bytes = CASE WHEN ?4 < 0 THEN size_bytes ELSE ?4 END, "
			      "reason = COALESCE(?5, '') WHERE id = ?1",
    [ST_SNAPSHOT_DELETE] = "DELETE FROM snapshots WHERE id = ?1",
    [ST_SNAPSHOT_USAGE] = "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM snapshots "
			  "WHERE desktop_id = ?1 AND state <> 'failed'",
    [ST_SSH_KEYS_GET] = "SELECT keys FROM workspace_ssh_keys WHERE workspace_id = ?1",
    [ST_SSH_KEYS_PUT] = "INSERT INTO workspace_ssh_keys (workspace_id, keys, updated_at) "
			"VALUES (?1, ?2, ?3) ON CONFLICT (workspace_id) DO UPDATE SET "
			"keys = excluded.keys, updated_at = excluded.updated_at",
    [ST_CHAT_INSERT] = "INSERT INTO chat_messages (id, desktop_id, workspace_id, role, status, "
		       "user_id, reply_to, content, data, created_at) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_CHAT_LIST] = "SELECT " CHAT_COLS " FROM chat_messages WHERE desktop_id = ?1 AND "
		     "(?2 IS NULL OR seq < (SELECT seq FROM chat_messages WHERE id = ?2)) "
		     "ORDER BY seq DESC LIMIT ?3",
    [ST_CHAT_QUEUED] = "SELECT " CHAT_COLS " FROM chat_messages WHERE desktop_id = ?1 AND "
		       "role = 'user' AND status = 'queued' ORDER BY seq",
    [ST_CHAT_DELIVERED] = "UPDATE chat_messages SET status = 'delivered', delivered_at = ?2 "
			  "WHERE id = ?1 AND status = 'queued'",
    [ST_LLM_USAGE_ADD] = "INSERT INTO llm_usage (desktop_id, workspace_id, provider, model, "
			 "input_tokens, output_tokens, created_at) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_LLM_USAGE_SUM] = "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), "
			 "COALESCE(SUM(output_tokens), 0) FROM llm_usage WHERE desktop_id = ?1",
    [ST_EGRESS_APPEND] = "INSERT INTO egress_log (desktop_id, workspace_id, host, port, allowed, "
			 "reason, bytes_up, bytes_down, created_at) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_EGRESS_LIST] = "SELECT id, desktop_id, workspace_id, host, port, allowed, reason, "
		       "bytes_up, bytes_down, created_at FROM egress_log WHERE desktop_id = ?1 "
		       "AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
    [ST_WS_SETTING_GET] = "SELECT value FROM workspace_settings WHERE workspace_id = ?1 AND "
			  "name = ?2",
    [ST_WS_SETTING_PUT] = "INSERT INTO workspace_settings (workspace_id, name, value, updated_at) "
			  "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (workspace_id, name) DO UPDATE "
			  "SET value = excluded.value, updated_at = excluded.updated_at",
    [ST_DSK_SETTING_GET] = "SELECT value FROM desktop_settings WHERE desktop_id = ?1 AND "
			   "name = ?2",
    [ST_DSK_SETTING_PUT] = "INSERT INTO desktop_settings (desktop_id, name, value, updated_at) "
			   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (desktop_id, name) DO UPDATE "
			   "SET value = excluded.value, updated_at = excluded.updated_at",
    [ST_DSK_SETTING_ALL] = "SELECT s.desktop_id, s.value FROM desktop_settings s "
			   "JOIN desktops d ON d.id = s.desktop_id "
			   "WHERE s.name = ?1 AND d.state <> 'destroyed'",
    [ST_APPROVAL_INSERT] = "INSERT INTO approvals (id, desktop_id, workspace_id, ref, kind, "
			   "action, input, reason, status, created_at, expires_at) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10)",
    [ST_APPROVAL_GET] = "SELECT " APPROVAL_COLS " FROM approvals a WHERE a.id = ?2 AND "
			"(?1 IS NULL OR a.workspace_id IN "
			"(SELECT workspace_id FROM members WHERE user_id = ?1))",
    [ST_APPROVAL_LIST] = "SELECT " APPROVAL_COLS " FROM approvals a WHERE "
			 "(?1 IS NULL OR a.workspace_id IN "
			 "(SELECT workspace_id FROM members WHERE user_id = ?1)) AND "
			 "(?2 IS NULL OR a.status = ?2) ORDER BY a.created_at DESC, a.id DESC "
			 "LIMIT ?3",
    [ST_APPROVAL_DECIDE] = "UPDATE approvals SET status = ?2, decided_by = ?3, note = ?4, "
			   "decided_at = ?5 WHERE id = ?1 AND status = 'pending'",
    [ST_APPROVAL_SHOT_PUT] = "UPDATE approvals SET screenshot = ?2 WHERE id = ?1",
    [ST_APPROVAL_SHOT_GET] = "SELECT screenshot FROM approvals WHERE id = ?1 AND "
			     "screenshot IS NOT NULL",
    [ST_PRUNE_AUDIT_FIND] = PRUNE_FIND("audit"),
    [ST_PRUNE_AUDIT_DELETE] = PRUNE_DELETE("audit"),
    [ST_PRUNE_EVENTS_FIND] = PRUNE_FIND("events"),
    [ST_PRUNE_EVENTS_DELETE] = PRUNE_DELETE("events"),
    [ST_PRUNE_EGRESS_FIND] = PRUNE_FIND("egress_log"),
    [ST_PRUNE_EGRESS_DELETE] = PRUNE_DELETE("egress_log"),
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmts[ST__COUNT]; /* prepared on first use */
	int version;
};

struct store_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when a connection comes back */
	struct store *conns; /* `size` open connections */
	struct store **idle; /* a stack of the free ones */
	int size, nidle;
};

/* Statements */

/* The connection's cached statement, prepared on first use. */
static sqlite3_stmt *stmt_get(struct store *s, enum stmt id, struct err *err)
{
	int rc;

	if (s->stmts[id])
		return s->stmts[id];
	rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id],
				NULL);
	if (rc != SQLITE_OK) {
		err_set(err, 500, "internal", "prepare statement %d: %s", (int)id,
			sqlite3_errmsg(s->db));
		s->stmts[id] = NULL;
	}
	return s->stmts[id];
}

/* Ends a statement's run: no read transaction left open, and no binding
 * left pointing at the caller's memory. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Binds text; NULL binds SQL NULL. The text must outlive the step. */
static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Optional references and reasons: "" is stored as NULL. */
static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
	bind_text(st, i, v && *v ? v : NULL);
}

static void bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	sqlite3_bind_int64(st, i, v);
}

/* Optional times: 0 is stored as NULL. */
static void bind_time_opt(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Turns a failed step into err: 409 for a unique key, 404 when a row the
 * new one refers to does not exist, 500 for everything else. */
static int step_fail(struct store *s, int rc, struct err *err, const char *what,
		     const char *conflict, const char *missing)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		if (conflict)
			return err_set(err, 409, "conflict", "%s", conflict);
		return err_set(err, 409, "conflict", "%s: already exists", what);
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		if (missing)
			return err_set(err, 404, "not_found", "%s", missing);
		return err_set(err, 404, "not_found", "%s: a referenced row does not exist", what);
	default:
		return err_set(err, 500, "internal", "%s: %s", what, sqlite3_errmsg(s->db));
	}
}

/* Runs a statement that returns no rows, and resets it. */
static int stmt_exec(struct store *s, sqlite3_stmt *st, struct err *err, const char *what,
		     const char *conflict, const char *missing)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		step_fail(s, rc, err, what, conflict, missing);
		stmt_done(st);
		return -1;
	}
	stmt_done(st);
	return 0;
}

/* Runs an UPDATE or DELETE that must touch a row: 404 `notfound` if none. */
static int stmt_change(struct store *s, sqlite3_stmt *st, struct err *err, const char *what,
		       const char *notfound)
{
	if (stmt_exec(s, st, err, what, NULL, NULL))
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return err_set(err, 404, "not_found", "%s", notfound);
	return 0;
}

/* Steps to the first row. Returns 0 with the row ready to read (the caller
 * then calls stmt_done), or -1 with err filled (404 `notfound` when there
 * is no row) and the statement reset. */
static int stmt_row(struct store *s, sqlite3_stmt *st, struct err *err, const char *what,
		    const char *notfound)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		err_set(err, 404, "not_found", "%s", notfound);
	else
		step_fail(s, rc, err, what, NULL, NULL);
	stmt_done(st);
	return -1;
}

/* Runs a query whose single row is one integer. */
static int stmt_count(struct store *s, sqlite3_stmt *st, int64_t *n, struct err *err,
		      const char *what)
{
	if (stmt_row(s, st, err, what, "no result"))
		return -1;
	*n = sqlite3_column_int64(st, 0);
	stmt_done(st);
	return 0;
}

/* Columns */

/* Copies a text column into a fixed-size field. What does not fit is cut
 * at a UTF-8 character boundary; NULL reads as "". */
static void col_text(sqlite3_stmt *st, int col, char *dst, size_t n)
{
	const char *v = (const char *)sqlite3_column_text(st, col);
	size_t len = v ? (size_t)sqlite3_column_bytes(st, col) : 0;

	if (n == 0)
		return;
	if (len >= n) {
		len = n - 1;
		while (len > 0 && ((unsigned char)v[len] & 0xc0) == 0x80)
			len--;
	}
	if (len)
		memcpy(dst, v, len);
	dst[len] = '\0';
}

/* A text column as a fresh string the caller owns; NULL stays NULL. */
static char *col_dup(sqlite3_stmt *st, int col)
{
	const char *v = (const char *)sqlite3_column_text(st, col);

	return v ? xstrndup(v, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

static int64_t col_i64(sqlite3_stmt *st, int col)
{
	return sqlite3_column_int64(st, col);
}

static void user_read(sqlite3_stmt *st, int c, struct user *u)
{
	memset(u, 0, sizeof(*u));
	col_text(st, c, u->id, sizeof(u->id));
	col_text(st, c + 1, u->email, sizeof(u->email));
	col_text(st, c + 2, u->password_hash, sizeof(u->password_hash));
	u->is_admin = sqlite3_column_int(st, c + 3) != 0;
	u->created_at = col_i64(st, c + 4);
}

static void key_read(sqlite3_stmt *st, int c, struct api_key *k)
{
	memset(k, 0, sizeof(*k));
	col_text(st, c, k->id, sizeof(k->id));
	col_text(st, c + 1, k->user_id, sizeof(k->user_id));
	col_text(st, c + 2, k->name, sizeof(k->name));
	col_text(st, c + 3, k->prefix, sizeof(k->prefix));
	k->created_at = col_i64(st, c + 4);
	k->last_used_at = col_i64(st, c + 5);
	k->revoked_at = col_i64(st, c + 6);
}

static void workspace_read(sqlite3_stmt *st, struct workspace *w)
{
	col_text(st, 0, w->id, sizeof(w->id));
	col_text(st, 1, w->name, sizeof(w->name));
	w->plan_limit = sqlite3_column_int(st, 2);
	col_text(st, 3, w->role, sizeof(w->role));
	w->created_at = col_i64(st, 4);
}

static void member_read(sqlite3_stmt *st, struct member *m)
{
	col_text(st, 0, m->user_id, sizeof(m->user_id));
	col_text(st, 1, m->email, sizeof(m->email));
	col_text(st, 2, m->role, sizeof(m->role));
	m->created_at = col_i64(st, 3);
}

static void desktop_read(sqlite3_stmt *st, struct desktop *d)
{
	col_text(st, 0, d->id, sizeof(d->id));
	col_text(st, 1, d->workspace_id, sizeof(d->workspace_id));
	col_text(st, 2, d->name, sizeof(d->name));
	col_text(st, 3, d->tier, sizeof(d->tier));
	col_text(st, 4, d->image, sizeof(d->image));
	col_text(st, 5, d->image_version, sizeof(d->image_version));
	col_text(st, 6, d->state, sizeof(d->state));
	col_text(st, 7, d->desired_state, sizeof(d->desired_state));
	col_text(st, 8, d->reason, sizeof(d->reason));
	d->vcpus = sqlite3_column_int(st, 9);
	d->memory_mb = sqlite3_column_int(st, 10);
	d->disk_gb = sqlite3_column_int(st, 11);
	d->created_at = col_i64(st, 12);
	d->updated_at = col_i64(st, 13);
	d->state_changed_at = col_i64(st, 14);
	d->ready_ms = col_i64(st, 15);
}

static void event_read(sqlite3_stmt *st, struct event *ev)
{
	ev->id = col_i64(st, 0);
	col_text(st, 1, ev->workspace_id, sizeof(ev->workspace_id));
	col_text(st, 2, ev->desktop_id, sizeof(ev->desktop_id));
	col_text(st, 3, ev->type, sizeof(ev->type));
	ev->data = col_dup(st, 4);
	ev->created_at = col_i64(st, 5);
}

static void audit_read(sqlite3_stmt *st, struct audit_entry *a)
{
	a->id = col_i64(st, 0);
	col_text(st, 1, a->workspace_id, sizeof(a->workspace_id));
	col_text(st, 2, a->user_id, sizeof(a->user_id));
	col_text(st, 3, a->key_id, sizeof(a->key_id));
	col_text(st, 4, a->action, sizeof(a->action));
	col_text(st, 5, a->target, sizeof(a->target));
	a->status = sqlite3_column_int(st, 6);
	col_text(st, 7, a->remote, sizeof(a->remote));
	a->detail = col_dup(st, 8);
	a->created_at = col_i64(st, 9);
}

static void usage_read(sqlite3_stmt *st, struct usage_row *r)
{
	col_text(st, 0, r->desktop_id, sizeof(r->desktop_id));
	col_text(st, 1, r->desktop_name, sizeof(r->desktop_name));
	col_text(st, 2, r->tier, sizeof(r->tier));
	r->seconds = col_i64(st, 3) / 1000;
}

/* Lists */

/* How to read one kind of list row; `release` frees rows that own memory. */
struct rowtype {
	size_t size;
	void (*read)(sqlite3_stmt *st, void *row);
	void (*release)(void *rows, size_t n);
};

static void user_row(sqlite3_stmt *st, void *row)
{
	user_read(st, 0, row);
}
static void key_row(sqlite3_stmt *st, void *row)
{
	key_read(st, 0, row);
}
static void workspace_row(sqlite3_stmt *st, void *row)
{
	workspace_read(st, row);
}
static void member_row(sqlite3_stmt *st, void *row)
{
	member_read(st, row);
}
static void desktop_row(sqlite3_stmt *st, void *row)
{
	desktop_read(st, row);
}
static void event_row(sqlite3_stmt *st, void *row)
{
	event_read(st, row);
}
static void audit_row(sqlite3_stmt *st, void *row)
{
	audit_read(st, row);
}
static void usage_row(sqlite3_stmt *st, void *row)
{
	usage_read(st, row);
}
static void events_release(void *rows, size_t n)
{
	store_events_free(rows, n);
}
static void audit_release(void *rows, size_t n)
{
	store_audit_free(rows, n);
}

static const struct rowtype user_rows = {sizeof(struct user), user_row, NULL};
static const struct rowtype key_rows = {sizeof(struct api_key), key_row, NULL};
static const struct rowtype workspace_rows = {sizeof(struct workspace), workspace_row, NULL};
static const struct rowtype member_rows = {sizeof(struct member), member_row, NULL};
static const struct rowtype desktop_rows = {sizeof(struct desktop), desktop_row, NULL};
static const struct rowtype event_rows = {sizeof(struct event), event_row, events_release};
static const struct rowtype audit_rows = {sizeof(struct audit_entry), audit_row, audit_release};
static const struct rowtype usage_rows = {sizeof(struct usage_row), usage_row, NULL};

/* Reads every row of a bound statement into one array the caller frees
 * (NULL when empty). Sets *rc to 0, or -1 with err filled. */
static void *list_collect(struct store *s, sqlite3_stmt *st, const struct rowtype *t, size_t *n,
			  int *rc, struct err *err, const char *what)
{
	char *rows = NULL;
	size_t len = 0, cap = 0;
	int step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * t->size);
		}
		memset(rows + len * t->size, 0, t->size);
		t->read(st, rows + len * t->size);
		len++;
	}
	if (step != SQLITE_DONE) {
		step_fail(s, step, err, what, NULL, NULL);
		stmt_done(st);
		if (t->release)
			t->release(rows, len);
		else
			free(rows);
		*n = 0;
		*rc = -1;
		return NULL;
	}
	stmt_done(st);
	*n = len;
	*rc = 0;
	return rows;
}

/* A page size from the caller: at most STORE_LIST_MAX, which is also what
 * 0 or a negative number asks for. */
static int list_limit(int limit)
{
	return limit <= 0 || limit > STORE_LIST_MAX ? STORE_LIST_MAX : limit;
}

/* Connections and migrations */

/* Runs constant SQL (pragmas, migrations); never input. */
static int exec_sql(struct store *s, const char *sql, struct err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		err_set(err, 500, "internal", "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Runs a constant query whose one row is one value, as text. */
static int query_text(struct store *s, const char *sql, char *out, size_t n, struct err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return err_set(err, 500, "internal", "%s: %s", sql, sqlite3_errmsg(s->db));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		col_text(st, 0, out, n);
	else if (rc != SQLITE_DONE)
		err_set(err, 500, "internal", "%s: %s", sql, sqlite3_errmsg(s->db));
	else
		err_set(err, 500, "internal", "%s: no result", sql);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int schema_version_read(struct store *s, int *version, struct err *err)
{
	char v[32];

	if (query_text(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", v, sizeof(v),
		       err))
		return -1;
	*version = atoi(v);
	return 0;
}

static int migration_record(struct store *s, int version, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(
	    s->db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", -1, &st,
	    NULL);
	if (rc != SQLITE_OK)
		return err_set(err, 500, "internal", "record migration: %s", sqlite3_errmsg(s->db));
	bind_i64(st, 1, version);
	bind_i64(st, 2, now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err_set(err, 500, "internal", "record migration: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Applies one migration unless it is recorded already. The check is
 * repeated under the write lock, so that two processes opening the same
 * database apply it once. */
static int migration_apply(struct store *s, const struct store__migration *m, int *version,
			   struct err *err)
{
	if (*version >= m->version)
		return 0;
	if (exec_sql(s, "BEGIN IMMEDIATE", err))
		return -1;
	if (schema_version_read(s, version, err))
		goto fail;
	if (*version < m->version) {
		if (exec_sql(s, m->sql, err)) {
			err_prefix(err, "migration %s", m->name);
			goto fail;
		}
		if (migration_record(s, m->version, err))
			goto fail;
		log_info("store migration=%s version=%d", m->name, m->version);
	}
	if (exec_sql(s, "COMMIT", err))
		goto fail;
	*version = m->version;
	return 0;
fail:
	exec_sql(s, "ROLLBACK", NULL);
	return -1;
}

/* Brings the schema up to the newest embedded migration, and refuses a
 * database that a newer bureau has already migrated further. */
static int migrate(struct store *s, struct err *err)
{
	int version, newest = 0;

	if (exec_sql(s,
		     "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
		     err))
		return -1;
	if (schema_version_read(s, &version, err))
		return -1;
	for (size_t i = 0; i < store__migrations_len; i++) {
		const struct store__migration *m = &store__migrations[i];

		if (m->version <= newest)
			return err_set(err, 500, "internal", "migration %s is out of order",
				       m->name);
		newest = m->version;
		if (migration_apply(s, m, &version, err))
			return -1;
	}
	if (version > newest)
		return err_set(err, 500, "internal",
			       "database schema version %d is newer than this build knows (%d)",
			       version, newest);
	return 0;
}

static void conn_close(struct store *s)
{
	if (!s->db)
		return;
	for (int i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(s->stmts[i]);
		s->stmts[i] = NULL;
	}
	sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
	if (sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("store: close: %s", sqlite3_errmsg(s->db));
	s->db = NULL;
}

static int conn_open(struct store *s, const char *path, struct err *err)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	char mode[16];
	int rc;

	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		err_set(err, 500, "internal", "open database %s: %s", path,
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		sqlite3_close(s->db);
		s->db = NULL;
		return -1;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	if (query_text(s, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err) ||
	    exec_sql(s, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", err)) {
		err_prefix(err, "open database %s", path);
		conn_close(s);
		return -1;
	}
	if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
		log_warnx("store: database %s is in journal mode %s, not wal", path, mode);
	return 0;
}

/* The file path in a DSN: "sqlite:PATH" or a plain path. */
static const char *dsn_path(const char *dsn, struct err *err)
{
	const char *path = dsn;

	if (!dsn || !*dsn) {
		err_set(err, 500, "internal", "store: empty database name");
		return NULL;
	}
	if (!strncmp(dsn, "postgres:", 9) || !strncmp(dsn, "postgresql:", 11)) {
		err_set(err, 500, "internal", "store: PostgreSQL is not available in this build");
		return NULL;
	}
	if (!strncmp(dsn, "sqlite:", 7))
		path = dsn + 7;
	if (!*path) {
		err_set(err, 500, "internal", "store: %s: no database path", dsn);
		return NULL;
	}
	return path;
}

/* Creates the database file readable by its owner only (it holds password
 * hashes); SQLite gives its -wal and -shm files the same mode. */
static int db_file_create(const char *path, struct err *err)
{
	int fd;

	if (!strcmp(path, ":memory:"))
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(err, errno, "open database %s", path);
	close(fd);
	return 0;
}

struct store_pool *store_pool_open(const char *dsn, int size, struct err *err)
{
	struct store_pool *p;
	const char *path;

	if (!(path = dsn_path(dsn, err)))
		return NULL;
	if (!sqlite3_threadsafe()) {
		err_set(err, 500, "internal", "store: SQLite was built without thread support");
		return NULL;
	}
	if (db_file_create(path, err))
		return NULL;
	/* Every connection to ":memory:" would be a database of its own. */
	if (size < 1 || !strcmp(path, ":memory:"))
		size = 1;
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->conns = xcalloc((size_t)size, sizeof(*p->conns));
	p->idle = xcalloc((size_t)size, sizeof(*p->idle));
	for (int i = 0; i < size; i++) {
		struct store *s = &p->conns[i];

		if (conn_open(s, path, err))
			goto fail;
		p->size = i + 1;
		if (i == 0 && migrate(s, err))
			goto fail;
		if (schema_version_read(s, &s->version, err))
			goto fail;
		p->idle[p->nidle++] = s;
	}
	return p;
fail:
	store_pool_close(p);
	return NULL;
}

/* Every connection must have been released. */
void store_pool_close(struct store_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->size; i++)
		conn_close(&p->conns[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->idle);
	free(p->conns);
	free(p);
}

struct store *store_pool_acquire(struct store_pool *p)
{
	struct store *s;

	pthread_mutex_lock(&p->lock);
	while (p->nidle == 0)
		pthread_cond_wait(&p->cond, &p->lock);
	s = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->lock);
	return s;
}

/* A transaction left open would hold the write lock forever: roll it back. */
void store_pool_release(struct store_pool *p, struct store *s)
{
	if (!s)
		return;
	if (!sqlite3_get_autocommit(s->db)) {
		log_warnx("store: connection released inside a transaction, rolling back");
		store_rollback(s);
	}
	pthread_mutex_lock(&p->lock);
	p->idle[p->nidle++] = s;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

int store_schema_version(struct store *s)
{
	return s->version;
}

/* Transactions. BEGIN IMMEDIATE takes the write lock up front, so that a
 * read-then-write (count, then insert) never fails halfway with BUSY. */

int store_begin(struct store *s, struct err *err)
{
	sqlite3_stmt *st;

	if (!sqlite3_get_autocommit(s->db))
		return err_set(err, 500, "internal", "store: a transaction is already open");
	if (!(st = stmt_get(s, ST_BEGIN, err)))
		return -1;
	return stmt_exec(s, st, err, "begin transaction", NULL, NULL);
}

/* A failed commit is rolled back, so the connection is clean either way. */
int store_commit(struct store *s, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_COMMIT, err)) ||
	    stmt_exec(s, st, err, "commit transaction", NULL, NULL)) {
		store_rollback(s);
		return -1;
	}
	return 0;
}

void store_rollback(struct store *s)
{
	sqlite3_stmt *st;

	if (sqlite3_get_autocommit(s->db))
		return;
	if ((st = stmt_get(s, ST_ROLLBACK, NULL)))
		stmt_exec(s, st, NULL, "rollback", NULL, NULL);
}

/* Users and sessions */

int store_user_count(struct store *s, int64_t *n, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USER_COUNT, err)))
		return -1;
	return stmt_count(s, st, n, err, "count users");
}

int store_user_insert(struct store *s, const struct user *u, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USER_INSERT, err)))
		return -1;
	bind_text(st, 1, u->id);
	bind_text(st, 2, u->email);
	bind_text(st, 3, u->password_hash);
	bind_i64(st, 4, u->is_admin ? 1 : 0);
	bind_i64(st, 5, u->created_at);
	return stmt_exec(s, st, err, "insert user", "a user with this email already exists", NULL);
}

/* Reads the one user a bound statement selects. */
static int user_fetch(struct store *s, sqlite3_stmt *st, struct user *u, struct err *err,
		      const char *what, const char *notfound)
{
	if (stmt_row(s, st, err, what, notfound))
		return -1;
	user_read(st, 0, u);
	stmt_done(st);
	return 0;
}

int store_user_get(struct store *s, const char *id, struct user *u, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USER_GET, err)))
		return -1;
	bind_text(st, 1, id);
	return user_fetch(s, st, u, err, "get user", "user not found");
}

int store_user_get_by_email(struct store *s, const char *email, struct user *u, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USER_GET_BY_EMAIL, err)))
		return -1;
	bind_text(st, 1, email);
	return user_fetch(s, st, u, err, "get user by email", "user not found");
}

int store_user_list(struct store *s, struct user **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_USER_LIST, err)))
		return -1;
	*out = list_collect(s, st, &user_rows, n, &rc, err, "list users");
	return rc;
}

/* Also forgets sessions that expired before this one was made, so the
 * table does not grow with every login. */
int store_session_insert(struct store *s, const char *token_hash, const char *user_id,
			 int64_t created_at, int64_t expires_at, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SESSION_PURGE, err)))
		return -1;
	bind_i64(st, 1, created_at);
	if (stmt_exec(s, st, err, "purge expired sessions", NULL, NULL))
		return -1;
	if (!(st = stmt_get(s, ST_SESSION_INSERT, err)))
		return -1;
	bind_text(st, 1, token_hash);
	bind_text(st, 2, user_id);
	bind_i64(st, 3, created_at);
	bind_i64(st, 4, expires_at);
	return stmt_exec(s, st, err, "insert session", "session already exists", "user not found");
}

int store_session_user(struct store *s, const char *token_hash, int64_t now, struct user *u,
		       struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SESSION_USER, err)))
		return -1;
	bind_text(st, 1, token_hash);
	bind_i64(st, 2, now);
	return user_fetch(s, st, u, err, "get session", "session not found or expired");
}

int store_session_delete(struct store *s, const char *token_hash, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SESSION_DELETE, err)))
		return -1;
	bind_text(st, 1, token_hash);
	return stmt_change(s, st, err, "delete session", "session not found");
}

/* API keys */

int store_key_insert(struct store *s, const struct api_key *k, const char *token_hash,
		     struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_KEY_INSERT, err)))
		return -1;
	bind_text(st, 1, k->id);
	bind_text(st, 2, k->user_id);
	bind_text(st, 3, k->name);
	bind_text(st, 4, k->prefix);
	bind_text(st, 5, token_hash);
	bind_i64(st, 6, k->created_at);
	bind_time_opt(st, 7, k->last_used_at);
	bind_time_opt(st, 8, k->revoked_at);
	return stmt_exec(s, st, err, "insert API key", "API key already exists", "user not found");
}

int store_key_user(struct store *s, const char *token_hash, struct api_key *k, struct user *u,
		   struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_KEY_USER, err)))
		return -1;
	bind_text(st, 1, token_hash);
	if (stmt_row(s, st, err, "get API key", "API key not found or revoked"))
		return -1;
	if (k)
		key_read(st, 0, k);
	if (u)
		user_read(st, KEY_NCOLS, u);
	stmt_done(st);
	return 0;
}

/* The user's active keys, oldest first; revoked keys are gone for good. */
int store_key_list(struct store *s, const char *user_id, struct api_key **out, size_t *n,
		   struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_KEY_LIST, err)))
		return -1;
	bind_text(st, 1, user_id);
	*out = list_collect(s, st, &key_rows, n, &rc, err, "list API keys");
	return rc;
}

int store_key_revoke(struct store *s, const char *user_id, const char *key_id, int64_t now,
		     struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_KEY_REVOKE, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_text(st, 2, key_id);
	bind_i64(st, 3, now);
	return stmt_change(s, st, err, "revoke API key", "API key not found");
}

int store_key_touch(struct store *s, const char *key_id, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_KEY_TOUCH, err)))
		return -1;
	bind_text(st, 1, key_id);
	bind_i64(st, 2, now);
	return stmt_change(s, st, err, "touch API key", "API key not found");
}

/* Workspaces and members */

/* plan_limit <= 0 takes the schema's default. */
int store_workspace_insert(struct store *s, const struct workspace *w, struct err *err)
{
	sqlite3_stmt *st;
	enum stmt id = w->plan_limit > 0 ? ST_WORKSPACE_INSERT : ST_WORKSPACE_INSERT_DEFAULT;

	if (!(st = stmt_get(s, id, err)))
		return -1;
	bind_text(st, 1, w->id);
	bind_text(st, 2, w->name);
	if (w->plan_limit > 0)
		bind_i64(st, 3, w->plan_limit);
	bind_i64(st, 4, w->created_at);
	return stmt_exec(s, st, err, "insert workspace", "workspace already exists", NULL);
}

int store_member_insert(struct store *s, const char *workspace_id, const char *user_id,
			const char *role, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_MEMBER_INSERT, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	bind_text(st, 2, user_id);
	bind_text(st, 3, role);
	bind_i64(st, 4, now);
	return stmt_exec(s, st, err, "insert member",
			 "the user is already a member of this workspace",
			 "workspace or user not found");
}

int store_member_list(struct store *s, const char *workspace_id, struct member **out, size_t *n,
		      struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_MEMBER_LIST, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	*out = list_collect(s, st, &member_rows, n, &rc, err, "list members");
	return rc;
}

int store_workspace_list(struct store *s, const char *user_id, struct workspace **out, size_t *n,
			 struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_WORKSPACE_LIST, err)))
		return -1;
	bind_text(st, 1, user_id);
	*out = list_collect(s, st, &workspace_rows, n, &rc, err, "list workspaces");
	return rc;
}

int store_workspace_get(struct store *s, const char *user_id, const char *workspace_id,
			struct workspace *w, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_WORKSPACE_GET, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_text(st, 2, workspace_id);
	if (stmt_row(s, st, err, "get workspace", "workspace not found"))
		return -1;
	memset(w, 0, sizeof(*w));
	workspace_read(st, w);
	stmt_done(st);
	return 0;
}

/* Desktops */

int store_desktop_insert(struct store *s, const struct desktop *d, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_DESKTOP_INSERT, err)))
		return -1;
	bind_text(st, 1, d->id);
	bind_text(st, 2, d->workspace_id);
	bind_text(st, 3, d->name);
	bind_text(st, 4, d->tier);
	bind_text(st, 5, d->image);
	bind_text(st, 6, d->image_version);
	bind_text(st, 7, d->state);
	bind_text(st, 8, d->desired_state);
	bind_opt(st, 9, d->reason);
	bind_i64(st, 10, d->vcpus);
	bind_i64(st, 11, d->memory_mb);
	bind_i64(st, 12, d->disk_gb);
	bind_i64(st, 13, d->created_at);
	bind_i64(st, 14, d->updated_at);
	bind_i64(st, 15, d->state_changed_at);
	bind_i64(st, 16, d->ready_ms > 0 ? d->ready_ms : 0);
	return stmt_exec(s, st, err, "insert desktop",
			 "a desktop with this name already exists in the workspace",
			 "workspace not found");
}

/* Reads the one desktop a bound statement selects. */
static int desktop_fetch(struct store *s, sqlite3_stmt *st, struct desktop *d, struct err *err)
{
	if (stmt_row(s, st, err, "get desktop", "desktop not found"))
		return -1;
	memset(d, 0, sizeof(*d));
	desktop_read(st, d);
	stmt_done(st);
	return 0;
}

int store_desktop_get(struct store *s, const char *id, struct desktop *d, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_DESKTOP_GET, err)))
		return -1;
	bind_text(st, 1, id);
	return desktop_fetch(s, st, d, err);
}

int store_desktop_get_for_user(struct store *s, const char *user_id, const char *id,
			       struct desktop *d, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_DESKTOP_GET_FOR_USER, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_text(st, 2, id);
	return desktop_fetch(s, st, d, err);
}

/* Oldest first. A workspace the user is not a member of lists nothing. */
int store_desktop_list_for_user(struct store *s, const char *user_id, const char *workspace_id,
				struct desktop **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_DESKTOP_LIST_FOR_USER, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_opt(st, 2, workspace_id);
	*out = list_collect(s, st, &desktop_rows, n, &rc, err, "list desktops");
	return rc;
}

int store_desktop_list_live(struct store *s, struct desktop **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_DESKTOP_LIST_LIVE, err)))
		return -1;
	*out = list_collect(s, st, &desktop_rows, n, &rc, err, "list live desktops");
	return rc;
}

int store_desktop_count(struct store *s, const char *workspace_id, int64_t *n, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_DESKTOP_COUNT, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	return stmt_count(s, st, n, err, "count desktops");
}

int store_desktop_set_desired(struct store *s, const char *id, const char *desired, int64_t now,
			      struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_DESKTOP_SET_DESIRED, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, desired);
	bind_i64(st, 3, now);
	return stmt_change(s, st, err, "set desired state", "desktop not found");
}

/* Leaving "destroyed" for a live state again can meet a live namesake: 409. */
int store_desktop_set_state(struct store *s, const char *id, const char *state, const char *reason,
			    int64_t ready_ms, int64_t now, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_DESKTOP_SET_STATE, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, state);
	bind_opt(st, 3, reason);
	bind_i64(st, 4, ready_ms);
	bind_i64(st, 5, now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		step_fail(s, rc, err, "set desktop state",
			  "a desktop with this name already exists in the workspace", NULL);
		stmt_done(st);
		return -1;
	}
	stmt_done(st);
	if (sqlite3_changes(s->db) == 0)
		return err_set(err, 404, "not_found", "desktop not found");
	return 0;
}

/* Events */

/* NULL data is stored as "{}", so listed events always carry JSON. */
int store_event_append(struct store *s, struct event *ev, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_EVENT_APPEND, err)))
		return -1;
	bind_text(st, 1, ev->workspace_id);
	bind_opt(st, 2, ev->desktop_id);
	bind_text(st, 3, ev->type);
	bind_text(st, 4, ev->data ? ev->data : "{}");
	bind_i64(st, 5, ev->created_at);
	if (stmt_exec(s, st, err, "append event", NULL, NULL))
		return -1;
	ev->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int store_event_list(struct store *s, const char *user_id, int64_t after_id, int limit,
		     struct event **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_EVENT_LIST, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_i64(st, 2, after_id > 0 ? after_id : 0);
	bind_i64(st, 3, list_limit(limit));
	*out = list_collect(s, st, &event_rows, n, &rc, err, "list events");
	return rc;
}

void store_events_free(struct event *ev, size_t n)
{
	if (!ev)
		return;
	for (size_t i = 0; i < n; i++)
		free(ev[i].data);
	free(ev);
}

/* Audit log */

int store_audit_append(struct store *s, struct audit_entry *a, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_AUDIT_APPEND, err)))
		return -1;
	bind_opt(st, 1, a->workspace_id);
	bind_opt(st, 2, a->user_id);
	bind_opt(st, 3, a->key_id);
	bind_text(st, 4, a->action);
	bind_text(st, 5, a->target);
	bind_i64(st, 6, a->status);
	bind_text(st, 7, a->remote);
	bind_text(st, 8, a->detail);
	bind_i64(st, 9, a->created_at);
	if (stmt_exec(s, st, err, "append audit entry", NULL, NULL))
		return -1;
	a->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* No workspace (NULL or ""): every workspace of the viewer plus the
 * viewer's own entries that have no workspace; otherwise that one
 * workspace, and nothing when the viewer is not a member of it. An action
 * ending with '*' is a prefix: the rest is compared as is, so '_' and '%'
 * mean themselves. */
int store_audit_list(struct store *s, const char *viewer_id, const struct audit_filter *f,
		     struct audit_entry **out, size_t *n, struct err *err)
{
	int one = f->workspace_id && *f->workspace_id;
	size_t alen = f->action ? strlen(f->action) : 0;
	int prefix = alen && f->action[alen - 1] == '*';
	char *stem = prefix ? xstrndup(f->action, alen - 1) : NULL;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, one ? ST_AUDIT_LIST_WORKSPACE : ST_AUDIT_LIST, err))) {
		free(stem);
		return -1;
	}
	bind_text(st, 1, viewer_id);
	bind_text(st, 2, one ? f->workspace_id : NULL);
	bind_i64(st, 3, f->before_id > 0 ? f->before_id : INT64_MAX);
	bind_i64(st, 4, list_limit(f->limit));
	bind_opt(st, 5, f->user_id);
	bind_opt(st, 6, prefix ? NULL : f->action);
	bind_text(st, 7, stem);
	bind_i64(st, 8, f->since ? f->since : INT64_MIN);
	bind_i64(st, 9, f->until ? f->until : INT64_MAX);
	bind_opt(st, 10, f->desktop_id);
	*out = list_collect(s, st, &audit_rows, n, &rc, err, "list audit entries");
	free(stem);
	return rc;
}

void store_audit_free(struct audit_entry *a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		free(a[i].detail);
	free(a);
}

/* Usage */

/* A desktop that already has an open interval keeps it. */
int store_usage_open(struct store *s, const char *desktop_id, const char *workspace_id,
		     const char *tier, int64_t started_at, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USAGE_OPEN, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_text(st, 2, workspace_id);
	bind_text(st, 3, tier);
	bind_i64(st, 4, started_at);
	return stmt_exec(s, st, err, "open usage interval", NULL, "desktop not found");
}

int store_usage_close(struct store *s, const char *desktop_id, int64_t ended_at, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_USAGE_CLOSE, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_i64(st, 2, ended_at);
	return stmt_exec(s, st, err, "close usage interval", NULL, NULL);
}

/* workspace_id NULL: every workspace (operators). Ordered by desktop name.
 * An empty or reversed window answers nothing. */
int store_usage_query(struct store *s, const char *workspace_id, int64_t from, int64_t to,
		      int64_t now, struct usage_row **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (from >= to)
		return 0;
	if (!(st = stmt_get(s, workspace_id ? ST_USAGE_QUERY : ST_USAGE_QUERY_ALL, err)))
		return -1;
	if (workspace_id)
		bind_text(st, 1, workspace_id);
	bind_i64(st, 2, from);
	bind_i64(st, 3, to);
	bind_i64(st, 4, now);
	*out = list_collect(s, st, &usage_rows, n, &rc, err, "query usage");
	return rc;
}

/* Meta */

/* The value is cut to fit n bytes. */
int store_meta_get(struct store *s, const char *key, char *value, size_t n, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_META_GET, err)))
		return -1;
	bind_text(st, 1, key);
	if (stmt_row(s, st, err, "get setting", "setting not found"))
		return -1;
	col_text(st, 0, value, n);
	stmt_done(st);
	return 0;
}

int store_meta_set(struct store *s, const char *key, const char *value, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_META_SET, err)))
		return -1;
	bind_text(st, 1, key);
	bind_text(st, 2, value);
	return stmt_exec(s, st, err, "set setting", NULL, NULL);
}

/* Services */

static void service_row(sqlite3_stmt *st, void *row)
{
	struct service *sv = row;

	col_text(st, 0, sv->desktop_id, sizeof(sv->desktop_id));
	col_text(st, 1, sv->name, sizeof(sv->name));
	sv->command = col_dup(st, 2);
	col_text(st, 3, sv->user, sizeof(sv->user));
	sv->created_at = col_i64(st, 4);
}

static void services_release(void *rows, size_t n)
{
	store_services_free(rows, n);
}

static const struct rowtype service_rows = {sizeof(struct service), service_row,
					    services_release};

int store_service_insert(struct store *s, const struct service *sv, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SERVICE_INSERT, err)))
		return -1;
	bind_text(st, 1, sv->desktop_id);
	bind_text(st, 2, sv->name);
	bind_text(st, 3, sv->command);
	bind_text(st, 4, sv->user);
	bind_i64(st, 5, sv->created_at);
	return stmt_exec(s, st, err, "insert service", "the desktop has a service of that name",
			 "desktop not found");
}

int store_service_delete(struct store *s, const char *desktop_id, const char *name,
			 struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SERVICE_DELETE, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_text(st, 2, name);
	return stmt_change(s, st, err, "delete service", "service not found");
}

int store_service_list(struct store *s, const char *desktop_id, struct service **out, size_t *n,
		       struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_SERVICE_LIST, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	*out = list_collect(s, st, &service_rows, n, &rc, err, "list services");
	return rc;
}

void store_services_free(struct service *sv, size_t n)
{
	if (!sv)
		return;
	for (size_t i = 0; i < n; i++)
		free(sv[i].command);
	free(sv);
}

/* Alert rules and webhooks */

int store_alert_rules_get(struct store *s, const char *workspace_id, char **rules,
			  struct err *err)
{
	sqlite3_stmt *st;

	*rules = NULL;
	if (!(st = stmt_get(s, ST_ALERT_RULES_GET, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	if (stmt_row(s, st, err, "get alert rules", "no alert rules"))
		return -1;
	*rules = col_dup(st, 0);
	stmt_done(st);
	return *rules ? 0 : err_set(err, 404, "not_found", "no alert rules");
}

int store_alert_rules_set(struct store *s, const char *workspace_id, const char *rules,
			  int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_ALERT_RULES_SET, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	bind_text(st, 2, rules);
	bind_i64(st, 3, now);
	return stmt_exec(s, st, err, "set alert rules", NULL, "workspace not found");
}

int store_webhook_get(struct store *s, const char *workspace_id, struct webhook *w,
		      struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_WEBHOOK_GET, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	if (stmt_row(s, st, err, "get webhook", "the workspace has no webhook"))
		return -1;
	memset(w, 0, sizeof(*w));
	col_text(st, 0, w->workspace_id, sizeof(w->workspace_id));
	col_text(st, 1, w->url, sizeof(w->url));
	col_text(st, 2, w->secret, sizeof(w->secret));
	w->created_at = col_i64(st, 3);
	stmt_done(st);
	return 0;
}

int store_webhook_set(struct store *s, const struct webhook *w, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_WEBHOOK_SET, err)))
		return -1;
	bind_text(st, 1, w->workspace_id);
	bind_text(st, 2, w->url);
	bind_text(st, 3, w->secret);
	bind_i64(st, 4, w->created_at);
	return stmt_exec(s, st, err, "set webhook", NULL, "workspace not found");
}

int store_webhook_delete(struct store *s, const char *workspace_id, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_WEBHOOK_DELETE, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	return stmt_change(s, st, err, "delete webhook", "the workspace has no webhook");
}

/* Alerts */

static void alert_row(sqlite3_stmt *st, void *row)
{
	struct alert *a = row;

	col_text(st, 0, a->id, sizeof(a->id));
	col_text(st, 1, a->workspace_id, sizeof(a->workspace_id));
	col_text(st, 2, a->desktop_id, sizeof(a->desktop_id));
	col_text(st, 3, a->kind, sizeof(a->kind));
	col_text(st, 4, a->message, sizeof(a->message));
	a->has_value = sqlite3_column_type(st, 5) != SQLITE_NULL;
	a->value = sqlite3_column_double(st, 5);
	a->threshold = sqlite3_column_double(st, 6);
	a->created_at = col_i64(st, 7);
	a->resolved_at = col_i64(st, 8);
	a->acknowledged_at = col_i64(st, 9);
	col_text(st, 10, a->acknowledged_by, sizeof(a->acknowledged_by));
	col_text(st, 11, a->delivery, sizeof(a->delivery));
	a->delivery_attempts = sqlite3_column_int(st, 12);
}

static const struct rowtype alert_rows = {sizeof(struct alert), alert_row, NULL};

int store_alert_insert(struct store *s, const struct alert *a, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_ALERT_INSERT, err)))
		return -1;
	bind_text(st, 1, a->id);
	bind_text(st, 2, a->workspace_id);
	bind_opt(st, 3, a->desktop_id);
	bind_text(st, 4, a->kind);
	bind_text(st, 5, a->message);
	if (a->has_value) {
		sqlite3_bind_double(st, 6, a->value);
		sqlite3_bind_double(st, 7, a->threshold);
	} else {
		sqlite3_bind_null(st, 6);
		sqlite3_bind_null(st, 7);
	}
	bind_i64(st, 8, a->created_at);
	bind_text(st, 9, *a->delivery ? a->delivery : "none");
	return stmt_exec(s, st, err, "insert alert", "an alert of this episode is open",
			 "workspace not found");
}

int store_alert_resolve(struct store *s, const char *workspace_id, const char *desktop_id,
			const char *kind, int64_t now, int *changed, struct err *err)
{
	sqlite3_stmt *st;

	*changed = 0;
	if (!(st = stmt_get(s, ST_ALERT_RESOLVE, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	bind_text(st, 2, desktop_id ? desktop_id : "");
	bind_text(st, 3, kind);
	bind_i64(st, 4, now);
	if (stmt_exec(s, st, err, "resolve alert", NULL, NULL))
		return -1;
	*changed = sqlite3_changes(s->db) > 0;
	return 0;
}

int store_alert_get_for_user(struct store *s, const char *user_id, const char *id,
			     struct alert *a, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_ALERT_GET_FOR_USER, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_text(st, 2, id);
	if (stmt_row(s, st, err, "get alert", "alert not found"))
		return -1;
	memset(a, 0, sizeof(*a));
	alert_row(st, a);
	stmt_done(st);
	return 0;
}

int store_alert_list(struct store *s, const char *user_id, const char *workspace_id,
		     enum store_alert_filter filter, int limit, struct alert **out, size_t *n,
		     struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_ALERT_LIST, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_opt(st, 2, workspace_id);
	bind_i64(st, 3, filter);
	bind_i64(st, 4, list_limit(limit));
	*out = list_collect(s, st, &alert_rows, n, &rc, err, "list alerts");
	return rc;
}

int store_alert_ack(struct store *s, const char *id, const char *user_id, int64_t now,
		    int resolve, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_ALERT_ACK, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, user_id);
	bind_i64(st, 3, now);
	bind_i64(st, 4, resolve);
	if (stmt_exec(s, st, err, "acknowledge alert", NULL, NULL))
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return err_set(err, 409, "conflict", "the alert is acknowledged already");
	return 0;
}

int store_alert_set_delivery(struct store *s, const char *id, const char *delivery,
			     int attempts, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_ALERT_SET_DELIVERY, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, delivery);
	bind_i64(st, 3, attempts);
	return stmt_change(s, st, err, "set alert delivery", "alert not found");
}

/* Issue 5: boot paths, first-boot configuration state, snapshots, SSH keys */

int store_desktop_extra_get(struct store *s, const char *desktop_id, struct desktop_extra *x,
			    struct err *err)
{
	sqlite3_stmt *st;
	struct err e = ERR_INIT;

	memset(x, 0, sizeof(*x));
	memcpy(x->setup_state, "none", 5);
	if (!(st = stmt_get(s, ST_EXTRA_GET, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	if (stmt_row(s, st, &e, "get desktop extras", "none")) {
		if (e.status == 404)
			return 0;
		*err = e;
		return -1;
	}
	col_text(st, 0, x->boot_path, sizeof(x->boot_path));
	col_text(st, 1, x->boot_note, sizeof(x->boot_note));
	col_text(st, 2, x->setup_state, sizeof(x->setup_state));
	col_text(st, 3, x->setup_items, sizeof(x->setup_items));
	col_text(st, 4, x->setup_reason, sizeof(x->setup_reason));
	col_text(st, 5, x->source_snapshot, sizeof(x->source_snapshot));
	col_text(st, 6, x->source_desktop, sizeof(x->source_desktop));
	stmt_done(st);
	return 0;
}

int store_desktop_extra_put(struct store *s, const char *desktop_id,
			    const struct desktop_extra *x, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_EXTRA_PUT, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_text(st, 2, x->boot_path);
	bind_text(st, 3, x->boot_note);
	bind_text(st, 4, *x->setup_state ? x->setup_state : "none");
	bind_text(st, 5, x->setup_items);
	bind_text(st, 6, x->setup_reason);
	bind_text(st, 7, x->source_snapshot);
	bind_text(st, 8, x->source_desktop);
	bind_i64(st, 9, now);
	return stmt_exec(s, st, err, "put desktop extras", NULL, "desktop not found");
}

static void snapshot_read(sqlite3_stmt *st, void *row)
{
	struct snapshot *sn = row;

	col_text(st, 0, sn->id, sizeof(sn->id));
	col_text(st, 1, sn->desktop_id, sizeof(sn->desktop_id));
	col_text(st, 2, sn->workspace_id, sizeof(sn->workspace_id));
	col_text(st, 3, sn->name, sizeof(sn->name));
	col_text(st, 4, sn->state, sizeof(sn->state));
	col_text(st, 5, sn->kind, sizeof(sn->kind));
	sn->size_bytes = col_i64(st, 6);
	col_text(st, 7, sn->reason, sizeof(sn->reason));
	col_text(st, 8, sn->tier, sizeof(sn->tier));
	col_text(st, 9, sn->image, sizeof(sn->image));
	col_text(st, 10, sn->image_version, sizeof(sn->image_version));
	sn->vcpus = (int)col_i64(st, 11);
	sn->memory_mb = (int)col_i64(st, 12);
	sn->disk_gb = (int)col_i64(st, 13);
	sn->created_at = col_i64(st, 14);
}

static const struct rowtype snapshot_rows = {sizeof(struct snapshot), snapshot_read, NULL};

int store_snapshot_insert(struct store *s, const struct snapshot *sn, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SNAPSHOT_INSERT, err)))
		return -1;
	bind_text(st, 1, sn->id);
	bind_text(st, 2, sn->desktop_id);
	bind_text(st, 3, sn->workspace_id);
	bind_text(st, 4, sn->name);
	bind_text(st, 5, sn->state);
	bind_text(st, 6, sn->kind);
	bind_i64(st, 7, sn->size_bytes);
	bind_text(st, 8, sn->reason);
	bind_text(st, 9, sn->tier);
	bind_text(st, 10, sn->image);
	bind_text(st, 11, sn->image_version);
	bind_i64(st, 12, sn->vcpus);
	bind_i64(st, 13, sn->memory_mb);
	bind_i64(st, 14, sn->disk_gb);
	bind_i64(st, 15, sn->created_at);
	return stmt_exec(s, st, err, "insert snapshot",
			 "the desktop already has a snapshot with this name", "desktop not found");
}

int store_snapshot_get(struct store *s, const char *desktop_id, const char *id,
		       struct snapshot *sn, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SNAPSHOT_GET, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_text(st, 2, id);
	if (stmt_row(s, st, err, "get snapshot", "snapshot not found"))
		return -1;
	memset(sn, 0, sizeof(*sn));
	snapshot_read(st, sn);
	stmt_done(st);
	return 0;
}

int store_snapshot_list(struct store *s, const char *desktop_id, struct snapshot **out,
			size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!(st = stmt_get(s, ST_SNAPSHOT_LIST, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	*out = list_collect(s, st, &snapshot_rows, n, &rc, err, "list snapshots");
	return rc;
}

int store_snapshot_set_state(struct store *s, const char *id, const char *state,
			     const char *kind, int64_t size_bytes, const char *reason,
			     struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SNAPSHOT_SET_STATE, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, state);
	bind_text(st, 3, kind);
	bind_i64(st, 4, size_bytes);
	bind_text(st, 5, reason);
	return stmt_change(s, st, err, "set snapshot state", "snapshot not found");
}

int store_snapshot_delete(struct store *s, const char *id, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SNAPSHOT_DELETE, err)))
		return -1;
	bind_text(st, 1, id);
	return stmt_change(s, st, err, "delete snapshot", "snapshot not found");
}

int store_snapshot_usage(struct store *s, const char *desktop_id, int64_t *count,
			 int64_t *bytes, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SNAPSHOT_USAGE, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	if (stmt_row(s, st, err, "snapshot usage", "no result"))
		return -1;
	*count = col_i64(st, 0);
	*bytes = col_i64(st, 1);
	stmt_done(st);
	return 0;
}

int store_ssh_keys_get(struct store *s, const char *workspace_id, char **json, struct err *err)
{
	sqlite3_stmt *st;
	struct err e = ERR_INIT;

	*json = NULL;
	if (!(st = stmt_get(s, ST_SSH_KEYS_GET, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	if (stmt_row(s, st, &e, "get ssh keys", "none")) {
		if (e.status != 404) {
			*err = e;
			return -1;
		}
		*json = xstrdup("[]");
		return 0;
	}
	*json = col_dup(st, 0);
	stmt_done(st);
	if (!*json)
		*json = xstrdup("[]");
	return 0;
}

int store_ssh_keys_put(struct store *s, const char *workspace_id, const char *json, int64_t now,
		       struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_SSH_KEYS_PUT, err)))
		return -1;
	bind_text(st, 1, workspace_id);
	bind_text(st, 2, json);
	bind_i64(st, 3, now);
	return stmt_exec(s, st, err, "put ssh keys", NULL, "workspace not found");
}

/* Issue 6: the pilot's conversation, usage, egress log, settings and
 * approvals. */

static void chat_read(sqlite3_stmt *st, void *row)
{
	struct chat_msg *m = row;

	m->seq = col_i64(st, 0);
	col_text(st, 1, m->id, sizeof(m->id));
	col_text(st, 2, m->desktop_id, sizeof(m->desktop_id));
	col_text(st, 3, m->workspace_id, sizeof(m->workspace_id));
	col_text(st, 4, m->role, sizeof(m->role));
	col_text(st, 5, m->status, sizeof(m->status));
	col_text(st, 6, m->user_id, sizeof(m->user_id));
	col_text(st, 7, m->reply_to, sizeof(m->reply_to));
	m->content = col_dup(st, 8);
	if (!m->content)
		m->content = xstrdup("");
	m->data = col_dup(st, 9);
	m->created_at = col_i64(st, 10);
	m->delivered_at = col_i64(st, 11);
}

void store_chat_free(struct chat_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].content);
		free(m[i].data);
	}
	free(m);
}

static void chat_release(void *rows, size_t n)
{
	store_chat_free(rows, n);
}

static const struct rowtype chat_rows = {sizeof(struct chat_msg), chat_read, chat_release};

int store_chat_insert(struct store *s, struct chat_msg *m, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_CHAT_INSERT, err)))
		return -1;
	bind_text(st, 1, m->id);
	bind_text(st, 2, m->desktop_id);
	bind_text(st, 3, m->workspace_id);
	bind_text(st, 4, m->role);
	bind_text(st, 5, m->status);
	bind_text(st, 6, m->user_id);
	bind_text(st, 7, m->reply_to);
	bind_text(st, 8, m->content ? m->content : "");
	bind_text(st, 9, m->data);
	bind_i64(st, 10, m->created_at);
	if (stmt_exec(s, st, err, "insert chat message", NULL, "desktop not found"))
		return -1;
	m->seq = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int store_chat_list(struct store *s, const char *desktop_id, const char *before, int limit,
		    struct chat_msg **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_CHAT_LIST, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_opt(st, 2, before);
	bind_i64(st, 3, list_limit(limit));
	*out = list_collect(s, st, &chat_rows, n, &rc, err, "list chat messages");
	/* Newest first from SQL: the page reads oldest first. */
	for (size_t i = 0; rc == 0 && i < *n / 2; i++) {
		struct chat_msg t = (*out)[i];
		(*out)[i] = (*out)[*n - 1 - i];
		(*out)[*n - 1 - i] = t;
	}
	return rc;
}

int store_chat_queued(struct store *s, const char *desktop_id, struct chat_msg **out, size_t *n,
		      struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_CHAT_QUEUED, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	*out = list_collect(s, st, &chat_rows, n, &rc, err, "list queued chat messages");
	return rc;
}

int store_chat_delivered(struct store *s, const char *id, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_CHAT_DELIVERED, err)))
		return -1;
	bind_text(st, 1, id);
	bind_i64(st, 2, now);
	return stmt_exec(s, st, err, "mark chat message delivered", NULL, NULL);
}

int store_llm_usage_add(struct store *s, const char *desktop_id, const char *workspace_id,
			const char *provider, const char *model, int64_t input_tokens,
			int64_t output_tokens, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_LLM_USAGE_ADD, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_text(st, 2, workspace_id);
	bind_text(st, 3, provider);
	bind_text(st, 4, model);
	bind_i64(st, 5, input_tokens);
	bind_i64(st, 6, output_tokens);
	bind_i64(st, 7, now);
	return stmt_exec(s, st, err, "add llm usage", NULL, "desktop not found");
}

int store_llm_usage_sum(struct store *s, const char *desktop_id, int64_t *calls,
			int64_t *input_tokens, int64_t *output_tokens, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_LLM_USAGE_SUM, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	if (stmt_row(s, st, err, "sum llm usage", "no result"))
		return -1;
	*calls = col_i64(st, 0);
	*input_tokens = col_i64(st, 1);
	*output_tokens = col_i64(st, 2);
	stmt_done(st);
	return 0;
}

static void egress_read(sqlite3_stmt *st, void *row)
{
	struct egress_entry *e = row;

	e->id = col_i64(st, 0);
	col_text(st, 1, e->desktop_id, sizeof(e->desktop_id));
	col_text(st, 2, e->workspace_id, sizeof(e->workspace_id));
	col_text(st, 3, e->host, sizeof(e->host));
	e->port = (int)col_i64(st, 4);
	e->allowed = (int)col_i64(st, 5);
	col_text(st, 6, e->reason, sizeof(e->reason));
	e->bytes_up = col_i64(st, 7);
	e->bytes_down = col_i64(st, 8);
	e->created_at = col_i64(st, 9);
}

static const struct rowtype egress_rows = {sizeof(struct egress_entry), egress_read, NULL};

int store_egress_append(struct store *s, struct egress_entry *e, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_EGRESS_APPEND, err)))
		return -1;
	bind_text(st, 1, e->desktop_id);
	bind_text(st, 2, e->workspace_id);
	bind_text(st, 3, e->host);
	bind_i64(st, 4, e->port);
	bind_i64(st, 5, e->allowed);
	bind_text(st, 6, e->reason);
	bind_i64(st, 7, e->bytes_up);
	bind_i64(st, 8, e->bytes_down);
	bind_i64(st, 9, e->created_at);
	if (stmt_exec(s, st, err, "append egress log", NULL, "desktop not found"))
		return -1;
	e->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int store_egress_list(struct store *s, const char *desktop_id, int64_t before_id, int limit,
		      struct egress_entry **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_EGRESS_LIST, err)))
		return -1;
	bind_text(st, 1, desktop_id);
	bind_i64(st, 2, before_id);
	bind_i64(st, 3, list_limit(limit));
	*out = list_collect(s, st, &egress_rows, n, &rc, err, "list egress log");
	return rc;
}

/* One JSON setting of a workspace or a desktop. */
static int setting_get(struct store *s, enum stmt id, const char *owner, const char *name,
		       char **value, struct err *err)
{
	sqlite3_stmt *st;

	*value = NULL;
	if (!(st = stmt_get(s, id, err)))
		return -1;
	bind_text(st, 1, owner);
	bind_text(st, 2, name);
	if (stmt_row(s, st, err, "get setting", "setting not set"))
		return -1;
	*value = col_dup(st, 0);
	stmt_done(st);
	return *value ? 0 : err_set(err, 404, "not_found", "setting not set");
}

static int setting_put(struct store *s, enum stmt id, const char *owner, const char *name,
		       const char *value, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, id, err)))
		return -1;
	bind_text(st, 1, owner);
	bind_text(st, 2, name);
	bind_text(st, 3, value);
	bind_i64(st, 4, now);
	return stmt_exec(s, st, err, "put setting", NULL, "owner not found");
}

int store_workspace_setting_get(struct store *s, const char *workspace_id, const char *name,
				char **value, struct err *err)
{
	return setting_get(s, ST_WS_SETTING_GET, workspace_id, name, value, err);
}

int store_workspace_setting_put(struct store *s, const char *workspace_id, const char *name,
				const char *value, int64_t now, struct err *err)
{
	return setting_put(s, ST_WS_SETTING_PUT, workspace_id, name, value, now, err);
}

int store_desktop_setting_get(struct store *s, const char *desktop_id, const char *name,
			      char **value, struct err *err)
{
	return setting_get(s, ST_DSK_SETTING_GET, desktop_id, name, value, err);
}

int store_desktop_setting_put(struct store *s, const char *desktop_id, const char *name,
			      const char *value, int64_t now, struct err *err)
{
	return setting_put(s, ST_DSK_SETTING_PUT, desktop_id, name, value, now, err);
}

static void dsetting_read(sqlite3_stmt *st, void *row)
{
	struct desktop_setting *v = row;

	col_text(st, 0, v->desktop_id, sizeof(v->desktop_id));
	v->value = col_dup(st, 1);
}

void store_desktop_settings_free(struct desktop_setting *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].value);
	free(v);
}

static void dsetting_release(void *rows, size_t n)
{
	store_desktop_settings_free(rows, n);
}

static const struct rowtype dsetting_rows = {sizeof(struct desktop_setting), dsetting_read,
					     dsetting_release};

int store_desktop_setting_all(struct store *s, const char *name, struct desktop_setting **out,
			      size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_DSK_SETTING_ALL, err)))
		return -1;
	bind_text(st, 1, name);
	*out = list_collect(s, st, &dsetting_rows, n, &rc, err, "list desktop settings");
	return rc;
}

static void approval_read(sqlite3_stmt *st, void *row)
{
	struct approval *a = row;

	col_text(st, 0, a->id, sizeof(a->id));
	col_text(st, 1, a->desktop_id, sizeof(a->desktop_id));
	col_text(st, 2, a->workspace_id, sizeof(a->workspace_id));
	col_text(st, 3, a->ref, sizeof(a->ref));
	col_text(st, 4, a->kind, sizeof(a->kind));
	a->action = col_dup(st, 5);
	a->input = col_dup(st, 6);
	col_text(st, 7, a->reason, sizeof(a->reason));
	col_text(st, 8, a->status, sizeof(a->status));
	col_text(st, 9, a->decided_by, sizeof(a->decided_by));
	col_text(st, 10, a->note, sizeof(a->note));
	a->has_screenshot = (int)col_i64(st, 11);
	a->created_at = col_i64(st, 12);
	a->expires_at = col_i64(st, 13);
	a->decided_at = col_i64(st, 14);
}

void store_approval_release(struct approval *a)
{
	free(a->action);
	free(a->input);
	a->action = a->input = NULL;
}

void store_approvals_free(struct approval *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_approval_release(&a[i]);
	free(a);
}

static void approval_rows_release(void *rows, size_t n)
{
	store_approvals_free(rows, n);
}

static const struct rowtype approval_rows = {sizeof(struct approval), approval_read,
					     approval_rows_release};

int store_approval_insert(struct store *s, const struct approval *a, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_APPROVAL_INSERT, err)))
		return -1;
	bind_text(st, 1, a->id);
	bind_text(st, 2, a->desktop_id);
	bind_text(st, 3, a->workspace_id);
	bind_text(st, 4, a->ref);
	bind_text(st, 5, a->kind);
	bind_text(st, 6, a->action ? a->action : "");
	bind_text(st, 7, a->input ? a->input : "{}");
	bind_text(st, 8, a->reason);
	bind_i64(st, 9, a->created_at);
	bind_i64(st, 10, a->expires_at);
	return stmt_exec(s, st, err, "insert approval", NULL, "desktop not found");
}

int store_approval_get(struct store *s, const char *user_id, const char *id, struct approval *a,
		       struct err *err)
{
	sqlite3_stmt *st;

	memset(a, 0, sizeof(*a));
	if (!(st = stmt_get(s, ST_APPROVAL_GET, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_text(st, 2, id);
	if (stmt_row(s, st, err, "get approval", "approval not found"))
		return -1;
	approval_read(st, a);
	stmt_done(st);
	return 0;
}

int store_approval_list(struct store *s, const char *user_id, const char *status, int limit,
			struct approval **out, size_t *n, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = stmt_get(s, ST_APPROVAL_LIST, err)))
		return -1;
	bind_text(st, 1, user_id);
	bind_opt(st, 2, status);
	bind_i64(st, 3, list_limit(limit));
	*out = list_collect(s, st, &approval_rows, n, &rc, err, "list approvals");
	return rc;
}

int store_approval_decide(struct store *s, const char *id, const char *status,
			  const char *decided_by, const char *note, int64_t now, struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_APPROVAL_DECIDE, err)))
		return -1;
	bind_text(st, 1, id);
	bind_text(st, 2, status);
	bind_text(st, 3, decided_by ? decided_by : "");
	bind_text(st, 4, note ? note : "");
	bind_i64(st, 5, now);
	if (stmt_exec(s, st, err, "decide approval", NULL, NULL))
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return err_set(err, 409, "conflict", "the approval was already decided");
	return 0;
}

int store_approval_screenshot_put(struct store *s, const char *id, const void *png, size_t len,
				  struct err *err)
{
	sqlite3_stmt *st;

	if (!(st = stmt_get(s, ST_APPROVAL_SHOT_PUT, err)))
		return -1;
	bind_text(st, 1, id);
	sqlite3_bind_blob64(st, 2, png, len, SQLITE_STATIC);
	return stmt_change(s, st, err, "put approval screenshot", "approval not found");
}

int store_approval_screenshot_get(struct store *s, const char *id, void **png, size_t *len,
				  struct err *err)
{
	sqlite3_stmt *st;
	const void *b;

	if (!(st = stmt_get(s, ST_APPROVAL_SHOT_GET, err)))
		return -1;
	bind_text(st, 1, id);
	if (stmt_row(s, st, err, "get approval screenshot", "no screenshot"))
		return -1;
	b = sqlite3_column_blob(st, 0);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	*png = xmalloc(*len ? *len : 1);
	if (*len)
		memcpy(*png, b, *len);
	stmt_done(st);
	return 0;
}

/* Retention */

static int prune_stopped(const atomic_int *stop)
{
	return stop && atomic_load(stop);
}

/* Removes one log table's rows created before `before`, a batch at a time.
 * A batch is found by a read that takes no lock, walking the table in id
 * order from where the previous batch ended (ids grow with time, so the old
 * rows come first); then one DELETE, a transaction of its own, removes the
 * old rows of that id range. The ids are AUTOINCREMENT: deleting even the
 * newest row never lets an id be handed out again. */
static int prune_table(struct store *s, enum stmt find, enum stmt del, const char *what,
		       int64_t before, int batch, const atomic_int *stop, int64_t *removed,
		       struct err *err)
{
	int64_t after = 0, found, last;
	sqlite3_stmt *st;

	do {
		if (!(st = stmt_get(s, find, err)))
			return -1;
		bind_i64(st, 1, after);
		bind_i64(st, 2, before);
		bind_i64(st, 3, batch);
		if (stmt_row(s, st, err, what, "no result"))
			return -1;
		found = sqlite3_column_int64(st, 0);
		last = sqlite3_column_int64(st, 1);
		stmt_done(st);
		if (!found)
			return 0;
		if (!(st = stmt_get(s, del, err)))
			return -1;
		bind_i64(st, 1, after);
		bind_i64(st, 2, last);
		bind_i64(st, 3, before);
		if (stmt_exec(s, st, err, what, NULL, NULL))
			return -1;
		*removed += sqlite3_changes(s->db);
		after = last;
	} while (found == batch && !prune_stopped(stop));
	return 0;
}

int store_prune(struct store *s, int64_t before, int64_t now, int batch, const atomic_int *stop,
		struct store_pruned *out, struct err *err)
{
	const struct {
		enum stmt find, del;
		const char *what;
		int64_t *removed;
	} logs[] = {
	    {ST_PRUNE_AUDIT_FIND, ST_PRUNE_AUDIT_DELETE, "prune audit", &out->audit},
	    {ST_PRUNE_EVENTS_FIND, ST_PRUNE_EVENTS_DELETE, "prune events", &out->events},
	    {ST_PRUNE_EGRESS_FIND, ST_PRUNE_EGRESS_DELETE, "prune egress log", &out->egress},
	};
	sqlite3_stmt *st;

	if (!sqlite3_get_autocommit(s->db))
		return err_set(err, 500, "internal", "store: prune inside a transaction");
	if (batch <= 0)
		batch = STORE_PRUNE_BATCH;
	for (size_t i = 0; before > 0 && i < sizeof(logs) / sizeof(logs[0]); i++) {
		if (prune_table(s, logs[i].find, logs[i].del, logs[i].what, before, batch, stop,
				logs[i].removed, err))
			return -1;
		if (prune_stopped(stop))
			return 0;
	}
	if (!(st = stmt_get(s, ST_SESSION_PURGE, err)))
		return -1;
	bind_i64(st, 1, now);
	if (stmt_exec(s, st, err, "prune expired sessions", NULL, NULL))
		return -1;
	out->sessions += sqlite3_changes(s->db);
	return 0;
}
