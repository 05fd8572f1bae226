#!/usr/bin/env python3
"""The bureau CLI's snapshot commands against a real bureaud and one tiny
desktop: snapshots create (--name, the default name, --wait), ls (table
and --json), a fork with desktops create --from-snapshot (by id, and by
name with --from-desktop) that reaches running, restore --wait of a
running desktop (what was written after the snapshot is gone) and of a
stopped one, rm --wait; and the failures scripts rely on: usage errors
exit 2 before any request, the server's refusals (a taken name, a bad
name, a desktop that is stopping, the tier's quota, a fork with another
tier) exit 1 with its message, unknown ids and another workspace's
desktop exit 4, no credentials exit 1 with a hint to log in."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


CLI = lib.cli_path()
t = lib.Tap()
home = tempfile.mkdtemp(prefix="bureau-cli-snap-home-")
d = lib.Bureaud().start()
admin = d.admin()
ws = d.workspace()
endpoint = "http://127.0.0.1:%d" % d.port
created = []  # desktop ids to destroy at the end

# mallory: another user, with a workspace of her own
admin.post("/api/users", {"email": "mallory@example.org", "password": "mallory's password"})
r = lib.Client(d.port).post("/api/auth/login", {"email": "mallory@example.org",
                                                "password": "mallory's password"})
r = lib.Client(d.port, cookie=r.header("Set-Cookie").split(";")[0]).post(
    "/api/api-keys", {"name": "m"}, headers={"Origin": endpoint})
MALLORY = r.json()["key"]


def env_for(key=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUREAU_")}
    env["HOME"] = home
    env.pop("XDG_CONFIG_HOME", None)
    env["BUREAU_CONFIG"] = os.path.join(home, "no-config")
    env["BUREAU_ENDPOINT"] = endpoint
    if key:
        env["BUREAU_API_KEY"] = admin.key if key is True else key
    return env


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            return {}

    def __repr__(self):
        return "exit %d\nstdout: %s\nstderr: %s" % (self.rc, self.out[-1500:], self.err[-1500:])


def bureau(*args, env=None, timeout=600):
    p = subprocess.run([CLI] + list(args), capture_output=True, text=True,
                       env=env or env_for(), timeout=timeout)
    return Run(p)


def snapshots(did):
    return admin.get("/api/desktops/%s/snapshots" % did).json()["snapshots"]


def exec_(did, cmd):
    r = admin.post("/api/desktops/%s/exec" % did, {"command": ["sh", "-c", cmd], "user": "root"})
    return r.json().get("stdout", "").strip() if r.status == 200 else None


# --- usage errors: exit 2, nothing on stdout, no request needed -------------

r = bureau("--help")
t.ok(r.rc == 0 and "snapshots restore ID SNAPSHOT" in r.out and "--from-snapshot" in r.out,
     "--help lists the snapshot commands and the fork flags", r)
for args, what in ((["snapshots"], "a group without subcommand"),
                   (["snapshots", "ls"], "ls without a desktop"),
                   (["snapshots", "ls", "a", "b"], "ls with an extra argument"),
                   (["snapshots", "create"], "create without a desktop"),
                   (["snapshots", "create", "a", "b"], "create with a name as argument (--name)"),
                   (["snapshots", "restore", "a"], "restore without a snapshot"),
                   (["snapshots", "restore", "a", "b", "c"], "restore with an extra argument"),
                   (["snapshots", "rm", "a"], "rm without a snapshot"),
                   (["snapshots", "frob", "a"], "an unknown verb"),
                   (["snapshots", "create", "a", "--memory"], "an unknown flag"),
                   (["snapshots", "create", "a", "--name"], "--name without its value"),
                   (["snapshots", "ls", "a", "--name", "x"], "--name on ls"),
                   (["snapshots", "rm", "a", "b", "--from-snapshot", "x"], "a flag of another command"),
                   (["desktops", "create", "x", "--from-desktop", "a"], "--from-desktop without --from-snapshot"),
                   (["desktops", "create", "x", "--from-snapshot", "a-name"],
                    "a snapshot name without --from-desktop"),
                   (["desktops", "create", "--from-snapshot", "snp_x"], "a fork without a name")):
    r = bureau(*args, env=env_for(key=False) | {"BUREAU_ENDPOINT": "http://127.0.0.1:1"})
    t.ok(r.rc == 2 and r.err.strip() and not r.out, "exit 2 on a usage error: " + what, r)

# --- credentials -------------------------------------------------------------

r = bureau("snapshots", "ls", "dsk_doesnotexist", env=env_for(key=False))
t.ok(r.rc == 1 and "unauthorized" in r.err and "login" in r.err,
     "no credentials: exit 1, the API's code and a hint to log in", r)
r = bureau("snapshots", "create", "dsk_doesnotexist", "--name", "x", env=env_for(key="bk_not_a_real_key"))
t.ok(r.rc == 1 and "unauthorized" in r.err, "a bad key: exit 1 and the API's code", r)
r = bureau("snapshots", "ls", "dsk_doesnotexist")
t.ok(r.rc == 4 and "not_found" in r.err, "snapshots ls of an unknown desktop id: exit 4", r)
r = bureau("snapshots", "ls", "no-such-desktop")
t.ok(r.rc == 4 and "no-such-desktop" in r.err, "snapshots ls of an unknown desktop name: exit 4", r)

try:
    r = bureau("desktops", "create", "snap-src", "--image", "tiny", "--wait", "--json")
    src = r.json().get("id", "dsk_missing")
    created.append(src)
    up = t.ok(r.rc == 0 and r.json().get("state") == "running", "a tiny desktop runs", r)

    # --- create --------------------------------------------------------------
    exec_(src, "echo before > /data/marker; sync")
    r = bureau("snapshots", "create", "snap-src", "--name", "base", "--wait", "--json")
    base = r.json()
    sid = base.get("id", "snp_missing")
    t.ok(r.rc == 0 and sid.startswith("snp_") and base.get("name") == "base" and
         base.get("state") == "ready" and base.get("kind") == "memory" and base.get("sizeBytes", 0) > 0,
         "snapshots create NAME --name base --wait --json: ready, memory and disk, its size", r)
    r = bureau("snapshots", "create", "snap-src", "--name", "base")
    t.ok(r.rc == 1 and "already has a snapshot with this name" in r.err and "[conflict]" in r.err and not r.out,
         "a name taken: exit 1 with the server's message and code", r)
    r = bureau("snapshots", "create", src, "--name", "bad/name")
    t.ok(r.rc == 1 and "may only contain" in r.err and "invalid_request" in r.err,
         "a bad name: exit 1 with the server's message", r)
    r = bureau("snapshots", "create", src, "--name", "n" * 300)
    t.ok(r.rc == 1 and "longer than 63" in r.err, "an oversized name: exit 1 with the server's message", r)
    r = bureau("snapshots", "create", src, "--name", "x", env=env_for(key=MALLORY))
    t.ok(r.rc == 4 and "not_found" in r.err, "another workspace's desktop: exit 4", r)

    r = bureau("snapshots", "create", src, "--json")
    auto = r.json()
    t.ok(r.rc == 0 and re.fullmatch(r"snap-\d{8}-\d{6}", auto.get("name", "")) and
         auto.get("state") == "creating",
         "without --name: named after the time, answered at once (creating)", r)
    deadline = time.time() + 120
    while time.time() < deadline and any(s["id"] == auto.get("id") and s["state"] == "creating"
                                          for s in snapshots(src)):
        time.sleep(0.3)

    # --- ls --------------------------------------------------------------------
    r = bureau("snapshots", "ls", "snap-src")
    lines = r.out.splitlines()
    row = [l for l in lines if sid in l]
    t.ok(r.rc == 0 and lines and lines[0].split() == ["ID", "NAME", "STATE", "KIND", "SIZE", "CREATED", "REASON"]
         and row and re.search(r"\bbase\s+ready\s+memory\s+[\d.]+ MB\s", row[0]) and len(lines) == 3 and
         lib.header_aligned(r.out, "STATE") and lib.header_aligned(r.out, "SIZE"),
         "snapshots ls NAME: an aligned table, one row each, the size in MB", r)
    r = bureau("snapshots", "ls", src, "--json")
    t.ok(r.rc == 0 and r.json() == {"snapshots": snapshots(src)}, "snapshots ls --json is the API's JSON", r)
    r = bureau("snapshots", "ls", src, env=env_for(key=MALLORY))
    t.ok(r.rc == 4 and not r.out, "another workspace's list: exit 4, nothing listed", r)

    # --- the tier's quota (free: 3 per desktop) --------------------------------
    r = bureau("snapshots", "create", src, "--name", "third", "--wait")
    t.ok(r.rc == 0 and re.search(r"^state\s+ready$", r.out, re.M),
         "a third snapshot, printed as fields", r)
    r = bureau("snapshots", "create", src, "--name", "fourth")
    t.ok(r.rc == 1 and "snapshot_quota" in r.err and "delete one first" in r.err,
         "a fourth: exit 1 with the quota's message", r)
    r = bureau("snapshots", "rm", src, "third", "--wait")
    t.ok(r.rc == 0 and re.fullmatch(r"snp_\w+ deleted\n", r.out), "snapshots rm by name --wait", r)
    r = bureau("snapshots", "rm", src, auto.get("id", "snp_missing"), "--json")
    t.ok(r.rc == 0 and r.json().get("state") == "deleting", "snapshots rm by id --json: deleting", r)

    # --- forks -------------------------------------------------------------------
    r = bureau("desktops", "create", "fork-x", "--from-snapshot", "snp_nosuchsnapshot0000")
    t.ok(r.rc == 4 and "snapshot snp_nosuchsnapshot0000 not found" in r.err,
         "a fork of an unknown snapshot id: exit 4 with the server's message", r)
    r = bureau("desktops", "create", "fork-x", "--from-snapshot", "nope", "--from-desktop", src)
    t.ok(r.rc == 4 and "no snapshot named \"nope\"" in r.err, "a fork of an unknown snapshot name: exit 4", r)
    r = bureau("desktops", "create", "fork-x", "--from-snapshot", sid, "--tier", "pro")
    t.ok(r.rc == 1 and "a fork has its snapshot's tier" in r.err, "a fork with another tier: exit 1, the server says why", r)
    r = bureau("desktops", "create", "fork-x", "--from-snapshot", sid, env=env_for(key=MALLORY))
    t.ok(r.rc == 4, "a fork of another workspace's snapshot: exit 4", r)
    r = bureau("desktops", "create", "fork-1", "--from-snapshot", "base", "--from-desktop", "snap-src",
               "--wait", "--json")
    fork = r.json()
    if fork.get("id"):
        created.append(fork["id"])
    t.ok(r.rc == 0 and fork.get("state") == "running" and fork.get("bootPath") == "snapshot" and
         (fork.get("forkOf") or {}).get("snapshotId") == sid and fork.get("workspaceId") == ws,
         "desktops create --from-snapshot NAME --from-desktop D --wait: the fork runs, resumed from it", r)
    t.eq(exec_(fork.get("id", "dsk_missing"), "cat /data/marker"), "before", "the fork has the snapshot's files")
    r = bureau("desktops", "rm", fork.get("id", "dsk_missing"), "--wait")
    t.ok(r.rc == 0, "the fork is destroyed", r)
    r = bureau("desktops", "create", "fork-2", "--from-snapshot", sid, "--json")
    fork2 = r.json()
    if fork2.get("id"):
        created.append(fork2["id"])
    t.ok(r.rc == 0 and (fork2.get("forkOf") or {}).get("snapshotId") == sid,
         "desktops create --from-snapshot snp_…: a fork by id", r)
    admin.delete("/api/desktops/" + fork2.get("id", "dsk_missing"))

    # --- restore -----------------------------------------------------------------
    exec_(src, "echo after > /data/after; sync")
    before = admin.get("/api/desktops/" + src).json()
    r = bureau("snapshots", "restore", src, "snp_nosuchsnapshot0000")
    t.ok(r.rc == 4 and "snapshot not found" in r.err, "restore of an unknown snapshot id: exit 4 with the server's message", r)
    r = bureau("snapshots", "restore", src, "nope")
    t.ok(r.rc == 4 and "no snapshot named" in r.err, "restore of an unknown snapshot name: exit 4", r)
    r = bureau("snapshots", "restore", src, sid, env=env_for(key=MALLORY))
    t.ok(r.rc == 4, "another workspace's restore: exit 4", r)
    r = bureau("snapshots", "restore", "snap-src", "base", "--wait", "--json")
    after = admin.get("/api/desktops/" + src).json()
    t.ok(r.rc == 0 and r.json().get("state") == "ready" and r.json().get("reason") is None and
         after["state"] == "running" and after["stateChangedAt"] != before["stateChangedAt"] and
         after["bootPath"] == "snapshot",
         "snapshots restore NAME SNAPSHOT --wait: returns once the desktop runs the snapshot again", (r, after))
    t.ok(r.json().get("sizeBytes") == base.get("sizeBytes") and r.json().get("kind") == "memory",
         "a restored snapshot keeps its size and kind (they count toward the quota)", (r.json(), base))
    t.eq(exec_(src, "cat /data/after 2>/dev/null || echo missing"), "missing",
         "what was written after the snapshot is gone")
    t.eq(exec_(src, "cat /data/marker"), "before", "what was there before is back")

    # --- out of order: a desktop on its way to stopped --------------------------
    exec_(src, "echo second > /data/second; sync")
    r = bureau("desktops", "stop", src)
    r2 = bureau("snapshots", "create", src, "--name", "mid-stop")
    t.ok(r.rc == 0 and r2.rc == 1 and "only a running or stopped desktop can be snapshotted" in r2.err,
         "a snapshot while the desktop stops: exit 1 with the server's message", (r, r2))
    admin.wait_state(src, ["stopped", "error"], timeout=120)
    r = bureau("snapshots", "restore", src, "base", "--wait")
    d2 = admin.get("/api/desktops/" + src).json()
    t.ok(r.rc == 0 and re.search(r"^state\s+ready$", r.out, re.M) and d2["state"] == "stopped",
         "restore --wait of a stopped desktop: done once the snapshot is back, the desktop stays stopped",
         (r, d2["state"]))
    r = bureau("desktops", "start", src, "--wait")
    t.ok(r.rc == 0 and exec_(src, "cat /data/second 2>/dev/null || echo missing") == "missing" and
         exec_(src, "cat /data/marker") == "before",
         "it starts from the snapshot: what was written before the stop is gone", r)

    # --- rm ------------------------------------------------------------------------
    r = bureau("snapshots", "rm", src, sid, env=env_for(key=MALLORY))
    t.ok(r.rc == 4, "another workspace's rm: exit 4", r)
    r = bureau("snapshots", "rm", "snap-src", "base", "--wait")
    t.ok(r.rc == 0 and r.out == sid + " deleted\n" and not any(s["id"] == sid for s in snapshots(src)),
         "snapshots rm --wait: gone from the list", r)
    r = bureau("snapshots", "rm", src, sid)
    t.ok(r.rc == 4 and "snapshot not found" in r.err, "rm again: exit 4 with the server's message", r)
    r = bureau("snapshots", "restore", src, sid)
    t.ok(r.rc == 4, "restore of a deleted snapshot: exit 4", r)
    r = bureau("desktops", "create", "fork-3", "--from-snapshot", sid)
    t.ok(r.rc == 4, "a fork of a deleted snapshot: exit 4", r)
    r = bureau("snapshots", "ls", src)
    t.ok(r.rc == 0 and r.out.splitlines()[0].startswith("ID") and sid not in r.out,
         "the list no longer has it", r)
finally:
    admin.destroy_all(created)

t.done()
