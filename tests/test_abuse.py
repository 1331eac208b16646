"""Abuse: nothing unauthenticated can hurt, memory stays bounded, nothing freezes the worker.

Each test proves a mechanism at small scale against the real server (limits lowered where the real
figure would take minutes); bench/abuse.py measures the same scenarios at full scale.
"""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests
from simple_websocket import ConnectionClosed

from conftest import ROOT, closed_within, file_at_version, is_postgres, run_sql, step_adding

TIMEOUT = 5


def raw_request(server, path, token, extra=b"", method="POST", content_length=None):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n").encode()
    if content_length is not None:
        head += b"Content-Length: %d\r\n" % content_length
    sock.sendall(head + b"\r\n" + extra)
    return sock


def read_response(sock, timeout=TIMEOUT):
    """(status, JSON body) of one Content-Length framed response."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.decode().partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), json.loads(body[:length]), headers


def new_session(server, tag="t"):
    return requests.post(server.url + "/v1/sessions", json={"tag": tag, "metadata": ""}, headers=server.headers,
                         timeout=TIMEOUT).json()["session"]["id"]


# --- 1, 2: bodies -------------------------------------------------------------------------------

def test_a_bad_token_is_refused_from_the_headers_before_any_body_byte(live_server):
    sid = new_session(live_server)
    started = time.monotonic()
    sock = raw_request(live_server, f"/v3/sessions/{sid}/messages", "sb_wrong", content_length=100_000)
    status, body, _ = read_response(sock)
    assert (status, body["error"]) == (401, "unauthorized")
    # the body is never read, and the connection ends with the answer instead of draining it
    assert closed_within(sock, 1)
    assert time.monotonic() - started < 2
    sock.close()


def test_unauthenticated_bodies_are_not_buffered(live_server):
    """Several connections with a wrong token each push megabytes: none of it reaches the worker's memory."""
    worker = live_server.worker
    before = worker.memory_info().rss
    socks = [raw_request(live_server, "/api/sessions/import", "sb_wrong", content_length=14 << 20) for _ in range(8)]
    chunk = b" " * (1 << 20)
    for sock in socks:
        assert read_response(sock)[0] == 401
        try:
            for _ in range(4):
                sock.sendall(chunk)
        except OSError:
            pass  # the server shut its side: exactly what should happen
    grown = worker.memory_info().rss - before
    for sock in socks:
        sock.close()
    assert grown < 8 << 20, f"RSS grew by {grown >> 20} MiB"


def test_a_body_that_trickles_in_past_its_deadline_gets_408(make_server):
    server = make_server({"SWITCHBOARD_BODY_TIMEOUT_SECONDS": "1"})
    sid = new_session(server)
    sock = raw_request(server, f"/v3/sessions/{sid}/messages", server.token, content_length=1000)
    started = time.monotonic()
    try:
        for _ in range(15):  # a byte every 0.1 s: it would take 100 s to finish
            sock.sendall(b" ")
            time.sleep(0.1)
    except OSError:
        pass
    status, body, _ = read_response(sock, timeout=3)
    assert (status, body["error"]) == (408, "request_timeout")
    assert time.monotonic() - started < 4
    assert closed_within(sock, 1)
    sock.close()


