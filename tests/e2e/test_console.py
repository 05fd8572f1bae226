"""Browser consoles against a real bureaud and a tiny-image desktop: the
pages and their files, console tickets, the WebSocket layer (handshake,
subprotocol, ping, close codes, limits), the VNC bridge speaking RFB
(a full frame, view-only input dropped, bounded memory with a client that
stops reading while another viewer goes on) and the terminal bridge (a
shell, resize, UTF-8, batched output, end). The desktop image's part
(pixels, tmux sessions, the browser) is in test_browser.py."""
import json
import os
import re
import socket
import struct
import threading
import time

import lib
import ws as wsl

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
port = b.port
admin = b.admin()
anon = lib.Client(port)
origin = "http://127.0.0.1:%d" % port


def err_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def refused(path, **kw):
    """The HTTP status of a refused upgrade (101 when accepted)."""
    try:
        s = wsl.WebSocket.connect(port, path, **kw)
    except wsl.HandshakeRefused as e:
        return e.status, e.body
    s.close()
    return 101, b""


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- pages and files ----
r = anon.get("/")
t.ok(r.status == 200 and r.header("Content-Type").startswith("text/html")
     and "default-src 'self'" in (r.header("Content-Security-Policy") or ""),
     "GET /: the front page, with a content security policy", r)
for kind in ("screen", "terminal"):
    r = anon.get("/desktops/dsk_anything/%s" % kind)
    t.ok(r.status == 200 and b"/static/%s.js" % kind.encode() in r.body
         and r.header("Cache-Control") == "no-cache", "the %s page is served" % kind, r)
files = [("/static/screen.js", "text/javascript", "no-cache"),
         ("/static/console.css", "text/css", "no-cache"),
         ("/vendor/novnc/core/rfb.js", "text/javascript", "public, max-age=86400"),
         ("/vendor/novnc/vendor/pako/lib/zlib/inflate.js", "text/javascript", "public, max-age=86400"),
         ("/vendor/xterm/lib/xterm.mjs", "text/javascript", "public, max-age=86400"),
         ("/vendor/xterm/css/xterm.css", "text/css", "public, max-age=86400"),
         ("/vendor/xterm-addon-fit/lib/addon-fit.mjs", "text/javascript", "public, max-age=86400")]
for path, ctype, cache in files:
    r = anon.get(path)
    t.ok(r.status == 200 and r.header("Content-Type").startswith(ctype) and r.header("Cache-Control") == cache
         and r.header("X-Content-Type-Options") == "nosniff", "%s: %s, %s" % (path, ctype, cache), r)
r = anon.get("/static/screen.js")
etag = r.header("ETag")
r2 = anon.get("/static/screen.js", headers={"If-None-Match": etag})
t.ok(etag and r2.status == 304 and r2.body == b"", "a matching ETag gives 304 without a body", r2)
r = anon.request("HEAD", "/static/screen.js")
t.ok(r.status == 200 and r.body == b"" and int(r.header("Content-Length")) > 0, "HEAD: length, no body", r)
for path, want in [("/static/../src/api/api.c", 400), ("/static/%2e%2e/src/api/api.c", 400),
                   ("/vendor/novnc/../../package.json", 400), ("/static/%2e%2e%2fMakefile", 400),
                   ("/static/.gitignore", 404), ("/static/nothing.js", 404), ("/static/", 404),
                   ("/vendor/novnc/package.json.exe", 404), ("/vendor/other/x.js", 404),
                   ("/static//etc/passwd", 404), ("/desktops/x/other", 404)]:
    r = anon.get(path)
    t.ok(r.status == want and b"root:" not in r.body, "%s → %d" % (path, want), r)
r = anon.post("/static/screen.js", {})
t.ok(r.status == 405 and "GET" in (r.header("Allow") or ""), "POST to a file: 405 with Allow", r)
r = anon.get("/api/nothing")
t.ok(r.status == 404 and err_code(r) == "no_route", "/api/ paths never fall to the files", r)

# ---- a desktop, and another workspace's ----
ws_id = b.workspace()
d = admin.post("/api/desktops", {"name": "console", "image": "tiny"}).json()
did = d["id"]
admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers={"Origin": origin})
bob = lib.Client(port, key=r.json()["key"])
r = anon.post("/api/auth/login", {"email": "admin@localhost", "password": lib.Bureaud.PASSWORD})
cookie = r.header("Set-Cookie").split(";")[0]

