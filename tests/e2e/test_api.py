"""The REST API against a real bureaud: authentication, scoping between
workspaces, bad input of every kind, the seeds' curl calls, events, audit,
usage. Desktops here use the tiny image and a plan limit of 2."""
import json
import os
import subprocess
import threading
import time

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg", "--plan-limit", "2"]).start()
port = b.port
anon = lib.Client(port)
origin = {"Origin": "http://127.0.0.1:%d" % port}


def err_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def curl(*args):
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}"] + list(args),
                         capture_output=True, text=True, timeout=60)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


# health and authentication
r = anon.get("/api/health")
t.ok(r.status == 200 and r.json()["status"] == "ok", "health answers without credentials")
r = anon.get("/api/desktops")
t.ok(r.status == 401 and err_code(r) == "unauthorized", "no credentials: 401 with a JSON error", r)
t.ok((r.header("WWW-Authenticate") or "").startswith("Bearer"), "401 names the Bearer scheme")
r = lib.Client(port, key="bk_not-a-real-key").get("/api/desktops")
t.ok(r.status == 401, "wrong key: 401", r)
r = anon.request("GET", "/api/desktops", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
t.ok(r.status == 401, "another auth scheme: 401", r)
r = anon.post("/api/auth/login", {"email": "admin@localhost", "password": "wrong password"})
t.ok(r.status == 401 and err_code(r) == "invalid_credentials", "wrong password: 401", r)
r = anon.post("/api/auth/login", {"email": "nobody@localhost", "password": "whatever1"})
t.ok(r.status == 401 and err_code(r) == "invalid_credentials", "unknown user: the same 401", r)
r = anon.post("/api/auth/login", {"email": "admin@localhost"})
t.ok(r.status == 400, "login without password: 400", r)
r = anon.post("/api/auth/login", {"email": "admin@localhost", "password": lib.Bureaud.PASSWORD})
cookie_hdr = r.header("Set-Cookie") or ""
t.ok(r.status == 200 and "HttpOnly" in cookie_hdr and "SameSite=Strict" in cookie_hdr,
     "login sets an HttpOnly SameSite session cookie", r)
cookie = cookie_hdr.split(";")[0]
browser = lib.Client(port, cookie=cookie)
r = browser.get("/api/auth/me")
t.ok(r.status == 200 and r.json()["user"]["email"] == "admin@localhost", "the cookie authenticates", r)
r = browser.post("/api/api-keys", {"name": "x"})
t.ok(r.status == 403 and err_code(r) == "csrf", "cookie write without Origin: 403", r)
r = browser.post("/api/api-keys", {"name": "x"}, headers={"Origin": "http://evil.example"})
t.ok(r.status == 403, "cookie write from a foreign Origin: 403", r)
r = browser.post("/api/api-keys", {"name": "seed-key"}, headers=origin)
t.ok(r.status == 201 and r.json()["key"].startswith("bk_"), "API key created, shown once", r)
key = r.json()["key"]
key_id = r.json()["id"]
admin = lib.Client(port, key=key)
r = admin.get("/api/api-keys")
listed = r.json()["apiKeys"]
t.ok(r.status == 200 and any(k["id"] == key_id for k in listed) and key not in r.body.decode(),
     "keys are listed without their secret")
state_db = os.path.join(b.state_dir, "bureau.db")
raw = open(state_db, "rb").read()
for ext in ("-wal",):
    if os.path.exists(state_db + ext):
        raw += open(state_db + ext, "rb").read()
t.ok(key.encode() not in raw and lib.Bureaud.PASSWORD.encode() not in raw,
     "neither the key nor the password is stored in clear")

ws = admin.get("/api/workspaces").json()["workspaces"]
t.ok(len(ws) == 1 and ws[0]["id"].startswith("ws_") and ws[0]["role"] == "owner",
     "first start made a default workspace", ws)
ws_id = ws[0]["id"]
r = admin.get("/api/tiers")
tiers = {x["id"]: x for x in r.json()["tiers"]}
t.ok(tiers["free"]["vcpus"] == 2 and tiers["pro"]["memoryMb"] == 8192 and tiers["max"]["diskGb"] == 80,
     "tiers are the seeds' caps", tiers)

# the seeds' curl calls, exactly as written (endpoint aside)
code, body = curl("-H", "Authorization: Bearer " + key, "http://127.0.0.1:%d/api/desktops" % port)
t.ok(code == 200 and json.loads(body)["desktops"] == [], "seed: list desktops", body)

before = len(admin.get("/api/audit?limit=500").json()["entries"])


def count_desktops():
    return len(admin.get("/api/desktops").json()["desktops"])


# bad input on create: right status, JSON error, nothing changed
bad = [
    ("malformed JSON", b"{\"name\": ", 400, "invalid_json"),
    ("not an object", b"[1,2]", 400, "invalid_json"),
    ("empty body", b"", 400, "invalid_json"),
    ("unknown field", b'{"name":"a","workspaceId":"%s","color":"red"}' % ws_id.encode(), 400, "unknown_field"),
    ("wrong type", b'{"name":42}', 400, "invalid_type"),
    ("name too long", json.dumps({"name": "a" * 64}).encode(), 400, "invalid_request"),
    ("name with a slash", b'{"name":"a/b"}', 400, "invalid_request"),
    ("name with dots", b'{"name":"../etc"}', 400, "invalid_request"),
    ("name with a NUL", b'{"name":"a\\u0000b"}', 400, None),
    ("unknown tier", b'{"name":"a","tier":"gold"}', 400, "invalid_request"),
    ("unknown image", b'{"name":"a","image":"windows"}', 400, "invalid_request"),
    ("another workspace", b'{"name":"a","workspaceId":"ws_00000000000000000000"}', 404, "not_found"),
    ("duplicate keys", b'{"name":"a","name":"b"}', 400, "invalid_json"),
]
for what, raw_body, status, code in bad:
    r = admin.request("POST", "/api/desktops", raw=raw_body, headers={"Content-Type": "application/json"})
    t.ok(r.status == status and (code is None or err_code(r) == code),
         "create with %s: %d %s" % (what, status, code or ""), r)
r = admin.request("POST", "/api/desktops", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                  headers={"Content-Type": "application/json"})
t.ok(r.status == 413, "oversize body: 413", r)
t.ok(count_desktops() == 0, "bad requests created nothing")

# a second user in a workspace of their own
r = admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
t.ok(r.status == 201 and r.json()["email"] == "bob@example.org", "admin creates a user", r)
r = admin.post("/api/users", {"email": "bob@example.org", "password": "another one"})
t.ok(r.status == 409, "same email twice: 409", r)
r = admin.post("/api/users", {"email": "carol@example.org", "password": "short"})
t.ok(r.status == 400, "too short a password: 400", r)
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers=origin)
bob = lib.Client(port, key=r.json()["key"])
r = bob.post("/api/users", {"email": "eve@example.org", "password": "eve's password"})
t.ok(r.status == 403 and err_code(r) == "forbidden", "a non-admin cannot create users", r)
bob_ws = bob.get("/api/workspaces").json()["workspaces"]
t.ok(len(bob_ws) == 1 and bob_ws[0]["id"] != ws_id, "bob has a workspace of his own", bob_ws)

