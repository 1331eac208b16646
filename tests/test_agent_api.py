"""The agent contract (README, "Agent API") route by route: the happy-server contract's shapes,
orderings, limits and error bodies, through the Flask test client on a real SQLite file, with the
database read back directly."""
import base64
import json
import os
import time

import pytest

from conftest import run_sql

S_KEYS = {"id", "seq", "createdAt", "updatedAt", "active", "activeAt", "metadata", "metadataVersion",
          "agentState", "agentStateVersion", "dataEncryptionKey"}
M_KEYS = {"id", "seq", "content", "localId", "createdAt", "updatedAt", "role", "metadata", "deliveredAt"}
MINUTE = 60_000


def now_ms():
    return int(time.time() * 1000)


def query(app, sql, *params):
    return run_sql(app.config["DB"], sql, params)


def execute(app, sql, *params):
    run_sql(app.config["DB"], sql, params)


def update_bodies(app, sid=None):
    """The bodies of the account log's rows, in seq order (optionally of one session)."""
    rows = query(app, 'SELECT session_id, body FROM "update" ORDER BY account_id, seq')
    return [json.loads(body) for session_id, body in rows if sid is None or session_id == sid]


def create(client, auth, tag, metadata="m", **extra):
    r = client.post("/v1/sessions", json={"tag": tag, "metadata": metadata, **extra}, headers=auth)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["session"]


def append(client, auth, sid, *messages):
    """messages: contents, or (content, localId) pairs."""
    items = [{"content": m[0], "localId": m[1]} if isinstance(m, tuple) else {"content": m} for m in messages]
    r = client.post(f"/v3/sessions/{sid}/messages", json={"messages": items}, headers=auth)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["messages"]


# --- POST /v1/sessions ---------------------------------------------------------------------------

def test_create_answers_the_seed_session_object(client, auth):
    before = now_ms()
    session = create(client, auth, "tag-1", metadata="meta")
    assert set(session) == S_KEYS | {"lastMessage"}
    assert session["lastMessage"] is None
    assert session["seq"] == 0 and session["active"] is True
    assert session["metadata"] == "meta" and session["metadataVersion"] == 0
    assert session["agentState"] is None and session["agentStateVersion"] == 0
    assert session["dataEncryptionKey"] is None
    for key in ("createdAt", "updatedAt", "activeAt"):
        assert isinstance(session[key], int) and before <= session[key] <= now_ms()


def test_create_stores_agent_state_and_the_key_bytes(app, client, auth):
    key = os.urandom(32)
    encoded = base64.b64encode(key).decode()
    session = create(client, auth, "t", agentState="state-1", dataEncryptionKey=encoded)
    assert session["agentState"] == "state-1" and session["dataEncryptionKey"] == encoded
    assert query(app, "SELECT agent_state, data_encryption_key FROM session") == [("state-1", key)]
    listed = client.get("/v1/sessions", headers=auth).get_json()["sessions"][0]
    assert listed["agentState"] == "state-1" and listed["dataEncryptionKey"] == encoded


def test_empty_encryption_key_is_no_key(app, client, auth):
    assert create(client, auth, "t", dataEncryptionKey="")["dataEncryptionKey"] is None
    assert query(app, "SELECT data_encryption_key FROM session") == [(None,)]


def test_create_with_a_known_tag_loads_that_session_unchanged(app, client, auth):
    first = create(client, auth, "same", metadata="first", agentState="a")
    again = create(client, auth, "same", metadata="second", agentState="b", dataEncryptionKey="AAAA")
    assert again == first
    assert query(app, "SELECT tag, metadata, agent_state FROM session") == [("same", "first", "a")]
    assert [b["t"] for b in update_bodies(app)] == ["new-session"]


def test_create_emits_new_session_with_the_session_fields(app, client, auth):
    session = create(client, auth, "t", agentState="s")
    [body] = update_bodies(app)
    assert body["t"] == "new-session"
    assert {k: body[k] for k in S_KEYS} == {k: session[k] for k in S_KEYS}


def test_tags_are_per_account(client, auth, other_auth):
    assert create(client, auth, "shared")["id"] != create(client, other_auth, "shared")["id"]


# --- GET /v1/sessions ----------------------------------------------------------------------------

