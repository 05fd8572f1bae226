"""The desktop image end to end: create a desktop from it, wait until its
agent reports the graphical session drawn, and check that the screenshot
shows a desktop (many colours), not a black or blank frame."""
import os

import lib
import png

t = lib.Tap()
# Templates off: no second desktop VM (the template build) beside this one.
b = lib.Bureaud(extra_args=["--accel", "tcg", "--templates", "off"]).start()
admin = b.admin()

r = admin.post("/api/desktops", {"name": "xfce"})
t.ok(r.status == 201 and r.json()["image"] == "desktop", "create a desktop from the desktop image", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=400)
t.ok(d["state"] == "running", "it reaches running once the desktop is drawn", d)
r = admin.get("/api/desktops/%s/screenshot" % did)
t.ok(r.status == 200 and r.body[:4] == b"\x89PNG", "a PNG screenshot", r.status)
if r.status == 200:
    with open(os.path.join(lib.BUILD, "test-logs", "desktop-screenshot.png"), "wb") as f:
        f.write(r.body)
    w, h, colours, top = png.stats(r.body)
    t.ok(w >= 800 and h >= 600, "the screen is at least 800x600 (%dx%d)" % (w, h))
    t.ok(colours >= 16 and top < 0.97, "the screenshot is not blank: %d colours, top colour %.0f%%" % (colours, top * 100))
r = admin.post("/api/desktops/%s/exec" % did, {"command": ["sh", "-c", "id -un; for p in chromium xdotool git python3 node; do command -v $p; done"]})
out = r.json().get("stdout", "") if r.status == 200 else ""
t.ok(r.status == 200 and out.startswith("agent") and all(x in out for x in ("chromium", "xdotool", "git", "python3", "node")),
     "exec runs as the agent user; the image has chromium, xdotool, git, python3, node", r)
r = admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
t.ok(not os.path.exists(os.path.join(b.state_dir, "desktops", did)), "destroy removes it")
t.done()
