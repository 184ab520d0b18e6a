#!/usr/bin/env python3
"""Scripted stand-in for the Anthropic Messages API (Python 3 stdlib only).

Point a real Claude Code CLI at it with ANTHROPIC_BASE_URL=http://127.0.0.1:PORT
(and any ANTHROPIC_API_KEY).  Checked against claude-code 2.1.332, which
calls ``POST /v1/messages?beta=true`` (query string ignored here) and, with
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, nothing else at all: no
count_tokens, no /v1/models, no startup probe.

Endpoints
---------
POST /v1/messages               streaming SSE (``"stream": true``: message_start,
                                ping, content_block_start/delta/stop per block
                                -- text_delta or input_json_delta --,
                                message_delta with stop_reason, message_stop)
                                or one JSON message (``stream`` false/absent)
POST /v1/messages/count_tokens  ``{"input_tokens": N}``
POST /_script                   JSON list of steps (or one step), appended to
                                the queue; one step is consumed per *turn*
                                model request (see "Auxiliary requests")
DELETE /_script                 drop all queued steps
GET  /_script                   the steps still queued
GET  /_requests                 every request recorded so far: a JSON list of
                                {seq, t, method, path, kind, headers, body};
                                kind is turn | aux | count_tokens | other
DELETE /_requests               forget recorded requests
anything else                   logged (stderr and /_requests), answered 200 {}

Steps
-----
``{"reply": "text"}``                         text answer, stop_reason end_turn
``{"tool_use": {"name": N, "input": {...}}}`` tool call, stop_reason tool_use
                                              (may also carry "reply": text
                                              streamed before the tool call)
``{"hold_secs": S, "reply": "text"}``         stream starts (message_start,
                                              content_block_start, first text
                                              delta), then pings once a second
                                              for S seconds, then finishes
``{"error": "overloaded"}``                   HTTP 529 overloaded_error
Any step may carry ``"when": "text"``: it is taken only by a turn whose
last message (the user's words or a tool result) contains that text, so
one stand-in can script several sessions.
``{"error": "rate_limit"|"api_error"|...}``   429 / 500 / ... (see ERRORS)
    add ``"no_retry": true`` to send ``x-should-retry: false``; otherwise
    Claude Code retries (up to 10 attempts, "529 Overloaded · retrying in Ns
    · attempt k/10" on screen) and EVERY retry is a new request that
    consumes the next step.
With an empty queue the answer is the text "ok".

Auxiliary requests
------------------
Claude Code makes model requests of its own that are not the user's turn;
they are answered without consuming a step.  Rule (``classify``): a
/v1/messages request is a *turn* request iff its body has a non-empty
``tools`` list.  Every main-loop request of the interactive CLI carries its
tool set (Agent, Bash, Edit, Read, ... -- 12 or 13 tools, even with
--disallowedTools AskUserQuestion or --system-prompt-file); the auxiliary
ones (session title, background-state classifier; model claude-haiku-*)
carry none.  What they get is described in ``aux_reply``.
Note: a sub-agent's requests (Agent tool) also carry tools, so they consume
steps like turns do.

Module use
----------
    from model_anthropic import ModelStandIn, make_handler, serve
    model = ModelStandIn()
    # inside your own BaseHTTPRequestHandler.do_POST:
    model.handle(self, "POST", self.path, body_bytes)
    # or a ready server on a daemon thread:
    srv, model = serve(port=0); port = srv.server_address[1]
    model.add_steps([{"reply": "hi"}]); ...; model.requests

Standalone:  python3 model_anthropic.py --port 0   -> prints "LISTENING <port>"
"""

import argparse
import collections
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_NAME = "claude-sonnet-4-5-20250929"
DEFAULT_REPLY = "ok"
AUX_TITLE = "Scripted session"
AUX_REPLY = '{"title": "Scripted session", "isNewTopic": false}'
AUX_STATE = '{"state":"done","detail":"scripted stand-in turn","tempo":"idle","output":{}}'

