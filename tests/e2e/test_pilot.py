"""The pilot on a tiny desktop, against the scripted model server, reached
only through bureaud's egress proxy: a shell tool round trip (Anthropic and
OpenAI formats), egress allowed and refused, approvals (approved, denied,
nobody answers), an interrupt, provider errors, history and usage across a
bureaud restart and a desktop stop/start, and the API's refusals."""
import json
import os
import subprocess
import time

import lib
from model_server import ModelServer

t = lib.Tap()
b = lib.Bureaud(extra_args=["--accel", "tcg"]).start()
admin = b.admin()
ws = b.workspace()
model = ModelServer()


def exec_(did, cmd):
    return admin.post("/api/desktops/%s/exec" % did, {"command": ["sh", "-c", cmd]}, timeout=90)


def provider(did, name, base):
    conf = json.dumps({"provider": name, "apiKey": "sk-test-secret", "baseUrl": base,
                       "model": "test-model", "retryBaseMs": 100})
    r = admin.post("/api/desktops/%s/exec" % did, {
        "command": ["sh", "-c", "mkdir -p /data/etc/bureau && umask 077 && cat > /data/etc/bureau/provider.json"], "user": "root",
        "stdin": conf})
    return r.status == 200 and r.json()["exitCode"] == 0


def chat(did, text):
    r = admin.post("/api/desktops/%s/chat" % did, {"message": text})
    return r.json()["id"] if r.status == 202 else None


def wait_reply(did, msg_id, roles=("assistant", "error"), timeout=120):
    """The conversation once a message answering msg_id has a role in roles
    and the agent is idle or in error again."""
    end = time.time() + timeout
    msgs = []
    while time.time() < end:
        msgs = admin.get("/api/desktops/%s/chat?limit=500" % did).json()["messages"]
        mine = [m for m in msgs if m["replyTo"] == msg_id]
        status = admin.get("/api/desktops/" + did).json()["agent"]["status"]
        if any(m["role"] in roles for m in mine) and status in ("idle", "error"):
            return mine
        time.sleep(0.5)
    return [m for m in msgs if m["replyTo"] == msg_id]


def tool_results(req):
    """The tool results a request carries, whatever the format."""
    out = []
    for m in req["body"].get("messages", []):
        if m.get("role") == "tool":
            out.append(m["content"])
        if isinstance(m.get("content"), list):
            for c in m["content"]:
                if c.get("type") == "tool_result":
                    out.extend(x.get("text", "") for x in c["content"])
    return out


r = admin.post("/api/desktops", {"name": "pilot", "image": "tiny"})
did = r.json()["id"]
d = admin.wait_state(did, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "a tiny desktop runs", d)
t.ok(d.get("agent", {}).get("status") in ("idle", "working"), "its JSON carries the agent's status", d.get("agent"))

# Egress: only what the workspace allows.
r = admin.request("PUT", "/api/workspaces/%s/egress" % ws, {"allow": ["127.0.0.1:%d" % model.port]})
t.ok(r.status == 200 and r.json()["allow"] == ["127.0.0.1:%d" % model.port], "PUT the workspace allowlist", r)
r = admin.request("PUT", "/api/workspaces/%s/egress" % ws, {"allow": ["*"]})
t.ok(r.status == 400, "an allowlist entry '*' is refused: 400", r)
r = admin.request("PUT", "/api/workspaces/%s/egress" % ws, {"allow": ["h%d.example" % i for i in range(100)]})
t.ok(r.status == 413, "an allowlist too long: 413", r)
r = admin.get("/api/workspaces/%s/egress" % ws)
t.ok(r.status == 200 and r.json()["allow"] == ["127.0.0.1:%d" % model.port], "GET returns the allowlist kept", r)

t.ok(provider(did, "anthropic", model.url), "the provider's configuration is in the guest")

# 1. A shell tool call whose result goes back to the model.
model.script({"text": "Let me compute.", "tools": [{"name": "shell", "input": {"command": "echo pilot-$((6*7))"}}],
              "usage": (100, 20)},
             lambda req: {"text": "The answer is %s." % ("42" if any("pilot-42" in x for x in tool_results(req)) else "unknown"),
                          "usage": (150, 10)})
