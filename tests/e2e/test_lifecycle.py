"""Desktop lifecycle on real QEMU guests (the tiny image): create to
running, a file that survives stop and start, restart, VMs that outlive a
killed bureaud, a killed QEMU turning its desktop to error, graceful
shutdown, destroy leaving nothing behind."""
import os
import re
import signal
import time

import lib

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
admin = b.admin()


def exec_(did, cmd, **kw):
    body = {"command": ["sh", "-c", cmd]}
    body.update(kw)
    return admin.post("/api/desktops/%s/exec" % did, body)


r = admin.post("/api/desktops", {"name": "life", "image": "tiny"})
t.ok(r.status == 201, "create a tiny desktop", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running" and d["readyMs"] and d["readyMs"] > 0,
     "it reaches running, with the time to ready recorded", d)
folder = os.path.join(b.state_dir, "desktops", did)
t.ok(os.path.exists(os.path.join(folder, "disk.qcow2")), "its disk is a file in the desktop folder")

r = exec_(did, "echo hello from $(hostname 2>/dev/null || echo guest)")
t.ok(r.status == 200 and r.json()["exitCode"] == 0 and "hello" in r.json()["stdout"], "exec runs in the guest", r)
r = exec_(did, "exit 3")
t.ok(r.status == 200 and r.json()["exitCode"] == 3, "exec reports the exit code", r)
r = admin.post("/api/desktops/%s/exec" % did, {"command": "ls"})
t.ok(r.status == 400, "exec with a string command: 400", r)
r = admin.post("/api/desktops/%s/exec" % did, {"command": ["true"], "user": "nobody"})
t.ok(r.status == 400, "exec as an unknown user: 400", r)
r = exec_(did, "mkdir -p /data/home/agent 2>/dev/null; echo persisted-$$ > /data/marker; sync; cat /data/marker", user="root")
marker = r.json().get("stdout", "").strip() if r.status == 200 else None
t.ok(marker and marker.startswith("persisted-"), "a file written in the guest", r)

r = admin.get("/api/desktops/%s/screenshot" % did)
t.ok(r.status == 200 and r.body[:8] == b"\x89PNG\r\n\x1a\n" and r.header("Content-Type") == "image/png",
     "screenshot is a PNG", r.status)

# stop and start keep the disk
r = admin.post("/api/desktops/%s/stop" % did)
t.ok(r.status == 202, "stop accepted", r)
d = admin.wait_state(did, ["stopped", "error"], timeout=90)
t.ok(d["state"] == "stopped", "the desktop stops", d)
t.ok(did not in b.qemu_pids(), "its QEMU is gone")
r = admin.post("/api/desktops/%s/start" % did)
t.ok(r.status == 202, "start accepted", r)
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "it runs again", d)
r = exec_(did, "cat /data/marker", user="root")
t.ok(r.status == 200 and r.json()["stdout"].strip() == marker, "the file survived stop and start", r)

# restart
pid_before = b.qemu_pids().get(did)
r = admin.post("/api/desktops/%s/restart" % did)
t.ok(r.status == 202, "restart accepted", r)
time.sleep(1)
d = admin.wait_state(did, ["running", "error"], timeout=180)
pid_after = b.qemu_pids().get(did)
t.ok(d["state"] == "running" and pid_after and pid_after != pid_before, "restart boots a new VM", (pid_before, pid_after, d))

# kill -9 of bureaud: the VM stays; a new bureaud finds it running without rebooting it
pid = b.qemu_pids()[did]
b.stop(signal.SIGKILL)
time.sleep(1)
t.ok(os.path.exists("/proc/%d" % pid), "kill -9 of bureaud leaves the VM running")
b.start()
time.sleep(2)
d = admin.get("/api/desktops/" + did).json()
t.ok(d["state"] == "running" and b.qemu_pids().get(did) == pid, "a new bureaud re-attaches, same pid", d)
r = exec_(did, "cat /data/marker", user="root")
t.ok(r.status == 200 and r.json()["stdout"].strip() == marker, "and talks to its agent", r)

# kill -9 of the QEMU: error with a reason, visible in the events
os.kill(pid, signal.SIGKILL)
d = admin.wait_state(did, ["error"], timeout=30)
t.ok(d["state"] == "error" and ("137" in (d["reason"] or "") or "signal 9" in (d["reason"] or "")),
     "a killed QEMU turns the desktop to error with the reason", d)