def test_v1_list_is_the_150_most_recently_updated(app, client, auth, other_auth):
    ids = [create(client, auth, f"t{i}")["id"] for i in range(155)]
    create(client, other_auth, "not-mine")
    # updated_at in an order unrelated to creation, so the test tells the two orders apart
    base = now_ms() - 1000 * MINUTE
    for i, sid in enumerate(ids):
        execute(app, "UPDATE session SET updated_at = ? WHERE id = ?", base + (i * 37) % 155 * 1000, sid)
    expected = sorted(ids, key=lambda sid: (ids.index(sid) * 37) % 155, reverse=True)[:150]
    sessions = client.get("/v1/sessions", headers=auth).get_json()["sessions"]
    assert [s["id"] for s in sessions] == expected
    assert all(set(s) == S_KEYS | {"lastMessage"} and s["lastMessage"] is None for s in sessions)


def test_v1_list_shows_updates_and_messages_in_updated_at_order(client, auth):
    a = create(client, auth, "a")["id"]
    create(client, auth, "b")
    time.sleep(0.005)
    append(client, auth, a, "hello")
    sessions = client.get("/v1/sessions", headers=auth).get_json()["sessions"]
    assert sessions[0]["id"] == a and sessions[0]["seq"] == 1


# --- GET /v2/sessions/active ---------------------------------------------------------------------

def _set_activity(app, sid, active, ago_ms):
    execute(app, "UPDATE session SET active = ?, last_active_at = ? WHERE id = ?", bool(active), now_ms() - ago_ms, sid)


def test_active_is_active_and_alive_within_15_minutes_newest_first(app, client, auth):
    ids = {tag: create(client, auth, tag)["id"] for tag in ("old", "recent", "edge", "ended", "stale")}
    _set_activity(app, ids["old"], True, 10 * MINUTE)
    _set_activity(app, ids["recent"], True, 1 * MINUTE)
    _set_activity(app, ids["edge"], True, 14 * MINUTE + 50_000)
    _set_activity(app, ids["ended"], False, 1 * MINUTE)
    _set_activity(app, ids["stale"], True, 15 * MINUTE + 1000)
    body = client.get("/v2/sessions/active", headers=auth).get_json()
    assert [s["id"] for s in body["sessions"]] == [ids["recent"], ids["old"], ids["edge"]]
    assert all(set(s) == S_KEYS for s in body["sessions"])  # no lastMessage on v2
    limited = client.get("/v2/sessions/active?limit=1", headers=auth).get_json()["sessions"]
    assert [s["id"] for s in limited] == [ids["recent"]]


def test_active_limit_defaults_to_150_and_accepts_1_to_500(client, auth):
    for i in range(151):
        create(client, auth, f"t{i}")
    assert len(client.get("/v2/sessions/active", headers=auth).get_json()["sessions"]) == 150
    assert len(client.get("/v2/sessions/active?limit=500", headers=auth).get_json()["sessions"]) == 151
    assert len(client.get("/v2/sessions/active?limit=1", headers=auth).get_json()["sessions"]) == 1
    for bad in ("0", "501"):
        r = client.get(f"/v2/sessions/active?limit={bad}", headers=auth)
        assert r.status_code == 400 and "limit" in r.get_json()["errors"]


# --- GET /v2/sessions ----------------------------------------------------------------------------

def _walk(client, auth, limit, **params):
    pages, cursor = [], None
    while True:
        args = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = client.get("/v2/sessions", query_string=args, headers=auth)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert set(body) == {"sessions", "nextCursor", "hasNext"}
        pages.append([s["id"] for s in body["sessions"]])
        if not body["hasNext"]:
            assert body["nextCursor"] is None
            return pages
        assert body["nextCursor"] == "cursor_v1_" + pages[-1][-1]
        cursor = body["nextCursor"]


@pytest.mark.parametrize("limit, sizes", [
    (1, [1] * 7),
    (3, [3, 3, 1]),
    (7, [7]),
    (200, [7]),
])
def test_cursor_pages_walk_every_session_once_by_id_descending(client, auth, other_auth, limit, sizes):
    ids = [create(client, auth, f"t{i}")["id"] for i in range(7)]
    create(client, other_auth, "not-mine")
    pages = _walk(client, auth, limit)
    assert [len(p) for p in pages] == sizes
    assert sum(pages, []) == sorted(ids, reverse=True) == ids[::-1]