# the seed's create call, exactly as written
code, body = curl("-X", "POST", "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
                  "-d", json.dumps({"name": "ci-agent", "workspaceId": ws_id}),
                  "http://127.0.0.1:%d/api/desktops" % port)
d = json.loads(body)
t.ok(code == 201 and d["id"].startswith("dsk_") and d["name"] == "ci-agent" and d["workspaceId"] == ws_id
     and d["tier"] == "free" and d["state"] == "provisioning" and d["desiredState"] == "running",
     "seed: create desktop", body)
# the desktop image may be a while; this file works with the tiny one
admin.delete("/api/desktops/" + d["id"])
r = admin.post("/api/desktops", {"name": "ci-agent", "workspaceId": ws_id, "image": "tiny"})
t.ok(r.status in (201, 409), "name reuse while the first is being destroyed", r)
lib.Client(port, key=key).wait_state(d["id"], "destroyed", timeout=120)
if r.status == 409:
    r = admin.post("/api/desktops", {"name": "ci-agent", "workspaceId": ws_id, "image": "tiny"})
t.ok(r.status == 201, "a destroyed desktop's name can be used again", r)
d1 = r.json()
r = admin.post("/api/desktops", {"name": "ci-agent", "workspaceId": ws_id, "image": "tiny"})
t.ok(r.status == 409 and err_code(r) == "conflict", "duplicate name in a workspace: 409", r)
r = admin.post("/api/desktops", {"name": "second", "image": "tiny", "tier": "pro"})
t.ok(r.status == 201 and r.json()["vcpus"] == 4 and r.json()["memoryMb"] == 8192,
     "workspaceId may be left out with one workspace; tier caps applied", r)
d2 = r.json()
r = admin.post("/api/desktops", {"name": "third", "image": "tiny"})
t.ok(r.status == 422 and err_code(r) == "plan_limit", "more desktops than the plan allows: 422", r)
t.ok(count_desktops() == 2, "the refused create changed nothing")

# scoping: bob sees nothing of the admin's workspace
for method, path in [("GET", "/api/desktops/" + d1["id"]), ("POST", "/api/desktops/%s/stop" % d1["id"]),
                     ("POST", "/api/desktops/%s/start" % d1["id"]), ("DELETE", "/api/desktops/" + d1["id"]),
                     ("GET", "/api/desktops/%s/screenshot" % d1["id"]), ("GET", "/api/workspaces/" + ws_id),
                     ("GET", "/api/desktops?workspaceId=" + ws_id), ("DELETE", "/api/api-keys/" + key_id)]:
    r = bob.request(method, path)
    t.ok(r.status == 404, "another workspace's resource: %s %s → 404" % (method, path.split("/")[2]), r)
