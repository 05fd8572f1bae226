"""Instant desktops on the desktop image: a desktop created from the warm
template shows the XFCE desktop at once, under its own host name; a
Chromium window and a sleep started before a hibernate stop are there
after start, with the same PIDs, and the screen is drawn again."""
import os
import time

import lib
import png

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
admin = b.admin()


def exec_(did, cmd, user="root", timeout_ms=60000):
    r = admin.post("/api/desktops/%s/exec" % did,
                   {"command": ["sh", "-c", cmd], "user": user, "timeoutMs": timeout_ms}, timeout=120)
    return r.json().get("stdout", "").strip() if r.status == 200 else None


def screen_ok(did, name):
    r = admin.get("/api/desktops/%s/screenshot" % did)
    if r.status != 200:
        return t.ok(False, name, r)
    w, h, colours, top = png.stats(r.body)
    return t.ok(w >= 800 and colours >= 16 and top < 0.97,
                "%s: %dx%d, %d colours, top colour %.0f%%" % (name, w, h, colours, top * 100))


r = admin.post("/api/templates", {"image": "desktop"})
t.ok(r.status == 202, "the desktop image's template build starts", r)
tpl, t0 = None, time.time()
while time.time() - t0 < 900:
    tpl = [x for x in admin.get("/api/templates").json()["templates"] if x["image"] == "desktop"]
    if tpl and tpl[0]["state"] in ("ready", "failed"):
        break
    time.sleep(2)
t.ok(tpl and tpl[0]["state"] == "ready", "it is ready once the desktop was drawn and saved", tpl)
print("# template build: %.0f s, memory %d MB" % (time.time() - t0, (tpl[0].get("memoryBytes") or 0) >> 20))

t0 = time.time()
r = admin.post("/api/desktops", {"name": "xfce-warm", "timezone": "Europe/Paris", "password": "s3cret-pw"})
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=300)
print("# create→running from the template: %.1f s" % (time.time() - t0))
t.ok(d["state"] == "running" and d["bootPath"] == "template", "a desktop created from the template runs", d)
t.ok(d["setup"]["state"] == "applied", "its first-boot configuration is applied", d["setup"])
screen_ok(did, "it shows the XFCE desktop")
t.eq(exec_(did, "hostname"), "xfce-warm", "under its own host name")
t.eq(exec_(did, "readlink /etc/localtime"), "/usr/share/zoneinfo/Europe/Paris", "in its time zone")

chromium = ("su agent -c 'DISPLAY=:0 chromium --no-sandbox --no-first-run --user-data-dir=/tmp/chr "
            "--disable-gpu about:blank >/dev/null 2>&1 &'")
exec_(did, chromium)
win = None
deadline = time.time() + 240
while time.time() < deadline and not win:
    win = exec_(did, "DISPLAY=:0 xdotool search --onlyvisible --class chromium | head -n1", user="agent")
    time.sleep(3)
t.ok(win, "a Chromium window opens on the renamed host's display", win)
cpid = exec_(did, "pgrep -o -x chromium")
spid = exec_(did, "setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $!")
t.ok(cpid and spid, "chromium and sleep PIDs", (cpid, spid))

t0 = time.time()
r = admin.post("/api/desktops/%s/stop" % did)
d = admin.wait_state(did, ["stopped", "error"], timeout=300)
print("# hibernate stop: %.1f s, memory %d MB" % (time.time() - t0, ((d.get("saved") or {}).get("memoryBytes") or 0) >> 20))
t.ok(d["state"] == "stopped" and d["saved"], "hibernate stop saves the desktop", d)
t0 = time.time()
admin.post("/api/desktops/%s/start" % did)
d = admin.wait_state(did, ["running", "error"], timeout=300)
print("# start→running from hibernation: %.1f s" % (time.time() - t0))
t.ok(d["state"] == "running" and d["bootPath"] == "hibernation", "start resumes it", d)
t.eq(exec_(did, "pgrep -o -x chromium"), cpid, "Chromium runs on with the same PID")
t.eq(exec_(did, "cat /proc/%s/cmdline | tr '\\0' ' '" % spid), "sleep 100000", "so does the sleep")
t.ok(exec_(did, "DISPLAY=:0 xdotool search --onlyvisible --class chromium | head -n1", user="agent"),
     "its window is still on the screen")
screen_ok(did, "the screen is drawn after the resume")
admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
t.ok(not os.path.exists(os.path.join(b.state_dir, "desktops", did)), "destroy removes it")
t.done()
