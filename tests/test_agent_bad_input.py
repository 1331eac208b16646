"""Bad input to the agent contract, route by route: each case gets its documented status and JSON error
body, and the database is exactly as it was (compared table by table). Also: another account's session
ids behave exactly like missing ones on every route, and change nothing."""
import json

import pytest

import models
from app import create_app, create_token
from conftest import assert_refused, database, run_sql, send, snapshot

# Small limits keep the oversized cases small (and the tests fast); the code path is the same.
LIMITS = {"MAX_BODY_BYTES": 8192, "MAX_CONTENT_BYTES": 100, "MAX_METADATA_BYTES": 100, "MAX_KEY_CHARS": 256}
SESSION_PATHS = ["/v1/sessions/{sid}/messages", "/v3/sessions/{sid}/messages", "/v1/sessions/{sid}/metadata",
                 "/v1/sessions/{sid}/agent-state", "/v1/sessions/{sid}/alive", "/v1/sessions/{sid}/end",
                 "/v1/sessions/{sid}"]




@pytest.fixture
def world(tmp_path):
    """An app with small limits, alice's session (with a message) and headers for alice and bob."""
    app = create_app({"DB": database(tmp_path / "bad.db"), "TESTING": True, **LIMITS})
    with models.db.connection_context():
        alice = {"Authorization": "Bearer " + create_token(models, account="alice")}
        bob = {"Authorization": "Bearer " + create_token(models, account="bob")}
    client = app.test_client()
    session = client.post("/v1/sessions", json={"tag": "t", "metadata": "m", "agentState": "s"}, headers=alice)
    sid = session.get_json()["session"]["id"]
    client.post(f"/v3/sessions/{sid}/messages", json={"messages": [{"content": "hi", "localId": "l1"}]},
                headers=alice)
    client.get("/v1/sessions", headers=bob)  # both tokens have now been used once
    yield app, client, sid, alice, bob
    models.db.close_all()


def deep(n):
    return "[" * n + "]" * n


BIG = "x" * 101  # one byte over the content/metadata limits
V1 = "/v1/sessions"
V3 = "/v3/sessions/{sid}/messages"
META = "/v1/sessions/{sid}/metadata"
STATE = "/v1/sessions/{sid}/agent-state"
ALIVE = "/v1/sessions/{sid}/alive"
END = "/v1/sessions/{sid}/end"

