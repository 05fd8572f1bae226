"""POST /api/desktops/bulk against a real bureaud: one action on many
desktops, answered per desktop with what the single endpoint would answer;
another workspace's desktops and unknown ids are 404 entries; every desktop
acted on is audited and evented like a single call. Tiny image, three VMs."""
import json
import threading
import time

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
port = b.port
admin = b.admin()
anon = lib.Client(port)
origin = {"Origin": "http://127.0.0.1:%d" % port}
ws = b.workspace()


def err_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def bulk(client, body, **kw):
    return client.post("/api/desktops/bulk", body, **kw)


def statuses(r):
    return [(e["id"], e["status"]) for e in r.json()["results"]]


def audit(client, query):
    r = client.get("/api/audit?" + query)
    return r.json()["entries"] if r.status == 200 else r


def wait_for(fn, what, timeout=240):
    """Polls fn() until it returns something true."""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    raise TimeoutError("%s: not after %ds (last %r)" % (what, timeout, got))


# a second user, bob, in a workspace of his own
r = admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
t.ok(r.status == 201, "admin creates bob", r)
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers=origin)
bob = lib.Client(port, key=r.json()["key"])

# ---- bad requests: the whole request refused, nothing acted on ----
before = len(audit(admin, "action=desktop.*&limit=500"))
fake = "dsk_00000000000000000000"
bad = [
    ("missing action", {"ids": [fake]}, "invalid_request"),
    ("unknown action", {"action": "explode", "ids": [fake]}, "invalid_request"),
    ("action not a string", {"action": 5, "ids": [fake]}, "invalid_type"),
    ("missing ids", {"action": "stop"}, "invalid_request"),
    ("ids not an array", {"action": "stop", "ids": fake}, "invalid_type"),
    ("empty ids", {"action": "stop", "ids": []}, "invalid_type"),
    ("101 ids", {"action": "stop", "ids": ["dsk_%020d" % i for i in range(101)]}, "invalid_type"),
    ("duplicate ids", {"action": "stop", "ids": [fake, "dsk_1", fake]}, "invalid_request"),
    ("a non-string id", {"action": "stop", "ids": [fake, 42]}, "invalid_type"),
    ("an empty id", {"action": "stop", "ids": [""]}, "invalid_type"),
    ("an oversized id", {"action": "stop", "ids": ["dsk_" + "a" * 100]}, "invalid_type"),
    ("mode with start", {"action": "start", "ids": [fake], "mode": "shutdown"}, "invalid_request"),
    ("a bad mode", {"action": "stop", "ids": [fake], "mode": "sleep"}, "invalid_request"),
    ("mode not a string", {"action": "stop", "ids": [fake], "mode": True}, "invalid_type"),
    ("an unknown field", {"action": "stop", "ids": [fake], "force": True}, "unknown_field"),
]
for what, body, code in bad:
    r = bulk(admin, body)
    t.ok(r.status == 400 and err_code(r) == code, "bulk with %s: 400 %s" % (what, code), r)
for what, raw in [("a body that is not JSON", b"{\"action\": "), ("a JSON array", b"[1]"),
                  ("no body", b""), ("duplicate keys", b'{"action":"stop","action":"start","ids":["x"]}')]:
    r = admin.request("POST", "/api/desktops/bulk", raw=raw, headers={"Content-Type": "application/json"})
    t.ok(r.status == 400 and err_code(r) == "invalid_json", "bulk with %s: 400 invalid_json" % what, r)
r = admin.request("POST", "/api/desktops/bulk", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                  headers={"Content-Type": "application/json"})
t.ok(r.status == 413, "bulk with an oversized body: 413", r)
r = bulk(anon, {"action": "stop", "ids": [fake]})
t.ok(r.status == 401 and err_code(r) == "unauthorized", "bulk without credentials: 401", r)
r = bulk(lib.Client(port, key="bk_not-a-real-key"), {"action": "stop", "ids": [fake]})
t.ok(r.status == 401, "bulk with a wrong key: 401", r)
browser = lib.Client(port, cookie=bob_cookie)
r = bulk(browser, {"action": "stop", "ids": [fake]}, headers={"Origin": "http://evil.example"})
t.ok(r.status == 403 and err_code(r) == "csrf", "bulk by cookie from a foreign Origin: 403 csrf", r)
r = bulk(browser, {"action": "stop", "ids": [fake]})
t.ok(r.status == 403 and err_code(r) == "csrf", "bulk by cookie without Origin: 403 csrf", r)
r = bulk(browser, {"action": "stop", "ids": [fake, "../../etc", "dsk_x/stop"]}, headers=origin)
t.ok(r.status == 200 and statuses(r) == [(fake, 404), ("../../etc", 404), ("dsk_x/stop", 404)]
     and all(e["error"]["code"] == "not_found" and "desktop" not in e for e in r.json()["results"]),
     "bulk by cookie with the page's Origin: 200, unknown and malformed ids 404 entries", r)
