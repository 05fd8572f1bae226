-- bureau's first schema. Kept to SQL that PostgreSQL also reads, except the
-- AUTOINCREMENT log ids (BIGSERIAL there). Times are milliseconds since the
-- epoch (BIGINT); optional references are NULL, never ''.

CREATE TABLE users (
	id TEXT PRIMARY KEY,
	email TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	is_admin INTEGER NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);
-- One account per address, whatever its case; also the login lookup.
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE sessions (
	token_hash TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	prefix TEXT NOT NULL,
	token_hash TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	last_used_at BIGINT,
	revoked_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE workspaces (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	plan_limit INTEGER NOT NULL DEFAULT 5,
	created_at BIGINT NOT NULL
);

CREATE TABLE members (
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (workspace_id, user_id)
);
-- Every user-scoped query starts from the user's memberships.
CREATE INDEX members_user ON members (user_id, workspace_id);

CREATE TABLE desktops (
	id TEXT PRIMARY KEY,
	workspace_id TEXT NOT NULL REFERENCES workspaces (id),
	name TEXT NOT NULL,
	tier TEXT NOT NULL,
	image TEXT NOT NULL,
	image_version TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	desired_state TEXT NOT NULL,
	reason TEXT,
	vcpus INTEGER NOT NULL,
	memory_mb INTEGER NOT NULL,
	disk_gb INTEGER NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	state_changed_at BIGINT NOT NULL,
	ready_ms BIGINT NOT NULL DEFAULT 0,
	destroyed_at BIGINT
);
CREATE INDEX desktops_workspace ON desktops (workspace_id, created_at);
-- A name is taken while its desktop lives; destroyed rows free it.
CREATE UNIQUE INDEX desktops_live_name ON desktops (workspace_id, name)
	WHERE state <> 'destroyed';

CREATE TABLE events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	workspace_id TEXT NOT NULL,
	desktop_id TEXT,
	type TEXT NOT NULL,
	data TEXT NOT NULL DEFAULT '{}',
	created_at BIGINT NOT NULL
);
CREATE INDEX events_workspace ON events (workspace_id, id);

CREATE TABLE audit (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	workspace_id TEXT,
	user_id TEXT,
	key_id TEXT,
	action TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	status INTEGER NOT NULL DEFAULT 0,
	remote TEXT NOT NULL DEFAULT '',
	detail TEXT,
	created_at BIGINT NOT NULL
);
CREATE INDEX audit_workspace ON audit (workspace_id, id);
CREATE INDEX audit_user ON audit (user_id, id);

-- Running intervals; ended_at is NULL while the desktop runs.
CREATE TABLE usage (
	id INTEGER PRIMARY KEY,
	desktop_id TEXT NOT NULL REFERENCES desktops (id),
	workspace_id TEXT NOT NULL,
	tier TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	ended_at BIGINT
);
CREATE INDEX usage_workspace ON usage (workspace_id, started_at);
-- At most one open interval per desktop.
CREATE UNIQUE INDEX usage_open ON usage (desktop_id) WHERE ended_at IS NULL;

CREATE TABLE meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
