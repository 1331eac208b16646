"""The operator contract (the README's commands and settings), run the way an operator runs it: `python app.py ...` in a
subprocess, the server checked over real HTTP, the database file checked directly."""
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import models
from conftest import ON_POSTGRES, ROOT, database, free_port, run_sql

URL = re.compile(r"^Switchboard is ready\. Open (http://([\d.]+):(\d+)/#token=(\S+))$", re.M)


def cli(db, *args, env=None, check=True):
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "SWITCHBOARD_DB": database(db), **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr
    return result


class Served:
    """`python app.py [args]` in its own process group (so a signal can reach it the way a terminal's
    Ctrl-C does), with stdout and stderr in files."""

    def __init__(self, tmp_path, args, env, url, cwd=ROOT):
        self.out, self.err = tmp_path / f"out.{time.monotonic_ns()}", tmp_path / f"err.{time.monotonic_ns()}"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args], cwd=cwd,
                                         env={**os.environ, **env}, stdout=out, stderr=err, start_new_session=True)
        self.url = url
        deadline = time.monotonic() + 20
        while not self.answers():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.05)

    def answers(self, url=None):
        try:
            return requests.get((url or self.url) + "/health", timeout=1).status_code == 200
        except requests.RequestException:  # refused, or accepted by the bound port before the worker is up
            return False

    def stdout(self):
        return self.out.read_text()

    def stop(self, sig=signal.SIGTERM, group=False):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if group else self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def serve(tmp_path):
    """serve(*args, env={}, url=...) -> a running Served; all are stopped at the end."""
    started = []

    def start(*args, env=None, url):
        started.append(Served(tmp_path, args, env or {}, url))
        return started[-1]
    yield start
    for served in started:
        served.stop()


