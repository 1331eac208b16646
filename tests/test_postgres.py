"""The same server on PostgreSQL (SWITCHBOARD_DB=postgresql://...): migrations from empty, the agent and
management contracts, ordered updates and replay, usage by day, and psycopg's waits cooperating with
gevent. Each test gets a fresh database on the test process's private cluster (tests/pgcluster.py)."""
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import psutil
import psycopg
import pytest
import requests
from test_claude_hooks import decision_path, event, next_update, post_hook, waiting_hook

import domain
import events
import models
from app import create_token
from conftest import ROOT, LiveServer, run_sql, snapshot
from pgcluster import require_postgres, shared


@pytest.fixture(scope="module")
def cluster():
    return shared()


@pytest.fixture
def pg_url(cluster):
    return cluster.create_database()


@pytest.fixture
def pg_server(pg_url, tmp_path):
    server = LiveServer(pg_url, log_dir=tmp_path).start()
    yield server
    server.stop()


def _tables():
    return {name for (name,) in models.db.execute_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}


def test_migrations_build_the_schema_from_empty_and_servers_starting_together_migrate_once(pg_url):
    models.init_db(pg_url)
    versions, errors = [], []

    def start():
        try:
            versions.append(models.migrate())
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    latest = len(models.POSTGRES_MIGRATIONS)
    assert sorted(versions) == [0, latest, latest, latest]  # one did the work; the others found it done
    assert models.migrate() == len(models.POSTGRES_MIGRATIONS)
    with models.db.connection_context():
        expected = {m._meta.table_name for m in models.MODELS if m not in (models.MessageSearch, models.SessionSearch)}
        assert _tables() == expected | {"schema_version", "maintenance"}
    models.db.close_all()


def _at_version(version):
    """The connected database as a release at `version` left it: its steps run, its version recorded."""
    for step in models.POSTGRES_MIGRATIONS[:version]:
        for statement in step:
            models.db.execute_sql(statement)
    models.db.execute_sql('CREATE TABLE "schema_version" ("version" INTEGER NOT NULL)')
    models.db.execute_sql('INSERT INTO "schema_version" ("version") VALUES (%s)', (version,))


def test_a_postgresql_database_of_every_earlier_version_migrates_to_the_latest(cluster):
    for version in range(1, len(models.POSTGRES_MIGRATIONS)):
        models.init_db(cluster.create_database())
        with models.db.connection_context():
            _at_version(version)
        assert models.migrate() == version
        with models.db.connection_context():
            assert models.db.execute_sql('SELECT "version" FROM "schema_version"').fetchone() == (len(models.POSTGRES_MIGRATIONS),)
            assert models.db.execute_sql("""SELECT switchboard_cwd('{"cwd": "/w"}'), switchboard_cwd('{')""").fetchone() == ("/w", None)
        models.db.close_all()


def test_the_search_columns_of_a_database_from_before_step_5_are_generated_again(pg_url):
    """Rows stored when PostgreSQL's parser made the words ("axolotl.txt" one word, no accents folded) are
    found by the words FTS5 makes once the migration regenerates the columns, through their indexes."""
    models.init_db(pg_url)
    version = next(i for i, step in enumerate(models.POSTGRES_MIGRATIONS) if "switchboard_search_vector" in step[0])
    with models.db.connection_context():
        _at_version(version)
        models.db.execute_sql("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'a', 0, 0)")
        models.db.execute_sql("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
                              "seq, active, last_active_at, created_at, updated_at) "
                              "VALUES ('s', 1, 'Café <zebra>', '', 0, 0, 1, false, 0, 0, 0)")
        models.db.execute_sql("INSERT INTO message (id, session_id, seq, content, created_at, updated_at) "
                              """VALUES ('m', 's', 1, '"ls: axolotl.txt"', 0, 0)""")
        assert models.search(1, "axolotl") == ([], None)  # PostgreSQL's parser made "axolotl.txt" one word
    assert models.migrate() == version
    with models.db.connection_context():
        assert [hit["message_id"] for hit in models.search(1, "axolotl")[0]] == ["m"]
        assert [hit["title"] for hit in models.search(1, "cafe zebra")[0]] == ["Café <zebra>"]
        models.db.execute_sql("SET enable_seqscan = off")
        plan = models.db.execute_sql("EXPLAIN SELECT id FROM message WHERE search @@ CAST('axolotl' AS tsquery)").fetchall()
        assert "message_search" in str(plan)
    models.db.close_all()


