"""Webhooks: the routes and the CLI, events derived from what each write records, queued in its
transaction, and delivered by the real server to a receiver on 127.0.0.1 that checks the Standard
Webhooks signature with the reference library: retries with growing gaps, the cap, a restart."""
import json
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests
from standardwebhooks.webhooks import Webhook as Verifier

import events
import models
import notifications
import webhooks
from app import create_app
from conftest import ROOT, assert_refused, database, run_sql
from events import writer
from receiver import Hang, Receiver

ALL_EVENTS = ["request.created", "session.waiting", "session.ended", "message.created"]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def add(client, auth, url="http://127.0.0.1:9/hook", **fields):
    r = client.post("/api/webhooks", json={"url": url, **fields}, headers=auth)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def runs_table(db):
    columns = [field.column_name for field in models.WebhookRun._meta.sorted_fields]
    rows = run_sql(db, f"SELECT {', '.join(columns)} FROM webhook_run ORDER BY id")
    return [dict(zip(columns, row)) for row in rows]


def emit(account_id, session_id, body):
    """Record an update the way any domain write does (Changes.add in writer.run): the producers of
    `new-request` and waiting sessions write exactly this."""
    with models.db.connection_context():
        writer.run(account_id, lambda changes: changes.add(session_id, body))


def account_of(db, name):
    [(account,)] = run_sql(db, "SELECT id FROM account WHERE name = ?", (name,))
    return account


# --- routes ------------------------------------------------------------------------------------

def test_a_webhook_is_added_listed_and_removed_and_its_secret_is_answered_once(app, client, auth):
    created = add(client, auth, "https://example.com/hook", format="slack")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["request.created", "session.waiting", "session.ended"]
    assert created["format"] == "slack" and created["last_run"] is None
    listed = client.get("/api/webhooks", headers=auth).get_json()["items"]
    assert listed == [{k: v for k, v in created.items() if k != "secret"}]
    assert created["secret"] not in json.dumps(listed)
    assert client.delete(f"/api/webhooks/{created['id']}", headers=auth).status_code == 204
    assert client.get("/api/webhooks", headers=auth).get_json() == {"items": []}


def test_repeated_events_are_kept_once(client, auth):
    assert add(client, auth, events=["session.ended", "session.ended", "message.created"])["events"] == \
        ["session.ended", "message.created"]


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "example.com/hook"}, "url"),
    ({"url": "http://example.com/" + "a" * 2100}, "url"),
    ({"url": 5}, "url"),
    ({}, "url"),
    ({"url": "http://example.com", "events": ["session.deleted"]}, "events"),
    ({"url": "http://example.com", "events": []}, "events"),
    ({"url": "http://example.com", "events": "session.ended"}, "events"),
    ({"url": "http://example.com", "format": "xml"}, "format"),
    ({"url": "http://example.com", "secret": "whsec_mine"}, "secret"),
])
def test_bad_webhooks_are_refused_and_change_nothing(app, client, auth, body, field):
    assert_refused(app, client, "POST", "/api/webhooks", body, auth, 400, "invalid_request", field)


def test_bad_bodies_and_tokens_are_refused(app, client, auth):
    assert_refused(app, client, "POST", "/api/webhooks", "{nope", auth, 400, "invalid_json", None)
    assert_refused(app, client, "POST", "/api/webhooks", ("url=x", "text/plain"), auth, 415, "unsupported_media_type", None)
    assert_refused(app, client, "POST", "/api/webhooks", {"url": "http://example.com"},
                   {"Authorization": "Bearer sb_wrong"}, 401, "unauthorized", None)
    assert_refused(app, client, "POST", "/api/webhooks", {"url": "http://x.io/" + "a" * (17 << 20)}, auth, 413,
                   "payload_too_large", None)


