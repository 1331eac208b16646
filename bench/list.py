"""The session list on a large account: first page, a deep page and the whole list over HTTP.

A corpus of --sessions sessions (default 100,000, one message each) is written with plain sqlite3 into
a file at the server's schema (bench/search.py's build_corpus), the real server is started on it, and
each request is made --requests times, one at a time: p50 / p99 ms against the same server's /health.
Goal: the first page under 20 ms.
Usage: python bench/list.py [--sessions 100000] [--requests 100] [--keep FILE]
"""
import argparse
import json
import os
import sqlite3
import sys
import tempfile
import urllib.parse

from search import build_corpus, timed  # also puts the repository and tests/ on the path

from conftest import LiveServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--keep", help="build the corpus at this path (reused if it exists) instead of a temp file")
    args = parser.parse_args()
    print("load average when starting: {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as directory:
        path = args.keep or os.path.join(directory, "list.db")
        if not os.path.exists(path):
            build_corpus(path, args.sessions, args.sessions)
        with sqlite3.connect(path) as conn:
            count = conn.execute("SELECT count(*) FROM session").fetchone()[0]
            updated_at, sid = conn.execute("SELECT updated_at, id FROM session ORDER BY updated_at DESC, id DESC "
                                           "LIMIT 1 OFFSET ?", (count // 2,)).fetchone()
        server = LiveServer(path, {"SWITCHBOARD_WORKER_CLASS": "gevent"}).start()
        server.token = server.token or server.new_token()  # a corpus kept from an earlier run has its tokens
        try:
            timed(server, "/health", 20)
            rows = [("GET /health", "/health", args.requests),
                    ("first page, limit=50", "/api/sessions?limit=50", args.requests),
                    ("first page, limit=500", "/api/sessions?limit=500", args.requests),
                    ("page in the middle, limit=50",
                     "/api/sessions?" + urllib.parse.urlencode({"limit": 50, "cursor": f"{updated_at}.{sid}"}),
                     args.requests),
                    (f"whole list ({count:,}, no parameters)", "/api/sessions", 5)]
            print(f"\n{'request':<40}{'p50 ms':>9}{'p99 ms':>9}{'items':>9}")
            for label, url, n in rows:
                p50, p99, body = timed(server, url, n)
                items = len(json.loads(body)["items"]) if url != "/health" else ""
                print(f"{label:<40}{p50:>9.1f}{p99:>9.1f}{items:>9}")
        finally:
            server.stop()
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    sys.exit(main())