def _two_messages_before(marker, first, second):
    """The connected database at the version just before the step whose SQL mentions `marker`, holding
    messages m1 and m2 with these contents (JSON text) in session s of account 1."""
    version = next(i for i, step in enumerate(models.POSTGRES_MIGRATIONS) if any(marker in q for q in step))
    _at_version(version)
    models.db.execute_sql("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'a', 0, 0)")
    models.db.execute_sql("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
                          "seq, active, last_active_at, created_at, updated_at) VALUES ('s', 1, 't', '', 0, 0, 2, false, 0, 0, 0)")
    models.db.execute_sql("INSERT INTO message (id, session_id, seq, content, created_at, updated_at) "
                          "VALUES ('m1', 's', 1, %s, 0, 0), ('m2', 's', 2, %s, 0, 0)", (first, second))
    return version


def test_rows_from_before_step_6_holding_terminal_escapes_are_found_by_their_words(pg_url):
    """Step 6 (escape sequences are not words) generates again the search column of the rows that hold
    one; the others keep theirs."""
    models.init_db(pg_url)
    coloured = json.dumps({"type": "output", "stream": "stdout", "text": "\x1b[32mPASSED\x1b[0m test_a"})
    with models.db.connection_context():
        version = _two_messages_before("u001b", coloured, '"plain PASSED"')
        assert [hit["message_id"] for hit in models.search(1, "PASSED")[0]] == ["m2"]
        assert [hit["message_id"] for hit in models.search(1, "32mPASSED")[0]] == ["m1"]
    assert models.migrate() == version
    with models.db.connection_context():
        hits = models.search(1, "PASSED")[0]
        assert [hit["message_id"] for hit in hits] == ["m2", "m1"]
        assert "".join(segment["text"] for segment in hits[1]["snippet"]) == "PASSED test_a"
        assert models.search(1, "32mPASSED") == ([], None)
    models.db.close_all()


def test_rows_from_before_step_7_holding_progress_states_are_found_no_more(pg_url):
    """Step 7 (progress states are not found) generates again the search column of the rows that may
    hold one; the finished line stays found."""
    models.init_db(pg_url)
    state = json.dumps({"type": "output", "stream": "stdout", "text": "beluga 40%", "progress": True})
    line = json.dumps({"type": "output", "stream": "stdout", "text": "beluga 40%\rbeluga 100%"})
    with models.db.connection_context():
        version = _two_messages_before('"progress"', state, line)
        assert [hit["message_id"] for hit in models.search(1, "beluga")[0]] == ["m2", "m1"]
    assert models.migrate() == version
    with models.db.connection_context():
        assert [hit["message_id"] for hit in models.search(1, "beluga")[0]] == ["m2"]
    models.db.close_all()


def test_a_newer_postgresql_schema_refuses_to_start(pg_url):
    models.init_db(pg_url)
    models.migrate()
    with models.db.connection_context():
        models.db.execute_sql('UPDATE "schema_version" SET "version" = 99')
    with pytest.raises(models.SchemaTooNew, match="newer than this server"):
        models.migrate()
    models.db.close_all()


