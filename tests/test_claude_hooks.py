"""`POST /v1/hooks/claude` and the request/hold routes without Claude Code: payloads recorded from the
real Claude Code 2.1.328 (tests/fixtures/), unknown fields and events, retries, bad bodies, approvals
(waiting, concurrent decisions, expiry, cancellation, restart), steering, hold, isolation."""
import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import models
from conftest import JSON, ROOT, LiveServer, assert_refused, run_sql, snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "claude_hooks_2.1.328.json"
RECORDED = {}  # the first recorded body of each event
for _body in json.loads(FIXTURE.read_text()):
    RECORDED.setdefault(_body["hook_event_name"], _body)
COMMON = {k: RECORDED["Stop"][k] for k in ("session_id", "transcript_path", "cwd", "permission_mode")}
# The events the recorded run did not send, with the fields Claude Code's documentation gives them.
DOCUMENTED = {
    "SessionStart": {**COMMON, "hook_event_name": "SessionStart", "source": "startup", "model": "claude-opus-5"},
    "PostToolUseFailure": {**COMMON, "hook_event_name": "PostToolUseFailure", "tool_name": "Bash",
                           "tool_input": {"command": "false"}, "tool_use_id": "toolu_9", "error": "exit 1",
                           "is_interrupt": False},
    "Notification": {**COMMON, "hook_event_name": "Notification", "message": "Claude needs your permission to use Bash",
                     "title": "Claude Code", "notification_type": "permission_prompt"},
    "SubagentStop": {**COMMON, "hook_event_name": "SubagentStop", "stop_hook_active": False,
                     "last_assistant_message": "Subtask done."},
}
UNKNOWN = {"some_future_field": {"nested": [1, 2]}, "another": None}


def event(name, **changes):
    body = copy.deepcopy(RECORDED.get(name) or DOCUMENTED[name])
    body.update(UNKNOWN)
    body.update(changes)
    return body


