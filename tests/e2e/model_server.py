"""A scripted LLM provider for the pilot's tests, on 127.0.0.1.

It speaks the real wire formats, streaming included:
  POST /v1/messages            Anthropic Messages (SSE: message_start,
                               content_block_start/delta/stop, ping,
                               message_delta, message_stop; error bodies
                               {"type":"error","error":{"type","message"}})
  POST /v1/chat/completions    OpenAI Chat Completions (SSE chat.completion.chunk
  POST /chat/completions       with choices[0].delta, tool_calls deltas,
                               finish_reason, a usage chunk, data: [DONE];
                               error bodies {"error":{"message","type","code"}})

A test queues answers with script(); each request takes the next one.
An answer is a dict:
  {"text": "...", "tools": [{"name", "input", "id"?}], "usage": (in, out)}
  {"status": 401|429|500..., "message": "...", "retry_after": s?}
  {"cut": True, "text": "..."}      the stream ends before message_stop/[DONE]
  {"malformed": True}               a data: line that is not JSON
  {"hang": seconds}                 streams nothing for that long (interrupts)
or a function(request) returning one (to look at the tool results sent).
Every request is kept in .requests as {"path", "headers", "body"}.
"""
import json
import queue
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sse(event, data):
    text = "event: %s\n" % event if event else ""
    return (text + "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))).encode()


def anthropic_events(answer, model):
    """The event stream of one Anthropic Messages answer."""
    tin, tout = answer.get("usage", (11, 7))
    out = [sse("message_start", {"type": "message_start", "message": {
        "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
        "content": [], "model": model, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": tin, "output_tokens": 1}}})]
    index = 0
    text = answer.get("text", "")
    if text:
        out.append(sse("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": {"type": "text", "text": ""}}))
        out.append(sse("ping", {"type": "ping"}))
        for i in range(0, len(text), 7):
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "text_delta", "text": text[i:i + 7]}}))
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    for tool in answer.get("tools", []):
        args = json.dumps(tool["input"])
        out.append(sse("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": {"type": "tool_use",
                                                                 "id": tool.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                                                                 "name": tool["name"], "input": {}}}))
        for i in range(0, len(args), 9):
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "input_json_delta", "partial_json": args[i:i + 9]}}))
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    stop = "tool_use" if answer.get("tools") else "end_turn"
    out.append(sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": tout}}))
    out.append(sse("message_stop", {"type": "message_stop"}))
    return out


def openai_events(answer, model):
    """The chunk stream of one Chat Completions answer."""
    tin, tout = answer.get("usage", (11, 7))
    cid, created = "chatcmpl-" + uuid.uuid4().hex[:20], int(time.time())

    def chunk(delta, finish=None):
        return sse(None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                          "model": model, "system_fingerprint": "fp_test",
                          "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                       "finish_reason": finish}]})
    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    text = answer.get("text", "")
    for i in range(0, len(text), 7):
        out.append(chunk({"content": text[i:i + 7]}))
    for n, tool in enumerate(answer.get("tools", [])):
        args = json.dumps(tool["input"])
        out.append(chunk({"tool_calls": [{"index": n, "id": tool.get("id") or "call_" + uuid.uuid4().hex[:20],
                                          "type": "function",
                                          "function": {"name": tool["name"], "arguments": ""}}]}))
        for i in range(0, len(args), 9):
            out.append(chunk({"tool_calls": [{"index": n, "function": {"arguments": args[i:i + 9]}}]}))
    out.append(chunk({}, "tool_calls" if answer.get("tools") else "stop"))
    out.append(sse(None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                          "model": model, "choices": [],
                          "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                                    "total_tokens": tin + tout}}))
    out.append(b"data: [DONE]\n\n")
    return out


ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                    500: "api_error", 529: "overloaded_error"}


class ModelServer:
    def __init__(self):
        self.answers = queue.Queue()
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def script(self, *answers):
        for a in answers:
            self.answers.put(a)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_requests(self, n, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.2)
        raise AssertionError("model server: %d requests, wanted %d" % (len(self.requests), n))

    def handle(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        req = {"path": h.path, "headers": {k.lower(): v for k, v in h.headers.items()}, "body": body}
        with self.lock:
            self.requests.append(req)
        anthropic = h.path.endswith("/v1/messages")
        try:
            answer = self.answers.get(timeout=5)
        except queue.Empty:
            answer = {"status": 500, "message": "the test scripted no answer for this request"}
        if callable(answer):
            answer = answer(req)
        model = (body or {}).get("model", "test-model")
        if "status" in answer:
            return self.error(h, answer, anthropic)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        if answer.get("hang"):
            end = time.time() + answer["hang"]
            try:
                while time.time() < end:
                    time.sleep(0.5)
                    h.wfile.write(b": keep-alive\n\n")
                    h.wfile.flush()
            except OSError:
                pass
            return self.finish(h)
        if answer.get("malformed"):
            events = (anthropic_events if anthropic else openai_events)({"text": "x"}, model)
            events.insert(1, b"data: {\"type\": \"content_block_delta\", oops\n\n")
        else:
            events = (anthropic_events if anthropic else openai_events)(answer, model)
            if answer.get("cut"):
                events = events[:len(events) // 2]
        try:
            for e in events:
                h.wfile.write(e)
                h.wfile.flush()
        except OSError:
            pass
        self.finish(h)

    @staticmethod
    def finish(h):
        h.close_connection = True
        try:
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def error(self, h, answer, anthropic):
        status, message = answer["status"], answer.get("message", "scripted error")
        if anthropic:
            body = {"type": "error", "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"),
                                               "message": message}}
        else:
            body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                              "param": None, "code": "invalid_api_key" if status == 401 else None}}
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        if answer.get("retry_after") is not None:
            h.send_header("Retry-After", str(answer["retry_after"]))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