mid = chat(did, "What is six times seven? Use the shell.")
t.ok(mid and mid.startswith("msg_"), "POST chat: 202 with a message id", mid)
mine = wait_reply(did, mid)
roles = [m["role"] for m in mine]
t.ok(roles[:1] == ["assistant"] and "tool_call" in roles and "tool_result" in roles, "the reply streams: text, tool call, tool result", roles)
res = [m for m in mine if m["role"] == "tool_result"]
t.ok(res and "pilot-42" in res[0]["content"], "the shell ran in the guest", res)
t.ok(mine and mine[-1]["role"] == "assistant" and mine[-1]["content"] == "The answer is 42.",
     "the final answer, made from the tool's result, lands in the conversation", mine[-1:] if mine else None)
reqs = model.requests
t.ok(len(reqs) >= 2 and reqs[0]["path"] == "/v1/messages" and reqs[0]["headers"].get("x-api-key") == "sk-test-secret"
     and reqs[0]["headers"].get("anthropic-version") == "2023-06-01" and reqs[0]["body"]["stream"] is True,
     "Anthropic Messages requests, streamed, with the user's key", reqs[:1])
r = admin.get("/api/desktops/%s/egress" % did)
t.ok(r.status == 200 and any(e["allowed"] and e["port"] == model.port for e in r.json()["entries"]),
     "the provider connection is in the egress log as allowed", r)

# 2. Nothing else is reachable.
r = exec_(did, "printf 'CONNECT 10.9.8.7:80 HTTP/1.1\\r\\nHost: 10.9.8.7:80\\r\\n\\r\\n' | nc -w 5 10.0.2.100 3128; echo; nc -w 3 10.0.2.2 22 </dev/null && echo direct-ok")
out = r.json().get("stdout", "") if r.status == 200 else ""
t.ok(" 403" in out and "direct-ok" not in out, "a connection to a non-allowlisted address fails", out)
time.sleep(1)
r = admin.get("/api/desktops/%s/egress" % did)
t.ok(any(not e["allowed"] and e["host"] == "10.9.8.7" for e in r.json()["entries"]), "and is logged as refused", r)

# 3. Usage.
r = admin.get("/api/desktops/%s/usage" % did)
u = r.json()
t.ok(r.status == 200 and u["calls"] == 2 and u["inputTokens"] == 250 and u["outputTokens"] == 30,
     "token usage per call is summed per desktop", u)

# 4. Approvals.
r = admin.request("PUT", "/api/workspaces/%s/approval-rules" % ws, {"rules": [{"pattern": "*deploy-prod*"}], "timeoutSeconds": 4})
t.ok(r.status == 200, "PUT approval rules", r)
r = admin.request("PUT", "/api/workspaces/%s/approval-rules" % ws, {"rules": "no"})
t.ok(r.status == 400, "malformed rules: 400", r)


def approval_round(decision):
    n = len(model.requests)
    model.script({"tools": [{"name": "shell", "input": {"command": "sudo true; echo ran-$((1+1))"}}]},
                 {"text": "done"})
    mid = chat(did, "Do the sensitive thing")
    end, pending = time.time() + 90, None
    while time.time() < end and not pending:
        lst = admin.get("/api/approvals?status=pending").json()["approvals"]
        pending = lst[0] if lst else None
        time.sleep(0.5)
    if decision:
        st = admin.get("/api/desktops/" + did).json()["agent"]["status"]
        t.ok(st == "waiting_approval", "the agent waits for approval", st)
        r = admin.post("/api/approvals/" + pending["id"], {"decision": decision, "note": "by the test"})
        t.ok(r.status == 200 and r.json()["decidedBy"], "POST the decision: %s" % decision, r)
        r = admin.post("/api/approvals/" + pending["id"], {"decision": decision})
        t.ok(r.status == 409, "deciding twice: 409", r)
    mine = wait_reply(did, mid)
    res = [m for m in mine if m["role"] == "tool_result"]
    return pending, res


pending, res = approval_round("approve")
t.ok(pending and pending["action"].startswith("sudo true") and "sudo" in pending["reason"],
     "a sensitive command creates an approval with the exact command", pending)
upd = lib.follow_events(b.port, admin.key, last_id=0, n=100000, timeout=10,
                        until=lambda e: e.get("type") == "approval.updated"
                        and e["approval"]["id"] == pending["id"])
upd = [e for _, typ, e in upd if typ == "approval.updated" and e["approval"]["id"] == pending["id"]]
t.ok(upd and upd[0]["approval"]["screenshotUrl"] == "/api/approvals/%s/screenshot" % pending["id"],
     "an approval.updated event says its screenshot is stored", upd)
