"""What Mission Control's Activity and Users views read, against a real
bureaud: GET /api/audit's filters (userId, action and action prefixes,
desktopId, since/until) alone and combined, their bad values, and GET
/api/users for administrators only. One tiny desktop, destroyed at once."""
import datetime
import urllib.parse

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
port = b.port
admin = b.admin()
anon = lib.Client(port)
origin = {"Origin": "http://127.0.0.1:%d" % port}
ws = b.workspace()
admin_id = admin.get("/api/auth/me").json()["user"]["id"]


def err_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def audit(client, **query):
    r = client.get("/api/audit?" + urllib.parse.urlencode(query))
    if r.status != 200:
        raise AssertionError("GET /api/audit?%s: %r" % (urllib.parse.urlencode(query), r))
    return r.json()["entries"]


# ---- GET /api/users ----
r = anon.get("/api/users")
t.ok(r.status == 401 and err_code(r) == "unauthorized", "users without credentials: 401", r)
r = admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
t.ok(r.status == 201, "admin creates bob", r)
bob_id = r.json()["id"]
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers=origin)
bob = lib.Client(port, key=r.json()["key"])
r = bob.get("/api/users")
t.ok(r.status == 403 and err_code(r) == "forbidden", "users for a non-administrator: 403", r)
r = admin.get("/api/users")
users = r.json().get("users", []) if r.status == 200 else []
t.ok(r.status == 200 and [u["email"] for u in users] == ["admin@localhost", "bob@example.org"],
     "users for the administrator: everyone, oldest first", r)
t.ok(all(set(u) == {"id", "email", "isAdmin", "createdAt"} for u in users) and
     [u["isAdmin"] for u in users] == [True, False] and users[1]["id"] == bob_id and
     "argon2" not in r.body.decode(),
     "each user has id, email, isAdmin, createdAt and nothing of the password", users)
r = lib.Client(port, cookie=bob_cookie).get("/api/users")
t.ok(r.status == 403, "users by a non-administrator's session: 403", r)
r = admin.request("GET", "/api/users", raw=b"{}", headers={"Content-Type": "application/json"})
t.ok(r.status == 200, "users ignores a GET body like the other reads", r)

# members: what the Users view adds people with
r = admin.post("/api/workspaces/%s/members" % ws, {"email": "bob@example.org"})
t.ok(r.status == 201 and r.json()["userId"] == bob_id and r.json()["role"] == "member",
     "admin adds bob to the workspace as a member", r)
r = admin.get("/api/workspaces/%s/members" % ws)
t.ok(r.status == 200 and {m["email"]: m["role"] for m in r.json()["members"]} ==
     {"admin@localhost": "owner", "bob@example.org": "member"}, "members lists both with roles", r)
r = admin.post("/api/workspaces/%s/members" % ws, {"email": "bob@example.org"})
t.ok(r.status == 409, "adding a member twice: 409", r)
r = admin.post("/api/workspaces/%s/members" % ws, {"email": "nobody@example.org"})
t.ok(r.status == 404, "adding an unknown email: 404", r)
r = bob.post("/api/workspaces/%s/members" % ws, {"email": "admin@localhost", "role": "admin"})
t.ok(r.status in (403, 409), "a plain member adds nobody", r)
r = anon.get("/api/workspaces/%s/members" % ws)
t.ok(r.status == 401, "members without credentials: 401", r)

# ---- some history: a desktop, requests by both users ----
r = admin.post("/api/desktops", {"name": "audited", "workspaceId": ws, "image": "tiny"})
t.ok(r.status == 201, "a tiny desktop created", r)
dsk = r.json()["id"]
bob.get("/api/desktops/" + dsk)
bob.post("/api/desktops/%s/start" % dsk)  # 409: it is already heading for running
admin.delete("/api/desktops/" + dsk)
admin.get("/api/desktops/dsk_00000000000000000000")
admin.wait_state(dsk, "destroyed", timeout=180)

