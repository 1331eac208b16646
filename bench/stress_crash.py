"""The crash test of tests/test_crash.py, round after round, with the kill landing at a different point
of the stream each time; prints a table of what was acknowledged and what survived.

Each round starts the real server on a fresh database file, streams appends (4 writer threads, localIds)
and creates/deletes into it, ends it with SIGKILL (master and worker) or SIGTERM, restarts it on the same
file, checks every acknowledged write is there exactly once with gap-free seqs, and retries the
unacknowledged ones. Any violation stops the run with the failed check.
Usage: python bench/stress_crash.py [--rounds 10] [--seed 1] [--max-messages 1500]
"""
import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_crash import Stream, check_survivors, go_away, prepare, run_until  # noqa: E402

from conftest import LiveServer  # noqa: E402

COLUMNS = ["round", "signal", "kill after", "acknowledged", "survivors", "in flight", "in flight committed",
           "duplicates", "creates acked", "deletes acked", "seconds"]


def one_round(directory, how, messages):
    started = time.monotonic()
    db_path = Path(directory) / "crash.db"
    server = LiveServer(db_path).start()
    again = None
    try:
        sessions, doomed = prepare(server, doomed_count=400)
        stream = Stream(server, sessions, doomed).start()
        run_until(stream, messages, deadline_seconds=60)
        go_away(server, how)
        stream.join()
        again = LiveServer(db_path).start()
        again.token = server.token
        figures = check_survivors(again, stream)
    finally:
        server.stop()
        if again is not None:
            again.stop()
    return {"signal": how, "kill after": messages, **figures, "seconds": round(time.monotonic() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-messages", type=int, default=1500)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    widths = [max(len(c), 6) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths)), flush=True)
    totals = {"acknowledged": 0, "survivors": 0, "duplicates": 0}
    for n in range(1, args.rounds + 1):
        how = "sigkill" if n % 3 else "sigterm"  # two crashes for every clean stop
        with tempfile.TemporaryDirectory() as directory:
            row = {"round": n, **one_round(directory, how, rng.randint(20, args.max_messages))}
        for key in totals:
            totals[key] += row[key]
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(COLUMNS, widths)), flush=True)
    print(f"total: {totals['acknowledged']} acknowledged appends, {totals['survivors']} survived, "
          f"{totals['duplicates']} duplicates")


if __name__ == "__main__":
    main()