r = admin.get("/api/approvals/%s/screenshot" % pending["id"])
t.ok(r.status == 200 and r.body[:8] == b"\x89PNG\r\n\x1a\n", "the approval carries a screenshot", r)
t.ok(res and "ran-2" in res[0]["content"], "approved: the command runs", res)
pending, res = approval_round("deny")
t.ok(res and "ran-2" not in res[0]["content"] and res[0]["data"]["refused"], "denied: the command is refused", res)
pending, res = approval_round(None)
a = admin.get("/api/approvals/" + pending["id"]).json()
t.ok(a["status"] == "expired" and res and res[0]["data"]["refused"], "nobody answers: refused at the timeout", (a, res))
audit = admin.get("/api/audit?limit=500").json()
text = json.dumps(audit)
t.ok("approval.decide" in text and "approval.expire" in text, "decisions are in the audit log", None)

# 5. An interrupt stops a long task.
model.script({"hang": 120})
mid = chat(did, "Think for a long time")
end = time.time() + 60
while time.time() < end and admin.get("/api/desktops/" + did).json()["agent"]["status"] != "working":
    time.sleep(0.3)
r = admin.post("/api/desktops/%s/chat/interrupt" % did)
t.ok(r.status == 202, "POST interrupt: 202", r)
mine = wait_reply(did, mid, timeout=60)
t.ok(any(m["role"] == "error" and (m["data"] or {}).get("code") == "interrupted" for m in mine), "the task stops as interrupted", mine)

# 6. Provider errors reach the chat; the pilot serves the next message.
for name, answers, code in [
        ("401 bad key", [{"status": 401, "message": "invalid x-api-key"}], "auth"),
        ("5xx after retries", [{"status": 500}] * 4, "provider_unavailable"),
        ("a cut stream after retries", [{"cut": True, "text": "partial answer"}] * 4, "stream_cut"),
        ("malformed JSON after retries", [{"malformed": True}] * 4, "malformed_response")]:
    model.script(*answers)
    mid = chat(did, "hello " + name)
    mine = wait_reply(did, mid)
    errs = [m for m in mine if m["role"] == "error"]
    t.ok(errs and errs[0]["data"]["code"] == code, "%s: a clear agent error (%s)" % (name, code), mine)
model.script({"status": 429, "message": "slow down", "retry_after": 0}, {"text": "after the retry"})
mine = wait_reply(did, chat(did, "rate limited"))
t.ok(mine and mine[-1]["content"] == "after the retry", "429: retried, then answered", mine)

# 7. OpenAI Chat Completions format.
t.ok(provider(did, "openai", model.url + "/v1"), "switch the desktop to an OpenAI provider")
model.script({"tools": [{"name": "shell", "input": {"command": "echo openai-$((2*21))"}}]},
             lambda req: {"text": "openai says %s" % ("42" if any("openai-42" in x for x in tool_results(req)) else "?")})
n0 = len(model.requests)
mine = wait_reply(did, chat(did, "openai round"))
t.ok(mine and mine[-1]["content"] == "openai says 42", "function calling round trip in the OpenAI format", mine)
req = model.requests[n0]
t.ok(req["path"] == "/v1/chat/completions" and req["headers"].get("authorization") == "Bearer sk-test-secret"
     and req["body"]["stream"] is True and req["body"]["tools"][0]["type"] == "function", "OpenAI requests as documented", req["path"])

# 8. Refusals of the API.
r = admin.post("/api/desktops/%s/chat" % did, {"message": ""})
t.ok(r.status == 400, "an empty message: 400", r)
r = admin.post("/api/desktops/%s/chat" % did, {"message": "x" * 40000})
t.ok(r.status == 413, "an oversized message: 413", r)
r = admin.post("/api/desktops/%s/chat" % did, {"message": "hi", "extra": 1})
t.ok(r.status == 400, "an unknown field: 400", r)
r = admin.post("/api/desktops/%s/chat" % did, raw=b"{not json")
t.ok(r.status == 400, "malformed JSON: 400", r)
r = admin.get("/api/desktops/%s/chat?limit=0" % did)
t.ok(r.status == 400, "limit=0: 400", r)
r = admin.post("/api/approvals/" + pending["id"], {"decision": "maybe"})
t.ok(r.status == 400, "a decision other than approve/deny: 400", r)
other = lib.Client(b.port)
r = other.get("/api/desktops/%s/chat" % did)
t.ok(r.status == 401, "without credentials: 401", r)
r = admin.post("/api/users", {"email": "eve@example.com", "password": "another long password"})
eve_c = lib.Client(b.port)
r = eve_c.post("/api/auth/login", {"email": "eve@example.com", "password": "another long password"})
cookie = r.header("Set-Cookie").split(";")[0] if r.status == 200 else ""
eve = lib.Client(b.port, cookie=cookie)
origin = {"Origin": "http://127.0.0.1:%d" % b.port}
t.ok(eve.get("/api/desktops/%s/chat" % did).status == 404, "another workspace's chat: 404")
t.ok(eve.post("/api/desktops/%s/chat" % did, {"message": "hi"}, headers=origin).status == 404, "posting to it: 404")
t.ok(eve.get("/api/approvals/" + pending["id"]).status == 404, "another workspace's approval: 404")
t.ok(eve.post("/api/approvals/" + pending["id"], {"decision": "approve"}, headers=origin).status == 404, "deciding it: 404")
t.ok(eve.get("/api/approvals").json()["approvals"] == [], "another workspace lists no approvals")
t.ok(eve.get("/api/desktops/%s/egress" % did).status == 404, "another workspace's egress log: 404")
t.ok(eve.get("/api/desktops/%s/usage" % did).status == 404, "another workspace's usage: 404")

