"""Usage reports (POST /v1/sessions/:id/usage) and their sums: replace-by-key, pricing from the table
when no cost is sent, the session object's `usage`, GET /api/usage, isolation and bad input."""
import json

import pytest

import models
import prices
from app import create_app
from conftest import assert_refused, database, run_sql

DAY = 86_400_000
T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def new_session(client, auth, tag="s"):
    return client.post("/v1/sessions", json={"tag": tag, "metadata": ""}, headers=auth).json["session"]["id"]


def report(client, auth, sid, **body):
    r = client.post(f"/v1/sessions/{sid}/usage", json=body, headers=auth)
    assert r.status_code == 200, r.json
    return r.json


def usage_of(client, auth, sid):
    return client.get(f"/api/sessions/{sid}", headers=auth).json["usage"]


def test_a_report_replaces_the_previous_one_of_its_key_and_keys_add_up(client, auth):
    sid = new_session(client, auth)
    first = report(client, auth, sid, key="a", tokens={"input": 10, "output": 20}, cost={"total": 1.0})
    assert first["success"] is True and first["cost"] == {"total": 1.0}
    again = report(client, auth, sid, key="a", tokens={"input": 7, "output": 3, "cache_read": 2}, cost={"total": 0.5})
    assert again["reportId"] == first["reportId"] and again["createdAt"] == first["createdAt"]
    assert usage_of(client, auth, sid) == {"input_tokens": 7, "output_tokens": 3, "cache_creation_tokens": 0,
                                           "cache_read_tokens": 2, "cost_usd": 0.5}
    report(client, auth, sid, key="b", tokens={"input": 1, "cache_creation": 4}, cost={"total": 0.25})
    assert usage_of(client, auth, sid) == {"input_tokens": 8, "output_tokens": 3, "cache_creation_tokens": 4,
                                           "cache_read_tokens": 2, "cost_usd": 0.75}
    listed = client.get("/api/sessions", headers=auth).json["items"][0]
    assert listed["usage"]["cost_usd"] == 0.75


@pytest.mark.parametrize("model, expected", [
    ("claude-sonnet-4-5-20250929", 3 + 15 + 3.75 + 0.30),
    ("claude-opus-4-1-20250805", 15 + 75 + 18.75 + 1.50),
    ("claude-opus-4-5-20251101", 5 + 25 + 6.25 + 0.50),  # the longest family in the name wins
    ("claude-haiku-4-5", 1 + 5 + 1.25 + 0.10),
    ("claude-3-5-haiku-20241022", 0.80 + 4 + 1 + 0.08),
    ("gpt-5", 0.0),  # unknown: no price
    (None, 0.0),
])
def test_without_a_cost_the_tokens_are_priced_from_the_table(client, auth, model, expected):
    sid = new_session(client, auth)
    million = 1_000_000
    answer = report(client, auth, sid, key="k", model=model,
                    tokens={"input": million, "output": million, "cache_creation": million, "cache_read": million})
    assert answer["cost"]["total"] == pytest.approx(expected)
    assert usage_of(client, auth, sid)["cost_usd"] == pytest.approx(expected)


def test_a_cost_sent_wins_over_the_table(client, auth):
    sid = new_session(client, auth)
    answer = report(client, auth, sid, key="k", model="claude-opus-4-1", tokens={"output": 1_000_000}, cost={"total": 2})
    assert answer["cost"] == {"total": 2}


def test_a_prices_file_adds_and_overrides_families(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"sonnet": {"input": 1, "output": 2, "cache_write": 0, "cache_read": 0},
                                "Mistral": {"input": 0.5, "output": 0.5, "cache_write": 0, "cache_read": 0}}))
    try:
        create_app({"DB": database(tmp_path / "t.db"), "PRICES_FILE": str(path)})
        assert prices.cost("claude-sonnet-4", 1_000_000, 1_000_000, 0, 0) == 3
        assert prices.cost("mistral-large", 2_000_000, 0, 0, 0) == 1
        assert prices.cost("claude-haiku-4-5", 1_000_000, 0, 0, 0) == 1  # the defaults stay
    finally:
        prices.configure("")
        models.db.close_all()


@pytest.mark.parametrize("content", ["[", '{"x": 1}', '{"sonnet": {"input": 1}}',
                                     '{"sonnet": {"input": -1, "output": 1, "cache_write": 1, "cache_read": 1}}',
                                     '{"sonnet": {"input": "1", "output": 1, "cache_write": 1, "cache_read": 1}}'])
def test_a_bad_prices_file_stops_the_start_with_a_reason(tmp_path, content):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match="SWITCHBOARD_PRICES_FILE"):
        create_app({"DB": database(tmp_path / "t.db"), "PRICES_FILE": str(path)})
    with pytest.raises(SystemExit, match="SWITCHBOARD_PRICES_FILE"):
        create_app({"DB": database(tmp_path / "t.db"), "PRICES_FILE": str(tmp_path / "missing.json")})
    models.db.close_all()


