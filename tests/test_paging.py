"""Paged reads of the management contract: GET /api/sessions?limit=&cursor= and
GET /api/sessions/:id/messages?after_seq=|before_seq=&limit=."""
import json

import pytest

import models
from conftest import assert_refused, run_sql


def _sessions(client, auth, count):
    ids = [client.post("/api/sessions", json={"title": f"s{i}"}, headers=auth).get_json()["id"] for i in range(count)]
    return ids[::-1]  # most recently updated first


def _walk(client, auth, limit):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/sessions", query_string=query, headers=auth)
        assert r.status_code == 200
        answer = r.get_json()
        assert set(answer) == {"items", "next_cursor"} and len(answer["items"]) <= limit
        seen += [s["id"] for s in answer["items"]]
        pages += 1
        cursor = answer["next_cursor"]
        if cursor is None:
            return seen, pages


@pytest.mark.parametrize("count,limit,pages", [(0, 5, 1), (1, 5, 1), (5, 5, 1), (6, 5, 2), (10, 5, 2), (11, 5, 3),
                                               (7, 1, 7)])
def test_session_pages_walk_every_session_once(client, auth, count, limit, pages):
    ids = _sessions(client, auth, count)
    assert _walk(client, auth, limit) == (ids, pages)


def test_without_parameters_the_list_keeps_its_shape(client, auth):
    ids = _sessions(client, auth, 3)
    answer = client.get("/api/sessions", headers=auth).get_json()
    assert list(answer) == ["items"] and [s["id"] for s in answer["items"]] == ids


def test_a_cursor_alone_pages_by_100_and_sessions_with_equal_times_are_ordered_by_id(app, client, auth):
    ids = _sessions(client, auth, 120)
    models.db.close_all()
    run_sql(app.config["DB"], "UPDATE session SET updated_at = 1000")  # every session ties: the id breaks it
    first = client.get("/api/sessions?limit=20", headers=auth).get_json()
    rest = client.get("/api/sessions", query_string={"cursor": first["next_cursor"]}, headers=auth).get_json()
    assert len(rest["items"]) == 100 and rest["next_cursor"] is None
    assert [s["id"] for s in first["items"] + rest["items"]] == sorted(ids, reverse=True)


def test_a_session_updated_during_a_walk_moves_to_the_top_and_is_not_listed_twice(client, auth):
    ids = _sessions(client, auth, 6)
    first = client.get("/api/sessions?limit=3", headers=auth).get_json()
    client.patch(f"/api/sessions/{ids[0]}", json={"title": "renamed"}, headers=auth)  # already seen
    client.patch(f"/api/sessions/{ids[4]}", json={"title": "renamed"}, headers=auth)  # not reached yet
    rest = client.get("/api/sessions", query_string={"limit": 3, "cursor": first["next_cursor"]}, headers=auth).get_json()
    assert [s["id"] for s in rest["items"]] == [ids[3], ids[5]]
    assert client.get("/api/sessions?limit=2", headers=auth).get_json()["items"][0]["id"] == ids[4]


def test_pages_are_per_account(client, auth, other_auth):
    mine = _sessions(client, auth, 3)
    _sessions(client, other_auth, 4)
    assert _walk(client, auth, 2) == (mine, 2)


@pytest.mark.parametrize("query,field", [("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"),
                                         ("cursor=", "cursor"), ("cursor=abc", "cursor"), ("cursor=1.a.b", "cursor"),
                                         ("cursor=x.abc", "cursor"), ("other=1", "other")])
def test_bad_session_page_parameters_are_refused(app, client, auth, query, field):
    _sessions(client, auth, 2)
    assert_refused(app, client, "GET", "/api/sessions?" + query, None, auth, 400, "invalid_request", field)


