"""One content limit: whatever any route stores (agent and management appends, websocket frames,
Claude Code hooks) exports and imports back unchanged."""
import json

import pytest
import requests

import models
import schemas
from app import create_app
from conftest import _bearer, database

LIMIT = 120_000  # SWITCHBOARD_MAX_CONTENT_BYTES for these tests: small, so the edges are cheap


@pytest.fixture
def small(tmp_path):
    app = create_app({"DB": database(tmp_path / "limit.db"), "TESTING": True, "MAX_CONTENT_BYTES": LIMIT})
    yield app, app.test_client(), _bearer("alice")
    models.db.close_all()


def _round_trip(client, auth, sid):
    """The session's messages (role, content, metadata), and those of its export imported back."""
    document = client.get(f"/api/sessions/{sid}/export", headers=auth).get_json()
    r = client.post("/api/sessions/import", json=document, headers=auth)
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    copy = client.get(f"/api/sessions/{r.get_json()['session']['id']}/export", headers=auth).get_json()
    return ([(m["role"], m["content"], m["metadata"]) for m in document["messages"]],
            [(m["role"], m["content"], m["metadata"]) for m in copy["messages"]])


EDGE_TEXT = "x" * (LIMIT - 2)  # exactly LIMIT bytes as JSON
EDGE_OBJECT = {"k": "y" * (LIMIT - len('{"k":""}'))}


def test_the_largest_agent_and_management_messages_import_back(small):
    app, client, auth = small
    sid = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    r = client.post(f"/v3/sessions/{sid}/messages", headers=auth,
                    json={"messages": [{"content": EDGE_TEXT}, {"content": EDGE_OBJECT}]})
    assert r.status_code == 200
    for body in ({"role": "user", "content": "z" * schemas.MAX_TEXT_CHARS},
                 {"role": "assistant", "content": EDGE_OBJECT, "metadata": {"m": "w" * 1000}}):
        assert client.post(f"/api/sessions/{sid}/messages", json=body, headers=auth).status_code == 201
    stored, imported = _round_trip(client, auth, sid)
    assert len(stored) == 4 and imported == stored
    # one byte more is refused by each route: the edges above are the edges
    r = client.post(f"/v3/sessions/{sid}/messages", headers=auth, json={"messages": [{"content": EDGE_TEXT + "x"}]})
    assert r.status_code == 400
    r = client.post(f"/api/sessions/{sid}/messages", headers=auth,
                    json={"role": "user", "content": "z" * (schemas.MAX_TEXT_CHARS + 1)})
    assert r.status_code == 400


def _hook(client, auth, event, **fields):
    r = client.post("/v1/hooks/claude", headers=auth, json={
        "session_id": "limit-1", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp", "hook_event_name": event, **fields})
    assert r.status_code == 200, r.get_data(as_text=True)


def test_whatever_a_claude_hook_stores_imports_back(small):
    """Claude's text over the text bound is cut to it (as tool output is cut to the byte limit), never
    stored in a form the import would refuse."""
    app, client, auth = small
    long_text = "p" * (schemas.MAX_TEXT_CHARS + 20_000)
    _hook(client, auth, "UserPromptSubmit", prompt=long_text)
    _hook(client, auth, "PostToolUse", tool_name="Bash", tool_input={"command": "cat big"}, tool_use_id="t1",
          tool_response={"stdout": "o" * (3 * LIMIT)}, duration_ms=5)
    _hook(client, auth, "Notification", message=long_text, notification_type="idle")
    _hook(client, auth, "Stop", stop_hook_active=False, last_assistant_message=long_text)
    [session] = client.get("/api/sessions", headers=auth).get_json()["items"]
    stored, imported = _round_trip(client, auth, session["id"])
    assert [role for role, _, _ in stored] == ["user", "tool", "system", "assistant"]
    for _role, content, _ in stored:
        if isinstance(content, str):
            assert len(content) == schemas.MAX_TEXT_CHARS and content.endswith("characters cut]")
        assert len(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()) <= LIMIT
    assert imported == stored


def test_the_largest_websocket_message_imports_back(make_server, ws_connect):
    server = make_server(env={"SWITCHBOARD_MAX_CONTENT_BYTES": str(LIMIT)})
    sid = requests.post(server.url + "/api/sessions", json={}, headers=server.headers).json()["id"]
    ws = ws_connect(server)
    ws.send("message", {"sid": sid, "content": EDGE_OBJECT, "localId": "edge"}, ack=1)
    assert ws.expect("ack")["data"]["seq"] == 1
    ws.send("message", {"sid": sid, "content": EDGE_TEXT + "x", "localId": "over"}, ack=2)
    assert "error" in ws.recv()["event"]
    document = requests.get(f"{server.url}/api/sessions/{sid}/export", headers=server.headers).json()
    r = requests.post(server.url + "/api/sessions/import", json=document, headers=server.headers)
    assert r.status_code == 201
    copy = requests.get(f"{server.url}/api/sessions/{r.json()['session']['id']}/export", headers=server.headers).json()
    assert [m["content"] for m in copy["messages"]] == [EDGE_OBJECT]
