-- Issue 5: how each desktop last booted and its first-boot configuration's
-- fate (never its secrets), user-named snapshots, and workspace SSH keys.
CREATE TABLE desktop_extras (
  desktop_id TEXT PRIMARY KEY REFERENCES desktops(id) ON DELETE CASCADE,
  boot_path TEXT NOT NULL DEFAULT '',      -- cold, template, snapshot, hibernation
  boot_note TEXT NOT NULL DEFAULT '',      -- why a cold boot when another path was tried
  setup_state TEXT NOT NULL DEFAULT 'none',-- none, pending, applied, failed
  setup_items TEXT NOT NULL DEFAULT '',    -- requested items, comma separated (names only)
  setup_reason TEXT NOT NULL DEFAULT '',
  source_snapshot TEXT NOT NULL DEFAULT '',
  source_desktop TEXT NOT NULL DEFAULT '',
  updated_at BIGINT NOT NULL
);

CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  desktop_id TEXT NOT NULL REFERENCES desktops(id) ON DELETE CASCADE,
  workspace_id TEXT NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL,                     -- creating, ready, failed, restoring, deleting
  kind TEXT NOT NULL DEFAULT '',           -- memory (memory and disk) or disk
  size_bytes BIGINT NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  tier TEXT NOT NULL,
  image TEXT NOT NULL,
  image_version TEXT NOT NULL,
  vcpus INTEGER NOT NULL,
  memory_mb INTEGER NOT NULL,
  disk_gb INTEGER NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX snapshots_desktop_name ON snapshots (desktop_id, name);

CREATE TABLE workspace_ssh_keys (
  workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  keys TEXT NOT NULL,                      -- JSON array of public keys
  updated_at BIGINT NOT NULL
);
