"""Retention (--retention-days) against a real bureaud, without a VM: rows of
the audit log and of the events backdated in the database are pruned
shortly after startup when older than the setting (90 days by default, 5
here, never with 0), expired sessions go too, alerts (user data) stay, event
ids keep growing, a client resuming from a pruned event id gets what is
left, and bad values of the setting stop bureaud from starting."""
import datetime
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import lib

DAY = 86400 * 1000
PRUNE_WAIT = 60  # the first prune runs 5 s after startup; the machine may be busy
LINE = re.compile(r"retention removed audit=(\d+) events=(\d+) egress=(\d+) sessions=(\d+)")

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
db_path = os.path.join(b.state_dir, "bureau.db")
admin = b.admin()
ws = b.workspace()
admin_id = admin.get("/api/auth/me").json()["user"]["id"]


def now_ms():
    return int(time.time() * 1000)


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def sql(query, args=()):
    db = sqlite3.connect(db_path, timeout=10)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def sql_write(fn):
    db = sqlite3.connect(db_path, timeout=10)
    try:
        fn(db)
        db.commit()
    finally:
        db.close()


def log_size():
    try:
        return os.path.getsize(b.log_path)
    except OSError:
        return 0


def log_since(offset):
    with open(b.log_path, errors="replace") as f:
        f.seek(offset)
        return f.read()


def restart(extra):
    """Starts the stopped bureaud again with extra arguments; returns the
    log offset of the new run."""
    b.extra_args = ["--accel", "tcg"] + extra
    offset = log_size()
    b.start()
    return offset


def prune_counts(offset):
    """The counts of the new run's retention line, waiting for it."""
    m = lib.poll(lambda: LINE.search(log_since(offset)), PRUNE_WAIT)
    return tuple(int(x) for x in m.groups()) if m else None


def burst(client, ws_id):
    """A refusedBurst alert of the workspace (an event without a VM): a rule
    of 5 refusals a minute, then 6 refused requests."""
    path = "/api/workspaces/%s/alert-rules" % ws_id
    client.request("PUT", path, body={"refusedBurst": {"count": 5, "windowSeconds": 60}})
    for i in range(6):
        client.request("PUT", path, body={"cpu": {"nope": i}})

    def raised():
        r = client.get("/api/alerts?state=all&workspaceId=" + ws_id)
        return [a for a in r.json()["alerts"] if a["kind"] == "refusedBurst"]
    found = lib.poll(raised, 15)
    return found[0] if found else None


def event_ids(last_id=0):
    """(id, type) of every event the admin's stream sends after last_id."""
    return [(i, typ) for i, typ, _ in
            lib.follow_events(b.port, b.key, last_id=last_id, n=1000, timeout=3)]


def audit_ids(**query):
    """Ids of every audit entry the admin sees, through GET /api/audit."""
    ids, before = [], None
    while True:
        q = dict(query, limit=500)
        if before:
            q["before"] = before
        r = admin.get("/api/audit?" + urllib.parse.urlencode(q))
        if r.status != 200:
            raise AssertionError("GET /api/audit: %r" % r)
        ids += [e["id"] for e in r.json()["entries"]]
        before = r.json()["next"]
        if not before:
            return ids


VISIBLE = "(workspace_id = ? OR (workspace_id IS NULL AND user_id = ?))"

# ---- some history: requests, an alert raised and acknowledged ----
for _ in range(5):
    admin.get("/api/desktops")
    admin.get("/api/workspaces")
alert = burst(admin, ws)
t.ok(alert is not None, "a refused-request burst raises an alert (an event without a VM)", alert)
if alert is None:
    t.done()
r = admin.post("/api/alerts/%s/ack" % alert["id"])
t.ok(r.status == 200, "the alert is acknowledged", r)


def alert_events():
    evs = [e for e in event_ids() if e[1].startswith("alert.")]
    return evs if len(evs) >= 2 else None


evs = lib.poll(alert_events, 15)
t.ok(evs and [typ for _, typ in evs] == ["alert.raised", "alert.acknowledged"],
     "the events alert.raised and alert.acknowledged are stored", evs)
