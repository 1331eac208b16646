"""The /v1/updates websocket against the real server: auth, routing, acks, replay, resync, ordering
under concurrent writers, slow and stuck readers, bad frames, presence and shutdown."""
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from conftest import ROOT, WS, run_sql


def create(server, tag, headers=None):
    r = requests.post(server.url + "/v1/sessions", json={"tag": tag, "metadata": "m"},
                      headers=headers or server.headers)
    assert r.status_code == 200, r.text
    return r.json()["session"]["id"]


def post(server, sid, *contents, headers=None):
    r = requests.post(server.url + f"/v3/sessions/{sid}/messages",
                      json={"messages": [{"content": c} for c in contents]}, headers=headers or server.headers)
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def updates(ws, count, timeout=5):
    frames = [ws.expect("update", timeout) for _ in range(count)]
    return [f["data"] for f in frames]


def update_and_activity(ws, timeout=5):
    """(body, data) of the durable update and the activity ephemeral a change of presence sends, in
    either order: on PostgreSQL the update is published from the log, after the ephemeral."""
    frames = {f["event"]: f["data"] for f in (ws.recv(timeout), ws.recv(timeout))}
    return frames["update"]["body"], frames["ephemeral"]


# --- auth --------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [
    {"token": "sb_not-a-token"},
    {"token": ""},
    {},
    {"token": 5},
    {"token": "x", "clientType": "admin"},
    {"token": "x", "since": -1},
])
def test_bad_auth_gets_error_then_close_4401(live_server, auth):
    ws = WS(live_server.ws_url)
    ws.send("auth", auth)
    assert ws.expect("error")["data"]["error"] == "unauthorized"
    assert ws.close_code() == 4401


@pytest.mark.parametrize("first", ["not json", json.dumps({"event": "ping"}), json.dumps([1, 2])])
def test_first_frame_must_be_auth(live_server, first):
    ws = WS(live_server.ws_url)
    ws.client.send(first)
    ws.expect("error")
    assert ws.close_code() == 4401


def test_session_scoped_auth_needs_own_session(live_server, ws_connect):
    other = live_server.new_token("mallory")
    sid = create(live_server, "mine")
    ws = ws_connect(live_server, token=other, client_type="session-scoped", session_id=sid, ready=False)
    ws.expect("error")
    assert ws.close_code() == 4401


def test_no_auth_frame_is_dropped_after_the_timeout(make_server):
    server = make_server({"SWITCHBOARD_WS_AUTH_TIMEOUT_SECONDS": "1"})
    ws = WS(server.ws_url)
    started = time.monotonic()
    assert ws.expect("error", timeout=5)["data"]["error"] == "unauthorized"
    assert ws.close_code() == 4401
    assert time.monotonic() - started < 4


# --- routing -----------------------------------------------------------------------------------

def test_routing_matrix(live_server, ws_connect):
    s1, s2 = create(live_server, "one"), create(live_server, "two")
    mallory = live_server.new_token("mallory")
    user_a = ws_connect(live_server)
    user_b = ws_connect(live_server)
    scoped_1 = ws_connect(live_server, client_type="session-scoped", session_id=s1)
    scoped_2 = ws_connect(live_server, client_type="session-scoped", session_id=s2)
    stranger = ws_connect(live_server, token=mallory)

    post(live_server, s1, "to one")
    post(live_server, s2, "to two")

    for ws in (user_a, user_b):
        got = updates(ws, 2)
        assert [(u["body"]["sid"], u["body"]["message"]["content"]) for u in got] == [(s1, "to one"), (s2, "to two")]
    assert updates(scoped_1, 1)[0]["body"]["message"]["content"] == "to one"
    assert updates(scoped_2, 1)[0]["body"]["message"]["content"] == "to two"
    for ws in (scoped_1, scoped_2, stranger):
        ws.silent()