def test_another_accounts_webhooks_and_runs_are_out_of_reach(app, client, auth, other_auth):
    mine = add(client, auth)
    session = client.post("/api/sessions", json={}, headers=auth).get_json()
    assert client.get("/api/webhooks", headers=other_auth).get_json() == {"items": []}
    assert_refused(app, client, "DELETE", f"/api/webhooks/{mine['id']}", None, other_auth, 404, "webhook_not_found", None)
    for missing in ("999", "abc", "99999999999999999999999", "-1", "１"):
        assert_refused(app, client, "DELETE", f"/api/webhooks/{missing}", None, auth, 404, "webhook_not_found", None)
    assert_refused(app, client, "GET", f"/api/sessions/{session['id']}/webhook-runs", None, other_auth, 404,
                   "session_not_found", None)
    assert client.get(f"/api/sessions/{session['id']}/webhook-runs", headers=auth).get_json() == {"items": []}


# --- events, queued in the transaction of the write that caused them ----------------------------

def test_each_event_is_derived_from_the_updates_a_write_records(app, client, auth):
    hook = add(client, auth, events=ALL_EVENTS)
    quiet = add(client, auth, events=["request.created"])
    session = client.post("/v1/sessions", json={"tag": "laptop", "metadata": ""}, headers=auth).get_json()["session"]
    sid = session["id"]
    client.post(f"/v3/sessions/{sid}/messages", json={"messages": [{"content": {"text": "hi"}}]}, headers=auth)
    account = account_of(app.config["DB"], "alice")
    emit(account, sid, {"t": "new-request", "request": {"id": "r1", "tool": "Bash"}})
    emit(account, sid, {"t": "update-session", "id": sid, "awaitingMessage": True})
    emit(account, sid, {"t": "update-session", "id": sid, "awaitingMessage": False})  # no longer waiting: no event
    client.post(f"/v1/sessions/{sid}/end", json={}, headers=auth)
    client.post(f"/v1/sessions/{sid}/end", json={}, headers=auth)  # already ended: no update, no event
    client.patch(f"/api/sessions/{sid}", json={"title": "Deploy"}, headers=auth)  # not an event

    runs = runs_table(app.config["DB"])
    assert [(r["webhook_id"], r["event"]) for r in runs] == [
        (hook["id"], "message.created"), (hook["id"], "request.created"), (quiet["id"], "request.created"),
        (hook["id"], "session.waiting"), (hook["id"], "session.ended")]
    assert all(r["status"] == "pending" and r["attempts"] == 0 and r["session_id"] == sid for r in runs)
    payloads = [json.loads(r["payload"]) for r in runs]
    assert payloads[1]["type"] == "request.created" and payloads[1]["data"] == {
        "session": {"id": sid, "title": None, "tag": "laptop"}, "request": {"id": "r1", "tool": "Bash"}}
    assert payloads[0]["data"]["message"]["content"] == {"text": "hi"}
    assert payloads[3]["data"]["waiting"] is True
    assert payloads[4]["data"] == {"session": {"id": sid, "title": None, "tag": "laptop"}}
    assert payloads[4]["timestamp"].endswith("Z")

    listed = {w["id"]: w for w in client.get("/api/webhooks", headers=auth).get_json()["items"]}
    assert listed[hook["id"]]["last_run"]["event"] == "session.ended"
    assert listed[quiet["id"]]["last_run"]["event"] == "request.created"
    shown = client.get(f"/api/sessions/{sid}/webhook-runs", headers=auth).get_json()["items"]
    assert [r["id"] for r in shown] == [r["id"] for r in reversed(runs)]
    assert set(shown[0]) == {"id", "webhook_id", "session_id", "event", "status", "attempts", "response_status",
                             "duration_ms", "error", "next_attempt_at", "created_at"}


def test_a_write_that_fails_queues_nothing(app, client, auth):
    add(client, auth)
    sid = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    account = account_of(app.config["DB"], "alice")
    def failing(changes):
        changes.add(sid, {"t": "update-session", "id": sid, "active": False})
        raise RuntimeError("the write fails after recording its update")
    with pytest.raises(RuntimeError), models.db.connection_context():
        writer.run(account, failing)
    assert runs_table(app.config["DB"]) == []
    emit(account, sid, {"t": "update-session", "id": sid, "active": False})
    assert len(runs_table(app.config["DB"])) == 1


