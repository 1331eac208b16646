"""Bad input to the management contract, route by route: each case gets its documented status and JSON
error body, and the database is exactly as it was (compared table by table). Also: another account's
session ids behave exactly like missing ones on every route, and an import with one bad message,
however late in the document, writes nothing."""
import json

import pytest

import models
from app import create_app, create_token
from conftest import assert_refused, database, send, snapshot

# Small limits keep the oversized cases small; the code path is the same.
LIMITS = {"MAX_BODY_BYTES": 65536, "MAX_CONTENT_BYTES": 60_000, "MAX_METADATA_BYTES": 100, "MAX_KEY_CHARS": 256}




def make_world(tmp_path, config):
    app = create_app({"DB": database(tmp_path / "bad.db"), "TESTING": True, **config})
    with models.db.connection_context():
        alice = {"Authorization": "Bearer " + create_token(models, account="alice")}
        bob = {"Authorization": "Bearer " + create_token(models, account="bob")}
    client = app.test_client()
    sid = client.post("/api/sessions", json={"title": "alice's"}, headers=alice).get_json()["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "hi"}, headers=alice)
    client.get("/api/sessions", headers=bob)  # both tokens have now been used once
    return app, client, sid, alice, bob


@pytest.fixture
def world(tmp_path):
    """An app with small limits, alice's session (with a message) and headers for alice and bob."""
    yield make_world(tmp_path, LIMITS)
    models.db.close_all()


def document(*messages, **top):
    return {"version": 1, "exported_at": "2026-01-01T00:00:00.000Z",
            "session": {"id": "01old", "title": "t", "system_prompt": None, "tag": "x", "metadata": "",
                        "agent_state": None, "created_at": "2026-01-01T00:00:00.000Z",
                        "updated_at": "2026-01-01T00:00:00.000Z"},
            "messages": list(messages) or [{"seq": 1, "role": "user", "content": "ok", "metadata": None,
                                            "local_id": None, "created_at": "2026-01-01T00:00:00.000Z"}], **top}


def with_session(**fields):
    doc = document()
    doc["session"].update(fields)
    return doc


def without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


OK = {"role": "user", "content": "ok"}
BIG_META = {"k": "x" * 100}  # over the 100-byte metadata limit
COLLECTION = "/api/sessions"
ONE = "/api/sessions/{sid}"
PROMPT = "/api/sessions/{sid}/system-prompt"
MESSAGES = "/api/sessions/{sid}/messages"
IMPORT = "/api/sessions/import"

# (method, path, body: dict/list -> JSON, str -> raw text sent as JSON, (text, type) -> raw with that type,
#  expected status, expected error, field expected in `errors` or None)
CASES = [
    # POST /api/sessions
    ("POST", COLLECTION, {"title": ""}, 400, "invalid_request", "title"),
    ("POST", COLLECTION, {"title": " \t "}, 400, "invalid_request", "title"),
    ("POST", COLLECTION, {"title": "x" * 121}, 400, "invalid_request", "title"),
    ("POST", COLLECTION, {"title": 5}, 400, "invalid_request", "title"),
    ("POST", COLLECTION, {"title": ["t"]}, 400, "invalid_request", "title"),
    ("POST", COLLECTION, {"title": "t", "tag": "cli"}, 400, "invalid_request", "tag"),
    ("POST", COLLECTION, "[]", 400, "invalid_request", "_schema"),
    ("POST", COLLECTION, "null", 400, "invalid_json", None),
    ("POST", COLLECTION, '{"title": "t"', 400, "invalid_json", None),
    ("POST", COLLECTION, ('{"title": "t"}', "text/plain"), 415, "unsupported_media_type", None),
    ("POST", COLLECTION, ("title=t", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", None),
    ("POST", COLLECTION, json.dumps({"title": "t" * 70_000}), 413, "payload_too_large", None),
    # PATCH /api/sessions/:id
    ("PATCH", ONE, {}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": None}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": ""}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": "   "}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": " " + "x" * 121 + " "}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": 1}, 400, "invalid_request", "title"),
    ("PATCH", ONE, {"title": "ok", "system_prompt": "p"}, 400, "invalid_request", "system_prompt"),
    ("PATCH", ONE, "{", 400, "invalid_json", None),
    ("PATCH", ONE, ('{"title": "ok"}', "text/plain"), 415, "unsupported_media_type", None),
    # PATCH /api/sessions/:id/system-prompt
    ("PATCH", PROMPT, {"system_prompt": "p" * 8001}, 400, "invalid_request", "system_prompt"),
    ("PATCH", PROMPT, {"system_prompt": 5}, 400, "invalid_request", "system_prompt"),
    ("PATCH", PROMPT, {"system_prompt": ["p"]}, 400, "invalid_request", "system_prompt"),
    ("PATCH", PROMPT, {"systemPrompt": "p"}, 400, "invalid_request", "systemPrompt"),
    ("PATCH", PROMPT, {"system_prompt": "p", "title": "t"}, 400, "invalid_request", "title"),
    ("PATCH", PROMPT, "[1]", 400, "invalid_request", "_schema"),
    ("PATCH", PROMPT, '{"system_prompt": }', 400, "invalid_json", None),
    ("PATCH", PROMPT, ('{"system_prompt": "p"}', "text/plain"), 415, "unsupported_media_type", None),
    # POST /api/sessions/:id/messages
    ("POST", MESSAGES, {}, 400, "invalid_request", "role"),
    ("POST", MESSAGES, {"content": "x"}, 400, "invalid_request", "role"),
    ("POST", MESSAGES, {"role": "user"}, 400, "invalid_request", "content"),
    ("POST", MESSAGES, {"role": "bot", "content": "x"}, 400, "invalid_request", "role"),
    ("POST", MESSAGES, {"role": None, "content": "x"}, 400, "invalid_request", "role"),
    ("POST", MESSAGES, {"role": "USER", "content": "x"}, 400, "invalid_request", "role"),
    ("POST", MESSAGES, {"role": "user", "content": ""}, 400, "invalid_request", "content"),
    ("POST", MESSAGES, {"role": "user", "content": "x" * 50_001}, 400, "invalid_request", "content"),
    ("POST", MESSAGES, {"role": "user", "content": None}, 400, "invalid_request", "content"),
    ("POST", MESSAGES, {"role": "user", "content": ["x" * 60_000]}, 400, "invalid_request", "content"),
    ("POST", MESSAGES, {**OK, "metadata": [1]}, 400, "invalid_request", "metadata"),
    ("POST", MESSAGES, {**OK, "metadata": "m"}, 400, "invalid_request", "metadata"),
    ("POST", MESSAGES, {**OK, "metadata": BIG_META}, 400, "invalid_request", "metadata"),
    ("POST", MESSAGES, {**OK, "local_id": "l1"}, 400, "invalid_request", "local_id"),
    ("POST", MESSAGES, {**OK, "created_at": "2026-01-01T00:00:00Z"}, 400, "invalid_request", "created_at"),
    ("POST", MESSAGES, '{"role": "user", "content": NaN}', 400, "invalid_request", "content"),
    ("POST", MESSAGES, '{"role": "user", "content": "x"', 400, "invalid_json", None),
    ("POST", MESSAGES, b'{"role": "user", "content": "\xff"}', 400, "invalid_json", None),
    ("POST", MESSAGES, ('{"role": "user", "content": "x"}', "text/plain"), 415, "unsupported_media_type", None),
    ("POST", MESSAGES, json.dumps({**OK, "metadata": {"k": "x" * 70_000}}), 413, "payload_too_large", None),
    # POST /api/sessions/import
    ("POST", IMPORT, {}, 400, "invalid_request", "version"),
    ("POST", IMPORT, document(version=2), 400, "invalid_request", "version"),
    ("POST", IMPORT, document(version="1"), 400, "invalid_request", "version"),
    ("POST", IMPORT, document(version=1.0), 400, "invalid_request", "version"),
    ("POST", IMPORT, without(document(), "session"), 400, "invalid_request", "session"),
    ("POST", IMPORT, without(document(), "messages"), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(extra=1), 400, "invalid_request", "extra"),
    ("POST", IMPORT, document(exported_at="yesterday"), 400, "invalid_request", "exported_at"),
    ("POST", IMPORT, document(session="s"), 400, "invalid_request", "session"),
    ("POST", IMPORT, document(messages={"0": OK}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, with_session(owner="bob"), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(title="x" * 121), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(title=""), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(system_prompt="p" * 8001), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(metadata=None), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(metadata="m" * 101), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(agent_state={"s": 1}), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(created_at="2026-13-01T00:00:00Z"), 400, "invalid_request", "session"),
    ("POST", IMPORT, with_session(created_at=1700000000000), 400, "invalid_request", "session"),
    ("POST", IMPORT, document(OK, "x"), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {"role": "bot", "content": "x"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {"role": "user"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {"role": "user", "content": ""}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {"role": "user", "content": "x" * 50_001}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {"role": None, "content": None}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "metadata": ["m"]}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "metadata": BIG_META}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "created_at": "soon"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "seq": "2"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "local_id": ""}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document(OK, {**OK, "id": "01old"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, document({**OK, "local_id": "a"}, {**OK, "local_id": "a"}), 400, "invalid_request", "messages"),
    ("POST", IMPORT, '{"version": 1, "session": {}, "messages": [{"role": "user", "content": Infinity}]}', 400,
     "invalid_request", "messages"),
    ("POST", IMPORT, '{"version": 1, "session": {}, "messages": [', 400, "invalid_json", None),
    ("POST", IMPORT, (json.dumps(document()), "text/plain"), 415, "unsupported_media_type", None),
    ("POST", IMPORT, json.dumps(document(*[OK] * 5000)), 413, "payload_too_large", None),
    # wrong method, unknown route
    ("PUT", COLLECTION, {"title": "t"}, 405, "method_not_allowed", None),
    ("POST", ONE, {"title": "t"}, 405, "method_not_allowed", None),
    ("PUT", PROMPT, {"system_prompt": "p"}, 405, "method_not_allowed", None),
    ("PUT", MESSAGES, None, 405, "method_not_allowed", None),
    ("DELETE", "/api/sessions/{sid}/export", None, 405, "method_not_allowed", None),
    ("GET", IMPORT, None, 404, "session_not_found", None),
    ("POST", "/api/sessions/{sid}/messages/1", {}, 404, "not_found", None),
]


@pytest.mark.parametrize("method, path, body, status, error, field", CASES,
                         ids=[f"{c[0]} {c[1]} #{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_its_error_and_changes_nothing(world, method, path, body, status, error, field):
    app, client, sid, alice, bob = world
    assert_refused(app, client, method, path.format(sid=sid), body, alice, status, error, field)


@pytest.mark.parametrize("messages, index, field", [
    ([OK, OK, {"role": "user", "content": ""}], 2, "content"),
    ([{"role": "narrator", "content": "x"}, {"role": "user", "content": ""}], 0, "role"),
    ([OK, {**OK, "metadata": 3}, {**OK, "metadata": 4}], 1, "metadata"),
    ([OK, {**OK, "local_id": "a"}, OK, {**OK, "local_id": "a"}], 3, "local_id"),
    ([OK, {**OK, "colour": "red"}], 1, "colour"),
])
def test_a_bad_message_is_named_counted_from_1_and_only_the_first_is_reported(world, messages, index, field):
    app, client, sid, alice, bob = world
    before = snapshot(app.config["DB"])
    r = client.post("/api/sessions/import", json=document(*messages), headers=alice)
    assert r.status_code == 400
    answer = r.get_json()
    assert answer["message"].startswith(f"message {index + 1}: {field}: ")  # errors: the array index
    assert list(answer["errors"]) == ["messages"] and list(answer["errors"]["messages"]) == [str(index)]
    assert field in answer["errors"]["messages"][str(index)]
    assert snapshot(app.config["DB"]) == before


def test_another_version_is_refused_naming_the_supported_one(world):
    app, client, sid, alice, bob = world
    r = client.post("/api/sessions/import", json={"version": 2, "anything": ["else"]}, headers=alice)
    assert r.status_code == 400
    assert r.get_json() == {"error": "invalid_request", "message": "version: Only export version 1 is supported.",
                            "errors": {"version": ["Only export version 1 is supported."]}}


def test_a_10000_message_import_whose_last_message_is_bad_writes_nothing(tmp_path):
    app, client, sid, alice, bob = make_world(tmp_path, {})
    try:
        messages = [{"role": "user", "content": f"message {i}"} for i in range(9_999)]
        messages.append({"role": "user", "content": "x" * 50_001})
        before = snapshot(app.config["DB"])
        r = client.post("/api/sessions/import", json=document(*messages), headers=alice)
        assert r.status_code == 400
        # counted from 1 in the message (the 10,000th), by its index in `errors`
        assert r.get_json()["message"] == "message 10000: content: Text must be 1 to 50000 characters."
        assert list(r.get_json()["errors"]["messages"]) == ["9999"]
        assert snapshot(app.config["DB"]) == before
        messages[-1]["content"] = "fine now"
        r = client.post("/api/sessions/import", json=document(*messages), headers=alice)
        assert r.status_code == 201 and r.get_json()["imported_messages"] == 10_000
    finally:
        models.db.close_all()


# --- other accounts and missing sessions ---------------------------------------------------------

SESSION_ROUTES = [
    ("GET", ONE, None),
    ("PATCH", ONE, {"title": "mine now"}),
    ("PATCH", PROMPT, {"system_prompt": "mine now"}),
    ("PATCH", PROMPT, {"system_prompt": None}),
    ("POST", MESSAGES, {"role": "user", "content": "hello"}),
    ("DELETE", ONE, None),
    ("GET", "/api/sessions/{sid}/export", None),
]


@pytest.mark.parametrize("method, path, body", SESSION_ROUTES)
@pytest.mark.parametrize("whose", ["another account's", "missing"])
def test_another_accounts_session_is_answered_like_a_missing_one(world, method, path, body, whose):
    app, client, sid, alice, bob = world
    target = sid if whose == "another account's" else "01nosuchsession0000000000"
    before = snapshot(app.config["DB"])
    r = send(client, method, path.format(sid=target), body, bob)
    assert r.status_code == 404
    assert r.get_json() == {"error": "session_not_found", "message": "No session with this id."}
    assert snapshot(app.config["DB"]) == before


def test_other_accounts_sessions_are_never_listed_deleted_or_replaced(world):
    app, client, sid, alice, bob = world
    before = snapshot(app.config["DB"])
    assert client.get("/api/sessions", headers=bob).get_json() == {"items": []}
    assert client.delete("/api/sessions", headers=bob).get_json() == {"deleted": 0}
    assert snapshot(app.config["DB"]) == before


@pytest.mark.parametrize("method, path", [("GET", COLLECTION), ("POST", COLLECTION), ("DELETE", COLLECTION),
                                          ("POST", IMPORT)] + [(m, p) for m, p, _ in SESSION_ROUTES])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sb_wrong"}, {"Authorization": "Basic x"}])
def test_every_route_needs_a_valid_token(world, method, path, headers):
    app, client, sid, alice, bob = world
    before = snapshot(app.config["DB"])
    r = client.open(path.format(sid=sid), method=method, headers=headers, json={"title": "t"})
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    assert snapshot(app.config["DB"]) == before
