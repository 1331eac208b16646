"""The same server on SQLite (1 worker) and PostgreSQL (1 and 2 workers), side by side, in one run.

For each: GET /health, single-message appends and 100-message batches at concurrency 16 (the load of
bench/append.py, one session per client thread), with the CPU the server's own processes used per
request (PostgreSQL's are not counted: it is another program, on the same machine here). Then the
delivery latency of one update, POST to websocket frame, 200 times in a row: on the process that
wrote it, and (PostgreSQL) from one host to another one serving the same database, which goes through
NOTIFY and a read of the log. PostgreSQL is a private cluster started for the run (tests/pgcluster.py).
Usage: python bench/scale.py [--seconds 3] [--rounds 2]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psutil  # noqa: E402
from append import BATCH, CONCURRENCY, throughput  # noqa: E402

from conftest import WS, LiveServer  # noqa: E402
from pgcluster import Cluster  # noqa: E402

DELIVERIES = 200


class Server(LiveServer):
    def __init__(self, database, directory, workers=1):
        super().__init__(database, log_dir=directory, args=["--workers", str(workers)])
        self.start()
        self.json_headers = {**self.headers, "Content-Type": "application/json"}

    def cpu_seconds(self):
        """CPU time of the server's processes (gunicorn's master and workers)."""
        total = 0.0
        for process in [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def session(self, tag):
        import requests
        r = requests.post(f"{self.url}/v1/sessions", json={"tag": tag, "metadata": ""}, headers=self.headers,
                          timeout=10)
        return r.json()["session"]["id"]


def delivery(writer, reader):
    """p50 and p99 ms from sending a one-message POST to `writer` to its frame on a socket of `reader`."""
    import requests
    sid = writer.session("delivery")
    ws = WS(reader.ws_url)
    ws.send("auth", {"token": writer.token, "clientType": "user-scoped"})
    while ws.recv(10)["event"] != "ready":
        pass
    session = requests.Session()
    latencies = []
    for n in range(DELIVERIES):
        started = time.perf_counter()
        r = session.post(f"{writer.url}/v3/sessions/{sid}/messages", headers=writer.headers, timeout=10,
                         json={"messages": [{"content": n}]})
        assert r.status_code == 200, r.text
        while True:
            frame = ws.recv(10)
            if frame["event"] == "update" and frame["data"]["body"].get("t") == "new-message":
                break
        latencies.append(time.perf_counter() - started)
    ws.close()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))
    cluster = Cluster().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            for name, database, workers in (("SQLite, 1 worker", os.path.join(directory, "s.db"), 1),
                                            ("PostgreSQL, 1 worker", cluster.create_database(), 1),
                                            ("PostgreSQL, 2 workers", cluster.create_database(), 2)):
                server = Server(database, directory, workers)
                try:
                    health, append, batch = throughput(server, args.seconds, args.rounds)
                    local = delivery(server, server) if workers == 1 else None
                    if workers == 2:  # a second host on the same database
                        other = Server(database, directory)
                        other.token = server.token
                        try:
                            local = delivery(other, other)
                            crossed = delivery(server, other)
                        finally:
                            other.stop()
                    else:
                        crossed = None
                finally:
                    server.stop()
                rows.append((name, health, append, batch, local, crossed))
                print(f"  {name}: done", flush=True)
    finally:
        cluster.stop()
    print(f"\nconcurrency {CONCURRENCY}; rates are the best of {args.rounds} rounds of {args.seconds:g} s; CPU: the "
          "server's processes, not PostgreSQL's")
    print(f"{'':<24}{'/health':>10}{'1 message':>11}{'CPU/req':>9}{'100-batch':>11}{'CPU/msg':>9}"
          f"{'deliver p50/p99 ms':>20}{'other host p50/p99':>20}")
    print(f"{'':<24}{'req/s':>10}{'req/s':>11}{'µs':>9}{'msg/s':>11}{'µs':>9}")
    for name, health, append, batch, local, crossed in rows:
        print(f"{name:<24}{health[0]:>10,.0f}{append[0]:>11,.0f}{append[4]:>9,.0f}{batch[0] * BATCH:>11,.0f}"
              f"{batch[4] / BATCH:>9,.1f}{'{:.1f} / {:.1f}'.format(*local):>20}"
              f"{('{:.1f} / {:.1f}'.format(*crossed)) if crossed else '':>20}")
    print("\nappend / health:", ", ".join(f"{name}: {append[0] / health[0]:.2f}"
                                           for name, health, append, *_ in rows))


if __name__ == "__main__":
    main()