ev = lib.follow_events(b.port, admin.key, last_id=0, n=1000, timeout=5,
                       until=lambda e: e.get("state") == "error")
errors = [e for _, _, e in ev if e.get("state") == "error"]
t.ok(errors and errors[-1]["reason"], "the error and its reason are in the events", ev[-3:])
r = admin.post("/api/desktops/%s/start" % did)
t.ok(r.status == 202, "a desktop in error can be started again", r)
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "…and runs", d)


# QEMU crashing while the guest boots (SIGSEGV, as a QEMU bug would): one
# more boot, noted; a second crash in the same start, or a kill, is an error
def booting_vm(old_pid, timeout=60):
    """The pid of a new QEMU for the desktop while it is still booting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pid = b.qemu_pids().get(did)
        if pid and pid != old_pid:
            return pid, admin.get("/api/desktops/" + did).json()["state"]
        time.sleep(0.02)
    return None, None


def crash_during_boot(old_pid, sig, delay=0.0):
    """Signals the desktop's next QEMU while the desktop is booting: at once
    (before QMP answers) or after delay seconds (the guest under way)."""
    pid, state = booting_vm(old_pid)
    if pid and delay:
        time.sleep(delay)
        state = admin.get("/api/desktops/" + did).json()["state"]
    if pid and state == "booting":
        os.kill(pid, sig)
    return pid, state


pid = b.qemu_pids()[did]
admin.post("/api/desktops/%s/restart" % did)
crashed, state = crash_during_boot(pid, signal.SIGSEGV, delay=1.5)
t.ok(crashed and state == "booting", "a restart's new QEMU is found while booting", (crashed, state))
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running" and b.qemu_pids().get(did) not in (None, crashed) and
     "QEMU crashed" in (d.get("bootNote") or "") and "signal 11" in d["bootNote"],
     "QEMU killed by SIGSEGV while the guest boots: booted once more, and the boot note says why", d)
pid = b.qemu_pids()[did]
admin.post("/api/desktops/%s/restart" % did)
first, _ = crash_during_boot(pid, signal.SIGSEGV)
second, state = crash_during_boot(first, signal.SIGSEGV)
d = admin.wait_state(did, ["error"], timeout=60)
t.ok(first and second and d["state"] == "error" and
     re.search(r"status 139|signal 11", d["reason"] or "") is not None,
     "QEMU crashing before it answers, twice in the same start: error with the reason",
     (first, second, d))
admin.post("/api/desktops/%s/start" % did)
pid, state = crash_during_boot(first and second, signal.SIGKILL)
d = admin.wait_state(did, ["error"], timeout=60)
t.ok(pid and d["state"] == "error" and "signal 9" in (d["reason"] or ""),
     "a QEMU killed (SIGKILL) while booting is not booted again: error", d)
admin.post("/api/desktops/%s/start" % did)
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "a start after those errors runs again", d)

# a VM that died while bureaud was away is reported as error at the next start
pid = b.qemu_pids()[did]
b.stop(signal.SIGKILL)
os.kill(pid, signal.SIGKILL)
time.sleep(1)
b.start()
d = admin.wait_state(did, ["error", "running"], timeout=30)
t.ok(d["state"] == "error" and d["reason"], "a VM that died while bureaud was down: error with the reason", d)
admin.post("/api/desktops/%s/start" % did)
admin.wait_state(did, ["running", "error"], timeout=180)

# SIGTERM: graceful exit, VMs keep running
pid = b.qemu_pids().get(did)
code = b.stop(signal.SIGTERM)
t.ok(code == 0, "SIGTERM ends bureaud cleanly (exit 0)", b.log())
t.ok(pid and os.path.exists("/proc/%d" % pid), "…and the VM keeps running")
b.start()

# destroy leaves nothing
r = admin.delete("/api/desktops/" + did)
t.ok(r.status == 202 and r.json()["state"] == "destroying", "destroy accepted", r)
admin.wait_state(did, "destroyed", timeout=60)
t.ok(admin.get("/api/desktops/" + did).status == 404, "a destroyed desktop answers 404")
t.ok(not os.path.exists(folder), "destroy removed the desktop's folder")
t.ok(pid is None or not os.path.exists("/proc/%d" % pid), "and its VM")
t.done()
