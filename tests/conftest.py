"""Shared fixtures: an app on a temporary database, its test client, tokens for two accounts, and a
real server started the way a user starts it (`python app.py serve`).

The engine: SQLite files under tmp_path by default; with SWITCHBOARD_TEST_DB=postgresql every database a
test names is a fresh PostgreSQL database instead (`database()`, tests/pgcluster.py), tests marked
`sqlite_only` are deselected, and tests read what was stored through `run_sql`/`snapshot`, which speak to
either engine."""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import requests

import models
from app import create_app, create_token

ROOT = Path(__file__).resolve().parent.parent
JSON = "application/json"
ENGINES = ("sqlite", "postgresql")
TEST_DB = os.environ.get("SWITCHBOARD_TEST_DB") or "sqlite"
if TEST_DB not in ENGINES:
    raise pytest.UsageError(f"SWITCHBOARD_TEST_DB={TEST_DB!r}: expected one of {', '.join(ENGINES)}")
ON_POSTGRES = TEST_DB == "postgresql"


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, the tests about SQLite itself are left out (they are listed by the marker)."""
    if ON_POSTGRES:
        sqlite_only = [item for item in items if item.get_closest_marker("sqlite_only")]
        if sqlite_only:
            config.hook.pytest_deselected(items=sqlite_only)
            items[:] = [item for item in items if not item.get_closest_marker("sqlite_only")]


def database(path):
    """SWITCHBOARD_DB for the database a test names by a file path: that file on SQLite; on PostgreSQL a
    database of its own standing for it (the same one each time the test names the path)."""
    path = str(path)
    if not ON_POSTGRES or is_postgres(path):
        return path
    from pgcluster import database_for
    url = database_for(path)
    _named[url] = path
    return url


_named = {}  # PostgreSQL URL -> the path a test named it by


def is_postgres(db):
    return str(db).startswith("postgresql://")


if ON_POSTGRES:
    @pytest.fixture(autouse=True)
    def _drop_test_databases():
        """The databases a test made are dropped once it (and its servers) ended."""
        from pgcluster import _databases, drop_databases_since
        count = len(_databases)
        yield
        drop_databases_since(count)


def run_sql(db, sql, params=(), many=None):
    """Run one statement on the database `db` (a SQLite path or a PostgreSQL URL) in a transaction of its
    own, committed, with `params` or once for each of `many`; returns its rows (tuples). `?`
    placeholders on both engines."""
    with connected(db) as run:
        return run(sql, params, many)


@contextmanager
def connected(db):
    """run(sql, params=(), many=None) as run_sql does it, on one connection to `db`, committed at the end."""
    db = str(db)
    if is_postgres(db):
        import psycopg
        with psycopg.connect(db) as conn, conn.cursor() as cursor:
            def run(sql, params=(), many=None):
                if params or many is not None:
                    sql = sql.replace("%", "%%").replace("?", "%s")
                if many is not None:
                    cursor.executemany(sql, many)
                else:
                    cursor.execute(sql, params or None)
                return cursor.fetchall() if cursor.description else []
            yield run
        return
    with closing(sqlite3.connect(db)) as conn, conn:
        models.register_functions(conn)  # the search index and its triggers call search_text()
        yield lambda sql, params=(), many=None: (
            conn.executemany(sql, many) if many is not None else conn.execute(sql, params)).fetchall()


def snapshot(db):
    """Every row of every table, to prove a request changed nothing. Token rows are left out:
    authenticating a request may (by design) record the token's last use."""
    with connected(db) as run:
        tables = run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'" if is_postgres(db)
                     else "SELECT name FROM sqlite_master WHERE type = 'table'")
        return {t: sorted(run(f'SELECT * FROM "{t}"'), key=repr) for (t,) in tables if t != "token"}


def file_at_version(path, version):
    """A database file as the migrations leave it at `version`: what an older server made."""
    db = sqlite3.connect(path)
    models.register_functions(db)
    for step in models.MIGRATIONS[:version]:
        for statement in step:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    return db


def step_adding(marker):
    """The version a file has just before the migration whose SQL mentions `marker`."""
    return next(i for i, step in enumerate(models.MIGRATIONS) if any(marker in q for q in step))


