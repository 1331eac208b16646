"""The same server on PostgreSQL (SWITCHBOARD_DB=postgresql://...): migrations from empty, the agent and
management contracts, ordered updates and replay, usage by day, and psycopg's waits cooperating with
gevent. Each test gets a fresh database on a private cluster (tests/pgcluster.py) started once."""
import json
import subprocess
import sys
import threading

import pytest
import requests

import domain
import models
from app import create_token
from conftest import ROOT, LiveServer
from pgcluster import Cluster, require_postgres


@pytest.fixture(scope="module")
def cluster():
    require_postgres()
    started = Cluster().start()
    yield started
    started.stop()


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
    assert sorted(versions) == [0, 1, 1, 1]  # one did the work; the others found it done
    assert models.migrate() == len(models.POSTGRES_MIGRATIONS)
    with models.db.connection_context():
        expected = {m._meta.table_name for m in models.MODELS if m not in (models.MessageSearch, models.SessionSearch)}
        assert _tables() == expected | {"schema_version"}
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
        assert found("(zebra OR usage) report") == [("Other", 1)]
        assert found("diskette") == [] and found("encrypted") == []
        assert found("disk", session_id=other.id) == [("Other", 1)]
        pages, cursor = [], None
        while True:
            hits, cursor = models.search(alice, "disk", limit=1, cursor=cursor)
            pages.append([(hit["title"], hit["seq"]) for hit in hits])
            if cursor is None:
                break
        assert pages == [[hit] for hit in found("disk")]
        for bad in ('"unterminated', "OR disk", "disk NOT", "(disk", "disk)", "!!"):
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