# (method, path, body: dict/list -> JSON, str -> raw text sent as JSON, (text, type) -> raw with that type,
#  expected status, expected error, field expected in `errors` or None)
CASES = [
    # POST /v1/sessions
    ("POST", V1, {}, 400, "invalid_request", "tag"),
    ("POST", V1, {"tag": "t2"}, 400, "invalid_request", "metadata"),
    ("POST", V1, {"tag": 5, "metadata": "m"}, 400, "invalid_request", "tag"),
    ("POST", V1, {"tag": None, "metadata": "m"}, 400, "invalid_request", "tag"),
    ("POST", V1, {"tag": "t2", "metadata": {"a": 1}}, 400, "invalid_request", "metadata"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "agentState": 1}, 400, "invalid_request", "agentState"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "owner": "bob"}, 400, "invalid_request", "owner"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "agent_state": "s"}, 400, "invalid_request", "agent_state"),
    ("POST", V1, {"tag": "x" * 257, "metadata": "m"}, 400, "invalid_request", "tag"),
    ("POST", V1, {"tag": "t2", "metadata": BIG}, 400, "invalid_request", "metadata"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "agentState": BIG}, 400, "invalid_request", "agentState"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "dataEncryptionKey": "not base64!"}, 400, "invalid_request",
     "dataEncryptionKey"),
    ("POST", V1, {"tag": "t2", "metadata": "m", "dataEncryptionKey": 12}, 400, "invalid_request",
     "dataEncryptionKey"),
    ("POST", V1, '{"tag": "t2", "metadata": ', 400, "invalid_json", None),
    ("POST", V1, "", 400, "invalid_json", None),
    ("POST", V1, "null", 400, "invalid_json", None),
    ("POST", V1, '[{"tag": "t2", "metadata": "m"}]', 400, "invalid_request", "_schema"),
    ("POST", V1, ('{"tag": "t2", "metadata": "m"}', "text/plain"), 415, "unsupported_media_type", None),
    ("POST", V1, ("tag=t2&metadata=m", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", None),
    ("POST", V1, json.dumps({"tag": "t2", "metadata": "m" * 9000}), 413, "payload_too_large", None),
    # POST /v3/sessions/:id/messages
    ("POST", V3, {}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": []}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": i} for i in range(101)]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": {"content": "x"}}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": ["x"]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"localId": "l2"}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": None}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "localId": 5}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "localId": "x" * 257}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "localId": ""}]}, 400, "invalid_request", "messages"),
    # role and createdAt are optional (history replayed by client.py import-claude), and checked
    ("POST", V3, {"messages": [{"content": "x", "role": "robot"}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "", "role": "user"}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "createdAt": "2026-01-01"}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "createdAt": -1}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x", "createdAt": 1.5}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "x"}], "sid": "other"}, 400, "invalid_request", "sid"),
    ("POST", V3, {"messages": [{"content": BIG}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "ok"}, {"content": BIG}]}, 400, "invalid_request", "messages"),
    ("POST", V3, {"messages": [{"content": "ok", "localId": "l9"}, {"content": 1, "localId": 9}]}, 400,
     "invalid_request", "messages"),
    ("POST", V3, '{"messages": [{"content": NaN}]}', 400, "invalid_request", "messages"),
    ("POST", V3, '{"messages": [{"content": [Infinity]}]}', 400, "invalid_request", "messages"),
    ("POST", V3, f'{{"messages": [{{"content": {deep(3000)}}}]}}', 400, "invalid_json", None),
    ("POST", V3, '{"messages": [{"content": "x"}', 400, "invalid_json", None),
    ("POST", V3, b'{"messages": [{"content": "\xff"}]}', 400, "invalid_json", None),
    # a lone surrogate escape parses but no text can hold it (it used to be a 500)
    ("POST", V3, r'{"messages": [{"content": {"k": ["\ud800"]}}]}', 400, "invalid_json", None),
    ("POST", V3, r'{"messages": [{"content": "x", "localId": "\uDFFF"}]}', 400, "invalid_json", None),
    ("POST", V1, r'{"tag": "\udbff", "metadata": ""}', 400, "invalid_json", None),
    ("POST", V3, ('{"messages": [{"content": "x"}]}', "text/plain"), 415, "unsupported_media_type", None),
    ("POST", V3, json.dumps({"messages": [{"content": "x" * 90}] * 100}), 413, "payload_too_large", None),
    # POST /v1/sessions/:id/metadata
    ("POST", META, {"metadata": "m2"}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"expectedVersion": 0}, 400, "invalid_request", "metadata"),
    ("POST", META, {"metadata": "m2", "expectedVersion": "0"}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": "m2", "expectedVersion": 0.0}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": "m2", "expectedVersion": 0.5}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": "m2", "expectedVersion": False}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": "m2", "expectedVersion": None}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": "m2", "expectedVersion": -1}, 400, "invalid_request", "expectedVersion"),
    ("POST", META, {"metadata": None, "expectedVersion": 0}, 400, "invalid_request", "metadata"),
    ("POST", META, {"metadata": 7, "expectedVersion": 0}, 400, "invalid_request", "metadata"),
    ("POST", META, {"metadata": BIG, "expectedVersion": 0}, 400, "invalid_request", "metadata"),
    ("POST", META, {"metadata": "m2", "expectedVersion": 0, "version": 1}, 400, "invalid_request", "version"),
    ("POST", META, "{", 400, "invalid_json", None),
    ("POST", META, ('{"metadata": "m2", "expectedVersion": 0}', "text/plain"), 415, "unsupported_media_type", None),
    # POST /v1/sessions/:id/agent-state
    ("POST", STATE, {"expectedVersion": 0}, 400, "invalid_request", "agentState"),
    ("POST", STATE, {"agentState": "s2"}, 400, "invalid_request", "expectedVersion"),
    ("POST", STATE, {"agentState": "s2", "expectedVersion": "0"}, 400, "invalid_request", "expectedVersion"),
    ("POST", STATE, {"agentState": "s2", "expectedVersion": True}, 400, "invalid_request", "expectedVersion"),
    ("POST", STATE, {"agentState": {"s": 2}, "expectedVersion": 0}, 400, "invalid_request", "agentState"),
    ("POST", STATE, {"agentState": BIG, "expectedVersion": 0}, 400, "invalid_request", "agentState"),
    ("POST", STATE, {"agentState": "s2", "expectedVersion": 0, "metadata": "m"}, 400, "invalid_request",
     "metadata"),
    # POST /v1/sessions/:id/alive and /end
    ("POST", ALIVE, {"time": "123"}, 400, "invalid_request", "time"),
    ("POST", ALIVE, {"time": 1.5}, 400, "invalid_request", "time"),
    ("POST", ALIVE, {"time": True}, 400, "invalid_request", "time"),
    ("POST", ALIVE, {"time": -1}, 400, "invalid_request", "time"),
    ("POST", ALIVE, {"thinking": "yes"}, 400, "invalid_request", "thinking"),
    ("POST", ALIVE, {"thinking": 1}, 400, "invalid_request", "thinking"),
    ("POST", ALIVE, {"thinking": 0}, 400, "invalid_request", "thinking"),
    ("POST", ALIVE, {"thinking": None}, 400, "invalid_request", "thinking"),
    ("POST", ALIVE, {"active": True}, 400, "invalid_request", "active"),
    ("POST", ALIVE, "[]", 400, "invalid_request", "_schema"),
    ("POST", ALIVE, "tru", 400, "invalid_json", None),
    ("POST", ALIVE, ("{}", "text/plain"), 415, "unsupported_media_type", None),
    ("POST", END, {"time": "now"}, 400, "invalid_request", "time"),
    ("POST", END, {"time": 1.0}, 400, "invalid_request", "time"),
    ("POST", END, {"thinking": False}, 400, "invalid_request", "thinking"),
    ("POST", END, "{]", 400, "invalid_json", None),
    ("POST", END, ("", "text/plain"), 415, "unsupported_media_type", None),
    # query strings
    ("GET", "/v2/sessions/active?limit=0", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions/active?limit=501", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions/active?limit=ten", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions/active?limit=", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions/active?cursor=cursor_v1_x", None, 400, "invalid_request", "cursor"),
    ("GET", "/v2/sessions?limit=201", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions?limit=1.0", None, 400, "invalid_request", "limit"),
    ("GET", "/v2/sessions?changedSince=0", None, 400, "invalid_request", "changedSince"),
    ("GET", "/v2/sessions?changedSince=99999999999999999999", None, 400, "invalid_request", "changedSince"),
    ("GET", "/v2/sessions?changed_since=5", None, 400, "invalid_request", "changed_since"),
    ("GET", "/v2/sessions?cursor=nope", None, 400, "Invalid cursor format", None),
    ("GET", V3 + "?after_seq=1&before_seq=3", None, 400, "invalid_request", "_schema"),
    ("GET", V3 + "?limit=501", None, 400, "invalid_request", "limit"),
    ("GET", V3 + "?after_seq=99999999999999999999", None, 400, "invalid_request", "after_seq"),
    ("GET", V3 + "?before_seq=99999999999999999999", None, 400, "invalid_request", "before_seq"),
    ("GET", V3 + "?afterSeq=1", None, 400, "invalid_request", "afterSeq"),
    # wrong method, unknown route
    ("PUT", V1, {"tag": "t2", "metadata": "m"}, 405, "method_not_allowed", None),
    ("PATCH", V3, {"messages": [{"content": 1}]}, 405, "method_not_allowed", None),
    ("DELETE", "/v1/sessions/{sid}/messages", None, 405, "method_not_allowed", None),
    ("POST", "/v2/sessions", {}, 405, "method_not_allowed", None),
    ("GET", "/v1/sessions/{sid}/metadata", None, 405, "method_not_allowed", None),
    ("GET", "/v4/sessions", None, 404, "not_found", None),
    ("POST", "/v1/sessions/{sid}/messages/extra", {}, 404, "not_found", None),
]


