"""Operator commands run as an operator runs them (`python app.py backup|restore|export|import`),
against a real server writing to the same file; retention and the access log on a real server."""
import io
import json
import sqlite3
import threading
import time

import pytest
import requests
from test_cli import cli

from admin import Progress
from conftest import database, free_port, run_sql


def post(server, path, body):
    r = requests.post(server.url + path, json=body, headers=server.headers, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def message_ids(db):
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM message")}


@pytest.mark.sqlite_only  # backup copies the SQLite file (on PostgreSQL: pg_dump)
def test_a_backup_taken_while_four_writers_append_holds_every_acknowledged_write(make_server, tmp_path):
    server = make_server()
    sid = post(server, "/v1/sessions", {"tag": "busy", "metadata": ""})["session"]["id"]
    acknowledged, lock, stop = [], threading.Lock(), threading.Event()

    def writer(n):
        http = requests.Session()
        i = 0
        while not stop.is_set():
            r = http.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=10,
                          json={"messages": [{"content": {"w": n, "i": i, "pad": "x" * 2000}}]})
            if r.status_code == 200:
                with lock:
                    acknowledged.append((time.monotonic(), r.json()["messages"][0]["id"]))
            i += 1

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    try:
        time.sleep(1.5)
        started = time.monotonic()
        result = cli(server.db_path, "backup", str(tmp_path / "copy.db"))
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in writers:
            thread.join(20)
    assert "backed up" in result.stdout
    before = {mid for at, mid in acknowledged if at < started}
    assert len(before) > 50
    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert before <= message_ids(copy)
    assert not (tmp_path / "copy.db-wal").exists()
    refused = cli(server.db_path, "backup", str(copy), check=False)
    assert refused.returncode == 1 and "exists" in refused.stderr


@pytest.mark.sqlite_only  # restore replaces the SQLite file (on PostgreSQL: pg_restore)
def test_restore_refuses_while_a_server_runs_and_round_trips_when_stopped(make_server, tmp_path):
    server = make_server()
    sid = post(server, "/v1/sessions", {"tag": "kept", "metadata": ""})["session"]["id"]
    post(server, f"/v3/sessions/{sid}/messages", {"messages": [{"content": "in the backup"}]})
    cli(server.db_path, "backup", str(tmp_path / "b.db"))
    post(server, f"/v3/sessions/{sid}/messages", {"messages": [{"content": "after the backup"}]})

    refused = cli(server.db_path, "restore", str(tmp_path / "b.db"), check=False)
    assert refused.returncode == 1 and "in use by a running Switchboard server" in refused.stderr
    assert len(message_ids(server.db_path)) == 2  # untouched

    assert server.stop() == 0
    assert "restored" in cli(server.db_path, "restore", str(tmp_path / "b.db")).stdout
    again = make_server(db_path=server.db_path)
    again.token = server.token
    r = requests.get(f"{again.url}/v3/sessions/{sid}/messages", headers=again.headers, timeout=5)
    assert [m["content"] for m in r.json()["messages"]] == ["in the backup"]


@pytest.mark.sqlite_only  # restore replaces the SQLite file
@pytest.mark.parametrize("content, error", [(b"not a database at all" * 100, "not a SQLite database"),
                                            (None, "not a Switchboard database")])
def test_restore_refuses_what_is_not_a_switchboard_backup(tmp_path, content, error):
    bad = tmp_path / "bad.db"
    if content is None:
        with sqlite3.connect(bad) as conn:
            conn.execute("CREATE TABLE other (x)")
    else:
        bad.write_bytes(content)
    db = tmp_path / "sb.db"
    cli(db, "create-token")
    before = db.read_bytes()
    result = cli(db, "restore", str(bad), check=False)
    assert result.returncode == 1 and error in result.stderr and "Traceback" not in result.stderr
    assert db.read_bytes() == before


def documents(db, tmp_path, name):
    target = tmp_path / name
    cli(db, "export", "--all", str(target))
    lines = target.read_text().splitlines()
    return [json.loads(line) for line in lines]


def without_ids(document):
    session = {k: v for k, v in document["session"].items() if k not in ("id", "tag", "updated_at")}
    return session, document["messages"]