def test_a_report_is_announced_as_update_session_with_the_sums(app, client, auth):
    sid = new_session(client, auth)
    report(client, auth, sid, key="k", tokens={"input": 5}, cost={"total": 0.125})
    [(body,)] = run_sql(app.config["DB"], 'SELECT body FROM "update" ORDER BY seq DESC LIMIT 1')
    body = json.loads(body)
    assert body == {"t": "update-session", "id": sid, "usage": {
        "input_tokens": 5, "output_tokens": 0, "cache_creation_tokens": 0, "cache_read_tokens": 0, "cost_usd": 0.125}}


def test_deleting_a_session_deletes_its_reports(app, client, auth):
    sid = new_session(client, auth)
    report(client, auth, sid, key="k", tokens={"input": 5})
    client.delete(f"/api/sessions/{sid}", headers=auth)
    assert run_sql(app.config["DB"], 'SELECT count(*) FROM "usage_report"') == [(0,)]
    assert client.get("/api/usage", headers=auth).json["items"] == []


def test_a_report_from_the_future_counts_for_now(client, auth):
    sid = new_session(client, auth)
    report(client, auth, sid, key="k", tokens={"input": 5}, time=models.now_ms() + 400 * DAY)
    assert client.get("/api/usage", headers=auth).json["total"]["input_tokens"] == 5


def test_usage_by_day_and_by_session(client, auth):
    a, b = new_session(client, auth, "a"), new_session(client, auth, "b")
    client.patch(f"/api/sessions/{a}", json={"title": "Session A"}, headers=auth)
    report(client, auth, a, key="d1", tokens={"input": 1}, cost={"total": 1}, time=T0)
    report(client, auth, a, key="d2", tokens={"input": 2}, cost={"total": 2}, time=T0 + DAY)
    report(client, auth, b, key="d1", tokens={"output": 4}, cost={"total": 4}, time=T0 + 1000)
    report(client, auth, b, key="old", tokens={"output": 100}, cost={"total": 100}, time=T0 - 10 * DAY)
    window = {"from": "2026-05-28T00:00:00Z", "to": "2026-05-30T00:00:00Z"}
    days = client.get("/api/usage", query_string=window, headers=auth).json
    assert days["from"] == "2026-05-28T00:00:00.000Z" and days["to"] == "2026-05-30T00:00:00.000Z"
    assert days["group"] == "day"
    assert [(d["day"], d["input_tokens"], d["output_tokens"], d["cost_usd"]) for d in days["items"]] == [
        ("2026-05-28", 1, 4, 5), ("2026-05-29", 2, 0, 2)]
    assert days["total"] == {"input_tokens": 3, "output_tokens": 4, "cache_creation_tokens": 0,
                             "cache_read_tokens": 0, "cost_usd": 7}
    sessions = client.get("/api/usage", query_string={**window, "group": "session"}, headers=auth).json
    assert [(s["session_id"], s["title"], s["cost_usd"]) for s in sessions["items"]] == [(b, None, 4), (a, "Session A", 3)]
    top = client.get("/api/usage", query_string={**window, "group": "session", "limit": 1}, headers=auth).json
    assert [s["session_id"] for s in top["items"]] == [b]
    # a window that ends before it starts holds nothing
    empty = client.get("/api/usage", query_string={"from": "2026-05-30T00:00:00Z", "to": "2026-05-28T00:00:00Z"},
                       headers=auth).json
    assert empty["items"] == [] and empty["total"]["input_tokens"] == 0
    # from is inclusive, to exclusive
    edge = client.get("/api/usage", query_string={"from": "2026-05-28T20:26:40Z", "to": "2026-05-28T20:26:41Z"},
                      headers=auth).json
    assert edge["total"]["input_tokens"] == 1 and edge["total"]["output_tokens"] == 0
    edge = client.get("/api/usage", query_string={"from": "2026-05-28T20:26:40.001Z", "to": "2026-05-28T20:26:41.001Z"},
                      headers=auth).json
    assert edge["total"]["input_tokens"] == 0 and edge["total"]["output_tokens"] == 4


def test_usage_is_only_ever_the_callers(app, client, auth, other_auth):
    sid = new_session(client, auth)
    report(client, auth, sid, key="k", tokens={"input": 5}, cost={"total": 1})
    assert client.get("/api/usage", headers=other_auth).json["items"] == []
    assert client.get("/api/usage?group=session", headers=other_auth).json["items"] == []
    assert client.get("/api/usage", headers=other_auth).json["total"]["cost_usd"] == 0
    assert_refused(app, client, "POST", f"/v1/sessions/{sid}/usage", {"key": "k", "tokens": {"input": 9}},
                   other_auth, 404, "Session not found", None)
    assert usage_of(client, auth, sid)["input_tokens"] == 5


