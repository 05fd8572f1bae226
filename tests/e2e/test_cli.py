#!/usr/bin/env python3
"""The bureau CLI against a real bureaud: tables and --json, keys, login,
a tiny desktop through create/stop/start/restart/rm with --wait, events,
and the exit codes scripts rely on (0, 1, 2, 3, 4)."""
import json
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


CLI = lib.cli_path()
t = lib.Tap()
home = tempfile.mkdtemp(prefix="bureau-cli-home-")
# one desktop per workspace: the second create must hit the plan limit
d = lib.Bureaud(extra_args=["--plan-limit", "1"]).start()
admin = d.admin()
endpoint = "http://127.0.0.1:%d" % d.port
created = []  # desktop ids to destroy at the end


def env_for(key=True, config=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUREAU_")}
    env["HOME"] = home
    env.pop("XDG_CONFIG_HOME", None)
    env["BUREAU_CONFIG"] = config or os.path.join(home, "no-config")
    env["BUREAU_ENDPOINT"] = endpoint
    if key:
        env["BUREAU_API_KEY"] = admin.key if key is True else key
    env.update(extra)
    return env


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "exit %d\nstdout: %s\nstderr: %s" % (self.rc, self.out[-1500:], self.err[-1500:])


def bureau(*args, env=None, stdin=None, timeout=600):
    p = subprocess.run([CLI] + list(args), capture_output=True, text=True, input=stdin,
                       env=env or env_for(), timeout=timeout)
    return Run(p)


class CutProxy:
    """A loopback TCP proxy to bureaud whose connections can be cut: cut()
    closes them all and refuses new ones until resume()."""

    def __init__(self, port):
        self.target = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.open = True
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            if not self.open:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def resume(self):
        self.open = True


# --- usage and help --------------------------------------------------------

r = bureau("--help")
t.ok(r.rc == 0 and "Exit codes" in r.out and "desktops create" in r.out,
     "--help prints commands and exit codes", r)
for args, what in ((["frobnicate"], "unknown command"),
                   (["desktops", "ls", "--bogus"], "unknown flag"),
                   (["desktops", "get"], "missing argument"),
                   (["desktops", "get", "a", "b"], "extra argument"),
                   (["desktops", "ls", "--tier", "pro"], "flag of another command"),
                   (["desktops"], "group without subcommand")):
    r = bureau(*args)
    t.ok(r.rc == 2 and r.err.strip() and not r.out, "exit 2 on a usage error: " + what, r)

# --- reaching the server ---------------------------------------------------

r = bureau("--endpoint", "http://127.0.0.1:%d" % lib.free_port(), "desktops", "ls")
t.ok(r.rc == 3 and "cannot reach" in r.err, "exit 3 when the endpoint is unreachable", r)
r = bureau("health")
t.ok(r.rc == 0 and "accel" in r.out, "health answers", r)
r = bureau("desktops", "ls", env=env_for(key=False))
t.ok(r.rc == 1 and "login" in r.err, "exit 1 without a key, with a hint to log in", r)
r = bureau("desktops", "ls", env=env_for(key="bk_not_a_real_key"))
t.ok(r.rc == 1 and "unauthorized" in r.err, "exit 1 and the API's code for a bad key", r)

# --- workspaces ------------------------------------------------------------

r = bureau("workspaces", "ls")
api_ws = admin.get("/api/workspaces").json()["workspaces"]
t.ok(r.rc == 0 and r.out.startswith("ID") and api_ws[0]["id"] in r.out and
     lib.header_aligned(r.out, "NAME"), "workspaces ls prints an aligned table", r)
r = bureau("workspaces", "ls", "--json")
t.ok(r.rc == 0 and r.json() == {"workspaces": api_ws}, "workspaces ls --json is the API's JSON", r)
r = bureau("workspaces", "create", "cli-ws", "--json")
t.ok(r.rc == 0 and r.json()["id"].startswith("ws_"), "workspaces create", r)
ws = r.json()["id"] if r.rc == 0 else d.workspace()
r = bureau("workspaces", "members", "cli-ws")
t.ok(r.rc == 0 and "admin@localhost" in r.out and "owner" in r.out,
     "workspaces members takes a name, lists the owner", r)

# --- keys ------------------------------------------------------------------

r = bureau("keys", "create", "cli-key", "--json")
key = r.json() if r.rc == 0 else {}
t.ok(r.rc == 0 and key.get("id", "").startswith("key_") and key.get("key"),
     "keys create --json returns the key once", r)
r = bureau("keys", "create", "cli-key-2")
t.ok(r.rc == 0 and r.out.strip() and "\n" not in r.out.strip() and "shown" in r.err,
     "keys create prints only the key on stdout, the note on stderr", r)
secret2 = r.out.strip()
r = bureau("workspaces", "ls", env=env_for(key=key.get("key")))
t.ok(r.rc == 0, "the new key works", r)
r = bureau("keys", "ls")
t.ok(r.rc == 0 and key.get("id", "?") in r.out and key.get("key", "?") not in r.out and
     secret2 not in r.out and lib.header_aligned(r.out, "NAME"),
     "keys ls lists the key, never a secret", r)
r = bureau("keys", "rm", key.get("id", "key_x"))
t.ok(r.rc == 0, "keys rm", r)
r = bureau("workspaces", "ls", env=env_for(key=key.get("key")))
t.ok(r.rc == 1, "a revoked key is refused (exit 1)", r)
r = bureau("keys", "rm", "key_doesnotexist")
t.ok(r.rc == 4, "keys rm of an unknown key exits 4", r)

# --- login -----------------------------------------------------------------

cfg = os.path.join(home, ".config", "bureau", "config")
r = bureau("login", "--email", "admin@localhost", "--password", lib.Bureaud.PASSWORD,
           env=env_for(key=False, config=cfg))
text = open(cfg).read() if os.path.exists(cfg) else ""
m = re.search(r"^key = (\S+)$", text, re.M)
t.ok(r.rc == 0 and m and ("endpoint = " + endpoint) in text, "login writes endpoint and key", r)
t.ok(os.path.exists(cfg) and stat.S_IMODE(os.stat(cfg).st_mode) == 0o600,
     "the config file is mode 0600")
t.ok(m is not None and m.group(1) not in r.out + r.err, "login does not print the key", r)
r = bureau("keys", "ls", env=env_for(key=False, config=cfg, BUREAU_ENDPOINT=""))
t.ok(r.rc == 0 and os.uname().nodename in r.out,
     "the config file alone is enough; the key is named after the host", r)
r = bureau("login", "--email", "admin@localhost", "--show-key", stdin=lib.Bureaud.PASSWORD + "\n",
           env=env_for(key=False, config=cfg))
t.ok(r.rc == 0 and r.out.strip().startswith("bk_"),
     "login reads the password from stdin; --show-key prints the key", r)
r = bureau("login", "--email", "admin@localhost", "--password", "wrong",
           env=env_for(key=False, config=cfg))
t.ok(r.rc == 1, "login with a wrong password exits 1", r)

# --- desktops and events ---------------------------------------------------

events = subprocess.Popen([CLI, "events", "--json", "--workspace", ws], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env_for())
human = subprocess.Popen([CLI, "events", "--workspace", "cli-ws"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env_for())
proxy = CutProxy(d.port)
resumed = subprocess.Popen([CLI, "events", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=env_for(BUREAU_ENDPOINT="http://127.0.0.1:%d" % proxy.port))
lines = {"json": queue.Queue(), "human": queue.Queue(), "resumed": queue.Queue()}


def pump(proc, q):
    for line in proc.stdout:
        q.put(line)


for proc, q in ((events, lines["json"]), (human, lines["human"]),
                (resumed, lines["resumed"])):
    threading.Thread(target=pump, args=(proc, q), daemon=True).start()
time.sleep(0.5)

try:
    r = bureau("desktops", "create", "cli-1", "--image", "tiny", "--workspace", ws, "--wait",
               "--json")
    dsk = r.json() if r.rc == 0 else {}
    if dsk.get("id"):
        created.append(dsk["id"])
    t.ok(r.rc == 0 and dsk.get("state") == "running" and dsk.get("image") == "tiny",
         "desktops create --image tiny --wait returns it running", r)
    dsk_id = dsk.get("id", "dsk_missing")

    r = bureau("desktops", "ls", "--workspace", ws)
    row = [l for l in r.out.splitlines() if dsk_id in l]
    t.ok(r.rc == 0 and row and "running" in row[0] and "cli-1" in row[0] and
         lib.header_aligned(r.out, "STATE"), "desktops ls shows it running in an aligned table", r)
    r = bureau("desktops", "ls", "--json")
    t.ok(r.rc == 0 and dsk_id in [x["id"] for x in r.json()["desktops"]],
         "desktops ls --json lists it", r)
    r = bureau("desktops", "get", "cli-1", "--workspace", ws)
    t.ok(r.rc == 0 and dsk_id in r.out and "running" in r.out, "desktops get by name", r)

    r = bureau("desktops", "create", "cli-2", "--image", "tiny", "--workspace", ws)
    t.ok(r.rc == 1 and "plan_limit" in r.err, "exit 1 with the API's code on the plan limit", r)
    leftover = [x["id"] for x in admin.get("/api/desktops").json()["desktops"]
                if x["name"] == "cli-2"]
    created.extend(leftover)

    r = bureau("desktops", "stop", dsk_id, "--wait", "--json")
    t.ok(r.rc == 0 and r.json().get("state") == "stopped", "desktops stop --wait", r)
    r = bureau("desktops", "stop", dsk_id)
    t.ok(r.rc == 1 and "conflict" in r.err, "stopping a stopped desktop exits 1 (conflict)", r)
    r = bureau("desktops", "start", dsk_id, "--wait", "--json")
    t.ok(r.rc == 0 and r.json().get("state") == "running", "desktops start --wait", r)
    # several desktops at once go through POST /api/desktops/bulk
    r = bureau("desktops", "stop", dsk_id, "dsk_doesnotexist", "--wait", "--json")
    res = r.json().get("results", []) if r.out.startswith("{") else []
    t.ok(r.rc == 4 and [(e["id"], e["status"]) for e in res] == [(dsk_id, 202), ("dsk_doesnotexist", 404)]
         and res[0]["desktop"]["state"] == "stopped" and res[1]["error"]["code"] == "not_found",
         "desktops stop A B --wait --json: one bulk request, waits for A, exit 4 for the unknown B", r)
    r = bureau("desktops", "start", "cli-1", "dsk_doesnotexist", "--workspace", ws, "--wait")
    row = [l for l in r.out.splitlines() if dsk_id in l]
    miss = [l for l in r.out.splitlines() if "dsk_doesnotexist" in l]
    t.ok(r.rc == 4 and row and "202" in row[0] and "running" in row[0] and miss and
         "404" in miss[0] and "desktop not found" in miss[0] and lib.header_aligned(r.out, "STATE"),
         "desktops start NAME B --wait: a table row per desktop", r)
    t.eq(admin.get("/api/desktops/" + dsk_id).json().get("state"), "running",
         "…and the desktop runs again")
    r = bureau("desktops", "restart", dsk_id, "cli-1", "--workspace", ws)
    t.ok(r.rc == 1 and "repeats" in r.err, "the same desktop twice (id and name): exit 1", r)
    r = bureau("desktops", "stop", dsk_id, "no-such-name")
    t.ok(r.rc == 4 and "no-such-name" in r.err and
         admin.get("/api/desktops/" + dsk_id).json().get("desiredState") == "running",
         "an unknown name: exit 4 before anything is stopped", r)
    before = admin.get("/api/desktops/" + dsk_id).json().get("stateChangedAt")
    r = bureau("desktops", "restart", dsk_id, "--wait", "--json")
    t.ok(r.rc == 0 and r.json().get("state") == "running" and
         r.json().get("stateChangedAt") != before,
         "desktops restart --wait returns once it runs again", r)

    png = os.path.join(home, "screen.png")
    r = bureau("screenshot", dsk_id, png)
    t.ok(r.rc == 0 and os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n",
         "screenshot saves a PNG", r)

    r = bureau("usage", "--workspace", ws)
    t.ok(r.rc == 0 and "Total" in r.out and "TIER" in r.out, "usage prints a report", r)
    r = bureau("usage", "--workspace", ws, "--json", "--from", "2020-01-01")
    t.ok(r.rc == 0 and r.json().get("workspaceId") == ws and "totalCost" in r.json(),
         "usage --json --from", r)
    r = bureau("usage", "--from", "yesterday")
    t.ok(r.rc == 2, "usage with a malformed date exits 2", r)

    r = bureau("desktops", "rm", dsk_id, "--wait")
    t.ok(r.rc == 0 and "destroyed" in r.out, "desktops rm --wait", r)
    r = bureau("desktops", "get", dsk_id)
    t.ok(r.rc == 4 and r.err.strip(), "exit 4 on a destroyed desktop", r)
    r = bureau("desktops", "get", "dsk_doesnotexist")
    t.ok(r.rc == 4 and "not_found" in r.err, "exit 4 on an unknown id", r)
    r = bureau("desktops", "start", "no-such-name")
    t.ok(r.rc == 4, "exit 4 on an unknown name", r)
    r = bureau("desktops", "get", "dsk_../../api/health")
    t.ok(r.rc in (1, 4) and "accel" not in r.out, "an id cannot escape its path segment", r)

    def collect(q, pred, timeout):
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = q.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                break
            got.append(line)
            if pred(line):
                return True, got
        return False, got

    def is_running_event(line):
        try:
            e = json.loads(line)
        except ValueError:
            return False
        return e.get("desktopId") == dsk_id and e.get("state") == "running"

    ok, got = collect(lines["json"], is_running_event, 30)
    t.ok(ok, "events --json prints the desktop's state change", "".join(got[-10:]) or
         events.stderr and "(no output)")
    ok, got = collect(lines["human"], lambda l: dsk_id in l and "running" in l, 30)
    t.ok(ok, "events prints one human line per state change", "".join(got[-10:]))

    # a dropped connection: events missed meanwhile come after the
    # reconnection (Last-Event-ID), each once
    ok, got = collect(lines["resumed"], is_running_event, 10)
    seen = [json.loads(l)["id"] for l in got if l.startswith("{")]
    proxy.cut()
    r = bureau("desktops", "create", "cli-gap", "--image", "tiny", "--workspace", "default",
               "--json")
    gap = r.json()["id"] if r.rc == 0 else "dsk_missing"
    created.append(gap)
    time.sleep(1.5)
    proxy.resume()
    ok2, got2 = collect(lines["resumed"], lambda l: gap in l, 40)
    ids = seen + [json.loads(l)["id"] for l in got2 if l.startswith("{")]
    t.ok(ok and ok2 and len(ids) == len(set(ids)),
         "events resumes after a dropped connection with the missed events, none twice",
         "before: %s\nafter: %s\n%r" % ("".join(got[-5:]), "".join(got2[-5:]), r))

    # bureaud restarts on the same port: events comes back by itself and
    # resumes after the last event it saw (Last-Event-ID), without repeats
    while not lines["json"].empty():
        lines["json"].get()
    d.stop(signal.SIGKILL)  # a crash; the VMs live on
    d2 = lib.Bureaud(state_dir=d.state_dir)
    d2.port = d.port
    d2.start()
    r = admin.post("/api/desktops", {"name": "cli-3", "workspaceId": ws, "image": "tiny"})
    dsk3 = r.json().get("id", "dsk_missing") if r.status == 201 else "dsk_missing"
    created.append(dsk3)
    ok, got = collect(lines["json"], lambda l: dsk3 in l, 40)
    ids = [json.loads(l)["desktopId"] for l in got if l.startswith("{")]
    t.ok(ok and dsk_id not in ids, "events reconnects after bureaud restarts, no replays",
         "".join(got[-10:]) or repr(r))
finally:
    for p in (events, human, resumed):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    admin.destroy_all(created)

t.done()