def test_uploads_past_the_in_flight_budget_get_503_and_everyone_else_is_served(make_server, ws_connect):
    # Each body counts as at least 64 KiB: a budget of 256 KiB admits four slow uploads at a time.
    server = make_server({"SWITCHBOARD_MAX_INFLIGHT_BODY_BYTES": str(256 << 10)})
    sid = new_session(server)
    path = f"/v3/sessions/{sid}/messages"
    body = json.dumps({"messages": [{"content": "slow"}]}).encode()
    slow = [raw_request(server, path, server.token, body[:5], content_length=len(body)) for _ in range(4)]
    time.sleep(0.3)  # the four are reading their bodies
    extra = raw_request(server, path, server.token, body[:5], content_length=len(body))
    status, answer, headers = read_response(extra)
    assert (status, answer["error"], headers.get("retry-after")) == (503, "server_busy", "1")
    extra.close()
    # the pool is not theirs: health, reads, websockets and small writes elsewhere all go on
    assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
    assert requests.get(server.url + "/api/sessions", headers=server.headers, timeout=TIMEOUT).status_code == 200
    ws_connect(server)
    for sock in slow:  # the slow ones finish and are served
        sock.sendall(body[5:])
        assert read_response(sock)[0] == 200
        sock.close()
    # and the budget is whole again
    r = requests.post(server.url + path, json={"messages": [{"content": "after"}]}, headers=server.headers,
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text


BURST = """
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
head = b"POST /v3/sessions/x/messages HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Length: 100000\\r\\n\\r\\n"
socks = []
for _ in range(int(sys.argv[2])):
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    sock.sendall(head)
    socks.append(sock)
answered = sum(sock.recv(12) == b"HTTP/1.1 401" for sock in socks)
print(answered)
"""


def test_a_burst_of_connections_waits_its_turn_behind_open_ones(live_server):
    """Thousands of connections opened at once (each a request with no token) are accepted in turns: a
    request on a connection already open is answered without waiting for the whole burst."""
    count = 4000
    stall, took, answered = longest_health_stall(live_server, lambda: subprocess.run(
        [sys.executable, "-c", BURST, str(live_server.port), str(count)], capture_output=True, text=True,
        check=True, timeout=120).stdout)
    assert int(answered) == count  # every one answered, none refused
    assert stall < took / 8, f"/health waited {stall:.2f} s during a burst of {took:.2f} s"


# --- 6, 7, 8: storage -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs (mounted as root, as CI runs), unmounted at the end."""
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path):
    """Write a file until the disk is full; returns it."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left over to fail at close
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def post_big(server, sid, n=1):
    return requests.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=TIMEOUT,
                         json={"messages": [{"content": "x" * 400_000}] * n})


@pytest.mark.sqlite_only  # the disk under the SQLite file
def test_a_full_disk_is_storage_unavailable_everywhere_and_a_start_on_it_works(small_disk, make_server, ws_connect):
    server = make_server(db_path=small_disk / "full.db")
    sid = new_session(server)
    ws = ws_connect(server)
    filler = fill(small_disk)
    r = post_big(server, sid)
    assert r.status_code == 507, r.text
    assert r.json()["error"] == "storage_unavailable" and r.headers["Retry-After"]
    health = requests.get(server.url + "/health", timeout=TIMEOUT)
    assert (health.status_code, health.json()["error"]) == (503, "storage_unavailable")
    # a websocket event that cannot be stored gets an error frame with its ack; the socket stays open
    ws.send("message", {"sid": sid, "content": "y" * 400_000}, ack=7)
    error = ws.expect("error")
    assert (error["ack"], error["data"]["error"]) == (7, "storage_unavailable")
    ws.send("ping", ack=8)
    assert ws.expect("ack")["ack"] == 8
    assert "Traceback" not in server.log()

    # a start on the full disk writes nothing, so it starts, and reads work
    assert server.stop() == 0
    again = make_server(db_path=small_disk / "full.db")
    again.token = server.token
    items = requests.get(again.url + "/api/sessions", headers=again.headers, timeout=TIMEOUT).json()["items"]
    assert [s["id"] for s in items] == [sid]
    # room again: writes succeed and health recovers
    assert post_big(again, sid).status_code == 507
    filler.unlink()
    assert post_big(again, sid).status_code == 200
    assert requests.get(again.url + "/health", timeout=TIMEOUT).status_code == 200


@pytest.mark.sqlite_only  # the SQLite file itself
def test_a_database_file_deleted_under_the_server_is_detected(make_server, ws_connect):
    server = make_server()
    sid = new_session(server)
    ws = ws_connect(server)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(server.db_path + suffix)
        except FileNotFoundError:
            pass
    r = requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": "lost?"}]},
                      headers=server.headers, timeout=TIMEOUT)
    assert (r.status_code, r.json()["error"]) == (503, "storage_unavailable"), r.text
    health = requests.get(server.url + "/health", timeout=TIMEOUT)
    assert (health.status_code, health.json()["error"]) == (503, "storage_unavailable")
    ws.send("message", {"sid": sid, "content": "lost?"}, ack=1)
    assert ws.expect("error")["data"]["error"] == "storage_unavailable"
    assert "DATABASE FILE LOST" in server.log()


# --- 9, 10: websocket queues ----------------------------------------------------------------------

def raw_websocket(server, token, since=None):
    """An authenticated websocket on a raw socket with a small receive buffer, which reads only when told."""
    sock = upgraded(server, receive_buffer=32 << 10)
    auth = {"token": token, "clientType": "user-scoped"}
    if since is not None:
        auth["since"] = since
    payload = json.dumps({"event": "auth", "data": auth}, separators=(",", ":")).encode()
    assert len(payload) < 126
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # a zero mask leaves it as is
    return sock


def upgraded(server, receive_buffer=None):
    """A websocket upgraded on a raw socket that never sends its auth frame."""
    sock = socket.socket()
    if receive_buffer:  # set before connecting: the window it offers is agreed then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /v1/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1)
    assert data.startswith(b"HTTP/1.1 101"), data
    return sock


def closed_with(sock, code):
    """True if the next thing on the socket is a close frame with `code`, then the end of the stream."""
    sock.settimeout(TIMEOUT)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data[:1] == b"\x88" and data[2:4] == code.to_bytes(2, "big")


def silent(sock):
    """True if nothing has arrived on the socket and it is still open."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


