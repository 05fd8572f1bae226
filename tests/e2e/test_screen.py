"""Screen size: chosen at create, changed later (a cold restart), and the
screenshot follows; bad sizes are refused and another workspace sees 404.
One desktop of the desktop image, templates off (no second VM)."""
import lib
import png

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg", "--templates", "off"]).start()
admin = b.admin()
port = b.port
origin = {"Origin": "http://127.0.0.1:%d" % port}


def size(r):
    return (r["screen"]["width"], r["screen"]["height"])


for bad, what in (({"width": 0, "height": 0}, "0x0"), ({"width": 99999, "height": 1}, "99999x1"),
                  ({"width": "1024", "height": "768"}, "strings"),
                  ({"width": 1024, "height": 768, "depth": 24}, "an unknown field"),
                  ({"width": 1024}, "no height"), ("1024x768", "a string"),
                  ({"width": 1000, "height": 700}, "an unsupported size")):
    r = admin.post("/api/desktops", {"name": "bad", "image": "tiny", "screen": bad})
    t.ok(r.status == 400, "create with screen %s: 400" % what, r)
t.ok(admin.get("/api/desktops").json()["desktops"] == [], "the refused creates made nothing")

r = admin.post("/api/desktops", {"name": "screen", "screen": {"width": 1024, "height": 768}})
t.ok(r.status == 201 and size(r.json()) == (1024, 768), "create with 1024x768: shown in the desktop", r)
did = r.json()["id"]
r = admin.request("PUT", "/api/desktops/%s/screen" % did, {"width": 1280, "height": 1024})
t.ok(r.status == 409, "a change before it runs: 409", r)

# another workspace's user
admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
r = lib.Client(port).post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers=origin)
bob = lib.Client(port, key=r.json()["key"])
r = bob.request("PUT", "/api/desktops/%s/screen" % did, {"width": 1280, "height": 1024})
t.ok(r.status == 404, "another workspace: 404", r)

d = admin.wait_state(did, ["running", "error"], timeout=400)
t.ok(d["state"] == "running" and size(d) == (1024, 768), "it runs at 1024x768", d)
r = admin.get("/api/desktops/%s/screenshot" % did)
if r.status == 200:
    w, h, colours, top = png.stats(r.body)
    t.ok((w, h) == (1024, 768) and colours >= 16, "the screenshot is a drawn 1024x768 screen (%dx%d, %d colours)" % (w, h, colours))
else:
    t.ok(False, "a screenshot", r)

for bad, what in (({"width": 0, "height": 0}, "0x0"), ({"width": "1280", "height": 1024}, "strings"),
                  ({"width": 1280, "height": 1024, "x": 1}, "an unknown field")):
    r = admin.request("PUT", "/api/desktops/%s/screen" % did, bad)
    t.ok(r.status == 400, "change to %s: 400" % what, r)
r = admin.request("PUT", "/api/desktops/%s/screen" % did, raw=b"{", headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "a malformed body: 400", r)
r = admin.request("PUT", "/api/desktops/%s/screen" % did, {"width": 1024, "height": 768})
t.ok(r.status == 200 and size(r.json()) == (1024, 768), "the size it has: 200, nothing to do", r)
r = admin.request("PUT", "/api/desktops/%s/screen" % did, {"width": 1280, "height": 1024})
t.ok(r.status == 202 and size(r.json()) == (1280, 1024), "change to 1280x1024: 202, it restarts", r)
d = admin.wait_state(did, ["stopping", "starting", "provisioning", "error"], timeout=120)
d = admin.wait_state(did, ["running", "error"], timeout=400)
t.ok(d["state"] == "running" and size(d) == (1280, 1024), "it runs again at 1280x1024", d)
r = admin.get("/api/desktops/%s/screenshot" % did)
if r.status == 200:
    w, h, colours, top = png.stats(r.body)
    t.ok((w, h) == (1280, 1024) and colours >= 16, "the screenshot follows: %dx%d, %d colours" % (w, h, colours))
else:
    t.ok(False, "a screenshot after the change", r)
admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
t.done()