r = admin.get("/api/desktops/bulk")
t.ok(r.status == 404 and err_code(r) == "not_found", "GET /api/desktops/bulk is no desktop: 404", r)
rows = audit(admin, "action=desktop.*&limit=500")
new = rows[:len(rows) - before]
t.ok(len(new) == len(bad) + 4 and all(e["action"] == "desktop.bulk" and e["status"] >= 400 for e in new),
     "refused bulk requests are audited as such and acted on no desktop",
     [(e["action"], e["status"]) for e in new])

# ---- three tiny desktops: two of the admin's, one of bob's ----
d1 = admin.post("/api/desktops", {"name": "bulk-one", "workspaceId": ws, "image": "tiny"}).json()
d2 = admin.post("/api/desktops", {"name": "bulk-two", "workspaceId": ws, "image": "tiny"}).json()
r = bob.post("/api/desktops", {"name": "bobs", "image": "tiny"})
t.ok(r.status == 201 and "id" in d1 and "id" in d2, "three tiny desktops created", (d1, d2, r))
b1 = r.json()
ids = [d1["id"], d2["id"]]
for d, c in ((d1, admin), (d2, admin), (b1, bob)):
    c.wait_state(d["id"], "running", timeout=300)
t.ok(True, "the three desktops run")

# ---- bulk stop (shutdown) of two running desktops ----
holder = {}
seen = set()


def follow_stop(e):
    if e["type"] == "desktop.desired" and e["desktopId"] in ids:
        seen.add(e["desktopId"])
    return seen == set(ids)


th = threading.Thread(target=lambda: holder.update(ev=lib.follow_events(
    port, admin.key, n=1000, timeout=30, until=follow_stop)))
th.start()
time.sleep(1)
r = bulk(admin, {"action": "stop", "ids": ids, "mode": "shutdown"})
res = r.json()["results"] if r.status == 200 else []
t.ok(r.status == 200 and statuses(r) == [(ids[0], 202), (ids[1], 202)] and
     all(e["desktop"]["desiredState"] == "stopped" and e["desktop"]["id"] == e["id"] for e in res),
     "bulk stop: 200, each entry 202 with its desktop heading for stopped, in request order", r)
th.join()
t.eq(seen, set(ids), "bulk stop published each desktop's desktop.desired event")
for i in ids:
    d = admin.wait_state(i, "stopped", timeout=120)
t.ok(all(admin.get("/api/desktops/" + i).json()["saved"] is None for i in ids),
     "both stopped, powered off as mode shutdown asked (no saved memory)",
     [admin.get("/api/desktops/" + i).json().get("saved") for i in ids])
rows = audit(admin, "action=desktop.stop&desktopId=" + ids[0])
t.ok(len(rows) == 1 and rows[0]["target"] == "POST /api/desktops/%s/stop" % ids[0] and
     rows[0]["status"] == 202 and rows[0]["detail"].get("bulk") is True and
     rows[0]["detail"].get("mode") == "shutdown" and rows[0]["workspaceId"] == ws,
     "each desktop's stop is audited as its single call, marked bulk", rows)
rows = audit(admin, "action=desktop.bulk&limit=1")
t.ok(rows and rows[0]["detail"]["action"] == "stop" and rows[0]["detail"]["ids"] == ids and
     rows[0]["status"] == 200 and rows[0]["workspaceId"] == ws,
     "the bulk request itself is audited with its action and ids", rows)

# impossible transitions: the single endpoint's 409, per entry
single = admin.post("/api/desktops/%s/stop" % ids[0])
r = bulk(admin, {"action": "stop", "ids": ids})
res = r.json()["results"] if r.status == 200 else []
t.ok(r.status == 200 and statuses(r) == [(ids[0], 409), (ids[1], 409)] and
     all(e["error"] == single.json()["error"] for e in res),
     "bulk stop of stopped desktops: 409 entries with the single stop's error", (r, single))
r = bulk(admin, {"action": "restart", "ids": ids})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 409), (ids[1], 409)] and
     all(e["error"]["code"] == "conflict" for e in r.json()["results"]),
     "bulk restart of stopped desktops: 409 entries", r)

# ---- bulk start ----
r = bulk(admin, {"action": "start", "ids": ids})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 202), (ids[1], 202)] and
     all(e["desktop"]["desiredState"] == "running" for e in r.json()["results"]),
     "bulk start: each entry 202", r)
for i in ids:
    d = admin.wait_state(i, "running", timeout=300)
