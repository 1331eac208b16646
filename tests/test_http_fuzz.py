"""Fuzzing the HTTP contract: schemathesis reads GET /openapi.json and sends every operation requests
made from it, valid and invalid ones, with a valid token, to a real server. No answer may be a 5xx,
every answer must be documented (status code, content type, body schema), valid requests must be
accepted and invalid ones refused.

Two sources of cases per operation: schemathesis's coverage cases (boundaries, missing and unknown
fields, wrong types and content types, no token, undeclared methods; a fixed list) and a fixed number of
generated ones per mode (positive, negative), derandomized. Generated session ids would only ever meet
the documented 404, so most cases use one of a few real sessions, and the code behind the lookup runs.
bench/fuzz_http.py runs the same with more generated examples and prints the table.
"""
import itertools
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import allow_header_conformance
from test_agent_bad_input import snapshot

from conftest import ON_POSTGRES
from schemas import MAX_TEXT_CHARS, http_url, parse_iso

# Generated examples per operation and mode in the suite (bench/fuzz_http.py runs more): with the
# coverage cases, about a thousand requests, which a loaded machine sends in seconds.
EXAMPLES = 10
# Deleting every session runs last, so the sessions the other operations use live until then.
LAST = "DELETE /api/sessions"
# OPTIONS here answers Allow: GET, PATCH, DELETE besides POST: werkzeug routes those methods to
# /api/sessions/<session_id>, where "import" is an id like any other (404). Both paths are documented.
OVERLAPPING = "/api/sessions/import"


@dataclass
class Row:
    operation: str
    source: str  # coverage, positive or negative
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)


class Sessions:
    """Real sessions of the token's account that cases use instead of their generated id: an agent's
    (messages with localIds, metadata, agent state, a key) and a browser's (a title, a system prompt,
    chat messages with roles and metadata). A delete gets a new session of its own each time."""

    def __init__(self, http, url, headers):
        self.http, self.url, self.headers, self.tags = http, url, headers, itertools.count()
        agent = self.agent()
        self._send("POST", f"/v3/sessions/{agent}/messages", {"messages": [
            {"content": {"t": "encrypted", "c": "QUJD"}, "localId": "l1"}, {"content": "text"},
            {"content": [1, None, {"deep": [True]}], "localId": "l2"}, {"content": 7.5}]})
        self._send("POST", f"/v1/sessions/{agent}/alive", {"thinking": True})
        chat = self._send("POST", "/api/sessions", {"title": "Fuzzed chat"})["id"]
        self._send("PATCH", f"/api/sessions/{chat}/system-prompt", {"system_prompt": "Be brief."})
        for role, content, metadata in [("user", "Hello", None), ("assistant", "Hi! 🚀", {"model": "m", "n": 1}),
                                        ("tool", {"result": [1, 2]}, {})]:
            self._send("POST", f"/api/sessions/{chat}/messages",
                       {"role": role, "content": content, "metadata": metadata})
        self.shared = [agent, chat]

    def _send(self, method, path, body):
        r = self.http.request(method, self.url + path, json=body, headers=self.headers)
        r.raise_for_status()
        return r.json()

    def agent(self):
        return self._send("POST", "/v1/sessions", {"tag": f"fuzz-{next(self.tags)}", "metadata": "m",
                                                   "agentState": "s", "dataEncryptionKey": "a2V5"})["session"]["id"]

    def use(self, case, choice):
        """Give the case a real session (choice 0 or 1), or leave it its generated id (None, or when the
        id is what a negative case gets wrong)."""
        if case.meta.generation.mode.is_negative and case.meta.is_negative_at(ParameterLocation.PATH):
            return
        if choice is not None and "session_id" in (case.path_parameters or {}):
            case.path_parameters["session_id"] = self.agent() if case.method == "DELETE" else self.shared[choice]