def test_sockets_waiting_to_authenticate_are_capped_and_the_longest_waiting_goes_first(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_MAX_UNAUTHENTICATED": "3"})
    first, second, third = (upgraded(server) for _ in range(3))
    fourth = upgraded(server)  # one more than the cap: the one that waited longest is closed
    assert closed_with(first, 1013)
    assert all(silent(sock) for sock in (second, third, fourth))
    # a client that authenticates at once always gets in, and then no longer counts
    ws = ws_connect(server)
    assert closed_with(second, 1013)
    ws.send("ping", ack=1)
    assert ws.expect("ack")["ack"] == 1
    assert all(silent(sock) for sock in (third, fourth))
    # a socket that goes away frees its place
    third.close()
    fourth.close()
    time.sleep(0.5)
    later = [upgraded(server) for _ in range(3)]
    time.sleep(0.5)
    assert all(silent(sock) for sock in later)
    for sock in (first, second, *later):
        sock.close()


def test_a_reader_that_stops_is_dropped_by_the_bytes_it_holds_not_only_the_count(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_QUEUE_BYTES": str(1 << 20)})
    sid = new_session(server)
    stuck = raw_websocket(server, server.token)
    reader = ws_connect(server)
    for i in range(24):  # 24 events of 300 KB: far fewer than the 1,024 the count allows
        r = requests.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=TIMEOUT,
                          json={"messages": [{"content": f"{i}" + "x" * 300_000}]})
        assert r.status_code == 200
    for i in range(24):  # the one that reads gets everything
        assert reader.expect("update")["data"]["body"]["message"]["content"].startswith(f"{i}x")
    time.sleep(1)
    assert closed_within(stuck, 5), "the stuck reader was not dropped"
    stuck.close()


def test_a_client_that_pipelines_frames_is_answered_in_full_and_not_closed(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_QUEUE_SIZE": "20"})
    sid = new_session(server)
    ws = ws_connect(server)
    writer = threading.Thread(target=lambda: [
        requests.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=TIMEOUT,
                      json={"messages": [{"content": n}]}) for n in range(10)])
    writer.start()
    for n in range(300):  # writes, far more than the queue's 20, sent without waiting for answers
        ws.send("message", {"sid": sid, "content": f"ws {n}"}, ack=n)
    writer.join()
    acks, updates = [], []
    while len(acks) < 300 or len(updates) < 10:
        frame = ws.recv(timeout=TIMEOUT)
        (acks if frame["event"] == "ack" else updates).append(frame)
    assert [f["ack"] for f in acks] == list(range(300))
    assert [f["data"]["body"]["message"]["content"] for f in updates] == list(range(10))
    ws.send("ping", ack=99999)
    assert ws.expect("ack")["ack"] == 99999


class HeldReads:
    """A client socket whose reader thread reads nothing until `released`: a client busy sending."""

    def __init__(self, raw):
        self.raw, self.released = raw, threading.Event()

    def recv(self, size):
        self.released.wait()
        return self.raw.recv(size)

    def server_done(self):
        """The server has ended its side: FIN (CLOSE_WAIT) or a reset (CLOSE), seen in the kernel's
        TCP state since nothing is read."""
        return self.raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] in (7, 8)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def test_frames_past_the_incoming_backlog_close_with_1008_after_the_earlier_ones_are_answered(make_server,
                                                                                            ws_connect):
    server = make_server({"SWITCHBOARD_WS_INCOMING_BYTES": str(64 << 10)})
    # The client reads nothing while it sends, so the server closes while bytes are still coming. A close
    # that did not linger reset the connection, and the client lost the close frame and the last acks
    # (1005) in about half the tries: three tries.
    for attempt in range(3):
        sid = new_session(server, tag=f"backlog {attempt}")
        ws = ws_connect(server)
        ws.client.sock = HeldReads(ws.client.sock)
        for n in range(400):  # 400 writes of 8 KB sent at once: the handler cannot keep up with the reader
            try:
                ws.send("message", {"sid": sid, "content": "z" * 8000}, ack=n)
            except (ConnectionClosed, OSError):
                break
        deadline = time.monotonic() + 30
        while not ws.client.sock.server_done() and time.monotonic() < deadline:
            time.sleep(0.01)
        ws.client.sock.released.set()
        acks = []
        with pytest.raises(ConnectionClosed):
            while True:
                acks.append(ws.expect("ack", timeout=30)["ack"])
        assert ws.client.close_reason == 1008
        assert acks == list(range(len(acks))) and len(acks) < 400
        stored = requests.get(f"{server.url}/v3/sessions/{sid}/messages?limit=500", headers=server.headers,
                              timeout=TIMEOUT).json()["messages"]
        assert len(stored) == len(acks)  # every frame the server took in was answered


