"""Mission Control as files and as a session probe, without a browser:
  - GET / is the app (its CSP header, no inline script), every module and
    stylesheet it reaches by import/@import/src/href is served with its
    type, and nothing it references is outside bureaud;
  - GET /api/auth/session answers {"user": null} without a valid login
    (no credentials, a bad cookie, a revoked or malformed key) and the
    caller with one; it takes no writes.
The dashboard itself is driven in a browser by test_web_fleet.py,
test_web_inbox.py, test_web_layout.py and test_browser.py."""
import os
import re

import yaml

import lib

t = lib.Tap()
b = lib.Bureaud().start()
admin = b.admin()
anon = lib.Client(b.port)

# --- the app's files -------------------------------------------------------
r = anon.get("/")
t.ok(r.status == 200 and "text/html" in (r.header("Content-Type") or ""), "GET / serves the app's page", r)
csp = r.header("Content-Security-Policy") or ""
t.ok("default-src 'self'" in csp and "connect-src 'self'" in csp, "the page carries its CSP", csp)
page = r.body.decode()
t.ok("<script>" not in page and "<script >" not in page, "no inline script in the page (CSP forbids it)")
t.ok('id="login"' in page and 'id="view"' in page, "the page has the login form and the view")

# The views are imported by name when their route is opened: crawl them all.
views = sorted(f for f in os.listdir(os.path.join(lib.ROOT, "web", "app", "views")) if f.endswith(".js"))
seen, queue, missing, foreign = set(), ["/"] + ["/static/app/views/" + f for f in views], [], []
refs = {  # what a file of each kind references
    "js": re.compile(r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)""", re.M),
    "css": re.compile(r"""@import\s+url\(\s*['"]?([^'")]+)['"]?\s*\)|url\(\s*['"]?(/[^'")]+)['"]?\s*\)"""),
    "html": re.compile(r"""\b(?:src|href)=['"]([^'"]+)['"]"""),
}
while queue:
    url = queue.pop()
    if url in seen:
        continue
    seen.add(url)
    r = anon.get(url)
    if r.status != 200:
        missing.append("%s: %d" % (url, r.status))
        continue
    text = r.body.decode("utf-8", "replace")
    # our files are followed; a vendored library's are only fetched
    if url.startswith("/vendor/") or not url.endswith((".js", ".css", ".html", "/")):
        continue
    kind = "html" if url.endswith(("/", ".html")) else url.rsplit(".", 1)[1]
    for target in [x for m in refs[kind].findall(text) for x in (m if isinstance(m, tuple) else (m,)) if x]:
        if target.startswith("#") or "${" in target or target.startswith("data:"):
            continue
        if re.match(r"^[a-z]+:", target) or target.startswith("//"):
            foreign.append("%s -> %s" % (url, target))
            continue
        if not target.startswith("/"):
            base = url.rsplit("/", 1)[0]
            parts = (base + "/" + target).split("/")
            out = []
            for p in parts:
                if p == "..":
                    out.pop()
                elif p != ".":
                    out.append(p)
            target = "/".join(out)
        queue.append(target)
t.ok(len(seen) >= 8, "the app reaches its modules and styles (%d files)" % len(seen), sorted(seen))
t.ok(not missing, "every file the app references is served", "\n".join(missing))
t.ok(not foreign, "nothing references another origin", "\n".join(foreign))
for url, typ in [("/static/app/main.js", "text/javascript"), ("/static/app/style.css", "text/css"),
                 ("/static/app/icon.svg", "image/svg+xml")]:
    r = anon.get(url)
    t.ok(r.status == 200 and typ in (r.header("Content-Type") or ""), "%s is served as %s" % (url, typ), r)
r = anon.get("/static/app/../../src/api/api.c")
t.ok(r.status in (400, 404), "a path out of web/ is not served", r)

# --- the session probe -------------------------------------------------------
r = anon.get("/api/auth/session")
t.ok(r.status == 200 and r.json() == {"user": None, "workspaces": []},
     "without credentials: 200 {user: null, workspaces: []}", r)
r = anon.get("/api/auth/session", headers={"Cookie": "bureau_session=not-a-session"})
t.ok(r.status == 200 and r.json()["user"] is None, "a bad session cookie: user null", r)
r = anon.get("/api/auth/session", headers={"Authorization": "Bearer bk_nope"})
t.ok(r.status == 200 and r.json()["user"] is None, "an unknown API key: user null", r)
r = anon.get("/api/auth/session", headers={"Authorization": "Bearer " + "x" * 5000})
t.ok(r.status in (200, 431) and (r.status == 431 or r.json()["user"] is None),
     "an oversized bearer token: no user", r)
r = admin.get("/api/auth/session")
me = admin.get("/api/auth/me").json()
t.ok(r.status == 200 and r.json() == me, "with a key: the same answer as /api/auth/me", (r, me))

login = anon.post("/api/auth/login", {"email": "admin@localhost", "password": lib.Bureaud.PASSWORD})
cookie = login.header("Set-Cookie").split(";")[0]
r = lib.Client(b.port, cookie=cookie).get("/api/auth/session")
t.ok(r.status == 200 and r.json()["user"]["email"] == "admin@localhost", "with the login cookie: the user", r)
r = lib.Client(b.port, cookie=cookie).post("/api/auth/logout", headers={"Origin": "http://127.0.0.1:%d" % b.port})
r = lib.Client(b.port, cookie=cookie).get("/api/auth/session")
t.ok(r.status == 200 and r.json()["user"] is None, "after logout: user null", r)

k = admin.post("/api/api-keys", {"name": "probe"}).json()
r = lib.Client(b.port, key=k["key"]).get("/api/auth/session")
t.ok(r.status == 200 and r.json()["user"] is not None, "a fresh key: the user", r)
admin.delete("/api/api-keys/" + k["id"])
r = lib.Client(b.port, key=k["key"]).get("/api/auth/session")
t.ok(r.status == 200 and r.json()["user"] is None, "the key revoked: user null", r)
r = anon.post("/api/auth/session", {})
t.ok(r.status == 405, "POST /api/auth/session: 405", r)
r = anon.get("/api/auth/session?x=" + "a" * 20000)
t.ok(r.status in (414, 431, 400), "an oversized request line is refused", r)

# The page listens to exactly the event types bureaud documents.
with open(os.path.join(lib.ROOT, "web", "app", "events.js")) as f:
    js = f.read()
listened = set(re.findall(r"'([a-z]+\.[a-z.]+)'", js[js.index("export const TYPES"):js.index("];")]))
with open(os.path.join(lib.ROOT, "docs", "openapi.yaml")) as f:
    spec = yaml.safe_load(f)
documented = set(re.findall(r"`((?:desktop|agent|chat|approval|alert)\.[a-z.]+)`",
                            spec["paths"]["/api/events"]["get"]["description"]))
t.ok(listened and listened == documented, "events.js listens to every documented event type, no other",
     (sorted(listened - documented), sorted(documented - listened)))

t.done()
