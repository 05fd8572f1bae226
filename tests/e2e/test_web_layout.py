"""Mission Control from the keyboard, at laptop and large-monitor sizes, and
a desktop's lifecycle from its desktop view, in a real browser:
tests/browser/test_layout.mjs (chromium through playwright-core) creates a
tiny-image desktop with the keyboard alone (skip link, navigation, the
create dialog, a row's link, the desktop view's tabs, a way out of the
terminal and of the screen in control), checks every view at 1280x800,
1920x1080, 2560x1440 and 900x700 for sideways overflow, hidden or
overlapping heading and navigation and controls cut off at the right, then
stops it (shut down), starts, restarts and destroys it from the desktop
view. One VM (and the warm template's short build). Its TAP lines are
relayed here; then the server's side of what the UI did is checked through
the API and the audit log."""
import os

import lib

NAME = "kb-one"

t = lib.Tap()
b = lib.Bureaud().start()
admin = b.admin()

env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % b.port, BUREAU_EMAIL="admin@localhost",
           BUREAU_PASSWORD=lib.Bureaud.PASSWORD)
lib.browser_test(t, "test_layout.mjs", env)

# What the UI did, as the server saw it (the audit log: a destroyed desktop
# is no longer listed).
audit = admin.get("/api/audit?limit=500&action=desktop.*").json()["entries"]
created = [e for e in audit if e["action"] == "desktop.create" and e["status"] == 201
           and (e.get("detail") or {}).get("name") == NAME]
t.ok(len(created) == 1 and not created[0].get("keyId"),
     "one desktop %s was created (201), from the browser's session, not with an API key" % NAME, created)
did = created[0]["detail"]["desktopId"] if created else None
mine = sorted((e for e in audit if did and (e.get("detail") or {}).get("id") == did), key=lambda e: e["id"])
done = [(e["action"], (e.get("detail") or {}).get("mode")) for e in mine
        if e["action"] in ("desktop.stop", "desktop.start", "desktop.restart", "desktop.destroy") and e["status"] == 202]
t.ok(done == [("desktop.stop", "shutdown"), ("desktop.start", None), ("desktop.restart", None),
              ("desktop.destroy", None)],
     "then, accepted (202) in this order: stop with mode shutdown, start, restart, destroy",
     [(e["action"], e["status"], e.get("detail")) for e in mine])
r = admin.get("/api/desktops/%s" % did) if did else None
t.ok(r is not None and r.status == 404, "the desktop is gone (404)", r)
left = [d for d in admin.get("/api/desktops").json()["desktops"] if d["state"] != "destroyed"]
for d in left:
    admin.delete("/api/desktops/" + d["id"])
t.ok(not left, "no desktop is left", left)
t.ok(not b.qemu_pids(), "no desktop's VM is left running", b.qemu_pids())
t.done()