# --- 3: replay ------------------------------------------------------------------------------------

def seed_log(server, rows, body_bytes):
    """Give the server's account an update log of `rows` updates of `body_bytes` each, written straight
    into the file while the server is stopped (posting them would take most of the test's time)."""
    assert server.stop() == 0
    body = json.dumps({"t": "new-message", "sid": "s", "message": {"content": "x" * body_bytes}})
    [(account,)] = run_sql(server.db_path, "SELECT id FROM account")
    run_sql(server.db_path, 'INSERT INTO "update" (account_id, seq, id, session_id, body, created_at) '
            "VALUES (?, ?, ?, 's', ?, ?)",
            many=[(account, seq, f"u{seq}", body, int(time.time() * 1000)) for seq in range(1, rows + 1)])
    run_sql(server.db_path, "UPDATE account SET seq = ?", (rows,))
    token = server.token
    server.start()
    server.token = token


def test_replay_holds_one_page_per_connection_whatever_the_log_size(make_server):
    server = make_server()
    seed_log(server, 300, 100_000)  # a 30 MB log
    before = server.worker.memory_info().rss
    stuck = [raw_websocket(server, server.token, since=0) for _ in range(5)]
    time.sleep(3)  # each replay fills its socket's buffers and waits
    grown = server.worker.memory_info().rss - before
    for sock in stuck:
        sock.close()
    assert grown < 40 << 20, f"RSS grew by {grown >> 20} MiB for 5 replays of a 30 MB log"
    assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200


def test_a_replay_that_outlasts_its_deadline_closes_with_1013(make_server):
    server = make_server({"SWITCHBOARD_WS_REPLAY_SECONDS": "1"})
    seed_log(server, 100, 100_000)
    sock = raw_websocket(server, server.token, since=0)
    got = b""
    for _ in range(10):  # a slow reader: 64 KB every 0.2 s
        got += sock.recv(65536)
        time.sleep(0.2)
    sock.settimeout(5)
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert b"\x88" in got[-64:] and (1013).to_bytes(2, "big") + b"Replay too slow" in got[-64:]
    assert b'"event":"ready"' not in got


# --- 4: nothing holds the worker --------------------------------------------------------------

def longest_health_stall(server, work):
    """Run `work` in a thread while polling /health: (the longest a /health answer took, how long the
    work took, its result). The machine is shared, so a stall is judged against the work's duration:
    a worker held by the work stalls for about all of it."""
    done = threading.Event()
    result = {}

    def run():
        try:
            result["value"] = work()
        finally:
            done.set()
    thread = threading.Thread(target=run)
    longest = 0.0
    with requests.Session() as http:
        http.get(server.url + "/health", timeout=TIMEOUT)
        began = time.monotonic()
        thread.start()
        while not done.is_set():
            started = time.monotonic()
            assert http.get(server.url + "/health", timeout=30).status_code == 200
            longest = max(longest, time.monotonic() - started)
            time.sleep(0.01)
    thread.join()
    return longest, time.monotonic() - began, result.get("value")


