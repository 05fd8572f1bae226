"""Helpers for end-to-end tests: start a real bureaud on loopback with a
temporary state folder, talk to its API, print TAP.

Each test file is a program: it prints TAP lines and exits non-zero when a
test failed. tests/run.sh runs them all and sums up.
"""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUREAU_BUILD", os.path.join(ROOT, "build"))
IMAGES = os.environ.get("BUREAU_IMAGES", os.path.join(ROOT, "var", "images"))


def cli_path():
    """The bureau CLI this build made (BUREAU_CLI overrides)."""
    for p in (os.environ.get("BUREAU_CLI"), os.path.join(BUILD, "bureau"),
              os.path.join(BUILD, "src", "cli", "bureau")):
        if p and os.access(p, os.X_OK):
            return p
    raise SystemExit("bureau CLI not found in " + BUILD)


# Set once a check fails or the test dies: the Bureauds it started then
# leave what they knew on stderr (tests/run.sh shows it) before cleanup.
FAILED = []


def _excepthook(kind, value, tb):
    FAILED.append(kind.__name__)
    sys.__excepthook__(kind, value, tb)


sys.excepthook = _excepthook


def _tail(path, n, keep=None, window=8 << 20):
    """The last n lines of a file (of its last `window` bytes) for which
    keep(line) is true."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - window))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return [l for l in lines if keep is None or keep(l)][-n:]


def _worth_showing(line):
    """Not a request line, unless the request failed (4xx, 5xx)."""
    return " http method=" not in line or re.search(r" status=[45]\d\d ", line) is not None


class Tap:
    """TAP output: ok(cond, name). done() prints the plan and exits."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond:
            self.failed += 1
            FAILED.append(name)
            if diag is not None:
                for line in str(diag).splitlines()[:40]:
                    print("#   " + line, flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got %r, want %r" % (got, want))

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def browser_test(t, name, env, prefix="browser: ", timeout=420):
    """Runs tests/browser/NAME under node with env and relays its TAP lines
    to t, each with the diagnostics printed under it; then one check that
    it ran to its end. Returns node's CompletedProcess, or None."""
    script = os.path.join(ROOT, "tests", "browser", name)
    try:
        out = subprocess.run(["node", script], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as e:
        t.ok(False, "the browser test %s ran" % name, str(e))
        return None
    lines = out.stdout.splitlines()
    ran = 0
    for i, line in enumerate(lines):
        if not (line.startswith("ok ") or line.startswith("not ok ")):
            continue
        ran += 1
        label = line.split(" - ", 1)[1] if " - " in line else line
        diag = []
        for x in lines[i + 1:i + 40]:
            if not x.startswith("#   "):
                break
            diag.append(x[4:])
        t.ok(line.startswith("ok "), prefix + label, "\n".join(diag) or out.stderr[-1500:])
    t.ok(ran > 0 and out.returncode == 0, "the browser test %s ran to its end (%d checks)" % (name, ran),
         out.stderr[-2000:] or out.stdout[-1500:])
    return out


def poll(fn, timeout, step=0.5):
    """fn() until it returns something true, or None at the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def header_aligned(out, column):
    """In a table the CLI printed, every row's cell of `column` starts where
    its header does."""
    lines = out.rstrip("\n").split("\n")
    col = lines[0].find(column)
    return col > 0 and all(len(l) > col and l[col] != " " and l[col - 1] == " "
                           and l[col - 2] == " " for l in lines[1:])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Client:
    """A tiny API client. auth: an API key (Bearer) or None."""

    def __init__(self, port, key=None, cookie=None):
        self.port = port
        self.key = key
        self.cookie = cookie

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if self.key and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.key
        if self.cookie and "Cookie" not in h:
            h["Cookie"] = self.cookie
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        out = Response(r.status, r.getheaders(), r.read())
        conn.close()
        return out

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def destroy_all(self, desktop_ids, timeout=60):
        """A test's teardown: destroys the desktops, then waits (at most
        timeout seconds each) for them to be gone."""
        for i in desktop_ids:
            self.delete("/api/desktops/" + i)
        for i in desktop_ids:
            try:
                self.wait_state(i, ["destroyed"], timeout=timeout)
            except TimeoutError:
                pass

    def wait_state(self, desktop_id, states, timeout=240):
        """Polls the desktop until its state is one of states."""
        if isinstance(states, str):
            states = [states]
        deadline = time.time() + timeout
        d = None
        while time.time() < deadline:
            r = self.get("/api/desktops/" + desktop_id)
            if r.status == 200:
                d = r.json()
                if d["state"] in states:
                    return d
            elif r.status == 404 and "destroyed" in states:
                return None
            time.sleep(0.3)
        raise TimeoutError("desktop %s not in %s after %ds: %r" % (desktop_id, states, timeout, d))


def follow_events(port, key, last_id=None, n=1, timeout=20, until=None):
    """Reads /api/events as a client would; returns [(id, type, data)]
    after n events, after an event for which until(data) is true, or at
    the timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    hdr = "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % key
    if last_id is not None:
        hdr += "Last-Event-ID: %d\r\n" % last_id
    s.sendall((hdr + "\r\n").encode())
    buf, got = b"", []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            fields = dict(l.split(": ", 1) for l in block.decode().split("\n")
                          if ": " in l and not l.startswith(":"))
            if "data" in fields:
                data = json.loads(fields["data"])
                got.append((int(fields["id"]), fields["event"], data))
                if until and until(data):
                    s.close()
                    return got
    s.close()
    return got


class Bureaud:
    """A bureaud process on a free loopback port with its own state folder."""

    PASSWORD = "correct horse battery staple"

    def __init__(self, state_dir=None, extra_args=(), env=None):
        self.port = free_port()
        self.own_state = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="bureau-e2e-")
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.log_path = os.path.join(self.state_dir, "bureaud.log")
        self.key = None

    def start(self, wait=True):
        env = dict(os.environ)
        env["BUREAU_ADMIN_PASSWORD"] = self.PASSWORD
        env.update(self.env or {})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "bureaud"), "--listen", "127.0.0.1:%d" % self.port,
             "--state-dir", self.state_dir, "--image-dir", IMAGES] + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT, env=env)
        atexit.register(self.cleanup)
        if wait:
            self.wait_up()
        return self

    def wait_up(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bureaud exited: " + self.log())
            try:
                r = Client(self.port).get("/api/health", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("bureaud did not come up: " + self.log())

    def refused(self, timeout=20):
        """For a bureaud started (wait=False) with settings it should refuse:
        its exit code (None if it kept running, then stopped) and its log."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        out = self.log()
        self.stop()
        return rc, out

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def admin(self):
        """A client authenticated with a fresh API key of the admin."""
        if self.key is None:
            c = Client(self.port)
            r = c.post("/api/auth/login", {"email": "admin@localhost", "password": self.PASSWORD})
            if r.status != 200:
                raise RuntimeError("login failed: %r" % r)
            cookie = r.header("Set-Cookie").split(";")[0]
            r = Client(self.port, cookie=cookie).post(
                "/api/api-keys", {"name": "e2e"}, headers={"Origin": "http://127.0.0.1:%d" % self.port})
            if r.status != 201:
                raise RuntimeError("key creation failed: %r" % r)
            self.key = r.json()["key"]
        return Client(self.port, key=self.key)

    def workspace(self):
        return self.admin().get("/api/workspaces").json()["workspaces"][0]["id"]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def qemu_pids(self):
        """Pids of QEMUs this bureaud's desktops run in (from their pid files)."""
        pids = {}
        root = os.path.join(self.state_dir, "desktops")
        if not os.path.isdir(root):
            return pids
        for d in os.listdir(root):
            try:
                with open(os.path.join(root, d, "qemu.pid")) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 0)
                pids[d] = pid
            except (OSError, ValueError):
                pass
        return pids

    def template_pids(self):
        """Pids of QEMUs building warm templates (STATE/templates/…/qemu.pid)."""
        pids = []
        root = os.path.join(self.state_dir, "templates")
        for dirpath, _, files in os.walk(root):
            if "qemu.pid" in files:
                try:
                    with open(os.path.join(dirpath, "qemu.pid")) as f:
                        pid = int(f.read().strip())
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        if b"tpl-" in f.read():
                            pids.append(pid)
                except (OSError, ValueError):
                    pass
        return pids

    def state_pids(self):
        """Pids of processes working inside the state folder: a QEMU (or its
        launcher) started just before bureaud was killed, whose pid file was
        not written yet."""
        pids = []
        root = os.path.realpath(self.state_dir) + "/"
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                cwd = os.readlink("/proc/%s/cwd" % name)
            except OSError:
                continue
            if (cwd + "/").startswith(root):
                pids.append(int(name))
        return pids

    def diagnose(self, out=sys.stderr):
        """What bureaud logged (requests left out) and each desktop's
        serial console and QEMU log, for a test that failed."""
        lines = _tail(self.log_path, 40, _worth_showing)
        print("--- bureaud on port %d: the last of its log, successful requests left out" % self.port,
              file=out)
        for line in lines:
            print(line, file=out)
        root = os.path.join(self.state_dir, "desktops")
        for d in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            for name in ("serial.log", "qemu.log"):
                tail = _tail(os.path.join(root, d, name), 8)
                if tail:
                    print("--- %s %s" % (d, name), file=out)
                    for line in tail:
                        print(line, file=out)
        out.flush()

    def cleanup(self):
        """Ends bureaud and every QEMU of its desktops (by pid), removes the state."""
        if FAILED and self.proc is not None and not getattr(self, "diagnosed", False):
            self.diagnosed = True
            self.diagnose()
        self.stop(signal.SIGKILL)
        for pid in list(self.qemu_pids().values()) + self.template_pids() + self.state_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.own_state and os.environ.get("BUREAU_KEEP_STATE") is None:
            time.sleep(0.2)
            shutil.rmtree(self.state_dir, ignore_errors=True)
