#!/usr/bin/env python3
"""Metrics, persistent services and alerts end to end, on the tiny image:
the agent's samples on the desktop and its series, GET /metrics as
Prometheus text, a service that runs again after stop and start, a CPU
alert raised once, acknowledged and delivered (signed, retried) to a local
webhook receiver, a desktop-error alert, a refused-request burst, and the
bad input of every new endpoint. Prints TAP."""
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Tap()
TOKEN = "scrape-token-0123456789abcdef"
SECRET = "whsec_test_0123456789abcdefghij"
d = lib.Bureaud(extra_args=["--metrics-token", TOKEN]).start()
admin = d.admin()
anon = lib.Client(d.port)
ws = d.workspace()
origin = {"Origin": "http://127.0.0.1:%d" % d.port}


def code(r):
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def cli(*args):
    """Runs the bureau CLI against this bureaud; (exit code, stdout)."""
    env = dict(os.environ, BUREAU_ENDPOINT="http://127.0.0.1:%d" % d.port,
               BUREAU_API_KEY=admin.key, BUREAU_CONFIG="/nonexistent/bureau.conf")
    p = subprocess.run([os.path.join(lib.BUILD, "bureau")] + list(args), capture_output=True,
                       text=True, env=env, timeout=60)
    return p.returncode, p.stdout


def alerts(state="all", kind=None, client=admin, ws_id=None):
    q = "/api/alerts?state=" + state + ("&workspaceId=" + ws_id if ws_id else "")
    r = client.get(q)
    return [a for a in r.json()["alerts"] if kind is None or a["kind"] == kind]


# --- a second user, for the other-workspace checks -----------------------

admin.post("/api/users", {"email": "bob@example.org", "password": "bob's password"})
r = anon.post("/api/auth/login", {"email": "bob@example.org", "password": "bob's password"})
bob_cookie = r.header("Set-Cookie").split(";")[0]
r = lib.Client(d.port, cookie=bob_cookie).post("/api/api-keys", {"name": "bob"}, headers=origin)
bob = lib.Client(d.port, key=r.json()["key"])
bob_ws = bob.get("/api/workspaces").json()["workspaces"][0]["id"]

# --- GET /metrics: who may scrape ----------------------------------------

r = anon.get("/metrics")
t.ok(r.status == 401 and r.header("WWW-Authenticate"), "/metrics without credentials: 401", r)
r = anon.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
t.eq(r.status, 401, "/metrics with a wrong token: 401")
r = bob.get("/metrics")
t.ok(r.status == 403 and code(r) == "forbidden", "/metrics with a non-admin's key: 403", r)
r = anon.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
t.ok(r.status == 200 and r.header("Content-Type").startswith("text/plain"),
     "/metrics with the scrape token: 200 text/plain", r)

# --- alert rules ----------------------------------------------------------

r = admin.get("/api/workspaces/%s/alert-rules" % ws)
rules = r.json() if r.status == 200 else {}
t.ok(r.status == 200 and rules["cpu"] == {"enabled": True, "thresholdPercent": 90.0, "forSeconds": 300}
     and rules["refusedBurst"]["count"] == 20 and rules["desktopError"] == {"enabled": True},
     "alert rules: the seeds' defaults", r)
bad_rules = [
    ({"cpu": {"thresholdPercent": -1}}, "a negative threshold"),
    ({"cpu": {"thresholdPercent": 101}}, "a threshold over 100 %"),
    ({"cpu": {"forSeconds": -5}}, "a negative duration"),
    ({"cpu": {"bogus": 1}}, "an unknown field"),
    ({"network": {"enabled": True}}, "an unknown rule"),
    ({"cpu": {"enabled": "yes"}}, "a string for a boolean"),
    ({"cpu": 5}, "a number for a rule"),
]
for body, what in bad_rules:
    r = admin.request("PUT", "/api/workspaces/%s/alert-rules" % ws, body=body)
    t.ok(r.status == 400, "alert rules with %s: 400" % what, r)
