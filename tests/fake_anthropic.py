"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1, for driving the real Claude Code.

`FakeAnthropic(script)` answers every `POST /v1/messages` (streaming SSE or plain JSON) with the
content blocks `script(body)` returns, and records every request body so a test can assert on what
the model received (a deny reason, a steering message, the session instructions). Blocks are
`text("...")` and `tool_use("Bash", {"command": ...})`.
"""
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)


def text(value):
    return {"type": "text", "text": value}


def tool_use(name, tool_input):
    return {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}


def said(body):
    """Every text the model was sent in a request body (messages and system prompt), in one string."""
    parts = []

    def walk(value):
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in ("type", "id", "tool_use_id", "cache_control", "name"):
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
    walk(body.get("system"))
    walk(body.get("messages"))
    return "\n".join(parts)


def last_user_text(body):
    """The text of the conversation's last user turn (tool results included)."""
    messages = body.get("messages") or []
    return said({"messages": messages[-1:]}) if messages else ""


class FakeAnthropic:
    def __init__(self, script):
        self.script = script
        self.requests = []  # every /v1/messages body, in arrival order
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if "count_tokens" in self.path:
                    return self._json({"input_tokens": 100})
                if not self.path.split("?")[0].endswith("/v1/messages"):
                    return self._json({"type": "error", "error": {"type": "not_found_error", "message": self.path}}, 404)
                with fake.lock:
                    fake.requests.append(body)
                blocks = fake.script(body)
                stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
                message = {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant",
                           "model": body.get("model", "claude-test"), "content": [], "stop_reason": None,
                           "stop_sequence": None, "usage": {"input_tokens": 100, "output_tokens": 10}}
                if not body.get("stream"):
                    return self._json({**message, "content": blocks, "stop_reason": stop})
                events = [("message_start", {"type": "message_start", "message": message})]
                for index, block in enumerate(blocks):
                    if block["type"] == "text":
                        events += [
                            ("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": {"type": "text", "text": ""}}),
                            ("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": block["text"]}}),
                        ]
                    else:
                        events += [
                            ("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": {**block, "input": {}}}),
                            ("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "input_json_delta",
                                                               "partial_json": json.dumps(block["input"])}}),
                        ]
                    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
                events += [
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": {"output_tokens": 10}}),
                    ("message_stop", {"type": "message_stop"}),
                ]
                payload = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._json({"data": [], "has_more": False})

            def _json(self, value, status=200):
                payload = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies_saying(self, needle):
        with self.lock:
            return [body for body in self.requests if needle in said(body)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