if not evs:
    t.done()
raised_id, ack_id = evs[0][0], evs[1][0]
t.eq(b.stop(), 0, "bureaud stops")

# ---- backdate: every third audit row 100 days, the next 10 days ----
now = now_ms()
D100, D10 = now - 100 * DAY, now - 10 * DAY
ids = [i for (i,) in sql("SELECT id FROM audit ORDER BY id")]
old = [i for i in ids if i % 3 == 0]
mid = [i for i in ids if i % 3 == 1]
recent = [i for i in ids if i % 3 == 2]
BULK = 12000  # more than two of the store's batches


def backdate(db):
    db.executemany("UPDATE audit SET created_at = ? WHERE id = ?", [(D100, i) for i in old])
    db.executemany("UPDATE audit SET created_at = ? WHERE id = ?", [(D10, i) for i in mid])
    db.executemany(
        "INSERT INTO audit (workspace_id, user_id, action, target, status, remote, created_at) "
        "VALUES (?, ?, 'http.request', 'GET /api/desktops', 200, '127.0.0.1', ?)",
        [(ws, admin_id, D100 - i) for i in range(BULK)])
    db.execute("UPDATE events SET created_at = ? WHERE id = ?", (D100, raised_id))
    db.execute("UPDATE events SET created_at = ? WHERE id = ?", (D10, ack_id))
    db.execute("UPDATE alerts SET created_at = ? WHERE id = ?", (D100, alert["id"]))
    db.execute("UPDATE sessions SET expires_at = ?", (now - DAY,))


sessions = sql("SELECT COUNT(*) FROM sessions")[0][0]
sql_write(backdate)
mid_visible = [i for (i,) in sql("SELECT id FROM audit WHERE created_at = ? AND " + VISIBLE +
                                 " ORDER BY id DESC", (D10, ws, admin_id))]
t.ok(len(old) >= 5 and len(mid) >= 5 and len(mid_visible) >= 3 and sessions >= 1,
     "backdated %d audit rows (and %d more) by 100 days, %d by 10 days; "
     "%d expired session(s)" % (len(old), BULK, len(mid), sessions))

# ---- default retention (90 days) ----
offset = restart([])
counts = prune_counts(offset)
t.eq(counts, (len(old) + BULK, 1, 0, sessions),
     "default: the log line counts the 100-day-old rows and the expired sessions")
left = set(i for (i,) in sql("SELECT id FROM audit"))
t.ok(not left & set(old) and sql("SELECT COUNT(*) FROM audit WHERE created_at < ?",
                                 (now - 90 * DAY,))[0][0] == 0,
     "default: no audit row older than 90 days is left in the database")
t.ok(set(mid) <= left and set(recent) <= left, "default: the 10-day-old and newer rows stay")
t.eq(audit_ids(until=iso(now - 50 * DAY)), [], "default: GET /api/audit finds nothing older")
t.eq(audit_ids(until=iso(now - DAY)), mid_visible,
     "default: GET /api/audit lists the 10-day-old entries the admin may see")
t.eq([i for (i,) in sql("SELECT id FROM events ORDER BY id")], [ack_id],
     "default: the 100-day-old event is gone, the 10-day-old one stays")
t.eq([i for i, typ in event_ids(0) if typ.startswith("alert.")], [ack_id],
     "default: the /api/events backlog from 0 has the kept event only")
t.eq([i for i, _ in event_ids(raised_id)][:1], [ack_id],
     "default: resuming from the pruned event's id gives what is left")
r = admin.get("/api/alerts?state=all&workspaceId=" + ws)
t.ok(r.status == 200 and alert["id"] in [a["id"] for a in r.json()["alerts"]],
     "default: the 100-day-old alert (user data) stays", r)
t.eq(sql("SELECT COUNT(*) FROM sessions WHERE expires_at <= ?", (now_ms(),))[0][0], 0,
     "default: expired sessions are gone")
t.ok(admin.get("/api/desktops").status == 200, "the API key still works after the prune")
t.eq(b.stop(), 0, "bureaud stops")