def closed_within(sock, seconds):
    """True if the server closes the connection within `seconds` (anything it sends first is skipped)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        pass
    return True


def send(client, method, path, body, headers):
    """A test-client request whose body is JSON (dict/list), raw text sent as JSON, or (data, type)."""
    kwargs = {"headers": dict(headers)}
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif isinstance(body, tuple):
        kwargs["data"], kwargs["headers"]["Content-Type"] = body
    elif body is not None:
        kwargs["data"], kwargs["headers"]["Content-Type"] = body, JSON
    return client.open(path, method=method, **kwargs)


def assert_refused(app, client, method, path, body, headers, status, error, field):
    """The request gets `status` with the JSON error shape (naming `field` when given), and the
    database is exactly as it was."""
    before = snapshot(app.config["DB"])
    r = send(client, method, path, body, headers)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == JSON
    answer = r.get_json()
    assert answer["error"] == error and isinstance(answer["message"], str) and answer["message"]
    if field is not None:
        assert field in answer["errors"], answer
        assert answer["message"].startswith(("message ", field)), answer["message"]
    if status == 405:
        assert r.headers["Allow"]
        assert method not in r.headers["Allow"].split(", ")
    assert snapshot(app.config["DB"]) == before
    return answer


@pytest.fixture
def app(tmp_path):
    app = create_app({"DB": database(tmp_path / "test.db"), "TESTING": True})
    yield app
    models.db.close_all()


@pytest.fixture
def client(app):
    return app.test_client()


def _bearer(account):
    with models.db.connection_context():
        return {"Authorization": "Bearer " + create_token(models, name="test", account=account)}


@pytest.fixture
def auth(app):
    """Headers for account A."""
    return _bearer("alice")


@pytest.fixture
def other_auth(app):
    """Headers for account B."""
    return _bearer("bob")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`python app.py serve` on a free port and a database of its own: a file path (on PostgreSQL, the
    database standing for it: `database()`) or a PostgreSQL URL, with `log_dir` for its output."""

    def __init__(self, db_path, env=None, port=None, log_dir=None, args=()):
        self.db_path = database(db_path)
        place = Path(_named.get(self.db_path, db_path))  # the path a test named, for the log's name
        self.log_dir = log_dir or place.parent
        self.log_name = "server" if log_dir else place.stem
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/updates"
        self.extra_env = env or {}
        self.proc = None
        self.output = []
        self.token = None

    def start(self):
        env = {**os.environ, "SWITCHBOARD_DB": self.db_path, **self.extra_env}
        self.log_path = Path(self.log_dir) / f"{self.log_name}.{self.port}.log"
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port), *self.args],
            cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    match = re.search(r"#token=(\S+)", self.log())
                    if match:
                        self.token = match.group(1)
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def worker(self):
        """The gunicorn worker (the master's only child): where the app's CPU and memory are spent."""
        import psutil
        [worker] = psutil.Process(self.proc.pid).children()
        return worker

    def new_token(self, account="default"):
        out = subprocess.run([sys.executable, str(ROOT / "app.py"), "create-token", "--account", account],
                             cwd=ROOT, env={**os.environ, "SWITCHBOARD_DB": self.db_path},
                             capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode

    def log(self):
        return self.log_path.read_text()


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path / "live.db").start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path):
    """Factory for servers with custom environment (limits, timeouts); all are stopped at the end."""
    servers = []

    def make(env=None, db_path=None, port=None):
        server = LiveServer(db_path or tmp_path / "live.db", env, port).start()
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.stop()


class WS:
    """A websocket test client (simple_websocket) speaking JSON frames; every receive has a timeout."""

    def __init__(self, url, ssl_context=None):
        from simple_websocket import Client
        self.client = Client.connect(url, ssl_context=ssl_context)

    def send(self, event, data=None, ack=None):
        message = {"event": event, "data": data}
        if ack is not None:
            message["ack"] = ack
        self.client.send(json.dumps(message))

    def recv(self, timeout=5):
        raw = self.client.receive(timeout=timeout)
        if raw is None:
            raise TimeoutError(f"no frame within {timeout}s")
        return json.loads(raw)

    def expect(self, event, timeout=5):
        message = self.recv(timeout)
        assert message["event"] == event, message
        return message

    def close_code(self, timeout=30):
        """The code the server closed the connection with: the next receive must find it closed (a
        frame first fails, and so does no close within `timeout`, instead of passing as a 1005)."""
        from simple_websocket import ConnectionClosed
        with pytest.raises(ConnectionClosed):
            self.recv(timeout)
        return self.client.close_reason

    def silent(self, timeout=0.5):
        """Assert nothing arrives within `timeout`."""
        raw = self.client.receive(timeout=timeout)
        assert raw is None, raw

    def close(self):
        """Close frame, then wait for the client's reader thread before the descriptor is released:
        simple-websocket's own close() frees it under a thread still reading it, and the next socket
        the test opens can get the same number and lose its first bytes to that thread."""
        from simple_websocket.ws import Base
        client = self.client
        try:
            if client.connected:
                Base.close(client)
        except Exception:
            pass
        try:
            client.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        client.thread.join(5)
        client.sock.close()


@pytest.fixture
def ws_connect():
    """connect(server, token=..., since=..., client_type=..., session_id=...) -> WS, after `ready`."""
    sockets = []

    def connect(server, token=None, since=None, client_type="user-scoped", session_id=None, ready=True):
        ws = WS(server.ws_url)
        sockets.append(ws)
        data = {"token": token or server.token, "clientType": client_type}
        if since is not None:
            data["since"] = since
        if session_id is not None:
            data["sessionId"] = session_id
        ws.send("auth", data)
        if ready:
            ws.ready = ws.expect("ready")["data"]["seq"]
        return ws
    yield connect
    for ws in sockets:
        ws.close()
