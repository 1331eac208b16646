"""The database under contention: another process holds the SQLite write lock for 2 s (an operator's
backup, say). Writes made meanwhile wait and then succeed, or past the busy wait fail with 503, a
Retry-After and nothing half-written; reads, /health, websocket auth and pings keep answering while the
lock is held (one gevent worker: a blocking wait would stall them all); nothing hangs or corrupts."""
import sqlite3
import threading
import time
from contextlib import contextmanager

import pytest
import requests
from test_agent_bad_input import snapshot

# SQLite's one write lock for the whole file, held by another process; PostgreSQL locks rows, and writes
# of many processes on one PostgreSQL database are tested in test_postgres.py.
pytestmark = pytest.mark.sqlite_only

LOCK_SECONDS = 2.0
TIMEOUT = 10  # every request: longer than the lock and the default busy wait together


class Held:
    acquired_at = released_at = None


@contextmanager
def write_lock_held(db_path, seconds=LOCK_SECONDS):
    """A plain sqlite3 connection of this (other) process holding the write lock for `seconds`."""
    held = Held()
    acquired = threading.Event()

    def hold():
        db = sqlite3.connect(db_path, isolation_level=None, timeout=TIMEOUT)
        try:
            db.execute("BEGIN IMMEDIATE")
            held.acquired_at = time.monotonic()
            acquired.set()
            time.sleep(seconds)
            held.released_at = time.monotonic()
            db.execute("ROLLBACK")
        finally:
            db.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert acquired.wait(TIMEOUT), "could not take the write lock"
    try:
        yield held
    finally:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def in_background(work):
    """Run work() in a thread; returns a dict that gets its result (or error) and the time it finished."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except Exception as e:  # reported by the test
            outcome["error"] = e
        outcome["done_at"] = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def finished(outcome):
    outcome["thread"].join(TIMEOUT * 2)
    assert not outcome["thread"].is_alive(), "a request never returned"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def append(server, sid, content, headers=None):
    return requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": content}]},
                         headers=headers or server.headers, timeout=TIMEOUT)


def assert_intact(server, sid, count):
    with sqlite3.connect(server.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seqs = [s for (s,) in db.execute("SELECT seq FROM message WHERE session_id = ? ORDER BY seq", (sid,))]
        assert seqs == list(range(1, count + 1))
        [(last,)] = db.execute("SELECT seq FROM account")
        updates = [s for (s,) in db.execute('SELECT seq FROM "update" ORDER BY seq')]
        assert updates == list(range(1, last + 1))


def test_writes_wait_for_another_process_and_everything_else_keeps_answering(live_server, ws_connect):
    server = live_server
    sid = requests.post(server.url + "/v1/sessions", json={"tag": "t", "metadata": ""}, headers=server.headers,
                        timeout=TIMEOUT).json()["session"]["id"]
    assert append(server, sid, "before").status_code == 200
    watcher = ws_connect(server)
    fresh = server.new_token()  # its first use records last_used_at: a write

    with write_lock_held(server.db_path) as held:
        writes = [in_background(lambda n=n: append(server, sid, f"during {n}")) for n in range(3)]
        answered = []
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
            answered.append(time.monotonic() - started)
            time.sleep(0.1)
        watcher.send("ping", ack=1)
        assert watcher.expect("ack")["ack"] == 1  # before any update: the writes are still waiting
        reads = [requests.get(server.url + "/v1/sessions", headers=server.headers, timeout=TIMEOUT),
                 requests.get(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=TIMEOUT),
                 requests.get(server.url + "/v1/sessions", headers={"Authorization": f"Bearer {fresh}"}, timeout=TIMEOUT)]
        late_joiner = ws_connect(server, token=fresh)
        late_joiner.send("ping", ack=2)
        assert late_joiner.expect("ack")["ack"] == 2
        during = time.monotonic()
    assert during < held.released_at, "reads, pings or auth waited for the lock"
    assert max(answered) < LOCK_SECONDS / 2, f"/health stalled behind the lock: {answered}"
    assert [r.status_code for r in reads] == [200, 200, 200]
    assert [m["content"] for m in reads[1].json()["messages"]] == ["before"]

    for write in writes:
        assert finished(write).status_code == 200
        assert write["done_at"] >= held.released_at  # it waited, then succeeded
    contents = sorted(u["body"]["message"]["content"] for u in (watcher.expect("update")["data"] for _ in range(3)))
    assert contents == ["during 0", "during 1", "during 2"]
    assert_intact(server, sid, 4)


def test_past_the_busy_wait_a_write_fails_with_503_and_retry_after_and_writes_nothing(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_BUSY_WAIT_SECONDS": "0.5"})
    h = server.headers
    sid = requests.post(server.url + "/v1/sessions", json={"tag": "t", "metadata": ""}, headers=h,
                        timeout=TIMEOUT).json()["session"]["id"]
    assert append(server, sid, "before").status_code == 200
    ws = ws_connect(server)
    before = snapshot(server.db_path)

    fresh = server.new_token()  # its first use records last_used_at: a write

    with write_lock_held(server.db_path) as held:
        writes = [in_background(lambda: append(server, sid, "during")), *(in_background(lambda args=args: requests.request(
            *args[:2], json=args[2], headers=h, timeout=TIMEOUT)) for args in [
                ("POST", server.url + "/v1/sessions", {"tag": "new", "metadata": ""}),
                ("POST", f"{server.url}/v1/sessions/{sid}/metadata", {"metadata": "m", "expectedVersion": 0}),
                ("POST", f"{server.url}/api/sessions/{sid}/messages", {"role": "user", "content": "hi"}),
                ("DELETE", f"{server.url}/api/sessions/{sid}", None)])]
        ws.send("message", {"sid": sid, "content": "over the socket", "localId": "w"}, ack=7)
        busy_frame = ws.expect("error", timeout=TIMEOUT)
        ws.send("ping", ack=8)  # the connection stays open
        assert ws.expect("ack")["ack"] == 8
        # reading is not writing: a token's first use is answered, whatever its bookkeeping meets
        assert requests.get(server.url + "/v1/sessions", headers={"Authorization": f"Bearer {fresh}"},
                            timeout=TIMEOUT).status_code == 200
        ws_connect(server, token=fresh)
        refused = [finished(write) for write in writes]
        during = time.monotonic()
    assert during < held.released_at, "a write waited past the busy wait"
    for r in refused:
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["error"] == "database_busy" and r.json()["message"]
    assert busy_frame["ack"] == 7 and busy_frame["data"]["error"] == "database_busy"
    assert snapshot(server.db_path) == before
    ws.silent()  # nothing was published

    retried = append(server, sid, "during")
    assert retried.status_code == 200 and retried.json()["messages"][0]["seq"] == 2  # no seq was used up
    assert ws.expect("update")["data"]["body"]["message"]["content"] == "during"
    assert_intact(server, sid, 2)
