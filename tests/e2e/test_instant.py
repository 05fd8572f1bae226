"""Instant desktops on the tiny image: the warm template, create from it,
the first-boot configuration and the BYOK key (nowhere but the guest's
provider.json), hibernate stop and start keeping a process and its PID,
the shutdown mode, snapshots with quotas, rollback, forks that differ in
identity, a VM killed during a save, a bureaud restart before the key was
delivered, and bad input for every new field and route."""
import json
import os
import re
import secrets
import signal
import stat
import time

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg", "--plan-limit", "10"]).start()
admin = b.admin()
port = b.port
KEY = "sk-ant-" + secrets.token_hex(16)
PASSWORD = "pw-" + secrets.token_hex(8)
answers = []  # every API answer body, searched for the secrets at the end


def rec(r):
    answers.append(r.body)
    return r


def api(method, path, body=None, who=None, **kw):
    return rec((who or admin).request(method, path, body=body, **kw))


def exec_(did, cmd, user="root", stdin=None):
    body = {"command": ["sh", "-c", cmd], "user": user}
    if stdin is not None:
        body["stdin"] = stdin  # secrets go here: commands are audited
    r = api("POST", "/api/desktops/%s/exec" % did, body)
    return r.json().get("stdout", "").strip() if r.status == 200 else None


def wait(did, states, timeout=180):
    d = admin.wait_state(did, states, timeout=timeout)
    answers.append(json.dumps(d).encode())
    return d


def events(until=None, timeout=5):
    ev = lib.follow_events(port, admin.key, last_id=0, n=100000, timeout=timeout, until=until)
    answers.append(json.dumps(ev).encode())
    return ev


def wait_snapshot(did, sid, states, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = api("GET", "/api/desktops/%s/snapshots" % did)
        for s in r.json()["snapshots"]:
            if s["id"] == sid and s["state"] in states:
                return s
        if "gone" in states and all(s["id"] != sid for s in r.json()["snapshots"]):
            return {"state": "gone"}
        time.sleep(0.3)
    return None


# another user with a workspace of their own: everything of the admin's is 404
api("POST", "/api/users", {"email": "mallory@example.org", "password": "mallory's password"})
r = lib.Client(port).post("/api/auth/login", {"email": "mallory@example.org", "password": "mallory's password"})
cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=cookie).post("/api/api-keys", {"name": "m"},
                                          headers={"Origin": "http://127.0.0.1:%d" % port})
mallory = lib.Client(port, key=r.json()["key"])
ws = b.workspace()

# ---- templates ----
r = api("GET", "/api/templates")
t.ok(r.status == 200 and r.json()["enabled"] is True and isinstance(r.json()["templates"], list),
     "GET /api/templates lists templates", r)
t.ok(lib.Client(port).get("/api/templates").status == 401, "templates need credentials")
for body, why in (({"image": "windows"}, "an unknown image"), ({"image": "tiny", "tier": "gold"}, "an unknown tier"),
                  ({}, "no image"), ({"image": 3}, "a number as image"), ({"image": "tiny", "x": 1}, "an unknown field")):
    r = api("POST", "/api/templates", body)
    t.ok(r.status == 400, "template build with %s: 400" % why, r)
r = api("POST", "/api/templates", raw=b"{nope", headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "template build with malformed JSON: 400", r)
r = api("POST", "/api/templates", {"image": "tiny"}, who=mallory)
t.ok(r.status == 403, "a template build needs an administrator", r)
r = api("POST", "/api/templates", {"image": "tiny"})
t.ok(r.status == 202 and r.json()["state"] in ("building", "ready"), "an administrator starts a tiny template build", r)
tpl = None
deadline = time.time() + 240
while time.time() < deadline:
    tpl = [x for x in api("GET", "/api/templates").json()["templates"] if x["image"] == "tiny"]
    if tpl and tpl[0]["state"] in ("ready", "failed"):
        break
    time.sleep(0.5)
