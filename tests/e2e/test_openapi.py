#!/usr/bin/env python3
"""docs/openapi.yaml against a real bureaud: the spec is well formed, every
documented operation is routed, every route is documented, the statuses the
server answers are documented, and live JSON fits the documented schemas."""
import http.client
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml, installed by scripts/deps.sh
    print("1..0 # SKIP python3-yaml is not installed")
    sys.exit(1)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SPEC_PATH = os.path.join(lib.ROOT, "docs", "openapi.yaml")

t = lib.Tap()
with open(SPEC_PATH) as f:
    spec = yaml.safe_load(f)


def resolve(node):
    """Follows local $refs ("#/components/...")."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("non-local $ref " + ref)
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
        seen += 1
        if seen > 20:
            raise ValueError("$ref loop at " + ref)
    return node


def all_refs(node, out):
    if isinstance(node, dict):
        if "$ref" in node:
            out.append(node["$ref"])
        for v in node.values():
            all_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            all_refs(v, out)
    return out


def operations():
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method], item.get("parameters", [])


def validate(value, schema, where, errors, extra):
    """A JSON Schema subset (what the spec uses): $ref, type, nullable,
    enum, required, properties, items, additionalProperties. Fields the
    schema does not list go to extra."""
    schema = resolve(schema)
    if value is None:
        if not schema.get("nullable"):
            errors.append("%s: null but not nullable" % where)
        return
    typ = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if typ and not checks[typ](value):
        errors.append("%s: %r is not %s" % (where, value, typ))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append("%s: required field %r missing" % (where, name))
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                validate(v, props[k], where + "." + k, errors, extra)
            elif isinstance(addl, dict):
                validate(v, addl, where + "." + k, errors, extra)
            elif props or addl is False:
                extra.append(where + "." + k)
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            validate(v, schema["items"], "%s[%d]" % (where, i), errors, extra)


def check_body(name, resp, op, status=None):
    """Checks a live answer: documented status, JSON fitting its schema."""
    status = status or resp.status
    responses = op["responses"]
    if not t.ok(str(status) in responses, name + ": status %d is documented" % status,
                "documented: %s; body %r" % (sorted(responses), resp.body[:300])):
        return
    content = resolve(responses[str(status)]).get("content", {})
    if "application/json" not in content:
        return
    errors, extra = [], []
    try:
        body = resp.json()
    except ValueError as e:
        t.ok(False, name + ": answers JSON", str(e))
        return
    validate(body, content["application/json"]["schema"], "$", errors, extra)
    t.ok(not errors, name + ": JSON has the documented fields and types", "\n".join(errors))
    t.ok(not extra, name + ": no undocumented fields", ", ".join(extra))


# --- the spec on its own -------------------------------------------------

t.eq(spec.get("openapi"), "3.0.3", "spec: OpenAPI 3.0.3")
schemes = spec.get("components", {}).get("securitySchemes", {})
t.ok(any(s.get("scheme") == "bearer" for s in schemes.values()) and
     any(s.get("in") == "cookie" and s.get("name") == "bureau_session" for s in schemes.values()),
     "spec: bearer and bureau_session cookie security schemes")
bad_refs = []
for ref in all_refs(spec, []):
    try:
        resolve({"$ref": ref})
    except (KeyError, ValueError, TypeError) as e:
        bad_refs.append("%s (%s)" % (ref, e))
t.ok(not bad_refs, "spec: every $ref resolves", "\n".join(bad_refs))

problems = []
op_ids = set()
for path, method, op, shared in operations():
    where = method.upper() + " " + path
    if op.get("operationId") in op_ids or not op.get("operationId"):
        problems.append(where + ": operationId missing or repeated")
    op_ids.add(op.get("operationId"))
    if not op.get("responses"):
        problems.append(where + ": no responses")
    declared = {resolve(p)["name"] for p in shared + op.get("parameters", [])
                if resolve(p)["in"] == "path"}
    if declared != set(re.findall(r"\{(\w+)\}", path)):
        problems.append(where + ": path parameters %s declared as %s" %
                        (re.findall(r"\{(\w+)\}", path), sorted(declared)))
    if "requestBody" in op:
        for ctype, media in op["requestBody"]["content"].items():
            schema = resolve(media["schema"])
            if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
                problems.append(where + ": request body allows unknown fields")
t.ok(not problems, "spec: operations have ids, responses, path parameters, closed bodies",
     "\n".join(problems))

# --- routes: documented <-> served ---------------------------------------

documented = {(m.upper(), p) for p, m, _, _ in operations()}
try:
    out = subprocess.run([os.path.join(lib.BUILD, "bureaud"), "--print-routes"],
                         capture_output=True, text=True, timeout=30)
    served = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and (parts[1].startswith("/api/") or parts[1] == "/metrics"):
            served.add((parts[0].upper(), parts[1]))
    t.ok(out.returncode == 0 and served, "bureaud --print-routes lists routes",
         out.stderr[-2000:])
except OSError as e:
    served = set()
    t.ok(False, "bureaud --print-routes runs", str(e))
t.ok(not served - documented, "every route of bureaud is documented",
     "\n".join("%s %s" % r for r in sorted(served - documented)))
t.ok(not documented - served, "every documented operation is in bureaud's route table",
     "\n".join("%s %s" % r for r in sorted(documented - served)))

# --- live answers --------------------------------------------------------

d = lib.Bureaud().start()
admin = d.admin()
anon = lib.Client(d.port)

r = admin.get("/api/no-such-route-here")
t.ok(r.status == 404 and r.json().get("error", {}).get("code") == "no_route",
     "an unrouted path answers 404 no_route", repr(r))
r = admin.request("PUT", "/api/tiers")
t.ok(r.status == 405, "a wrong method on a routed path answers 405", repr(r))

FAKE = {"id": "zz_0000000000000000000"}


def probe(path, method):
    """A request that exercises routing without changing anything: fake
    ids, an empty JSON object as body."""
    url = re.sub(r"\{(\w+)\}", lambda m: FAKE.get(m.group(1), "zz"), path)
    client = anon if path == "/api/auth/logout" else admin
    if path == "/api/events":
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        conn.request("GET", url, headers={"Authorization": "Bearer " + admin.key})
        resp = conn.getresponse()
        result = lib.Response(resp.status, resp.getheaders(), b"")
        conn.close()
        return result
    body = {} if method == "post" else None
    return client.request(method.upper(), url, body=body)


for path, method, op, _ in operations():
    name = "%s %s" % (method.upper(), path)
    r = probe(path, method)
    code = None
    try:
        code = r.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        pass
    t.ok(r.status != 405 and not (r.status == 404 and code == "no_route"),
         name + ": routed", repr(r))
    check_body(name + " (probe)", r, op)


def op_of(path, method):
    return spec["paths"][path][method]


# the endpoints without path parameters: live JSON against the schemas
for path in ("/api/health", "/api/auth/me", "/api/workspaces", "/api/api-keys", "/api/tiers",
             "/api/desktops", "/api/audit", "/api/usage"):
    r = admin.get(path)
    t.eq(r.status, 200, "GET %s answers 200" % path)
    check_body("GET " + path, r, op_of(path, "get"))

# the browser's way in: session cookie, then logout
r = anon.post("/api/auth/login", {"email": "admin@localhost", "password": lib.Bureaud.PASSWORD})
check_body("POST /api/auth/login", r, op_of("/api/auth/login", "post"))
cookie = (r.header("Set-Cookie") or "").split(";")[0]
t.ok(cookie.startswith("bureau_session="), "login sets the bureau_session cookie", repr(r))
session = lib.Client(d.port, cookie=cookie)
r = session.get("/api/auth/me")
check_body("GET /api/auth/me (cookie)", r, op_of("/api/auth/me", "get"))
r = session.post("/api/auth/logout", headers={"Origin": "http://127.0.0.1:%d" % d.port})
check_body("POST /api/auth/logout (cookie)", r, op_of("/api/auth/logout", "post"))
t.eq(session.get("/api/auth/me").status, 401, "after logout the cookie is refused")

tiers = {x["id"]: x for x in admin.get("/api/tiers").json()["tiers"]}
t.ok(set(tiers) == {"free", "pro", "max"} and
     (tiers["free"]["vcpus"], tiers["free"]["memoryMb"], tiers["free"]["diskGb"]) == (2, 4096, 20)
     and (tiers["max"]["memoryMb"], tiers["max"]["diskGb"]) == (16384, 80),
     "GET /api/tiers: free, pro, max with the seeds' caps", repr(tiers))

# answers of the endpoints with parameters, on real resources
r = admin.post("/api/workspaces", {"name": "openapi-ws"})
check_body("POST /api/workspaces", r, op_of("/api/workspaces", "post"))
ws = r.json().get("id") if r.status == 201 else d.workspace()
r = admin.get("/api/workspaces/" + ws)
check_body("GET /api/workspaces/{id}", r, op_of("/api/workspaces/{id}", "get"))
r = admin.get("/api/workspaces/%s/members" % ws)
check_body("GET /api/workspaces/{id}/members", r, op_of("/api/workspaces/{id}/members", "get"))
r = admin.post("/api/api-keys", {"name": "openapi"})
check_body("POST /api/api-keys", r, op_of("/api/api-keys", "post"))
if r.status == 201:
    r = admin.delete("/api/api-keys/" + r.json()["id"])
    check_body("DELETE /api/api-keys/{id}", r, op_of("/api/api-keys/{id}", "delete"))
r = admin.post("/api/desktops", {"name": "x", "bogus": 1})
t.ok(r.status == 400 and r.json()["error"]["code"] in ("unknown_field", "invalid_request"),
     "POST /api/desktops with an undocumented field answers 400", repr(r))
check_body("POST /api/desktops (unknown field)", r, op_of("/api/desktops", "post"))
r = admin.post("/api/desktops/bulk", {"action": "stop", "ids": ["dsk_00000000000000000000"]})
t.ok(r.status == 200 and r.json()["results"][0]["status"] == 404,
     "POST /api/desktops/bulk of an unknown id: 200 with a 404 entry", repr(r))
check_body("POST /api/desktops/bulk", r, op_of("/api/desktops/bulk", "post"))
r = admin.get("/api/audit?action=desktop.*&since=2026-01-01&userId=" +
              admin.get("/api/auth/me").json()["user"]["id"])
check_body("GET /api/audit (filtered)", r, op_of("/api/audit", "get"))

if os.path.exists(os.path.join(lib.IMAGES, "tiny", "current")) or os.environ.get("BUREAU_TEST_VMS"):
    r = admin.post("/api/desktops", {"name": "openapi-dsk", "workspaceId": ws, "image": "tiny"})
    check_body("POST /api/desktops", r, op_of("/api/desktops", "post"))
    if r.status == 201:
        dsk = r.json()["id"]
        r = admin.get("/api/desktops/" + dsk)
        check_body("GET /api/desktops/{id}", r, op_of("/api/desktops/{id}", "get"))
        r = admin.get("/api/desktops?workspaceId=" + ws)
        check_body("GET /api/desktops?workspaceId", r, op_of("/api/desktops", "get"))
        r = admin.post("/api/desktops/bulk", {"action": "stop", "ids": [dsk], "mode": "shutdown"})
        t.ok(r.status == 200 and r.json()["results"][0]["status"] == 202,
             "POST /api/desktops/bulk stop: a 202 entry with the desktop", repr(r))
        check_body("POST /api/desktops/bulk (a desktop)", r, op_of("/api/desktops/bulk", "post"))
        r = admin.delete("/api/desktops/" + dsk)
        check_body("DELETE /api/desktops/{id}", r, op_of("/api/desktops/{id}", "delete"))
        try:
            admin.wait_state(dsk, ["destroyed"], timeout=120)
        except TimeoutError as e:
            t.ok(False, "the desktop of the schema check is destroyed", str(e))
else:
    print("# no tiny image in %s: desktop answers not checked live" % lib.IMAGES)

t.done()