# ---- --retention-days 5 ----
offset = restart(["--retention-days", "5"])
counts = prune_counts(offset)
t.eq(counts, (len(mid), 1, 0, 0), "5 days: the log line counts the 10-day-old rows")
left = set(i for (i,) in sql("SELECT id FROM audit"))
t.ok(not left & set(mid) and set(recent) <= left,
     "5 days: the 10-day-old audit rows go too, the recent ones stay")
t.eq(audit_ids(until=iso(now - DAY)), [], "5 days: GET /api/audit finds nothing older")
t.eq(sql("SELECT COUNT(*) FROM events")[0][0], 0, "5 days: the events table is empty")
t.eq(event_ids(0), [], "5 days: the /api/events backlog from 0 is empty")
r = admin.post("/api/workspaces", {"name": "second"})
t.ok(r.status == 201, "a second workspace", r)
ws2 = r.json().get("id", "") if r.status == 201 else ""
alert2 = burst(admin, ws2)
fresh = lib.poll(lambda: [i for i, typ in event_ids(0) if typ == "alert.raised"], 15)
t.ok(alert2 and fresh and len(fresh) == 1 and fresh[0] > ack_id,
     "an event after the prune gets a larger id than any before (%r > %d)" % (fresh, ack_id))
t.eq(b.stop(), 0, "bureaud stops")

# ---- retention-days = 0 (from the config file): nothing goes ----
sql_write(lambda db: (db.execute("UPDATE audit SET created_at = ?", (D100,)),
                      db.execute("UPDATE events SET created_at = ?", (D100,))))
before_audit = set(i for (i,) in sql("SELECT id FROM audit"))
before_events = set(i for (i,) in sql("SELECT id FROM events"))
with open(os.path.join(b.state_dir, "bureau.conf"), "w") as f:
    f.write("# retention off\nretention-days = 0\n")
offset = restart(["--log-level", "debug"])
ran = lib.poll(lambda: "retention removed nothing" in log_since(offset), PRUNE_WAIT)
t.ok(ran and not LINE.search(log_since(offset)),
     "0 (config file): the prune runs and removes nothing", log_since(offset)[-1500:])
t.ok(before_audit <= set(i for (i,) in sql("SELECT id FROM audit")) and before_events and
     before_events <= set(i for (i,) in sql("SELECT id FROM events")),
     "0: every 100-day-old audit row and event is kept")
t.ok(len(audit_ids(until=iso(now - 50 * DAY))) >= 3,
     "0: GET /api/audit still lists the 100-day-old entries")
t.eq(b.stop(), 0, "bureaud stops")
os.unlink(os.path.join(b.state_dir, "bureau.conf"))

# ---- bad values: bureaud refuses to start ----
for value in ["-1", "abc", "99999999999", "36501", "1.5", ""]:
    d = tempfile.mkdtemp(prefix="bureau-e2e-ret-")
    rc, out = lib.Bureaud(state_dir=d, extra_args=["--retention-days", value]).start(wait=False).refused()
    t.ok(rc not in (None, 0) and "retention-days" in out and not os.path.exists(
        os.path.join(d, "bureau.db")),
         "--retention-days %r: refused with a message naming the option (exit %r)" % (value, rc),
         out)
    shutil.rmtree(d, ignore_errors=True)
d = tempfile.mkdtemp(prefix="bureau-e2e-ret-")
with open(os.path.join(d, "bureau.conf"), "w") as f:
    f.write("# keep a year? no: a typo\nretention-days = -5\n")
rc, out = lib.Bureaud(state_dir=d).start(wait=False).refused()
t.ok(rc not in (None, 0) and "bureau.conf:2" in out and "retention-days" in out,
     "a bad retention-days in the config file: refused, naming the file, line and option", out)
shutil.rmtree(d, ignore_errors=True)
p = subprocess.run([os.path.join(lib.BUILD, "bureaud"), "--help"], capture_output=True,
                   text=True, timeout=10)
t.ok(p.returncode == 0 and re.search(r"--retention-days .*0: forever.*\[90\]", p.stdout),
     "--help documents retention-days and its default", p.stdout)

t.done()