t.ok(tpl and tpl[0]["state"] == "ready" and tpl[0]["memoryBytes"] > 0, "the template becomes ready", tpl)
tdir = os.path.join(b.state_dir, "templates", "tiny", tpl[0]["version"], "2c-4096m-20g")
t.ok(os.path.isfile(os.path.join(tdir, "memory")) and os.path.isfile(os.path.join(tdir, "saved.json")),
     "its memory and saved.json are in STATE/templates/tiny/<version>/2c-4096m-20g", tdir)
t.ok(stat.S_IMODE(os.stat(os.path.join(tdir, "disk.qcow2")).st_mode) == 0o444, "its disk is read-only")
t.ok(not os.path.exists(tdir + ".tmp"), "no half-written template folder is left")
t.ok(not b.template_pids(), "the template's VM is gone once saved")

# ---- bad input of the create fields ----
bad = [
    ({"provider": "skynet"}, "an unknown provider"),
    ({"apiKey": "sk-0123456789"}, "a key without a provider"),
    ({"provider": "openai", "apiKey": "short"}, "a too short key"),
    ({"provider": "openai", "apiKey": "sk-" + "x" * 600}, "a too long key"),
    ({"provider": "openai", "apiKey": "sk key with spaces"}, "a key with spaces"),
    ({"provider": "openai", "model": 5}, "a number as model"),
    ({"password": ""}, "an empty password"),
    ({"password": "x" * 300}, "a too long password"),
    ({"timezone": "../../etc/passwd"}, "a path as timezone"),
    ({"timezone": "Europe/Paris; rm -rf /"}, "a timezone with a command"),
    ({"env": ["A=1"]}, "env as an array"),
    ({"env": {"1X": "a"}}, "an env name starting with a digit"),
    ({"env": {"A-B": "a"}}, "an env name with a dash"),
    ({"env": {"A": 1}}, "a number as env value"),
    ({"env": {"A": "x" * 5000}}, "a too long env value"),
    ({"env": dict(("V%d" % i, "x") for i in range(70))}, "too many env variables"),
    ({"fromSnapshot": "../x"}, "a path as snapshot id"),
]
for extra, why in bad:
    body = {"name": "bad", "image": "tiny"}
    body.update(extra)
    r = api("POST", "/api/desktops", body)
    t.ok(r.status == 400, "create with %s: 400" % why, r)
r = api("POST", "/api/desktops", {"name": "bad", "image": "tiny", "fromSnapshot": "snp_nosuchsnapshot0000"})
t.ok(r.status == 404, "create from an unknown snapshot: 404", r)
r = api("POST", "/api/desktops", raw=b'{"name": "x", "apiKey": "' + KEY.encode() + b'\x01"}',
        headers={"Content-Type": "application/json"})
t.ok(r.status == 400 and KEY.encode() not in r.body, "a malformed body with a key: 400 that does not quote it", r)

# ---- create from the template, with the first-boot configuration ----
r = api("PUT", "/api/workspaces/%s/ssh-keys" % ws, {"keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBureauTestKeyOnlyForTests0123456789abc tester@bureau"]})
t.ok(r.status == 200 and len(r.json()["keys"]) == 1, "the workspace's SSH keys are set", r)
r = api("POST", "/api/desktops", {"name": "Alpha.One", "image": "tiny", "provider": "anthropic",
                                  "model": "claude-sonnet-4", "apiKey": KEY, "password": PASSWORD,
                                  "timezone": "UTC", "env": {"GREETING": "it's me", "N": "1"}})
t.ok(r.status == 201 and r.json()["setup"]["state"] == "pending", "create with provider, key, password, timezone, env", r)
alpha = r.json()["id"]
t0 = time.time()
d = wait(alpha, ["running", "error"])
t.ok(d["state"] == "running" and d["bootPath"] == "template", "it resumes the warm template", d)
print("# create→running from the template: %.2f s (readyMs %s)" % (time.time() - t0, d["readyMs"]))
t.ok(d["setup"]["state"] == "applied" and d["setup"]["reason"] is None, "the first-boot configuration is applied", d["setup"])
t.eq(exec_(alpha, "hostname"), "alpha-one", "the host name comes from the desktop's name")
mid_alpha = exec_(alpha, "cat /etc/machine-id")
t.ok(mid_alpha and re.fullmatch(r"[0-9a-f]{32}", mid_alpha), "it has a machine-id of its own", mid_alpha)
cfg = "/data/etc/bureau"
t.eq(exec_(alpha, "stat -c %%a %s/provider.json" % cfg), "600", "provider.json is mode 0600")
t.eq(exec_(alpha, "grep -rlF -f - /data /etc /root /tmp /run 2>/dev/null", stdin=KEY), cfg + "/provider.json",
     "inside the guest the key is only in the agent's provider.json")
