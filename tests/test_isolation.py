"""Account isolation, generated from the app's own routes: every route that takes a session id, and
every websocket event that names one, called by account B with account A's ids, answers like a
missing session and changes nothing in the database."""

import requests

from conftest import snapshot

# A body that would succeed on the caller's own session, per endpoint: the 404 must come from
# ownership, not from validation.
VALID_BODIES = {
    "agent_sessions.messages": None,
    "agent_sessions.delete": None,
    "agent_sessions.messages_page": None,
    "agent_sessions.append": {"messages": [{"content": "x", "localId": "iso"}]},
    "agent_sessions.update_metadata": {"metadata": "stolen", "expectedVersion": 0},
    "agent_sessions.update_agent_state": {"agentState": "stolen", "expectedVersion": 0},
    "agent_sessions.alive": {"thinking": True},
    "agent_sessions.end": {},
    "api_sessions.show": None,
    "api_sessions.messages": None,
    "api_sessions.update": {"title": "stolen"},
    "api_sessions.update_system_prompt": {"system_prompt": "stolen"},
    "api_sessions.append": {"role": "user", "content": "stolen"},
    "api_sessions.delete": None,
    "api_sessions.export": None,
    "requests.session_index": None,
    "requests.decide": {"decision": "allow"},
    "requests.hold": {"hold": True},
    "webhooks.runs": None,
    "usage.report": {"key": "k", "model": "claude-sonnet-4-5", "tokens": {"input": 1}},
}
SEED_ERRORS = {"agent_sessions.delete": "Session not found or not owned by user", "usage.report": "Session not found"}




def session_routes(app):
    for rule in app.url_map.iter_rules():
        if "session_id" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_session_route_is_in_the_matrix(app):
    assert {rule.endpoint for rule, _ in session_routes(app)} == set(VALID_BODIES)


def test_another_accounts_session_is_missing_on_every_route(app, client, auth, other_auth):
    sid = client.post("/v1/sessions", json={"tag": "alice", "metadata": "m"}, headers=auth).json["session"]["id"]
    client.post(f"/v3/sessions/{sid}/messages", json={"messages": [{"content": "private"}]}, headers=auth)
    db_path = app.config["DB"]
    before = snapshot(db_path)
    for rule, method in session_routes(app):
        path = rule.rule.replace("<session_id>", sid)
        body = VALID_BODIES[rule.endpoint]
        response = client.open(path, method=method, headers=other_auth,
                               **({"json": body} if body is not None else {}))
        assert response.status_code == 404, (method, path, response.json)
        expected = SEED_ERRORS.get(rule.endpoint,
                                   "Session not found" if rule.endpoint.startswith("agent") else "session_not_found")
        assert response.json["error"] == expected, (method, path)
        assert "private" not in response.get_data(as_text=True)
    assert snapshot(db_path) == before
    # and the owner still reaches it on every read route
    assert client.get(f"/api/sessions/{sid}", headers=auth).status_code == 200


def test_bulk_delete_and_listings_never_cross_accounts(client, auth, other_auth):
    client.post("/v1/sessions", json={"tag": "alice", "metadata": "m"}, headers=auth)
    assert client.get("/v1/sessions", headers=other_auth).json["sessions"] == []
    assert client.get("/v2/sessions", headers=other_auth).json["sessions"] == []
    assert client.get("/api/sessions", headers=other_auth).json["items"] == []
    assert client.get("/api/sessions?limit=10", headers=other_auth).json == {"items": [], "next_cursor": None}
    assert client.delete("/api/sessions", headers=other_auth).json == {"deleted": 0}
    assert len(client.get("/v1/sessions", headers=auth).json["sessions"]) == 1


WS_EVENTS = [
    ("message", {"content": "stolen", "localId": "iso"}),
    ("update-metadata", {"metadata": "stolen", "expectedVersion": 0}),
    ("update-state", {"agentState": "stolen", "expectedVersion": 0}),
    ("session-alive", {"time": 1, "thinking": True}),
    ("session-end", {"time": 1}),
]


def test_every_websocket_event_on_another_accounts_session_is_an_error(live_server, ws_connect):
    from routes.updates import Connection
    assert {name for name, _ in WS_EVENTS} == set(Connection.HANDLERS) - {"ping"}
    sid = requests.post(live_server.url + "/v1/sessions", json={"tag": "alice", "metadata": "m"},
                        headers=live_server.headers).json()["session"]["id"]
    owner = ws_connect(live_server)
    mallory = live_server.new_token("mallory")
    before = snapshot(live_server.db_path)
    intruder = ws_connect(live_server, token=mallory)
    for n, (event, data) in enumerate(WS_EVENTS):
        intruder.send(event, {"sid": sid, **data}, ack=n)
        reply = intruder.expect("error")
        assert reply["ack"] == n and reply["data"]["error"] == "session_not_found", event
    owner.silent()
    assert snapshot(live_server.db_path) == before
    scoped = ws_connect(live_server, token=mallory, client_type="session-scoped", session_id=sid, ready=False)
    assert scoped.expect("error")["data"]["error"] == "unauthorized"
    assert scoped.close_code() == 4401
