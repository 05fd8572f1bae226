#!/usr/bin/env python3
"""Exec and files through bureaud and the agent's channel streams, on the
tiny image: exit codes, stdin, timeouts, output limits, streamed exec, 50
concurrent commands, a 200 MB upload and download with equal checksums and
bureaud's memory bounded, the path rules, malformed and unauthorized
requests, bureaud killed during a transfer and an exec, garbage on the
agent's socket; then the agent user's permissions on the desktop image.
Prints TAP."""
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import IMAGES, Bureaud, Client, Tap  # noqa: E402

t = Tap()
BIG = 200 * 1024 * 1024
HOME = "/data/home/agent"


def err_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def q(path, **kw):
    kw["path"] = path
    return urllib.parse.urlencode(kw)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssWatch(threading.Thread):
    """Samples a process's VmRSS until stopped; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.05)


def exec_(c, dsk, cmd, timeout=120, **kw):
    body = {"command": cmd}
    body.update(kw)
    return c.post("/api/desktops/%s/exec" % dsk, body, timeout=timeout)


def exec_stream(port, key, dsk, cmd, stdin=None, timeout=120, **kw):
    """Returns (status, [lines]) of exec?stream=true."""
    body = {"command": cmd}
    body.update(kw)
    if stdin is not None:
        body["stdin"] = stdin
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/api/desktops/%s/exec?stream=true" % dsk, body=json.dumps(body),
                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.status != 200:
        return r.status, [json.loads(data)]
    return r.status, [json.loads(l) for l in data.decode().splitlines() if l]


def stream_text(lines, kind):
    return "".join(l.get("data", "") for l in lines if l["type"] == kind)


def upload(port, key, dsk, path, size, chunk=1 << 20, user=None, seed=b"x"):
    """PUTs size pseudo-random bytes generated on the fly; returns
    (status, json, sha256)."""
    h = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    qs = q(path, **({"user": user} if user else {}))
    conn.putrequest("PUT", "/api/desktops/%s/files?%s" % (dsk, qs))
    conn.putheader("Authorization", "Bearer " + key)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    block = hashlib.sha512(seed).digest() * (chunk // 64)
    sent = 0
    try:
        while sent < size:
            n = min(chunk, size - sent)
            piece = block[:n]
            # vary the content so a misplaced block changes the sum
            piece = struct.pack(">Q", sent) + piece[8:] if n >= 8 else piece
            h.update(piece)
            conn.send(piece)
            sent += n
    except OSError:
        pass
    r = conn.getresponse()
    body = r.read()
    conn.close()
    try:
        j = json.loads(body)
    except ValueError:
        j = None
    return r.status, j, h.hexdigest()


def download(port, key, dsk, path, user=None, slow=0):
    """GETs a file, hashing as it comes; returns (status, length header,
    bytes, sha256, error body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    qs = q(path, **({"user": user} if user else {}))
    conn.request("GET", "/api/desktops/%s/files?%s" % (dsk, qs),
                 headers={"Authorization": "Bearer " + key})
    r = conn.getresponse()
    if r.status != 200:
        body = r.read()
        conn.close()
        return r.status, None, 0, None, body
    h, n = hashlib.sha256(), 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        if slow:
            time.sleep(slow)
    conn.close()
    return 200, r.getheader("Content-Length"), n, h.hexdigest(), None


# ---- setup ----

b = Bureaud().start()
admin = b.admin()
ws = b.workspace()
r = admin.post("/api/desktops", {"name": "xf", "workspaceId": ws, "image": "tiny"})
t.ok(r.status == 201, "create a tiny desktop", r)
dsk = r.json()["id"]
d = admin.wait_state(dsk, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "the tiny desktop runs", d)
D = "/api/desktops/" + dsk

# another user with a workspace of their own, to check isolation
admin.post("/api/users", {"email": "mallory@example.org", "password": "mallory's password"})
mc = Client(b.port)
r = mc.post("/api/auth/login", {"email": "mallory@example.org", "password": "mallory's password"})
cookie = r.header("Set-Cookie").split(";")[0] if r.status == 200 else ""
r = Client(b.port, cookie=cookie).post(
    "/api/api-keys", {"name": "m"}, headers={"Origin": "http://127.0.0.1:%d" % b.port})
mallory = Client(b.port, key=r.json()["key"]) if r.status == 201 else None

# ---- one-shot exec ----

r = exec_(admin, dsk, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])
j = r.json()
t.ok(r.status == 200 and j["exitCode"] == 3 and j["stdout"] == "hi\n" and j["stderr"] == "oops\n",
     "exec answers exit code, stdout and stderr", r)
