"""`python client.py import-claude` end to end: records imported per second over HTTP, and the
importer's peak memory.

Writes a synthetic Claude Code projects tree (sessions of user prompts, assistant turns written one
line per content block as Claude Code does, tool results, sidechain and bookkeeping lines), starts the
real server (`python app.py serve`, free port, temporary database), and runs the importer as a person
does, in its own process, sampling its RSS. The same corpus is imported in a tree of many sessions and
as one session in one file (memory must stay flat either way: files are streamed), and at a tenth of
the size, to compare peaks. /health's rate in the same run gives the scale. Goal: >= 10,000 records/s.
Usage: python bench/import_claude.py [--records 100000] [--per-session 500]
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

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

START = 1_750_000_000  # seconds


def session_lines(session_id, count):
    """`count` transcript lines of one session, as bytes."""
    lines, parent, i, turn = [], None, 0, 0

    def add(record):
        nonlocal parent, i
        record.update({"parentUuid": parent, "isSidechain": record.get("isSidechain", False), "userType": "external",
                       "cwd": "/home/ada/src/app", "sessionId": session_id, "version": "2.1.328",
                       "uuid": f"{session_id}-{i}", "timestamp": time.strftime(
                           "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(START + turn * 60 + i))})
        parent = record["uuid"]
        lines.append(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        i += 1

    usage = {"input_tokens": 12, "cache_creation_input_tokens": 800, "cache_read_input_tokens": 15000,
             "output_tokens": 240, "service_tier": "standard"}
    while len(lines) < count:
        turn += 1
        add({"type": "user", "message": {"role": "user", "content": f"Turn {turn}: make the parser handle naïve café input 🚀"}})
        mid = f"msg_{session_id[:8]}_{turn}"
        for block in ({"type": "text", "text": "Let me look at the parser first. " * 4},
                      {"type": "tool_use", "id": f"toolu_{turn}", "name": "Read", "input": {"file_path": "/home/ada/src/app/parser.py"}}):
            add({"type": "assistant", "requestId": f"req_{turn}", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                "content": [block], "stop_reason": None, "usage": usage}})
        add({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": "def parse(text):\n    ...\n" * 20}]},
             "toolUseResult": {"type": "text", "file": {"filePath": "/home/ada/src/app/parser.py", "numLines": 40}}})
        add({"type": "assistant", "isSidechain": True, "message": {
            "id": mid + "_side", "role": "assistant", "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "ok"}],
            "usage": usage}})
        add({"type": "assistant", "requestId": f"req_{turn}b", "message": {
            "id": mid + "_b", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Done: the parser now handles it. " * 3}], "usage": usage}})
        lines.append(json.dumps({"type": "file-history-snapshot", "messageId": mid, "snapshot": {}}).encode() + b"\n")
    return lines[:count]


def write_corpus(root, records, per_session):
    project = root / "-home-ada-src-app"
    project.mkdir(parents=True)
    written = 0
    for n in range(0, records, per_session):
        session_id = f"{n:08d}-0000-4000-8000-000000000000"
        lines = session_lines(session_id, min(per_session, records - n))
        (project / f"{session_id}.jsonl").write_bytes(b"".join(lines))
        written += len(lines)
    return written


def health_rate(server, seconds=2.0):
    with requests.Session() as s:
        count, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            s.get(server.url + "/health", timeout=5)
            count += 1
    return count / seconds


def run_import(server, token, path):
    """(seconds, peak RSS in MiB, the importer's summary line)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "client.py"), "import-claude", str(path),
                             "--url", server.url, "--token", token], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = 0
    watched = psutil.Process(proc.pid)

    def sample():
        nonlocal peak
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate(timeout=900)
    sampler.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {err}")
    return seconds, peak / (1 << 20), out.splitlines()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--per-session", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpora = [("tree", args.records, args.per_session), ("tree, a tenth", args.records // 10, args.per_session),
                   ("one file", args.records, args.records)]
        rows = []
        server = LiveServer(tmp / "bench.db").start()
        try:
            health = health_rate(server)
            for n, (name, records, per_session) in enumerate(corpora):
                path = tmp / f"corpus{n}"
                written = write_corpus(path, records, per_session)
                size = sum(f.stat().st_size for f in path.rglob("*.jsonl")) / (1 << 20)
                token = server.new_token(account=f"bench{n}")  # a fresh account: everything is new
                seconds, peak, summary = run_import(server, token, path)
                again, _, _ = run_import(server, token, path)
                rows.append((name, written, size, seconds, written / seconds, peak, again, summary))
        finally:
            server.stop()
    print(f"load average {os.getloadavg()[0]:.2f}; GET /health {health:,.0f} req/s (one keep-alive client)\n")
    print("| corpus | records | MiB | seconds | records/s | records/s / health | importer peak RSS | second run |")
    print("|---|---|---|---|---|---|---|---|")
    for name, written, size, seconds, rate, peak, again, _ in rows:
        print(f"| {name} | {written:,} | {size:.1f} | {seconds:.1f} | {rate:,.0f} | {rate / health:.1f} | {peak:.1f} MiB "
              f"| {again:.1f} s |")
    print()
    for name, *_, summary in rows:
        print(f"{name}: {summary}")


if __name__ == "__main__":
    main()