def test_events_of_an_account_without_webhooks_queue_nothing(app, client, auth, other_auth):
    add(client, other_auth, events=ALL_EVENTS)
    sid = client.post("/v1/sessions", json={"tag": "t", "metadata": ""}, headers=auth).get_json()["session"]["id"]
    client.post(f"/v3/sessions/{sid}/messages", json={"messages": [{"content": 1}]}, headers=auth)
    client.post(f"/v1/sessions/{sid}/end", json={}, headers=auth)
    assert runs_table(app.config["DB"]) == []


def test_runs_go_with_their_session_and_their_webhook_and_are_not_exported(app, client, auth):
    hook = add(client, auth, events=ALL_EVENTS)
    first = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    second = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    for sid in (first, second):
        client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "hi"}, headers=auth)
    exported = client.get(f"/api/sessions/{first}/export", headers=auth).get_data(as_text=True)
    assert "webhook" not in exported and "run" not in json.loads(exported)
    client.delete(f"/api/sessions/{first}", headers=auth)
    assert [r["session_id"] for r in runs_table(app.config["DB"])] == [second]
    client.delete(f"/api/webhooks/{hook['id']}", headers=auth)
    assert runs_table(app.config["DB"]) == []


def test_the_formats_say_what_happened_without_message_content():
    payload = webhooks.event_payload("request.created", ("01abc", "Deploy", None), {"request": {"id": "r"}}, 0)
    body, headers = webhooks.render("ntfy", payload, "https://sb.example.com/")
    assert body.decode() == "“Deploy” asks for your approval."
    assert headers["Title"] == "Switchboard: Approval requested" and headers["Priority"] == "high"
    assert headers["Tags"] == "bell" and headers["Click"] == "https://sb.example.com/#session=01abc"
    assert "Click" not in webhooks.render("ntfy", payload, "")[1]
    body, headers = webhooks.render("slack", payload, "https://sb.example.com")
    assert json.loads(body) == {"text": "*Approval requested*: “Deploy” asks for your approval. "
                                        "<https://sb.example.com/#session=01abc|Open>"}
    assert webhooks.render("json", payload, "")[0] == payload.encode()
    message = webhooks.event_payload("message.created", ("01abc", None, "laptop"), {"message": {"content": "s3cr3t"}}, 0)
    for format in ("ntfy", "slack"):
        assert b"s3cr3t" not in webhooks.render(format, message, "")[0]
        assert "laptop" in webhooks.render(format, message, "")[0].decode()


# --- the command line --------------------------------------------------------------------------

def run_cli(db_path, *args, check=True):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          env={"SWITCHBOARD_DB": database(db_path), "PATH": "/usr/bin:/bin"}, check=check)


def test_the_cli_adds_lists_and_removes_webhooks(tmp_path):
    db_path = tmp_path / "cli.db"
    run_cli(db_path, "create-token", "--account", "ops")
    out = run_cli(db_path, "webhook", "add", "https://ntfy.sh/my-topic", "--format", "ntfy", "--events",
                  "request.created,session.waiting", "--account", "ops").stdout
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and out.count("whsec_") == 1
    listed = run_cli(db_path, "webhook", "list").stdout
    assert "https://ntfy.sh/my-topic" in listed and "ntfy" in listed and "ops" in listed and "never" in listed
    assert "request.created,session.waiting" in listed and "whsec_" not in listed
    refused = run_cli(db_path, "webhook", "add", "ftp://x/y", "--account", "ops", check=False)
    assert refused.returncode != 0 and "url" in refused.stderr
    refused = run_cli(db_path, "webhook", "add", "https://x.io", "--events", "nope", "--account", "ops", check=False)
    assert refused.returncode != 0 and "events" in refused.stderr
    assert run_cli(db_path, "webhook", "add", "https://x.io", "--account", "nobody", check=False).returncode != 0
    assert "removed webhook 1" in run_cli(db_path, "webhook", "remove", "1").stdout
    assert run_cli(db_path, "webhook", "remove", "1", check=False).returncode != 0
    assert "my-topic" not in run_cli(db_path, "webhook", "list").stdout