def export_document(count):
    return {"version": 1, "session": {"title": "big"}, "messages": [{"content": n % 10} for n in range(count)]}


def test_an_import_is_capped_in_messages_and_refused_before_the_rest_is_parsed(make_server):
    server = make_server({"SWITCHBOARD_MAX_IMPORT_MESSAGES": "1000"})
    url = server.url + "/api/sessions/import"
    over = requests.post(url, json=export_document(1001), headers=server.headers, timeout=TIMEOUT)
    assert over.status_code == 400 and over.json()["errors"] == {"messages": ["At most 1000 items."]}
    exact = requests.post(url, json=export_document(1000), headers=server.headers, timeout=TIMEOUT)
    assert exact.status_code == 201 and exact.json()["imported_messages"] == 1000


def test_a_large_import_does_not_hold_the_worker(live_server, tmp_path):
    document = tmp_path / "export.json"
    document.write_text(json.dumps(export_document(100_000)))
    stall, took, answer = longest_health_stall(live_server, lambda: curl(
        live_server, "-H", "Content-Type: application/json", "--data-binary", f"@{document}",
        live_server.url + "/api/sessions/import"))
    assert json.loads(answer)["imported_messages"] == 100_000, answer
    assert stall < took / 3, f"/health waited {stall:.2f} s during an import of {took:.2f} s"


def seed_sessions(server, count):
    assert server.stop() == 0
    now = int(time.time() * 1000)
    [(account,)] = run_sql(server.db_path, "SELECT id FROM account")
    run_sql(server.db_path, "INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
            "seq, active, last_active_at, created_at, updated_at) VALUES (?, ?, ?, '', 0, 0, 0, FALSE, ?, ?, ?)",
            many=[(f"s{n:07d}", account, f"session {n}", now, now, now - n) for n in range(count)])
    token = server.token
    server.start()
    server.token = token


def curl(server, *args):
    """The work of longest_health_stall, run by curl in a process of its own: a client in this process
    would compete with the /health poller for the interpreter lock and inflate what it measures."""
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-H", f"Authorization: Bearer {server.token}", *args],
                         capture_output=True, check=True)
    return out.stdout


def test_listing_many_sessions_does_not_hold_the_worker(make_server):
    server = make_server()
    seed_sessions(server, 60_000)
    stall, took, answer = longest_health_stall(server, lambda: curl(server, server.url + "/api/sessions"))
    items = json.loads(answer)["items"]
    assert [s["id"] for s in items] == [f"s{n:07d}" for n in range(60_000)]  # most recently updated first
    assert stall < took / 3, f"/health waited {stall:.2f} s during a listing of {took:.2f} s"


