"""Property-based fuzzing of /v1/updates: random and malformed frames before and after auth never crash
the server, never leak another account's data, and are answered with error frames or a clean close.

`SWITCHBOARD_FUZZ_EXAMPLES` sets the number of examples (CI runs the default; raise it for a long run).
"""
import json
import os
import struct

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_websocket import ConnectionClosed

from conftest import WS, LiveServer

EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "150"))
SECRET = "SECRET-OF-BOB"
EVENTS = ["auth", "message", "update-metadata", "update-state", "session-alive", "session-end", "ping"]
REPLIES = {"error", "ack", "update", "ephemeral", "ready", "resync"}
CLEAN_CLOSES = {4401, 1007, 1002, 1009}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("fuzz") / "fuzz.db").start()
    bob = server.new_token("bob")
    bob_headers = {"Authorization": f"Bearer {bob}"}
    bob_sid = requests.post(server.url + "/v1/sessions", json={"tag": "b", "metadata": SECRET},
                            headers=bob_headers).json()["session"]["id"]
    requests.post(server.url + f"/v3/sessions/{bob_sid}/messages", json={"messages": [{"content": SECRET}]},
                  headers=bob_headers)
    alice_sid = requests.post(server.url + "/v1/sessions", json={"tag": "a", "metadata": "m"},
                              headers=server.headers).json()["session"]["id"]
    bob_watch = WS(server.ws_url)
    bob_watch.send("auth", {"token": bob})
    bob_watch.expect("ready")
    yield {"server": server, "sids": {"A": alice_sid, "B": bob_sid, "X": "no-such-session"}, "bob_watch": bob_watch}
    # Bob never wrote after connecting: whatever Alice's fuzzing did, none of it reached him.
    bob_watch.silent(timeout=0.5)
    bob_watch.close()
    server.stop()
    assert "Traceback" not in server.log()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
sid_refs = st.sampled_from(["A", "B", "X"])
event_data = st.fixed_dictionaries({}, optional={
    "sid": sid_refs,
    "token": st.sampled_from(["valid", "bob", "garbage"]) | st.text(max_size=10),
    "clientType": st.sampled_from(["user-scoped", "session-scoped"]) | json_values,
    "sessionId": sid_refs,
    "since": st.integers(-5, 2 ** 70) | json_values,
    "content": json_values,
    "localId": st.text(max_size=8) | json_values,
    "metadata": st.text(max_size=8) | json_values,
    "agentState": st.text(max_size=8) | json_values,
    "expectedVersion": st.integers(-2, 2 ** 70) | json_values,
    "time": st.integers(-2, 2 ** 70) | json_values,
    "thinking": json_values,
})
frames = st.one_of(
    st.tuples(st.just("json"), st.fixed_dictionaries(
        {"event": st.sampled_from(EVENTS) | st.text(max_size=8) | json_values},
        optional={"data": event_data | json_values, "ack": st.integers(-1, 2 ** 70) | json_values})),
    st.tuples(st.just("text"), st.text(max_size=50)),
    st.tuples(st.just("binary"), st.binary(max_size=50)),
    st.tuples(st.just("bad-utf8"), st.sampled_from([b"\xff\xfe", b'{"event": "ping\xc3"}', b"\xed\xa0\x80"])),
    st.tuples(st.just("deep"), st.integers(50, 3000)),
)


def masked_text_frame(payload):
    """A client text frame carrying arbitrary bytes (websocket clients refuse to send invalid UTF-8)."""
    mask = b"\x01\x02\x03\x04"
    header = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else \
        bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def resolve(value, world, token):
    """Swap the placeholders the strategies use for this world's real ids and tokens."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("sid", "sessionId") and item in world["sids"]:
                item = world["sids"][item]
            elif key == "token" and item == "valid":
                item = token
            out[key] = resolve(item, world, token)
        return out
    if isinstance(value, list):
        return [resolve(v, world, token) for v in value]
    return value


def send(ws, kind, value, world, token):
    if kind == "json":
        ws.client.send(json.dumps(resolve(value, world, token)))
    elif kind == "text":
        ws.client.send(value)
    elif kind == "binary":
        ws.client.send(value)
    elif kind == "bad-utf8":
        ws.client.sock.sendall(masked_text_frame(value))
    else:
        ws.client.send('{"event":"ping","data":' + "[" * value + "]" * value + "}")


def replies_until_closed_or(ws, ack_id):
    """Every frame until our ping's ack (connection alive) or the close; returns (frames, close code)."""
    got = []
    while True:
        try:
            message = ws.recv(timeout=5)
        except TimeoutError:
            raise AssertionError(f"no answer and no close; got {got}") from None
        except Exception:
            return got, ws.client.close_reason
        got.append(message)
        if message.get("event") == "ack" and message.get("ack") == ack_id:
            return got, None


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(authenticate=st.booleans(), sequence=st.lists(frames, min_size=1, max_size=4))
def test_random_frames_are_answered_or_closed_and_never_leak(world, authenticate, sequence):
    server = world["server"]
    ws = WS(server.ws_url)
    try:
        if authenticate:
            ws.send("auth", {"token": server.token})
            ws.expect("ready")
        for kind, value in sequence:
            try:
                send(ws, kind, value, world, server.token)
            except (ConnectionClosed, OSError):
                break  # the server closed it (invalid UTF-8, failed auth): judged below
        if authenticate:
            try:
                ws.send("ping", ack=987654321)
            except Exception:
                pass  # already closed by the server
        got, code = replies_until_closed_or(ws, 987654321)
        for message in got:
            assert message.get("event") in REPLIES, message
            assert SECRET not in json.dumps(message), message
        if code is not None:
            assert code in CLEAN_CLOSES, (code, got)
        elif not authenticate:
            pytest.fail("an unauthenticated connection got an ack")
    finally:
        ws.close()
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