def test_message_sent_over_a_socket_is_not_echoed_to_it(live_server, ws_connect):
    sid = create(live_server, "echo")
    sender = ws_connect(live_server)
    watcher = ws_connect(live_server)
    sender.send("message", {"sid": sid, "content": {"text": "hi"}, "localId": "l-1"}, ack=7)
    ack = sender.expect("ack")
    assert ack["ack"] == 7 and ack["data"]["seq"] == 1 and ack["data"]["localId"] == "l-1"
    sender.silent()
    message = updates(watcher, 1)[0]["body"]["message"]
    assert message["content"] == {"text": "hi"} and message["localId"] == "l-1"
    # the same localId again is the same message: acked with the stored row, nothing published
    sender.send("message", {"sid": sid, "content": {"text": "hi"}, "localId": "l-1"}, ack=8)
    assert sender.expect("ack")["data"]["id"] == ack["data"]["id"]
    watcher.silent()


def test_every_agent_write_reaches_subscribers(live_server, ws_connect):
    ws = ws_connect(live_server)
    sid = create(live_server, "all")
    assert updates(ws, 1)[0]["body"]["t"] == "new-session"
    h = live_server.headers
    requests.post(live_server.url + f"/v1/sessions/{sid}/metadata", json={"metadata": "m2", "expectedVersion": 0}, headers=h)
    requests.post(live_server.url + f"/v1/sessions/{sid}/agent-state", json={"agentState": "s", "expectedVersion": 0}, headers=h)
    post(live_server, sid, "x")
    requests.delete(live_server.url + f"/v1/sessions/{sid}", headers=h)
    bodies = [u["body"] for u in updates(ws, 4)]
    assert bodies == [
        {"t": "update-session", "id": sid, "metadata": {"value": "m2", "version": 1}},
        {"t": "update-session", "id": sid, "agentState": {"value": "s", "version": 1}},
        bodies[2],
        {"t": "delete-session", "sid": sid},
    ]
    assert bodies[2]["t"] == "new-message"


# --- acks --------------------------------------------------------------------------------------

def test_acks_for_metadata_state_and_ping(live_server, ws_connect):
    sid = create(live_server, "acks")
    ws = ws_connect(live_server)
    watcher = ws_connect(live_server)
    ws.send("update-metadata", {"sid": sid, "metadata": "new", "expectedVersion": 0}, ack=1)
    assert ws.expect("ack") == {"event": "ack", "ack": 1, "data": {"result": "success", "version": 1, "metadata": "new"}}
    ws.send("update-metadata", {"sid": sid, "metadata": "late", "expectedVersion": 0}, ack=2)
    assert ws.expect("ack")["data"] == {"result": "version-mismatch", "version": 1, "metadata": "new"}
    ws.send("update-state", {"sid": sid, "agentState": None, "expectedVersion": 0}, ack=3)
    assert ws.expect("ack")["data"] == {"result": "success", "version": 1, "agentState": None}
    ws.send("update-state", {"sid": sid, "agentState": "x", "expectedVersion": 5}, ack=4)
    assert ws.expect("ack")["data"] == {"result": "version-mismatch", "version": 1, "agentState": None}
    ws.send("ping", ack=5)
    assert ws.expect("ack") == {"event": "ack", "ack": 5, "data": {}}
    # the successful changes reached the other connection (metadata changes are not echo-suppressed
    # for other sockets), the mismatches did not
    bodies = [u["body"] for u in updates(watcher, 2)]
    assert bodies[0]["metadata"] == {"value": "new", "version": 1}
    assert bodies[1]["agentState"] == {"value": None, "version": 1}
    watcher.silent()
    r = requests.get(live_server.url + "/v1/sessions", headers=live_server.headers).json()["sessions"][0]
    assert (r["metadata"], r["metadataVersion"], r["agentStateVersion"]) == ("new", 1, 1)


BAD_FRAMES = [
    ("not json", "invalid_json"),
    (json.dumps([1]), "invalid_request"),
    (json.dumps({"data": {}}), "invalid_request"),
    (json.dumps({"event": 5}), "invalid_request"),
    (json.dumps({"event": "nope"}), "unknown_event"),
    (json.dumps({"event": "message", "data": {"content": "x"}}), "invalid_request"),
    (json.dumps({"event": "message", "data": {"sid": "no-such", "content": "x"}}), "session_not_found"),
    (json.dumps({"event": "message", "data": "text"}), "invalid_request"),
    (json.dumps({"event": "update-metadata", "data": {"sid": "x", "metadata": "m", "expectedVersion": "1"}}), "invalid_request"),
    (json.dumps({"event": "update-state", "data": {"sid": "x", "expectedVersion": 0}}), "invalid_request"),
    (json.dumps({"event": "session-alive", "data": {"sid": "x", "thinking": "yes"}}), "invalid_request"),
    (json.dumps({"event": "ping", "data": {"extra": 1}}), "invalid_request"),
    (json.dumps({"event": "ping", "ack": "one"}), "invalid_request"),
    (json.dumps({"event": "ping", "ack": 10 ** 400}), "invalid_request"),
    ('{"event": "message", "data": {"sid": "x", "content": "\\udc00"}}', "invalid_json"),  # lone surrogate
]