def test_cursor_page_defaults_to_50(client, auth):
    for i in range(51):
        create(client, auth, f"t{i}")
    body = client.get("/v2/sessions", headers=auth).get_json()
    assert len(body["sessions"]) == 50 and body["hasNext"] is True
    assert all(set(s) == S_KEYS for s in body["sessions"])


def test_changed_since_filters_without_changing_the_order(app, client, auth):
    ids = [create(client, auth, f"t{i}")["id"] for i in range(6)]
    since = now_ms() + 10 * MINUTE
    for sid in ids[1::2]:
        execute(app, "UPDATE session SET updated_at = ? WHERE id = ?", since + 1, sid)
    execute(app, "UPDATE session SET updated_at = ? WHERE id = ?", since, ids[0])  # not strictly after
    pages = _walk(client, auth, 2, changedSince=since)
    assert sum(pages, []) == ids[1::2][::-1]


def test_a_cursor_past_every_session_gives_an_empty_last_page(client, auth):
    create(client, auth, "t")
    body = client.get("/v2/sessions?cursor=cursor_v1_0", headers=auth).get_json()
    assert body == {"sessions": [], "nextCursor": None, "hasNext": False}


@pytest.mark.parametrize("cursor", ["abc", "cursor_v2_01abc", "cursor_v1_", "CURSOR_V1_x", " cursor_v1_x"])
def test_malformed_cursor_is_400_invalid_cursor_format(client, auth, cursor):
    r = client.get("/v2/sessions", query_string={"cursor": cursor}, headers=auth)
    assert r.status_code == 400
    assert r.get_json()["error"] == "Invalid cursor format"


@pytest.mark.parametrize("params", ["limit=0", "limit=201", "limit=x", "changedSince=0", "changedSince=-5",
                                    "changedSince=soon"])
def test_page_parameters_out_of_range_are_400(client, auth, params):
    r = client.get("/v2/sessions?" + params, headers=auth)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"


# --- GET /v1/sessions/:id/messages ---------------------------------------------------------------

def test_v1_messages_are_the_150_newest_newest_first(client, auth):
    sid = create(client, auth, "t")["id"]
    append(client, auth, sid, *[{"n": i} for i in range(1, 101)])
    append(client, auth, sid, *[({"n": i}, f"l{i}") for i in range(101, 161)])
    messages = client.get(f"/v1/sessions/{sid}/messages", headers=auth).get_json()["messages"]
    assert [m["seq"] for m in messages] == list(range(160, 10, -1))
    assert all(set(m) == M_KEYS for m in messages)
    assert messages[0]["content"] == {"n": 160} and messages[0]["localId"] == "l160"
    assert messages[-1]["content"] == {"n": 11} and messages[-1]["localId"] is None