def hook(client, auth, body):
    r = client.post("/v1/hooks/claude", json=body, headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


@pytest.fixture
def quick(app):
    app.config["APPROVAL_WAIT_SECONDS"] = 0.2
    app.config["HOLD_WAIT_SECONDS"] = 0.2
    return app


def the_session(client, auth):
    [session] = client.get("/api/sessions", headers=auth).get_json()["items"]
    return client.get(f"/api/sessions/{session['id']}", headers=auth).get_json()


def test_every_event_is_stored_as_the_table_says_with_unknown_fields_accepted(quick, client, auth):
    sequence = ["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
                "Notification", "SubagentStop", "PermissionRequest", "Stop", "SessionEnd"]
    for name in sequence:
        assert hook(client, auth, event(name)) == {}, name
        if name == "Stop":  # an event this server has never heard of is a heartbeat
            assert hook(client, auth, event("Stop", hook_event_name="SomethingNew", novel=True)) == {}
    session = the_session(client, auth)
    assert session["tag"] == "claude:" + COMMON["session_id"] and session["agent"] == "claude-code"
    assert session["title"] == "Please say hi" and not session["active"]
    got = [(m["role"], m["content"]) for m in session["messages"]]
    assert got == [
        ("user", "Please say hi"),
        ("tool", {"tool": "Bash", "input": {"command": "echo hi", "description": "Say hi"},
                  "response": {"stdout": "hi", "stderr": "", "interrupted": False, "isImage": False,
                               "noOutputExpected": False}, "durationMs": 40}),
        ("tool", {"tool": "Bash", "input": {"command": "false"}, "error": "exit 1", "interrupted": False}),
        ("system", "Claude needs your permission to use Bash"),
        ("assistant", "Subtask done."),
        ("assistant", "All done."),
        ("system", "Session ended (other)"),
    ]
    assert session["messages"][3]["metadata"] == {"notificationType": "permission_prompt"}
    [request] = client.get("/api/requests", headers=auth).get_json()["items"]
    assert request["status"] == "expired" and request["tool"] == "Bash"
    assert request["suggestions"] == RECORDED["PermissionRequest"]["permission_suggestions"]
    metadata = json.loads(client.get("/v1/sessions", headers=auth).get_json()["sessions"][0]["metadata"])
    assert metadata == {"agent": "claude-code", "cwd": COMMON["cwd"], "transcriptPath": COMMON["transcript_path"],
                        "permissionMode": "default", "model": "claude-opus-5"}


def test_an_unknown_event_first_makes_the_session_and_counts_as_a_heartbeat(client, auth):
    assert hook(client, auth, {"session_id": "s-1", "hook_event_name": "Tomorrow", "x": 1}) == {}
    session = the_session(client, auth)
    assert session["tag"] == "claude:s-1" and session["active"] and session["messages"] == []


def test_a_repeated_event_is_stored_once(client, auth, app):
    for _ in range(3):
        hook(client, auth, event("PostToolUse"))
    assert len(the_session(client, auth)["messages"]) == 1
    assert run_sql(app.config["DB"], """SELECT count(*) FROM "update" WHERE body LIKE '%new-message%'""") == [(1,)]


def test_metadata_is_kept_current_with_versions_and_a_persons_title_is_never_overwritten(client, auth):
    hook(client, auth, event("PreToolUse"))
    sid = the_session(client, auth)["id"]
    version = lambda: client.get("/v1/sessions", headers=auth).get_json()["sessions"][0]["metadataVersion"]
    first = version()
    hook(client, auth, event("PostToolUse"))
    assert version() == first  # nothing changed, nothing written
    hook(client, auth, event("PostToolUse", permission_mode="acceptEdits", tool_use_id="toolu_2"))
    assert version() == first + 1
    client.patch(f"/api/sessions/{sid}", json={"title": "Mine"}, headers=auth)
    hook(client, auth, event("UserPromptSubmit", session_title="Claude's own"))
    assert the_session(client, auth)["title"] == "Mine"


def test_a_session_title_from_claude_wins_over_the_prompt(client, auth):
    hook(client, auth, event("UserPromptSubmit", session_title="Fix the login bug", prompt="x" * 500))
    assert the_session(client, auth)["title"] == "Fix the login bug"


def test_the_first_prompt_line_is_cut_to_120_characters(client, auth):
    hook(client, auth, event("UserPromptSubmit", prompt="\n  " + "y" * 300 + "\nsecond line"))
    assert the_session(client, auth)["title"] == "y" * 120


def test_a_huge_tool_response_is_stored_truncated_not_refused(client, auth, app):
    body = event("PostToolUse", tool_response={"stdout": "z" * (3 << 20), "stderr": "tail"})
    assert hook(client, auth, body) == {}
    [message] = the_session(client, auth)["messages"]
    content = message["content"]
    assert content["truncated"] is True and content["response"]["stderr"] == "tail"
    assert content["response"]["stdout"].startswith("zzz") and "characters cut]" in content["response"]["stdout"]
    assert len(json.dumps(content, separators=(",", ":")).encode()) <= app.config["MAX_CONTENT_BYTES"]


@pytest.mark.parametrize("body, status, error, field", [
    (("not json", JSON), 400, "invalid_json", None),
    ([1, 2], 400, "invalid_request", None),
    ({"hook_event_name": "Stop"}, 400, "invalid_request", "session_id"),
    ({"session_id": "s"}, 400, "invalid_request", "hook_event_name"),
    ({"session_id": 5, "hook_event_name": "Stop"}, 400, "invalid_request", "session_id"),
    ({"session_id": "", "hook_event_name": "Stop"}, 400, "invalid_request", "session_id"),
    (("session_id=s", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", None),
])
def test_bad_bodies_are_refused_and_change_nothing(app, client, auth, body, status, error, field):
    assert_refused(app, client, "POST", "/v1/hooks/claude", body, auth, status, error, field)


def test_a_hook_without_a_token_is_401(app, client):
    assert_refused(app, client, "POST", "/v1/hooks/claude", event("Stop"), {}, 401, "unauthorized", None)


def test_the_server_never_opens_the_transcript_path(client, auth, tmp_path):
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_text("secret\n")
    transcript.chmod(0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block the request forever
    hook(client, auth, event("Stop", transcript_path=str(fifo)))
    hook(client, auth, event("UserPromptSubmit", transcript_path=str(transcript)))


# --- steering, the system prompt ----------------------------------------------------------------

def test_queued_messages_are_delivered_at_the_next_stop_once(client, auth):
    hook(client, auth, event("UserPromptSubmit"))
    sid = the_session(client, auth)["id"]
    first = client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "one"}, headers=auth).get_json()
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": {"two": 2}}, headers=auth)
    assert first["delivered_at"] is None
    answer = hook(client, auth, event("Stop"))
    assert answer == {"decision": "block", "reason": 'The user sent this from Switchboard:\n\none\n\n{"two":2}'}
    assert hook(client, auth, event("Stop", stop_hook_active=True)) == {}  # nothing new: Claude stops
    delivered = [m for m in the_session(client, auth)["messages"] if m["id"] == first["id"]][0]
    assert delivered["delivered_at"] is not None
    agent_view = client.get(f"/v3/sessions/{sid}/messages", headers=auth).get_json()["messages"]
    assert [m["deliveredAt"] is not None for m in agent_view if m["role"] == "user"] == [True, True, True]


def test_queued_messages_ride_on_the_next_prompt_with_the_system_prompt_once(client, auth):
    hook(client, auth, event("UserPromptSubmit"))
    sid = the_session(client, auth)["id"]
    client.patch(f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "Be brief."}, headers=auth)
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "and add tests"}, headers=auth)
    answer = hook(client, auth, event("UserPromptSubmit", prompt="next"))
    context = answer["hookSpecificOutput"]["additionalContext"]
    assert answer["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    assert context == ("Session instructions from Switchboard:\n\nBe brief.\n\n"
                       "The user sent this from Switchboard:\n\nand add tests")
    assert hook(client, auth, event("UserPromptSubmit", prompt="again")) == {}
    assert hook(client, auth, event("SessionStart")) == {}
    client.patch(f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "Be thorough."}, headers=auth)
    answer = hook(client, auth, event("SessionStart", source="resume"))
    assert answer == {"hookSpecificOutput": {"hookEventName": "SessionStart",
                                             "additionalContext": "Session instructions from Switchboard:\n\nBe thorough."}}


