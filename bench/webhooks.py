"""Webhook delivery under a burst: 10,000 events to 3 webhooks (json, ntfy, slack) on a local receiver.

Starts the real server (`python app.py serve`, temporary database). One burst of single-message
appends (16 threads, one keep-alive connection each; each message is a `message.created` event) runs
first with no webhook, then with 3 webhooks subscribed to `message.created`, each to a path of one
receiver on 127.0.0.1 (asyncio, in a process of its own so that it keeps up: http.server in this
process capped deliveries at its own rate). Reported: the appends'
rate and latency in both bursts (the request that causes an event must not wait for its deliveries),
the delivery rate (30,000 deliveries from the burst's start to the last arrival) and the delay of each
delivery from its event (the run's created_at) to its arrival, p50 and p99.
Usage: python bench/webhooks.py [--events 10000]
"""
import argparse
import http.client
import json
import multiprocessing
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

CONCURRENCY = 16
FORMATS = ("json", "ntfy", "slack")


def receive(port_pipe, expected):
    """The receiver process: answers 200 to every POST, sends back {webhook-id: arrival (epoch ms)}
    once `expected` deliveries arrived or it is told to stop."""
    import asyncio
    arrivals = {}

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
                headers = {k.lower(): v for k, v in headers.items()}
                await reader.readexactly(int(headers.get("content-length", 0)))
                arrivals[headers["webhook-id"]] = time.time() * 1000
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                if len(arrivals) >= expected:
                    done.set()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()  # the server hung up, or the receiver is done

    async def main():
        global done
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_pipe.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, port_pipe.recv)
        await asyncio.wait([asyncio.ensure_future(done.wait()), stop], return_when=asyncio.FIRST_COMPLETED)
        port_pipe.send(arrivals)

    global done
    done = asyncio.Event()
    asyncio.run(main())


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def burst(server, sessions, events):
    """`events` single-message appends spread over CONCURRENCY threads; (seconds, latencies)."""
    latencies = [[] for _ in range(CONCURRENCY)]
    headers = {**server.headers, "Content-Type": "application/json"}
    body = json.dumps({"messages": [{"content": {"t": "encrypted", "c": "QmVuY2htYXJr" * 24}}]})

    def run(thread):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for _ in range(events // CONCURRENCY + (thread < events % CONCURRENCY)):
            started = time.perf_counter()
            conn.request("POST", f"/v3/sessions/{sessions[thread]}/messages", body, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            latencies[thread].append(time.perf_counter() - started)
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, [x for thread in latencies for x in thread]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    expected = args.events * len(FORMATS)
    pipe, child_pipe = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=receive, args=(child_pipe, expected), daemon=True)
    receiver.start()
    receiver_url = f"http://127.0.0.1:{pipe.recv()}"
    with tempfile.TemporaryDirectory() as directory:
        server = LiveServer(Path(directory) / "bench.db").start()
        try:
            import requests
            sessions = [requests.post(server.url + "/v1/sessions", json={"tag": f"bench-{i}", "metadata": ""},
                                      headers=server.headers).json()["session"]["id"] for i in range(CONCURRENCY)]
            plain_seconds, plain = burst(server, sessions, args.events)
            for format in FORMATS:
                requests.post(server.url + "/api/webhooks", headers=server.headers, json={
                    "url": f"{receiver_url}/{format}", "format": format, "events": ["message.created"]})
            started_wall = time.time()
            hooked_seconds, hooked = burst(server, sessions, args.events)
            if not pipe.poll(600):
                pipe.send("stop")  # report what arrived within 10 minutes
            arrivals = pipe.recv()
            with sqlite3.connect(server.db_path) as conn:
                created = dict(conn.execute("SELECT id, created_at FROM webhook_run"))
                statuses = dict(conn.execute("SELECT status, COUNT(*) FROM webhook_run GROUP BY status"))
        finally:
            server.stop()
            receiver.terminate()
    delays = [arrivals[i] - created[i] for i in arrivals if i in created]
    delivery_seconds = max(arrivals.values()) / 1000 - started_wall
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]

    print(f"{args.events:,} events (single-message appends, {CONCURRENCY} threads), load average {' '.join(load)}")
    print(f"{'burst':<22} {'appends/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, seconds, latencies in (("no webhook", plain_seconds, plain), ("3 webhooks", hooked_seconds, hooked)):
        print(f"{name:<22} {len(latencies) / seconds:>10,.0f} {percentile(latencies, 0.5) * 1000:>8.1f} "
              f"{percentile(latencies, 0.99) * 1000:>8.1f}")
    print(f"append rate with 3 webhooks / without: {plain_seconds / hooked_seconds:.2f}")
    print()
    print(f"{'deliveries':<22} {'received':>10} {'per s':>8} {'p50 delay ms':>13} {'p99 delay ms':>13}  runs by status")
    print(f"{'3 webhooks':<22} {len(arrivals):>10,} {len(arrivals) / delivery_seconds:>8,.0f} "
          f"{percentile(delays, 0.5):>13,.0f} {percentile(delays, 0.99):>13,.0f}  {statuses}")


if __name__ == "__main__":
    main()