def test_v1_messages_of_a_missing_session_is_404_session_not_found(client, auth):
    r = client.get("/v1/sessions/nope/messages", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"] == "Session not found"


@pytest.mark.parametrize("content", ["text", "", 0, -1.5, True, [], {}, [1, "two", {"three": [3]}],
                                     {"nested": {"é": "ü\u2028", "emoji": "\U0001f600"}}])
def test_content_is_any_json_value_returned_exactly(client, auth, content):
    sid = create(client, auth, "t")["id"]
    append(client, auth, sid, content)
    [message] = client.get(f"/v1/sessions/{sid}/messages", headers=auth).get_json()["messages"]
    assert message["content"] == content and type(message["content"]) is type(content)


# --- GET /v3/sessions/:id/messages ---------------------------------------------------------------

@pytest.fixture
def sid160(client, auth):
    sid = create(client, auth, "t")["id"]
    append(client, auth, sid, *range(1, 101))
    append(client, auth, sid, *range(101, 161))
    return sid


@pytest.mark.parametrize("params, seqs, has_more", [
    ("", list(range(1, 101)), True),
    ("after_seq=0", list(range(1, 101)), True),
    ("after_seq=100", list(range(101, 161)), False),
    ("after_seq=59&limit=101", list(range(60, 161)), False),
    ("after_seq=59&limit=100", list(range(60, 160)), True),
    ("after_seq=160", [], False),
    ("after_seq=1000", [], False),
    ("limit=1", [1], True),
    ("limit=500", list(range(1, 161)), False),
    ("before_seq=50&limit=10", list(range(49, 39, -1)), True),
    ("before_seq=5", [4, 3, 2, 1], False),
    ("before_seq=1", [], False),
    ("before_seq=161", list(range(160, 60, -1)), True),
    ("before_seq=11&limit=10", list(range(10, 0, -1)), False),
])
def test_v3_pages_by_seq(client, auth, sid160, params, seqs, has_more):
    body = client.get(f"/v3/sessions/{sid160}/messages?{params}", headers=auth).get_json()
    assert set(body) == {"messages", "hasMore"}
    assert [m["seq"] for m in body["messages"]] == seqs
    assert [m["content"] for m in body["messages"]] == seqs
    assert all(set(m) == M_KEYS for m in body["messages"])
    assert body["hasMore"] is has_more


@pytest.mark.parametrize("params", ["after_seq=1&before_seq=5", "limit=0", "limit=501", "after_seq=-1",
                                    "before_seq=0", "after_seq=x", "limit=1.5", "since=3"])
def test_v3_bad_page_parameters_are_400(client, auth, sid160, params):
    r = client.get(f"/v3/sessions/{sid160}/messages?{params}", headers=auth)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"


def test_v3_messages_of_a_missing_session_is_404(client, auth):
    for r in (client.get("/v3/sessions/nope/messages", headers=auth),
              client.post("/v3/sessions/nope/messages", json={"messages": [{"content": 1}]}, headers=auth)):
        assert r.status_code == 404 and r.get_json()["error"] == "Session not found"


# --- POST /v3/sessions/:id/messages --------------------------------------------------------------

def test_append_answers_the_new_rows_in_seq_order_and_stores_them(app, client, auth):
    sid = create(client, auth, "t")["id"]
    before = now_ms()
    created = append(client, auth, sid, ("a", "l1"), {"b": [1]}, ("c", "l3"))
    assert [set(m) for m in created] == [{"id", "seq", "localId", "createdAt", "updatedAt"}] * 3
    assert [(m["seq"], m["localId"]) for m in created] == [(1, "l1"), (2, None), (3, "l3")]
    assert all(before <= m["createdAt"] == m["updatedAt"] <= now_ms() for m in created)
    rows = query(app, "SELECT id, seq, local_id, content FROM message WHERE session_id = ? ORDER BY seq", sid)
    assert rows == [(created[0]["id"], 1, "l1", '"a"'), (created[1]["id"], 2, None, '{"b":[1]}'),
                    (created[2]["id"], 3, "l3", '"c"')]
    assert query(app, "SELECT seq, updated_at >= ? FROM session WHERE id = ?", before, sid) == [(3, 1)]


def test_append_emits_one_new_message_per_created_message(app, client, auth):
    sid = create(client, auth, "t")["id"]
    created = append(client, auth, sid, ("a", "l1"), "b")
    bodies = update_bodies(app, sid)[1:]
    assert [b["t"] for b in bodies] == ["new-message", "new-message"]
    assert [b["sid"] for b in bodies] == [sid, sid]
    assert [(b["message"]["id"], b["message"]["seq"], b["message"]["content"]) for b in bodies] == \
        [(created[0]["id"], 1, "a"), (created[1]["id"], 2, "b")]
    seqs = [seq for (seq,) in query(app, 'SELECT seq FROM "update" ORDER BY seq')]
    assert seqs == [1, 2, 3]


def test_a_known_local_id_returns_the_stored_row_and_consumes_nothing(app, client, auth):
    sid = create(client, auth, "t")["id"]
    [first] = append(client, auth, sid, ("original", "dup"))
    updates_before = query(app, 'SELECT count(*) FROM "update"')
    [again] = append(client, auth, sid, ("different content", "dup"))
    assert again == first
    assert query(app, 'SELECT count(*) FROM "update"') == updates_before  # no event
    assert query(app, "SELECT seq FROM session WHERE id = ?", sid) == [(1,)]  # no seq
    assert query(app, "SELECT content FROM message WHERE session_id = ?", sid) == [('"original"',)]
    [fresh] = append(client, auth, sid, ("next", "other"))
    assert fresh["seq"] == 2


def test_a_batch_mixing_known_new_and_repeated_local_ids(app, client, auth):
    sid = create(client, auth, "t")["id"]
    [known] = append(client, auth, sid, ("k", "known"))
    answer = append(client, auth, sid, ("n1", "new"), ("k2", "known"), ("n1 again", "new"), "plain")
    assert [(m["seq"], m["localId"]) for m in answer] == [(1, "known"), (2, "new"), (3, None)]
    assert answer[0] == known
    assert query(app, "SELECT seq, local_id, content FROM message ORDER BY seq") == \
        [(1, "known", '"k"'), (2, "new", '"n1"'), (3, None, '"plain"')]
    assert [b["t"] for b in update_bodies(app, sid)] == ["new-session", "new-message", "new-message", "new-message"]


def test_local_ids_are_per_session(client, auth):
    a, b = create(client, auth, "a")["id"], create(client, auth, "b")["id"]
    [in_a] = append(client, auth, a, ("x", "same"))
    [in_b] = append(client, auth, b, ("x", "same"))
    assert in_a["id"] != in_b["id"] and in_a["seq"] == in_b["seq"] == 1


# --- metadata and agent state compare-and-set ----------------------------------------------------

def test_metadata_compare_and_set(app, client, auth):
    sid = create(client, auth, "t", metadata="v0")["id"]
    r = client.post(f"/v1/sessions/{sid}/metadata", json={"metadata": "v1", "expectedVersion": 0}, headers=auth)
    assert r.status_code == 200
    assert r.get_json() == {"result": "success", "version": 1, "metadata": "v1"}
    r = client.post(f"/v1/sessions/{sid}/metadata", json={"metadata": "lost", "expectedVersion": 0}, headers=auth)
    assert r.status_code == 409
    assert r.get_json() == {"result": "version-mismatch", "version": 1, "metadata": "v1"}
    assert query(app, "SELECT metadata, metadata_version FROM session") == [("v1", 1)]
    assert update_bodies(app, sid)[1:] == [{"t": "update-session", "id": sid,
                                            "metadata": {"value": "v1", "version": 1}}]
    listed = client.get("/v1/sessions", headers=auth).get_json()["sessions"][0]
    assert (listed["metadata"], listed["metadataVersion"]) == ("v1", 1)


def test_agent_state_compare_and_set_including_null(app, client, auth):
    sid = create(client, auth, "t", agentState="s0")["id"]
    r = client.post(f"/v1/sessions/{sid}/agent-state", json={"agentState": "s1", "expectedVersion": 0}, headers=auth)
    assert r.status_code == 200
    assert r.get_json() == {"result": "success", "version": 1, "agentState": "s1"}
    r = client.post(f"/v1/sessions/{sid}/agent-state", json={"agentState": None, "expectedVersion": 1}, headers=auth)
    assert r.get_json() == {"result": "success", "version": 2, "agentState": None}
    r = client.post(f"/v1/sessions/{sid}/agent-state", json={"agentState": "late", "expectedVersion": 1},
                    headers=auth)
    assert r.status_code == 409
    assert r.get_json() == {"result": "version-mismatch", "version": 2, "agentState": None}
    assert query(app, "SELECT agent_state, agent_state_version, metadata_version FROM session") == [(None, 2, 0)]
    assert [b.get("agentState") for b in update_bodies(app, sid)[1:]] == \
        [{"value": "s1", "version": 1}, {"value": None, "version": 2}]


def test_a_future_expected_version_is_a_mismatch(app, client, auth):
    sid = create(client, auth, "t")["id"]
    r = client.post(f"/v1/sessions/{sid}/metadata", json={"metadata": "x", "expectedVersion": 5}, headers=auth)
    assert r.status_code == 409 and r.get_json()["version"] == 0
    assert query(app, "SELECT metadata, metadata_version FROM session") == [("m", 0)]


# --- alive and end -------------------------------------------------------------------------------

def test_end_marks_inactive_and_alive_brings_back(app, client, auth):
    sid = create(client, auth, "t")["id"]
    r = client.post(f"/v1/sessions/{sid}/end", json={}, headers=auth)
    assert r.status_code == 200 and r.get_json() == {"success": True}
    assert query(app, "SELECT active FROM session") == [(0,)]
    assert client.get("/v2/sessions/active", headers=auth).get_json()["sessions"] == []
    r = client.post(f"/v1/sessions/{sid}/alive", json={"time": now_ms(), "thinking": True}, headers=auth)
    assert r.status_code == 200 and r.get_json() == {"success": True}
    assert query(app, "SELECT active FROM session") == [(1,)]
    assert [s["id"] for s in client.get("/v2/sessions/active", headers=auth).get_json()["sessions"]] == [sid]
    assert [b.get("active") for b in update_bodies(app, sid)[1:]] == [False, True]


def test_alive_and_end_accept_an_empty_body(client, auth):
    sid = create(client, auth, "t")["id"]
    assert client.post(f"/v1/sessions/{sid}/alive", headers=auth).status_code == 200
    assert client.post(f"/v1/sessions/{sid}/end", headers=auth).status_code == 200


def test_alive_moves_activity_forward_never_back(app, client, auth):
    sid = create(client, auth, "t")["id"]
    _set_activity(app, sid, False, 20 * MINUTE)
    client.post(f"/v1/sessions/{sid}/alive", json={"time": now_ms() - 2 * MINUTE}, headers=auth)
    [(active, at)] = query(app, "SELECT active, last_active_at FROM session")
    assert active == 1 and abs(at - (now_ms() - 2 * MINUTE)) < 5000
    client.post(f"/v1/sessions/{sid}/end", json={"time": now_ms() - 5 * MINUTE}, headers=auth)
    assert query(app, "SELECT active, last_active_at FROM session") == [(0, at)]


# --- DELETE /v1/sessions/:id ---------------------------------------------------------------------

def test_delete_cascades_and_a_second_delete_is_404(app, client, auth):
    sid = create(client, auth, "t")["id"]
    keep = create(client, auth, "keep")["id"]
    append(client, auth, sid, *range(5))
    append(client, auth, keep, "stays")
    r = client.delete(f"/v1/sessions/{sid}", headers=auth)
    assert r.status_code == 200 and r.get_json() == {"success": True}
    assert query(app, "SELECT count(*) FROM message WHERE session_id = ?", sid) == [(0,)]
    assert query(app, "SELECT id FROM session") == [(keep,)]
    assert query(app, "SELECT count(*) FROM message") == [(1,)]
    # the session's earlier updates keep their seqs with their content gone (README "Deleting")
    assert [b["t"] for b in update_bodies(app, sid)] == ["redacted"] * 6 + ["delete-session"]
    assert update_bodies(app, sid)[-1] == {"t": "delete-session", "sid": sid}
    r = client.delete(f"/v1/sessions/{sid}", headers=auth)
    assert r.status_code == 404
    assert r.get_json()["error"] == "Session not found or not owned by user"
    r = client.get(f"/v1/sessions/{sid}/messages", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"] == "Session not found"


def test_a_deleted_tag_can_be_created_again(client, auth):
    old = create(client, auth, "t")["id"]
    client.delete(f"/v1/sessions/{old}", headers=auth)
    assert create(client, auth, "t")["id"] != old


def test_escaped_surrogate_pairs_are_text_and_come_back_as_sent(client, auth):
    """Escapes of an astral character (what a JSON encoder that escapes non-ASCII sends) are stored as
    that character; only a lone surrogate, which no text can hold, is refused (test_agent_bad_input)."""
    sid = client.post("/v1/sessions", json={"tag": "emoji", "metadata": ""}, headers=auth).json["session"]["id"]
    body = r'{"messages": [{"content": {"text": "\ud83d\ude00 ok"}, "localId": "\ud83d\ude00"}]}'
    r = client.post(f"/v3/sessions/{sid}/messages", data=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json["messages"][0]["localId"] == "\U0001F600"
    stored = client.get(f"/v3/sessions/{sid}/messages", headers=auth).json["messages"][0]
    assert stored["content"] == {"text": "\U0001F600 ok"}
