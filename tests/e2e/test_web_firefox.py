"""Mission Control in Firefox: tests/browser/test_firefox.mjs drives
Debian's firefox-esr through puppeteer-core over WebDriver BiDi against a
bureaud with one running tiny-image desktop (templates off: the test's
second desktop is the only other VM). Login through the form, the fleet
following a second desktop to running and away live, the desktop view's
screen (noVNC), terminal and chat panels, the inbox, activity and settings
views, both colour schemes, no script errors and nothing requested outside
bureaud. Its TAP lines are relayed here; then the server's side is checked
through the API."""
import os

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--templates", "off"]).start()
admin = b.admin()
d = admin.post("/api/desktops", {"name": "firefox", "image": "tiny"}).json()
did = d["id"]
try:
    admin.wait_state(did, "running", timeout=180)
    up = True
except TimeoutError as e:
    up = t.ok(False, "the tiny desktop boots", str(e))

if not os.access("/usr/bin/firefox-esr", os.X_OK):
    t.ok(False, "firefox-esr is installed (scripts/deps.sh installs it)")
elif up:
    env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % b.port, BUREAU_DESKTOP=did,
               BUREAU_EMAIL="admin@localhost", BUREAU_PASSWORD=lib.Bureaud.PASSWORD)
    lib.browser_test(t, "test_firefox.mjs", env, prefix="firefox: ", timeout=300)

    # What the page did, as the API and the audit log see it (keyId null:
    # the browser's session, not the wrapper's API key).
    audit = admin.get("/api/audit?limit=500").json()["entries"]
    made = [e for e in audit if e["action"] == "desktop.create" and e["status"] == 201 and e["keyId"] is None]
    gone = [e for e in audit if e["action"] == "desktop.destroy" and e["keyId"] is None]
    second = (gone[0]["detail"] or {}).get("id") if len(gone) == 1 else None
    t.ok(len(made) == 1, "the page's session created one desktop", made)
    r = admin.get("/api/desktops/" + second) if second and second.startswith("dsk_") and second != did else None
    t.ok(r is not None and gone[0]["status"] in (202, 204)
         and (r.status == 404 or r.json().get("state") in ("destroying", "destroyed")),
         "and destroyed it (not the test's desktop): it is gone", [gone, r])
    consoles = set((e["detail"] or {}).get("console") for e in audit if e["action"] == "desktop.console.connect"
                   and e["status"] == 101 and did in e["target"] and e["keyId"] is None)
    t.ok(consoles == {"vnc", "terminal"}, "Firefox opened the desktop's screen and terminal through the bridges",
         sorted(consoles))
admin.delete("/api/desktops/" + did)
t.done()