def test_bad_frames_get_an_error_and_the_connection_stays_open(live_server, ws_connect):
    ws = ws_connect(live_server)
    for raw, error in BAD_FRAMES:
        ws.client.send(raw)
        assert ws.expect("error")["data"]["error"] == error, raw
    ws.client.send(b"\x00\xffbinary")
    assert ws.expect("error")["data"]["error"] == "invalid_frame"
    ws.send("ping", ack=1)
    assert ws.expect("ack")["ack"] == 1


def test_an_error_frame_carries_the_ack_id(live_server, ws_connect):
    ws = ws_connect(live_server)
    ws.send("message", {"sid": "missing", "content": 1}, ack=42)
    assert ws.expect("error") == {"event": "error", "ack": 42,
                                  "data": {"error": "session_not_found", "message": "Session not found."}}


def test_oversized_frame_closes_with_1009(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_MAX_FRAME_BYTES": "2000"})
    ws = ws_connect(server)
    ws.client.send(json.dumps({"event": "ping", "data": {"pad": "x" * 3000}}))
    assert ws.close_code() == 1009
    # the server keeps serving others
    ws_connect(server).send("ping", ack=1)


# --- replay ------------------------------------------------------------------------------------

def test_replay_after_disconnect_sends_exactly_what_was_missed(live_server, ws_connect):
    sid = create(live_server, "replay")
    ws = ws_connect(live_server)
    post(live_server, sid, "seen")
    last = updates(ws, 1)[0]["seq"]
    ws.close()
    post(live_server, sid, "missed 1", "missed 2")
    back = ws_connect(live_server, since=last, ready=False)
    got = updates(back, 2)
    assert [u["body"]["message"]["content"] for u in got] == ["missed 1", "missed 2"]
    assert [u["seq"] for u in got] == [last + 1, last + 2]
    assert back.expect("ready")["data"]["seq"] == last + 2
    post(live_server, sid, "live")
    assert updates(back, 1)[0]["seq"] == last + 3


def test_replay_after_server_restart(tmp_path, make_server, ws_connect):
    db_path = tmp_path / "restart.db"
    server = make_server(db_path=db_path)
    sid = create(server, "restart")
    ws = ws_connect(server)
    post(server, sid, "before")
    last = updates(ws, 1)[0]["seq"]
    server.stop()
    assert ws.close_code() == 1001
    again = make_server(db_path=db_path)
    again.token = server.token
    post(again, sid, "after 1", "after 2")
    back = ws_connect(again, since=last, ready=False)
    assert [u["body"]["message"]["content"] for u in updates(back, 2)] == ["after 1", "after 2"]
    back.expect("ready")


def test_session_scoped_replay_only_has_its_session(live_server, ws_connect):
    s1, s2 = create(live_server, "a"), create(live_server, "b")
    post(live_server, s1, "one")
    post(live_server, s2, "two")
    ws = ws_connect(live_server, since=0, client_type="session-scoped", session_id=s2, ready=False)
    got = updates(ws, 2)
    assert [u["body"]["t"] for u in got] == ["new-session", "new-message"]
    assert got[1]["body"]["message"]["content"] == "two"
    ws.expect("ready")


def test_since_past_retention_or_ahead_gets_resync(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_UPDATE_RETENTION_DAYS": "0.00001",  # ~0.9 s
                          "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.2"})
    sid = create(server, "old")
    post(server, sid, "1", "2")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if run_sql(server.db_path, 'SELECT COUNT(*) FROM "update"') == [(0,)]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the update log was never pruned")
    ws = ws_connect(server, since=0, ready=False)
    assert ws.expect("resync")["data"] == {"seq": 3}
    assert ws.expect("ready")["data"] == {"seq": 3}
    ahead = ws_connect(server, since=99, ready=False)
    assert ahead.expect("resync")["data"] == {"seq": 3}
    current = ws_connect(server, since=3, ready=False)
    assert current.expect("ready")["data"] == {"seq": 3}


