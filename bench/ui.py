"""The browser UI under load, in headless Chromium: how long the session list takes to show its first
page with N sessions in the account, what one live update costs with it on screen, and what a 1 MiB
message costs; plus a bulk delete of 5,000 sessions.

A server is started the way a user does (`python app.py serve`, temporary database, token from the
first-run link) from --root, so the same script measures another checkout of the UI (for a before /
after comparison: `git archive OLD | tar -x -C /tmp/old && python bench/ui.py --root /tmp/old`). The N
sessions are real: three made over HTTP, the rest written into the stopped server's file with sqlite3
(100,000 in a few seconds), then the server starts again on it. Live updates are real (messages
POSTed to the real sessions, and to the oldest seeded one, which then move to the top).

Every time runs until the frame that shows the change is painted. Columns: "server: first page" p50 /
p99 of `GET /api/sessions?limit=100` (50 requests, one at a time; goal < 20 ms) next to the same
server's `/health`; "show" from navigation until the list's first page (100 sessions, or all when
fewer) is drawn, the median (and best) of five first visits (goal < 500 ms; it includes loading the
page and its scripts); "page's part" the part of it after the page had the list as JavaScript
objects (its own work); "event" mean time from
POSTing a message until its session is drawn first in the list; "longest task" the longest
main-thread task (the tab is frozen for that long) in that phase; "1 MiB" from POSTing a 1 MiB
message to the open session until it is drawn.

Usage: python bench/ui.py [--root DIR] [--sizes 1000,10000,100000] [--events 10] [--delete-all 5000]
Numbers are comparable within one run only: the machine is shared (load average printed).
"""
import argparse
import http.client
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_ui_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from conftest import free_port  # noqa: E402

PHASE_SECONDS = 60  # a phase that takes longer (the old list with 100k sessions) stops and says so
VISITS = 5  # first visits per list size: "show" is their median
LONG_TASKS = """
window.__longest = 0;
const json = Response.prototype.json;
Response.prototype.json = async function () {
  const value = await json.call(this);
  if (new URL(this.url).pathname === '/api/sessions') window.__listParsed ??= performance.now();
  return value;
};
new PerformanceObserver(list => list.getEntries().forEach(e => { window.__longest = Math.max(window.__longest, e.duration); }))
  .observe({type: 'longtask', buffered: true});
"""


