"""The image sweep (--image-gc): golden image versions and warm templates
that nothing uses any more are removed, shortly after startup and then
hourly; a version a desktop uses, the current one and a fresh one stay.
A private IMAGE_DIR (STATE/images, then a folder beside STATE) holds
copies of the tiny image as versions v1..v5; one tiny desktop runs on
v2. By default (auto) only an IMAGE_DIR inside STATE is swept."""
import atexit
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time

import lib

HOUR = 3600
FIRST_SWEEP_S = 10  # IMAGE_GC_FIRST_MS in src/core/image_gc.h

t = lib.Tap()
root = tempfile.mkdtemp(prefix="bureau-e2e-gc-")
atexit.register(shutil.rmtree, root, True)  # runs after the Bureaud's cleanup
state = os.path.join(root, "state")
images = os.path.join(state, "images")  # where bureaud keeps them by default
tiny = os.path.join(images, "tiny")
source = os.path.realpath(os.path.join(lib.IMAGES, "tiny", "current"))


def age(path, seconds):
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def make_version(v, seconds_old):
    """A copy of the built tiny image as tiny/<v>, its manifest saying so."""
    dst = os.path.join(tiny, v)
    subprocess.run(["cp", "-a", "--reflink=auto", source, dst], check=True)
    manifest = os.path.join(dst, "manifest.json")
    os.chmod(manifest, 0o644)
    with open(manifest) as f:
        m = json.load(f)
    m["version"] = v
    with open(manifest, "w") as f:
        json.dump(m, f, indent=2)
    os.chmod(manifest, 0o444)
    age(dst, seconds_old)


def point_current(v, seconds_old):
    link = os.path.join(tiny, "current")
    tmp = os.path.join(tiny, ".current.tmp")
    os.symlink(v, tmp)
    os.replace(tmp, link)
    age(link, seconds_old)


def backing(path):
    """The backing file name in a qcow2 header (None without one)."""
    with open(path, "rb") as f:
        h = f.read(20)
        off, size = struct.unpack(">QI", h[8:20])
        if h[:4] != b"QFI\xfb" or not off:
            return None
        f.seek(off)
        return f.read(size).decode()


def log_since(b, offset):
    try:
        with open(b.log_path, errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""


def log_size(b):
    try:
        return os.path.getsize(b.log_path)
    except OSError:
        return 0


def wait_log(b, offset, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in log_since(b, offset):
            return True
        time.sleep(0.5)
    return False


def first_sweep_passed(b, offset, started):
    """Waits past the first sweep's time (from started, when bureaud said
    the sweep is off); True when no sweep ran."""
    time.sleep(max(0, started + FIRST_SWEEP_S + 2 - time.time()))
    log = log_since(b, offset)
    return "image gc removed" not in log and "image gc: swept" not in log


def exists(*parts):
    return os.path.exists(os.path.join(tiny, *parts))


# The option itself: malformed, oversized and missing values stop bureaud
# before it touches anything.
binary = os.path.join(lib.BUILD, "bureaud")
for args, want, name in [
        (["--image-gc", "maybe"], "image-gc must be auto, on or off", "an unknown value"),
        (["--image-gc", "o" * 200], "image-gc: value too long", "an oversized value"),
        (["--image-gc"], "--image-gc needs a value", "no value"),
        (["--image-gc", "ON"], "image-gc must be auto, on or off", "on in capitals"),
        (["--image-gc", ""], "image-gc must be auto, on or off", "an empty value")]:
    out = subprocess.run([binary, "--state-dir", os.path.join(root, "unused")] + args,
                         capture_output=True, text=True, timeout=30)
    t.ok(out.returncode == 2 and want in out.stderr, "--image-gc: %s is refused (exit 2)" % name,
         (out.returncode, out.stderr))
t.ok(not os.path.exists(os.path.join(root, "unused")), "a refused option creates no state folder")
out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
t.ok("--image-gc" in out.stdout and "[auto]" in out.stdout.split("--image-gc", 1)[1].split("\n")[0],
     "--help lists --image-gc, auto by default", out.stdout[-2000:])

# IMAGE_DIR: v1, v2 and v3 an hour old, current -> v2; a warm template of
# v1 nobody is backed by.
os.makedirs(tiny)
for v in ("v1", "v2", "v3"):
    make_version(v, HOUR)
point_current("v2", HOUR)
tpl = os.path.join(state, "templates", "tiny", "v1", "1c-1024m-10g")
os.makedirs(tpl)
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                os.path.join(tiny, "v1", "disk.qcow2"), os.path.join(tpl, "disk.qcow2")], check=True)
with open(os.path.join(tpl, "saved.json"), "w") as f:
    f.write("{}")
age(tpl, HOUR)

common = ["--accel", "tcg", "--templates", "off", "--image-dir", images]


b = lib.Bureaud(state_dir=state, extra_args=common + ["--image-gc", "off"])
offset = log_size(b)
b.start()
admin = b.admin()
t.ok(wait_log(b, offset, "image gc: off", 10), "with --image-gc off bureaud says so", b.log())
started = time.time()  # the line comes when the first sweep's timer would start