# ---- filters ----
rows = audit(admin, desktopId=dsk)
acts = [e["action"] for e in rows]
t.ok({"desktop.create", "desktop.destroy", "http.request", "desktop.start"} <= set(acts) and
     {e["userId"] for e in rows} == {admin_id, bob_id} and
     all(e["workspaceId"] == ws or (e["workspaceId"] is None and e["status"] == 404) for e in rows),
     "desktopId: the create (detail), the path's requests, of either user", acts)
t.ok(all(dsk in e["target"] or (e["detail"] or {}).get("desktopId") == dsk or
         (e["detail"] or {}).get("id") == dsk for e in rows),
     "desktopId: every entry names the desktop", rows)
t.ok(not any(e["target"].endswith("dsk_00000000000000000000") for e in rows),
     "desktopId: another desktop's entries are left out")
rows = audit(admin, desktopId="dsk_00000000000000000000")
t.ok(len(rows) == 1 and rows[0]["status"] == 404, "desktopId of an unknown desktop: its 404 request", rows)

rows = audit(admin, userId=bob_id)
t.ok(rows and all(e["userId"] == bob_id and e["workspaceId"] == ws for e in rows) and
     {"http.request", "desktop.start"} <= {e["action"] for e in rows},
     "userId: bob's entries in the workspace the admin shares with him",
     [(e["action"], e["workspaceId"]) for e in rows])
rows = audit(bob, userId=bob_id, action="apikey.create")
t.ok(len(rows) == 1 and rows[0]["workspaceId"] is None and
     audit(admin, userId=bob_id, action="apikey.create") == [],
     "userId does not widen the view: bob's entries of no workspace are his alone", rows)
t.eq(audit(admin, userId="usr_00000000000000000000"), [], "userId of an unknown user: nothing")

rows = audit(admin, action="desktop.create")
t.ok(len(rows) == 1 and rows[0]["detail"]["desktopId"] == dsk, "action: an exact action", rows)
rows = audit(admin, action="desktop.*")
t.ok({e["action"] for e in rows} == {"desktop.create", "desktop.start", "desktop.destroy"},
     "action: desktop.* is a prefix", sorted({e["action"] for e in rows}))
rows = audit(admin, action="http.request", desktopId=dsk)
t.ok(rows and all(e["action"] == "http.request" and e["target"].startswith("GET ") for e in rows),
     "action http.request: the reads (routes without an action of their own)", rows)
t.eq(audit(admin, action="desktop"), [], "action without * is exact: nothing is just \"desktop\"")
# Reading the log writes to it: compare listings below a fixed id.
top = audit(admin, limit=1)[0]["id"]
everything = audit(admin, limit=500, before=top)
t.eq(audit(admin, action="*", limit=500, before=top), everything, "action * matches every action")

day = everything[-1]["createdAt"][:10]  # the day of the oldest entry
t.eq(audit(admin, since=day, limit=500, before=top), everything, "since today (a date): everything")
t.eq(audit(admin, until=day), [], "until today (exclusive): nothing")
tomorrow = (datetime.datetime.strptime(everything[0]["createdAt"][:10], "%Y-%m-%d") +
            datetime.timedelta(days=1)).strftime("%Y-%m-%d")
t.eq(audit(admin, since=tomorrow), [], "since tomorrow: nothing")
mid = next(e["createdAt"] for e in everything if e["action"] == "desktop.create")
after = audit(admin, since=mid, limit=500, before=top)
before_mid = audit(admin, until=mid, limit=500, before=top)
t.ok(after and all(e["createdAt"] >= mid for e in after) and
     any(e["action"] == "desktop.create" for e in after) and
     not any(e["action"] == "user.create" for e in after),
     "since a time (with milliseconds): only what came from then on", [e["action"] for e in after])
