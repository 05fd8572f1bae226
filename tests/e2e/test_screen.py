"""Screen size: chosen at create, changed later (a cold restart), and the
screenshot follows; bad sizes are refused and another workspace sees 404.
Screenshot thumbnails (?width=N) are scaled on the server. One desktop of
the desktop image, templates off (no second VM)."""
import struct

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



def ihdr(data):
    """(width, height) from a PNG's signature and IHDR, or None."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def thumbnails(did, full, fw, fh):
    """?width= against the full screenshot `full` of fw x fh."""
    base = "/api/desktops/%s/screenshot" % did
    r = admin.get(base + "?width=160")
    dims = ihdr(r.body) if r.status == 200 else None
    if t.ok(r.status == 200 and r.header("Content-Type") == "image/png" and dims is not None,
            "?width=160: a PNG", r):
        w, h = dims
        t.ok(w <= 160 and abs(h - w * fh / fw) <= 1,
             "?width=160: %dx%d, at most 160 wide with the screen's aspect (%dx%d)" % (w, h, fw, fh))
        t.ok(len(r.body) < len(full), "?width=160: %d bytes, fewer than the full %d" % (len(r.body), len(full)))
        tw, th, colours, _ = png.stats(r.body)
        t.ok((tw, th) == (w, h) and colours >= 4, "?width=160 decodes to a drawn screen (%d colours)" % colours)
    for wide in (fw, fw + 1, 4096):
        r = admin.get(base + "?width=%d" % wide)
        t.ok(r.status == 200 and ihdr(r.body) == (fw, fh),
             "?width=%d (not narrower than the screen): the full %dx%d" % (wide, fw, fh), r)
    r = admin.get(base + "?width=16")
    t.ok(r.status == 200 and ihdr(r.body) is not None and ihdr(r.body)[0] == 16, "?width=16, the least: 16 wide", r)
    r = admin.get(base + "?wid%74h=160")
    t.ok(r.status == 200 and ihdr(r.body) is not None and ihdr(r.body)[0] == 160,
         "a percent-encoded key is the same width", r)
    r = admin.get(base + "?width=320")
    if r.status == 200:
        print("# screenshot %dx%d: full %d bytes, ?width=320 %d bytes (%.1f%%)"
              % (fw, fh, len(full), len(r.body), 100.0 * len(r.body) / len(full)), flush=True)
    t.ok(r.status == 200 and ihdr(r.body) is not None and ihdr(r.body)[0] == 320, "?width=320: 320 wide", r)
    bad = ["0", "-5", "abc", "12.5", "99999", "", "15", "4097", "1e3", "+160", "%20160", "160%20",
           "0x40", "160%00", "%zz", "16%", "1" * 3000]
    for v in bad:
        r = admin.get(base + "?width=" + v)
        t.ok(r.status == 400 and r.json().get("error", {}).get("code") == "invalid_request",
             "?width=%s: 400 invalid_request" % (v if len(v) < 20 else v[:8] + "…"), r)
    for q, what in (("width", "width without a value"), ("width=160&width=320", "width twice, two values"),
                    ("width=160&width=160", "width twice, one value"),
                    ("width=160&wid%74h=320", "width twice, once percent-encoded")):
        r = admin.get(base + "?" + q)
        t.ok(r.status == 400 and r.json()["error"]["code"] == "invalid_request", "?%s (%s): 400" % (q, what), r)
    r = lib.Client(port).get(base + "?width=160")
    t.ok(r.status == 401, "?width=160 without credentials: 401", r)
    r = bob.get(base + "?width=160")
    t.ok(r.status == 404, "?width=160 of another workspace's desktop: 404", r)
    r = admin.get("/api/desktops/dsk_nosuchdesktop0000000/screenshot?width=160")
    t.ok(r.status == 404, "?width=160 of no such desktop: 404", r)
    d = admin.get("/api/desktops/" + did).json()
    t.ok(d["state"] == "running", "the refused requests left the desktop running", d)


if r.status == 200:
    thumbnails(did, r.body, 1024, 768)

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
    full = r.body
    r = admin.get("/api/desktops/%s/screenshot?width=320" % did)
    if r.status == 200:
        print("# screenshot 1280x1024: full %d bytes, ?width=320 %d bytes (%.1f%%)"
              % (len(full), len(r.body), 100.0 * len(r.body) / len(full)), flush=True)
    t.ok(r.status == 200 and ihdr(r.body) == (320, 256), "?width=320 of 1280x1024: 320x256", r)
else:
    t.ok(False, "a screenshot after the change", r)
r = admin.post("/api/desktops/%s/stop" % did)
d = admin.wait_state(did, ["stopped", "error"], timeout=120)
t.ok(d["state"] == "stopped", "stopped", d)
for q in ("", "?width=160"):
    r = admin.get("/api/desktops/%s/screenshot%s" % (did, q))
    t.ok(r.status == 409, "screenshot%s of a stopped desktop: 409" % q, r)
r = admin.get("/api/desktops/%s/screenshot?width=0" % did)
t.ok(r.status == 400, "?width=0 of a stopped desktop: 400 (the query is checked first)", r)
admin.delete("/api/desktops/" + did)
admin.wait_state(did, "destroyed", timeout=120)
t.done()