def expressible(case):
    """Whether a valid case also meets the rules the document can state in words only (OpenAPI 3.0 has
    no keyword for them): after_seq and before_seq exclude each other, and so do before_seq and a long-poll
    wait; an imported or appended message with a role
    has text of 1..MAX_TEXT_CHARS characters; no two imported messages share a local_id; timestamps are
    instants of the years 1 to 9999 UTC; a webhook's or push endpoint's URL has a valid host; a search
    query is one FTS5 parses; on PostgreSQL, no text holds U+0000 (refused with 400 there: test_postgres.py)."""
    query = case.query or {}
    if ON_POSTGRES and "\\u0000" in json.dumps([case.body, query], default=str):
        return False
    if case.operation.path == "/api/search" and isinstance(query.get("q"), str) and not fts5_parses(query["q"]):
        return False
    if "after_seq" in query and "before_seq" in query:
        return False
    if case.operation.path in ("/api/webhooks", "/api/push/subscriptions") and isinstance(case.body, dict):
        try:
            for url in (case.body.get("url"), case.body.get("endpoint")):
                if isinstance(url, str) and case.method == "POST":
                    http_url(url)
        except ValidationError:
            return False
    if "before_seq" in query and query.get("wait"):
        return False
    if case.operation.path == "/v3/sessions/{session_id}/messages" and isinstance(case.body, dict):
        messages = case.body.get("messages")
        for message in messages if isinstance(messages, list) else []:
            if (isinstance(message, dict) and message.get("role") is not None and isinstance(message.get("content"), str)
                    and not 1 <= len(message["content"]) <= MAX_TEXT_CHARS):
                return False
    if case.operation.path == "/api/usage":
        try:
            [parse_iso(query[name]) for name in ("from", "to") if isinstance(query.get(name), str)]
        except (ValueError, OverflowError):
            return False
    if case.operation.path != "/api/sessions/import" or not isinstance(case.body, dict):
        return True
    session = case.body.get("session") or {}
    messages = case.body.get("messages", [])
    local_ids = [message["local_id"] for message in messages if message.get("local_id") is not None]
    if len(set(local_ids)) < len(local_ids):
        return False
    stamps = [case.body.get("exported_at"), session.get("created_at"), session.get("updated_at")]
    for message in messages:
        text = message.get("content")
        if message.get("role") is not None and isinstance(text, str) and not 1 <= len(text) <= MAX_TEXT_CHARS:
            return False
        stamps.append(message.get("created_at"))
    try:
        [parse_iso(stamp) for stamp in stamps if stamp is not None]
    except (ValueError, OverflowError):
        return False
    return True


def fts5_parses(q):
    """Whether both search indexes (columns `text` and `title`) accept `q` as a query."""
    db = sqlite3.connect(":memory:")
    try:
        for name, column in (("message_search", "text"), ("session_search", "title")):
            db.execute(f"CREATE VIRTUAL TABLE {name} USING fts5({column})")
            db.execute(f"SELECT * FROM {name} WHERE {name} MATCH ?", (q,)).fetchall()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


# A generated push key is almost never a point on P-256 (a rule the document says in words): valid cases
# that have one send this real one instead, so the code behind the check runs.
A_P256_POINT = ("BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM")


def send(http, sessions, row, case, choice):
    # Coverage cases carry a placeholder token (or, to test the 401, none): one that has a token sends ours.
    if "Authorization" in (case.headers or {}):
        case.headers["Authorization"] = sessions.headers["Authorization"]
    sessions.use(case, choice)
    keys = case.body.get("keys") if isinstance(case.body, dict) else None
    if not case.meta.generation.mode.is_negative and isinstance(keys, dict) and isinstance(keys.get("p256dh"), str):
        keys["p256dh"] = A_P256_POINT
    wait = (case.query or {}).get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0.1 < wait <= 60:
        case.query["wait"] = 0.1  # a valid long-poll may wait a minute; tests/test_longpoll.py covers waiting
    row.cases += 1
    try:
        response = case.call(session=http)
        row.statuses[response.status_code] += 1
        overlapping = case.method == "OPTIONS" and case.operation.path == OVERLAPPING
        case.validate_response(response, excluded_checks=[allow_header_conformance] if overlapping else None)
    except FailureGroup as group:
        row.failures.extend(f"{f.title}: {f.message}\n{case.as_curl_command()}\n-> {response.text[:500]}"
                            for f in group.exceptions)
    except requests.RequestException as e:
        row.failures.append(f"{type(e).__name__}: {e}\n{case.as_curl_command()}")