@pytest.mark.parametrize("method, path, body, status, error, field", CASES,
                         ids=[f"{c[0]} {c[1]} #{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_its_error_and_changes_nothing(world, method, path, body, status, error, field):
    app, client, sid, alice, bob = world
    assert_refused(app, client, method, path.format(sid=sid), body, alice, status, error, field)


def test_a_rejected_batch_stores_none_of_its_messages(world):
    app, client, sid, alice, bob = world
    r = send(client, "POST", V3.format(sid=sid), {"messages": [{"content": "fine", "localId": "new"},
                                                              {"content": BIG}]}, alice)
    assert r.get_json()["errors"] == {"messages": {"1": {"content": ["Larger than 100 bytes serialized."]}}}
    assert run_sql(app.config["DB"], "SELECT local_id FROM message") == [("l1",)]


def test_limits_are_inclusive(world):
    app, client, sid, alice, bob = world
    exactly = "x" * 98  # '"' + 98 + '"' = 100 bytes serialized
    ok = send(client, "POST", V3.format(sid=sid), {"messages": [{"content": exactly, "localId": "y" * 256}]}, alice)
    assert ok.status_code == 200, ok.get_json()
    ok = send(client, "POST", V1, {"tag": "z" * 256, "metadata": "m" * 100, "agentState": "s" * 100}, alice)
    assert ok.status_code == 200, ok.get_json()
    messages = [{"content": i} for i in range(100)]
    assert send(client, "POST", V3.format(sid=sid), {"messages": messages}, alice).status_code == 200


# --- authentication ------------------------------------------------------------------------------

ROUTES = [("GET", V1), ("POST", V1), ("GET", "/v2/sessions"), ("GET", "/v2/sessions/active"),
          *[("GET", p) for p in SESSION_PATHS[:2]], *[("POST", p) for p in SESSION_PATHS[1:6]],
          ("DELETE", SESSION_PATHS[6]), ("GET", "/openapi.json")]
BAD_AUTH = [None, "", "Bearer", "Bearer ", "Bearer sb_not-a-real-token", "Basic YWxpY2U6c2VjcmV0",
            "Token {token}", "Bearer {token}x", "Bearer  {token} {token}", "bearer\t{token}", "\u00e9\u00e9"]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("header", BAD_AUTH)
def test_missing_or_invalid_token_is_401_and_changes_nothing(world, method, path, header):
    app, client, sid, alice, bob = world
    token = alice["Authorization"].split()[1]
    headers = {} if header is None else {"Authorization": header.format(token=token)}
    before = snapshot(app.config["DB"])
    body = {"tag": "t9", "metadata": "m"} if path == V1 else {"messages": [{"content": 1}]} if path == V3 else {}
    r = send(client, method, path.format(sid=sid), body if method == "POST" else None, headers)
    assert r.status_code == 401
    assert r.get_json()["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert snapshot(app.config["DB"]) == before


def test_scheme_is_case_insensitive(world):
    app, client, sid, alice, bob = world
    token = alice["Authorization"].split()[1]
    assert client.get(V1, headers={"Authorization": f"bearer {token}"}).status_code == 200


# --- isolation between accounts ------------------------------------------------------------------

ISOLATION = [
    ("GET", "/v1/sessions/{sid}/messages", None, "Session not found"),
    ("GET", V3, None, "Session not found"),
    ("GET", V3 + "?before_seq=5", None, "Session not found"),
    ("POST", V3, {"messages": [{"content": "from bob", "localId": "l1"}]}, "Session not found"),
    ("POST", META, {"metadata": "bob's", "expectedVersion": 0}, "Session not found"),
    ("POST", STATE, {"agentState": "bob's", "expectedVersion": 0}, "Session not found"),
    ("POST", STATE, {"agentState": None, "expectedVersion": 0}, "Session not found"),
    ("POST", ALIVE, {"thinking": True}, "Session not found"),
    ("POST", END, {}, "Session not found"),
    ("DELETE", "/v1/sessions/{sid}", None, "Session not found or not owned by user"),
]


@pytest.mark.parametrize("method, path, body, error", ISOLATION)
def test_another_accounts_session_is_404_like_a_missing_one_and_changes_nothing(world, method, path, body, error):
    app, client, sid, alice, bob = world
    before = snapshot(app.config["DB"])
    theirs = send(client, method, path.format(sid=sid), body, bob)
    missing = send(client, method, path.format(sid="01m7zzzzzzzzzzzzzzzzzzzzzz"), body, bob)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert theirs.get_json()["error"] == error
    assert snapshot(app.config["DB"]) == before


def test_lists_and_tags_never_cross_accounts(world):
    app, client, sid, alice, bob = world
    for path in (V1, "/v2/sessions", "/v2/sessions/active", f"/v2/sessions?cursor=cursor_v1_{'z' * 26}"):
        assert client.get(path, headers=bob).get_json()["sessions"] == [], path
    before = snapshot(app.config["DB"])["session"]
    theirs = send(client, "POST", V1, {"tag": "t", "metadata": "bob's"}, bob).get_json()["session"]
    assert theirs["id"] != sid and theirs["metadata"] == "bob's"
    assert [row for row in snapshot(app.config["DB"])["session"] if row[0] == sid] == \
        [row for row in before if row[0] == sid]