# --- delivery by the real server -----------------------------------------------------------------

def verify(secret, request):
    """The reference library checks the signature and the timestamp; returns the parsed body (its
    verify() parses JSON: a plain-text ntfy body is checked against the library's own signature)."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    if not headers["content-type"].startswith("application/json"):
        at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
        expected = Verifier(secret).sign(headers["webhook-id"], at, request["body"].decode())
        assert headers["webhook-signature"] == expected
        assert abs(time.time() - at.timestamp()) < 300
        return request["body"].decode()
    return Verifier(secret).verify(request["body"], headers)


def start_session(server, tag="laptop"):
    r = requests.post(server.url + "/v1/sessions", json={"tag": tag, "metadata": ""}, headers=server.headers)
    return r.json()["session"]["id"]


def add_live(server, url, **fields):
    r = requests.post(server.url + "/api/webhooks", json={"url": url, **fields}, headers=server.headers)
    assert r.status_code == 201, r.text
    return r.json()


def runs_of(server, sid):
    return requests.get(f"{server.url}/api/sessions/{sid}/webhook-runs", headers=server.headers).json()["items"]


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def test_every_format_is_delivered_signed_and_the_run_is_recorded(make_server, receiver, tmp_path):
    server = make_server({"SWITCHBOARD_PUBLIC_URL": "https://sb.example.com"})
    hooks = {format: add_live(server, f"{receiver.url}/{format}", format=format) for format in ("json", "ntfy", "slack")}
    sid = start_session(server)
    emit_from_outside(server, sid, {"t": "new-request", "request": {"id": "r1"}})
    for format, hook in hooks.items():
        [request] = receiver.wait_for(f"/{format}", 1)
        verify(hook["secret"], request)
        assert request["headers"]["User-Agent"] == "Switchboard-Webhooks/1"
    assert json.loads(receiver.requests["/json"][0]["body"])["data"]["request"] == {"id": "r1"}
    ntfy = receiver.requests["/ntfy"][0]
    assert ntfy["body"].decode() == "“laptop” asks for your approval."
    assert ntfy["headers"]["Title"] == "Switchboard: Approval requested"
    assert ntfy["headers"]["Click"] == f"https://sb.example.com/#session={sid}"
    assert "approval" in json.loads(receiver.requests["/slack"][0]["body"])["text"]
    runs = wait_until(lambda: [r for r in runs_of(server, sid) if r["status"] == "delivered"] if
                      len([r for r in runs_of(server, sid) if r["status"] == "delivered"]) == 3 else None)
    assert {(r["attempts"], r["response_status"], r["error"], r["event"]) for r in runs} == \
        {(1, 200, None, "request.created")}
    assert all(r["duration_ms"] >= 0 for r in runs)
    listed = requests.get(server.url + "/api/webhooks", headers=server.headers).json()["items"]
    assert {w["last_run"]["status"] for w in listed} == {"delivered"}
    for hook in hooks.values():
        assert hook["secret"] not in server.log()


def emit_from_outside(server, sid, body):
    """Write an update into the live server's database from this process, as a producer in the
    server would: the server's dispatcher finds the queued runs within its poll interval."""
    create_app({"DB": server.db_path, "TESTING": True})
    try:
        emit(account_of(server.db_path, "default"), sid, body)
    finally:
        models.db.close_all()


