"""A longer fuzz of the HTTP contract than the suite's, with the same harness (tests/test_http_fuzz.py).

Starts the real server (`python app.py serve`, free port, temporary database), sends every operation of
its GET /openapi.json the coverage cases and --examples generated cases per mode (positive, negative),
then prints a table: operation, source of the cases, how many, the failures (any 5xx, an undocumented
status, content type or body, a valid request refused or an invalid one accepted) and the answers by
status. The first failures follow in full. The cases are the same on every run; --seed picks others.
Usage: python bench/fuzz_http.py [--examples 200] [--seed N]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_http_fuzz import fuzz  # noqa: E402

from conftest import LiveServer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="generated cases per operation and mode")
    parser.add_argument("--seed", type=int, help="generate other cases than the fixed ones")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = LiveServer(Path(directory) / "fuzz.db").start()
        started = time.monotonic()
        try:
            rows = fuzz(server, args.examples, args.seed)
        finally:
            server.stop()
        seconds = time.monotonic() - started
        unhandled = server.log().count("unhandled error")

    print(f"{'operation':<46} {'source':<9} {'cases':>5} {'failures':>8}  answers by status")
    for row in rows:
        answers = " ".join(f"{status}:{count}" for status, count in sorted(row.statuses.items()))
        print(f"{row.operation:<46} {row.source:<9} {row.cases:>5} {len(row.failures):>8}  {answers}")
    failures = [f"{row.operation} ({row.source}): {failure}" for row in rows for failure in row.failures]
    total = sum(row.cases for row in rows)
    print(f"\n{total} cases ({sum(r.cases for r in rows if r.source == 'coverage')} coverage, "
          f"{args.examples} generated per operation and mode) in {seconds:.0f} s; {len(failures)} failures; "
          f"{unhandled} unhandled errors in the server log")
    for failure in failures[:10]:
        print("\n" + failure)
    return 1 if failures or unhandled else 0


if __name__ == "__main__":
    sys.exit(main())