def test_the_domain_runs_on_postgresql_with_group_commit_and_gapless_seqs(pg_url):
    models.init_db(pg_url)
    models.migrate()
    with models.db.connection_context():
        create_token(models, account="alice")
        account = models.Account.get(name="alice").id
        session, created = domain.create_session(account, tag="t", metadata="m")
        assert created and domain.create_session(account, tag="t")[0].id == session.id

    def append(n):
        with models.db.connection_context():
            for i in range(25):
                domain.append_messages(account, session.id, [{"content": json.dumps(f"{n}-{i}"), "local_id": f"{n}-{i}"}])
    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with models.db.connection_context():
        seqs = [m.seq for m in models.Message.select(models.Message.seq).order_by(models.Message.seq)]
        assert seqs == list(range(1, 101))
        log = [u.seq for u in models.Update.select(models.Update.seq).order_by(models.Update.seq)]
        assert log == list(range(1, 102))  # new-session, then a new-message each
        again = domain.append_messages(account, session.id, [{"content": '"again"', "local_id": "0-0"}])
        assert len(again) == 1 and again[0]["content"] == '"0-0"' and models.Message.select().count() == 100
        ok, version, _ = domain.compare_and_set(session, "metadata", "m2", 0)
        assert ok and version == 1
        domain.delete_session(session)
        assert models.Message.select().count() == 0
        bodies = [u.body for u in models.Update.select().where(models.Update.session_id == session.id)
                  .order_by(models.Update.seq)]
        assert set(bodies[:-1]) == {'{"t":"redacted"}'} and '"delete-session"' in bodies[-1]
    models.db.close_all()


def test_a_server_on_postgresql_serves_both_contracts_and_streams_updates_in_order(pg_server, ws_connect):
    headers = pg_server.headers
    sid = requests.post(f"{pg_server.url}/v1/sessions", json={"tag": "pg", "metadata": "m"},
                        headers=headers, timeout=5).json()["session"]["id"]
    ws = ws_connect(pg_server, pg_server.token)
    for n in range(20):
        r = requests.post(f"{pg_server.url}/v3/sessions/{sid}/messages",
                          json={"messages": [{"content": n, "localId": f"l{n}"}]}, headers=headers, timeout=5)
        assert r.status_code == 200, r.text
    missing = requests.post(f"{pg_server.url}/v3/sessions/nope/messages", json={"messages": [{"content": 1}]},
                            headers=headers, timeout=5)
    assert missing.status_code == 404  # its transaction rolled back; the writes around it go on
    seqs = [ws.expect("update")["data"]["seq"] for _ in range(20)]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] == 19
    ws.close()
    replay = ws_connect(pg_server, pg_server.token, since=seqs[9], ready=False)
    assert [replay.expect("update")["data"]["seq"] for _ in range(10)] == seqs[10:]
    assert replay.expect("ready")["data"]["seq"] == seqs[-1]
    replay.close()
    page = requests.get(f"{pg_server.url}/api/sessions/{sid}/messages?limit=5", headers=headers, timeout=5).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5] and page["has_more"]
    usage = requests.post(f"{pg_server.url}/v1/sessions/{sid}/usage",
                          json={"key": "k", "tokens": {"input": 10, "output": 20}, "cost": {"total": 0.5}},
                          headers=headers, timeout=5)
    assert usage.status_code == 200, usage.text
    by_day = requests.get(f"{pg_server.url}/api/usage?group=day", headers=headers, timeout=5).json()
    assert by_day["total"]["cost_usd"] == 0.5 and len(by_day["items"]) == 1 and len(by_day["items"][0]["day"]) == 10
    assert requests.delete(f"{pg_server.url}/api/sessions/{sid}", headers=headers, timeout=5).status_code == 204


def test_the_list_filters_and_projects_on_postgresql_answer_as_on_sqlite(pg_server):
    """The project filter reads `cwd` from metadata that may not be JSON (PostgreSQL's step 2)."""
    headers = pg_server.headers
    for tag, metadata in (("a", {"cwd": "/w/one"}), ("b", {"cwd": "/w/two"}), ("c", {"cwd": "/w/one"}),
                          ("d", {"cwd": 7}), ("e", None)):
        requests.post(f"{pg_server.url}/v1/sessions", headers=headers, timeout=5,
                      json={"tag": tag, "metadata": "not json {" if metadata is None else json.dumps(metadata)})
    listed = requests.get(f"{pg_server.url}/api/sessions?limit=10&project=/w/one", headers=headers, timeout=5)
    assert listed.status_code == 200, listed.text
    assert sorted(s["tag"] for s in listed.json()["items"]) == ["a", "c"]
    projects = requests.get(f"{pg_server.url}/api/projects", headers=headers, timeout=5)
    assert projects.status_code == 200, projects.text
    assert sorted((p["directory"], p["sessions"]) for p in projects.json()["items"]) == [("/w/one", 2), ("/w/two", 1)]
    active = requests.get(f"{pg_server.url}/api/sessions?limit=10&active=true&waiting=false", headers=headers, timeout=5)
    assert active.status_code == 200 and len(active.json()["items"]) == 5, active.text