def test_failures_are_retried_with_growing_gaps_until_delivered_or_the_cap(make_server, receiver):
    base, cap, timeout = 0.3, 5, 1.0
    server = make_server({"SWITCHBOARD_WEBHOOK_RETRY_BASE_SECONDS": str(base),
                          "SWITCHBOARD_WEBHOOK_MAX_ATTEMPTS": str(cap),
                          "SWITCHBOARD_WEBHOOK_TIMEOUT_SECONDS": str(timeout)})
    receiver.scripts["/flaky"] = [500, 503, Hang(timeout + 1), 500]  # then 200: the fifth attempt
    receiver.scripts["/down"] = [500] * 10
    flaky = add_live(server, receiver.url + "/flaky", events=["session.ended"])
    add_live(server, receiver.url + "/down", events=["session.ended"])
    sid = start_session(server)
    requests.post(f"{server.url}/v1/sessions/{sid}/end", json={}, headers=server.headers)

    attempts = receiver.wait_for("/flaky", 5, timeout=20)
    ids = {a["headers"]["webhook-id"] for a in attempts}
    assert len(ids) == 1  # the same message on every retry
    for attempt in attempts:
        verify(flaky["secret"], attempt)
    arrivals = [a["at"] for a in attempts]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    # Each gap is the attempt's own time (the third one timed out) plus base * 2^(n-1).
    backoffs = [gaps[0], gaps[1], gaps[2] - timeout, gaps[3]]
    for n, backoff in enumerate(backoffs):
        assert backoff >= base * 2 ** n * 0.95, gaps
    assert backoffs[0] < backoffs[1] < backoffs[3], gaps

    receiver.wait_for("/down", cap, timeout=20)
    runs = wait_until(lambda: (lambda rs: rs if {r["status"] for r in rs} == {"delivered", "failed"} else None)(
        runs_of(server, sid)), timeout=10)
    by_status = {r["status"]: r for r in runs}
    assert by_status["delivered"]["attempts"] == 5 and by_status["delivered"]["response_status"] == 200
    assert by_status["delivered"]["error"] is None and by_status["delivered"]["next_attempt_at"] is None
    assert by_status["failed"]["attempts"] == cap and by_status["failed"]["error"] == "HTTP 500"
    time.sleep(base * 2 ** cap)
    assert len(receiver.requests["/down"]) == cap  # given up at the cap: no further attempt


def test_a_delivery_queued_before_a_restart_is_made_after_it_once(make_server, receiver, tmp_path):
    env = {"SWITCHBOARD_WEBHOOK_RETRY_BASE_SECONDS": "1.5"}
    server = make_server(env)
    receiver.scripts["/hook"] = [500]
    hook = add_live(server, receiver.url + "/hook", events=["session.ended"])
    sid = start_session(server)
    requests.post(f"{server.url}/v1/sessions/{sid}/end", json={}, headers=server.headers)
    [first] = receiver.wait_for("/hook", 1)
    token = server.token
    wait_until(lambda: runs_of(server, sid)[0]["attempts"] == 1)
    server.stop()

    again = make_server(env, db_path=server.db_path)
    again.token = token
    first, second = receiver.wait_for("/hook", 2, timeout=15)
    assert second["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    assert verify(hook["secret"], second)["type"] == "session.ended"
    [run] = wait_until(lambda: [r for r in runs_of(again, sid) if r["status"] == "delivered"])
    assert run["attempts"] == 2
    time.sleep(2)
    assert len(receiver.requests["/hook"]) == 2


def test_a_receiver_that_hangs_never_holds_up_requests(make_server, receiver):
    server = make_server({"SWITCHBOARD_WEBHOOK_TIMEOUT_SECONDS": "5"})
    receiver.scripts["/slow"] = [Hang(6)] * 20
    add_live(server, receiver.url + "/slow", events=["message.created"])
    sid = start_session(server)
    latencies = []
    for n in range(20):
        started = time.monotonic()
        r = requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": n}]},
                          headers=server.headers, timeout=5)
        latencies.append(time.monotonic() - started)
        assert r.status_code == 200
    receiver.wait_for("/slow", notifications.Dispatcher().senders, timeout=5)  # every sender is stuck in one
    started = time.monotonic()
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0
    assert max(latencies) < 1.0, latencies