r = admin.request("PUT", "/api/workspaces/%s/alert-rules" % ws, raw=b"[1,2",
                  headers={"Content-Type": "application/json"})
t.ok(r.status == 400, "alert rules: malformed JSON: 400", r)
r = admin.request("PUT", "/api/workspaces/%s/alert-rules" % ws,
                  raw=b'{"cpu":{"thresholdPercent":' + b"1" * (2 * 1024 * 1024) + b"}}",
                  headers={"Content-Type": "application/json"})
t.eq(r.status, 413, "alert rules: an oversized body: 413")
r = admin.get("/api/workspaces/%s/alert-rules" % ws)
t.ok(r.json() == rules, "refused changes left the rules alone", r)
r = bob.request("PUT", "/api/workspaces/%s/alert-rules" % ws, body={"cpu": {"enabled": False}})
t.eq(r.status, 404, "alert rules of another workspace: 404")
t.eq(bob.get("/api/workspaces/%s/alert-rules" % ws).status, 404,
     "reading another workspace's rules: 404")
# (refused requests of this file's own bad-input checks must not raise here)
r = admin.request("PUT", "/api/workspaces/%s/alert-rules" % ws,
                  body={"cpu": {"thresholdPercent": 50, "forSeconds": 10},
                        "refusedBurst": {"enabled": False}})
t.ok(r.status == 200 and r.json()["cpu"]["forSeconds"] == 10 and r.json()["memory"] == rules["memory"]
     and r.json()["refusedBurst"]["enabled"] is False,
     "alert rules: CPU over 50 % for 10 s, the rest unchanged", r)

# --- webhook --------------------------------------------------------------

for body, what in [({"url": "ftp://127.0.0.1/x"}, "an ftp URL"),
                   ({"url": "javascript:alert(1)"}, "a javascript: URL"),
                   ({"url": "http://"}, "a URL without host"),
                   ({"url": "http://a b/"}, "a URL with a space"),
                   ({"url": "http://127.0.0.1/", "secret": "short"}, "a short secret"),
                   ({"url": "http://127.0.0.1/", "extra": 1}, "an unknown field"),
                   ({"url": 5}, "a number for the URL"),
                   ({}, "no URL")]:
    r = admin.request("PUT", "/api/workspaces/%s/webhook" % ws, body=body)
    t.ok(r.status == 400, "webhook with %s: 400" % what, r)
r = admin.get("/api/workspaces/%s/webhook" % ws)
t.ok(r.status == 200 and r.json() == {"workspaceId": ws, "url": None, "createdAt": None},
     "no webhook yet: 200 with url null", r)
r = admin.request("PUT", "/api/workspaces/%s/webhook" % ws, body={"url": "http://127.0.0.1:9/x"})
t.ok(r.status == 200 and r.json().get("secret", "").startswith("whsec_"),
     "webhook without a secret: one is generated and shown", r)
