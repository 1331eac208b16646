"""Import and export throughput of the management API, and the server's memory while exporting.

Starts the real server (`python app.py serve`, free port, temporary database), then in one run:
/health for scale; a 50,000-message document imported over HTTP against plain sqlite3 executemany of
the same rows; that session exported (MB/s); and the worker's peak RSS growth while a 100,000-message
session is exported. Usage: python bench/import_export.py [--messages 50000] [--big 100000]
"""
import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import domain  # noqa: E402
import models  # noqa: E402
import schemas  # noqa: E402


def document(count):
    """An export document like a real one: chat turns with unicode and metadata, agent JSON messages."""
    start = 1_700_000_000_000
    messages = []
    for i in range(count):
        if i % 5 == 4:
            message = {"role": None, "content": {"type": "tool-call", "name": "grep", "args": {"pattern": f"todo {i}"}},
                       "metadata": None}
        else:
            message = {"role": ("user", "assistant")[i % 2],
                       "content": f"Message {i}: naïve café, 日本語, emoji 🚀 — " + "lorem ipsum dolor sit amet " * 3,
                       "metadata": {"model": "m-1", "tokens": i % 700}}
        messages.append({"seq": i + 1, **message, "local_id": None, "created_at": schemas.iso(start + i * 1000)})
    return {"version": 1, "exported_at": schemas.iso(start), "session": {
        "id": "01bench", "title": "Benchmark", "system_prompt": None, "tag": None, "metadata": "",
        "agent_state": None, "created_at": schemas.iso(start), "updated_at": schemas.iso(start)},
        "messages": messages}


def raw_executemany(doc, directory):
    """Seconds for plain sqlite3 to write the rows the import writes, into the same schema."""
    path = os.path.join(directory, "raw.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=wal", "synchronous=normal", "foreign_keys=1"):
        conn.execute(f"PRAGMA {pragma}")
    for statement in models.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'raw', 0, 0)")
    conn.execute("INSERT INTO session (id, account_id, metadata, metadata_version, agent_state_version, seq, "
                 "active, last_active_at, created_at, updated_at) VALUES ('s', 1, '', 0, 0, 0, 0, 0, 0, 0)")
    loaded = schemas.import_document_schema.load(doc)["messages"]
    now = models.now_ms()
    rows = [(models.new_id(), "s", seq, m["local_id"], m["role"], m["content"], m["metadata"], m["created_at"], now)
            for seq, m in enumerate(loaded, start=1)]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO message (id, session_id, seq, local_id, role, content, metadata, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def seed_session(db_path, count):
    """A `count`-message session written straight into the server's file before it starts, so the
    server's memory has seen no import when its export is measured."""
    models.init_db(db_path)
    models.migrate()
    with models.db.connection_context():
        account = models.Account.create(name="seed")
        session = domain.import_session(account.id, schemas.import_document_schema.load(document(count)))
        small = domain.import_session(account.id, schemas.import_document_schema.load(document(1000)))
    models.db.close_all()
    return session.id, small.id


class Server:
    def __init__(self, db_path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(db_path + ".log", "wb")
        env = {**os.environ, "SWITCHBOARD_DB": db_path}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log)
        self.token = re.search(r"#token=(\S+)", self.proc.stdout.readline().decode()).group(1)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        self.worker = psutil.Process(self.proc.pid).children()[0]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.proc.stdout.close()
        self.log.close()


def export(server, session_id, token, watch=None):
    """(bytes, seconds) of one streamed export; `watch` samples the worker's RSS meanwhile."""
    started = time.perf_counter()
    size = 0
    with requests.get(f"{server.url}/api/sessions/{session_id}/export", stream=True,
                      headers={"Authorization": f"Bearer {token}"}, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 16):
            size += len(chunk)
    return size, time.perf_counter() - started


def peak_rss(process, stop, result):
    peak = 0
    while not stop.is_set():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.005)
    result.append(peak)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        db_path = os.path.join(directory, "bench.db")
        big_id, small_id = seed_session(db_path, args.big)
        server = Server(db_path)
        try:
            seed_token = subprocess.run(
                [sys.executable, str(ROOT / "app.py"), "create-token", "--account", "seed"],
                cwd=ROOT, env={**os.environ, "SWITCHBOARD_DB": db_path}, capture_output=True, text=True,
                check=True).stdout.strip().splitlines()[-1]

            http = requests.Session()
            started = time.perf_counter()
            for _ in range(300):
                http.get(server.url + "/health").raise_for_status()
            health = 300 / (time.perf_counter() - started)
            rows.append(("/health, sequential", f"{health:,.0f} req/s", ""))

            # Export memory first, while the worker has not yet parsed a large request.
            export(server, small_id, seed_token)
            baseline = server.worker.memory_info().rss
            stop, result = threading.Event(), []
            sampler = threading.Thread(target=peak_rss, args=(server.worker, stop, result))
            sampler.start()
            size, seconds = export(server, big_id, seed_token)
            stop.set()
            sampler.join()
            growth = (result[0] - baseline) / 2**20
            rows.append((f"export {args.big:,} messages: peak RSS growth", f"{growth:.1f} MB",
                         f"document {size / 2**20:.1f} MB; target < 50 MB"))

            doc = document(args.messages)
            body = json.dumps(doc, ensure_ascii=False).encode()
            raw = raw_executemany(doc, directory)
            rows.append((f"sqlite3 executemany, {args.messages:,} rows", f"{args.messages / raw:,.0f} rows/s",
                         f"{raw:.2f} s"))
            started = time.perf_counter()
            response = http.post(server.url + "/api/sessions/import", data=body, timeout=600,
                                 headers={**server.headers, "Content-Type": "application/json"})
            seconds = time.perf_counter() - started
            response.raise_for_status()
            assert response.json()["imported_messages"] == args.messages
            rows.append((f"import over HTTP, {args.messages:,} messages", f"{args.messages / seconds:,.0f} msg/s",
                         f"{raw / seconds:.2f}x raw (target >= 0.25x); {len(body) / 2**20:.1f} MB in {seconds:.2f} s"))

            size, seconds = export(server, response.json()["session"]["id"], server.token)
            rows.append((f"export over HTTP, {args.messages:,} messages", f"{size / 2**20 / seconds:.1f} MB/s",
                         f"{args.messages / seconds:,.0f} msg/s; {size / 2**20:.1f} MB in {seconds:.2f} s; "
                         f"{health * seconds / args.messages:.2f} /health-times per message"))
        finally:
            server.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>14}  notes")
    for what, value, note in rows:
        print(f"{what:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()
