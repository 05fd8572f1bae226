"""Mission Control's fleet view and settings in a real browser:
tests/browser/test_fleet.mjs (chromium through playwright-core) drives a
bureaud with a plan limit of 2 and tiny-image desktops (two VMs, plus the
warm template's short build): create through the form and follow it live,
thumbnails and sparklines, bulk stop/start/destroy with per-desktop
failures, an API key made in Settings that the CLI uses until it is
revoked in the UI, workspaces, members, and no Users section for a user
who is not an administrator. Its TAP lines are relayed here; then the
server's side of what the UI did is checked through the API."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from model_server import ModelServer  # noqa: E402

USER_EMAIL = "operator@example.org"
USER_PASSWORD = "operator password 1"
MODEL_KEY = "sk-fleet-form-key-0123"


def slow_answer(req):
    """The agent's one answer, after a while: the fleet must show it working."""
    time.sleep(6)
    return {"text": "All 12 tests passed."}


t = lib.Tap()
model = ModelServer()
model.script(slow_answer)
b = lib.Bureaud(extra_args=["--accel", "tcg", "--plan-limit", "2"]).start()
admin = b.admin()
r = admin.post("/api/users", {"email": USER_EMAIL, "password": USER_PASSWORD})
t.ok(r.status == 201, "a user who is not an administrator is created for the test", r)

env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % b.port, BUREAU_EMAIL="admin@localhost",
           BUREAU_PASSWORD=lib.Bureaud.PASSWORD, BUREAU_KEY=admin.key,
           BUREAU_CLI=os.path.join(lib.BUILD, "bureau"),
           BUREAU_USER_EMAIL=USER_EMAIL, BUREAU_USER_PASSWORD=USER_PASSWORD,
           BUREAU_MODEL_URL=model.url, BUREAU_MODEL_KEY=MODEL_KEY)
lib.browser_test(t, "test_fleet.mjs", env)

# What the UI did, as the API and the model server see it.
reqs = list(model.requests)
t.ok(reqs and reqs[0]["path"].endswith("/v1/messages") and reqs[0]["headers"].get("x-api-key") == MODEL_KEY
     and (reqs[0]["body"] or {}).get("model") == "test-model",
     "the provider, model, key and base URL given in the create form reached the desktop's agent",
     [(r["path"], sorted(r["headers"])) for r in reqs])
keys = admin.get("/api/api-keys").json()["apiKeys"]
made = [k for k in keys if k["name"] == "fleet-cli" and not k["revokedAt"]]
t.ok(not made, "the key made in Settings is not active any more", keys)
audit = admin.get("/api/audit?limit=500").json()["entries"]
acts = set((e["action"], e["status"]) for e in audit)
t.ok(("apikey.create", 201) in acts and ("apikey.revoke", 204) in acts,
     "the audit log has the UI's key creation and revocation", sorted(acts))
wss = admin.get("/api/workspaces").json()["workspaces"]
t.ok(any(w["name"] == "team-b" and w["role"] == "owner" for w in wss),
     "the workspace made in Settings belongs to the admin", wss)
members = admin.get("/api/workspaces/%s/members" % b.workspace()).json()["members"]
t.ok(any(m["email"] == USER_EMAIL and m["role"] == "member" for m in members),
     "the member added in Settings is in the workspace", members)
left = [d for d in admin.get("/api/desktops").json()["desktops"] if d["state"] != "destroyed"]
for d in left:
    admin.delete("/api/desktops/" + d["id"])
t.ok(not left, "the desktops destroyed in the UI are gone", left)
t.ok(any(e["action"] == "desktop.bulk" for e in audit), "the bulk actions went through POST /api/desktops/bulk",
     [e["action"] for e in audit][:30])
t.done()
