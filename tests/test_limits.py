"""Limits: every size limit accepts exactly its value and refuses one byte (or character) more, changing
nothing; bodies over the limit are refused before they are read, chunked ones included; clients that
never finish a request or never authenticate are dropped; a thousand idle websockets do not get in the
way of anyone else. (Frames over the limit close with 1009 and the auth timeout: test_updates.py.)"""
import json
import resource
import socket
import time

import psutil
import pytest
import requests
from test_agent_bad_input import snapshot

import models
from app import create_app, create_token
from conftest import LiveServer, closed_within, database, run_sql

TIMEOUT = 5


def utf8(n):
    """A string of exactly n UTF-8 bytes, most of them two-byte characters (so fewer than n characters)."""
    return "é" * (n // 2) + "x" * (n % 2)


def chars(n):
    """A string of exactly n characters (2n bytes)."""
    return "é" * n


def content(n):
    """A JSON string value whose compact serialization is exactly n bytes."""
    return utf8(n - 2)


def json_object(n):
    """A JSON object whose compact serialization is exactly n bytes."""
    return {"k": utf8(n - len('{"k":""}'))}


# --- field limits ------------------------------------------------------------------------------

LIMITS = {"MAX_CONTENT_BYTES": 120_000, "MAX_METADATA_BYTES": 100, "MAX_KEY_CHARS": 16}
V3 = "/v3/sessions/{sid}/messages"

# (id, method, path, body for size n, the limit, the field named in the error)
FIELDS = [
    ("content bytes", "POST", V3, lambda n: {"messages": [{"content": content(n)}]}, 120_000, "content"),
    ("object content bytes", "POST", V3, lambda n: {"messages": [{"content": json_object(n)}]}, 120_000, "content"),
    ("localId chars", "POST", V3, lambda n: {"messages": [{"content": 1, "localId": chars(n)}]}, 16, "localId"),
    ("tag chars", "POST", "/v1/sessions", lambda n: {"tag": chars(n), "metadata": ""}, 16, "tag"),
    ("metadata bytes", "POST", "/v1/sessions", lambda n: {"tag": "m", "metadata": utf8(n)}, 100, "metadata"),
    ("agentState bytes", "POST", "/v1/sessions", lambda n: {"tag": "a", "metadata": "", "agentState": utf8(n)}, 100,
     "agentState"),
    ("metadata update bytes", "POST", "/v1/sessions/{sid}/metadata", lambda n: {"metadata": utf8(n), "expectedVersion": 0},
     100, "metadata"),
    ("agentState update bytes", "POST", "/v1/sessions/{sid}/agent-state",
     lambda n: {"agentState": utf8(n), "expectedVersion": 0}, 100, "agentState"),
    ("title chars", "POST", "/api/sessions", lambda n: {"title": chars(n)}, 120, "title"),
    ("rename chars", "PATCH", "/api/sessions/{sid}", lambda n: {"title": chars(n)}, 120, "title"),
    ("padded title chars", "PATCH", "/api/sessions/{sid}", lambda n: {"title": f"  {chars(n)}\n"}, 120, "title"),
    ("system prompt chars", "PATCH", "/api/sessions/{sid}/system-prompt", lambda n: {"system_prompt": chars(n)}, 8000,
     "system_prompt"),
    ("chat text chars", "POST", "/api/sessions/{sid}/messages", lambda n: {"role": "user", "content": chars(n)}, 50_000,
     "content"),
    ("chat metadata bytes", "POST", "/api/sessions/{sid}/messages",
     lambda n: {"role": "user", "content": "hi", "metadata": json_object(n)}, 100, "metadata"),
]


@pytest.fixture
def limited(tmp_path):
    app = create_app({"DB": database(tmp_path / "limits.db"), "TESTING": True, **LIMITS})
    with models.db.connection_context():
        headers = {"Authorization": "Bearer " + create_token(models, account="alice")}
    client = app.test_client()
    sid = client.post("/v1/sessions", json={"tag": "s", "metadata": ""}, headers=headers).get_json()["session"]["id"]
    yield app, client, headers, sid
    models.db.close_all()


@pytest.mark.parametrize("method, path, body, limit, field", [case[1:] for case in FIELDS], ids=[c[0] for c in FIELDS])
def test_a_field_at_its_limit_is_accepted_and_one_over_is_refused_changing_nothing(limited, method, path, body, limit, field):
    app, client, headers, sid = limited
    path = path.format(sid=sid)
    before = snapshot(app.config["DB"])
    over = client.open(path, method=method, json=body(limit + 1), headers=headers)
    assert over.status_code == 400, over.get_json()
    assert over.get_json()["error"] == "invalid_request" and field in json.dumps(over.get_json()["errors"])
    assert snapshot(app.config["DB"]) == before
    exactly = client.open(path, method=method, json=body(limit), headers=headers)
    assert exactly.status_code in (200, 201), exactly.get_json()
    assert snapshot(app.config["DB"]) != before


# --- request bodies ----------------------------------------------------------------------------

BODY_LIMIT = 10_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server with small limits for the tests below; each uses tags of its own."""
    server = LiveServer(tmp_path_factory.mktemp("limits") / "limits.db", env={
        "SWITCHBOARD_MAX_BODY_BYTES": str(BODY_LIMIT), "SWITCHBOARD_MAX_FRAME_BYTES": "2000",
        "SWITCHBOARD_MAX_CONTENT_BYTES": "100", "SWITCHBOARD_WS_AUTH_TIMEOUT_SECONDS": "1"}).start()
    yield server
    server.stop()


def session_body(size, tag):
    """A valid session-create body of exactly `size` bytes (JSON padded with trailing spaces)."""
    text = json.dumps({"tag": tag, "metadata": ""}).encode()
    return text + b" " * (size - len(text))


def head(server, extra):
    return (f"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def chunked(data, size=4096, end=True):
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + (b"0\r\n\r\n" if end else b"")


def response(sock):
    """Status and JSON body of one response read from a raw socket (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(header.split()[1]), json.loads(body[:length])


def stored(server, tag):
    [(count,)] = run_sql(server.db_path, "SELECT count(*) FROM session WHERE tag = ?", (tag,))
    return count


def test_a_body_at_the_limit_is_read_and_one_byte_over_is_refused(server):
    over = requests.post(server.url + "/v1/sessions", data=session_body(BODY_LIMIT + 1, "over"), timeout=TIMEOUT,
                         headers={**server.headers, "Content-Type": "application/json"})
    assert over.status_code == 413 and over.json()["error"] == "payload_too_large"
    exactly = requests.post(server.url + "/v1/sessions", data=session_body(BODY_LIMIT, "exact"), timeout=TIMEOUT,
                            headers={**server.headers, "Content-Type": "application/json"})
    assert exactly.status_code == 200, exactly.text
    assert (stored(server, "over"), stored(server, "exact")) == (0, 1)


def test_a_huge_content_length_is_refused_before_the_body_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(head(server, "Content-Length: 1000000000000\r\n") + b'{"tag": "huge", "metadata": "')
        status, body = response(sock)
        assert (status, body["error"]) == (413, "payload_too_large")
        assert time.monotonic() - started < TIMEOUT
        # the server does not wait for the rest of the terabyte: it hangs up after its keep-alive wait
        sock.settimeout(10)
        assert sock.recv(1) == b""
    assert stored(server, "huge") == 0


@pytest.mark.parametrize("size, end, status", [(BODY_LIMIT, True, 200), (BODY_LIMIT + 1, True, 413),
                                               (BODY_LIMIT * 50, True, 413), (BODY_LIMIT + 1, False, 413)],
                         ids=["at-limit", "one-over", "far-over", "never-ending"])
def test_a_chunked_body_is_held_to_the_same_limit(server, size, end, status):
    # The bodies are valid JSON padded with spaces: a body cut at the limit would still parse.
    tag = f"chunked-{size}-{end}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head(server, "Transfer-Encoding: chunked\r\n") + chunked(session_body(size, tag), end=end))
        answer, body = response(sock)
    assert answer == status, body
    assert stored(server, tag) == (status == 200)
    if status == 413:
        assert body["error"] == "payload_too_large"


@pytest.mark.parametrize("framing", [b"zz\r\n{}\r\n0\r\n\r\n", b"1\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX"],
                         ids=["bad-size", "bad-terminator", "bad-terminator-unfinished"])
def test_a_malformed_chunked_body_is_the_clients_error(server, framing):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head(server, "Transfer-Encoding: chunked\r\n") + framing)
        status, body = response(sock)
    assert (status, body["error"]) == (400, "bad_request")
    assert "Traceback" not in server.log()


# --- websocket frames --------------------------------------------------------------------------

def test_websocket_frame_and_content_limits_are_inclusive(server, ws_connect):
    sid = requests.post(server.url + "/v1/sessions", json={"tag": "frames", "metadata": ""}, headers=server.headers,
                        timeout=TIMEOUT).json()["session"]["id"]
    ws = ws_connect(server)
    ws.send("message", {"sid": sid, "content": content(101), "localId": "over"}, ack=1)
    error = ws.expect("error")
    assert error["ack"] == 1 and "content" in error["data"]["errors"]
    ws.send("message", {"sid": sid, "content": content(100), "localId": "exact"}, ack=2)
    assert ws.expect("ack")["data"]["seq"] == 1
    frame = json.dumps({"event": "ping", "ack": 3})
    ws.client.send(frame + " " * (2000 - len(frame)))  # exactly the frame limit
    assert ws.expect("ack")["ack"] == 3
    ws.client.send(frame + " " * (2001 - len(frame)))
    assert ws.close_code() == 1009


# --- clients that never finish -----------------------------------------------------------------

UPGRADE = (b"GET /v1/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def upgraded(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(UPGRADE)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 101"), data
    return sock




def test_clients_that_never_finish_their_request_or_auth_frame_are_dropped(server):
    partial_headers = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    partial_headers.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the blank line never comes
    partial_frame = upgraded(server)
    # a masked text frame announcing 100 bytes, of which 3 are sent
    partial_frame.sendall(bytes([0x81, 0x80 | 100]) + b"\0\0\0\0" + b'{"e')
    started = time.monotonic()
    assert closed_within(partial_frame, 10)
    assert closed_within(partial_headers, 10)
    assert time.monotonic() - started < 8
    partial_headers.close()
    partial_frame.close()


IDLE = 1000


def test_a_thousand_idle_unauthenticated_websockets_do_not_get_in_the_way(make_server, ws_connect):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * IDLE), hard))
    server = make_server({"SWITCHBOARD_WS_AUTH_TIMEOUT_SECONDS": "120"})
    sid = requests.post(server.url + "/v1/sessions", json={"tag": "t", "metadata": ""}, headers=server.headers,
                        timeout=TIMEOUT).json()["session"]["id"]
    idle = []
    try:
        for _ in range(IDLE):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            sock.sendall(UPGRADE)
            idle.append(sock)
        for sock in idle:  # every upgrade was answered: the server holds them all
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            assert data.startswith(b"HTTP/1.1 101")
        [worker] = psutil.Process(server.proc.pid).children()
        assert worker.num_fds() > IDLE

        assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
        watcher = ws_connect(server)
        assert requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": "still here"}]},
                             headers=server.headers, timeout=TIMEOUT).status_code == 200
        assert watcher.expect("update")["data"]["body"]["message"]["content"] == "still here"
        watcher.send("ping", ack=1)
        assert watcher.expect("ack")["ack"] == 1

        # The watcher made one more than WS_MAX_UNAUTHENTICATED (1,000) waiting: the one that had
        # waited longest was closed (1013); no other was dropped or sent anything.
        idle[0].settimeout(TIMEOUT)
        close = idle[0].recv(64)
        assert close[:1] == b"\x88" and close[2:4] == (1013).to_bytes(2, "big"), close
        for sock in idle[1:]:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in idle:
            sock.close()
    assert requests.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