t.ok(before_mid and all(e["createdAt"] < mid for e in before_mid) and
     any(e["action"] == "user.create" for e in before_mid) and
     not any(e["action"] == "desktop.create" for e in before_mid),
     "until a time: only what came before", [e["action"] for e in before_mid])
t.eq(sorted(e["id"] for e in after + before_mid), sorted(e["id"] for e in everything),
     "since and until split the log without overlap")
t.eq(len(audit(admin, since=mid, action="desktop.create")), 1,
     "since is inclusive (an entry's own createdAt)")
t.eq(audit(admin, until=mid, action="desktop.create"), [], "until is exclusive")
next_ms = (datetime.datetime.strptime(mid, "%Y-%m-%dT%H:%M:%S.%fZ") +
           datetime.timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
rows = audit(admin, since=mid, until=next_ms, action="desktop.create")
t.ok(len(rows) == 1 and rows[0]["createdAt"] == mid,
     "a one-millisecond window holds the entry made in it", (mid, next_ms, rows))

rows = audit(admin, action="desktop.*", userId=admin_id, desktopId=dsk, since=day,
             until=tomorrow, workspaceId=ws, limit=1)
t.ok(len(rows) == 1 and rows[0]["action"] == "desktop.destroy",
     "filters combine (action, user, desktop, since, workspace, limit)", rows)
r = admin.get("/api/audit?" + urllib.parse.urlencode(
    {"action": "desktop.*", "userId": admin_id, "desktopId": dsk, "limit": 1}))
page = r.json()
r = admin.get("/api/audit?" + urllib.parse.urlencode(
    {"action": "desktop.*", "userId": admin_id, "desktopId": dsk, "limit": 1,
     "before": page["next"]}))
t.ok(page["next"] and r.status == 200 and [e["action"] for e in r.json()["entries"]] == ["desktop.create"],
     "before pages through filtered entries", (page, r))
t.eq(audit(bob, userId=admin_id, action="user.create"), [],
     "filters never show what the viewer may not see (the admin's own entries)")

# ---- bad values ----
for what, q in [
    ("userId without its prefix", "userId=bob"),
    ("userId of another kind", "userId=dsk_00000000000000000000"),
    ("userId with only a prefix", "userId=usr_"),
    ("userId with odd characters", "userId=usr_a%27b"),
    ("userId too long", "userId=usr_" + "a" * 60),
    ("empty userId", "userId="),
    ("desktopId without its prefix", "desktopId=00000000000000000000"),
    ("desktopId too long", "desktopId=dsk_" + "a" * 60),
    ("action with a space", "action=desktop%20stop"),
    ("action with a * inside", "action=desk*top"),
    ("action with two *", "action=desktop.**"),
    ("action with a %", "action=desktop.%25"),
    ("action too long", "action=" + "a" * 64),
    ("empty action", "action="),
    ("since not a date", "since=yesterday"),
    ("since with a bad month", "since=2026-13-01"),
    ("until not a date", "until=2026-11-01T25:00:00Z"),
    ("until at the epoch", "until=1970-01-01"),
    ("since too long", "since=2026-11-01T12:00:00.000Z" + "0" * 40),
    ("since after until", "since=2026-11-02&until=2026-11-01"),
    ("since equal to until", "since=2026-11-01&until=2026-11-01"),
    ("workspaceId too long", "workspaceId=ws_" + "a" * 60),
    ("limit 0", "limit=0"),
    ("limit 501", "limit=501"),
]:
    r = admin.get("/api/audit?" + q)
    t.ok(r.status == 400 and err_code(r) == "invalid_request" and r.json()["error"]["message"],
         "audit with %s: 400 with a message" % what, r)
r = admin.get("/api/audit?workspaceId=ws_00000000000000000000")
t.ok(r.status == 404, "audit of a foreign workspace: 404", r)
r = anon.get("/api/audit?action=desktop.*")
t.ok(r.status == 401, "audit without credentials: 401", r)

t.done()