def cover(http, sessions, schema, operation):
    row = Row(operation.label, "coverage")
    config = schema.config.generation_for(operation=operation, phase="coverage")
    choices = itertools.cycle([0, 1, None])
    for case in schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode), generation_config=config):
        if case.meta.generation.mode.is_negative or expressible(case):
            send(http, sessions, row, case, next(choices))
    return row


def generate(http, sessions, operation, mode, examples, seed):
    row = Row(operation.label, mode.value)

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), choice=st.sampled_from([0, 1, None]))
    @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case, choice):
        hypothesis.assume(mode.is_negative or expressible(case))
        send(http, sessions, row, case, choice)
    (run if seed is None else hypothesis.seed(seed)(run))()
    return row


def fuzz(server, examples, seed=None):
    """Every operation of the server's document: its coverage cases, then `examples` generated cases per
    mode (negative ones only where there is a query string or a body to get wrong), the same ones on
    every run unless a seed picks others. Returns the Rows."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", headers=server.headers)
    schema.config.update(base_url=server.url, headers=server.headers)
    # A request line over gunicorn's limit is refused too (a documented 414, see routes.build_spec).
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "414"]
    http = requests.Session()
    sessions = Sessions(http, server.url, server.headers)
    rows = []
    for operation in sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.label == LAST):
        rows.append(cover(http, sessions, schema, operation))
        modes = list(GenerationMode) if len(operation.query) or len(operation.body) else [GenerationMode.POSITIVE]
        rows.extend(generate(http, sessions, operation, mode, examples, seed) for mode in modes)
    return rows


def test_every_operation_answers_as_documented(live_server):
    rows = fuzz(live_server, EXAMPLES)
    failures = [f"{row.operation} ({row.source}): {failure}" for row in rows for failure in row.failures]
    assert not failures, f"{len(failures)} failures, the first ones:\n\n" + "\n\n".join(failures[:5])
    assert "unhandled error" not in live_server.log()  # nor in a streamed body, after its 200


# --- what the fuzzing found, pinned down -------------------------------------------------------

@pytest.mark.parametrize("stamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T22:00:00-05:00"])
def test_an_instant_outside_the_years_1_to_9999_utc_is_refused_and_changes_nothing(app, client, auth, stamp):
    """Once stored, such a created_at made every read of its session a 500 (no ISO 8601 text for it)."""
    before = snapshot(app.config["DB"])
    for document in [{"version": 1, "session": {"created_at": stamp}, "messages": []},
                     {"version": 1, "session": {}, "messages": [{"content": 1, "created_at": stamp}]}]:
        r = client.post("/api/sessions/import", json=document, headers=auth)
        assert r.status_code == 400 and "created_at" in json.dumps(r.get_json()["errors"])
    assert snapshot(app.config["DB"]) == before


@pytest.mark.parametrize("stamp, utc", [
    ("0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00.000Z"), ("1969-12-31T23:59:59.999Z", None),
    ("2250-06-15T12:34:56.123Z", None), ("9999-12-31T18:59:59.999-05:00", "9999-12-31T23:59:59.999Z")])
def test_imported_instants_come_back_exactly_in_the_export(client, auth, stamp, utc):
    """Dumped through a float, some instants after the year 2109 came back a millisecond early."""
    document = {"version": 1, "session": {"created_at": stamp}, "messages": [{"content": 1, "created_at": stamp}]}
    r = client.post("/api/sessions/import", json=document, headers=auth)
    assert r.status_code == 201 and r.get_json()["session"]["created_at"] == (utc or stamp)
    exported = client.get(f"/api/sessions/{r.get_json()['session']['id']}/export", headers=auth).get_json()
    assert exported["session"]["created_at"] == exported["messages"][0]["created_at"] == (utc or stamp)
