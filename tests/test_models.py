"""The SQLite file itself: pragmas on every pooled connection, cascades, migrations and the schema
version, time-ordered ids, and tokens kept only as hashes."""
import sqlite3
import threading
from pathlib import Path

import pytest
from peewee import IntegrityError

import domain
import models
from app import create_app, create_token
from conftest import ON_POSTGRES, file_at_version, run_sql
from events import update_log, writer
from events.updatelog import ALLOCATE


@pytest.mark.sqlite_only  # SQLite's pragmas
def test_every_pooled_connection_has_the_pragmas(app):
    """Threads holding connections at once get distinct pooled connections; each is configured."""
    barrier = threading.Barrier(4)
    seen = []

    def check():
        with models.db.connection_context():
            barrier.wait()  # all four hold a connection now
            seen.append((id(models.db.connection()),
                         models.db.execute_sql("PRAGMA journal_mode").fetchone()[0],
                         models.db.execute_sql("PRAGMA foreign_keys").fetchone()[0],
                         models.db.execute_sql("PRAGMA synchronous").fetchone()[0],
                         models.db.execute_sql("PRAGMA busy_timeout").fetchone()[0]))
            barrier.wait()
    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({conn for conn, *_ in seen}) == 4
    assert {tuple(pragmas) for _, *pragmas in seen} == {("wal", 1, 1, models.PRAGMAS["busy_timeout"])}


def test_connections_return_to_the_pool_and_the_wal_stays(app, client):
    """Closing the last connection would checkpoint and delete the WAL on every request."""
    client.get("/health")
    client.get("/health")
    assert models.db._in_use == {} and len(models.db._connections) == 1
    assert ON_POSTGRES or Path(app.config["DB"] + "-wal").exists()


def _seed(account="alice"):
    with models.db.connection_context():
        create_token(models, account=account)
        account_id = models.Account.get(name=account).id
        session, _ = domain.create_session(account_id, tag="t", metadata="m")
        domain.append_messages(session.account_id, session.id, [{"content": '"a"', "local_id": "x"}, {"content": '"b"'}])
        return account_id, session


def _count(db, table, where="1 = 1"):
    [(count,)] = run_sql(db, f'SELECT count(*) FROM "{table}" WHERE {where}')
    return count


def test_deleting_an_account_cascades_to_everything_it_owns(app):
    alice, _ = _seed("alice")
    bob, _ = _seed("bob")
    with models.db.connection_context():
        writer.run(None, lambda changes: models.Account.delete().where(models.Account.id == alice).execute())
    path = app.config["DB"]
    for table in ("token", "session", "update"):
        assert _count(path, table, f"account_id = {alice}") == 0
        assert _count(path, table, f"account_id = {bob}") > 0
    assert _count(path, "message") == 2  # bob's


def test_deleting_a_session_row_cascades_to_its_messages(app):
    _, session = _seed()
    assert _count(app.config["DB"], "message") == 2
    with models.db.connection_context():
        writer.run(None, lambda changes: models.Session.delete().where(models.Session.id == session.id).execute())
    assert _count(app.config["DB"], "message") == 0


def test_foreign_keys_are_enforced(app):
    with models.db.connection_context(), pytest.raises(IntegrityError):
        writer.run(None, lambda changes: models.Message.insert(id=models.new_id(), session="missing", seq=1,
                                                               content="1", created_at=1, updated_at=1).execute())