def test_deleting_every_session_is_one_update_that_watchers_survive(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_QUEUE_SIZE": "20"})
    seed_sessions(server, 5_000)
    watcher = ws_connect(server)
    scoped = ws_connect(server, client_type="session-scoped", session_id="s0000001")
    r = requests.delete(server.url + "/api/sessions", headers=server.headers, timeout=30)
    assert r.json() == {"deleted": 5_000}
    for ws in (watcher, scoped):
        update = ws.expect("update")["data"]
        assert update["body"] == {"t": "delete-all", "deleted": 5_000}
        ws.send("ping", ack=1)
        assert ws.expect("ack")["ack"] == 1
    # a client that was away replays the same one update
    late = ws_connect(server, since=watcher.ready, ready=False)
    assert late.expect("update")["data"] == update
    assert late.expect("ready")["data"]["seq"] == update["seq"]


BIG_COMMIT = """
from gevent import monkey
monkey.patch_all()
import sqlite3, sys, time
import gevent
sys.path.insert(0, sys.argv[1])
import app, domain, events, events.writes, models
app.create_app({"DB": sys.argv[2]})
with models.db.connection_context():
    account = events.writer.run(None, lambda changes: models.Account.create(name="a").id)
with sqlite3.connect(sys.argv[2]) as db:
    db.executemany("INSERT INTO session (id, account_id, metadata, metadata_version, agent_state_version, seq, active, "
                   "last_active_at, created_at, updated_at) VALUES (?, ?, '', 0, 0, 0, 0, 0, 0, 0)",
                   [(f"s{n:07d}", account) for n in range(int(sys.argv[3]))])
ticks = 0
def tick():  # another greenlet, as a request on another connection would be
    global ticks
    while True:
        gevent.sleep(0.001)
        ticks += 1
gevent.spawn(tick)
commit, spans = events.writes.Writer._commit, []
def timed(*args):
    started, ticked = time.monotonic(), ticks
    commit(*args)
    spans.append((time.monotonic() - started, ticks - ticked))
events.writes.Writer._commit = timed
started, ticked = time.monotonic(), ticks
with models.db.connection_context():
    assert domain.delete_all_sessions(account) == int(sys.argv[3])
print(*spans[-1], time.monotonic() - started, ticks - ticked)
"""


@pytest.mark.sqlite_only  # SQLite's commit in a native thread; psycopg's waits yield (test_postgres.py)
def test_a_delete_all_of_100000_sessions_leaves_the_worker_serving(tmp_path):
    """Its statements and its commit (the last pages and the checkpoint that follows) run in a native
    thread: another greenlet, as a request on another connection would be, runs about once a
    millisecond throughout. Held by them, it ran once per step of the delete and not at all during
    the commit."""
    out = subprocess.run([sys.executable, "-c", BIG_COMMIT, str(ROOT), str(tmp_path / "big.db"), "100000"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    commit_took, commit_ticks, took, ticks = map(float, out.split())
    assert commit_took > 0.01, "the commit was too quick to tell"
    assert commit_ticks > commit_took * 1000 / 10, f"{commit_ticks} turns of another greenlet in a commit of {commit_took} s"
    assert ticks > took * 1000 / 5, f"{ticks} turns of another greenlet in a delete-all of {took} s"


@pytest.mark.parametrize("text", [
    '{}', ' { } ', '{"a": [], "b": [1, [2, {"c": [3]}], "x"], "c": {"d": [4]}}', '{"messages": [{"content": "\\u00e9"}]}',
    '{"a": 1, "a": 2}', '{"a": [1, 2, 3,]}', '{"a": [1 2]}', '{"a" 1}', '{a: 1}', '{"a": 1,}', '{"a": 1} x',
    '{"a": [1]', '[1, 2]', '"text"', '{"a": NaN}', '{"a": "\\ud800"}', '{"a": [{"b": "\\udfff"}]}', '',
])
def test_parsing_in_steps_reads_exactly_what_the_json_module_reads(text):
    """schemas.parse_json_in_steps replaces json.loads (through parse_json) for export documents."""
    import schemas
    try:
        expected = schemas.parse_json(text.encode())
    except ValueError:
        expected = ValueError
    try:
        got = schemas.parse_json_in_steps(text.encode(), max_items=10)
    except ValueError:
        got = ValueError
    assert got == expected


# --- 5: quotas ------------------------------------------------------------------------------------

def test_the_session_quota_refuses_one_more_with_429_and_changes_nothing(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_QUOTA_SESSIONS": "3"})
    h = server.headers
    sids = [new_session(server, "a"), new_session(server, "b"),
            requests.post(server.url + "/api/sessions", json={"title": "c"}, headers=h, timeout=TIMEOUT).json()["id"]]
    before = run_sql(server.db_path, 'SELECT COUNT(*), MAX(seq) FROM "update"')
    for r in (requests.post(server.url + "/v1/sessions", json={"tag": "d", "metadata": ""}, headers=h, timeout=TIMEOUT),
              requests.post(server.url + "/api/sessions", json={"title": "d"}, headers=h, timeout=TIMEOUT),
              requests.post(server.url + "/api/sessions/import", json=export_document(2), headers=h, timeout=TIMEOUT)):
        assert (r.status_code, r.json()["error"]) == (429, "quota_exceeded"), r.text
        assert "3 sessions" in r.json()["message"]
    assert run_sql(server.db_path, 'SELECT COUNT(*), MAX(seq) FROM "update"') == before
    # an existing tag is still loaded, and deleting one makes room for one
    assert requests.post(server.url + "/v1/sessions", json={"tag": "a", "metadata": ""}, headers=h,
                         timeout=TIMEOUT).json()["session"]["id"] == sids[0]
    assert requests.delete(f"{server.url}/api/sessions/{sids[0]}", headers=h, timeout=TIMEOUT).status_code == 204
    assert requests.post(server.url + "/api/sessions", json={"title": "d"}, headers=h, timeout=TIMEOUT).status_code == 201


def test_the_stored_bytes_quota_counts_message_content_and_frees_on_delete(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_QUOTA_STORED_BYTES": "10000"})
    sid = new_session(server)
    url = f"{server.url}/v3/sessions/{sid}/messages"

    def post(text):
        return requests.post(url, json={"messages": [{"content": text}]}, headers=server.headers, timeout=TIMEOUT)
    for _ in range(3):
        assert post("x" * 3000).status_code == 200  # 3,002 bytes each, with the JSON quotes
    over = post("x" * 1000)
    assert (over.status_code, over.json()["error"]) == (429, "quota_exceeded")
    ws = ws_connect(server)
    ws.send("message", {"sid": sid, "content": "y" * 1000}, ack=1)
    error = ws.expect("error")
    assert (error["ack"], error["data"]["error"]) == (1, "quota_exceeded")
    assert post("x" * 900).status_code == 200  # what still fits is taken
    assert len(requests.get(url, headers=server.headers, timeout=TIMEOUT).json()["messages"]) == 4
    requests.delete(server.url + "/api/sessions", headers=server.headers, timeout=TIMEOUT)
    sid = new_session(server, "again")
    assert requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": "x" * 9000}]},
                         headers=server.headers, timeout=TIMEOUT).status_code == 200


def test_the_websockets_per_token_quota_refuses_one_more_with_an_error_frame(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_QUOTA_WEBSOCKETS_PER_TOKEN": "2"})
    first, second = ws_connect(server), ws_connect(server)
    third = ws_connect(server, ready=False)
    error = third.expect("error")
    assert error["data"]["error"] == "quota_exceeded"
    assert third.close_code() == 4429
    ws_connect(server, token=server.new_token())  # another token of the account has its own count
    first.close()
    time.sleep(0.5)
    ws_connect(server).send("ping", ack=1)  # a place freed is a place taken
    second.send("ping", ack=2)
    assert second.expect("ack")["ack"] == 2


@pytest.mark.sqlite_only  # a SQLite file of an earlier version (test_postgres.py migrates PostgreSQL's)
def test_the_quota_counters_are_filled_from_what_is_stored_when_a_database_is_upgraded(tmp_path):
    import models
    path = tmp_path / "before.db"
    # the file as it was before the step that adds the counters
    with file_at_version(path, step_adding("session_count")) as db:
        db.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'a', 0, 0), (2, 'b', 0, 0)")
        db.execute("INSERT INTO session (id, account_id, metadata, metadata_version, agent_state_version, seq, active, "
                   "last_active_at, created_at, updated_at) VALUES ('s1', 1, '', 0, 0, 2, 0, 0, 0, 0), "
                   "('s2', 1, '', 0, 0, 0, 0, 0, 0, 0)")
        db.execute("INSERT INTO message (id, session_id, seq, content, metadata, created_at, updated_at) VALUES "
                   "('m1', 's1', 1, '\"é\"', NULL, 0, 0), ('m2', 's1', 2, '1', '{\"k\":1}', 0, 0)")
    models.init_db(str(path))
    models.migrate()
    models.db.close_all()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, session_count, stored_bytes FROM account ORDER BY id").fetchall() == [
            (1, 2, 4 + 1 + 7), (2, 0, 0)]


def test_an_unexpected_error_in_a_websocket_event_closes_with_1011_and_no_http_answer(make_server, ws_connect):
    server = make_server()
    sid = new_session(server)
    ws = ws_connect(server)
    # a bug, simulated: the table a write needs is gone
    run_sql(server.db_path, "DROP TABLE message CASCADE" if is_postgres(server.db_path) else "DROP TABLE message")
    ws.send("message", {"sid": sid, "content": "into nothing"}, ack=1)
    assert ws.close_code() == 1011
    assert "websocket handler failed" in server.log()
    assert "HTTP/1.1 500" not in server.log()
    assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
