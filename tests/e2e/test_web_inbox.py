"""Mission Control's approvals and alerts inboxes and the activity view in
a real browser: one tiny desktop whose pilot talks to the scripted model
server (tests/e2e/model_server.py) through bureaud's egress proxy; each
chat message makes the model ask for `sudo true; …`, which the policy
stops for approval. tests/browser/test_inbox.mjs (chromium through
playwright-core) then approves, denies with a note and meets a conflict
in the approvals inbox, watches a real memory alert arrive, edits the
alert rules and the webhook, acknowledges, and filters the audit log; its
TAP lines are relayed here. A second user's workspace has an alert of its
own that the admin's inbox must not show."""
import os
import time

import lib
from model_server import ModelServer

t = lib.Tap()
b = lib.Bureaud().start()
admin = b.admin()
ws = b.workspace()
model = ModelServer()
NAME = "inbox-agent"

# bob's workspace raises a refused-burst alert (no VM needed)
anon = lib.Client(b.port)
admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(b.port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"},
                                               headers={"Origin": "http://127.0.0.1:%d" % b.port})
bob = lib.Client(b.port, key=r.json()["key"])
bob_ws = bob.get("/api/workspaces").json()["workspaces"][0]["id"]
bob.request("PUT", "/api/workspaces/%s/alert-rules" % bob_ws,
            body={"refusedBurst": {"count": 3, "windowSeconds": 60}})
for i in range(4):
    bob.request("PUT", "/api/workspaces/%s/alert-rules" % bob_ws, body={"cpu": {"nope": i}})
t.ok(any(a["kind"] == "refusedBurst" for a in bob.get("/api/alerts?state=all").json()["alerts"]),
     "bob's workspace has an alert of its own")

r = admin.post("/api/desktops", {"name": NAME, "workspaceId": ws, "image": "tiny", "provider": "anthropic",
                                 "model": "test-model", "apiKey": "sk-test-inbox-0123", "baseUrl": model.url})
t.ok(r.status == 201, "a tiny desktop with a provider at the scripted model server", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=240)
up = t.ok(d["state"] == "running", "it runs", d)
end = time.time() + 60
while up and time.time() < end and admin.get("/api/desktops/" + did).json()["setup"]["state"] == "pending":
    time.sleep(0.5)
setup = admin.get("/api/desktops/" + did).json()["setup"]
up = up and t.ok(setup["state"] == "applied", "its provider is configured", setup)

# four chat messages, four sensitive commands, each then a plain answer
for _ in range(4):
    model.script({"tools": [{"name": "shell", "input": {"command": "sudo true; echo approved-$((40+2))"}}]},
                 {"text": "done"})

if up:
    env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % b.port, BUREAU_DESKTOP=did,
               BUREAU_DESKTOP_NAME=NAME, BUREAU_WORKSPACE=ws, BUREAU_KEY=admin.key,
               BUREAU_EMAIL="admin@localhost", BUREAU_PASSWORD=lib.Bureaud.PASSWORD)
    lib.browser_test(t, "test_inbox.mjs", env, timeout=300)

admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
model.close()
t.done()