def _schema(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


@pytest.mark.sqlite_only  # SQLite's MIGRATIONS (PostgreSQL's: test_postgres.py)
def test_the_migrations_build_exactly_the_models_schema(tmp_path):
    models.init_db(str(tmp_path / "migrated.db"))
    models.migrate()
    models.db.close_all()
    models.init_db(str(tmp_path / "modelled.db"))
    with models.db.connection_context():
        models.db.create_tables(models.MODELS)
    models.db.close_all()
    assert _schema(tmp_path / "migrated.db") == _schema(tmp_path / "modelled.db")
    assert len(_schema(tmp_path / "migrated.db")) > len(models.MODELS)
    # FTS5's options live in rows of the index's own table, not in the schema
    settings = [_fts_settings(tmp_path / name) for name in ("migrated.db", "modelled.db")]
    assert settings[0] == settings[1] == {"message_search": {"automerge": 16, "crisismerge": 64}, "session_search": {}}


def _fts_settings(path):
    with sqlite3.connect(path) as conn:
        return {table: dict(conn.execute(f'SELECT k, v FROM "{table}_config" WHERE k != \'version\''))
                for table in ("message_search", "session_search")}


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
def test_a_version_0_file_is_migrated_and_a_second_start_keeps_the_data(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()  # an empty file: user_version 0, no tables
    create_app({"DB": str(path)})
    _seed()
    models.db.close_all()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == models.SCHEMA_VERSION
    create_app({"DB": str(path)})  # already current: nothing to do, nothing lost
    models.db.close_all()
    assert _count(path, "message") == 2 and _count(path, "session") == 1


@pytest.mark.sqlite_only  # SQLite's user_version (PostgreSQL's: test_postgres.py)
def test_a_newer_schema_refuses_to_start_and_is_left_alone(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {models.SCHEMA_VERSION + 1}")
    with pytest.raises(models.SchemaTooNew, match="newer than this server"):
        create_app({"DB": str(path)})
    models.db.close_all()
    assert _schema(path) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == models.SCHEMA_VERSION + 1


def test_session_ids_sort_in_creation_order(app):
    """Many sessions within the same milliseconds: sorting the ids still gives creation order."""
    with models.db.connection_context():
        create_token(models, account="alice")
        account_id = models.Account.get(name="alice").id
        ids = [domain.create_session(account_id, tag=f"t{i}")[0].id for i in range(300)]
    assert sorted(ids) == ids
    assert all(len(i) == 26 and i.isalnum() and i == i.lower() for i in ids)


def test_new_ids_are_unique_and_ordered_across_threads():
    made = []

    def make():
        made.append([models.new_id() for _ in range(1000)] + models.new_ids(1000))
    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(sum(made, []))) == 8000
    assert all(sorted(ids) == ids for ids in made)


def _id_number(text):
    number = 0
    for character in text:
        number = number * 32 + "0123456789abcdefghjkmnpqrstvwxyz".index(character)
    return number


def test_ids_made_many_at_a_time_are_their_numbers_written_out(monkeypatch):
    """An id's last 9 characters are written anew for each id of a call and the rest only when a step
    carries into them: ids across such a carry, and the milliseconds in the first 48 bits."""
    last = ((models.now_ms() + 60_000) << 80) | ((1 << 45) * 7 - 3)  # ahead of the clock: steps from it
    monkeypatch.setattr(models, "_last_id", last)
    ids = models.new_ids(200) + models.new_ids(1)
    numbers = [_id_number(i) for i in ids]
    assert all(len(i) == 26 for i in ids) and sorted(ids) == ids and len(set(ids)) == len(ids)
    assert numbers == sorted(numbers) and numbers[0] > last
    assert len({n >> 45 for n in numbers[:200]}) > 1  # steps of 40 bits carried into the 46th
    assert all(models.first_id_at(n >> 80) <= i < models.first_id_at((n >> 80) + 1) for n, i in zip(numbers, ids))
    assert [models._encode(n) for n in numbers] == ids


def test_tokens_are_stored_only_as_sha256_hashes(app):
    with models.db.connection_context():
        secret = create_token(models, account="alice")
    models.db.close_all()  # checkpoint: every byte written is in the main file (and the WAL, if any)
    if not ON_POSTGRES:  # the SQLite file's bytes
        stored = b"".join(p.read_bytes() for p in Path(app.config["DB"]).parent.glob("test.db*"))
        assert secret.encode() not in stored
        assert models.hash_secret(secret).encode() in stored
    assert secret not in repr(run_sql(app.config["DB"], "SELECT * FROM token"))
    assert run_sql(app.config["DB"], "SELECT secret_hash FROM token") == [(models.hash_secret(secret),)]


# The reads and writes each request runs, as the code runs them: Peewee queries are rendered by the
# functions the views and the writer call; hand-written statements are the very strings they execute.
HOT_QUERIES = {
    "v1 list": lambda: models.sessions_by_update(1, 150),
    "management first page": lambda: models.sessions_by_update(1, 101),
    "management next page": lambda: models.sessions_by_update(1, 101, (5, "x")),
    "management full list": lambda: models.sessions_by_update(1, columns=(models.Session.id,)),
    "v2 page": lambda: models.sessions_by_id(1, 51, "x"),
    "v2 page changed since": lambda: models.sessions_by_id(1, 51, "x", 5),
    "v2 active": lambda: models.active_sessions(1, 5, 150),
    "tag lookup": lambda: models.Session.select().where((models.Session.account == 1) & (models.Session.tag == "t")),
    "v1 messages": lambda: models.newest_messages("s", 150),
    "messages before": lambda: models.message_range("s", 101, before_seq=9),
    "messages after": lambda: models.message_range("s", 101, after_seq=9),
    "localId lookup": lambda: models.known_messages(2)("s", 1, "a", "b"),
    "session lookup": lambda: models.FIND_SESSION("s", 1),
    "message seqs": lambda: models.TAKE_MESSAGE_SEQS(1, 2, "s", 1),
    "replay page": lambda: update_log.page(1, 5, 10, 500),
    "log start": lambda: (models.Update.select(models.Update.seq).where(models.Update.account == 1)
                          .order_by(models.Update.seq).limit(1)),
    "seqs and counters": lambda: ALLOCATE(1, 0, 0, 1),
    "prune": lambda: update_log.prune(1, 5),
    "redact a deleted session's updates": lambda: update_log.redact_session("s"),
    "redact a step of delete-all": lambda: update_log.redact_range(1, 0, 5000),
    "token": lambda: models.FIND_TOKEN("h"),
    "any queued messages": lambda: models.QUEUED("s"),
    "deliver queued messages": lambda: models.DELIVER(1, "s"),
    "claude tag lookup": lambda: models.FIND_TAGGED(1, "claude:x"),
    "session bytes": lambda: models.session_bytes("s"),
    "session requests": lambda: models.requests_of(1, "s"),
    "session pending requests": lambda: models.requests_of(1, "s", "pending"),
    "account requests": lambda: models.requests_of(1),
    "pending requests": lambda: models.requests_of(1, None, "pending"),
    "request by id": lambda: models.requests_of(1).where(models.Request.id == "r"),
    "request by key": lambda: models.Request.select().where((models.Request.session == "s")
                                                             & (models.Request.key == "k")),
}


@pytest.mark.sqlite_only  # SQLite's query plans
@pytest.mark.parametrize("name", HOT_QUERIES)
def test_hot_queries_search_an_index_and_never_sort(tmp_path, name):
    models.init_db(str(tmp_path / "plan.db"))
    models.migrate()
    query = HOT_QUERIES[name]()
    sql, params = query if isinstance(query, tuple) else query.sql()
    models.db.close_all()
    with sqlite3.connect(tmp_path / "plan.db") as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    searches = [step for step in plan if "SUBQUERY" not in step]
    assert all(step.startswith("SEARCH") and ("INDEX" in step or "PRIMARY KEY" in step) for step in searches), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
def test_a_version_1_database_with_data_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        for statement in models.MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'old', 0, 0)")
        db.execute("INSERT INTO session VALUES ('s1', 1, 't', NULL, NULL, '', 0, NULL, 0, NULL, 0, 1, 0, 0, 0)")
    models.init_db(str(path))
    assert models.migrate() == 1
    with sqlite3.connect(path) as db:
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert db.execute("PRAGMA user_version").fetchone()[0] == models.SCHEMA_VERSION
        assert db.execute("SELECT id, tag FROM session").fetchall() == [("s1", "t")]
    models.db.close_all()
    assert "session_account_id_id" in indexes
    assert not {"session_account_id", "message_session_id", "update_account_id"} & indexes


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
def test_a_version_2_update_log_is_carried_into_version_3(tmp_path):
    path = tmp_path / "v2.db"
    with file_at_version(path, 2) as db:
        db.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'old', 2, 0)")
        db.executemany('INSERT INTO "update" (id, account_id, seq, session_id, body, created_at) VALUES (?, 1, ?, ?, ?, ?)',
                       [("u1", 1, "s1", '{"t":"a"}', 10), ("u2", 2, None, '{"t":"b"}', 20)])
    models.init_db(str(path))
    assert models.migrate() == 2
    with models.db.connection_context():
        pages, latest = update_log.replay(1, 0)
        frames = [frame for page in pages for frame in page]
    models.db.close_all()
    assert latest == 2 and [(seq, sid) for seq, sid, _ in frames] == [(1, "s1"), (2, None)]
    assert '"id":"u2","seq":2,"body":{"t":"b"},"createdAt":20' in frames[1][2]
    with sqlite3.connect(path) as db:
        assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'update'").fetchone()[0]
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE tbl_name = 'update_v2'").fetchone()[0] == 0