def test_concurrent_writers_deliver_gap_free_in_order(live_server, ws_connect):
    sessions = [create(live_server, f"w{i}") for i in range(8)]
    ws = ws_connect(live_server)
    start = ws.ready
    per_thread = 25

    def writer(sid):
        with requests.Session() as http:
            for i in range(per_thread):
                r = http.post(live_server.url + f"/v3/sessions/{sid}/messages",
                              json={"messages": [{"content": i, "localId": f"{sid}-{i}"}]}, headers=live_server.headers)
                assert r.status_code == 200

    threads = [threading.Thread(target=writer, args=(sid,)) for sid in sessions]
    for t in threads:
        t.start()
    got = updates(ws, 8 * per_thread, timeout=30)
    for t in threads:
        t.join()
    assert [u["seq"] for u in got] == list(range(start + 1, start + 1 + 8 * per_thread))
    for sid in sessions:
        assert [u["body"]["message"]["content"] for u in got if u["body"]["sid"] == sid] == list(range(per_thread))
    ws.silent()


# --- slow and stuck readers --------------------------------------------------------------------

class RawClient:
    """A websocket client that reads only when told to, as slowly as it likes."""

    def __init__(self, server, token, rcvbuf=4096):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", server.port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target="/v1/updates")))
        self._until(lambda e: isinstance(e, AcceptConnection))
        self.sock.sendall(self.ws.send(TextMessage(json.dumps({"event": "auth", "data": {"token": token}}))))

    def _until(self, done, chunk=65536, pause=0.0, timeout=30):
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            for event in self.ws.events():
                if done(event):
                    return event
            data = self.sock.recv(chunk)
            if not data:
                return None
            self.ws.receive_data(data)
            time.sleep(pause)
        raise TimeoutError

    def message(self, chunk=65536, pause=0.0):
        parts = []

        def whole(event):
            if isinstance(event, TextMessage):
                parts.append(event.data)
                return event.message_finished
            if isinstance(event, CloseConnection):
                raise ConnectionError(event.code)
            return False
        self._until(whole, chunk, pause)
        return json.loads("".join(parts))

    def drain_until_closed(self, timeout=30):
        """Read everything until the server closes the connection; returns True if it did."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1 << 20):
                pass
        except (ConnectionResetError, TimeoutError, socket.timeout):
            return False
        return True


def test_one_mebibyte_message_reaches_a_slow_reader_intact(live_server):
    sid = create(live_server, "big")
    reader = RawClient(live_server, live_server.token)
    assert reader.message()["event"] == "ready"
    blob = base64.b64encode(os.urandom(750_000)).decode()  # 1,000,000 characters
    ws_sender = requests.post(live_server.url + f"/v3/sessions/{sid}/messages",
                              json={"messages": [{"content": blob}, {"content": "after"}]},
                              headers=live_server.headers)
    assert ws_sender.status_code == 200
    first = reader.message(chunk=4096, pause=0.0005)
    assert first["data"]["body"]["message"]["content"] == blob
    assert reader.message()["data"]["body"]["message"]["content"] == "after"


def test_a_reader_that_never_reads_is_dropped_and_others_keep_receiving(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_QUEUE_SIZE": "20", "SWITCHBOARD_WS_SEND_TIMEOUT_SECONDS": "2"})
    sid = create(server, "flood")
    stuck = RawClient(server, server.token)
    healthy = ws_connect(server)
    # More than the kernel's socket buffers (up to 4 MiB each way on loopback) plus the queue hold.
    payload = "x" * 64 * 1024
    for _ in range(40):
        post(server, sid, *[payload] * 5)
    got = updates(healthy, 200, timeout=30)
    assert [u["seq"] for u in got] == list(range(healthy.ready + 1, healthy.ready + 201))
    assert stuck.drain_until_closed(timeout=30), "the stuck reader was never disconnected"
    post(server, sid, "still alive")
    assert updates(healthy, 1)[0]["body"]["message"]["content"] == "still alive"


# --- presence ----------------------------------------------------------------------------------

def test_heartbeats_emit_activity_and_write_at_most_every_interval(live_server, ws_connect):
    sid = create(live_server, "alive")
    ws = ws_connect(live_server)
    [(before,)] = run_sql(live_server.db_path, "SELECT last_active_at FROM session WHERE id = ?", (sid,))
    for thinking in (True, False, True):
        r = requests.post(live_server.url + f"/v1/sessions/{sid}/alive", json={"thinking": thinking},
                          headers=live_server.headers)
        assert r.status_code == 200
        data = ws.expect("ephemeral")["data"]
        assert (data["type"], data["id"], data["active"], data["thinking"]) == ("activity", sid, True, thinking)
    ws.silent()  # still active: no durable update for a heartbeat
    [(after,)] = run_sql(live_server.db_path, "SELECT last_active_at FROM session WHERE id = ?", (sid,))
    assert after >= before  # at most the first beat wrote (session was already active: none did)


def test_end_marks_inactive_at_once_and_alive_reactivates(live_server, ws_connect):
    sid = create(live_server, "end")
    ws = ws_connect(live_server)
    requests.post(live_server.url + f"/v1/sessions/{sid}/end", json={}, headers=live_server.headers)
    body, activity = update_and_activity(ws)
    assert body == {"t": "update-session", "id": sid, "active": False} and activity["active"] is False
    listed = requests.get(live_server.url + "/v2/sessions/active", headers=live_server.headers).json()
    assert listed["sessions"] == []
    ws.send("session-alive", {"sid": sid, "time": int(time.time() * 1000), "thinking": True}, ack=1)
    assert ws.expect("ack")["ack"] == 1  # the handler answers at once; the effects follow from its queue
    body, activity = update_and_activity(ws)
    assert body == {"t": "update-session", "id": sid, "active": True}
    assert activity["active"] is True and activity["thinking"] is True
    listed = requests.get(live_server.url + "/v2/sessions/active", headers=live_server.headers).json()
    assert [s["id"] for s in listed["sessions"]] == [sid]


def test_sweeper_marks_silent_sessions_inactive(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_PRESENCE_TIMEOUT_SECONDS": "1",
                          "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.2"})
    sid = create(server, "sleepy")
    ws = ws_connect(server)
    body, activity = update_and_activity(ws, timeout=10)
    assert body == {"t": "update-session", "id": sid, "active": False} and activity["active"] is False


# --- shutdown ----------------------------------------------------------------------------------

def test_sigterm_sends_close_frames_and_exits_cleanly(live_server, ws_connect):
    sockets = [ws_connect(live_server) for _ in range(3)]
    started = time.monotonic()
    assert live_server.stop() == 0
    assert time.monotonic() - started < 5
    for ws in sockets:
        assert ws.close_code() == 1001
    assert "Traceback" not in live_server.log()


def test_revoking_a_token_closes_its_open_sockets_at_once(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_WS_TOKEN_CHECK_SECONDS": "0.2"})
    doomed_token = server.new_token("default")
    doomed = ws_connect(server, token=doomed_token)
    keeper = ws_connect(server)
    [(token_id,)] = run_sql(server.db_path, "SELECT MAX(id) FROM token")
    subprocess.run([sys.executable, "app.py", "revoke-token", str(token_id)], cwd=ROOT, check=True,
                   env={**os.environ, "SWITCHBOARD_DB": server.db_path}, capture_output=True)
    assert doomed.expect("error", timeout=5)["data"] == {"error": "unauthorized", "message": "Token revoked."}
    assert doomed.close_code() == 4401
    r = requests.get(server.url + "/v1/sessions", headers={"Authorization": f"Bearer {doomed_token}"})
    assert r.status_code == 401
    keeper.send("ping", ack=1)
    assert keeper.expect("ack")["ack"] == 1


def test_the_frame_limit_counts_utf8_bytes_not_characters(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_MAX_FRAME_BYTES": "2000"})
    ws = ws_connect(server)
    ws.client.send(json.dumps({"event": "ping", "data": {"pad": "é" * 990}}, ensure_ascii=False))  # ~2,000 bytes
    assert ws.close_code() == 1009