# As the code runs them: statements rendered by the same objects, queries by the functions it calls.
NOTIFY_QUERIES = {
    "due runs": lambda: notifications._DUE_RUNS(1, 16),
    "due push jobs": lambda: notifications._DUE_JOBS(1, 16),
    "an account's webhooks (every write with an event)": lambda: notifications._WEBHOOKS(1),
    "an account's push subscriptions": lambda: notifications._SUBSCRIPTIONS(1),
    "a session's runs": lambda: webhooks.runs_of("s").sql(),
    "last runs": lambda: webhooks.last_runs([1, 2]).sql(),
    "a session's name (every event)": lambda: webhooks._SESSION_ROW("s"),
}


@pytest.mark.sqlite_only  # SQLite's query plans
@pytest.mark.parametrize("name", NOTIFY_QUERIES)
def test_the_queue_queries_search_an_index_and_never_sort(tmp_path, name):
    models.init_db(str(tmp_path / "plan.db"))
    models.migrate()
    sql, params = NOTIFY_QUERIES[name]()
    models.db.close_all()
    with sqlite3.connect(tmp_path / "plan.db") as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert all(step.startswith("SEARCH") and ("INDEX" in step or "PRIMARY KEY" in step) for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_finished_runs_are_pruned_after_their_retention_and_pending_ones_kept(app, client, auth):
    add(client, auth, events=["message.created"])
    sid = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    for text in ("a", "b", "c"):
        client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": text}, headers=auth)
    first, second, third = runs_table(app.config["DB"])
    run_sql(app.config["DB"], "UPDATE webhook_run SET status = 'delivered' WHERE id IN (?, ?)", (first["id"], third["id"]))
    with models.db.connection_context():
        assert notifications.prune(models.now_ms() - 60_000) == 0  # all younger than a minute
        assert notifications.prune(models.now_ms() + 1) == 2
    assert [r["id"] for r in runs_table(app.config["DB"])] == [second["id"]]  # still pending: kept


@pytest.mark.sqlite_only  # SQLite's query plan
def test_the_prune_is_a_range_of_the_primary_key(tmp_path):
    models.init_db(str(tmp_path / "plan.db"))
    models.migrate()
    with sqlite3.connect(tmp_path / "plan.db") as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN DELETE FROM webhook_run WHERE id < ? AND "
                                             "status != 'pending'", (models.first_id_at(5),))]
    models.db.close_all()
    assert plan == ["SEARCH webhook_run USING INDEX sqlite_autoindex_webhook_run_1 (id<?)"], plan


def test_outcomes_survive_a_cycle_that_cannot_write(app, client, auth, monkeypatch):
    """A dispatch cycle that meets a locked database keeps the finished attempts for the next one."""
    add(client, auth, events=["message.created"])
    sid = client.post("/api/sessions", json={}, headers=auth).get_json()["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "x"}, headers=auth)
    [run] = runs_table(app.config["DB"])
    dispatcher = notifications.Dispatcher()
    dispatcher._in_flight = 1
    dispatcher._done.put(("run", {"id": run["id"], "attempts": 0}, 200, 12, None))
    real_run = writer.run

    def locked(*args, **kwargs):
        raise events.Busy()
    monkeypatch.setattr(writer, "run", locked)
    with models.db.connection_context(), pytest.raises(events.Busy):
        dispatcher._cycle()
    monkeypatch.setattr(writer, "run", real_run)
    with models.db.connection_context():
        dispatcher._cycle()
    [run] = runs_table(app.config["DB"])
    assert (run["status"], run["attempts"], run["response_status"], run["duration_ms"]) == ("delivered", 1, 200, 12)
    assert dispatcher._in_flight == 0 and dispatcher._todo.empty()