# ---- tickets ----
path = "/api/desktops/%s/console-ticket" % did
r = anon.post(path)
t.ok(r.status == 401, "ticket without credentials: 401", r)
r = bob.post(path)
t.ok(r.status == 404, "ticket for another workspace's desktop: 404", r)
r = admin.post(path, {"mode": "control"})
t.ok(r.status == 400, "ticket request with a body: 400", r)
r = lib.Client(port, cookie=cookie).post(path, headers={"Origin": "http://evil.example"})
t.ok(r.status == 403, "ticket by cookie from a foreign Origin: 403", r)
r = admin.post(path)
tk = r.json() if r.status == 201 else {}
t.ok(r.status == 201 and tk.get("ticket", "").startswith("ct_") and tk.get("expiresAt"),
     "ticket: 201 {ticket, expiresAt}", r)

admin.wait_state(did, "running", timeout=180)
vnc = "/api/desktops/%s/vnc" % did

# ---- who may connect ----
st, body = refused(vnc)
t.ok(st == 401, "VNC without cookie or ticket: 401", body)
st, body = refused(vnc + "?ticket=ct_bogus")
t.ok(st == 401, "an unknown ticket: 401", body)
r = admin.post(path)
once = r.json()["ticket"]
st, _ = refused(vnc + "?ticket=" + once)
t.ok(st == 101, "a fresh ticket opens the console")
st, body = refused(vnc + "?ticket=" + once)
t.ok(st == 401, "the same ticket twice: refused (401)", body)
st, body = refused(vnc, headers={"Authorization": "Bearer " + bob.key})
t.ok(st == 404, "another workspace's key: 404", body)
bd = bob.post("/api/desktops", {"name": "bobs", "image": "tiny"}).json()
st, body = refused("/api/desktops/%s/vnc?ticket=%s" % (bd["id"], admin.post(path).json()["ticket"]))
t.ok(st == 404, "a ticket used on another workspace's desktop: 404", body)
bob.delete("/api/desktops/" + bd["id"])
st, body = refused(vnc, headers={"Cookie": cookie, "Origin": "http://evil.example"})
t.ok(st == 403, "session cookie from a foreign Origin: 403 before upgrading", body)
st, body = refused(vnc, headers={"Cookie": cookie, "Origin": origin})
t.ok(st == 101, "session cookie from this server's own page: accepted", body)
st, body = refused(vnc, headers={"Cookie": cookie, "Origin": origin}, host="evil.example")
t.ok(st == 403, "an Origin naming another Host: 403", body)
st, body = refused(vnc + "?mode=admin", headers={"Authorization": "Bearer " + admin.key})
t.ok(st == 400, "an unknown mode: 400", body)
r = admin.get(vnc)
t.ok(r.status == 400 and err_code(r) == "websocket_required", "plain GET of a console: 400", r)
st, body = refused(vnc, headers={"Authorization": "Bearer " + admin.key}, version="8")
t.ok(st == 426, "WebSocket version 8: 426", body)
st, body = refused(vnc, headers={"Authorization": "Bearer " + admin.key}, key="c2hvcnQ=")
t.ok(st == 400, "a Sec-WebSocket-Key that is not 16 bytes: 400", body)
logtext = b.log()
t.ok(once not in logtext and tk["ticket"] not in logtext, "tickets never appear in bureaud's log")

# ---- RFB through the bridge ----
auth = {"Authorization": "Bearer " + admin.key}
s = wsl.WebSocket.connect(port, vnc, headers=auth, protocols=["binary"])
t.eq(s.protocol, "binary", "noVNC's subprotocol \"binary\" is chosen")
rfb = wsl.RFB(s)
version = rfb.handshake()
t.eq(version, b"RFB 003.008\n", "QEMU's RFB version comes through")
fb = bytearray(rfb.width * rfb.height * 4)
rfb.request(0)
rects = rfb.read_update(fb)
covered = sum(w * h for _, _, w, h in rects)
t.ok(covered == rfb.width * rfb.height and any(fb), "a full frame arrives (%dx%d), not all black"
     % (rfb.width, rfb.height), rects)
s.send_frame(wsl.PING, b"are you there")
pong = None
s.sock.settimeout(10)
while pong is None:
    fin, op, payload = s.recv_frame()
    if op == wsl.PONG:
        pong = payload