t.ok(all(admin.get("/api/desktops/" + i).json()["bootPath"] == "cold" for i in ids),
     "both run again, cold-booted after the shutdown")
r = bulk(admin, {"action": "start", "ids": ids})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 409), (ids[1], 409)],
     "bulk start of running desktops: 409 entries", r)

# ---- mixed: unknown ids and another workspace's desktop are 404 entries ----
changed = {i: admin.get("/api/desktops/" + i).json()["stateChangedAt"] for i in ids}
bob_before = bob.get("/api/desktops/" + b1["id"]).json()
mixed = [ids[0], fake, b1["id"], ids[1], "nonsense"]
r = bulk(admin, {"action": "restart", "ids": mixed})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 202), (fake, 404), (b1["id"], 404), (ids[1], 202),
                                         ("nonsense", 404)],
     "bulk restart with unknown ids and bob's desktop: 200, those 404, the others 202", r)
res = r.json()["results"] if r.status == 200 else []
t.ok(len(res) == 5 and res[2]["error"]["code"] == "not_found" and "bobs" not in r.body.decode(),
     "another workspace's desktop answers exactly like an unknown one", res)


def restarted(i):
    d = admin.get("/api/desktops/" + i).json()
    return d if d["state"] == "running" and d["stateChangedAt"] > changed[i] else None


for i in ids:
    wait_for(lambda: restarted(i), "restart of " + i, timeout=300)
t.ok(True, "both of the admin's desktops went down and came back up")
d = bob.get("/api/desktops/" + b1["id"]).json()
t.ok(d["state"] == "running" and d["stateChangedAt"] == bob_before["stateChangedAt"],
     "bob's desktop was not touched", d)
rows = [e for e in audit(admin, "action=desktop.restart&limit=50") if e["status"] == 202]
t.ok(sorted(e["detail"]["id"] for e in rows) == sorted(ids) and all(e["detail"]["bulk"] for e in rows),
     "restart audited once per desktop acted on (unknown ids only in the bulk row)", rows)
bob_id = bob.get("/api/auth/me").json()["user"]["id"]
rows = audit(bob, "desktopId=" + b1["id"])
t.ok(rows and all(e["userId"] in (bob_id, None) for e in rows) and
     not any(e["action"] == "desktop.restart" for e in rows),
     "bob's audit log of his desktop holds only his own entries, no restart", rows)
r = bulk(bob, {"action": "stop", "ids": [ids[0], b1["id"]], "mode": "shutdown"})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 404), (b1["id"], 202)],
     "bob's bulk stop: the admin's desktop 404, his own 202", r)
bob.wait_state(b1["id"], "stopped", timeout=120)
t.ok(admin.get("/api/desktops/" + ids[0]).json()["desiredState"] == "running",
     "the admin's desktop still wants to run")

# ---- bulk stop (default: hibernate) reaches the reconciler's mode ----
r = bulk(admin, {"action": "stop", "ids": [ids[1]]})
t.ok(r.status == 200 and statuses(r) == [(ids[1], 202)], "bulk stop of one desktop, no mode", r)
d = admin.wait_state(ids[1], "stopped", timeout=180)
t.ok(d.get("saved") and d["saved"].get("source") == "hibernation",
     "without a mode the desktop hibernates, as the single stop does", d)

# ---- bulk destroy ----
r = bulk(admin, {"action": "destroy", "ids": ids + [b1["id"]]})
t.ok(r.status == 200 and statuses(r) == [(ids[0], 202), (ids[1], 202), (b1["id"], 404)] and
     all(e["desktop"]["desiredState"] == "destroyed" for e in r.json()["results"][:2]),
     "bulk destroy: the admin's desktops 202, bob's 404", r)
r = bulk(admin, {"action": "destroy", "ids": ids})
t.ok(r.status == 200 and all(s in (404, 409) for _, s in statuses(r)),
     "destroying them again: 409 (being destroyed) or 404 (gone) entries", r)
for i in ids:
    admin.wait_state(i, "destroyed", timeout=180)
t.ok(admin.get("/api/desktops").json()["desktops"] == [], "the admin's desktops are gone")
r = bulk(bob, {"action": "destroy", "ids": [b1["id"]]})
t.ok(r.status == 200 and statuses(r) == [(b1["id"], 202)], "bob destroys his by bulk", r)
bob.wait_state(b1["id"], "destroyed", timeout=180)
rows = audit(admin, "action=desktop.destroy&limit=50")
t.ok(sorted(e["detail"]["id"] for e in rows if e["status"] == 202) == sorted(ids) and
     all(e["target"] == "DELETE /api/desktops/" + e["detail"]["id"] for e in rows),
     "destroys audited as DELETE /api/desktops/{id}", rows)

t.done()
