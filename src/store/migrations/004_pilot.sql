-- Issue 6: the pilot. Chat messages, LLM token usage, the egress log, small
-- per-workspace and per-desktop settings (allowlist, approval rules, the
-- provider's host, the agent's status) and approvals.

-- Every message of a desktop's conversation: what people sent (role user,
-- status queued until the pilot took it, then delivered) and what the pilot
-- said and did (assistant, tool_call, tool_result, error). seq orders them.
CREATE TABLE chat_messages (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	workspace_id TEXT NOT NULL,
	role TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT '',
	user_id TEXT NOT NULL DEFAULT '',
	reply_to TEXT NOT NULL DEFAULT '',
	content TEXT NOT NULL,
	data TEXT, -- JSON: tool name, input, output, error code
	created_at BIGINT NOT NULL,
	delivered_at BIGINT
);
CREATE INDEX chat_messages_desktop ON chat_messages (desktop_id, seq);

-- One row per LLM call the pilot reported.
CREATE TABLE llm_usage (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	workspace_id TEXT NOT NULL,
	provider TEXT NOT NULL,
	model TEXT NOT NULL,
	input_tokens BIGINT NOT NULL,
	output_tokens BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX llm_usage_desktop ON llm_usage (desktop_id);

-- Each tunnel the egress proxy allowed or refused.
CREATE TABLE egress_log (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	workspace_id TEXT NOT NULL,
	host TEXT NOT NULL,
	port INTEGER NOT NULL,
	allowed INTEGER NOT NULL,
	reason TEXT NOT NULL,
	bytes_up BIGINT NOT NULL,
	bytes_down BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX egress_log_desktop ON egress_log (desktop_id, id);

-- JSON settings by name: "egress" (allowlist), "approvals" (rules, timeout).
CREATE TABLE workspace_settings (
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (workspace_id, name)
);

-- JSON settings by name: "provider" (name and base URL, never the key),
-- "agent" (task, status, last activity).
CREATE TABLE desktop_settings (
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (desktop_id, name)
);

-- A sensitive action the pilot waits on.
CREATE TABLE approvals (
	id TEXT PRIMARY KEY,
	desktop_id TEXT NOT NULL REFERENCES desktops (id) ON DELETE CASCADE,
	workspace_id TEXT NOT NULL,
	ref TEXT NOT NULL,     -- the pilot's own name for the request
	kind TEXT NOT NULL,    -- shell, computer, files
	action TEXT NOT NULL,  -- the exact command or action
	input TEXT NOT NULL,   -- JSON: the tool call's input
	reason TEXT NOT NULL,  -- why the policy calls it sensitive
	status TEXT NOT NULL,  -- pending, approved, denied, expired
	decided_by TEXT NOT NULL DEFAULT '',
	note TEXT NOT NULL DEFAULT '',
	screenshot BLOB,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	decided_at BIGINT
);
CREATE INDEX approvals_workspace ON approvals (workspace_id, created_at);