class Server:
    def __init__(self, root):
        self.root = root
        self.dir = tempfile.mkdtemp(prefix="bench-ui-")
        self.db = str(Path(self.dir) / "ui.db")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = None
        self.start()

    def start(self):
        self.log = open(Path(self.dir) / "server.log", "wb+")
        self.proc = subprocess.Popen([sys.executable, str(Path(self.root) / "app.py"), "serve", "--port", str(self.port)],
                                     cwd=self.root, env={**os.environ, "SWITCHBOARD_DB": self.db},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(400):
            time.sleep(0.05)
            self.log.seek(0)
            match = re.search(rb"#token=(\S+)", self.log.read())
            if match or self.token:
                try:
                    requests.get(self.url + "/health", timeout=1)
                    self.token = self.token or match.group(1).decode()
                    break
                except requests.RequestException:
                    pass
        else:
            raise SystemExit("the server did not start")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def seed(self, count):
        """`count` more sessions, written into the stopped server's file (older than every real one)."""
        self.stop()
        now = int(time.time() * 1000)
        with sqlite3.connect(self.db) as db:
            [(account,)] = db.execute("SELECT id FROM account")
            done = db.execute("SELECT count(*) FROM session WHERE id LIKE '0seeded%'").fetchone()[0]
            db.executemany("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
                           "seq, active, last_active_at, created_at, updated_at) VALUES (?, ?, ?, '', 0, 0, 0, 0, ?, ?, ?)",
                           ((f"0seeded{i:08d}", account, f"seeded session {i}", now, now - 3_600_000 - i, now - 3_600_000 - i)
                            for i in range(done, done + count)))
            db.execute("UPDATE account SET session_count = (SELECT count(*) FROM session)")
        self.start()

    def timed(self, path, count=50):
        """p50 and p99 ms of `count` GETs of `path`, one at a time on one connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        spent = []
        for _ in range(count):
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            response.read()
            spent.append((time.perf_counter() - t0) * 1000)
            assert response.status == 200, response.status
        conn.close()
        spent.sort()
        return spent[len(spent) // 2], spent[min(len(spent) - 1, int(len(spent) * 0.99))]

    def call(self, method, path, **kwargs):
        response = self.http.request(method, self.url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def session(self, tag):
        return self.call("POST", "/v1/sessions", json={"tag": tag, "metadata": "{}"}).json()["session"]["id"]

    def say(self, sid, content):
        self.call("POST", f"/v3/sessions/{sid}/messages", json={"messages": [{"content": content}]})

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)


# The second frame callback runs after the first frame's style, layout and paint: what a person sees.
PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def wait(page, predicate, arg=None, seconds=PHASE_SECONDS):
    """The page's clock once `predicate` holds (checked every frame) and the frame that draws it is
    painted; None after `seconds`."""
    try:
        page.wait_for_function(predicate, arg=arg, polling="raf", timeout=seconds * 1000)
    except Exception:
        return None
    return page.evaluate(PAINTED)


def longest(page):
    value = page.evaluate("() => { const v = window.__longest; window.__longest = 0; return v; }")
    return f"{value:,.0f} ms" if value else "none ≥ 50 ms"  # Chromium reports tasks of 50 ms and more


def list_phase(browser, server, real, n, events):
    total = n + len(real)
    health, first = server.timed("/health"), server.timed("/api/sessions?limit=100")
    row = {"sessions": f"{total:,}", "server: first page": f"{first[0]:,.1f} / {first[1]:,.1f} ms",
           "server: /health": f"{health[0]:,.1f} / {health[1]:,.1f} ms"}
    # The median of VISITS first visits (a new browser context each: nothing cached), the last one kept.
    shows, parts, tasks = [], [], []
    for _ in range(VISITS):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.add_init_script(LONG_TASKS)
        start = time.perf_counter()
        page.goto(f"{server.url}/#token={server.token}")
        shown = wait(page, "n => document.querySelectorAll('.session-item').length >= n", min(100, total))
        if not shown:
            row["show"] = f"> {PHASE_SECONDS} s"
            context.close()
            return row
        shows.append((time.perf_counter() - start) * 1000)
        parts.append(shown - page.evaluate("window.__listParsed"))
        tasks.append(page.evaluate("() => { const v = window.__longest; window.__longest = 0; return v; }"))
        if len(shows) < VISITS:
            context.close()
    median = lambda values: sorted(values)[len(values) // 2]
    row["show"] = f"{median(shows):,.0f} ms (best {min(shows):,.0f})"
    row["page's part"] = f"{median(parts):,.0f} ms"
    row["show: longest task"] = f"{max(tasks):,.0f} ms" if max(tasks) else "none ≥ 50 ms"
    # Live updates: a message to the real session drawn last comes first in the list.
    times = []
    phase_start = time.perf_counter()
    oldest = [f"0seeded{n - 1:08d}"] if n else []  # far below the first page: not in the page until its update
    for i in range(events):
        sid = (oldest + real[:2])[i % (len(oldest) + 2)]
        t0 = time.perf_counter()
        server.say(sid, f"event {i}")
        if not wait(page, "sid => document.querySelector('.session-item')?.dataset.sessionId === sid", sid):
            break
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - phase_start > PHASE_SECONDS:
            break
    row["event"] = f"{sum(times) / len(times) * 1000:,.0f} ms (of {len(times)})" if times else f"> {PHASE_SECONDS} s"
    row["events: longest task"] = longest(page)
    # A 1 MiB message into the open session.
    page.locator(f".session-item[data-session-id='{real[2]}']").click()
    if wait(page, "() => document.querySelectorAll('#message-list > li').length > 0"):
        page.wait_for_timeout(500)  # the open session's first page is in
        longest(page)
        count = page.evaluate("document.querySelectorAll('#message-list > li').length")
        big = "\n".join(f"row {n} " + "y" * 90 for n in range(10_000))
        t0 = time.perf_counter()
        server.say(real[2], big)
        done = wait(page, "n => document.querySelectorAll('#message-list > li').length > n", count)
        row["1 MiB"] = f"{(time.perf_counter() - t0) * 1000:,.0f} ms" if done else f"> {PHASE_SECONDS} s"
        row["1 MiB: longest task"] = longest(page)
    context.close()
    return row


def delete_all_phase(browser, server, count):
    for i in range(count):
        server.session(f"doomed-{i}")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.add_init_script(LONG_TASKS)
    page.goto(f"{server.url}/#token={server.token}")
    wait(page, "() => document.querySelectorAll('.session-item').length > 0")
    longest(page)
    t0 = time.perf_counter()
    deleted = server.call("DELETE", "/api/sessions").json()["deleted"]
    gone = wait(page, "() => document.querySelectorAll('.session-item').length === 0")
    elapsed = time.perf_counter() - t0
    left = page.evaluate("document.querySelectorAll('.session-item').length")
    row = {"bulk delete": f"{deleted:,} sessions",
           "list empty after": f"{elapsed:,.2f} s" if gone else f"not after {PHASE_SECONDS} s: {left:,} still listed",
           "longest task": longest(page)}
    context.close()
    return row


def table(rows):
    columns = list(dict.fromkeys(k for row in rows for k in row))
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(columns))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line([row.get(c, "") for c in columns]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose app.py and UI to serve")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--delete-all", type=int, default=5000, help="0: no bulk delete phase")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stopped from outside: still stop the server
    server = Server(args.root)
    try:
        real = [server.session(tag) for tag in ("real-a", "real-b", "real-open")]
        server.say(real[2], "the open session's first message")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            rows, seeded = [], 0
            for n in map(int, args.sizes.split(",")):
                server.seed(n - seeded)
                seeded = n
                rows.append(list_phase(browser, server, real, n, args.events))
            print(f"UI at {args.root}, load average before: {os.getloadavg()[0]:.2f}")
            table(rows)
            if args.delete_all:
                print()
                table([delete_all_phase(browser, server, args.delete_all)])
            browser.close()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