def _messages(client, auth, sid, **query):
    r = client.get(f"/api/sessions/{sid}/messages", query_string=query, headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    assert set(answer) == {"messages", "has_more"}
    return [m["seq"] for m in answer["messages"]], answer["has_more"]


@pytest.fixture
def session_of_7(client, auth):
    sid = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    for i in range(7):
        client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": f"m{i}"}, headers=auth)
    return sid


@pytest.mark.parametrize("query,seqs,more", [
    ({}, [1, 2, 3, 4, 5, 6, 7], False),
    ({"limit": 3}, [1, 2, 3], True),
    ({"after_seq": 4, "limit": 3}, [5, 6, 7], False),
    ({"after_seq": 3, "limit": 3}, [4, 5, 6], True),
    ({"after_seq": 7}, [], False),
    ({"before_seq": 8, "limit": 3}, [7, 6, 5], True),
    ({"before_seq": 4, "limit": 3}, [3, 2, 1], False),
    ({"before_seq": 1}, [], False),
])
def test_message_pages_in_both_directions(client, auth, session_of_7, query, seqs, more):
    assert _messages(client, auth, session_of_7, **query) == (seqs, more)


def test_message_pages_are_in_the_management_shape(client, auth, session_of_7):
    [message] = client.get(f"/api/sessions/{session_of_7}/messages?limit=1", headers=auth).get_json()["messages"]
    assert set(message) == {"id", "seq", "role", "content", "metadata", "created_at", "delivered_at"}
    assert message["content"] == "m0" and message["role"] == "user" and message["created_at"].endswith("Z")


@pytest.mark.parametrize("query,field", [("after_seq=1&before_seq=5", "_schema"), ("limit=0", "limit"),
                                         ("limit=501", "limit"), ("before_seq=0", "before_seq"),
                                         ("after_seq=-1", "after_seq"), ("wait=1", "wait")])
def test_bad_message_page_parameters_are_refused(app, client, auth, session_of_7, query, field):
    assert_refused(app, client, "GET", f"/api/sessions/{session_of_7}/messages?{query}", None, auth, 400,
                   "invalid_request", field)


def test_another_accounts_session_messages_are_not_found(client, auth, other_auth, session_of_7):
    r = client.get(f"/api/sessions/{session_of_7}/messages", headers=other_auth)
    assert r.status_code == 404 and r.get_json()["error"] == "session_not_found"


@pytest.fixture
def varied(app, client, auth, other_auth):
    """Six sessions of alice's (newest first: claude-a, claude-b, held, pending, idle, plain) and one of bob's
    in the same directory, states set in the file as the hooks would leave them."""
    def agent(tag, metadata, headers=auth):
        r = client.post("/v1/sessions", json={"tag": tag, "metadata": metadata}, headers=headers)
        return r.get_json()["session"]["id"]
    ids = {"plain": client.post("/api/sessions", json={"title": "plain"}, headers=auth).get_json()["id"],
           "idle": agent("idle", json.dumps({"cwd": "/srv/b"})),
           "pending": agent("pending", "not json: {cwd"),
           "held": agent("held", json.dumps({"cwd": "/srv/a", "agent": "claude-code"})),
           "claude-b": agent("claude-b", json.dumps({"cwd": "/srv/b"})),
           "claude-a": agent("claude-a", json.dumps({"cwd": "/srv/a"})),
           "bob": agent("bob", json.dumps({"cwd": "/srv/a"}), other_auth)}
    models.db.close_all()
    db = app.config["DB"]
    run_sql(db, "UPDATE session SET active = FALSE WHERE id IN (?, ?)", (ids["plain"], ids["idle"]))
    run_sql(db, "UPDATE session SET awaiting_message = TRUE WHERE id = ?", (ids["held"],))
    [(account,)] = run_sql(db, "SELECT account_id FROM session WHERE id = ?", (ids["pending"],))
    for status, key in (("pending", "k1"), ("allowed", "k2")):
        run_sql(db, "INSERT INTO request (id, account_id, session_id, key, kind, status, created_at) "
                "VALUES (?, ?, ?, ?, 'permission', ?, 0)", (models.new_id(), account, ids["pending"], key, status))
    run_sql(db, "INSERT INTO request (id, account_id, session_id, key, kind, status, created_at) "
            "VALUES (?, ?, ?, 'k3', 'permission', 'allowed', 0)", (models.new_id(), account, ids["claude-a"]))
    return ids


@pytest.mark.parametrize("query,expected", [
    ("active=true", ["claude-a", "claude-b", "held", "pending"]),
    ("active=false", ["idle", "plain"]),
    ("waiting=true", ["held", "pending"]),
    ("waiting=false", ["claude-a", "claude-b", "idle", "plain"]),
    ("project=/srv/a", ["claude-a", "held"]),
    ("project=/srv/b&active=true", ["claude-b"]),
    ("project=/srv", []),
    ("waiting=true&limit=1", ["held"]),
])
def test_session_pages_filter_by_presence_waiting_and_project(client, auth, varied, query, expected):
    names = {sid: name for name, sid in varied.items()}
    answer = client.get("/api/sessions?" + query, headers=auth).get_json()
    assert [names[s["id"]] for s in answer["items"]] == expected
    assert (answer["next_cursor"] is None) == (query != "waiting=true&limit=1")


def test_a_filtered_walk_follows_its_cursor(client, auth, varied):
    first = client.get("/api/sessions?active=true&limit=3", headers=auth).get_json()
    rest = client.get("/api/sessions", query_string={"active": "true", "limit": 3, "cursor": first["next_cursor"]},
                      headers=auth).get_json()
    assert [s["id"] for s in first["items"] + rest["items"]] == [varied[n] for n in ("claude-a", "claude-b", "held", "pending")]
    assert rest["next_cursor"] is None


def test_projects_lists_the_directories_sessions_name_newest_first(client, auth, other_auth, varied):
    items = client.get("/api/projects", headers=auth).get_json()["items"]
    assert [(p["directory"], p["sessions"]) for p in items] == [("/srv/a", 2), ("/srv/b", 2)]
    assert items[0]["updated_at"].endswith("Z")
    assert [(p["directory"], p["sessions"]) for p in client.get("/api/projects", headers=other_auth).get_json()["items"]] \
        == [("/srv/a", 1)]
    assert client.get("/api/projects").status_code == 401


@pytest.mark.parametrize("query,field", [("active=1", "active"), ("active=yes", "active"), ("waiting=", "waiting"),
                                         ("project=", "project"), ("project=" + "x" * 257, "project")])
def test_bad_filters_are_refused(app, client, auth, query, field):
    _sessions(client, auth, 1)
    assert_refused(app, client, "GET", "/api/sessions?" + query, None, auth, 400, "invalid_request", field)


def test_a_session_alone_without_its_messages(client, auth, other_auth, session_of_7):
    alone = client.get(f"/api/sessions/{session_of_7}?messages=false", headers=auth).get_json()
    assert alone["id"] == session_of_7 and "messages" not in alone
    whole = client.get(f"/api/sessions/{session_of_7}?messages=true", headers=auth).get_json()
    assert [m["seq"] for m in whole["messages"]] == list(range(1, 8))
    assert client.get(f"/api/sessions/{session_of_7}?messages=false", headers=other_auth).status_code == 404
    assert client.get(f"/api/sessions/{session_of_7}?messages=no", headers=auth).status_code == 400
