"""The pilot's computer tool on the desktop image, against the scripted
model server (Anthropic format, reached through the egress proxy): the
model asks for a screenshot and gets a real PNG of the XFCE display, then
asks for a click on the panel's Applications menu, and the desktop's
screen changes."""
import base64
import time

import lib
import png
from model_server import ModelServer

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg", "--templates", "off"]).start()
admin = b.admin()
model = ModelServer()

r = admin.post("/api/desktops", {"name": "pilot-desktop", "provider": "anthropic", "model": "test-model",
                                 "apiKey": "sk-test-secret", "baseUrl": model.url})
t.ok(r.status == 201, "a desktop with the scripted provider as its base URL", r)
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=400)
t.ok(d["state"] == "running", "it runs, drawn", d)


def shot():
    r = admin.get("/api/desktops/%s/screenshot" % did)
    return png.decode(r.body) if r.status == 200 else None


def images(req):
    """PNG images carried by the tool results of a request."""
    out = []
    for m in req["body"].get("messages", []):
        for c in m.get("content", []) if isinstance(m.get("content"), list) else []:
            if c.get("type") != "tool_result":
                continue
            for x in c.get("content", []):
                if x.get("type") == "image" and x.get("source", {}).get("media_type") == "image/png":
                    out.append(base64.b64decode(x["source"]["data"]))
    return out


seen = {}


def after_screenshot(req):
    seen["images"] = images(req)
    return {"text": "Opening the menu.", "tools": [{"name": "computer", "input": {"action": "left_click",
                                                                                 "coordinate": [50, 12]}}]}


# Let the session settle (the clock ticks only once a minute) before the "before" picture.
time.sleep(5)
before = shot()
model.script({"text": "Let me look.", "tools": [{"name": "computer", "input": {"action": "screenshot"}}]},
             after_screenshot,
             {"text": "The Applications menu is open."})
r = admin.post("/api/desktops/%s/chat" % did, {"message": "Open the Applications menu."})
t.ok(r.status == 202, "chat accepted", r)
mid = r.json().get("id")
end = time.time() + 240
mine = []
while time.time() < end:
    msgs = admin.get("/api/desktops/%s/chat?limit=100" % did).json()["messages"]
    mine = [m for m in msgs if m.get("replyTo") == mid]
    if any(m["role"] == "error" for m in mine) or (mine and mine[-1]["role"] == "assistant"
                                                   and mine[-1]["content"] == "The Applications menu is open."):
        break
    time.sleep(1)
roles = [m["role"] for m in mine]
t.ok("error" not in roles and mine and mine[-1]["content"] == "The Applications menu is open.",
     "the computer-use task completes", [(m["role"], str(m.get("content"))[:80]) for m in mine])
tools = model.requests[0]["body"].get("tools", []) if model.requests else []
comp = [x for x in tools if x.get("name") == "computer"]
t.ok(comp and comp[0].get("type", "").startswith("computer_") and comp[0].get("display_width_px") == 1280
     and comp[0].get("display_height_px") == 800, "Anthropic's computer tool is offered with the screen's real size", comp)
imgs = seen.get("images", [])
if imgs:
    w, h, colours, top = png.stats(imgs[0])
    t.ok(w == 1280 and h == 800 and colours >= 16, "the model got a real screenshot of the display (%dx%d, %d colours)" % (w, h, colours))
else:
    t.ok(False, "the model got a real screenshot of the display", "no image in the tool result")
time.sleep(2)
after = shot()
changed = 0
if before and after:
    for y in range(0, min(before[1], after[1]), 2):
        rb, ra = before[2][y], after[2][y]
        changed += sum(1 for x in range(0, min(len(rb), len(ra)), 2) if rb[x] != ra[x])
t.ok(changed > 2000, "the click changed the screen (%d sampled pixels differ)" % changed)
admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
model.close()
t.done()