t.eq(exec_(alpha, "grep -cF -f - %s/provider.json; grep -o 'anthropic\\|claude-sonnet-4' %s/provider.json | sort | tr '\\n' ' '"
           % (cfg, cfg), stdin='"apiKey":"%s"' % KEY), "1\nanthropic claude-sonnet-4",
     "provider.json holds provider, model and key")
t.ok((exec_(alpha, "grep '^agent:' /etc/shadow | cut -d: -f2") or "").startswith("$6$"),
     "the agent user's password is set (SHA-512 crypt)")
t.eq(exec_(alpha, ". %s/env.sh; echo \"$GREETING/$N\"" % cfg), "it's me/1", "the environment variables reach a shell")
t.ok("tester@bureau" in (exec_(alpha, "cat /data/home/agent/.ssh/authorized_keys; stat -c %a /data/home/agent/.ssh/authorized_keys") or ""),
     "the workspace's SSH key is in the agent user's authorized_keys")
t.ok(abs(int(exec_(alpha, "date +%s") or 0) - time.time()) < 30, "the guest's clock is set")

# ---- hibernate stop and start: same process, same PID ----
pid = exec_(alpha, "setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $!")
t.ok(pid and pid.isdigit(), "a sleep runs in the guest", pid)
folder = os.path.join(b.state_dir, "desktops", alpha)
for body, why in (({"mode": "freeze"}, "an unknown mode"), ({"mode": 1}, "a number as mode"),
                  ({"mode": "shutdown", "x": 1}, "an unknown field")):
    r = api("POST", "/api/desktops/%s/stop" % alpha, body)
    t.ok(r.status == 400, "stop with %s: 400" % why, r)
r = api("POST", "/api/desktops/%s/stop" % alpha, raw=b"{", headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "stop with malformed JSON: 400", r)
t.ok(api("POST", "/api/desktops/%s/stop" % alpha, who=mallory).status == 404, "another workspace's stop: 404")
t0 = time.time()
r = api("POST", "/api/desktops/%s/stop" % alpha)
t.ok(r.status == 202, "stop (hibernate by default) accepted", r)
d = wait(alpha, ["stopped", "error"], 120)
print("# hibernate stop: %.2f s" % (time.time() - t0))
t.ok(d["state"] == "stopped" and d["saved"] and d["saved"]["source"] == "hibernation", "it stops with its memory saved", d)
t.ok(alpha not in b.qemu_pids(), "its QEMU is gone")
t.ok(os.path.isfile(os.path.join(folder, "memory")) and os.path.isfile(os.path.join(folder, "saved.json")),
     "the memory image and saved.json are in the desktop's folder")
r = api("POST", "/api/desktops/%s/stop" % alpha)
t.ok(r.status == 409, "stopping a stopped desktop: 409", r)
t0 = time.time()
r = api("POST", "/api/desktops/%s/start" % alpha)
d = wait(alpha, ["running", "error"])
print("# start→running from hibernation: %.2f s" % (time.time() - t0))
t.ok(d["state"] == "running" and d["bootPath"] == "hibernation", "start resumes the hibernation", d)
t.ok(exec_(alpha, "cat /proc/%s/cmdline | tr '\\0' ' '" % pid) == "sleep 100000",
     "the sleep is still there with the same PID")
t.ok(not os.path.exists(os.path.join(folder, "memory")), "the spent memory image is removed")
t.ok(abs(int(exec_(alpha, "date +%s") or 0) - time.time()) < 30, "the clock is corrected after the resume")
t.eq(exec_(alpha, "hostname"), "alpha-one", "the identity stays across hibernation")