# 9. History and usage survive a bureaud restart and a stop/start.
before = admin.get("/api/desktops/%s/chat?limit=500" % did).json()["messages"]
usage = admin.get("/api/desktops/%s/usage" % did).json()
b.stop()
b.start()
admin = b.admin()
after = admin.get("/api/desktops/%s/chat?limit=500" % did).json()["messages"]
t.ok([m["id"] for m in after] == [m["id"] for m in before], "the conversation survives a bureaud restart", len(after))
t.ok(admin.get("/api/desktops/%s/usage" % did).json() == usage, "so does the usage")
page = admin.get("/api/desktops/%s/chat?limit=3" % did).json()
older = admin.get("/api/desktops/%s/chat?limit=3&before=%s" % (did, page["nextBefore"])).json()
t.ok([m["id"] for m in older["messages"] + page["messages"]] == [m["id"] for m in after[-6:]], "paging with before", older)
admin.post("/api/desktops/%s/stop" % did)
admin.wait_state(did, "stopped", timeout=120)
model.script({"text": "back after the restart"})
mid = chat(did, "are you there?")
t.ok(mid and admin.get("/api/desktops/%s/chat?limit=1" % did).json()["messages"][-1]["status"] == "queued",
     "a message sent while stopped waits, queued", mid)
admin.post("/api/desktops/%s/start" % did)
admin.wait_state(did, ["running", "error"], timeout=180)
mine = wait_reply(did, mid)
t.ok(mine and mine[-1]["content"] == "back after the restart", "it is delivered when the desktop runs", mine)
last = model.requests[-1]["body"]["messages"]
t.ok(any("What is six times seven" in json.dumps(m) for m in last), "the pilot's conversation survived on the desktop's disk")
t.ok(len(admin.get("/api/desktops/%s/chat?limit=500" % did).json()["messages"]) > len(before), "the history kept growing")

admin.delete("/api/desktops/" + did)
admin.wait_state(did, ["destroyed"], timeout=120)

# 10. The provider chosen at create time: its host is open with no
# workspace allowlist entry, and through the CLI.
CLI = next((p for p in (os.environ.get("BUREAU_CLI"), os.path.join(lib.BUILD, "bureau"))
            if p and os.access(p, os.X_OK)), None)
cli_env = dict(os.environ, BUREAU_ENDPOINT="http://127.0.0.1:%d" % b.port, BUREAU_API_KEY=admin.key,
               BUREAU_CONFIG="/nonexistent/bureau-config")


def cli(*args, timeout=180):
    return subprocess.run([CLI] + list(args), env=cli_env, capture_output=True, text=True, timeout=timeout)


r = admin.request("PUT", "/api/workspaces/%s/egress" % ws, {"allow": []})
t.ok(r.status == 200 and r.json()["allow"] == [], "the workspace allowlist is emptied", r)
base = {"name": "pilot2", "image": "tiny", "provider": "anthropic", "model": "test-model", "apiKey": "sk-test-secret"}
for bad, why in ((dict(base, baseUrl="ftp://127.0.0.1/"), "a baseUrl not http(s)"),
                 (dict(base, baseUrl="http:///v1"), "a baseUrl without a host"),
                 (dict(base, baseUrl="http://h/" + "x" * 2048), "a baseUrl over 2048 characters"),
                 (dict(base, baseUrl=42), "a baseUrl not a string"),
                 ({"name": "pilot2", "image": "tiny", "baseUrl": model.url}, "a baseUrl without a provider")):
    r = admin.post("/api/desktops", bad)
    t.ok(r.status == 400 and b"sk-test-secret" not in r.body, "create refuses %s: 400" % why, r)
