"""A scripted stand-in for the OpenAI Responses API, as the real Codex CLI
uses it (checked against @openai/codex 0.171.0). Python 3 stdlib only.

Standalone:

    python3 model_openai.py [--port 0] [--host 127.0.0.1] [--log FILE]

prints `LISTENING <port>` on stdout once bound, then serves until killed.
Point Codex at it with a custom provider in `$CODEX_HOME/config.toml`
(`$HOME/.codex/config.toml`; the full tested file is in
tests/fixtures/panes/real/codex-0.171.0/README.md):

    model = "gpt-5.5"
    model_provider = "mock"
    [model_providers.mock]
    name = "mock"
    base_url = "http://127.0.0.1:PORT/v1"
    wire_api = "responses"
    # env_key = "SOME_VAR"   optional: sent as a Bearer token, never checked;
    #                        without env_key Codex sends no Authorization

Codex also tries to reach outside hosts (github, chatgpt.com, ...). Start it
with HTTPS_PROXY/HTTP_PROXY=http://127.0.0.1:PORT and
NO_PROXY=127.0.0.1,localhost: this server then refuses each CONNECT with a 403
and records it (kind "proxy"), so nothing leaves the machine.

As a module: `ScriptedOpenAI` keeps the script and the request log.
`ScriptedOpenAI.handle(handler, method)` reads and answers one request on a
`http.server.BaseHTTPRequestHandler`; `ScriptedOpenAI.respond(handler, method,
target, headers, body)` answers a request whose body was already parsed.
`serve(port)` starts a threaded server in a daemon thread and returns it
(`srv.server_address[1]` is the port, `srv.model` the `ScriptedOpenAI`).

Endpoints
---------
POST /v1/responses   streamed (SSE) Responses API answer driven by the script:
                     response.created, response.output_item.added,
                     response.content_part.added, response.output_text.delta,
                     response.output_text.done, response.output_item.done,
                     response.completed (with usage).
GET  /v1/models      model catalogue ({"models": [...]} as Codex reads it, and
                     "data" as OpenAI serves it). Codex 0.171.0 with a custom
                     provider never asked for it in any run; kept for others.
POST /v1/responses/compact   remote compaction (answered, never seen used).
POST /_script        body: JSON list of steps, appended to the queue;
                     `?replace=1` replaces the queue (and ends a `repeat`).
GET  /_script        the steps not consumed yet.
GET  /_requests      every recorded request, oldest first: [{"seq", "time",
                     "method", "path", "headers", "body", "kind", "step"}];
                     body parsed as JSON; the Authorization header is dropped
                     ("authorization-present": "yes" instead). kind is "turn"
                     (consumed a step), "aux" (Codex's own side request,
                     answered without a step), "proxy" (a refused CONNECT) or
                     "other" (anything else, answered 404 unless /v1/models).
POST /_reset         empty the script and the log.

Steps (one per *turn* request, consumed in order)
-------------------------------------------------
{"reply": "text"}                           assistant message (markdown)
{"tool_call": {"name": N, "arguments": {...}}}
                                            one function_call item (`arguments`
                                            may be an object, JSON-encoded for
                                            you, or a string; optional
                                            "call_id", "namespace"). Codex
                                            0.171.0's tools (see `tools` in a
                                            recorded turn body):
    exec_command  {"cmd": "...", "workdir"?, "yield_time_ms"?,
                   "sandbox_permissions"?: "require_escalated",
                   "justification"?: "..."}  -- the shell tool; with
                   require_escalated and `-a on-request` it raises the
                   approval dialog
    apply_patch   a *custom* (freeform) tool: emitted as custom_tool_call
                  with `input` = the patch text ("*** Begin Patch\n*** Add
                  File: /abs/path\n+line\n*** End Patch\n"); pass the text as
                  "arguments"
    MCP tools     deferred behind tool_search; call them with the server's
                  namespace: {"name": "send_to_peer", "namespace":
                  "mcp__<server>"} (works without a prior tool_search; the
                  flat name "mcp__<server>__send_to_peer" is refused by Codex
                  with "unsupported call")
{"tool_search": {"query": "..."}}           a client tool_search_call; Codex
                                            answers with tool_search_output
                                            (namespaces and tools) next request
{"reply": "text", "tool_call": {...}}       text, then the call, in one response
{"hold_secs": N, "reply": "..."}            response.created at once, then
                                            nothing but SSE keep-alive comments
                                            for N s, then the rest: Codex shows
                                            its "Working (Ns • esc to
                                            interrupt)" row meanwhile
{"hold_after_delta_secs": N, "reply": ...}  the hold comes after the first text
                                            delta (Codex shows the partial text
                                            and no "Working" row)
{"error": "overloaded"}                     HTTP 500, code server_is_overloaded
{"error": "rate_limit"}                     HTTP 429, code rate_limit_exceeded
                                            (Retry-After: 1; retried silently)
{"error": "server_error"}                   HTTP 500, generic
{"error": "stream_overloaded"}              HTTP 200 stream ending in
                                            response.failed (server_is_overloaded):
                                            not retried; the turn ends at once
                                            with "■ Selected model is at
                                            capacity. Please try a different
                                            model."
{"error": ..., "repeat": N}                 the same answer for N turn requests.
                                            Codex retries by itself: each HTTP
                                            failure is retried 4 times (5
                                            requests), and the whole stream 5
                                            more times ("Reconnecting... k/5"),
                                            so 30 failing requests (~25 s) make
                                            it give up with "■ We’re currently
                                            experiencing high demand, ..."
{"status": 503, "body": {...}}              any raw HTTP error
An empty queue answers {"reply": "ok"}.

Which requests consume a step
-----------------------------
A POST .../responses is a "turn" request when its x-codex-turn-metadata
header (also in body.client_metadata) says request_kind "turn" and
thread_source "user", its body has `tools` and no `text.format` of type
json_schema. Everything else is "aux" and is answered without a step:
  * thread title generation -- sent once per new thread, concurrently with the
    first turn request; thread_source "thread_title", text.format json_schema
    {title}; answered {"title": "Scripted task"} (the TUI footer then shows
    "· Scripted task");
  * /responses/compact and any other structured or tool-less side call.
A tool call's result comes back as a new turn request (its input ends with
function_call_output / custom_tool_call_output / tool_search_output) and
consumes the next step, so script a call as [{"tool_call": ...}, {"reply":
"done"}]. Each Codex retry of a failed request also consumes a step (hence
"repeat"). A message sent while a turn runs ("steering", Enter during
"Working") cancels the in-flight request and re-sends the turn with the new
user message appended: the held step is lost and the next step answers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ERRORS = {
    # (status, body). Shapes follow the OpenAI API's error envelope.
    "overloaded": (
        500,
        {
            "error": {
                "message": "The server is overloaded or not ready yet.",
                "type": "server_error",
                "param": None,
                "code": "server_is_overloaded",
            }
        },
    ),
    "rate_limit": (
        429,
        {
            "error": {
                "message": "Rate limit reached for requests. Please try again in 1s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    ),
    "server_error": (
        500,
        {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    ),
}


def _model_entry(slug: str) -> dict:
    # Codex's ModelInfo shape (codex-rs protocol `ModelInfo`); unknown fields
    # are ignored by Codex, missing optional ones take defaults.
    return {
        "slug": slug,
        "display_name": slug,
        "description": "scripted stand-in",
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": [
            {"effort": "low", "description": "low"},
            {"effort": "medium", "description": "medium"},
            {"effort": "high", "description": "high"},
        ],
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": 1,
        "upgrade": None,
        "base_instructions": "You are a scripted stand-in.",
        "supports_reasoning_summaries": False,
        "support_verbosity": False,
        "default_verbosity": None,
        "apply_patch_tool_type": None,
        "truncation_policy": {"mode": "bytes", "limit": 10000},
        "supports_parallel_tool_calls": False,
        "context_window": 272000,
        "experimental_supported_tools": [],
        # OpenAI /v1/models shape too
        "id": slug,
        "object": "model",
        "created": 0,
        "owned_by": "mock",
    }


class ScriptedOpenAI:
    def __init__(self, models=("gpt-5.5",), log_file=None):
        self.lock = threading.Lock()
        self.script: list[dict] = []
        self.requests: list[dict] = []
        self.models = list(models)
        self.log_file = log_file
        self.repeat_left = 0
        self.repeat_step: dict | None = None

    # ---- bookkeeping -------------------------------------------------------
    def _record(self, method, path, headers, body, kind, step=None):
        with self.lock:
            rec = {
                "seq": len(self.requests),
                "time": time.time(),
                "t": round(time.time(), 4),  # as the Anthropic stand-in names it
                "method": method,
                "path": path,
                "headers": headers,
                "body": body,
                "kind": kind,
                "step": step,
            }
            self.requests.append(rec)
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return rec

    def next_step(self) -> dict:
        with self.lock:
            if self.repeat_left > 0 and self.repeat_step is not None:
                self.repeat_left -= 1
                return self.repeat_step
            if not self.script:
                return {"reply": "ok"}
            step = self.script.pop(0)
            if step.get("repeat"):
                self.repeat_step = step
                self.repeat_left = int(step["repeat"]) - 1
            return step

    @staticmethod
    def turn_metadata(headers, body) -> dict:
        raw = None
        for k, v in headers.items():
            if k.lower() == "x-codex-turn-metadata":
                raw = v
        if raw is None and isinstance(body, dict):
            raw = (body.get("client_metadata") or {}).get("x-codex-turn-metadata")
        try:
            return json.loads(raw) if raw else {}
        except Exception:
            return {}

    @staticmethod
    def classify(path: str, headers, body) -> str:
        """"turn" (consumes a script step) or "aux" (Codex's own side request)."""
        if not isinstance(body, dict):
            return "aux"
        if path.rstrip("/").endswith("/compact"):
            return "aux"
        fmt = ((body.get("text") or {}).get("format") or {}).get("type")
        if fmt == "json_schema":  # title generation and other structured side calls
            return "aux"
        meta = ScriptedOpenAI.turn_metadata(headers, body)
        if meta:
            if meta.get("request_kind", "turn") != "turn":
                return "aux"
            if meta.get("thread_source", "user") != "user":
                return "aux"
        return "turn" if body.get("tools") else "aux"

    @staticmethod
    def aux_step(body) -> dict:
        """The answer to a side request: JSON for a structured one, else text."""
        fmt = (((body or {}).get("text") or {}).get("format") or {}) if isinstance(body, dict) else {}
        if fmt.get("type") == "json_schema":
            props = ((fmt.get("schema") or {}).get("properties") or {})
            obj = {}
            for k, spec in props.items():
                t = spec.get("type") if isinstance(spec, dict) else None
                obj[k] = {"string": "Scripted task" if k == "title" else "stand-in", "boolean": False,
                          "integer": 0, "number": 0, "array": [], "object": {}}.get(t, "stand-in")
            return {"reply": json.dumps(obj)}
        return {"reply": "ok"}

    # ---- HTTP --------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        """Read one request from `h` and answer it on `h`."""
        headers, body = read_request(h)
        self.respond(h, method, h.path, headers, body)

    def respond(self, h: BaseHTTPRequestHandler, method: str, target: str, headers: dict, body) -> None:
        """Answer a request whose body was already read and parsed.

        `target` is the request target (path and query); `headers` a dict;
        `body` the parsed JSON (or None). Records the request, writes the
        response (JSON, or SSE for /responses) to `h`."""
        url = urlsplit(target)
        path = url.path
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"} | (
            {"authorization-present": "yes"} if any(k.lower() == "authorization" for k in headers) else {}
        )

        # control endpoints
        if path == "/_script":
            if method == "POST":
                steps = body if isinstance(body, list) else [body]
                with self.lock:
                    if parse_qs(url.query).get("replace"):
                        self.script = []
                        self.repeat_left = 0
                    self.script.extend(steps)
                    left = len(self.script)
                return _json(h, 200, {"queued": left})
            with self.lock:
                return _json(h, 200, list(self.script))
        if path == "/_requests":
            with self.lock:
                return _json(h, 200, list(self.requests))
        if path == "/_reset":
            with self.lock:
                self.script, self.requests, self.repeat_left = [], [], 0
            return _json(h, 200, {"reset": True})

        # model API
        if method == "GET" and path.rstrip("/").endswith("/models"):
            self._record(method, target, headers, body, "other")
            ms = [_model_entry(m) for m in self.models]
            return _json(h, 200, {"object": "list", "models": ms, "data": ms}, etag=True)
        if method == "POST" and path.rstrip("/").endswith("/responses/compact"):
            self._record(method, target, headers, body, "aux")
            return _json(
                h,
                200,
                {
                    "output": [
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "(compacted by stand-in)"}],
                        }
                    ]
                },
            )
        if method == "POST" and path.rstrip("/").endswith("/responses"):
            kind = self.classify(path, headers, body)
            step = self.next_step() if kind == "turn" else self.aux_step(body)
            self._record(method, target, headers, body, kind, step)
            model = body.get("model", "gpt-5.5") if isinstance(body, dict) else "gpt-5.5"
            return self.respond_step(h, step, model, body)

        self._record(method, target, headers, body, "other")
        return _json(h, 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error", "code": "not_found"}})

    def respond_step(self, h, step: dict, model: str, body=None) -> None:
        if "status" in step:
            return _json(h, int(step["status"]), step.get("body") or {})
        err = step.get("error")
        if err and err in ERRORS:
            status, body = ERRORS[err]
            extra = {"Retry-After": "1"} if status == 429 else {}
            return _json(h, status, body, headers=extra)
        sse = SSE(h)
        resp_id = "resp_" + uuid.uuid4().hex[:24]
        base = {"id": resp_id, "object": "response", "created_at": int(time.time()), "model": model}
        sse.send("response.created", {"type": "response.created", "response": dict(base, status="in_progress", output=[])})
        if err == "stream_overloaded":
            sse.send(
                "response.failed",
                {
                    "type": "response.failed",
                    "response": dict(
                        base,
                        status="failed",
                        error={"code": "server_is_overloaded", "message": "The server is overloaded or not ready yet."},
                    ),
                },
            )
            return sse.close()
        outputs = []
        idx = 0
        text = step.get("reply")
        hold = float(step.get("hold_secs") or 0)
        hold_mid = float(step.get("hold_after_delta_secs") or 0)
        if hold:
            _hold(sse, hold)  # nothing streamed yet: Codex shows its "Working" row
        if text is None and "tool_call" not in step and "tool_search" not in step:
            text = "ok"
        if text is not None:
            mid = "msg_" + uuid.uuid4().hex[:24]
            item = {"type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []}
            sse.send("response.output_item.added", {"type": "response.output_item.added", "output_index": idx, "item": item})
            sse.send(
                "response.content_part.added",
                {"type": "response.content_part.added", "item_id": mid, "output_index": idx, "content_index": 0,
                 "part": {"type": "output_text", "text": "", "annotations": []}},
            )
            chunks = _chunks(text)
            first = True
            for c in chunks:
                sse.send("response.output_text.delta", {"type": "response.output_text.delta", "item_id": mid, "output_index": idx, "content_index": 0, "delta": c})
                if first and hold_mid:
                    _hold(sse, hold_mid)
                first = False
            sse.send("response.output_text.done", {"type": "response.output_text.done", "item_id": mid, "output_index": idx, "content_index": 0, "text": text})
            done = dict(item, status="completed", content=[{"type": "output_text", "text": text, "annotations": []}])
            sse.send("response.output_item.done", {"type": "response.output_item.done", "output_index": idx, "item": done})
            outputs.append(done)
            idx += 1
        tc = step.get("tool_call")
        if tc:
            args = tc.get("arguments", {})
            call_id = tc.get("call_id") or "call_" + uuid.uuid4().hex[:24]
            fid = "fc_" + uuid.uuid4().hex[:24]
            if _tool_type(body, tc["name"]) == "custom":
                # freeform tool (apply_patch in 0.171.0): custom_tool_call + input
                if not isinstance(args, str):
                    args = args.get("input", "") if isinstance(args, dict) else str(args)
                item = {"type": "custom_tool_call", "id": fid, "call_id": call_id, "name": tc["name"], "input": "", "status": "in_progress"}
                sse.send("response.output_item.added", {"type": "response.output_item.added", "output_index": idx, "item": item})
                sse.send("response.custom_tool_call_input.delta", {"type": "response.custom_tool_call_input.delta", "item_id": fid, "output_index": idx, "delta": args})
                done = dict(item, input=args, status="completed")
            else:
                if not isinstance(args, str):
                    args = json.dumps(args)
                item = {"type": "function_call", "id": fid, "call_id": call_id, "name": tc["name"], "arguments": "", "status": "in_progress"}
                if tc.get("namespace"):
                    item["namespace"] = tc["namespace"]
                sse.send("response.output_item.added", {"type": "response.output_item.added", "output_index": idx, "item": item})
                sse.send("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta", "item_id": fid, "output_index": idx, "delta": args})
                sse.send("response.function_call_arguments.done", {"type": "response.function_call_arguments.done", "item_id": fid, "output_index": idx, "arguments": args})
                done = dict(item, arguments=args, status="completed")
            sse.send("response.output_item.done", {"type": "response.output_item.done", "output_index": idx, "item": done})
            outputs.append(done)
            idx += 1
        ts = step.get("tool_search")
        if ts:
            # client-executed tool_search (deferred MCP tools in 0.171.0): Codex
            # answers with a tool_search_output item listing the matching tools
            # in its next request, after which they can be called by name.
            call_id = ts.get("call_id") or "call_" + uuid.uuid4().hex[:24]
            args = {k: v for k, v in ts.items() if k != "call_id"}
            item = {"type": "tool_search_call", "id": "tsc_" + uuid.uuid4().hex[:24], "call_id": call_id,
                    "execution": "client", "status": "completed", "arguments": args}
            sse.send("response.output_item.added", {"type": "response.output_item.added", "output_index": idx, "item": item})
            sse.send("response.output_item.done", {"type": "response.output_item.done", "output_index": idx, "item": item})
            outputs.append(item)
            idx += 1
        usage = {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1020,
        }
        sse.send("response.completed", {"type": "response.completed", "response": dict(base, status="completed", output=outputs, usage=usage)})
        sse.close()


def read_request(h: BaseHTTPRequestHandler):
    """(headers dict, parsed JSON body or None) of the request on `h`."""
    raw = b""
    n = int(h.headers.get("Content-Length") or 0)
    if n:
        raw = h.rfile.read(n)
    elif h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raw = _read_chunked(h.rfile)
    enc = (h.headers.get("Content-Encoding") or "").lower()
    try:
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "deflate":
            raw = zlib.decompress(raw)
    except Exception:
        pass
    body = None
    if raw:
        try:
            body = json.loads(raw)
        except Exception:
            # e.g. zstd (Python 3.11 has no decoder); Codex 0.171.0 sent plain
            # JSON to a custom provider in every request observed.
            body = {"_raw_undecoded": raw[:2000].decode("latin-1"), "_encoding": enc}
    return dict(h.headers.items()), body


def _tool_type(body, name):
    for t in (body or {}).get("tools") or [] if isinstance(body, dict) else []:
        if isinstance(t, dict) and t.get("name") == name:
            return t.get("type")
    return None


def _hold(sse, secs):
    # Keep the stream alive with SSE comments so idle timeouts never fire.
    end = time.time() + secs
    while time.time() < end and sse.ok:
        time.sleep(min(1.0, max(0.0, end - time.time())))
        sse.comment()


def _chunks(text: str, n: int = 16):
    return [text[i : i + n] for i in range(0, len(text), n)] or [""]


def _read_chunked(f) -> bytes:
    out = b""
    while True:
        line = f.readline().strip()
        size = int(line.split(b";")[0], 16) if line else 0
        if size == 0:
            f.readline()
            return out
        out += f.read(size)
        f.readline()


def _json(h, status, obj, headers=None, etag=False):
    data = json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    if etag:
        h.send_header("ETag", '"mock-models-1"')
    h.send_header("x-request-id", "req_" + uuid.uuid4().hex[:16])
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    try:
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class SSE:
    def __init__(self, h):
        self.h = h
        self.ok = True
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("x-request-id", "req_" + uuid.uuid4().hex[:16])
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        self.seq = 0

    def _write(self, data: bytes):
        if not self.ok:
            return
        try:
            self.h.wfile.write(data)
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.ok = False

    def send(self, event, obj):
        obj.setdefault("sequence_number", self.seq)
        self.seq += 1
        self._write(f"event: {event}\ndata: {json.dumps(obj)}\n\n".encode())

    def comment(self):
        self._write(b": keep-alive\n\n")

    def close(self):
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: ScriptedOpenAI = None  # set by serve()

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        self.model.handle(self, "GET")

    def do_POST(self):
        self.model.handle(self, "POST")

    def do_PUT(self):
        self.model.handle(self, "PUT")

    def do_DELETE(self):
        self.model.handle(self, "DELETE")

    def do_CONNECT(self):
        # Used as HTTPS_PROXY it learns (and refuses) every outside host the
        # client tries to reach, so nothing leaves the machine.
        self.model._record("CONNECT", self.path, dict(self.headers.items()), None, "proxy")
        _json(self, 403, {"error": "stand-in proxy refuses outside hosts"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that drop a connection (Codex after a refused CONNECT, or an
        # interrupted stream) are normal here; anything else is printed.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def serve(port=0, host="127.0.0.1", model: ScriptedOpenAI | None = None):
    model = model or ScriptedOpenAI()
    handler = type("Handler", (_Handler,), {"model": model})
    srv = _Server((host, port), handler)
    srv.daemon_threads = True
    srv.model = model
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", help="append every request as a JSON line")
    ap.add_argument("--model", action="append", help="model slug(s) for /models")
    a = ap.parse_args()
    m = ScriptedOpenAI(models=a.model or ("gpt-5.5",), log_file=a.log)
    srv = serve(a.port, a.host, m)
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
