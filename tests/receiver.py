"""An HTTP receiver on 127.0.0.1 for webhook and Web Push tests: it records every request it gets and
answers each path from a script of statuses (or hangs, to make the sender time out)."""
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from requests.structures import CaseInsensitiveDict


class Hang:
    """Answer nothing for `seconds` (longer than the sender's timeout), then 200."""

    def __init__(self, seconds):
        self.seconds = seconds


class Receiver:
    def __init__(self):
        self.requests = defaultdict(list)  # path -> [{at, headers, body}]
        self.scripts = defaultdict(list)  # path -> statuses (or Hang) for its next requests; then 200
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests[self.path].append(
                        {"at": time.monotonic(), "headers": CaseInsensitiveDict(self.headers.items()), "body": body})
                    script = receiver.scripts[self.path]
                    action = script.pop(0) if script else 200
                    receiver.lock.notify_all()
                if isinstance(action, Hang):
                    time.sleep(action.seconds)
                    action = 200
                self.send_response(action)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a sender that hangs up is no error here
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path, count, timeout=10):
        """The first `count` requests to `path`, waiting at most `timeout` seconds for them."""
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.requests[path]) >= count, timeout):
                raise TimeoutError(f"{path}: {len(self.requests[path])} of {count} requests in {timeout}s")
            return list(self.requests[path][:count])

    def close(self):
        self.server.shutdown()
        self.server.server_close()