# ---- shutdown mode: a cold boot afterwards ----
r = api("POST", "/api/desktops/%s/stop" % alpha, {"mode": "shutdown"})
t.ok(r.status == 202, "stop with mode shutdown accepted", r)
d = wait(alpha, ["stopped", "error"], 120)
t.ok(d["state"] == "stopped" and d["saved"] is None, "a shutdown keeps no memory", d)
api("POST", "/api/desktops/%s/start" % alpha)
d = wait(alpha, ["running", "error"])
t.ok(d["state"] == "running" and d["bootPath"] == "cold", "and the next start is a cold boot", d)
t.ok(exec_(alpha, "kill -0 %s 2>/dev/null && echo alive || echo gone" % pid) == "gone", "the sleep did not survive the shutdown")
t.eq(exec_(alpha, "hostname"), "alpha-one", "the host name survives a cold boot")
t.eq(exec_(alpha, "cat /etc/machine-id"), mid_alpha, "so does the machine-id")

# ---- a memory image never resumes with a disk that moved on ----
api("POST", "/api/desktops/%s/stop" % alpha)
d = wait(alpha, ["stopped", "error"], 120)
t.ok(d["saved"] is not None, "hibernated again")
os.utime(os.path.join(folder, "disk.qcow2"))  # the disk "ran on" after the save
api("POST", "/api/desktops/%s/start" % alpha)
d = wait(alpha, ["running", "error"])
t.ok(d["state"] == "running" and d["bootPath"] == "cold" and "disk changed" in (d["bootNote"] or ""),
     "a disk changed after the save: the memory is discarded and the desktop cold-boots, saying why", d)
t.ok(not os.path.exists(os.path.join(folder, "memory")), "the stale memory image is gone")

# ---- snapshots ----
pid = exec_(alpha, "setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $!")
exec_(alpha, "echo before > /data/marker; sync")
for body, why in (({}, "no name"), ({"name": ""}, "an empty name"), ({"name": "../x"}, "a path as name"),
                  ({"name": 3}, "a number as name"), ({"name": "ok", "x": 1}, "an unknown field")):
    r = api("POST", "/api/desktops/%s/snapshots" % alpha, body)
    t.ok(r.status == 400, "snapshot with %s: 400" % why, r)
t.ok(api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "x"}, who=mallory).status == 404,
     "another workspace's snapshot: 404")
t.ok(api("GET", "/api/desktops/%s/snapshots" % alpha, who=mallory).status == 404, "another workspace's list: 404")
r = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "base"})
t.ok(r.status == 202 and r.json()["state"] == "creating", "snapshot of a running desktop accepted", r)
snap = r.json()["id"]
r = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "base"})
t.ok(r.status == 409, "a second snapshot with the same name: 409", r)
s = wait_snapshot(alpha, snap, ["ready", "failed"])
t.ok(s and s["state"] == "ready" and s["kind"] == "memory" and s["sizeBytes"] > 0, "it becomes ready with memory and disk", s)
t.ok(api("GET", "/api/desktops/%s" % alpha).json()["state"] == "running", "the desktop runs on after the snapshot")
r = api("POST", "/api/desktops/%s/snapshots/%s/restore" % (alpha, snap), who=mallory)
t.ok(r.status == 404, "another workspace's restore: 404", r)
r = api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, snap), who=mallory)
t.ok(r.status == 404, "another workspace's delete: 404", r)
r = api("POST", "/api/desktops/%s/snapshots/snp_nosuchsnapshot0000/restore" % alpha)
t.ok(r.status == 404, "restoring an unknown snapshot: 404", r)
r = api("POST", "/api/desktops/%s/snapshots/%s/restore" % (alpha, snap), {"x": 1})
t.ok(r.status == 400, "restore with a body: 400", r)
# quota: the free tier allows 3 per desktop
r1 = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "q2"})
r2 = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "q3"})
r3 = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "q4"})
t.ok(r1.status == 202 and r2.status == 202 and r3.status == 422 and r3.json()["error"]["code"] == "snapshot_quota"
     and "3" in r3.json()["error"]["message"], "the tier's snapshot quota: the 4th is 422", (r1, r2, r3))