GEVENT_PROBE = """
import sys, time
from gevent import monkey; monkey.patch_all()
import gevent, psycopg.waiting, models
assert psycopg.waiting.wait is not getattr(psycopg.waiting, "wait_c", None), "psycopg waits in C"
models.init_db(sys.argv[1])
ticks = []
def sleep_in_the_database():
    with models.db.connection_context():
        models.db.execute_sql("SELECT pg_sleep(0.5)")
def tick():
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ticks.append(1)
        gevent.sleep(0.01)
gevent.joinall([gevent.spawn(sleep_in_the_database), gevent.spawn(tick)])
print(len(ticks))
"""


def test_psycopg_waits_for_postgresql_cooperatively_under_gevent(pg_url):
    """As in the gunicorn worker (gevent patches before the app imports psycopg): a query the server
    waits on lets every other greenlet run meanwhile."""
    out = subprocess.run([sys.executable, "-c", GEVENT_PROBE, pg_url], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 20  # about 50 ticks of 10 ms while the query slept 500 ms


def test_search_on_postgresql_answers_as_on_sqlite(pg_url):
    """Titles first, then messages, newest first; FTS5's query syntax; snippets as segments; only the
    account's own, nothing from encrypted content or identifying keys; gone with its session."""
    models.init_db(pg_url)
    models.migrate()
    with models.db.connection_context():
        for name in ("alice", "bob"):
            create_token(models, account=name)
        alice, bob = (models.Account.get(name=name).id for name in ("alice", "bob"))
        prod, _ = domain.create_session(alice, title="Disk full on prod")
        other, _ = domain.create_session(alice, title="Other")
        domain.create_session(bob, title="disk")
        domain.append_messages(alice, prod.id, [{"content": json.dumps(c)} for c in (
            "the disk is full again", {"type": "text", "text": "zebra crossing"}, {"t": "encrypted", "c": "disk"},
            [{"type": "tool_use", "id": "diskette", "name": "Bash", "input": {"command": "df -h"}}])])
        domain.append_messages(alice, other.id, [{"content": json.dumps("Disk usage report")}])

        def found(query, **options):
            hits, _ = models.search(alice, query, **options)
            return [(hit["title"], hit["seq"]) for hit in hits]
        assert found("disk") == [("Disk full on prod", None), ("Other", 1), ("Disk full on prod", 1)]
        hits, _ = models.search(alice, "disk")
        assert {"text": "Disk", "match": True} in hits[0]["snippet"]
        assert {"text": "disk", "match": True} in hits[2]["snippet"]
        assert found("zeb*") == [("Disk full on prod", 2)]
        assert found('"disk is full"') == [("Disk full on prod", 1)]
        assert found("zebra OR usage") == [("Other", 1), ("Disk full on prod", 2)]
        assert found("disk NOT usage") == [("Disk full on prod", None), ("Disk full on prod", 1)]
        assert found("(zebra OR usage) AND report") == [("Other", 1)]
        assert found("diskette") == [] and found("encrypted") == []
        assert found("disk", session_id=other.id) == [("Other", 1)]
        pages, cursor = [], None
        while True:
            hits, cursor = models.search(alice, "disk", limit=1, cursor=cursor)
            pages.append([(hit["title"], hit["seq"]) for hit in hits])
            if cursor is None:
                break
        assert pages == [[hit] for hit in found("disk")]
        for bad in ('"unterminated', "OR disk", "disk NOT", "(disk", "disk)", "!!", "(zebra OR usage) report"):
            with pytest.raises(models.BadQuery):
                models.search(alice, bad)
        domain.delete_session(prod)
        assert found("disk") == [("Other", 1)]
    models.db.close_all()


def test_missing_postgresql_binaries_are_a_loud_skip_locally_and_a_failure_in_ci(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_PG_BIN", "/nonexistent")
    monkeypatch.delenv("SWITCHBOARD_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="POSTGRESQL TESTS NOT RUN"):
        require_postgres()
    monkeypatch.setenv("SWITCHBOARD_REQUIRE_POSTGRES", "1")
    with pytest.raises(pytest.fail.Exception, match="does not allow skipping"):
        require_postgres()


# --- many processes on one database ---------------------------------------------------------------

def test_several_workers_are_refused_on_sqlite_with_the_reason(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "serve", "--workers", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SWITCHBOARD_DB": str(tmp_path / "x.db")})
    assert out.returncode != 0
    assert "--workers 2: a SQLite database is served by one process" in out.stderr
    assert "SWITCHBOARD_DB=postgresql://" in out.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.fixture
def two_hosts(pg_url, tmp_path):
    """Two servers (as on two hosts) on one database; the second shares the first's token. The first
    runs two gunicorn workers itself."""
    env = {"SWITCHBOARD_WS_TOKEN_CHECK_SECONDS": "0.2", "SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30"}
    first = LiveServer(pg_url, env, log_dir=tmp_path, args=["--workers", "2"]).start()
    second = LiveServer(pg_url, env, log_dir=tmp_path).start()
    second.token = first.token
    yield first, second
    for server in (first, second):
        server.stop()


def _seqs(ws, last, timeout=60):
    """The seqs of the updates a socket receives until `last` arrives."""
    seqs = []
    deadline = time.monotonic() + timeout
    while not seqs or seqs[-1] < last:
        assert time.monotonic() < deadline, f"stopped at {seqs[-1:]}, waiting for {last}"
        seqs.append(ws.expect("update", timeout=10)["data"]["seq"])
    return seqs


def test_every_process_delivers_every_update_once_in_seq_order(two_hosts, ws_connect):
    """4 writers, two on each server, 10,000 updates (100-message batches); a user-scoped socket on
    each server sees them all, once each, in seq order, without a gap; and replays them from any."""
    first, second = two_hosts
    sid = requests.post(f"{first.url}/v1/sessions", json={"tag": "many", "metadata": ""},
                        headers=first.headers, timeout=5).json()["session"]["id"]
    sockets = [ws_connect(server) for server in (first, second, first)]
    start = sockets[0].ready
    errors = []

    def write(server, n):
        for batch in range(25):
            r = requests.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=30,
                              json={"messages": [{"content": i, "localId": f"{n}.{batch}.{i}"} for i in range(100)]})
            if r.status_code != 200:
                errors.append(r.text)
    writers = [threading.Thread(target=write, args=(server, n)) for n, server in enumerate((first, second) * 2)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(120)
    assert errors == []
    last = start + 10_000
    for ws in sockets:
        assert _seqs(ws, last) == list(range(start + 1, last + 1))
    replay = ws_connect(second, since=start + 5_000, ready=False)
    assert _seqs(replay, last) == list(range(start + 5_001, last + 1))


def test_a_decision_on_one_host_wakes_the_hook_waiting_on_another_within_100_ms(two_hosts):
    first, second = two_hosts
    answers, answered = [], []

    def hook():
        answers.append(post_hook(second, event("PermissionRequest")))
        answered.append(time.monotonic())
    thread = threading.Thread(target=hook)
    thread.start()
    deadline = time.monotonic() + 10
    while not (pending := requests.get(f"{first.url}/api/requests?status=pending", headers=first.headers,
                                       timeout=5).json()["items"]):
        assert time.monotonic() < deadline, "no pending request"
        time.sleep(0.02)
    time.sleep(0.2)  # the hook is waiting now, on the other host
    r = requests.post(first.url + decision_path(pending[0]), json={"decision": "allow"}, headers=first.headers,
                      timeout=5)
    decided = time.monotonic()
    assert r.status_code == 200
    thread.join(10)
    assert answers[0]["hookSpecificOutput"]["decision"] == {"behavior": "allow"}
    assert answered[0] - decided < 0.1


def test_a_revoked_token_closes_its_sockets_on_every_process(two_hosts, ws_connect):
    first, second = two_hosts
    secret = first.new_token("alice")
    sockets = [ws_connect(server, token=secret) for server in (first, second)]
    tokens = subprocess.run([sys.executable, str(ROOT / "app.py"), "list-tokens"], cwd=ROOT, capture_output=True,
                            text=True, check=True, env={**os.environ, "SWITCHBOARD_DB": first.db_path}).stdout
    [token_id] = [line.split()[0] for line in tokens.splitlines() if " alice " in line]
    subprocess.run([sys.executable, str(ROOT / "app.py"), "revoke-token", token_id], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "SWITCHBOARD_DB": first.db_path})
    for ws in sockets:
        assert ws.expect("error", timeout=5)["data"] == {"error": "unauthorized", "message": "Token revoked."}
        assert ws.close_code() == 4401


def test_text_with_a_nul_character_is_refused_with_400_and_changes_nothing(pg_server):
    """PostgreSQL's text cannot hold U+0000 (SQLite's can): a clear refusal, not a 500."""
    before = snapshot(pg_server.db_path)
    for path, body in (("/v1/sessions", {"tag": "a\x00b", "metadata": ""}), ("/api/sessions", {"title": "a\x00b"})):
        r = requests.post(pg_server.url + path, json=body, headers=pg_server.headers, timeout=5)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), r.text
        assert "U+0000" in r.json()["message"]
    assert snapshot(pg_server.db_path) == before
    assert "Traceback" not in pg_server.log()


def test_a_start_expires_no_request_while_another_process_serves_the_database(pg_url, tmp_path):
    """The hook waiting on the first process still has its request pending when a second one starts
    (alone, a starting process expires what a dead one left: test_claude_hooks.py)."""
    first = LiveServer(pg_url, {"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30"}, log_dir=tmp_path).start()
    second = None
    try:
        thread, answers, request = waiting_hook(first, event("PermissionRequest"))
        second = LiveServer(pg_url, log_dir=tmp_path).start()
        second.token = first.token
        [listed] = requests.get(f"{second.url}/api/requests", headers=second.headers, timeout=5).json()["items"]
        assert (listed["id"], listed["status"]) == (request["id"], "pending")
        r = requests.post(f"{second.url}{decision_path(request)}", json={"decision": "allow"}, headers=second.headers,
                          timeout=5)
        assert r.status_code == 200, r.text
        thread.join(10)
        assert answers and answers[0]["hookSpecificOutput"]["decision"]["behavior"] == "allow"
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()


def test_a_follower_is_listening_in_its_process_name_when_start_returns(pg_url):
    """The process is seen alive before it serves anything (no request its hook opens can look like a
    dead process's to another's maintenance): start() returns connected, or raises."""
    missing = pg_url.replace(urllib.parse.urlsplit(pg_url).path, "/no_such_database")
    script = ("import sys, events, models\n"
              "models.init_db(sys.argv[1])\n"
              "models.db.connect()\n"
              "try:\n"
              "    events.Follower(events.hub).start(sys.argv[2], 'p0')\n"
              "except Exception as e:\n"
              "    print(type(e).__name__)\n"
              "events.follower.start(sys.argv[1], 'p1')\n"
              "print(models.db.execute(events.follower.SERVING).fetchall())\n")
    out = subprocess.run([sys.executable, "-c", script, pg_url, missing], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.split("\n") == ["OperationalError", "[('p1',)]", ""], out.stderr


def _gone(pg_url, name):
    """Wait until no connection named `name` is open (a closed connection's backend ends just after)."""
    deadline = time.monotonic() + 5
    while run_sql(pg_url, "SELECT 1 FROM pg_stat_activity WHERE application_name = ?", (name,)):
        assert time.monotonic() < deadline, f"{name} still connected"
        time.sleep(0.02)


def test_a_pending_request_expires_once_the_process_named_its_waiter_stops_listening(pg_url):
    """A request is alive while its waiter's listener is connected; one without a waiter (opened by a
    version that kept none) while a listener of such a version (named without an id) is."""
    models.init_db(pg_url)
    models.migrate()
    with models.db.connection_context():
        create_token(models)
        account = models.Account.get(name="default").id
        session, _ = domain.create_session(account, tag="t", metadata="")
    run_sql(pg_url, 'INSERT INTO "request" ("id", "account_id", "session_id", "key", "kind", "status", "created_at", '
            '"waiter") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            many=[(f"r{i}", account, session.id, f"k{i}", "permission", "pending", 1, waiter)
                  for i, waiter in enumerate(("p1", "p2", None))])
    names = ("switchboard-follower p1", "switchboard-follower p2", "switchboard-follower")
    listeners = {name: psycopg.connect(pg_url, application_name=name, autocommit=True) for name in names}
    domain.waiters.configure(alive=events.follower.SERVING)

    def expire():
        with models.db.connection_context():
            domain.expire_leftovers()
        return dict(run_sql(pg_url, 'SELECT "id", "status" FROM "request"'))
    try:
        assert expire() == {"r0": "pending", "r1": "pending", "r2": "pending"}
        listeners.pop(names[0]).close()
        _gone(pg_url, names[0])
        assert expire() == {"r0": "expired", "r1": "pending", "r2": "pending"}
        listeners.pop(names[2]).close()
        _gone(pg_url, names[2])
        assert expire() == {"r0": "expired", "r1": "pending", "r2": "expired"}
    finally:
        for listener in listeners.values():
            listener.close()
        domain.waiters.configure()
        models.db.close_all()


def _waiting_on(server, command, answers):
    """A PermissionRequest for `command` posted through `server` in a thread (its answer appended to
    `answers`; a server killed under it answers nothing); returns its request once pending there."""
    body = event("PermissionRequest", tool_input={"command": command})

    def post():
        try:
            answers.append(post_hook(server, body))
        except requests.ConnectionError:
            pass
    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        pending = requests.get(f"{server.url}/api/requests?status=pending", headers=server.headers, timeout=5).json()
        found = [r for r in pending["items"] if r["input"]["command"] == command]
        if found:
            return thread, found[0]
        assert time.monotonic() < deadline, "no pending request"
        time.sleep(0.02)


def _waiter(server, request):
    return run_sql(server.db_path, 'SELECT "waiter" FROM "request" WHERE "id" = ?', (request["id"],))[0][0]


def test_what_a_killed_process_waited_on_expires_within_a_maintenance_interval_while_another_serves(
        pg_url, tmp_path, ws_connect):
    """Two servers on one database, the runner every 0.5 s. Hooks wait through the first and through the
    second, and a hook first waiting through the first is repeated through the second (it takes the
    request over). The first is killed: its request expires, and a browser on the second sees it; the
    second's requests stay pending, and are decided."""
    interval = 0.5
    env = {"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "60", "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": str(interval)}
    first = LiveServer(pg_url, env, log_dir=tmp_path).start()
    second = LiveServer(pg_url, env, log_dir=tmp_path).start()
    second.token = first.token
    try:
        first_answers, second_answers = [], []
        _, abandoned = _waiting_on(first, "rm -rf build", first_answers)
        kept_thread, kept = _waiting_on(second, "make test", second_answers)
        _, moved = _waiting_on(first, "make deploy", first_answers)
        first_id = _waiter(first, moved)
        assert _waiter(first, abandoned) == first_id != _waiter(second, kept)
        moved_thread, again = _waiting_on(second, "make deploy", second_answers)
        assert again["id"] == moved["id"]  # the repeated hook found its request
        deadline = time.monotonic() + 10
        while _waiter(second, moved) == first_id:  # taken over by the second (set as its wait began)
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ws = ws_connect(second)
        for process in psutil.Process(first.proc.pid).children(recursive=True) + [psutil.Process(first.proc.pid)]:
            process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while (body := next_update(ws))["t"] != "update-request":
            assert time.monotonic() - killed < 10
        # The second's runner finds the first gone at its next turn: within an interval, or two when the
        # first had just taken the interval's turn (claim_maintenance).
        assert time.monotonic() - killed < 2 * interval + 1
        assert (body["request"]["id"], body["request"]["status"]) == (abandoned["id"], "expired")
        [ran_at] = run_sql(second.db_path, 'SELECT "ran_at" FROM "maintenance"')[0]
        deadline = time.monotonic() + 10
        while run_sql(second.db_path, 'SELECT "ran_at" FROM "maintenance"')[0][0] < ran_at + 2 * interval * 900:
            assert time.monotonic() < deadline, "the runner stopped"
            time.sleep(0.05)
        statuses = {r["id"]: r["status"] for r in requests.get(f"{second.url}/api/requests", headers=second.headers,
                                                                timeout=5).json()["items"]}
        assert statuses == {abandoned["id"]: "expired", kept["id"]: "pending", moved["id"]: "pending"}
        for request in (kept, moved):
            r = requests.post(second.url + decision_path(request), json={"decision": "allow"}, headers=second.headers,
                              timeout=5)
            assert r.status_code == 200, r.text
        kept_thread.join(10)
        moved_thread.join(10)
        assert [a["hookSpecificOutput"]["decision"] for a in second_answers] == [{"behavior": "allow"}] * 2
        assert first_answers == []
    finally:
        for server in (first, second):
            server.stop()


def test_maintenance_runs_once_per_interval_whatever_the_number_of_processes(pg_url, tmp_path):
    """Three processes (two hosts, one with two workers) with a 0.5 s interval, watched for 4 s: about
    8 runs in all, not 8 per process."""
    env = {"SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.5"}
    servers = [LiveServer(pg_url, env, log_dir=tmp_path, args=["--workers", "2"]).start(),
               LiveServer(pg_url, env, log_dir=tmp_path).start()]
    models.init_db(pg_url)
    runs = set()
    try:
        with models.db.connection_context():
            end = time.monotonic() + 4
            while time.monotonic() < end:
                runs.add(models.db.execute_sql('SELECT "ran_at" FROM "maintenance"').fetchone()[0])
                time.sleep(0.02)
    finally:
        models.db.close_all()
        for server in servers:
            server.stop()
    assert 4 <= len(runs) <= 4 / 0.45 + 1, sorted(runs)
    gaps = [b - a for a, b in itertools.pairwise(sorted(runs - {0}))]
    assert min(gaps) >= 450, gaps


def test_killing_one_process_mid_stream_loses_nothing_it_acknowledged(two_hosts, ws_connect):
    first, second = two_hosts
    sid = requests.post(f"{second.url}/v1/sessions", json={"tag": "kill", "metadata": ""},
                        headers=second.headers, timeout=5).json()["session"]["id"]
    watcher = ws_connect(second)
    acknowledged = []

    def write():
        for n in range(2000):
            try:
                r = requests.post(f"{first.url}/v3/sessions/{sid}/messages", headers=first.headers, timeout=5,
                                  json={"messages": [{"content": n, "localId": str(n)}]})
            except requests.RequestException:
                return
            if r.status_code == 200:
                acknowledged.append(r.json()["messages"][0]["seq"])
    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 50:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for process in psutil.Process(first.proc.pid).children(recursive=True) + [psutil.Process(first.proc.pid)]:
        process.send_signal(signal.SIGKILL)
    writer.join(30)
    assert len(acknowledged) < 2000  # killed mid-stream
    messages = requests.get(f"{second.url}/v3/sessions/{sid}/messages?limit=500", headers=second.headers,
                            timeout=5).json()["messages"]
    stored = {m["seq"] for m in messages}
    while len(messages) == 500:
        after = messages[-1]["seq"]
        messages = requests.get(f"{second.url}/v3/sessions/{sid}/messages?limit=500&after_seq={after}",
                                headers=second.headers, timeout=5).json()["messages"]
        stored |= {m["seq"] for m in messages}
    assert set(acknowledged) <= stored
    seen = [u["data"]["body"]["message"]["seq"] for u in _updates(watcher, len(stored))]
    assert set(acknowledged) <= set(seen)


def _updates(ws, count, timeout=30):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            frame = ws.expect("update", timeout=2)
        except Exception:
            break
        if frame["data"]["body"]["t"] == "new-message":
            got.append(frame)
    return got