t.eq(pong, b"are you there", "ping answered with the same payload")
# view-only: input is counted as dropped, never forwarded
for i in range(5):
    rfb.pointer(10 + i, 10 + i, 1)
rfb.key(0x61, 1)
rfb.key(0x61, 0)
s.send(struct.pack(">BBBBI", 6, 0, 0, 0, 5) + b"hello")
rfb.request(1)
s.close()
time.sleep(0.5)


def last_disconnect():
    for e in admin.get("/api/audit").json()["entries"]:
        if e["action"] == "desktop.console.disconnect":
            return e
    return None


e = last_disconnect()
t.ok(e and e["detail"]["mode"] == "view" and e["detail"]["inputDropped"] == 8
     and e["detail"]["bytesOut"] > rfb.width * rfb.height * 4,
     "view-only: 5 pointer, 2 key and 1 clipboard messages dropped, audited at disconnect", e)
conn = [x for x in admin.get("/api/audit").json()["entries"] if x["action"] == "desktop.console.connect"]
t.ok(conn and conn[0]["status"] == 101 and conn[0]["detail"]["console"] == "vnc",
     "the connection is audited too (status 101)", conn[:1])

s = wsl.WebSocket.connect(port, vnc + "?mode=control", headers=auth)
t.ok(s.protocol is None, "no subprotocol offered: none chosen")
rfb = wsl.RFB(s)
rfb.handshake()
rfb.pointer(5, 5, 0)
rfb.request(0)
rfb.read_update()
s.close()
time.sleep(0.5)
e = last_disconnect()
t.ok(e and e["detail"]["mode"] == "control" and e["detail"]["inputDropped"] == 0,
     "control mode forwards input", e)

# protocol errors and limits
def close_code(send):
    s = wsl.WebSocket.connect(port, vnc, headers=auth)
    rfb = wsl.RFB(s)
    rfb.handshake()
    send(s)
    try:
        while True:
            s.recv()
    except wsl.Closed as c:
        return c.code
    finally:
        s.sock.close()


t.eq(close_code(lambda s: s.send(bytes([7, 0, 0, 0]))), 1008, "an unknown RFB message: close 1008")
t.eq(close_code(lambda s: s.send(b"\xff" * (1024 * 1024 + 1))), 1009, "a message over 1 MiB: close 1009")
t.eq(close_code(lambda s: s.send_frame(wsl.TEXT, b"\xc3\x28")), 1007, "text that is not UTF-8: close 1007")
t.eq(close_code(lambda s: s.send_frame(wsl.BINARY, b"\x03", mask=False)), 1002,
     "an unmasked client frame: close 1002")

# ---- backpressure: a client that stops reading ----
stall = wsl.WebSocket.connect(port, vnc + "?mode=control", headers=auth)
srfb = wsl.RFB(stall)
srfb.handshake()
stall.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
watcher = wsl.WebSocket.connect(port, vnc, headers=auth)
wrfb = wsl.RFB(watcher)
wrfb.handshake()
base = rss_kb(b.proc.pid)
frame = rfb.width * rfb.height * 4
stop = threading.Event()


def flood():
    # full-frame requests, never reading the answers
    while not stop.is_set():
        try:
            srfb.request(0)
        except OSError:
            return
        time.sleep(0.01)


th = threading.Thread(target=flood)
th.start()
frames = 0
peak = base
deadline = time.time() + 20
while time.time() < deadline and frames < 15:
    wrfb.request(0)
    rects = wrfb.read_update()
    frames += sum(w * h for _, _, w, h in rects) == wrfb.width * wrfb.height
    peak = max(peak, rss_kb(b.proc.pid))
