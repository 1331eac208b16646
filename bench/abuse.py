"""Abuse: what one client can do to everyone else, measured at full scale against the real server.

Each scenario starts the real server (`python app.py serve`, free port, temporary database), polls
/health from a separate process the whole time (so the load generator's own work does not inflate the
figures) and reads the gunicorn worker's RSS before and after:
- 10,050 connections with no token that declare a 100 kB body and trickle a byte every 3 s;
- 40 connections with a wrong token, each sending 14 MiB of a declared 16 MiB import;
- 5 websockets that ask for `since=0` on a 200 MB update log and never read;
- a 15 MiB import of 1.15 million tiny messages (refused past the cap) and one at the cap (100,000);
- a 100,000-session list, and a delete-all of those 100,000 sessions (bulk rows written into the file
  before the start, as writing them over HTTP would take minutes).
Goals (issue 17): /health p99 < 50 ms, RSS growth < 100 MiB, no /health stall over 250 ms. The machine
is shared: the load average is printed with the table.
Usage: python bench/abuse.py [--only NAME ...]
"""
import argparse
import json
import multiprocessing
import os
import resource
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

MiB = 1 << 20


def poll_health(url, stop, out):
    """In its own process: GET /health every 20 ms until `stop` is set; sends the latencies (s)."""
    latencies = []
    with requests.Session() as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                ok = http.get(url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            latencies.append(time.monotonic() - started if ok else float("inf"))
            time.sleep(0.02)
    out.send(latencies)


class Measured:
    """/health latencies from another process and the worker's RSS growth, around a block."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        self.worker = self.server.worker
        self.rss_before = self.worker.memory_info().rss
        self.peak = self.rss_before
        self.stop = multiprocessing.Event()
        self.receive, send = multiprocessing.Pipe(duplex=False)
        self.poller = multiprocessing.Process(target=poll_health, args=(self.server.url + "/health", self.stop, send))
        self.poller.start()
        self.watching = True
        threading.Thread(target=self._watch_rss, daemon=True).start()
        time.sleep(0.5)
        return self

    def _watch_rss(self):
        while self.watching:
            try:
                self.peak = max(self.peak, self.worker.memory_info().rss)
            except Exception:
                return
            time.sleep(0.1)

    def __exit__(self, *exc):
        time.sleep(0.3)
        self.stop.set()
        self.latencies = sorted(self.receive.recv())
        self.poller.join()
        self.watching = False
        self.peak = max(self.peak, self.worker.memory_info().rss)

    def row(self, name, note=""):
        lat = self.latencies
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")
        worst = lat[-1] if lat else float("inf")
        grown = (self.peak - self.rss_before) / MiB
        ok = p99 < 0.050 and worst < 0.250 and grown < 100
        return (name, len(lat), p99 * 1000, worst * 1000, grown, "yes" if ok else "NO", note)


def start(tmp, name, env=None, setup=None):
    server = LiveServer(Path(tmp) / f"{name}.db", env=env).start()
    if setup is not None:
        token = server.token
        assert server.stop() == 0
        with sqlite3.connect(server.db_path) as db:
            setup(db)
        server.start()
        server.token = token
    return server


def raw_open(port, head, rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(head)
    return sock


# --- scenarios --------------------------------------------------------------------------------

def slow_bodies(tmp, count=10_050, seconds=20):
    server = start(tmp, "slow")
    head = (b"POST /v3/sessions/x/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    socks, refused = [], 0
    with Measured(server) as m:
        for _ in range(count):
            try:
                socks.append(raw_open(server.port, head))
            except OSError:
                refused += 1
        ended = time.monotonic() + seconds
        while time.monotonic() < ended:  # a byte every 3 s on each that is still open
            for sock in socks:
                try:
                    sock.send(b" ")
                except OSError:
                    pass
            time.sleep(3)
        answered = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                answered += sock.recv(16).startswith(b"HTTP/1.1 401")
            except OSError:
                pass
    for sock in socks:
        sock.close()
    server.stop()
    return m.row(f"{count:,} slow bodies, no token", f"{answered:,} answered 401 at once; {refused} connects failed")


def unauthenticated_bodies(tmp, count=40):
    server = start(tmp, "unauth")
    head = (b"POST /api/sessions/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sb_wrong\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (16 * MiB))
    chunk = b" " * MiB
    statuses = []

    def push():
        sock = raw_open(server.port, head)
        try:
            for _ in range(14):
                sock.sendall(chunk)
        except OSError:
            pass
        try:
            statuses.append(sock.recv(12))
        except OSError:
            statuses.append(b"reset")
        sock.close()
    with Measured(server) as m:
        threads = [threading.Thread(target=push) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    server.stop()
    got_401 = sum(s.startswith(b"HTTP/1.1 401") for s in statuses)
    return m.row(f"{count} x 14 MiB bodies, wrong token", f"{got_401} of {count} got their 401")


def stuck_replays(tmp, sockets=5, log_mb=200):
    rows, body_bytes = log_mb * 2, 500_000

    def setup(db):
        body = json.dumps({"t": "new-message", "sid": "s", "message": {"content": "x" * body_bytes}})
        [(account,)] = db.execute("SELECT id FROM account")
        db.executemany('INSERT INTO "update" (account_id, seq, id, session_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?)',
                       [(account, seq, f"u{seq}", "s", body, int(time.time() * 1000)) for seq in range(1, rows + 1)])
        db.execute("UPDATE account SET seq = ?", (rows,))
    server = start(tmp, "replay", setup=setup)
    auth = json.dumps({"event": "auth", "data": {"token": server.token, "clientType": "user-scoped", "since": 0}},
                      separators=(",", ":")).encode()
    upgrade = (b"GET /v1/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    frame = bytes([0x81, 0x80 | 126]) + len(auth).to_bytes(2, "big") + b"\0\0\0\0" + auth
    with Measured(server) as m:
        socks = [raw_open(server.port, upgrade + frame, rcvbuf=32 << 10) for _ in range(sockets)]
        time.sleep(10)
    for sock in socks:
        sock.close()
    server.stop()
    return m.row(f"{sockets} non-reading since=0 sockets, {log_mb} MB log")


def import_of(tmp, name, messages, expect):
    server = start(tmp, name)
    document = Path(tmp) / f"{name}.json"
    with open(document, "w") as f:
        f.write('{"version": 1, "session": {"title": "big"}, "messages": [')
        f.write(",".join(f'{{"content":{n % 10}}}' for n in range(messages)))
        f.write("]}")
    size = document.stat().st_size / MiB
    with Measured(server) as m:
        with open(document, "rb") as f:
            r = requests.post(server.url + "/api/sessions/import", data=f, timeout=300,
                              headers={**server.headers, "Content-Type": "application/json"})
    server.stop()
    assert r.status_code == expect, r.text
    return m.row(f"import, {messages:,} messages ({size:.1f} MiB)", f"{r.status_code} in {r.elapsed.total_seconds():.1f} s")


def many_sessions(tmp, count=100_000):
    def setup(db):
        now = int(time.time() * 1000)
        [(account,)] = db.execute("SELECT id FROM account")
        db.executemany('INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, '
                       "seq, active, last_active_at, created_at, updated_at) VALUES (?, ?, ?, '', 0, 0, 0, 0, ?, ?, ?)",
                       [(f"s{n:07d}", account, f"session {n}", now, now, now - n) for n in range(count)])
    server = start(tmp, "sessions", setup=setup)
    with Measured(server) as listing:
        started = time.monotonic()
        r = requests.get(server.url + "/api/sessions", headers=server.headers, timeout=300)
        took = time.monotonic() - started  # the body is streamed: r.elapsed is only its first bytes
        listed = len(r.json()["items"])
    with Measured(server) as deleting:
        d = requests.delete(server.url + "/api/sessions", headers=server.headers, timeout=300)
    server.stop()
    return [listing.row(f"list of {count:,} sessions", f"{listed:,} listed in {took:.1f} s"),
            deleting.row(f"delete-all of {count:,} sessions",
                         f"{d.json()['deleted']:,} deleted in {d.elapsed.total_seconds():.1f} s, one update")]


SCENARIOS = {
    "slow": slow_bodies,
    "unauth": unauthenticated_bodies,
    "replay": stuck_replays,
    "import": lambda tmp: [import_of(tmp, "tiny", 1_150_000, 400), import_of(tmp, "capped", 100_000, 201)],
    "sessions": many_sessions,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SCENARIOS:
            result = SCENARIOS[name](tmp)
            rows.extend(result if isinstance(result, list) else [result])
    print(f"\nload average: {open('/proc/loadavg').read().strip()}  (2 cores, shared)")
    print(f"{'scenario':<46} {'polls':>6} {'p99 ms':>8} {'max ms':>8} {'RSS +MiB':>9}  goals  note")
    for name, polls, p99, worst, grown, ok, note in rows:
        print(f"{name:<46} {polls:>6} {p99:>8.1f} {worst:>8.1f} {grown:>9.1f}  {ok:<5}  {note}")
    print("goals: /health p99 < 50 ms, no /health stall over 250 ms, RSS growth < 100 MiB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
