"""Claude Code hooks against the real server: event rate against the same server's /health, and 1,000
approvals waiting at once.

Starts `python app.py serve` (free port, temporary database) and measures, in one run:
1. GET /health, a one-message append (for comparison), PostToolUse and PreToolUse hooks at
   concurrency 16 (bench/append.py's load: one keep-alive connection per thread, each thread a Claude session of its own, best of --rounds), and one
   client sending PostToolUse hooks one after another (the latency Claude Code waits for on each hook).
2. --waiting PermissionRequest hooks (one per Claude session) left waiting at once on plain sockets:
   the worker's RSS growth per waiting hook, its CPU while they wait, /health at concurrency 16
   meanwhile, then a decision for each (one after another) and the time from sending the decision to
   its hook's answer arriving.
The machine is shared: compare within a run. Usage: python bench/hooks.py [--seconds 3] [--rounds 3]
[--waiting 1000]
"""
import argparse
import copy
import http.client
import json
import os
import resource
import selectors
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from append import CONCURRENCY, Server, load, messages_body  # noqa: E402

RECORDED = {}
for _body in json.loads((ROOT / "tests" / "fixtures" / "claude_hooks_2.1.328.json").read_text()):
    RECORDED.setdefault(_body["hook_event_name"], _body)


def hook_body(event, session, n=0, **changes):
    body = copy.deepcopy(RECORDED[event])
    body.update(session_id=f"bench-{session}", tool_use_id=f"toolu_{session}_{n}", **changes)
    return json.dumps(body)


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def sequential(server, count):
    """p50, p99 (ms) of PostToolUse hooks sent one after another on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    took = []
    for n in range(count):
        started = time.perf_counter()
        conn.request("POST", "/v1/hooks/claude", hook_body("PostToolUse", "sequential", n), server.json_headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        took.append(time.perf_counter() - started)
    conn.close()
    return percentile(took, 0.5) * 1000, percentile(took, 0.99) * 1000


class Waiters:
    """`count` PermissionRequest hooks on plain sockets; a selector thread notes when each answer arrives."""

    def __init__(self, server, count):
        self.server, self.count = server, count
        self.arrived, self.answers = {}, {}
        self.selector = selectors.DefaultSelector()
        self.sockets = []
        for i in range(count):
            body = hook_body("PermissionRequest", f"wait-{i}").encode()
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /v1/hooks/claude HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         + f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body)
            self.selector.register(sock, selectors.EVENT_READ, i)
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while len(self.arrived) < self.count:
            for key, _ in self.selector.select(timeout=1):
                data = key.fileobj.recv(65536)
                if key.data not in self.arrived:
                    self.arrived[key.data] = time.perf_counter()
                self.answers[key.data] = self.answers.get(key.data, b"") + data

    def close(self):
        for sock in self.sockets:
            sock.close()


def pending(server):
    status, body = server.request("GET", "/api/requests?status=pending")
    assert status == 200, body
    return json.loads(body)["items"]


def waiting_bench(server, count, seconds):
    rss_before = server.worker.memory_info().rss
    started = time.perf_counter()
    waiters = Waiters(server, count)
    while len(pending(server)) < count:
        assert time.perf_counter() - started < 120, "the hooks did not all start waiting"
        time.sleep(0.2)
    opened = time.perf_counter() - started
    time.sleep(1)
    rss_after = server.worker.memory_info().rss
    cpu = server.cpu_seconds()
    time.sleep(3)
    idle_cpu = (server.cpu_seconds() - cpu) / 3
    health = load(server, seconds, lambda t, n: ("GET", "/health", None))
    waiting = pending(server)
    assert len(waiting) == count
    # Each request's socket, through its session's tag (claude:bench-wait-<socket index>).
    status, body = server.request("GET", "/api/sessions")
    tags = {s["id"]: s["tag"] for s in json.loads(body)["items"]}
    sent = {}
    for request in waiting:
        index = int(tags[request["session_id"]].removeprefix("claude:bench-wait-"))
        sent[index] = time.perf_counter()
        status, body = server.request("POST", f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision",
                                      json.dumps({"decision": "allow"}))
        assert status == 200, body
    waiters.thread.join(30)
    latencies = [waiters.arrived[i] - sent[i] for i in range(count) if i in waiters.arrived]
    allowed = sum(b'"behavior":"allow"' in waiters.answers.get(i, b"") for i in range(count))
    waiters.close()
    return {"opened": opened, "rss": (rss_after - rss_before) / count, "idle_cpu": idle_cpu, "health": health,
            "latency": (percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, max(latencies) * 1000),
            "answered": len(latencies), "allowed": allowed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--waiting", type=int, default=1000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as directory:
        server = Server(directory, "gevent")
        try:
            load(server, 1, lambda t, n: ("POST", "/v1/hooks/claude", hook_body("PostToolUse", f"warm-{t}", n)))
            sessions = [server.session(f"append-{i}") for i in range(CONCURRENCY)]
            health, post, pre, append = [], [], [], []
            for r in range(args.rounds):
                health.append(load(server, args.seconds, lambda t, n: ("GET", "/health", None)))
                append.append(load(server, args.seconds, lambda t, n: (
                    "POST", f"/v3/sessions/{sessions[t]}/messages", messages_body(t, f"{r}-{n}", 1))))
                post.append(load(server, args.seconds, lambda t, n: (
                    "POST", "/v1/hooks/claude", hook_body("PostToolUse", f"post-{t}", f"{r}-{n}"))))
                pre.append(load(server, args.seconds, lambda t, n: (
                    "POST", "/v1/hooks/claude", hook_body("PreToolUse", f"post-{t}", f"{r}-{n}"))))
            health, post, pre, append = max(health), max(post), max(pre), max(append)
            p50, p99 = sequential(server, 500)
            print(f"\nconcurrency {CONCURRENCY}, best of {args.rounds} rounds of {args.seconds:.0f} s")
            print(f"{'measure':<34}{'rate':>10}  {'p50 ms':>8}{'p99 ms':>9}{'errors':>8}{'server CPU/req':>16}")
            for name, row in [("GET /health", health), ("POST 1 message (agent API)", append),
                              ("PostToolUse hook", post), ("PreToolUse hook", pre)]:
                print(f"{name:<34}{row[0]:>10,.0f}  {row[1]:>8.1f}{row[2]:>9.1f}{row[3]:>8}{row[4]:>13,.0f} µs")
            print(f"{'PostToolUse / health':<34}{post[0] / health[0]:>10.2f}  (target >= 0.5)")
            print(f"{'PostToolUse, one client':<34}{'':>10}  {p50:>8.1f}{p99:>9.1f}   (target p99 < 20 ms)")
            w = waiting_bench(server, args.waiting, args.seconds)
            print(f"\n{args.waiting} PermissionRequest hooks waiting at once (opened in {w['opened']:.1f} s)")
            print(f"{'worker RSS growth per waiting hook':<44}{w['rss'] / 1024:>8.1f} KiB")
            print(f"{'worker CPU while they wait':<44}{w['idle_cpu'] * 100:>8.1f} %")
            print(f"{'GET /health meanwhile: rate, p50, p99':<44}{w['health'][0]:>8,.0f} req/s"
                  f"{w['health'][1]:>8.1f}{w['health'][2]:>8.1f} ms   (target p99 < 50 ms)")
            print(f"{'decision -> hook answer: p50, p99, max':<44}{w['latency'][0]:>8.1f}{w['latency'][1]:>8.1f}"
                  f"{w['latency'][2]:>8.1f} ms   (target p99 < 50 ms)")
            print(f"{'answered / allowed':<44}{w['answered']:>8} / {w['allowed']}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
