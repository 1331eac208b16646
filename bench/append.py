"""Append throughput of the agent API against the same server's /health and against plain sqlite3.

Starts the real server the way a user does (`python app.py serve`, free port, temporary database, the
token taken from the first-run URL), then measures in one run at concurrency 16 (threads, one
keep-alive http.client connection each, so the client stays cheap on a shared 2-core machine):
GET /health requests/s; single-message POST /v3/sessions/:id/messages requests/s (each thread appends
to a session of its own, 16 sessions); 100-message posts in messages/s; and raw, plain sqlite3
executemany of the same rows (100 per transaction) into the same schema, WAL, synchronous=normal.
The machine is shared, so each measurement is repeated (--rounds) and the best round is reported.
Usage: python bench/append.py [--seconds 3] [--rounds 3] [--worker gevent|gthread|both]
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from raw import raw_database  # noqa: E402

import models  # noqa: E402
from conftest import LiveServer  # noqa: E402

CONCURRENCY = 16
BATCH = 100
# What a happy client sends: an opaque encrypted envelope of a few hundred bytes.
CONTENT = {"t": "encrypted", "c": "QmVuY2htYXJr" * 24}


class Server(LiveServer):
    """The real server, read the way this bench needs: http.client requests, the worker's CPU time."""

    def __init__(self, directory, worker):
        super().__init__(os.path.join(directory, f"{worker}.db"), {"SWITCHBOARD_WORKER_CLASS": worker})
        self.start()
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.process = self.worker

    def cpu_seconds(self):
        """CPU time the worker process has used: unlike rates, not skewed by other load on the machine."""
        times = self.process.cpu_times()
        return times.user + times.system

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body, self.json_headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def session(self, tag):
        status, body = self.request("POST", "/v1/sessions", json.dumps({"tag": tag, "metadata": ""}))
        assert status == 200, body
        return json.loads(body)["session"]["id"]


def load(server, seconds, make_request):
    """`CONCURRENCY` threads send make_request(thread, n) -> (method, path, body) for `seconds`.
    Returns (requests/s, p50 ms, p99 ms, non-200 count, worker CPU µs per request)."""
    latencies = [[] for _ in range(CONCURRENCY)]
    failures = [0] * CONCURRENCY
    window = {}
    barrier = threading.Barrier(CONCURRENCY, action=lambda: window.update(start=time.perf_counter()))

    def run(thread):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        mine, n = latencies[thread], 0
        barrier.wait()
        deadline = window["start"] + seconds
        while True:
            method, path, body = make_request(thread, n)
            started = time.perf_counter()
            if started >= deadline:
                break
            conn.request(method, path, body, server.json_headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            failures[thread] += response.status != 200
            n += 1
        window[thread] = time.perf_counter()
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONCURRENCY)]
    cpu = server.cpu_seconds()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = server.cpu_seconds() - cpu
    elapsed = max(window[i] for i in range(CONCURRENCY)) - window["start"]
    every = sorted(sum(latencies, []))
    return (len(every) / elapsed, every[len(every) // 2] * 1000, every[int(len(every) * 0.99)] * 1000,
            sum(failures), cpu / len(every) * 1e6)


def messages_body(thread, n, count):
    return json.dumps({"messages": [{"content": CONTENT, "localId": f"{thread}-{n}-{i}"} for i in range(count)]})


def raw_executemany(directory, seconds):
    """Messages/s of plain sqlite3 writing the rows a 100-message post writes, 100 per transaction."""
    path = os.path.join(directory, f"raw-{time.monotonic_ns()}.db")
    conn = raw_database(path)
    content = json.dumps(CONTENT, separators=(",", ":"))
    spent, written, seq = 0.0, 0, 0
    while spent < seconds:
        now = models.now_ms()
        rows = [(models.new_id(), "raw", seq + i + 1, f"raw-{seq + i}", None, content, None, now, now)
                for i in range(BATCH)]
        seq += BATCH
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO message (id, session_id, seq, local_id, role, content, metadata, "
                         "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        spent += time.perf_counter() - started
        written += BATCH
    conn.close()
    return written / spent


def throughput(server, seconds, rounds):
    """The best of `rounds` rounds of /health, one-message and BATCH-message appends (interleaved),
    each a load() result; on any server with .session(tag) -> id."""
    singles = [server.session(f"single-{i}") for i in range(CONCURRENCY)]
    batches = [server.session(f"batch-{i}") for i in range(CONCURRENCY)]
    load(server, 1, lambda t, n: ("GET", "/health", None))  # warm up connections and code paths
    health, append, batch = [], [], []
    for r in range(rounds):
        health.append(load(server, seconds, lambda t, n: ("GET", "/health", None)))
        append.append(load(server, seconds, lambda t, n: (
            "POST", f"/v3/sessions/{singles[t]}/messages", messages_body(t, f"{r}-{n}", 1))))
        batch.append(load(server, seconds, lambda t, n: (
            "POST", f"/v3/sessions/{batches[t]}/messages", messages_body(t, f"{r}-{n}", BATCH))))
    return max(health), max(append), max(batch)


def bench(worker, seconds, rounds, directory):
    """The best of `rounds` rounds of each measurement (rounds interleave the three loads)."""
    server = Server(directory, worker)
    try:
        health, append, batch = throughput(server, seconds, rounds)
    finally:
        server.stop()
    raw = max(raw_executemany(directory, seconds) for _ in range(rounds))
    return health, append, batch, raw


def report(worker, health, append, batch, raw):
    print(f"\nworker class: {worker}   concurrency {CONCURRENCY}, one session per client thread")
    print(f"{'measure':<34}{'rate':>12}  {'unit':<11}{'p50 ms':>8}{'p99 ms':>9}{'errors':>8}"
          f"{'server CPU/req':>16}")
    rows = [("GET /health", health[0], "req/s", health),
            ("POST 1 message", append[0], "req/s", append),
            (f"POST {BATCH} messages", batch[0] * BATCH, "messages/s", batch),
            ("raw sqlite3 executemany", raw, "messages/s", None)]
    for name, rate, unit, timing in rows:
        extra = f"{timing[1]:>8.1f}{timing[2]:>9.1f}{timing[3]:>8}{timing[4]:>13,.0f} µs" if timing else ""
        print(f"{name:<34}{rate:>12,.0f}  {unit:<11}{extra}")
    print(f"{'append / health':<34}{append[0] / health[0]:>12.2f}  (target >= 0.5)")
    print(f"{'batch / raw':<34}{batch[0] * BATCH / raw:>12.2f}  (target >= 0.2)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions; the best is reported")
    parser.add_argument("--worker", choices=["gevent", "gthread", "both"], default="gevent")
    args = parser.parse_args()
    workers = ["gevent", "gthread"] if args.worker == "both" else [args.worker]
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as directory:
        for worker in workers:
            report(worker, *bench(worker, args.seconds, args.rounds, directory))


if __name__ == "__main__":
    main()
