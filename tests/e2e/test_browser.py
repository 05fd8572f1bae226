"""The consoles with the desktop image: one XFCE desktop, then
  - RFB through the bridge proves that view-only input never reaches QEMU:
    pointer moves in view-only mode leave the screen as it was, the same
    moves in control mode change it (the guest draws its cursor);
  - tests/browser/test_console.mjs (chromium through playwright-core)
    finds XFCE's pixels in noVNC's canvas, takes control, and uses the
    terminal page (tmux session kept across a reconnect); its TAP lines
    are relayed here;
  - tests/browser/test_desktop_view.mjs drives Mission Control's desktop
    view: screen, terminal, files, metrics, events & audit, and the chat
    with the desktop's agent, whose provider is the scripted model server
    (a streamed reply, then a sudo command approved inline)."""
import os
import time

import lib
import ws as wsl
from model_server import ModelServer

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
admin = b.admin()
port = b.port
model = ModelServer()
d = admin.post("/api/desktops", {"name": "browser", "image": "desktop", "provider": "anthropic",
                                 "model": "test-model", "apiKey": "sk-test-secret", "baseUrl": model.url}).json()
did = d["id"]
try:
    admin.wait_state(did, "running", timeout=400)
    up = True
except TimeoutError as e:
    up = t.ok(False, "the desktop image boots", str(e))
auth = {"Authorization": "Bearer " + admin.key}
vnc = "/api/desktops/%s/vnc" % did
SKIP_TOP, SKIP_BOTTOM = 48, 48  # XFCE's panels (the clock changes by itself)


def frame(mode):
    """A session in mode, its first full frame, and the session."""
    s = wsl.WebSocket.connect(port, vnc + "?mode=" + mode, headers=auth)
    rfb = wsl.RFB(s)
    rfb.handshake()
    fb = bytearray(rfb.width * rfb.height * 4)
    rfb.request(0)
    rfb.read_update(fb)
    return s, rfb, fb


def full(rfb):
    fb = bytearray(rfb.width * rfb.height * 4)
    rfb.request(0)
    rfb.read_update(fb)
    return fb


def changed_rows(a, b, width, height):
    row = width * 4
    return sum(1 for y in range(SKIP_TOP, height - SKIP_BOTTOM)
               if a[y * row:(y + 1) * row] != b[y * row:(y + 1) * row])


def wiggle(rfb):
    for x, y in [(300, 300), (700, 500), (200, 600), (900, 250), (260, 620)]:
        rfb.pointer(x, y)
        time.sleep(0.2)


def tool_results(req):
    """The tool results an Anthropic request carries back to the model."""
    out = []
    for m in req["body"].get("messages", []):
        for c in m.get("content", []) if isinstance(m.get("content"), list) else []:
            if c.get("type") == "tool_result":
                body = c.get("content", [])
                out.extend([body] if isinstance(body, str) else
                           [x.get("text", "") for x in body if isinstance(x, dict)])
    return out


if up:
    # the desktop must be drawn before its pixels mean anything
    deadline = time.time() + 120
    s, rfb, before = frame("view")
    while time.time() < deadline and sum(1 for i in range(0, len(before), 4096) if before[i:i + 3] != b"\0\0\0") < 50:
        time.sleep(2)
        before = full(rfb)
    t.ok(rfb.width == 1280 and rfb.height == 800, "the desktop's screen is 1280x800 through the bridge")
    wiggle(rfb)
    time.sleep(1.5)
    after = full(rfb)
    n = changed_rows(before, after, rfb.width, rfb.height)
    t.ok(n == 0, "view-only: pointer moves never reach QEMU (%d rows changed)" % n)
    s.close()
    s, rfb, before = frame("control")
    wiggle(rfb)
    time.sleep(1.5)
    after = full(rfb)
    n = changed_rows(before, after, rfb.width, rfb.height)
    t.ok(n > 0, "control: the same pointer moves change the screen (%d rows)" % n)
    rfb.pointer(1279, 400)  # park the cursor at the edge for the screenshots
    time.sleep(0.3)
    s.close()

    env = dict(os.environ, BUREAU_URL="http://127.0.0.1:%d" % port, BUREAU_DESKTOP=did,
               BUREAU_EMAIL="admin@localhost", BUREAU_PASSWORD=lib.Bureaud.PASSWORD)
    lib.browser_test(t, "test_console.mjs", env, timeout=400)
    # The desktop view's chat: a streamed greeting, then a sudo command
    # (approved in the page) whose output makes the final reply.
    model.script({"text": "Hello from the scripted model. What shall I do?"},
                 {"text": "Let me run the check.",
                  "tools": [{"name": "shell", "input": {"command": "sudo true; echo approved-$((2+3))"}}]},
                 lambda req: {"text": "The command printed approved-5." if any("approved-5" in x for x in tool_results(req))
                              else "The command did not print what I expected."})
    lib.browser_test(t, "test_desktop_view.mjs", env, prefix="desktop view: ", timeout=400)
admin.delete("/api/desktops/" + did)
model.close()
t.done()