time.sleep(2)
peak = max(peak, rss_kb(b.proc.pid))
stop.set()
th.join()
e = None
t.ok(frames >= 15, "another viewer keeps receiving full frames while one stalls (%d)" % frames)
t.ok(peak - base < 48 * 1024, "bureaud's memory stays bounded: +%d KiB with a stalled viewer "
     "(each of its frames is %d KiB)" % (peak - base, frame // 1024))
stall.sock.close()
watcher.close()

# ---- the terminal (tiny: a plain shell, no tmux) ----
term = "/api/desktops/%s/terminal" % did
st, body = refused(term)
t.ok(st == 401, "terminal without credentials: 401", body)
st, body = refused(term + "?session=bad;rm", headers=auth)
t.ok(st == 400, "a session name with shell characters: 400", body)
st, body = refused(term, headers={"Authorization": "Bearer " + bob.key})
t.ok(st == 404, "another workspace's terminal: 404", body)


def read_until(s, pattern, timeout=30):
    out = b""
    deadline = time.time() + timeout
    s.sock.settimeout(timeout)
    sizes = []
    while time.time() < deadline:
        op, data = s.recv()
        if op == wsl.TEXT:
            out += b"\n[text]" + data
        else:
            sizes.append(len(data))
            out += data
        if re.search(pattern, out):
            return out, sizes
    return out, sizes


try:
    s = wsl.WebSocket.connect(port, term, headers=auth)
    s.send(b"echo hello-$((6*7))\r")
    out, _ = read_until(s, rb"hello-42")
    t.ok(b"hello-42" in out, "a command typed into the terminal prints its output", out[-300:])
    s.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}))
    s.send(b"stty size\r")
    out, _ = read_until(s, rb"30 100")
    t.ok(b"30 100" in out, "a resize message sets the terminal's size", out[-300:])
    s.send("printf '\\303\\251t\\303\\251 \\342\\202\\254 \\360\\237\\226\\245\\n'\r".encode())
    out, _ = read_until(s, "été € 🖥".encode())
    t.ok("été € 🖥".encode() in out, "UTF-8 output arrives intact", out[-200:])
    s.send(b"i=0; while [ $i -lt 20000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo DONE-$((1+1))\r")
    out, sizes = read_until(s, rb"DONE-2", timeout=120)
    total = sum(sizes)
    t.ok(b"DONE-2" in out and b"line-19999-" in out, "a long output arrives whole (%d bytes)" % total)
    t.ok(max(sizes) <= 128 * 1024 and total / len(sizes) > 512,
         "output is batched: %d messages, %d bytes on average" % (len(sizes), total // max(1, len(sizes))))
    s.send(json.dumps({"type": "nonsense"}))
    try:
        while True:
            s.recv()
    except wsl.Closed as c:
        t.eq(c.code, 1008, "an unknown control message: close 1008")
    s = wsl.WebSocket.connect(port, term, headers=auth)
    s.send(json.dumps({"type": "end"}))
    out, _ = read_until(s, rb'"type":"exit"', timeout=20)
    code = None
    try:
        while True:
            s.recv()
    except wsl.Closed as c:
        code = c.code
    t.ok(b'"type":"exit"' in out and code == 1000, "end: the shell ends, exit message, close 1000", out[-200:])
except (wsl.HandshakeRefused, wsl.Closed, OSError) as ex:
    t.ok(False, "the terminal works", repr(ex))

e = [x for x in admin.get("/api/audit").json()["entries"]
     if x["action"] == "desktop.console.disconnect" and x["detail"]["console"] == "terminal"]
t.ok(len(e) >= 2 and any(x["detail"]["bytesOut"] > 0 for x in e), "terminal sessions are audited", e[:3])

# ---- many viewers at once: QEMU's listener takes one connection at a
# time (backlog 1); the bridge waits its turn instead of answering 502 ----
viewers, errors = [], []


def viewer():
    try:
        v = wsl.WebSocket.connect(port, vnc, headers=auth, protocols=["binary"])
        viewers.append((v, wsl.RFB(v).handshake()))
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(repr(e))


crowd = [threading.Thread(target=viewer) for _ in range(10)]
for th in crowd:
    th.start()
for th in crowd:
    th.join(60)
t.ok(not errors and len(viewers) == 10 and all(v == b"RFB 003.008\n" for _, v in viewers),
     "ten viewers connecting at the same moment all reach QEMU's RFB greeting", errors[:3])
for v, _ in viewers:
    v.close()
time.sleep(0.5)

# ---- shutdown with consoles open ----
s = wsl.WebSocket.connect(port, vnc, headers=auth)
b.proc.send_signal(15)
try:
    code = None
    s.sock.settimeout(10)
    while True:
        s.recv()
except wsl.Closed as c:
    code = c.code
t.ok(code == 1001, "the console is closed with 1001 at shutdown (got %s)" % code)
deadline = time.time() + 20
while time.time() < deadline and "http server closed" not in b.log():
    time.sleep(0.2)
t.ok("http server closed" in b.log(), "the HTTP server finishes its shutdown with the console gone")
b.stop()
t.done()