r = exec_(admin, dsk, ["cat"], stdin="from stdin\n")
t.ok(r.status == 200 and r.json()["stdout"] == "from stdin\n", "exec feeds stdin", r)
r = exec_(admin, dsk, ["sleep", "30"], timeoutMs=1000)
j = r.json()
t.ok(r.status == 200 and j["timedOut"] is True and j["exitCode"] is None,
     "exec kills a command at its timeout and says so", r)
r = exec_(admin, dsk, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a"])
j = r.json()
t.ok(r.status == 200 and j["truncated"] is True and j["outputLimitBytes"] == 65536 and
     0 < len(j["stdout"]) <= 65536, "exec cuts long output and states the limit", r)
r = exec_(admin, dsk, ["id", "-u"])
t.ok(r.status == 200 and r.json()["stdout"].strip() == "1000", "exec runs as the agent user", r)
r = exec_(admin, dsk, ["id", "-u"], user="root")
t.ok(r.status == 200 and r.json()["stdout"].strip() == "0", "exec runs as root when asked", r)

# ---- streamed exec ----

st, lines = exec_stream(b.port, b.key, dsk, ["sh", "-c", "echo out; echo err >&2; exit 5"])
t.ok(st == 200 and lines[0]["type"] == "started" and lines[-1] == {
    "type": "exit", "exitCode": 5, "signal": None, "timedOut": False} and
    stream_text(lines, "stdout") == "out\n" and stream_text(lines, "stderr") == "err\n",
    "exec?stream=true streams stdout, stderr and the exit status", lines)
st, lines = exec_stream(b.port, b.key, dsk, ["sh", "-c", "tr a-z A-Z"], stdin="stream stdin\n")
t.ok(st == 200 and stream_text(lines, "stdout") == "STREAM STDIN\n" and
     lines[-1]["exitCode"] == 0, "a streamed exec reads stdin to its end", lines[-3:])
st, lines = exec_stream(b.port, b.key, dsk, ["sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' b"])
out = stream_text(lines, "stdout")
t.ok(st == 200 and len(out) == 5000000 and set(out) == {"b"} and lines[-1]["exitCode"] == 0,
     "a streamed exec has no output limit (5 MB in order)", (st, len(out), lines[-1]))
st, lines = exec_stream(b.port, b.key, dsk, ["sleep", "30"], timeoutMs=1000)
t.ok(st == 200 and lines[-1]["timedOut"] is True, "a streamed exec times out too", lines)
st, lines = exec_stream(b.port, b.key, dsk, ["/no/such/program"])
t.ok(st == 200 and lines[-1]["exitCode"] == 127, "a missing program exits 127", lines)

# malformed, unauthorized
r = admin.post(D + "/exec?stream=maybe", {"command": ["true"]})
t.ok(r.status == 400, "exec refuses a malformed stream flag", r)
r = admin.post(D + "/exec?stream=true", {"command": "true"})
t.ok(r.status == 400, "exec refuses a command that is not an array", r)
r = admin.post(D + "/exec", raw=b"{" * 10, headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "exec refuses malformed JSON", r)
if mallory:
    r = mallory.post(D + "/exec?stream=true", {"command": ["true"]})
    t.ok(r.status == 404, "another workspace's exec answers 404", r)
r = Client(b.port).post(D + "/exec?stream=true", {"command": ["true"]})
t.ok(r.status == 401, "exec without credentials answers 401", r)

# ---- 50 concurrent ----

results = [None] * 50


def one(i):
    try:
        r = exec_(admin, dsk, ["sh", "-c", "echo %d; exit %d" % (i, i % 7)], timeout=300)
        results[i] = r.json()
    except Exception as e:  # noqa: BLE001
        results[i] = {"error": str(e)}


threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
for th in threads:
    th.start()
for th in threads:
    th.join(360)
good = [i for i in range(50) if results[i] and results[i].get("stdout") == "%d\n" % i and
        results[i].get("exitCode") == i % 7]
t.ok(len(good) == 50, "50 concurrent execs each get their own answer",
     [results[i] for i in range(50) if i not in good][:3])

# ---- small files ----

F = D + "/files"
r = admin.request("PUT", F + "?" + q(HOME + "/hello.txt", mode="600"), raw=b"hello\n")
t.ok(r.status == 201 and r.json() == {"path": HOME + "/hello.txt", "size": 6},
     "upload a small file", r)
r = admin.get(F + "?" + q(HOME + "/hello.txt"))
t.ok(r.status == 200 and r.body == b"hello\n" and r.header("Content-Length") == "6",
     "download it with its Content-Length", r)
r = admin.get(F + "/stat?" + q(HOME + "/hello.txt"))
j = r.json()
t.ok(r.status == 200 and j["type"] == "file" and j["size"] == 6 and j["mode"] == 0o600 and
     j["uid"] == 1000, "stat: type, size, mode, owner (the agent user)", r)
r = admin.request("PUT", F + "?" + q(HOME + "/empty"), raw=b"")
t.ok(r.status == 201 and r.json()["size"] == 0, "upload an empty file", r)
r = admin.post(F + "/mkdir", {"path": HOME + "/a/b/c", "parents": True})
t.ok(r.status == 201, "mkdir with parents", r)
r = admin.post(F + "/mkdir", {"path": HOME + "/a"})
t.ok(r.status == 409 and err_code(r) == "conflict", "mkdir of an existing folder is 409", r)
r = admin.post(F + "/move", {"path": HOME + "/hello.txt", "to": HOME + "/a/hello.txt"})
t.ok(r.status == 200, "move a file", r)
r = admin.post(F + "/move", {"path": HOME + "/empty", "to": HOME + "/a/hello.txt"})
t.ok(r.status == 409, "move does not replace without overwrite", r)
r = admin.get(F + "/list?" + q(HOME + "/a"))
names = [e["name"] for e in r.json().get("entries", [])] if r.status == 200 else None
t.ok(names == ["b", "hello.txt"], "list a folder, sorted, with types", r)
r = admin.delete(F + "?" + q(HOME + "/a"))
t.ok(r.status == 409, "delete of a non-empty folder needs recursive", r)
r = admin.delete(F + "?" + q(HOME + "/a", recursive="true"))
t.ok(r.status == 204, "recursive delete", r)
r = admin.get(F + "/stat?" + q(HOME + "/a"))
t.ok(r.status == 404 and err_code(r) == "not_found", "stat of a missing path is 404", r)
r = admin.get(F + "?" + q(HOME))
t.ok(r.status == 409, "downloading a folder is refused", r)
r = admin.request("PUT", F + "?" + q(HOME + "/no/such/dir/f"), raw=b"x")
t.ok(r.status == 404, "upload into a missing folder is 404", r)

# ---- path rules ----

cases = [
    (HOME + "/../../etc/passwd", 400, "'..' is refused"),
    ("data/home/agent/x", 400, "a relative path is refused"),
    (HOME + "//x", 400, "an empty component is refused"),
    (HOME + "/./x", 400, "a '.' component is refused"),
    ("/etc/passwd", 403, "the agent user cannot read outside home and /tmp"),
    ("/" + "a" * 5000, 414, "an oversized path in the URL is refused"),
]
for path, status, name in cases:
    r = admin.get(F + "?" + q(path))
    t.ok(r.status == status, name, r)
r = admin.post(F + "/mkdir", {"path": HOME + "/" + "a/" * 2100 + "x", "parents": True})
t.ok(r.status == 400 and err_code(r) == "invalid_path", "an oversized path is refused", r)
r = admin.post(F + "/mkdir", {"path": HOME + "/" + "n" * 300})
t.ok(r.status == 400, "an oversized path component is refused", r)
r = admin.get(F + "?path=" + urllib.parse.quote(HOME) + "%00/x")
t.ok(r.status == 400, "a NUL byte is refused", r)
r = admin.get(F)
t.ok(r.status == 400, "a missing path is refused", r)
r = admin.get(F + "?" + q("/etc/passwd", user="root"))
t.ok(r.status == 200 and b"root:" in r.body, "root may read anywhere", r)
r = admin.get(F + "?" + q("/etc/passwd", user="nobody"))
t.ok(r.status == 400, "only the agent user or root", r)
exec_(admin, dsk, ["sh", "-c", "ln -s /etc %s/etclink; ln -s /etc/passwd %s/pw; mkdir -p %s/d;"
                   " ln -s .. %s/d/up" % (HOME, HOME, HOME, HOME)])
for path, name in [(HOME + "/etclink/passwd", "a symlink on the way out of home is refused"),
                   (HOME + "/pw", "a symlink as the last component is not followed"),
                   (HOME + "/d/up/pw", "a relative symlink is not followed either")]:
    r = admin.get(F + "?" + q(path))
    t.ok(r.status == 403 and err_code(r) == "forbidden", name, r)
r = admin.request("PUT", F + "?" + q(HOME + "/etclink/evil"), raw=b"x")
t.ok(r.status == 403, "upload through a symlink is refused", r)
r = admin.get(F + "/stat?" + q(HOME + "/pw"))
t.ok(r.status == 200 and r.json()["type"] == "symlink" and r.json()["target"] == "/etc/passwd",
     "stat shows a symlink as one, with its target", r)
r = admin.request("PUT", F + "?" + q("/tmp/t1"), raw=b"tmp")
t.ok(r.status == 201, "the agent user may use /tmp", r)
r = admin.post(F + "/move", {"path": "/tmp/t1", "to": "/etc/t1"})
t.ok(r.status == 403, "move out of the allowed area is refused", r)

# malformed, oversized, unauthorized
r = admin.post(F + "/mkdir", {"path": HOME + "/x", "parents": "yes"})
t.ok(r.status == 400, "mkdir with a malformed field is 400", r)
r = admin.post(F + "/mkdir", {"path": HOME + "/x", "bogus": 1})
t.ok(r.status == 400, "mkdir with an unknown field is 400", r)
r = admin.post(F + "/move", {"path": HOME + "/x"})
t.ok(r.status == 400, "move without 'to' is 400", r)
r = admin.post(F + "/mkdir", raw=b'{"path":"' + b"a" * (2 * 1024 * 1024) + b'"}',
               headers={"Content-Type": "application/json"})
t.ok(r.status == 413, "an oversized JSON body is 413", r)
r = admin.request("PUT", F + "?" + q(HOME + "/m", mode="99"), raw=b"x")
t.ok(r.status == 400, "a malformed mode is 400", r)
if mallory:
    for method, path in [("GET", F + "?" + q(HOME + "/pw")), ("GET", F + "/list?" + q(HOME)),
                         ("PUT", F + "?" + q(HOME + "/m")), ("DELETE", F + "?" + q(HOME + "/pw"))]:
        r = mallory.request(method, path, raw=b"x" if method == "PUT" else None)
        t.ok(r.status == 404, "another workspace gets 404: %s %s" % (method, path.split("?")[0]), r)
r = Client(b.port).get(F + "/list?" + q(HOME))
t.ok(r.status == 401, "files without credentials answer 401", r)

# ---- the CLI: exec and cp ----

import subprocess  # noqa: E402
import tempfile  # noqa: E402
from lib import BUILD  # noqa: E402

cenv = dict(os.environ, BUREAU_ENDPOINT="http://127.0.0.1:%d" % b.port, BUREAU_API_KEY=b.key,
            BUREAU_CONFIG="/nonexistent")
cli = os.path.join(BUILD, "bureau")
p = subprocess.run([cli, "exec", dsk, "--", "sh", "-c", "echo cli-out; echo cli-err >&2; exit 9"],
                   env=cenv, capture_output=True, text=True, timeout=120)
t.ok(p.returncode == 9 and p.stdout == "cli-out\n" and p.stderr == "cli-err\n",
     "bureau exec prints output and exits with the command's code", p)
p = subprocess.run([cli, "exec", "xf", "--root", "--cwd", "/tmp", "--stdin", "--", "sh", "-c",
                    "pwd; id -u; cat"], input="piped\n", env=cenv, capture_output=True,
                   text=True, timeout=120)
t.ok(p.returncode == 0 and p.stdout == "/tmp\n0\npiped\n",
     "bureau exec by name with --root, --cwd and --stdin", p)
p = subprocess.run([cli, "exec", dsk, "--timeout", "1", "--", "sleep", "20"], env=cenv,
                   capture_output=True, text=True, timeout=120)
t.ok(p.returncode == 124, "bureau exec --timeout exits 124 when the command times out", p)
tmpd = tempfile.mkdtemp(prefix="bureau-cp-")
src = os.path.join(tmpd, "src.bin")
with open(src, "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024 + 17))
p = subprocess.run([cli, "cp", src, "%s:%s/" % (dsk, HOME)], env=cenv, capture_output=True,
                   text=True, timeout=120)
t.ok(p.returncode == 0, "bureau cp uploads into a folder", p)
p = subprocess.run([cli, "cp", "%s:%s/src.bin" % (dsk, HOME), os.path.join(tmpd, "back.bin")],
                   env=cenv, capture_output=True, text=True, timeout=120)
same = p.returncode == 0 and open(src, "rb").read() == open(os.path.join(tmpd, "back.bin"), "rb").read()
t.ok(same, "bureau cp downloads it back, byte for byte", p)
p = subprocess.run([cli, "cp", "%s:/etc/shadow" % dsk, os.path.join(tmpd, "x")], env=cenv,
                   capture_output=True, text=True, timeout=120)
t.ok(p.returncode == 1 and "forbidden" in p.stderr and not os.path.exists(os.path.join(tmpd, "x"))
     and not os.path.exists(os.path.join(tmpd, "x.bureau-part")),
     "bureau cp reports a refused path and leaves no local file", p)
p = subprocess.run([cli, "cp", "-", "%s:/tmp/from-stdin" % dsk], input=b"chunked\n" * 50000,
                   env=cenv, capture_output=True, timeout=120)
r = admin.get(F + "/stat?" + q("/tmp/from-stdin"))
t.ok(p.returncode == 0 and r.status == 200 and r.json()["size"] == 400000,
     "bureau cp - uploads stdin (a chunked body)", (p, r))
p = subprocess.run([cli, "cp", "a", "b"], env=cenv, capture_output=True, text=True, timeout=30)
t.ok(p.returncode == 2, "bureau cp without a desktop side is a usage error", p)

# ---- 200 MB both ways, memory bounded ----

pid = b.proc.pid
base = rss_kb(pid)
w = RssWatch(pid)
w.start()
t0 = time.time()
st, j, up_sum = upload(b.port, b.key, dsk, HOME + "/big.bin", BIG)
up_s = time.time() - t0
t.ok(st == 201 and j and j["size"] == BIG, "upload 200 MB", (st, j))
t0 = time.time()
st, length, n, down_sum, _ = download(b.port, b.key, dsk, HOME + "/big.bin")
down_s = time.time() - t0
w.stop = True
w.join()
t.ok(st == 200 and length == str(BIG) and n == BIG and down_sum == up_sum,
     "download it back: same length and sha256", (st, length, n))
r = exec_(admin, dsk, ["sha256sum", HOME + "/big.bin"], timeout=300)
t.ok(r.status == 200 and r.json()["stdout"].split()[0] == up_sum,
     "the guest's sha256 of the upload matches", r)
growth = (w.peak - base) // 1024
t.ok(growth < 100, "bureaud's RSS grew by less than 100 MB during the transfers", growth)
print("# 200 MB: upload %.1f s (%.1f MB/s), download %.1f s (%.1f MB/s), RSS %d MB -> peak %d MB"
      % (up_s, 200 / up_s, down_s, 200 / down_s, base // 1024, w.peak // 1024))

# ---- garbage on the agent's socket, bureaud killed during a transfer and an exec ----

results = {}


def slow_download():
    try:
        results["download"] = download(b.port, b.key, dsk, HOME + "/big.bin", slow=0.05)
    except Exception as e:  # noqa: BLE001
        results["download"] = ("exception", str(e))


def long_exec():
    try:
        results["exec"] = exec_stream(b.port, b.key, dsk, ["sh", "-c", "echo started; sleep 60"],
                                      timeout=90)
    except Exception as e:  # noqa: BLE001
        results["exec"] = ("exception", str(e))


def cut_upload():
    try:
        results["upload"] = upload(b.port, b.key, dsk, HOME + "/cut.bin", BIG)
    except Exception as e:  # noqa: BLE001
        results["upload"] = ("exception", str(e))


ths = [threading.Thread(target=f) for f in (slow_download, long_exec, cut_upload)]
for th in ths:
    th.start()
time.sleep(3)
b.stop(signal.SIGKILL)
for th in ths:
    th.join(60)
t.ok(not any(th.is_alive() for th in ths), "no call hangs when bureaud is killed", results)
dl = results.get("download")
t.ok(dl and (dl[0] == "exception" or (dl[0] == 200 and dl[2] < BIG)),
     "the interrupted download fails (short or broken), never looks complete", dl)
ex = results.get("exec")
t.ok(ex and (ex[0] == "exception" or not any(l.get("type") == "exit" for l in ex[1])),
     "the interrupted exec has no exit status", ex)

# While bureaud is down, the socket is free: write garbage to the agent.
sock_path = os.path.join(b.state_dir, "desktops", dsk, "agent.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
s.settimeout(10)


def frame(ftype, payload, stream=0, version=1, length=None):
    return b"BU" + bytes([version, ftype]) + struct.pack(
        ">II", stream, len(payload) if length is None else length) + payload


garbage = [os.urandom(70000), frame(1, b'{"type":"hello"}')[:7],
           frame(3, b"", 0, length=0x7FFFFFFF), frame(1, b'{"type":"hello"}', version=9),
           frame(1, json.dumps({"type": "hello", "proto": 1}).encode()),
           frame(3, b"data for nobody", 12345), frame(5, b"\0\0\0\1", 777),
           frame(4, b"{}", 99), frame(2, b"not json"), frame(2, b'{"type":"open","stream":2}'),
           frame(2, b'{"type":"open","stream":3,"kind":"nope"}'), frame(9, b"??"),
           frame(2, json.dumps({"type": "open", "stream": 5, "kind": "file.read",
                                "path": HOME + "/big.bin"}).encode()),
           frame(3, b"x" * 65536, 5), frame(3, b"y" * 65536, 5)]
for g in garbage:
    s.sendall(g)
s.sendall(frame(1, json.dumps({"type": "hello", "proto": 1}).encode()))
s.sendall(frame(2, json.dumps({"type": "ping", "id": 42}).encode()))
buf, pong = b"", False
deadline = time.time() + 20
while time.time() < deadline and not pong:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    pong = b'"pong"' in buf and b'"id":42' in buf
s.close()
t.ok(pong, "after garbage, truncated and oversized frames, the agent answers a new session")

b.start()
d = admin.wait_state(dsk, ["running", "error"], timeout=120)
t.ok(d["state"] == "running", "bureaud restarts and re-attaches the desktop", d)
r = None
for _ in range(40):  # the agent answers the new bureaud's HELLO
    r = exec_(admin, dsk, ["sh", "-c", "echo again"])
    if r.status == 200:
        break
    time.sleep(0.5)
t.ok(r.status == 200 and r.json()["stdout"] == "again\n", "new exec calls work", r)
r = exec_(admin, dsk, ["sh", "-c", "ps -o pid,args | grep 'sleep 60' | grep -v grep; ls -a %s" % HOME],
          user="root")
out = r.json().get("stdout", "") if r.status == 200 else ""
t.ok(r.status == 200 and "sleep 60" not in out, "the interrupted command was killed", out)
t.ok(r.status == 200 and "cut.bin" not in out and ".bureau-" not in out,
     "the interrupted upload left neither the file nor its temporary", out)
st, j, _ = upload(b.port, b.key, dsk, HOME + "/after.bin", 1 << 20)
t.ok(st == 201, "new uploads work", (st, j))
b.cleanup()

# ---- the desktop image: the agent user's permissions ----

if os.environ.get("BUREAU_SKIP_DESKTOP"):
    print("# skipping the desktop image (BUREAU_SKIP_DESKTOP)")
elif not os.path.isdir(os.path.join(IMAGES, "desktop", "current")):
    print("# no desktop image built: skipping its checks")
else:
    b = Bureaud().start()
    admin = b.admin()
    r = admin.post("/api/desktops", {"name": "xd", "workspaceId": b.workspace()})
    dd = r.json()["id"]
    d = admin.wait_state(dd, ["running", "error"], timeout=400)
    t.ok(d["state"] == "running", "a desktop-image desktop runs", d)
    F = "/api/desktops/%s/files" % dd
    r = admin.request("PUT", F + "?" + q("/etc/bureau-test"), raw=b"x")
    t.ok(r.status == 403, "desktop: the agent user cannot write /etc", r)
    r = admin.request("PUT", F + "?" + q("/etc/bureau-test", user="root"), raw=b"root\n")
    t.ok(r.status == 201, "desktop: root can", r)
    r = exec_(admin, dd, ["sh", "-c", "echo x > /etc/bureau-test2"])
    t.ok(r.status == 200 and r.json()["exitCode"] != 0, "desktop: exec as agent cannot either", r)
    r = admin.request("PUT", F + "?" + q("/home/agent/note.txt"), raw=b"note\n")
    r2 = exec_(admin, dd, ["stat", "-c", "%U %a", "/home/agent/note.txt"])
    t.ok(r.status == 201 and r2.json()["stdout"].strip() == "agent 644",
         "desktop: uploads in home belong to the agent user", (r, r2))
    b.cleanup()

t.done()