def sessions(url, token):
    return requests.get(url + "/v1/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def tokens_in(db):
    return run_sql(database(db), "SELECT account.name, token.name FROM token JOIN account ON account.id = "
                   "token.account_id ORDER BY token.id")


def test_create_token_prints_the_token_alone_on_the_last_line_and_it_works(tmp_path, serve):
    db = tmp_path / "sb.db"
    out = cli(db, "create-token", "--name", "laptop", "--account", "acme").stdout
    token = out.splitlines()[-1]
    assert re.fullmatch(r"sb_[A-Za-z0-9_-]{40,}", token)
    assert tokens_in(db) == [("acme", "laptop")]
    port = free_port()
    server = serve("serve", "--port", str(port), env={"SWITCHBOARD_DB": database(db)}, url=f"http://127.0.0.1:{port}")
    assert sessions(server.url, token).status_code == 200
    r = requests.post(server.url + "/v1/sessions", json={"tag": "t", "metadata": ""},
                      headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 200
    assert run_sql(database(db), "SELECT account.name FROM session JOIN account ON account.id = session.account_id"
                   ) == [("acme",)]
    assert "#token=" not in server.stdout()  # a token exists: no first-run token


def test_list_and_revoke_tokens(tmp_path, serve):
    db = tmp_path / "sb.db"
    keep = cli(db, "create-token", "--name", "keep").stdout.splitlines()[-1]
    revoke = cli(db, "create-token", "--name", "lost-laptop", "--account", "acme").stdout.splitlines()[-1]
    listing = cli(db, "list-tokens").stdout
    lines = listing.splitlines()
    assert re.match(r"\s*ID\s+ACCOUNT\s+NAME\s+CREATED\s+LAST USED", lines[0])
    assert re.match(r"\s*1\s+default\s+keep\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+never$", lines[1])
    assert re.match(r"\s*2\s+acme\s+lost-laptop\s+", lines[2])
    assert keep not in listing and revoke not in listing
    port = free_port()
    server = serve("serve", "--port", str(port), env={"SWITCHBOARD_DB": database(db)}, url=f"http://127.0.0.1:{port}")
    assert sessions(server.url, revoke).status_code == 200
    assert re.search(r"\s2\s+acme\s+lost-laptop\s+\S+Z\s+\d{4}-", cli(db, "list-tokens").stdout)  # last used
    assert "revoked token 2" in cli(db, "revoke-token", "2").stdout
    r = sessions(server.url, revoke)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert sessions(server.url, keep).status_code == 200
    missing = cli(db, "revoke-token", "2", check=False)
    assert missing.returncode != 0 and "no token with id 2" in missing.stderr
    assert tokens_in(db) == [("default", "keep")]


def test_first_start_prints_a_url_with_a_token_and_later_starts_make_none(tmp_path, serve):
    db = tmp_path / "fresh" / "sb.db"
    db.parent.mkdir()
    port = free_port()
    first = serve("serve", "--port", str(port), env={"SWITCHBOARD_DB": database(db)}, url=f"http://127.0.0.1:{port}")
    [(url, host, printed_port, token)] = URL.findall(first.stdout())
    assert (host, printed_port) == ("127.0.0.1", str(port))
    assert sessions(first.url, token).status_code == 200
    assert first.stop() == 0
    second = serve("serve", "--port", str(port), env={"SWITCHBOARD_DB": database(db)}, url=f"http://127.0.0.1:{port}")
    assert URL.findall(second.stdout()) == []
    assert tokens_in(db) == [("default", "first-run")]
    assert sessions(second.url, token).status_code == 200


def test_environment_sets_db_host_and_port_and_flags_win(tmp_path, serve):
    db = tmp_path / "env.db"
    env_port, flag_port = free_port(), free_port()
    env = {"SWITCHBOARD_DB": database(db), "SWITCHBOARD_HOST": "127.0.0.2", "SWITCHBOARD_PORT": str(env_port)}
    by_env = serve(env=env, url=f"http://127.0.0.2:{env_port}")  # plain `python app.py` serves
    [(_, host, port, _)] = URL.findall(by_env.stdout())
    assert (host, port) == ("127.0.0.2", str(env_port))
    assert tokens_in(db) == [("default", "first-run")]
    assert not by_env.answers(f"http://127.0.0.1:{env_port}")
    assert by_env.stop() == 0
    by_flags = serve("serve", "--host", "127.0.0.1", "--port", str(flag_port), env=env,
                     url=f"http://127.0.0.1:{flag_port}")
    assert not by_flags.answers(f"http://127.0.0.2:{env_port}")
    assert tokens_in(db) == [("default", "first-run")]  # the same file: SWITCHBOARD_DB again


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGINT, False),
                                        (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigint", "sigterm", "sigterm-group"])
def test_signals_shut_down_cleanly(tmp_path, serve, sig, group):
    port = free_port()
    server = serve("serve", "--port", str(port), env={"SWITCHBOARD_DB": database(tmp_path / "sb.db")},
                   url=f"http://127.0.0.1:{port}")
    [(_, _, _, token)] = URL.findall(server.stdout())
    http = requests.Session()  # an idle keep-alive connection stays open across the signal
    assert http.get(server.url + "/v1/sessions", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert server.stop(sig, group) == 0
    log = server.err.read_text()
    assert "Traceback" not in log and "Error" not in log, log
    assert "Shutting down: Master" in log
    assert not server.answers()


def test_health_answers_without_a_token(live_server):
    r = requests.get(live_server.url + "/health", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.sqlite_only  # SQLite's user_version (test_postgres.py refuses a newer PostgreSQL schema)
def test_a_database_from_a_newer_version_is_refused_with_a_clear_message(tmp_path):
    db = tmp_path / "future.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {models.SCHEMA_VERSION + 1}")
    for args in (["serve", "--port", str(free_port())], ["create-token"], ["list-tokens"]):
        result = cli(db, *args, check=False)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"database schema version {models.SCHEMA_VERSION + 1} is newer than this server's" in result.stderr
        assert str(db) in result.stderr and result.stdout == ""
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_an_unknown_worker_class_is_refused(tmp_path):
    result = cli(tmp_path / "sb.db", "serve", env={"SWITCHBOARD_WORKER_CLASS": "sync"}, check=False)
    assert result.returncode == 1 and "use gevent or gthread" in result.stderr


@pytest.mark.sqlite_only  # SQLite's WAL file
def test_a_clean_stop_leaves_the_database_as_one_file(live_server):
    r = requests.post(live_server.url + "/v1/sessions", json={"tag": "t", "metadata": "m"},
                      headers=live_server.headers)
    assert r.status_code == 200
    assert live_server.stop() == 0
    assert not Path(live_server.db_path + "-wal").exists()


@pytest.mark.sqlite_only  # SQLite's WAL file
def test_writes_reach_the_database_file_in_the_background_soon_after(live_server, tmp_path):
    """The server copies its write-ahead log into the database file from a thread of its own shortly
    after writes (models.Checkpointer), not inside a write once the log is long: three appends, a
    fraction of the log length at which a write would, are in the file itself within moments."""
    headers = {**live_server.headers, "Content-Type": "application/json"}
    r = requests.post(live_server.url + "/v1/sessions", json={"tag": "t", "metadata": "m"}, headers=headers)
    sid = r.json()["session"]["id"]
    for batch in range(3):
        r = requests.post(f"{live_server.url}/v3/sessions/{sid}/messages", headers=headers, json={
            "messages": [{"content": f"message {batch} {n}"} for n in range(100)]})
        assert r.status_code == 200
    alone = tmp_path / "alone.db"  # the database file without its log
    deadline = time.monotonic() + 10
    while True:
        shutil.copyfile(live_server.db_path, alone)
        try:
            with sqlite3.connect(alone) as conn:
                stored = conn.execute("SELECT count(*) FROM message").fetchone()[0]
        except sqlite3.DatabaseError:  # copied in the middle of a checkpoint
            stored = None
        finally:
            for suffix in ("-wal", "-shm"):
                Path(f"{alone}{suffix}").unlink(missing_ok=True)
        if stored == 300:
            break
        assert time.monotonic() < deadline, f"{stored} of 300 messages in the file after 10 s"
        time.sleep(0.05)


@pytest.mark.sqlite_only
def test_only_the_servers_own_connections_leave_checkpoints_to_the_background(tmp_path):
    """Past Checkpointer.FALLBACK_PAGES of log a write of the server checkpoints itself, so the log is
    bounded even when the background thread never catches up; other programs (the command line)
    keep SQLite's own checkpoints, as no thread of theirs copies the log."""
    for serving, expected in ((True, (models.Checkpointer.FALLBACK_PAGES, models.Checkpointer.KEEP_BYTES)),
                              (False, (1000, -1))):
        models.init_db(str(tmp_path / "pragmas.db"), serving=serving)
        with models.db.connection_context():
            found = tuple(models.db.execute_sql(f"PRAGMA {name}").fetchone()[0]
                          for name in ("wal_autocheckpoint", "journal_size_limit"))
        models.db.close_all()
        assert found == expected


def test_a_busy_port_is_one_clear_error_and_consumes_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "sb.db"
        result = cli(db, "--port", str(port), check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"cannot listen on 127.0.0.1:{port}: Address already in use "
                                     "(is another server running there? pick another with --port)")
    # no database made (on PostgreSQL, where the test made it, nothing written), no first-run token spent
    assert tokens_in(db) == [] if ON_POSTGRES else not db.exists()


@pytest.mark.sqlite_only  # a relative SQLite file path
def test_the_start_names_the_absolute_database_path_and_says_when_it_is_new(tmp_path, serve):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {"SWITCHBOARD_DB": "relative.db"}
    # Started from another directory, a relative SWITCHBOARD_DB names another file: the line says which.
    first = Served(tmp_path, ["--port", str(port)], env, f"http://127.0.0.1:{port}", cwd=elsewhere)
    try:
        lines = first.stdout().splitlines()
        assert lines[0] == f"Database: {elsewhere / 'relative.db'} (created a new database)"
        assert URL.match(lines[1])
    finally:
        assert first.stop() == 0
    again = Served(tmp_path, ["--port", str(port)], env, f"http://127.0.0.1:{port}", cwd=elsewhere)
    try:
        assert again.stdout().splitlines() == [f"Database: {elsewhere / 'relative.db'}",
                                               f"Switchboard is ready at http://127.0.0.1:{port}/"]
    finally:
        again.stop()


def test_version_and_help_list_every_setting_with_its_default(tmp_path):
    from app import DEFAULTS, __version__
    assert cli(tmp_path / "sb.db", "--version").stdout.strip() == f"Switchboard {__version__}"
    for args in (["--help"], ["serve", "--help"]):
        out = cli(tmp_path / "sb.db", *args).stdout
        for name, default in DEFAULTS.items():
            assert re.search(rf"^  SWITCHBOARD_{name}\s+{re.escape(str(default))}$", out, re.M), name
    assert not (tmp_path / "sb.db").exists()
