"""Fan-out of the `/v1/updates` websocket: N user-scoped subscribers, one publishing POST, every delivery timed.

For each N a fresh server is started the way a user does (`python app.py serve`, free port, temporary
database, token from the first-run URL), so each row's RSS growth starts from the same baseline; its
/health requests/s is measured first as that row's noise reference. A separate client process (this
script with --client: asyncio + wsproto for the handshake, a minimal frame reader for the hot path)
opens N connections, authenticates each and waits for every `ready`. Then: the worker's RSS growth per
idle connection; one event (a POST whose content carries time.time()) timed at every subscriber,
--repeats times, pooled; --events POSTs back to back, deliveries/s up to the last delivery at the last
subscriber, and every subscriber's seqs checked to be consecutive. The handshake of a client offering
permessage-deflate (as browsers do) is printed to show the server accepts no extension.

Usage: python bench/fanout.py [--sizes 100,1000,5000] [--events 100] [--repeats 5]
Numbers are comparable within one run only: the machine is shared, hence the /health column.
"""
import argparse
import asyncio
import http.client
import json
import os
import queue
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Pong, RejectConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

HEALTH_THREADS = 8
HEALTH_SECONDS = 2.0
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(ordered, p):
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


# --- client process --------------------------------------------------------------------------------

# The server's frames are compact JSON in a fixed key order (events.update_frame), so the update's seq
# and the bench's send time are found without parsing the whole frame; anything else is parsed.
UPDATE = re.compile(rb'\{"event":"update","data":\{"id":"[^"]*","seq":(\d+),')
SENT = re.compile(rb'"sent":([0-9.]+)')


class Subscriber(asyncio.Protocol):
    """One websocket. wsproto does the handshake and masks what we send; incoming frames are read here:
    wsproto's reader costs 16-34 µs a frame on this machine, which would make the client the bottleneck."""

    def __init__(self, fleet, port):
        self.fleet = fleet
        self.port = port
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.open = False
        self.buffer = b""
        self.fragments = []
        self.count = 0
        self.last_seq = None
        self.extensions = []
        self.ready = asyncio.get_running_loop().create_future()
        self.close_code = None

    def connection_made(self, transport):
        self.transport = transport
        self.transport.write(self.ws.send(Request(
            host=f"127.0.0.1:{self.port}", target="/v1/updates", extensions=[PerMessageDeflate()])))

    def connection_lost(self, exc):
        self.fleet.closed += self.last_seq is not None
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready ({self.close_code})"))

    def data_received(self, data):
        received = time.time()
        if not self.open:
            # Nothing follows the 101 until we send the auth frame, so the response arrives alone.
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    self.open = True
                    self.extensions = event.extensions
                    auth = {"event": "auth", "data": {"token": self.fleet.token, "clientType": "user-scoped"}}
                    self.transport.write(self.ws.send(TextMessage(json.dumps(auth))))
                elif isinstance(event, RejectConnection):
                    self.ready.set_exception(ConnectionError(f"handshake rejected: {event.status_code}"))
                    self.transport.close()
            return
        buffer = self.buffer + data if self.buffer else data
        end, size = 0, len(buffer)
        while size - end >= 2:
            length, start = buffer[end + 1] & 0x7F, end + 2
            if length == 126:
                length, start = int.from_bytes(buffer[end + 2:end + 4], "big"), end + 4
            elif length == 127:
                length, start = int.from_bytes(buffer[end + 2:end + 10], "big"), end + 10
            if start + length > size:
                break
            self.frame(buffer[end], buffer[start:start + length], received)
            end = start + length
        self.buffer = buffer[end:]

    def frame(self, head, payload, received):
        opcode = head & 0x0F
        if opcode == 0x9:
            self.transport.write(self.ws.send(Pong(payload)))
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if payload else None
            self.transport.close()
        elif opcode in (0x0, 0x1):
            self.fragments.append(payload)
            if head & 0x80:
                message, self.fragments = b"".join(self.fragments), []
                self.message(message, received)

    def message(self, text, received):
        match = UPDATE.match(text)
        if match is None:
            envelope = json.loads(text)
            if envelope["event"] == "ready":
                self.last_seq = envelope["data"]["seq"]
                self.ready.set_result(None)
            elif envelope["event"] != "ephemeral":
                self.fleet.unexpected.append(text[:200].decode(errors="replace"))
            return
        seq = int(match.group(1))
        if self.last_seq is not None and seq != self.last_seq + 1:
            self.fleet.violations += 1
        self.last_seq = seq
        self.count += 1
        fleet = self.fleet
        fleet.latencies.append(received - float(SENT.search(text, match.end()).group(1)))
        if received > fleet.last_received:
            fleet.last_received = received
        if self.count == fleet.target:
            fleet.reached += 1
            if fleet.reached == len(fleet.subscribers):
                fleet.done.set()