r = admin.post("/api/desktops", dict(base, baseUrl=model.url))
did2 = r.json()["id"]
t.ok(r.status == 201 and b"sk-test-secret" not in r.body, "a desktop created with its provider and baseUrl", r)
d = admin.wait_state(did2, ["running", "error"], timeout=180)
t.ok(d["state"] == "running", "it runs", d)
model.script({"text": "hello from the provider's own host", "usage": (5, 5)})
p = cli("chat", "pilot2", "hello there")
t.ok(p.returncode == 0 and "hello from the provider's own host" in p.stdout,
     "bureau chat: the scripted answer, through the provider's host with no allowlist entry", (p.returncode, p.stdout, p.stderr))
r = admin.get("/api/desktops/%s/egress" % did2)
t.ok(any(e["allowed"] and e["port"] == model.port for e in r.json()["entries"]),
     "the provider connection is logged as allowed", r)
r = exec_(did2, "printf 'CONNECT 10.9.8.7:80 HTTP/1.1\\r\\nHost: 10.9.8.7:80\\r\\n\\r\\n' | nc -w 5 10.0.2.100 3128; echo")
out = r.json().get("stdout", "") if r.status == 200 else ""
t.ok(" 403" in out, "another host is still refused", out)
p = cli("egress", "log", "pilot2")
t.ok(p.returncode == 0 and "10.9.8.7" in p.stdout and str(model.port) in p.stdout, "bureau egress log lists both", p.stdout)
p = cli("egress", "allow", ws, "api.example.com")
t.ok(p.returncode == 0 and admin.get("/api/workspaces/%s/egress" % ws).json()["allow"] == ["api.example.com"],
     "bureau egress allow adds a pattern", (p.stdout, p.stderr))
p = cli("egress", "deny", ws, "api.example.com")
t.ok(p.returncode == 0 and admin.get("/api/workspaces/%s/egress" % ws).json()["allow"] == [],
     "bureau egress deny removes it", (p.stdout, p.stderr))
p = cli("egress", "allow", ws, "*")
t.ok(p.returncode == 1, "bureau egress allow '*': the API's refusal, exit 1", (p.returncode, p.stderr))

# Approvals through the CLI.
model.script({"tools": [{"name": "shell", "input": {"command": "sudo true; echo cli-$((1+2))"}}]}, {"text": "done"})
mid = chat(did2, "Do the sensitive thing")
end, pending = time.time() + 90, None
while time.time() < end and not pending:
    lst = admin.get("/api/approvals?status=pending").json()["approvals"]
    pending = lst[0] if lst else None
    time.sleep(0.5)
p = cli("approvals", "ls")
t.ok(pending and p.returncode == 0 and pending["id"] in p.stdout and "pending" in p.stdout,
     "bureau approvals ls shows the pending approval", p.stdout)
p = cli("approvals", "approve", pending["id"] if pending else "apr_none", "--note", "from the cli")
t.ok(p.returncode == 0 and "approved" in p.stdout, "bureau approvals approve resolves it", (p.stdout, p.stderr))
mine = wait_reply(did2, mid)
res = [m for m in mine if m["role"] == "tool_result"]
t.ok(res and "cli-3" in res[0]["content"], "approved through the CLI: the command runs", res)
a = admin.get("/api/approvals/" + pending["id"]).json() if pending else {}
t.ok(a.get("status") == "approved" and a.get("note") == "from the cli", "the decision and its note are kept", a)
p = cli("approvals", "deny", pending["id"] if pending else "apr_none")
t.ok(p.returncode == 1, "deciding it again through the CLI: exit 1", (p.returncode, p.stderr))
p = cli("approvals", "approve", "apr_doesnotexist")
t.ok(p.returncode == 4, "an unknown approval: exit 4", (p.returncode, p.stderr))
model.script({"status": 401, "message": "bad key"})
p = cli("chat", did2, "this fails")
t.ok(p.returncode == 1 and "agent error" in p.stderr, "bureau chat exits 1 on an agent error", (p.returncode, p.stderr))

admin.delete("/api/desktops/" + did2)
admin.wait_state(did2, ["destroyed"], timeout=120)
model.close()
b.stop()
t.done()
