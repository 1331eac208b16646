"""Import and export throughput of the management API, and the server's memory while exporting.

Starts the real server (`python app.py serve`, free port, temporary database), then in one run: the
worker's peak RSS growth while a 100,000-message session (written into the file before the start) is
exported; /health for scale; a 50,000-message document imported over HTTP against plain sqlite3
executemany of the same rows into the same schema (wall clock, and CPU time, which other processes
on the machine do not inflate); that session exported (MB/s). The machine is shared, so each figure
is the best of --rounds.
Usage: python bench/import_export.py [--messages 50000] [--big 100000] [--rounds 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from raw import raw_database  # noqa: E402

import domain  # noqa: E402
import models  # noqa: E402
import schemas  # noqa: E402
from conftest import LiveServer  # noqa: E402


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


def raw_executemany(doc, path):
    """(wall, CPU) seconds for plain sqlite3 to write the rows the import writes, into the same schema."""
    conn = raw_database(path)
    loaded = schemas.import_document_schema.load(doc)["messages"]
    now = models.now_ms()
    rows = [(models.new_id(), "raw", seq, m["local_id"], m["role"], m["content"], m["metadata"], m["created_at"], now)
            for seq, m in enumerate(loaded, start=1)]
    started, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO message (id, session_id, seq, local_id, role, content, metadata, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return wall, cpu


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


def best(rounds, measure):
    return min(measure(i) for i in range(rounds))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="the machine is shared: best round is reported")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as directory:
        db_path = os.path.join(directory, "bench.db")
        big_id, small_id = seed_session(db_path, args.big)
        server = LiveServer(db_path).start()
        try:
            seed_token = subprocess.run(
                [sys.executable, str(ROOT / "app.py"), "create-token", "--account", "seed"],
                cwd=ROOT, env={**os.environ, "SWITCHBOARD_DB": db_path}, capture_output=True, text=True,
                check=True).stdout.strip().splitlines()[-1]
            http = requests.Session()

            # Export memory first, while the worker has not yet parsed a large request.
            export(server, small_id, seed_token)
            baseline = server.worker.memory_info().rss
            stop, result = threading.Event(), []
            sampler = threading.Thread(target=peak_rss, args=(server.worker, stop, result))
            sampler.start()
            big_size, _ = export(server, big_id, seed_token)
            stop.set()
            sampler.join()
            growth = (result[0] - baseline) / 2**20

            def health_round(_):
                started = time.perf_counter()
                for _ in range(300):
                    http.get(server.url + "/health").raise_for_status()
                return (time.perf_counter() - started) / 300

            health = best(args.rounds, health_round)
            doc = document(args.messages)
            body = json.dumps(doc, ensure_ascii=False).encode()
            imported, pairs = [], []
            for i in range(args.rounds):
                # Raw and HTTP back to back in each round, so both see the same load on the shared machine.
                raw, raw_cpu = raw_executemany(doc, os.path.join(directory, f"raw{i}.db"))
                started, worker_cpu = time.perf_counter(), sum(server.worker.cpu_times()[:2])
                response = http.post(server.url + "/api/sessions/import", data=body, timeout=600,
                                     headers={**server.headers, "Content-Type": "application/json"})
                seconds = time.perf_counter() - started
                response.raise_for_status()
                assert response.json()["imported_messages"] == args.messages
                imported.append(response.json()["session"]["id"])
                pairs.append((raw, seconds, raw_cpu, sum(server.worker.cpu_times()[:2]) - worker_cpu))
            raw, import_seconds, raw_cpu, import_cpu = (min(column) for column in zip(*pairs))
            sizes = []

            def export_round(i):
                size, seconds = export(server, imported[i], server.token)
                sizes.append(size)
                return seconds

            export_seconds = best(args.rounds, export_round)
        finally:
            server.stop()

    n = args.messages
    rows = [
        ("/health, sequential", f"{1 / health:,.0f}", "req/s", ""),
        (f"sqlite3 executemany, {n:,} rows", f"{n / raw:,.0f}", "rows/s",
         f"{raw:.2f} s, one transaction; {raw_cpu:.2f} CPU s"),
        (f"import over HTTP, {n:,} messages", f"{n / import_seconds:,.0f}", "msg/s",
         f"{raw / import_seconds:.2f}x raw (target >= 0.25x; by round: "
         f"{', '.join(f'{p[0] / p[1]:.2f}' for p in pairs)}); "
         f"{len(body) / 2**20:.1f} MB in {import_seconds:.2f} s; {n / import_seconds * health:.0f} messages in the "
         f"time of one /health request"),
        ("import, CPU of the worker", f"{import_cpu:.2f}", "CPU s", f"{raw_cpu / import_cpu:.2f}x raw's CPU time: "
         "the same ratio without the other processes on the machine"),
        (f"export over HTTP, {n:,} messages", f"{sizes[0] / 2**20 / export_seconds:.1f}", "MB/s",
         f"{n / export_seconds:,.0f} msg/s; {sizes[0] / 2**20:.1f} MB in {export_seconds:.2f} s; "
         f"{n / export_seconds * health:.0f} messages in the time of one /health request"),
        (f"export {args.big:,} messages", f"{growth:.1f}", "MB RSS", f"peak growth of the worker while "
         f"sending {big_size / 2**20:.1f} MB (target < 50 MB)"),
    ]
    print(f"load average when starting: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores); "
          f"best of {args.rounds} rounds")
    print(f"{'measure':<34}{'result':>10}  {'unit':<8}notes")
    for what, value, unit, note in rows:
        print(f"{what:<34}{value:>10}  {unit:<8}{note}")


if __name__ == "__main__":
    main()