r = bob.post("/api/desktops", {"name": "intruder", "workspaceId": ws_id, "image": "tiny"})
t.ok(r.status == 404, "create in another workspace: 404", r)
t.ok(bob.get("/api/desktops").json()["desktops"] == [], "bob's list is empty")
r = admin.post("/api/workspaces/%s/members" % ws_id, {"email": "bob@example.org", "role": "member"})
t.ok(r.status == 201, "admin adds bob to the workspace", r)
t.ok(bob.get("/api/desktops/" + d1["id"]).status == 200, "a member sees the workspace's desktops")
r = bob.post("/api/workspaces/%s/members" % ws_id, {"email": "admin@localhost"})
t.ok(r.status == 403 or r.status == 409, "a plain member cannot add members", r)

# lifecycle conflicts
lib.Client(port, key=key).wait_state(d1["id"], "running", timeout=120)
r = admin.post("/api/desktops/%s/start" % d1["id"])
t.ok(r.status == 409 and err_code(r) == "conflict", "start of a running desktop: 409", r)
r = admin.post("/api/desktops/%s/stop" % d1["id"], raw=b"{\"force\":", headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "stop with a malformed body: 400", r)
t.ok(admin.get("/api/desktops/" + d1["id"]).json()["desiredState"] == "running", "…and changed nothing")
r = admin.post("/api/desktops/%s/stop" % d1["id"])
t.ok(r.status == 202 and r.json()["desiredState"] == "stopped", "stop: 202", r)
r = admin.post("/api/desktops/%s/stop" % d1["id"])
t.ok(r.status == 409, "stop of a stopping/stopped desktop: 409", r)
admin.wait_state(d1["id"], "stopped", timeout=90)
r = admin.post("/api/desktops/%s/restart" % d1["id"])
t.ok(r.status == 409, "restart of a stopped desktop: 409", r)
r = admin.get("/api/desktops/%s/screenshot" % d1["id"])
t.ok(r.status == 409, "screenshot of a stopped desktop: 409", r)
r = admin.post("/api/desktops/%s/bogus" % d1["id"])
t.ok(r.status == 404 and err_code(r) == "no_route", "unknown endpoint: 404 no_route", r)
r = admin.request("PUT", "/api/desktops")
t.ok(r.status == 405 and "GET" in (r.header("Allow") or ""), "wrong method: 405 with Allow", r)

# events: a live stream, then a resume from an id
events = []


def follow(last_id=None, n=1, timeout=20, until=None):
    return lib.follow_events(port, key, last_id=last_id, n=n, timeout=timeout, until=until)


# Other desktops may still be booting: wait for the started desktop's own
# transition among whatever else streams by.
holder = {}
th = threading.Thread(target=lambda: holder.update(
    ev=follow(n=1000, timeout=30, until=lambda e: e["desktopId"] == d1["id"] and e["type"] == "desktop.state")))
th.start()
time.sleep(1)
admin.post("/api/desktops/%s/start" % d1["id"])
th.join()
live = [e for e in holder.get("ev", []) if e[2]["desktopId"] == d1["id"]]
t.ok(len(live) >= 1 and live[-1][1] == "desktop.state", "events stream live transitions", holder.get("ev"))
if live:
    first = live[0][0]
    replay = follow(last_id=first - 1, n=1, timeout=5)
    t.ok(replay and replay[0][0] == first, "Last-Event-ID resumes right after the id given", replay)
r = anon.get("/api/events")
t.ok(r.status == 401, "events need credentials", r)
r = admin.get("/api/events", headers={"Last-Event-ID": "abc"})
t.ok(r.status == 400, "a malformed Last-Event-ID: 400", r)

# audit and usage
entries = admin.get("/api/audit?limit=500").json()["entries"]
actions = {e["action"] for e in entries}
t.ok(len(entries) > before and {"desktop.create", "desktop.stop", "apikey.create"} <= actions,
     "requests and management actions are in the audit log", sorted(actions))
t.ok(not any(key in json.dumps(e) for e in entries), "the audit log holds no key")
r = admin.get("/api/audit?limit=0")
t.ok(r.status == 400, "audit limit out of range: 400", r)
admin.wait_state(d1["id"], "running", timeout=120)
time.sleep(1)
r = admin.get("/api/usage?workspaceId=" + ws_id)
u = r.json()
t.ok(r.status == 200 and any(x["desktopId"] == d1["id"] and x["hours"] > 0 for x in u["desktops"])
     and u["currency"] == "EUR" and "totalCost" in u, "usage counts running hours per desktop", u)
r = admin.get("/api/usage?from=yesterday")
t.ok(r.status == 400, "usage with a malformed date: 400", r)
r = bob.get("/api/usage?workspaceId=ws_00000000000000000000")
t.ok(r.status == 404, "usage of a foreign workspace: 404", r)

# revoking a key
r = admin.delete("/api/api-keys/" + key_id)
t.ok(r.status == 204, "key revoked: 204", r)
t.ok(admin.get("/api/desktops").status == 401, "a revoked key no longer works")
r = browser.delete("/api/api-keys/" + key_id, headers=origin)
t.ok(r.status == 404, "revoking twice: 404", r)

t.done()
