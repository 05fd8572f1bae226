"""Mission Control's snapshots tab in a real browser, with one tiny desktop:
tests/browser/test_snapshots.mjs (chromium through playwright-core) opens
the tab by keyboard, takes a snapshot that turns ready live, meets the
server's 409s (a name taken; a restore while the desktop restarts),
restores with confirmation and follows the desktop until it runs again,
forks a new desktop that reaches running in the fleet, deletes with
confirmation, and looks at the tab 900 px wide in the dark theme; its TAP
lines are relayed here. This side checks through the API what the page
did: the restore really rolled the disk back, the fork came from the
snapshot, and the snapshot is gone."""
import os

import lib

t = lib.Tap()
b = lib.Bureaud().start()
admin = b.admin()
ws = b.workspace()
NAME = "snap-ui"

r = admin.post("/api/desktops", {"name": NAME, "workspaceId": ws, "image": "tiny"})
t.ok(r.status == 201, "a tiny desktop", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=240)
up = t.ok(d["state"] == "running", "it runs", d)

if up:
    env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % b.port, BUREAU_DESKTOP=did,
               BUREAU_DESKTOP_NAME=NAME, BUREAU_EMAIL="admin@localhost",
               BUREAU_PASSWORD=lib.Bureaud.PASSWORD)
    lib.browser_test(t, "test_snapshots.mjs", env, timeout=400)

    d = admin.get("/api/desktops/" + did).json()
    t.ok(d["state"] == "running" and d["bootPath"] == "snapshot",
         "the desktop runs, last booted from the snapshot the page restored", d)
    r = admin.post("/api/desktops/%s/exec" % did,
                   {"command": ["sh", "-c", "cat /data/ui-after 2>/dev/null || echo missing; cat /data/ui-before"],
                    "user": "root"})
    t.ok(r.status == 200 and r.json()["stdout"].split() == ["missing", "before"],
         "its disk is the snapshot's: the file written after it is gone, the one before is there", r)
    snaps = admin.get("/api/desktops/%s/snapshots" % did).json()["snapshots"]
    t.ok(snaps == [], "the page deleted the snapshot", snaps)
    forks = [x for x in admin.get("/api/desktops").json()["desktops"] if x["name"] == "ui-fork"]
    f = admin.wait_state(forks[0]["id"], ["running", "error"], timeout=120) if len(forks) == 1 else None
    t.ok(f and f["state"] == "running" and f["forkOf"] == {"snapshotId": f["forkOf"]["snapshotId"], "desktopId": did},
         "the fork the page made runs, a fork of this desktop's snapshot", forks)
    for f in forks:
        admin.delete("/api/desktops/" + f["id"])
    for f in forks:
        admin.wait_state(f["id"], "destroyed", timeout=120)

admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
t.done()