class Fleet:
    """N subscribers and what they saw since the last report."""

    def __init__(self, port, token):
        self.port = port
        self.token = token
        self.subscribers = []
        self.violations = 0
        self.closed = 0
        self.unexpected = []
        self.latencies = []
        self.last_received = 0.0
        self.target = 0
        self.reached = 0
        self.done = asyncio.Event()

    async def connect(self, count, parallel=200, timeout=30.0):
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(parallel)

        async def one():
            async with gate:
                _, subscriber = await asyncio.wait_for(
                    loop.create_connection(lambda: Subscriber(self, self.port), "127.0.0.1", self.port), timeout)
                self.subscribers.append(subscriber)
                await asyncio.wait_for(subscriber.ready, timeout)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return {"ready": len(self.subscribers), "seconds": time.perf_counter() - started,
                "extensions": sum(bool(s.extensions) for s in self.subscribers)}

    async def wait(self, count, timeout, raw):
        """Until every subscriber has received `count` updates since `ready` (or the timeout)."""
        self.target, self.done = count, asyncio.Event()
        self.reached = sum(s.count >= count for s in self.subscribers)
        if self.reached < len(self.subscribers):
            try:
                await asyncio.wait_for(self.done.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        latencies, self.latencies = sorted(self.latencies), []
        report = {"missing": sum(max(0, count - s.count) for s in self.subscribers),
                  "violations": self.violations, "closed": self.closed, "unexpected": self.unexpected[:3],
                  "last_received": self.last_received, "deliveries": len(latencies),
                  "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                  "max": latencies[-1] if latencies else float("nan")}
        if raw:
            report["latencies"] = latencies
        return report


async def client_main(port, token):
    """Commands as JSON lines on stdin, one JSON line answer each on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    fleet = Fleet(port, token)
    while line := await reader.readline():
        command = json.loads(line)
        if command["do"] == "connect":
            try:
                answer = await fleet.connect(command["count"])
            except (OSError, asyncio.TimeoutError) as e:
                answer = {"error": f"{type(e).__name__}: {e}", "ready": sum(s.ready.done() for s in fleet.subscribers)}
        elif command["do"] == "wait":
            answer = await fleet.wait(command["count"], command["timeout"], command["raw"])
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for subscriber in fleet.subscribers:
        subscriber.transport.abort()


# --- bench process ---------------------------------------------------------------------------------

class Server(LiveServer):
    """The real server, read the way this bench needs: a keep-alive client, the worker's RSS and CPU."""

    def __init__(self, directory, name):
        super().__init__(os.path.join(directory, f"{name}.db"))
        self.start()
        self.process = self.worker
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.http, self.used = None, 0.0

    def request(self, method, path, body=None):
        """On a keep-alive connection, connected before the clock starts and renewed before gunicorn's
        2 s keep-alive timeout can close it under us; returns (status, body, seconds)."""
        if self.http is None or time.monotonic() - self.used > 1.0:
            if self.http is not None:
                self.http.close()
            self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.http.connect()
        started = time.perf_counter()
        self.http.request(method, path, body, self.json_headers)
        response = self.http.getresponse()
        data = response.read()
        self.used = time.monotonic()
        return response.status, data, time.perf_counter() - started

    def rss(self):
        return self.process.memory_info().rss

    def cpu(self):
        times = self.process.cpu_times()
        return times.user + times.system

    def stop(self):
        if self.http is not None:
            self.http.close()
        super().stop()


class Client:
    """The client process: JSON lines both ways, every answer awaited with a timeout."""

    def __init__(self, server):
        self.proc = subprocess.Popen([sys.executable, __file__, "--client", str(server.port), server.token],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.process = psutil.Process(self.proc.pid)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def ask(self, patience, **command):
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        try:
            answer = self.answers.get(timeout=patience)
        except queue.Empty:
            raise RuntimeError(f"the client did not answer {command['do']!r} within {patience:.0f} s") from None
        if answer is None:
            raise RuntimeError("the client process exited")
        return answer

    def cpu(self):
        times = self.process.cpu_times()
        return times.user + times.system

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"do": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


def health_rate(server):
    """GET /health requests/s from HEALTH_THREADS keep-alive connections."""
    counts = [0] * HEALTH_THREADS
    deadline = time.perf_counter() + HEALTH_SECONDS

    def run(i):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while time.perf_counter() < deadline:
            conn.request("GET", "/health")
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(HEALTH_THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(HEALTH_SECONDS + 35)
    return sum(counts) / (time.perf_counter() - started)


def handshake_offering_deflate(server):
    """Raw handshake offering permessage-deflate, then auth and ready; returns the response head.
    Also warms the websocket path before the RSS baseline is taken."""
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(ws.send(Request(host=f"127.0.0.1:{server.port}", target="/v1/updates",
                                  extra_headers=[(b"Sec-WebSocket-Extensions", DEFLATE_OFFER.encode())])))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError(f"the server closed during the handshake: {head!r}")
            head += chunk
        ws.receive_data(head)
        list(ws.events())
        s.sendall(ws.send(TextMessage(json.dumps({"event": "auth", "data": {"token": server.token,
                                                                               "clientType": "user-scoped"}}))))
        reply = b""
        while b'"ready"' not in reply:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError(f"no ready frame after auth: {reply!r}")
            reply += chunk
    return head.split(b"\r\n\r\n")[0].decode()


def post_event(server, session_id):
    body = json.dumps({"messages": [{"content": {"t": "bench", "sent": time.time()}}]})
    status, data, seconds = server.request("POST", f"/v3/sessions/{session_id}/messages", body)
    if status != 200:
        raise RuntimeError(f"POST returned {status}: {data[:300]!r}")
    return seconds


def bench_size(directory, count, repeats, events):
    """One row: a fresh server, N subscribers from a client process, one-event and sustained fan-out."""
    server = Server(directory, f"n{count}")
    client = None
    row = {"n": count}
    try:
        print(f"  N={count}: server worker pid {server.worker.pid}, port {server.port}", flush=True)
        status, data, _ = server.request("POST", "/v1/sessions", json.dumps({"tag": "fanout", "metadata": ""}))
        if status != 200:
            raise RuntimeError(f"session create returned {status}: {data[:300]!r}")
        session_id = json.loads(data)["session"]["id"]
        row["health"] = health_rate(server)
        row["handshake"] = handshake_offering_deflate(server)
        post_event(server, session_id)  # warm the publishing path too
        time.sleep(0.5)
        rss_before = server.rss()

        client = Client(server)
        answer = client.ask(60 + count / 20, do="connect", count=count)
        if "error" in answer or answer["ready"] != count:
            raise RuntimeError(f"N={count}: {answer}")
        row["connect_s"], row["extensions"] = answer["seconds"], answer["extensions"]
        time.sleep(1.0)  # let the last handlers settle into their idle wait
        row["rss_kib"] = (server.rss() - rss_before) / count / 1024
        ours = {c.laddr.port for c in client.process.net_connections("tcp")}
        row["held"] = sum(1 for c in server.process.net_connections("tcp")
                          if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in ours)

        latencies, posts = [], []
        server_cpu, client_cpu = server.cpu(), client.cpu()
        for r in range(1, repeats + 1):
            posts.append(post_event(server, session_id))
            report = client.ask(60, do="wait", count=r, timeout=30, raw=True)
            if report["missing"]:
                raise RuntimeError(f"N={count}: event {r} missing at some subscribers: {report}")
            latencies += report["latencies"]
            time.sleep(0.2)
        latencies.sort()
        row["one_cpu_us"] = (server.cpu() - server_cpu) / (repeats * count) * 1e6
        row["one_client_us"] = (client.cpu() - client_cpu) / (repeats * count) * 1e6
        row.update(p50=percentile(latencies, 0.5), p99=percentile(latencies, 0.99), max=latencies[-1],
                   post_mean=statistics.fmean(posts), post_p99=percentile(sorted(posts), 0.99))

        server_cpu, client_cpu = server.cpu(), client.cpu()
        started = time.time()
        sustained_posts = [post_event(server, session_id) for _ in range(events)]
        report = client.ask(180, do="wait", count=repeats + events, timeout=150, raw=False)
        elapsed = report["last_received"] - started
        row.update(rate=events * count / elapsed, violations=report["violations"], missing=report["missing"],
                   closed=report["closed"], unexpected=report["unexpected"],
                   cpu_us=(server.cpu() - server_cpu) / (events * count) * 1e6,
                   client_busy=(client.cpu() - client_cpu) / elapsed,
                   sustained_post_mean=statistics.fmean(sustained_posts),
                   sustained_post_p99=percentile(sorted(sustained_posts), 0.99),
                   sustained_p50=report["p50"], sustained_p99=report["p99"], elapsed=elapsed)
        return row
    finally:
        if client is not None:
            client.stop()
        server.stop()


def report(rows, events, repeats):
    print(f"\n{'N':>6} {'held':>6} {'RSS/conn':>9} {'1-event':>8} {'1-event':>8} {'1-event':>8} {'POST':>7} "
          f"{'POST':>7} {'deliveries':>11} {'order':>6} {'CPU/deliv. µs':>14} {'/health':>8}")
    print(f"{'':>6} {'':>6} {'KiB':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>7} "
          f"{'p99 ms':>7} {'/s':>11} {'viol.':>6} {'1-ev.':>7}{'sust.':>7} {'req/s':>8}")
    for r in rows:
        print(f"{r['n']:>6} {r['held']:>6} {r['rss_kib']:>9.1f} {r['p50'] * 1e3:>8.1f} {r['p99'] * 1e3:>8.1f} "
              f"{r['max'] * 1e3:>8.1f} {r['post_mean'] * 1e3:>7.1f} {r['post_p99'] * 1e3:>7.1f} "
              f"{r['rate']:>11,.0f} {r['violations']:>6} {r['one_cpu_us']:>7.1f}{r['cpu_us']:>7.1f} "
              f"{r['health']:>8,.0f}")
    print(f"\none-event: {repeats} events, every delivery pooled; POST columns are those {repeats} publishing POSTs.")
    print(f"sustained: {events} POSTs back to back; deliveries/s = {events}×N / (first POST → last delivery).")
    print("CPU/deliv.: the server worker's CPU time over each phase / its deliveries (10 ms clock ticks): unlike")
    print("the latencies, it does not depend on how much of a core the shared machine left the worker.")
    print(f"\n{'N':>6} {'connect s':>10} {'sust. POST':>11} {'sust. POST':>11} {'sust. deliv.':>13} "
          f"{'sust. deliv.':>13} {'window s':>9} {'client CPU':>11} {'client CPU':>11} {'missing':>8} {'closed':>7}")
    print(f"{'':>6} {'':>10} {'mean ms':>11} {'p99 ms':>11} {'p50 ms':>13} {'p99 ms':>13} {'':>9} "
          f"{'1-ev. µs/d.':>11} {'sust. busy':>11}")
    for r in rows:
        print(f"{r['n']:>6} {r['connect_s']:>10.1f} {r['sustained_post_mean'] * 1e3:>11.1f} "
              f"{r['sustained_post_p99'] * 1e3:>11.1f} {r['sustained_p50'] * 1e3:>13.1f} "
              f"{r['sustained_p99'] * 1e3:>13.1f} {r['elapsed']:>9.2f} {r['one_client_us']:>11.1f} "
              f"{r['client_busy']:>11.0%} {r['missing']:>8} {r['closed']:>7}")
        if r["unexpected"]:
            print(f"       unexpected frames: {r['unexpected']}")
    print("Receive times are taken in the client process, so latencies include its own wake-up and parsing")
    print("(its CPU per delivery is shown): they are an upper bound on the server's.")
    print("\npermessage-deflate: every bench client offers it, as browsers do; connections that got an extension:",
          ", ".join(f"N={r['n']}: {r['extensions']}" for r in rows))
    print(f"handshake response to a client sending 'Sec-WebSocket-Extensions: {DEFLATE_OFFER}':")
    for line in rows[0]["handshake"].splitlines():
        print(f"    {line}")
    extension = [line for line in rows[0]["handshake"].lower().splitlines() if line.startswith("sec-websocket-ext")]
    print(f"    -> extension accepted: {extension[0] if extension else 'none'}")
    print("\ntargets: 5,000 connections held; one event to 1,000 subscribers p99 < 50 ms; >= 40,000 deliveries/s;"
          " <= 64 KiB RSS per idle connection; publishing POST flat in N")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        raise_fd_limit()
        asyncio.run(client_main(int(sys.argv[2]), sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated subscriber counts")
    parser.add_argument("--events", type=int, default=100, help="events posted back to back (sustained)")
    parser.add_argument("--repeats", type=int, default=5, help="one-event measurements, pooled")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    limit = raise_fd_limit()
    if max(sizes) + 200 > limit:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {limit} is too low for {max(sizes)} connections")
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores); fd limit {}".format(
        *os.getloadavg(), os.cpu_count(), limit), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for count in sizes:
            rows.append(bench_size(directory, count, args.repeats, args.events))
    report(rows, args.events, args.repeats)


if __name__ == "__main__":
    main()