HEADER_KEYS = (
    "x-api-key",
    "authorization",
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
    "x-app",
    "content-type",
    "x-stainless-retry-count",
    "x-claude-code-session-id",
)

ERRORS = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "rate_limit": (429, "rate_limit_error", "Rate limited"),
    "api_error": (500, "api_error", "Internal server error"),
    "invalid_request": (400, "invalid_request_error", "Invalid request"),
    "authentication": (401, "authentication_error", "invalid x-api-key"),
    "permission": (403, "permission_error", "Permission denied"),
    "not_found": (404, "not_found_error", "Not found"),
}


def _new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def _text_of(content):
    """Flatten a message/system ``content`` (str or list of blocks) to text."""
    if isinstance(content, str):
        return content
    out = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    out.append(block.get("text", ""))
                elif block.get("type") == "tool_result":
                    out.append(_text_of(block.get("content", "")))
    return "\n".join(out)


def classify(body):
    """'turn' for a request that consumes a script step, else 'aux'."""
    if not isinstance(body, dict):
        return "aux"
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > 0:
        return "turn"
    return "aux"


def aux_reply(body):
    """Text for an auxiliary request (one that carries no tools).

    Seen from Claude Code 2.1.332 (both are model claude-haiku-*, no tools):
      * session-title generation, on the first user message of a session,
        only when CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is NOT set:
        streaming, system prompt "You are naming a coding session ...",
        ``output_config.format`` = json_schema ``{"title": string}``
        (additionalProperties false) -> ``{"title": "Scripted session"}``;
      * background-session state classifier (header ``x-app: cli-bg``,
        non-streaming, max_tokens 3072, system prompt "... decide which of
        four states it's in ...", asks for ONLY a JSON object
        ``{"state": ..., "detail": ..., "tempo": ..., ...}``) -> ``AUX_STATE``.
        Seen after the session was sent to the background (Left arrow on
        an empty composer opens the agents view).
    Any other json_schema request gets an object filling its required
    properties; anything else gets ``AUX_REPLY``.
    """
    system = _text_of((body or {}).get("system") or "")
    if '"state":"<working|blocked|done|failed>"' in system or "which of four states" in system:
        return AUX_STATE
    fmt = ((body or {}).get("output_config") or {}).get("format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        out = {}
        for name in schema.get("required") or list(schema["properties"]):
            t = (schema["properties"].get(name) or {}).get("type")
            if t == "boolean":
                out[name] = False
            elif t in ("integer", "number"):
                out[name] = 0
            elif t == "array":
                out[name] = []
            elif t == "object":
                out[name] = {}
            else:
                out[name] = AUX_TITLE
        return json.dumps(out)
    return AUX_REPLY


class ModelStandIn:
    """Holds the script and the request log; thread-safe."""

    def __init__(self, log=None):
        self.lock = threading.Lock()
        self.steps = collections.deque()
        self.requests = []
        self.log = log if log is not None else sys.stderr

    # ---- scripting ------------------------------------------------------
    def add_steps(self, steps):
        if isinstance(steps, dict):
            steps = [steps]
        with self.lock:
            self.steps.extend(steps)

    def _next_step(self, body=None):
        """The first queued step this turn may take: one without ``when``,
        or whose ``when`` text is in the turn's last user message."""
        last = ""
        msgs = (body or {}).get("messages") or []
        # Today's claude may end the list with a system-role message.
        users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            last = json.dumps(users[-1].get("content"), ensure_ascii=False)
        with self.lock:
            for i, step in enumerate(self.steps):
                when = step.get("when")
                if when is None or when in last:
                    del self.steps[i]
                    return step
        return {"reply": DEFAULT_REPLY}

    def _record(self, handler, method, path, body, kind):
        headers = {}
        for k in HEADER_KEYS:
            v = handler.headers.get(k)
            if v is not None:
                if k in ("x-api-key", "authorization"):
                    v = v[:12] + "..." if len(v) > 12 else v
                headers[k] = v
        entry = {
            "t": round(time.time(), 4),
            "method": method,
            "path": path,
            "kind": kind,
            "headers": headers,
            "body": body,
        }
        with self.lock:
            entry["seq"] = len(self.requests)
            self.requests.append(entry)
        summary = ""
        if isinstance(body, dict) and "messages" in body:
            summary = " max_tokens=%s stream=%s tools=%d msgs=%d" % (
                body.get("max_tokens"),
                body.get("stream"),
                len(body.get("tools") or []),
                len(body.get("messages") or []),
            )
        try:
            self.log.write("[model] %s %s %s%s\n" % (method, path, kind, summary))
            self.log.flush()
        except Exception:
            pass
        return entry

    # ---- dispatch -------------------------------------------------------
    def handle(self, handler, method, path, body_bytes=b""):
        """Answer one request on ``handler`` (a BaseHTTPRequestHandler)."""
        body = None
        if body_bytes:
            try:
                body = json.loads(body_bytes.decode("utf-8"))
            except Exception:
                body = {"_raw": body_bytes.decode("utf-8", "replace")}
        bare = path.split("?", 1)[0]

        if bare == "/_script":
            if method == "POST":
                self.add_steps(body or [])
                return self._json(handler, 200, {"queued": len(self.steps)})
            if method == "DELETE":
                with self.lock:
                    self.steps.clear()
                return self._json(handler, 200, {"queued": 0})
            with self.lock:
                return self._json(handler, 200, list(self.steps))
        if bare == "/_requests":
            if method == "DELETE":
                with self.lock:
                    self.requests = []
                return self._json(handler, 200, [])
            with self.lock:
                data = list(self.requests)
            return self._json(handler, 200, data)

        if method == "POST" and bare == "/v1/messages/count_tokens":
            self._record(handler, method, path, body, "count_tokens")
            n = max(1, len(json.dumps(body or {})) // 4)
            return self._json(handler, 200, {"input_tokens": n})

        if method == "POST" and bare == "/v1/messages":
            kind = classify(body)
            entry = self._record(handler, method, path, body, kind)
            if kind == "turn":
                step = self._next_step(body)
            else:
                step = {"reply": aux_reply(body)}
            try:
                return self._messages(handler, body or {}, step)
            finally:
                # when the answer was all sent (the benchmark's "tool_use sent")
                entry["done"] = round(time.time(), 4)

        self._record(handler, method, path, body, "other")
        return self._json(handler, 200, {})

    # ---- responses ------------------------------------------------------
    def _json(self, handler, status, obj, extra_headers=None):
        data = json.dumps(obj).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.send_header("request-id", _new_id("req_"))
            for k, v in (extra_headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _blocks(self, step):
        blocks = []
        if "reply" in step:
            blocks.append({"type": "text", "text": str(step["reply"])})
        if "tool_use" in step:
            tu = step["tool_use"]
            blocks.append(
                {
                    "type": "tool_use",
                    "id": tu.get("id") or _new_id("toolu_"),
                    "name": tu["name"],
                    "input": tu.get("input", {}),
                }
            )
        if not blocks:
            blocks.append({"type": "text", "text": DEFAULT_REPLY})
        return blocks

    def _messages(self, handler, body, step):
        if "error" in step:
            status, etype, msg = ERRORS.get(
                step["error"], (500, str(step["error"]), str(step["error"]))
            )
            return self._json(
                handler,
                status,
                {"type": "error", "error": {"type": etype, "message": msg}},
                # the SDK retries on 529/429/5xx unless told not to
                {"x-should-retry": "false"} if step.get("no_retry") else None,
            )
        blocks = self._blocks(step)
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        model = body.get("model") or MODEL_NAME
        msg_id = _new_id("msg_")
        in_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
        out_tokens = sum(max(1, len(json.dumps(b)) // 4) for b in blocks)
        usage = {
            "input_tokens": in_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": out_tokens,
        }
        if not body.get("stream"):
            return self._json(
                handler,
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
        return self._stream(handler, msg_id, model, blocks, stop_reason, usage,
                            float(step.get("hold_secs", 0) or 0))

    def _stream(self, handler, msg_id, model, blocks, stop_reason, usage, hold):
        w = handler.wfile

        def event(name, data):
            w.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode("utf-8"))
            w.flush()

        try:
            handler.send_response(200)
            handler.send_header("content-type", "text/event-stream; charset=utf-8")
            handler.send_header("cache-control", "no-cache")
            handler.send_header("request-id", _new_id("req_"))
            handler.send_header("connection", "close")
            handler.end_headers()
            handler.close_connection = True
            start_usage = dict(usage)
            start_usage["output_tokens"] = 1
            event("message_start", {
                "type": "message_start",
                "message": {
                    "id": msg_id, "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": None,
                    "stop_sequence": None, "usage": start_usage,
                },
            })
            event("ping", {"type": "ping"})
            held = hold <= 0
            for i, b in enumerate(blocks):
                if b["type"] == "text":
                    event("content_block_start", {
                        "type": "content_block_start", "index": i,
                        "content_block": {"type": "text", "text": ""}})
                    text = b["text"]
                    chunks = [text[j:j + 24] for j in range(0, len(text), 24)] or [""]
                    for n, c in enumerate(chunks):
                        event("content_block_delta", {
                            "type": "content_block_delta", "index": i,
                            "delta": {"type": "text_delta", "text": c}})
                        if not held and n == 0:
                            self._hold(w, hold)
                            held = True
                    event("content_block_stop", {"type": "content_block_stop", "index": i})
                else:
                    if not held:
                        self._hold(w, hold)
                        held = True
                    event("content_block_start", {
                        "type": "content_block_start", "index": i,
                        "content_block": {"type": "tool_use", "id": b["id"],
                                          "name": b["name"], "input": {}}})
                    js = json.dumps(b["input"])
                    event("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": ""}})
                    for j in range(0, len(js), 16):
                        event("content_block_delta", {
                            "type": "content_block_delta", "index": i,
                            "delta": {"type": "input_json_delta",
                                      "partial_json": js[j:j + 16]}})
                    event("content_block_stop", {"type": "content_block_stop", "index": i})
            event("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]}})
            event("message_stop", {"type": "message_stop"})
        except (BrokenPipeError, ConnectionResetError):
            try:
                self.log.write("[model] client went away mid-stream\n")
            except Exception:
                pass

    def _hold(self, w, secs):
        """Wait ``secs`` seconds, sending SSE pings so the client sees life."""
        end = time.time() + secs
        while True:
            left = end - time.time()
            if left <= 0:
                return
            time.sleep(min(1.0, left))
            w.write(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
            w.flush()


def make_handler(model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self):
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def do_GET(self):
            model.handle(self, "GET", self.path, b"")

        def do_POST(self):
            model.handle(self, "POST", self.path, self._body())

        def do_DELETE(self):
            model.handle(self, "DELETE", self.path, self._body())

        def do_PUT(self):
            model.handle(self, "PUT", self.path, self._body())

        def do_PATCH(self):
            model.handle(self, "PATCH", self.path, self._body())

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            pass

    return Handler


def serve(port=0, host="127.0.0.1", model=None):
    """Start a server in a daemon thread; returns (server, model)."""
    model = model or ModelStandIn()
    srv = ThreadingHTTPServer((host, port), make_handler(model))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--script", help="JSON file with initial steps")
    args = ap.parse_args()
    model = ModelStandIn()
    if args.script:
        with open(args.script) as f:
            model.add_steps(json.load(f))
    srv = ThreadingHTTPServer((args.host, args.port), make_handler(model))
    srv.daemon_threads = True
    print("LISTENING %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