r = api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, r1.json()["id"]))
t.ok(r.status in (202, 409), "delete while it may still be creating: 202 or 409", r)
s2 = wait_snapshot(alpha, r2.json()["id"], ["ready", "failed"])
wait_snapshot(alpha, r1.json()["id"], ["ready", "failed", "gone"])
r = api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, r2.json()["id"]))
t.ok(r.status == 202 and r.json()["state"] == "deleting", "delete a snapshot", r)
t.ok(wait_snapshot(alpha, r2.json()["id"], ["gone"]) is not None, "it is gone from the list")
t.ok(not os.path.exists(os.path.join(folder, "snapshots", r2.json()["id"])), "and its files are gone")
r = api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, r2.json()["id"]))
t.ok(r.status == 404, "deleting it again: 404", r)
for x in api("GET", "/api/desktops/%s/snapshots" % alpha).json()["snapshots"]:
    if x["id"] != snap and x["state"] in ("ready", "failed"):
        api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, x["id"]))

# ---- forks: both run, each with its own identity ----
r = api("POST", "/api/desktops", {"name": "fork-a", "fromSnapshot": snap, "tier": "pro"})
t.ok(r.status == 400, "a fork with another tier: 400", r)
r = api("POST", "/api/desktops", {"name": "fork-x", "fromSnapshot": snap}, who=mallory)
t.ok(r.status == 404, "a fork of another workspace's snapshot: 404", r)
fa = api("POST", "/api/desktops", {"name": "fork-a", "fromSnapshot": snap})
fb = api("POST", "/api/desktops", {"name": "fork-b", "fromSnapshot": snap})
t.ok(fa.status == 201 and fb.status == 201 and fa.json()["forkOf"]["snapshotId"] == snap, "two forks of one snapshot", (fa, fb))
da = wait(fa.json()["id"], ["running", "error"])
db = wait(fb.json()["id"], ["running", "error"])
t.ok(da["state"] == "running" and db["state"] == "running" and da["bootPath"] == db["bootPath"] == "snapshot",
     "both forks run, resumed from the snapshot", (da, db))
ha, hb = exec_(da["id"], "hostname"), exec_(db["id"], "hostname")
ma, mb = exec_(da["id"], "cat /etc/machine-id"), exec_(db["id"], "cat /etc/machine-id")
t.ok(ha == "fork-a" and hb == "fork-b", "they differ in host name", (ha, hb))
t.ok(ma and mb and ma != mb and mid_alpha not in (ma, mb), "and in machine-id (from each other and the source)", (ma, mb, mid_alpha))
t.ok(exec_(da["id"], "cat /proc/%s/cmdline | tr '\\0' ' '" % pid) == "sleep 100000",
     "a fork carries the snapshot's running processes")
t.eq(exec_(da["id"], "stat -c %%a %s/provider.json" % cfg), "600",
     "a fork is a copy of its source's disk: the provider.json too, still 0600")
for dd in (da, db):
    api("DELETE", "/api/desktops/" + dd["id"])

# ---- rollback ----
exec_(alpha, "echo after > /data/after; sync")
r = api("POST", "/api/desktops/%s/snapshots/%s/restore" % (alpha, snap))
t.ok(r.status == 202 and r.json()["state"] == "restoring", "restore (rollback) accepted", r)
time.sleep(1)
d = wait(alpha, ["running", "error"])
t.ok(d["state"] == "running" and d["bootPath"] == "snapshot", "the desktop runs the snapshot again", d)
t.eq(exec_(alpha, "cat /data/after 2>/dev/null || echo missing"), "missing", "what was written after the snapshot is gone")
t.eq(exec_(alpha, "cat /data/marker"), "before", "what was there before is back")
t.ok(wait_snapshot(alpha, snap, ["ready"]) is not None, "the snapshot is ready again for more restores")