def test_prune_deletes_each_accounts_updates_before_the_cutoff_and_nothing_else(app):
    rows = [(1, 1, 100), (1, 2, 200), (1, 3, 300), (2, 1, 100), (2, 2, 150), (3, 1, 400)]
    with models.db.connection_context():
        for name in ("a", "b", "c"):
            models.Account.create(name=name)
        models.Update.insert_many([(models.new_id(), *row, "{}") for row in rows],
                                  fields=[models.Update.id, models.Update.account, models.Update.seq,
                                          models.Update.created_at, models.Update.body]).execute()
        assert domain.prune_updates(250) == 4
        left = models.db.execute_sql('SELECT account_id, seq FROM "update" ORDER BY account_id, seq').fetchall()
    assert left == [(1, 3), (3, 1)]


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
def test_a_version_3_file_gains_claude_sessions_requests_and_delivery_in_place(tmp_path):
    path = tmp_path / "v3.db"
    with file_at_version(path, 3) as db:
        db.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'old', 0, 0)")
        db.execute("INSERT INTO session VALUES ('s1', 1, 't', 'Old', NULL, '', 0, NULL, 0, NULL, 1, 1, 0, 0, 0)")
        db.execute("INSERT INTO message VALUES ('m1', 's1', 1, NULL, 'user', '\"hi\"', NULL, 5, 5)")
    models.init_db(str(path))
    assert models.migrate() == 3
    with models.db.connection_context():
        session = domain.find_session(1, "s1")
        assert (session.title, session.agent, session.hold, session.awaiting_message) == ("Old", None, False, False)
        [message] = models.Message.select()
        assert message.delivered_at is None and message.content == '"hi"'
        assert domain.list_requests(1) == []
    models.db.close_all()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == models.SCHEMA_VERSION
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
