"""Search: what the index costs appends, and how fast GET /api/search answers on a large corpus.

1. Append cost: two real servers (`python app.py serve`, gevent), one on a file whose search triggers
   were dropped (no index) and one as shipped, take the same load in alternating rounds: single-message
   and 100-message posts of English-like text (an assistant's sentence, ~250 bytes) at concurrency 16,
   the two servers back to back on each load. The ratio indexed / unindexed is the figure (goal
   >= 0.8): of the best round of each, and the median of the rounds paired in time ("paired").
2. Search speed: a corpus of --messages messages in --sessions sessions (default 1,000,000 in
   100,000) is written with plain sqlite3 into a file migrated to the server's schema (the triggers
   index it as the server would), then the real server is started on it and each query is asked
   --requests times, one at a time, over HTTP: p50 / p99 ms against the same server's /health; last,
   /health again while four clients ask a slow prefix query back to back.
Usage: python bench/search.py [--seconds 3] [--rounds 3] [--messages 1000000] [--sessions 100000]
       [--requests 200] [--skip-append] [--skip-search] [--keep FILE]
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from append import BATCH, CONCURRENCY, Server, load  # noqa: E402

import models  # noqa: E402
from conftest import LiveServer  # noqa: E402

COMMON = ["the", "to", "file", "error", "test", "run", "fix", "build", "function", "line"]
VOCABULARY = COMMON + [f"{a}{b}" for a in ("al", "be", "co", "de", "ex", "fa", "gi", "ho", "in", "ju", "ka", "lo",
                                            "me", "no", "op", "pa", "qu", "re", "st", "tr")
                       for b in ("ble", "cor", "dex", "fin", "gram", "lint", "mod", "nix", "port", "quo", "rak",
                                 "sync", "tab", "ulm", "vex", "wire", "xor", "yard", "zone", "mark")]
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]  # Zipf: "the" is the commonest word


def sentence(rng, words=40):
    return " ".join(rng.choices(VOCABULARY, WEIGHTS, k=words))


def prepare(path, indexed):
    """A file at the current schema; without its search triggers when not `indexed`."""
    conn = sqlite3.connect(path, isolation_level=None)
    models.register_functions(conn)
    conn.execute("PRAGMA journal_mode=wal")
    for step in models.MIGRATIONS:
        for statement in step:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {models.SCHEMA_VERSION}")
    if not indexed:
        for trigger in ("message_search_insert", "message_search_delete"):
            conn.execute(f'DROP TRIGGER "{trigger}"')
    return conn


class FileServer(Server):
    def __init__(self, path):
        LiveServer.__init__(self, path, {"SWITCHBOARD_WORKER_CLASS": "gevent"})
        self.start()
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.process = self.worker


def append_cost(directory, seconds, rounds):
    servers = {}
    for name, indexed in (("no index", False), ("indexed", True)):
        path = os.path.join(directory, f"append-{indexed}.db")
        prepare(path, indexed).close()
        servers[name] = FileServer(path)
    rng = random.Random(1)
    texts = [sentence(rng) for _ in range(1000)]

    def body(thread, n, count):
        return json.dumps({"messages": [{"content": {"role": "assistant", "content": {
            "type": "text", "text": texts[(n * count + i) % len(texts)]}}} for i in range(count)]})
    kinds = {"single": 1, "batch": BATCH}
    results = {name: {kind: [] for kind in kinds} for name in servers}
    try:
        sessions = {name: [s.session(f"s{i}") for i in range(CONCURRENCY)] for name, s in servers.items()}
        for r in range(rounds):
            for kind, count in kinds.items():
                # The two servers back to back on the same load, first one then the other: a pair of
                # rounds seconds apart sees the same machine, however its speed drifts over the run.
                for name in list(servers)[::1 if r % 2 else -1]:
                    sids, server = sessions[name], servers[name]
                    rate, _p50, _p99, _failed, cpu = load(server, seconds, lambda t, n: (
                        "POST", f"/v3/sessions/{sids[t]}/messages", body(t, n, count)))
                    results[name][kind].append((rate * count, cpu / count))  # per message
    finally:
        for server in servers.values():
            server.stop()
    # The server's CPU time per message is skewed far less than rates by other load on a shared machine:
    # its ratio (no index / indexed) is the same figure, read from the least busy round of each.
    print(f"\nappend throughput, {rounds} rounds of {seconds:g} s, concurrency {CONCURRENCY}")
    print(f"{'measure':<28}{'no index':>12}{'indexed':>12}{'ratio':>8}{'paired':>8}  (goal >= 0.8)")
    for kind, label in (("single", "POST 1 message"), ("batch", f"POST {BATCH} messages")):
        plain, indexed = results["no index"][kind], results["indexed"][kind]
        unit = "req/s" if kind == "single" else "msg/s"
        best = max(plain)[0], max(indexed)[0]
        paired = statistics.median(i[0] / p[0] for p, i in zip(plain, indexed))
        print(f"{label + ' (' + unit + ')':<28}{best[0]:>12,.0f}{best[1]:>12,.0f}{best[1] / best[0]:>8.2f}{paired:>8.2f}")
        least = min(r[1] for r in plain), min(r[1] for r in indexed)
        paired = statistics.median(p[1] / i[1] for p, i in zip(plain, indexed))
        print(f"{'  server CPU µs per message':<28}{least[0]:>12,.1f}{least[1]:>12,.1f}{least[0] / least[1]:>8.2f}{paired:>8.2f}")


def build_corpus(path, messages, sessions, account="default"):
    """`sessions` sessions of `messages // sessions` messages each, for the account named `account`."""
    conn = prepare(path, True)
    conn.execute("PRAGMA synchronous=off")
    conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, ?, 0, 0)", (account,))
    rng = random.Random(2)
    per = messages // sessions
    started = time.monotonic()
    base = models.now_ms() - sessions * 1000
    conn.execute("BEGIN")
    for s in range(sessions):
        sid = models.new_id()
        at = base + s * 1000
        conn.execute("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
                     "seq, active, last_active_at, created_at, updated_at) VALUES (?, 1, ?, '', 0, 0, ?, 0, ?, ?, ?)",
                     (sid, " ".join(rng.choices(VOCABULARY[10:], k=3)), per, at, at, at))
        conn.executemany("INSERT INTO message (id, session_id, seq, role, content, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(mid, sid, i + 1, "assistant" if i % 2 else "user", json.dumps(sentence(rng, 30)), at, at)
                          for i, mid in enumerate(models.new_ids(per))])
        if s % 2000 == 1999:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            if sys.stderr.isatty():
                print(f"\r{s + 1:,} sessions", end="", file=sys.stderr)
    conn.execute("COMMIT")
    conn.execute("UPDATE account SET session_count = ?", (sessions,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = os.path.getsize(path)
    print(f"\ncorpus: {sessions * per:,} messages in {sessions:,} sessions written in "
          f"{time.monotonic() - started:.0f} s; file {size / 1e6:,.0f} MB")


def timed(server, path, count):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path, headers=server.headers)
        response = conn.getresponse()
        body = response.read()
        spent.append(time.perf_counter() - started)
        assert response.status == 200, body
    conn.close()
    spent.sort()
    return spent[len(spent) // 2] * 1000, spent[min(len(spent) - 1, int(len(spent) * 0.99))] * 1000, body


def search_speed(path, requests):
    server = LiveServer(path, {"SWITCHBOARD_WORKER_CLASS": "gevent"}).start()
    server.token = server.token or server.new_token()  # a corpus kept from an earlier run has its tokens
    try:
        with sqlite3.connect(path) as conn:
            sid = conn.execute("SELECT id FROM session ORDER BY id LIMIT 1 OFFSET 500").fetchone()[0]
        queries = [("the", {}), ("error", {}), ("file test", {}), ('"fix the"', {}), ("err*", {}), ("er*", {}), ("erro*", {}),
                   ("ququo", {}), ("the OR nomatchword", {}), ("the", {"limit": 100}),
                   ("the", {"session_id": sid}), ("nomatchword", {})]
        timed(server, "/health", 50)
        health = timed(server, "/health", requests)
        print(f"\nsearch over HTTP, {requests} requests each, one at a time")
        print(f"{'query':<40}{'p50 ms':>9}{'p99 ms':>9}{'hits':>7}")
        print(f"{'(GET /health)':<40}{health[0]:>9.1f}{health[1]:>9.1f}")
        for q, extra in queries:
            params = urllib.parse.urlencode({"q": q, **extra})
            p50, p99, body = timed(server, "/api/search?" + params, requests)
            label = q + (" limit=100" if "limit" in extra else "") + (" (one session)" if "session_id" in extra else "")
            print(f"{label:<40}{p50:>9.1f}{p99:>9.1f}{len(json.loads(body)['items']):>7}")
        beside_searches(server, requests)
    finally:
        server.stop()


def beside_searches(server, requests, askers=4):
    """GET /health one at a time while `askers` clients ask the slowest query (a prefix) back to back:
    a search runs off the event loop, so /health should barely notice."""
    stop = threading.Event()
    answered = [0] * askers

    def ask(i):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not stop.is_set():
            conn.request("GET", "/api/search?q=erro*", headers=server.headers)
            conn.getresponse().read()
            answered[i] += 1
        conn.close()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(askers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        health = timed(server, "/health", requests)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(f"{'(GET /health beside ' + str(askers) + ' erro* askers)':<40}{health[0]:>9.1f}{health[1]:>9.1f}"
          f"   ({sum(answered)} searches answered meanwhile)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-append", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--keep", help="build the corpus at this path (reused if it exists) instead of a temp file")
    args = parser.parse_args()
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as directory:
        if not args.skip_append:
            append_cost(directory, args.seconds, args.rounds)
        if not args.skip_search:
            path = args.keep or os.path.join(directory, "corpus.db")
            if not os.path.exists(path):
                build_corpus(path, args.messages, args.sessions)
            search_speed(path, args.requests)
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