# ---- snapshot of a stopped (hibernated) desktop ----
api("POST", "/api/desktops/%s/stop" % alpha)
wait(alpha, ["stopped", "error"], 120)
r = api("POST", "/api/desktops/%s/snapshots" % alpha, {"name": "asleep"})
s = wait_snapshot(alpha, r.json()["id"], ["ready", "failed"]) if r.status == 202 else None
t.ok(s and s["state"] == "ready" and s["kind"] == "memory", "a hibernated desktop's snapshot holds its memory too", (r, s))
api("DELETE", "/api/desktops/%s/snapshots/%s" % (alpha, r.json()["id"]))
wait_snapshot(alpha, r.json()["id"], ["gone"])

# ---- a VM killed during the save ----
api("POST", "/api/desktops/%s/start" % alpha)
wait(alpha, ["running", "error"])
qpid = b.qemu_pids().get(alpha)
api("POST", "/api/desktops/%s/stop" % alpha)
deadline = time.time() + 30
while time.time() < deadline and not os.path.exists(os.path.join(folder, "memory.tmp")) \
        and not os.path.exists(os.path.join(folder, "saved.json")):
    time.sleep(0.005)
try:
    os.kill(qpid, signal.SIGKILL)
except OSError:
    pass
d = wait(alpha, ["stopped", "error"], 60)
t.ok(d["state"] in ("stopped", "error"), "a VM killed during the save leaves the desktop stopped or in error", d)
api("POST", "/api/desktops/%s/start" % alpha)
d = wait(alpha, ["running", "error"])
ev = events()
hib = [e for _, typ, e in ev if typ == "desktop.hibernated" and e.get("desktopId", alpha) == alpha]
boots = [e for _, typ, e in ev if typ == "desktop.boot"]
last_boot = boots[-1] if boots else {}
t.ok(d["state"] == "running", "it starts again", d)
t.ok((last_boot.get("path") == "hibernation" and hib and hib[-1]["ok"]) or
     (last_boot.get("path") == "cold" and last_boot.get("note")),
     "its events say whether it resumed the last good state or cold-booted (and why)", (hib[-1:], last_boot))
print("# after the kill: %s (%s)" % (last_boot.get("path"), last_boot.get("note")))

# ---- bureaud restarts before the key is delivered ----
KEY2 = "sk-or-" + secrets.token_hex(16)
r = api("POST", "/api/desktops", {"name": "late", "image": "tiny", "provider": "openrouter", "apiKey": KEY2})
late = r.json()["id"]
b.stop(signal.SIGKILL)
b.start()
d = wait(late, ["running", "error"])
t.ok(d["state"] == "running" and d["setup"]["state"] == "failed" and "provider" in (d["setup"]["reason"] or "")
     and "not delivered" in d["setup"]["reason"], "after a restart before delivery the desktop says the key was not delivered", d)
t.eq(exec_(late, "ls %s/provider.json 2>/dev/null || echo none" % cfg), "none", "and the guest has no provider.json")
t.eq(exec_(late, "hostname"), "late", "what was not secret was still applied")

# ---- the secrets are nowhere else ----
ev = events()
audit = api("GET", "/api/audit?limit=500")
blobs = {"API answers": b"\n".join(answers), "events": json.dumps(ev).encode(), "audit": audit.body}
for name in os.listdir(b.state_dir):
    p = os.path.join(b.state_dir, name)
    if os.path.isfile(p) and (name.startswith("bureau.db") or name.endswith(".log")):
        with open(p, "rb") as f:
            blobs[name] = f.read()
t.ok(any(n.startswith("bureau.db") for n in blobs) and "bureaud.log" in blobs, "the database files and the log are searched", list(blobs))
for secret, what in ((KEY, "the API key"), (KEY2, "the second API key"), (PASSWORD, "the password")):
    found = [n for n, data in blobs.items() if secret.encode() in data]
    t.ok(not found, "%s is in none of: database, log, API answers, events, audit" % what, found)

# ---- destroy removes hibernation images and snapshots ----
api("DELETE", "/api/desktops/" + alpha)
wait(alpha, "destroyed", 60)
t.ok(not os.path.exists(folder), "destroy removes the folder with its snapshots")
t.done()
