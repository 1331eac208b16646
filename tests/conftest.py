"""Shared fixtures: an app on a temporary database file, its test client, tokens for two accounts,
and a real server started the way a user starts it (`python app.py serve`)."""
import json
import os
import re
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
from app import create_app, create_token

ROOT = Path(__file__).resolve().parent.parent
JSON = "application/json"


def snapshot(path):
    """Every row of every table, to prove a request changed nothing. Token rows are left out:
    authenticating a request may (by design) record the token's last use."""
    with sqlite3.connect(path) as conn:
        models.register_functions(conn)  # the message index reads its text through search_text()
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables if t != "token"}


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
    app = create_app({"DB": str(tmp_path / "test.db"), "TESTING": True})
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
    """`python app.py serve` on a free port and a database file of its own (or a PostgreSQL URL, with
    `log_dir` for its output)."""

    def __init__(self, db_path, env=None, port=None, log_dir=None, args=()):
        self.db_path = str(db_path)
        self.log_dir = log_dir
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
        self.log_path = (Path(self.log_dir) / f"server.{self.port}.log" if self.log_dir
                         else Path(self.db_path).with_suffix(f".{self.port}.log"))
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