r = admin.get("/api/workspaces/%s/webhook" % ws)
t.ok(r.status == 200 and "secret" not in r.json(), "the secret is not shown again", r)
t.eq(bob.get("/api/workspaces/%s/webhook" % ws).status, 404, "another workspace's webhook: 404")
t.eq(bob.delete("/api/workspaces/%s/webhook" % ws).status, 404,
     "deleting another workspace's webhook: 404")


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records deliveries; answers 500 to the first `fail_first` of them."""
    got = []
    fail_first = 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        n = len(Receiver.got)
        Receiver.got.append((dict(self.headers), body))
        self.send_response(500 if n < Receiver.fail_first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
hook_url = "http://127.0.0.1:%d/hook" % server.server_address[1]
r = admin.request("PUT", "/api/workspaces/%s/webhook" % ws, body={"url": hook_url, "secret": SECRET})
t.ok(r.status == 200 and "secret" not in r.json() and r.json()["url"] == hook_url,
     "webhook with a given secret: the secret is not echoed", r)


def deliveries(alert_id, event):
    return [g for g in list(Receiver.got) if g[0].get("X-Bureau-Event") == event and
            json.loads(g[1])["alert"]["id"] == alert_id]


def signed(headers, body):
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return headers.get("X-Bureau-Signature") == want


# --- alerts: listing and acknowledging, bad input ------------------------

t.eq(admin.get("/api/alerts?state=closed").status, 400, "alerts with an unknown state: 400")
t.eq(admin.get("/api/alerts?limit=0").status, 400, "alerts with limit 0: 400")
t.eq(admin.get("/api/alerts?workspaceId=" + bob_ws).status, 404,
     "alerts of another workspace: 404")
t.eq(admin.post("/api/alerts/alr_00000000000000000000/ack").status, 404,
     "acknowledging an unknown alert: 404")
r = admin.post("/api/alerts/alr_00000000000000000000/ack", {"x": 1})
t.eq(r.status, 400, "acknowledging with a body: 400")

# a burst of refused requests, in bob's workspace (rules: 5 within 60 s)
r = bob.request("PUT", "/api/workspaces/%s/alert-rules" % bob_ws,
                body={"refusedBurst": {"count": 5, "windowSeconds": 60}})
t.eq(r.status, 200, "bob sets a refused-burst rule of 5 a minute")
for i in range(8):
    bob.request("PUT", "/api/workspaces/%s/alert-rules" % bob_ws, body={"cpu": {"nope": i}})
burst = lib.poll(lambda: alerts(client=bob, kind="refusedBurst"), 10)
t.ok(burst and len(burst) == 1 and burst[0]["workspaceId"] == bob_ws and burst[0]["desktopId"] is None,
     "5 refused requests in a minute raise one refusedBurst alert", burst)
for i in range(5):
    bob.request("PUT", "/api/workspaces/%s/alert-rules" % bob_ws, body={"cpu": {"nope": i}})
time.sleep(1)
t.eq(len(alerts(client=bob, kind="refusedBurst")), 1, "more refusals during the burst raise nothing more")
t.eq(alerts(kind="refusedBurst", ws_id=ws), [], "bob's burst is not an alert of the admin's workspace")
if burst:
    t.eq(admin.post("/api/alerts/%s/ack" % burst[0]["id"]).status, 404,
         "acknowledging another workspace's alert: 404")

# --- services: bad input without a VM ------------------------------------

r = admin.post("/api/desktops", {"name": "mon", "workspaceId": ws, "image": "tiny"})
t.eq(r.status, 201, "create a tiny desktop")
dsk = r.json()["id"]
svc_path = "/api/desktops/%s/services" % dsk
for body, what, status in [
        ({"name": "x"}, "no command", 400),
        ({"name": "x", "command": []}, "an empty command", 400),
        ({"name": "x", "command": "sleep 1"}, "a string command", 400),
        ({"name": "x", "command": [""]}, "an empty program", 400),
        ({"name": "x", "command": ["a\u0000b"]}, "a NUL byte", 400),
        ({"name": "../x", "command": ["sleep", "1"]}, "a path as name", 400),
        ({"name": "x", "command": ["sleep", "1"], "user": "nobody"}, "an unknown user", 400),
        ({"name": "x", "command": ["sleep", "1"], "cwd": "/"}, "an unknown field", 400),
        ({"name": "x", "command": ["a" * 4000] * 10}, "a 40 kB command", 413)]:
    r = admin.post(svc_path, body)
    t.ok(r.status == status, "service with %s: %d" % (what, status), r)
t.eq(bob.post(svc_path, {"name": "x", "command": ["true"]}).status, 404,
     "adding a service to another workspace's desktop: 404")
t.eq(bob.get(svc_path).status, 404, "listing another workspace's services: 404")
t.eq(bob.get("/api/desktops/%s/metrics" % dsk).status, 404, "another workspace's metrics: 404")
t.eq(admin.get("/api/desktops/%s/metrics?since=yesterday" % dsk).status, 400,
     "metrics since a malformed time: 400")
SERVICE = ["sh", "-c", "while :; do date +%s.%N > $HOME/svc; sleep 1; done"]
r = admin.post(svc_path, {"name": "ticker", "command": SERVICE})
t.ok(r.status == 201 and r.json()["user"] == "agent" and r.json()["command"] == SERVICE,
     "a service added while the desktop boots", r)
t.eq(admin.post(svc_path, {"name": "ticker", "command": ["true"]}).status, 409,
     "the same service name twice: 409")
t.eq(bob.delete(svc_path + "/ticker").status, 404, "removing another workspace's service: 404")

# --- the desktop runs: metrics -------------------------------------------

running = admin.wait_state(dsk, ["running", "error"], timeout=240)
t.eq(running["state"], "running", "the desktop runs")
ready_at = time.time()
got = lib.poll(lambda: admin.get("/api/desktops/" + dsk).json().get("metrics"), 10, 0.25)
t.ok(got is not None, "metrics on the desktop's JSON within 10 s of ready", got)
if got:
    t.ok(0 <= got["cpuPercent"] <= 100 and got["memory"]["totalBytes"] > 0 and
         got["disk"]["path"] == "/data" and got["disk"]["totalBytes"] > 0 and
         got["network"]["rxBytes"] >= 0 and got["network"]["txBytes"] >= 0 and
         got["processes"] > 0 and len(got["load"]) == 3,
         "the sample: CPU, memory, /data, network, processes, load", got)
series = lib.poll(lambda: [s for s in admin.get("/api/desktops/%s/metrics" % dsk).json()["samples"]
                       if s["host"]], 15)
t.ok(series and series[-1]["host"]["rssBytes"] > 0 and series[-1]["host"]["cpuPercent"] >= 0,
     "the series has the host's view of QEMU", series and series[-1])
r = admin.get("/api/desktops/%s/metrics" % dsk)
samples = r.json()["samples"]
last = samples[-1]["at"]
r = admin.get("/api/desktops/%s/metrics?since=%s" % (dsk, last))
t.ok(r.status == 200 and all(s["at"] > last for s in r.json()["samples"]),
     "since the newest sample: only newer ones", r)
t.ok(r.json()["capacity"] == 720 and r.json()["intervalMs"] == 5000, "the series says its bounds", r)

r = anon.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
text = r.body.decode()
bad = [l for l in text.splitlines()
       if l and not l.startswith("#") and not re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\} -?[0-9.e+-]+$', l)]
t.ok(r.status == 200 and not bad, "/metrics parses as Prometheus text", "\n".join(bad[:5]))
t.ok(re.search(r'^bureau_desktops\{state="running"\} [1-9]', text, re.M),
     "/metrics counts the running desktop", text[:500])
t.ok(re.search(r'^bureau_desktop_cpu_percent\{desktop="%s",workspace="%s",tier="free",name="mon"\} '
               % (dsk, ws), text, re.M), "/metrics has the desktop's gauges with its labels")
t.ok('bureau_desktop_qemu_resident_bytes{desktop="%s"' % dsk in text, "/metrics has QEMU's memory")
t.eq(admin.get("/metrics").status, 200, "/metrics with an admin's API key: 200")
rc, out = cli("metrics", "mon", "--json")
t.ok(rc == 0 and json.loads(out)["samples"], "bureau metrics --json: the series", out[:300])
rc, out = cli("metrics", "mon", "--since", samples[-1]["at"])
t.ok(rc == 0 and out.startswith("TIME") and "QEMU RSS MB" in out, "bureau metrics: a table", out[:300])
rc, out = cli("metrics", "mon", "--since", "not-a-time")
t.eq(rc, 1, "bureau metrics --since garbage: the API's 400, exit 1")


# --- the desktop runs: the service ---------------------------------------

def exec_out(cmd):
    r = admin.post("/api/desktops/%s/exec" % dsk, {"command": ["sh", "-c", cmd], "user": "root"})
    return r.json().get("stdout", "") if r.status == 200 else ""


def service_running():
    s = admin.get(svc_path).json()["services"]
    return s and s[0]["status"] and s[0]["status"]["state"] == "running" and s[0]["status"]


def ticking():
    a = exec_out("cat /data/home/agent/svc")
    time.sleep(2.5)
    b = exec_out("cat /data/home/agent/svc")
    return a and b and a != b


st = lib.poll(service_running, 20)
t.ok(st and st["pid"] and st["log"] == "/var/log/bureau/services/ticker.log",
     "the service runs in the guest", st)
t.ok(lib.poll(ticking, 20, 0.1), "the service (as the agent user) writes its file every second")
t.ok("starting ticker" in exec_out("cat /var/log/bureau/services/ticker.log"),
     "the service's log is in the guest")
r = admin.post("/api/desktops/%s/stop" % dsk)
admin.wait_state(dsk, "stopped", timeout=120)
t.ok(admin.get("/api/desktops/" + dsk).json()["metrics"] is None,
     "a stopped desktop shows no metrics")
t.ok(admin.get(svc_path).json()["services"][0]["status"] is None,
     "a stopped desktop's service has no status")
admin.post("/api/desktops/%s/start" % dsk)
t.eq(admin.wait_state(dsk, ["running", "error"], timeout=240)["state"], "running",
     "the desktop runs again")
st = lib.poll(service_running, 20)
t.ok(st and st["restarts"] == 0, "after stop and start the service runs again", st)
t.ok(lib.poll(ticking, 20, 0.1), "and writes its file again")
rc, out = cli("services", "add", "mon", "nap", "--user", "root", "--", "sleep", "1000")
t.eq(rc, 0, "bureau services add")
rc, out = cli("services", "ls", "mon")
t.ok(rc == 0 and "nap" in out and "ticker" in out and "root" in out, "bureau services ls", out)
nap = lib.poll(lambda: [x for x in admin.get(svc_path).json()["services"]
                    if x["name"] == "nap" and x["status"] and x["status"]["state"] == "running"], 20)
t.ok(nap and "1000" in exec_out("cat /proc/%d/cmdline | tr '\\0' ' '" % nap[0]["status"]["pid"]),
     "a service added while the desktop runs starts at once", nap)
rc, out = cli("services", "rm", "mon", "nap")
t.eq(rc, 0, "bureau services rm")
gone = nap and lib.poll(lambda: exec_out("test -e /proc/%d/cmdline && grep -q 1000 /proc/%d/cmdline || echo gone"
                                     % (nap[0]["status"]["pid"], nap[0]["status"]["pid"])).strip() == "gone", 20)
t.ok(gone, "a removed service is stopped in the guest")
rc, out = cli("services", "rm", "mon", "nap")
t.eq(rc, 4, "bureau services rm of a missing service: exit 4")

# --- a CPU alert, once, delivered with retries, acknowledged -------------

before = {a["id"] for a in alerts(kind="cpu")}
exec_out("for i in 1 2 3; do (while :; do :; done) </dev/null >/dev/null 2>&1 & done")
cpu = lib.poll(lambda: [a for a in alerts(kind="cpu") if a["id"] not in before], 90, 1)
t.ok(cpu and len(cpu) == 1 and cpu[0]["desktopId"] == dsk and cpu[0]["value"] > 50 and
     cpu[0]["threshold"] == 50 and cpu[0]["state"] == "open",
     "CPU over 50 % for 10 s raises one alert", cpu)
time.sleep(20)
again = [a for a in alerts(kind="cpu") if a["id"] not in before]
t.eq(len(again), 1, "while the CPU stays high, no second alert")
last_cpu = admin.get("/api/desktops/" + dsk).json()["metrics"]
t.ok(last_cpu and last_cpu["cpuPercent"] > 50, "the condition still holds", last_cpu)
if cpu:
    alert = cpu[0]
    raised = lib.poll(lambda: len(deliveries(alert["id"], "alert.raised")) >= 2 and
                  deliveries(alert["id"], "alert.raised"), 20)
    t.ok(raised and len(raised) == 2, "the webhook got the alert twice: a 500, then a retry",
         [g[0].get("X-Bureau-Event") for g in Receiver.got])
    t.ok(raised and all(signed(h, b) for h, b in raised),
         "every delivery carries a valid X-Bureau-Signature")
    t.ok(raised and raised[0][1] == raised[1][1], "a retry sends the same body")
    t.ok(raised and json.loads(raised[1][1])["event"] == "alert.raised", "the body names the event")
    a = lib.poll(lambda: [x for x in alerts(kind="cpu") if x["id"] == alert["id"] and
                      x["delivery"]["state"] == "delivered"], 10)
    t.ok(a and a[0]["delivery"]["attempts"] == 2, "the alert records its delivery", a)
    evs = lib.follow_events(d.port, admin.key, last_id=0, n=1000, timeout=5,
                            until=lambda e: e.get("alertId") == alert["id"])
    t.ok(any(e[1] == "alert.raised" and e[2].get("alertId") == alert["id"] for e in evs),
         "alert.raised is on the event stream")
    t.eq(bob.post("/api/alerts/%s/ack" % alert["id"]).status, 404,
         "another workspace cannot acknowledge it")
    r = admin.post("/api/alerts/%s/ack" % alert["id"])
    t.ok(r.status == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledgedAt"],
         "acknowledge: 200", r)
    r = admin.post("/api/alerts/%s/ack" % alert["id"])
    t.ok(r.status == 409 and code(r) == "conflict", "acknowledge twice: 409", r)
    t.ok(alert["id"] not in {x["id"] for x in alerts("open")} and
         alert["id"] in {x["id"] for x in alerts("acknowledged")},
         "the alert moved from open to acknowledged")
    acked = lib.poll(lambda: deliveries(alert["id"], "alert.acknowledged"), 10)
    t.ok(acked and signed(*acked[0]) and json.loads(acked[0][1])["alert"]["state"] == "acknowledged",
         "the acknowledgement is delivered, signed", acked)
    rc, out = cli("alerts", "ack", alert["id"])
    t.eq(rc, 1, "bureau alerts ack of an acknowledged alert: exit 1")
    rc, out = cli("alerts", "ls", "--state", "acknowledged", "--json")
    t.ok(rc == 0 and alert["id"] in {x["id"] for x in json.loads(out)["alerts"]},
         "bureau alerts ls --state acknowledged --json", out[:300])
    rc, out = cli("alerts", "ls", "--state", "bogus")
    t.eq(rc, 1, "bureau alerts ls --state bogus: exit 1")
    evs = lib.follow_events(d.port, admin.key, last_id=0, n=1000, timeout=5,
                            until=lambda e: e.get("type") == "alert.acknowledged")
    t.ok(any(e[1] == "alert.acknowledged" for e in evs), "alert.acknowledged is on the event stream")

# --- a desktop in error ---------------------------------------------------

pids = d.qemu_pids()
if dsk in pids:
    os.kill(pids[dsk], signal.SIGKILL)
t.eq(admin.wait_state(dsk, ["error"], timeout=60)["state"], "error", "QEMU killed: the desktop is in error")
err = lib.poll(lambda: alerts(kind="desktopError"), 10)
t.ok(err and len(err) == 1 and err[0]["desktopId"] == dsk and "killed" in err[0]["message"],
     "a desktop in error raises a desktopError alert", err)
rc, out = cli("alerts", "ls")
t.ok(rc == 0 and err and err[0]["id"] in out and "desktopError" in out, "bureau alerts ls", out)
if err:
    rc, out = cli("alerts", "ack", err[0]["id"])
    t.ok(rc == 0 and "acknowledged" in out, "bureau alerts ack", out)
r = admin.delete(svc_path + "/ticker")
t.eq(r.status, 204, "remove the service: 204")
t.eq(admin.delete(svc_path + "/ticker").status, 404, "remove it again: 404")
t.eq(admin.get(svc_path).json()["services"], [], "no services left")
admin.delete("/api/desktops/" + dsk)
admin.wait_state(dsk, "destroyed", timeout=120)
t.ok(not d.qemu_pids(), "no QEMU left")
server.shutdown()
t.done()