r = admin.post("/api/desktops", {"name": "gc", "image": "tiny"})
t.ok(r.status == 201, "create a tiny desktop", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=240)
t.ok(d["state"] == "running", "it runs", d)
t.eq(d.get("imageVersion"), "v2", "it uses the current version, v2")
disk = os.path.join(state, "desktops", did, "disk.qcow2")
t.ok((backing(disk) or "").startswith(os.path.realpath(os.path.join(tiny, "v2")) + "/"),
     "its disk is an overlay on v2's disk", backing(disk))

t.ok(first_sweep_passed(b, offset, started) and exists("v1") and exists("v3") and os.path.isdir(tpl),
     "with --image-gc off nothing is removed after the first sweep's time", log_since(b, offset)[-1500:])
b.stop()

# current -> v3 and a fresh v4; the sweep on by default (IMAGE_DIR is
# inside STATE): v1 and its template go; v2 (the desktop's), v3 (current)
# and v4 (fresh) stay.
point_current("v3", HOUR)
make_version("v4", 0)
b.extra_args = common
offset = log_size(b)
b.start()
swept = wait_log(b, offset, "image gc: swept", 60)
log = log_since(b, offset)
t.ok(swept, "a sweep runs shortly after startup", log[-1500:])
t.ok(not exists("v1"), "v1, old and unused, is removed", os.listdir(tiny))
t.ok(not os.path.exists(tpl) and not os.path.exists(os.path.dirname(tpl)),
     "v1's warm template is removed", tpl)
t.ok(exists("v2", "disk.qcow2") and exists("v2", "vmlinuz") and exists("v2", "initrd.img"),
     "v2, which the desktop uses, stays whole")
t.ok(exists("v3", "disk.qcow2"), "v3, the current version, stays")
t.ok(exists("v4", "disk.qcow2"), "v4, younger than the grace period, stays")
t.ok(not [n for n in os.listdir(tiny) if n.startswith(".gc-")], "no half-removed folder is left",
     os.listdir(tiny))
t.ok("image gc removed tiny/v1 (" in log and " MB)" in log.split("image gc removed tiny/v1 (", 1)[-1][:20],
     "the log names the removed version and its size", log[-1500:])
t.ok("image gc removed template tiny/v1/1c-1024m-10g (" in log, "the log names the removed template",
     log[-1500:])
t.ok("image gc removed tiny/v2" not in log and "image gc removed tiny/v3" not in log
     and "image gc removed tiny/v4" not in log, "nothing else is logged as removed")

d = admin.get("/api/desktops/" + did).json()
t.ok(d["state"] == "running", "the desktop still runs", d)
r = admin.post("/api/desktops/%s/stop" % did)
d = admin.wait_state(did, ["stopped", "error"], timeout=120)
t.ok(r.status == 202 and d["state"] == "stopped", "it stops", d)
r = admin.post("/api/desktops/%s/start" % did)
d = admin.wait_state(did, ["running", "error"], timeout=240)
t.ok(r.status == 202 and d["state"] == "running", "and starts again from v2", d)

# The desktop is destroyed: at the next startup v2 goes too.
r = admin.delete("/api/desktops/" + did)
t.ok(r.status == 202, "destroy the desktop", r)
admin.wait_state(did, "destroyed", timeout=120)
b.stop()
offset = log_size(b)
b.start()
swept = wait_log(b, offset, "image gc: swept", 60)
log = log_since(b, offset)
t.ok(swept and not exists("v2"), "v2, no longer used, is removed", (os.listdir(tiny), log[-1500:]))
t.ok("image gc removed tiny/v2 (" in log, "and logged", log[-1500:])
t.ok(exists("v3", "disk.qcow2") and exists("v4", "disk.qcow2") and
     os.readlink(os.path.join(tiny, "current")) == "v3", "current and the fresh version stay",
     os.listdir(tiny))
b.stop()

# The images move beside STATE, with an old unused v5: by default such a
# folder, which other bureauds may use, is not swept; --image-gc on does.
outside = os.path.join(root, "images")
os.rename(images, outside)
tiny = os.path.join(outside, "tiny")
make_version("v5", HOUR)
b.extra_args = ["--accel", "tcg", "--templates", "off", "--image-dir", outside]
offset = log_size(b)
b.start()
t.ok(wait_log(b, offset, "image gc: off: %s is outside the state folder" % outside, 10),
     "an IMAGE_DIR outside STATE is not swept by default, and the log says why", log_since(b, offset)[-1500:])
started = time.time()
t.ok(first_sweep_passed(b, offset, started) and exists("v5"), "v5 stays there",
     log_since(b, offset)[-1500:])
b.stop()
b.extra_args += ["--image-gc", "on"]
offset = log_size(b)
b.start()
swept = wait_log(b, offset, "image gc: swept", 60)
log = log_since(b, offset)
t.ok(swept and not exists("v5") and "image gc removed tiny/v5 (" in log,
     "with --image-gc on it is: v5 goes", (os.listdir(tiny), log[-1500:]))
t.ok(exists("v3", "disk.qcow2") and exists("v4", "disk.qcow2"), "current and the fresh version stay",
     os.listdir(tiny))
b.stop()

t.done()