def test_messages_of_other_roles_are_not_queued(client, auth):
    hook(client, auth, event("UserPromptSubmit"))
    sid = the_session(client, auth)["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "system", "content": "note"}, headers=auth)
    assert hook(client, auth, event("Stop")) == {}


def test_hold_off_or_nothing_held_does_not_wait(quick, client, auth):
    hook(client, auth, event("UserPromptSubmit"))
    sid = the_session(client, auth)["id"]
    r = client.put(f"/api/sessions/{sid}/hold", json={"hold": True}, headers=auth)
    assert r.status_code == 200 and r.get_json()["hold"] is True
    started = time.monotonic()
    assert hook(client, auth, event("Stop")) == {}  # held, nothing came within HOLD_WAIT_SECONDS
    assert 0.2 <= time.monotonic() - started < 2
    assert the_session(client, auth)["awaiting_message"] is True  # Claude stopped: it still waits for you


@pytest.mark.parametrize("body", [{}, {"hold": "yes"}, {"hold": 1}, {"hold": True, "extra": 1}])
def test_bad_hold_bodies_are_refused(app, client, auth, body):
    hook(client, auth, event("PreToolUse"))
    sid = the_session(client, auth)["id"]
    assert_refused(app, client, "PUT", f"/api/sessions/{sid}/hold", body, auth, 400, "invalid_request", None)


# --- isolation ----------------------------------------------------------------------------------

def test_another_accounts_sessions_and_requests_are_404(quick, client, auth, other_auth, app):
    hook(client, auth, event("PermissionRequest"))  # expires at once (quick)
    [request] = client.get("/api/requests", headers=auth).get_json()["items"]
    sid = request["session_id"]
    assert client.get("/api/requests", headers=other_auth).get_json() == {"items": []}
    for method, path, body in [
        ("GET", f"/api/sessions/{sid}/requests", None),
        ("POST", f"/api/sessions/{sid}/requests/{request['id']}/decision", {"decision": "allow"}),
        ("PUT", f"/api/sessions/{sid}/hold", {"hold": True}),
    ]:
        answer = assert_refused(app, client, method, path, body, other_auth, 404, "session_not_found", None)
        assert answer["error"] == "session_not_found"
    # Bob's own Claude session with the same Claude session id is his own row.
    hook(client, other_auth, event("PreToolUse"))
    [bobs] = client.get("/api/sessions", headers=other_auth).get_json()["items"]
    assert bobs["id"] != sid
    # Alice's request id under Bob's session is as missing as any.
    assert_refused(app, client, "POST", f"/api/sessions/{bobs['id']}/requests/{request['id']}/decision",
                   {"decision": "allow"}, other_auth, 404, "request_not_found", None)


@pytest.mark.parametrize("body, field", [
    ({}, "decision"), ({"decision": "maybe"}, "decision"), ({"decision": "deny", "reason": "x" * 2001}, "reason"),
    ({"decision": "allow", "other": 1}, "other"),
])
def test_bad_decisions_are_refused(quick, app, client, auth, body, field):
    hook(client, auth, event("PermissionRequest"))
    [request] = client.get("/api/requests", headers=auth).get_json()["items"]
    path = f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision"
    assert_refused(app, client, "POST", path, body, auth, 400, "invalid_request", field)


def test_a_decision_on_a_settled_request_is_409_with_its_status(quick, app, client, auth):
    hook(client, auth, event("PermissionRequest"))
    [request] = client.get("/api/requests", headers=auth).get_json()["items"]
    path = f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision"
    before = snapshot(app.config["DB"])
    r = client.post(path, json={"decision": "allow"}, headers=auth)
    assert r.status_code == 409 and r.get_json()["error"] == "request_not_pending"
    assert r.get_json()["status"] == "expired"
    assert snapshot(app.config["DB"]) == before


def test_request_lists_filter_by_status_newest_first(quick, client, auth):
    hook(client, auth, event("PermissionRequest"))
    hook(client, auth, event("PermissionRequest", tool_input={"command": "rm x"}))
    items = client.get("/api/requests", headers=auth).get_json()["items"]
    assert [r["input"]["command"] for r in items] == ["rm x", "touch made.txt"]
    sid = items[0]["session_id"]
    assert client.get(f"/api/sessions/{sid}/requests?status=expired", headers=auth).get_json()["items"] == items
    assert client.get("/api/requests?status=pending", headers=auth).get_json() == {"items": []}
    r = client.get("/api/requests?status=nope", headers=auth)
    assert r.status_code == 400 and "status" in r.get_json()["errors"]


def test_a_waiting_hook_holds_no_database_connection(app, client, auth):
    app.config["APPROVAL_WAIT_SECONDS"] = 10
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(hook(app.test_client(), auth, event("PermissionRequest"))))
    waiting.start()
    deadline = time.monotonic() + 5
    while not client.get("/api/requests?status=pending", headers=auth).get_json()["items"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    assert models.db._in_use == {}  # the waiting request gave its connection back
    [request] = client.get("/api/requests?status=pending", headers=auth).get_json()["items"]
    r = client.post(f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision",
                    json={"decision": "allow"}, headers=auth)
    assert r.status_code == 200
    waiting.join(5)
    assert answers == [{"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                               "decision": {"behavior": "allow"}}}]


# --- against the real server: waits, concurrency, timing, restarts ------------------------------

def post_hook(server, body, timeout=30, token=None):
    r = requests.post(server.url + "/v1/hooks/claude", json=body, timeout=timeout,
                      headers={"Authorization": f"Bearer {token or server.token}"})
    assert r.status_code == 200, r.text
    return r.json()


def waiting_hook(server, body, token=None):
    """Post `body` in a thread; returns (thread, answers) once its request is pending."""
    answers = []
    thread = threading.Thread(target=lambda: answers.append(post_hook(server, body, token=token)))
    thread.start()
    headers = {"Authorization": f"Bearer {token or server.token}"}
    deadline = time.monotonic() + 10
    while True:
        pending = requests.get(server.url + "/api/requests?status=pending", headers=headers, timeout=5).json()["items"]
        if pending:
            return thread, answers, pending[0]
        assert time.monotonic() < deadline, "no pending request"
        time.sleep(0.02)


def decision_path(request):
    return f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision"


def test_concurrent_decisions_one_wins_and_the_hook_gets_it(make_server):
    server = make_server({"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30"})
    thread, answers, request = waiting_hook(server, event("PermissionRequest"))
    barrier = threading.Barrier(8)
    results = []

    def decide(i):
        barrier.wait()
        body = {"decision": "allow"} if i % 2 else {"decision": "deny", "reason": f"no {i}"}
        r = requests.post(server.url + decision_path(request), json=body, headers=server.headers, timeout=10)
        results.append((r.status_code, r.json()))
    deciders = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for t in deciders:
        t.start()
    for t in deciders:
        t.join(10)
    thread.join(10)
    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results if status == 409]
    assert len(winners) == 1 and len(losers) == 7
    assert {loser["status"] for loser in losers} == {winners[0]["status"]}
    assert all(loser["error"] == "request_not_pending" for loser in losers)
    decision = answers[0]["hookSpecificOutput"]["decision"]
    if winners[0]["status"] == "allowed":
        assert decision == {"behavior": "allow"}
    else:
        assert decision == {"behavior": "deny", "message": winners[0]["reason"]}


def test_an_approval_nobody_decides_expires_on_time(make_server):
    server = make_server({"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "1"})
    started = time.monotonic()
    assert post_hook(server, event("PermissionRequest")) == {}
    assert 1 <= time.monotonic() - started < 2.5
    [request] = requests.get(server.url + "/api/requests", headers=server.headers).json()["items"]
    assert request["status"] == "expired" and request["decided_at"]


def test_a_deny_without_a_reason_says_so(make_server):
    server = make_server()
    thread, answers, request = waiting_hook(server, event("PermissionRequest"))
    requests.post(server.url + decision_path(request), json={"decision": "deny"}, headers=server.headers)
    thread.join(10)
    assert answers[0]["hookSpecificOutput"]["decision"] == {"behavior": "deny", "message": "Denied in Switchboard."}


@pytest.mark.parametrize("later", ["Stop", "UserPromptSubmit", "SessionEnd", "PostToolUse"])
def test_a_later_event_that_shows_claude_moved_on_cancels_the_wait(make_server, later):
    server = make_server()
    thread, answers, request = waiting_hook(server, event("PermissionRequest"))
    # A notification about the same permission, or another tool's activity, does not cancel it.
    post_hook(server, event("Notification"))
    post_hook(server, event("PreToolUse", tool_input={"command": "ls"}, tool_use_id="toolu_other"))
    assert thread.is_alive()
    moved_on = event(later)
    if later == "PostToolUse":  # the very call that waited ran: answered in the terminal
        moved_on.update(tool_input=RECORDED["PermissionRequest"]["tool_input"])
    started = time.monotonic()
    post_hook(server, moved_on)
    thread.join(5)
    assert answers == [{}] and time.monotonic() - started < 1
    [settled] = requests.get(server.url + "/api/requests", headers=server.headers).json()["items"]
    assert settled["status"] == "cancelled"


def send_raw(server, body, waiting=None):
    """Post a hook on a plain socket, left open; returns it once `waiting()` (default: a request is
    pending) says the hook waits."""
    waiting = waiting or (lambda: requests.get(server.url + "/api/requests?status=pending",
                                               headers=server.headers).json()["items"])
    body = json.dumps(body).encode()
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(b"POST /v1/hooks/claude HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    deadline = time.monotonic() + 10
    while not waiting():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return raw


def test_a_hook_whose_connection_closes_is_cancelled(make_server):
    server = make_server()
    send_raw(server, event("PermissionRequest")).close()
    closed = time.monotonic()
    while True:
        [request] = requests.get(server.url + "/api/requests", headers=server.headers).json()["items"]
        if request["status"] != "pending":
            break
        assert time.monotonic() - closed < 3, "not cancelled"
        time.sleep(0.02)
    assert request["status"] == "cancelled"


def test_waits_of_a_server_that_died_are_settled_at_the_next_start(tmp_path, ws_connect):
    """A pending request expires; a held session still awaits the person (its Claude stopped)."""
    db_path = tmp_path / "restart.db"
    server = LiveServer(db_path, {"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "60"}).start()
    token = server.token
    raw = send_raw(server, event("PermissionRequest"))
    post_hook(server, event("UserPromptSubmit", session_id="held"))
    held = [s for s in requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
            if s["tag"] == "claude:held"][0]
    requests.put(server.url + f"/api/sessions/{held['id']}/hold", json={"hold": True}, headers=server.headers)
    stop = send_raw(server, event("Stop", session_id="held"), waiting=lambda: requests.get(
        server.url + f"/api/sessions/{held['id']}", headers=server.headers).json()["awaiting_message"])
    server.worker.kill()  # no chance to answer or clean up
    server.stop()
    raw.close()
    stop.close()
    assert run_sql(server.db_path, "SELECT status FROM request") == [("pending",)]
    assert run_sql(server.db_path, "SELECT awaiting_message FROM session WHERE tag = 'claude:held'") == [(1,)]
    again = LiveServer(db_path).start()
    try:
        again.token = token
        [request] = requests.get(again.url + "/api/requests", headers=again.headers).json()["items"]
        assert request["status"] == "expired"
        session = requests.get(again.url + f"/api/sessions/{held['id']}", headers=again.headers).json()
        assert session["awaiting_message"] is True and session["hold"] is True
        ws = ws_connect(again, since=0, ready=False)
        bodies = []
        while True:
            frame = ws.recv()
            if frame["event"] == "ready":
                break
            bodies.append(frame["data"]["body"])
        assert [b["t"] for b in bodies if b["t"].endswith("request")] == ["new-request", "update-request"]
        [expired] = [b for b in bodies if b["t"] == "update-request"]
        assert expired["request"]["status"] == "expired" and expired["request"]["sid"] == request["session_id"]
        assert {"t": "update-session", "id": held["id"], "awaitingMessage": False} not in bodies
    finally:
        again.stop()


def test_the_maintenance_runner_expires_what_a_gone_process_waited_on_never_what_a_live_hook_waits_on(
        make_server, ws_connect):
    """Every 0.1 s the runner expires the pending requests whose process is gone (here one planted as a
    dead process's); the one a hook waits on through this server stays pending and is decided."""
    server = make_server({"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30", "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.1"})
    thread, answers, live = waiting_hook(server, event("PermissionRequest"))
    ws = ws_connect(server)
    now = int(time.time() * 1000)
    run_sql(server.db_path, 'INSERT INTO "request" ("id", "account_id", "session_id", "key", "kind", "status", '
            '"created_at", "waiter") SELECT ?, "account_id", "session_id", ?, ?, ?, ?, ? FROM "request"',
            ("0left", "left", "permission", "pending", now, "a-process-that-is-gone"))
    deadline = time.monotonic() + 5
    while (body := next_update(ws))["t"] != "update-request":
        assert time.monotonic() < deadline
    assert (body["request"]["id"], body["request"]["status"]) == ("0left", "expired")
    time.sleep(1)  # ten more runs
    statuses = dict(run_sql(server.db_path, 'SELECT "id", "status" FROM "request"'))
    assert statuses == {"0left": "expired", live["id"]: "pending"}
    assert thread.is_alive()
    requests.post(server.url + decision_path(live), json={"decision": "allow"}, headers=server.headers, timeout=5)
    thread.join(10)
    assert answers[0]["hookSpecificOutput"]["decision"] == {"behavior": "allow"}


def next_update(ws):
    """The next update's body, ephemerals skipped."""
    while True:
        frame = ws.recv()
        if frame["event"] == "update":
            return frame["data"]["body"]


def test_hold_waits_for_the_next_message_and_delivers_it(make_server, ws_connect):
    server = make_server()
    post_hook(server, event("UserPromptSubmit"))
    [session] = requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
    sid = session["id"]
    ws = ws_connect(server)
    requests.put(server.url + f"/api/sessions/{sid}/hold", json={"hold": True}, headers=server.headers)
    answers = []
    stop = threading.Thread(target=lambda: answers.append(post_hook(server, event("Stop"))))
    stop.start()
    seen = []
    while not any(b.get("awaitingMessage") for b in seen):
        seen.append(next_update(ws))
    assert {"t": "update-session", "id": sid, "hold": True} in seen
    time.sleep(0.3)
    assert stop.is_alive()
    r = requests.post(server.url + f"/api/sessions/{sid}/messages", json={"role": "user", "content": "go on"},
                      headers=server.headers)
    stop.join(5)
    assert answers == [{"decision": "block", "reason": "The user sent this from Switchboard:\n\ngo on"}]
    later = [next_update(ws) for _ in range(3)]
    assert later[0]["t"] == "new-message"
    assert later[1] == {"t": "update-message", "sid": sid,
                        "message": {"id": r.json()["id"], "deliveredAt": later[1]["message"]["deliveredAt"]}}
    assert later[2] == {"t": "update-session", "id": sid, "awaitingMessage": False}
    # Switching hold off releases a waiting Stop at once.
    stop = threading.Thread(target=lambda: answers.append(post_hook(server, event("Stop", stop_hook_active=True))))
    stop.start()
    time.sleep(0.3)
    requests.put(server.url + f"/api/sessions/{sid}/hold", json={"hold": False}, headers=server.headers)
    stop.join(3)
    assert answers[-1] == {}


def test_tool_activity_rides_on_the_activity_ephemeral(make_server, ws_connect):
    server = make_server()
    post_hook(server, event("UserPromptSubmit"))
    ws = ws_connect(server)
    post_hook(server, event("PreToolUse", tool_input={"command": "npm test\nnpm run lint"}))
    frame = ws.expect("ephemeral")["data"]
    assert frame["type"] == "activity" and frame["thinking"] is True
    assert frame["tool"] == "Bash" and frame["detail"] == "npm test"
    post_hook(server, event("PostToolUse"))
    while True:
        frame = ws.recv()
        if frame["event"] == "ephemeral":
            break
    assert "tool" not in frame["data"] and frame["data"]["thinking"] is True


def test_concurrent_first_events_make_one_session(make_server):
    server = make_server()
    barrier = threading.Barrier(8)

    def first(i):
        barrier.wait()
        post_hook(server, event("PostToolUse", tool_use_id=f"toolu_{i}"))
    threads = [threading.Thread(target=first, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    [session] = requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
    messages = requests.get(server.url + f"/api/sessions/{session['id']}", headers=server.headers).json()["messages"]
    assert len(messages) == 8


# --- the settings block -------------------------------------------------------------------------

def settings(*args, env=None):
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "claude-settings", *args], cwd=ROOT,
                         capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", **(env or {})})
    return json.loads(out.stdout)


def test_claude_settings_print_an_http_hook_on_every_event():
    hooks = settings("--url", "https://sb.example.org/")["hooks"]
    assert sorted(hooks) == sorted(["SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest",
                                    "PostToolUse", "PostToolUseFailure", "Notification", "Stop",
                                    "SubagentStop", "SessionEnd"])
    for name, [group] in hooks.items():
        [entry] = group["hooks"]
        assert entry["type"] == "http" and entry["url"] == "https://sb.example.org/v1/hooks/claude"
        assert entry["headers"] == {"Authorization": "Bearer $SWITCHBOARD_TOKEN"}
        assert entry["allowedEnvVars"] == ["SWITCHBOARD_TOKEN"]
        assert entry["timeout"] == (360 if name in ("PermissionRequest", "Stop") else 10)
        takes_matcher = name in ("PreToolUse", "PermissionRequest", "PostToolUse", "PostToolUseFailure")
        assert ("matcher" in group) == takes_matcher


def test_claude_settings_follow_the_configuration_and_can_leave_approvals_out():
    hooks = settings("--no-approvals", env={"SWITCHBOARD_PUBLIC_URL": "https://pub.example",
                                            "SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30",
                                            "SWITCHBOARD_HOLD_WAIT_SECONDS": "100"})["hooks"]
    assert "PermissionRequest" not in hooks
    assert hooks["Stop"][0]["hooks"][0]["timeout"] == 160
    assert hooks["Stop"][0]["hooks"][0]["url"] == "https://pub.example/v1/hooks/claude"
    hooks = settings(env={"SWITCHBOARD_HOST": "0.0.0.0", "SWITCHBOARD_PORT": "9001",
                          "SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30"})["hooks"]
    assert hooks["PermissionRequest"][0]["hooks"][0]["timeout"] == 90
    assert hooks["SessionEnd"][0]["hooks"][0]["url"] == "http://0.0.0.0:9001/v1/hooks/claude"


@pytest.mark.parametrize("waiting", ["PermissionRequest", "Stop"])
def test_deleting_the_session_ends_a_wait_with_an_empty_answer(make_server, waiting):
    server = make_server()
    post_hook(server, event("UserPromptSubmit"))
    [session] = requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
    requests.put(server.url + f"/api/sessions/{session['id']}/hold", json={"hold": True}, headers=server.headers)
    answers = []
    thread = threading.Thread(target=lambda: answers.append(post_hook(server, event(waiting))))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()
    requests.delete(server.url + f"/api/sessions/{session['id']}", headers=server.headers)
    thread.join(3)
    assert answers == [{}]