GOOD = {"key": "k", "tokens": {"input": 1}}


@pytest.mark.parametrize("body, field", [
    ({}, "key"),
    ({"tokens": {"input": 1}}, "key"),
    ({"key": "k"}, "tokens"),
    ({**GOOD, "key": ""}, "key"),
    ({**GOOD, "key": "k" * 257}, "key"),
    ({**GOOD, "key": 5}, "key"),
    ({**GOOD, "tokens": {"input": -1}}, "tokens"),
    ({**GOOD, "tokens": {"input": "1"}}, "tokens"),
    ({**GOOD, "tokens": {"input": 1.5}}, "tokens"),
    ({**GOOD, "tokens": {"input": True}}, "tokens"),
    ({**GOOD, "tokens": {"input": 10 ** 12 + 1}}, "tokens"),
    ({**GOOD, "cost": {"total": 1e9 + 1}}, "cost"),
    ({**GOOD, "tokens": {"total": 1}}, "tokens"),
    ({**GOOD, "tokens": [1]}, "tokens"),
    ({**GOOD, "cost": {"total": -0.01}}, "cost"),
    ({**GOOD, "cost": {"total": "1"}}, "cost"),
    ({**GOOD, "cost": {"total": True}}, "cost"),
    ({**GOOD, "cost": {}}, "cost"),
    ({**GOOD, "cost": 1}, "cost"),
    ({**GOOD, "cost": None}, "cost"),
    ({**GOOD, "model": 5}, "model"),
    ({**GOOD, "time": "now"}, "time"),
    ({**GOOD, "time": -5}, "time"),
    ({**GOOD, "sessionId": "x"}, "sessionId"),
])
def test_bad_reports_are_refused_and_change_nothing(app, client, auth, body, field):
    sid = new_session(client, auth)
    assert_refused(app, client, "POST", f"/v1/sessions/{sid}/usage", body, auth, 400, "invalid_request", field)


def test_bad_bodies_of_other_kinds_change_nothing(app, client, auth):
    sid = new_session(client, auth)
    path = f"/v1/sessions/{sid}/usage"
    assert_refused(app, client, "POST", path, '{"key": "k", "tokens": {"input": NaN}}', auth, 400, "invalid_request", "tokens")
    assert_refused(app, client, "POST", path, '{"key": ', auth, 400, "invalid_json", None)
    assert_refused(app, client, "POST", path, ("key=k", "application/x-www-form-urlencoded"), auth, 415,
                   "unsupported_media_type", None)
    assert_refused(app, client, "POST", "/v1/sessions/nope/usage", GOOD, auth, 404, "Session not found", None)
    assert_refused(app, client, "POST", path, GOOD, {}, 401, "unauthorized", None)


@pytest.mark.parametrize("query, field", [
    ("group=week", "group"),
    ("from=yesterday", "from"),
    ("to=2026-13-01", "to"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("since=2026-05-01", "since"),
])
def test_bad_usage_queries_are_refused(app, client, auth, query, field):
    assert_refused(app, client, "GET", f"/api/usage?{query}", None, auth, 400, "invalid_request", field)


def test_concurrent_reports_of_one_key_leave_one_report_and_consistent_sums(live_server):
    """Real threads against the real server: 8 threads report the same key and keys of their own at
    once. One report per key survives, and the session's sums are exactly the sum of what survived."""
    import threading

    import requests
    headers = live_server.headers
    sid = requests.post(live_server.url + "/v1/sessions", json={"tag": "race", "metadata": ""}, headers=headers,
                        timeout=10).json()["session"]["id"]
    errors = []

    def reporter(n):
        with requests.Session() as s:
            for i in range(15):
                for key in ("shared", f"own-{n}"):
                    r = s.post(f"{live_server.url}/v1/sessions/{sid}/usage", headers=headers, timeout=10,
                               json={"key": key, "tokens": {"input": n * 100 + i, "output": 1}, "cost": {"total": 0.5}})
                    if r.status_code != 200:
                        errors.append(r.text)

    threads = [threading.Thread(target=reporter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    rows = run_sql(live_server.db_path, 'SELECT key, input_tokens FROM usage_report WHERE session_id = ?', (sid,))
    assert sorted(key for key, _ in rows) == sorted(["shared"] + [f"own-{n}" for n in range(8)])
    assert {key: n for key, n in rows if key != "shared"} == {f"own-{n}": n * 100 + 14 for n in range(8)}
    usage = requests.get(f"{live_server.url}/api/sessions/{sid}", headers=headers, timeout=10).json()["usage"]
    assert usage == {"input_tokens": sum(n for _, n in rows), "output_tokens": 9, "cache_creation_tokens": 0,
                     "cache_read_tokens": 0, "cost_usd": 4.5}