@pytest.mark.parametrize("layout", ["directory", "file"])
def test_export_all_then_import_all_into_an_empty_database_gives_equal_documents(make_server, tmp_path, layout):
    server = make_server()
    for n in range(3):
        session = post(server, "/api/sessions", {"title": f"session {n}"})
        post(server, f"/api/sessions/{session['id']}/messages", {"role": "user", "content": f"hello {n}"})
        for batch in range(0, 150, 100):
            post(server, f"/v3/sessions/{session['id']}/messages",
                 {"messages": [{"content": {"i": i, "ü": "✓"}, "localId": f"l{i}"} for i in range(batch, min(batch + 100, 150))]})
    target = tmp_path / ("out" if layout == "directory" else "all.jsonl")
    if layout == "directory":
        target.mkdir()
    out = cli(server.db_path, "export", "--all", str(target)).stdout
    assert "exported 3 sessions" in out
    if layout == "directory":
        assert len(list(target.glob("session-*.json"))) == 3
    empty = tmp_path / "empty.db"
    cli(empty, "create-token")
    assert "imported 3 sessions (453 messages)" in cli(empty, "import", "--all", str(target)).stdout
    original = sorted((without_ids(d) for d in documents(server.db_path, tmp_path, "a.jsonl")), key=repr)
    copied = sorted((without_ids(d) for d in documents(empty, tmp_path, "b.jsonl")), key=repr)
    assert copied == original and len(copied) == 3


def test_import_all_names_a_bad_document_and_imports_nothing(tmp_path):
    db = tmp_path / "sb.db"
    cli(db, "create-token")
    source = tmp_path / "docs.jsonl"
    good = {"version": 1, "session": {"title": "ok"}, "messages": [{"role": "user", "content": "hi"}]}
    bad = {"version": 1, "session": {"title": "bad"}, "messages": [{"role": "robot", "content": "hi"}]}
    source.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = cli(db, "import", "--all", str(source), check=False)
    assert result.returncode == 1 and "docs.jsonl:2" in result.stderr and "nothing imported" in result.stderr
    assert run_sql(database(db), "SELECT count(*) FROM session") == [(0,)]


def test_progress_is_one_line_rewritten_on_a_terminal_and_silent_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress("exported sessions", stream)
        progress(1, 2)
        progress(2, 2)
        progress.finish()
    assert terminal.getvalue() == "\rexported sessions: 1/2\rexported sessions: 2/2\n"
    assert pipe.getvalue() == ""


def test_retention_deletes_idle_sessions_and_keeps_live_ones(make_server, ws_connect):
    server = make_server({"SWITCHBOARD_RETENTION_DAYS": str(2 / 86400),  # two seconds
                          "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.5",
                          # heartbeats are written at most this often: at days of retention, 30 s is nothing
                          "SWITCHBOARD_PRESENCE_WRITE_INTERVAL_SECONDS": "0.2"})
    idle = post(server, "/v1/sessions", {"tag": "idle", "metadata": ""})["session"]["id"]
    alive = post(server, "/v1/sessions", {"tag": "alive", "metadata": ""})["session"]["id"]
    ws = ws_connect(server)
    deadline = time.monotonic() + 15
    deleted = None
    while time.monotonic() < deadline and deleted is None:
        post(server, f"/v1/sessions/{alive}/alive", {})
        frame = ws.recv(timeout=10)
        if frame["event"] == "update" and frame["data"]["body"]["t"] == "delete-session":
            deleted = frame["data"]["body"]["sid"]
    assert deleted == idle
    ids = {s["id"] for s in requests.get(server.url + "/v1/sessions", headers=server.headers).json()["sessions"]}
    assert ids == {alive}


def test_retention_is_off_by_default(app):
    assert app.config["RETENTION_DAYS"] == 0


def test_the_access_log_names_requests_and_never_a_token(make_server):
    server = make_server({"SWITCHBOARD_ACCESS_LOG": "1"})
    requests.get(server.url + "/v1/sessions", headers=server.headers, timeout=5)
    requests.get(server.url + "/v1/sessions?x=1", headers={"Authorization": "Bearer sb_wrong"}, timeout=5)
    time.sleep(0.5)
    access = "\n".join(line for line in server.log().splitlines() if '"GET ' in line)
    assert '"GET /v1/sessions HTTP/1.1" 200' in access and '"GET /v1/sessions?x=1 HTTP/1.1" 401' in access
    assert server.token not in access and "sb_wrong" not in access


def test_without_the_access_log_requests_are_not_logged(make_server):
    server = make_server()
    requests.get(server.url + "/v1/sessions", headers=server.headers, timeout=5)
    time.sleep(0.5)
    assert "GET /v1/sessions" not in server.log()


def test_export_all_of_an_unknown_account_is_a_clear_error(tmp_path):
    db = tmp_path / "sb.db"
    cli(db, "create-token")
    result = cli(db, "export", "--all", str(tmp_path / "x.jsonl"), "--account", "nobody", check=False)
    assert result.returncode == 1 and "no account named 'nobody'" in result.stderr


@pytest.mark.sqlite_only  # restore replaces the SQLite file
def test_serve_and_restore_exclude_each_other(tmp_path):
    """A restore holds the file: a server started meanwhile says so instead of serving half a copy."""
    import admin
    db = tmp_path / "sb.db"
    cli(db, "create-token")
    with admin.server_lock(str(db), exclusive=True):
        result = cli(db, "--port", str(free_port()), check=False)
    assert result.returncode == 1 and "being restored" in result.stderr
