-- Persistent services, alert rules, webhooks and alerts (issue 3).

-- Commands the agent starts again after every boot of the desktop.
CREATE TABLE services (
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	command TEXT NOT NULL, -- JSON array of strings
	run_as TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (desktop_id, name)
);

-- A workspace's alert rules as JSON; a workspace without a row uses the
-- defaults (core/alerts.c).
CREATE TABLE alert_rules (
	workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
	rules TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- Where a workspace's alerts are delivered. The secret is kept in clear:
-- bureaud needs it to sign every delivery.
CREATE TABLE webhooks (
	workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
	url TEXT NOT NULL,
	secret TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE alerts (
	id TEXT PRIMARY KEY,
	workspace_id TEXT NOT NULL REFERENCES workspaces (id),
	desktop_id TEXT,
	kind TEXT NOT NULL,
	message TEXT NOT NULL,
	value DOUBLE PRECISION,
	threshold DOUBLE PRECISION,
	created_at BIGINT NOT NULL,
	resolved_at BIGINT,
	acknowledged_at BIGINT,
	acknowledged_by TEXT,
	delivery TEXT NOT NULL DEFAULT 'none', -- none pending delivered failed
	delivery_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_workspace ON alerts (workspace_id, created_at);
-- One open episode per workspace, desktop and kind: a condition that lasts
-- raises one alert, however often it is evaluated or bureaud restarts.
CREATE UNIQUE INDEX alerts_episode ON alerts (workspace_id, COALESCE(desktop_id, ''), kind)
	WHERE resolved_at IS NULL;
