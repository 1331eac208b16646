"""Switchboard: the app factory, its configuration, and the command line.

`create_app()` wires one short block per concern (config, database, errors, blueprints, real time).
The command line (`python app.py serve|create-token|list-tokens|revoke-token`) is the operator
contract of DESIGN.md §2; `serve` hands the process over to gunicorn with one gevent worker.
"""
import argparse
import atexit
import logging
import os
import resource
import secrets
import signal
import sqlite3
import sys
import threading
import time

import peewee
from flask import Flask, jsonify, request
from marshmallow import ValidationError
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

DEFAULTS = {
    "DB": "./switchboard.db",
    "HOST": "127.0.0.1",
    "PORT": 8000,
    "MAX_BODY_BYTES": 16 << 20,
    "MAX_CONTENT_BYTES": 1 << 20,
    "MAX_METADATA_BYTES": 1 << 20,
    "MAX_KEY_CHARS": 256,
    "MAX_IMPORT_MESSAGES": 100_000,
    "MAX_FRAME_BYTES": 4 << 20,
    "BODY_TIMEOUT_SECONDS": 30.0,
    "MAX_INFLIGHT_BODY_BYTES": 64 << 20,
    "BUSY_WAIT_SECONDS": 5.0,
    "UPDATE_RETENTION_DAYS": 7.0,
    "WS_AUTH_TIMEOUT_SECONDS": 10.0,
    "WS_PING_INTERVAL_SECONDS": 25.0,
    "WS_SEND_TIMEOUT_SECONDS": 30.0,
    "QUOTA_SESSIONS": 100_000,
    "QUOTA_STORED_BYTES": 4 << 30,
    "QUOTA_WEBSOCKETS_PER_TOKEN": 100,
    "WS_QUEUE_SIZE": 1024,
    "WS_QUEUE_BYTES": 16 << 20,
    "WS_INCOMING_BYTES": 16 << 20,
    "WS_TOKEN_CHECK_SECONDS": 2.0,
    "WS_REPLAY_SECONDS": 60.0,
    "PRESENCE_WRITE_INTERVAL_SECONDS": 30.0,
    "PRESENCE_TIMEOUT_SECONDS": 600.0,
    "MAINTENANCE_INTERVAL_SECONDS": 60.0,
    "WORKER_CLASS": "gevent",  # or gthread: kept selectable so bench/ can compare the two
}

log = logging.getLogger("switchboard")


def settings_from_env(environ=os.environ):
    """DEFAULTS overridden by SWITCHBOARD_<NAME> variables, typed like their defaults."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = environ.get(f"SWITCHBOARD_{name}")
        if raw is not None:
            try:
                settings[name] = type(default)(raw)
            except ValueError:
                raise SystemExit(f"SWITCHBOARD_{name}={raw!r} is not a valid {type(default).__name__}")
    return settings


def create_app(config=None):
    """The WSGI app. `SERVING` (set by `serve` for the gunicorn worker) also starts the background
    maintenance and closes websockets cleanly on shutdown signals."""
    import domain
    import events
    import models
    import schemas
    from routes import (ApiError, JsonProvider, agent_sessions, api_sessions, build_spec, close_unread_body, meta,
                        release_body, storage_error, ui, updates)

    app = Flask(__name__)
    app.config.from_mapping(settings_from_env())
    app.config.update(config or {})
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json = JsonProvider(app)

    # database: one pool of connections kept open for the life of the process
    models.init_db(app.config["DB"])
    models.migrate()
    schemas.limits.content_bytes = app.config["MAX_CONTENT_BYTES"]
    schemas.limits.metadata_bytes = app.config["MAX_METADATA_BYTES"]
    schemas.limits.key_chars = app.config["MAX_KEY_CHARS"]
    schemas.limits.import_messages = app.config["MAX_IMPORT_MESSAGES"]
    events.hub.configure(queue_size=app.config["WS_QUEUE_SIZE"], queue_bytes=app.config["WS_QUEUE_BYTES"],
                         busy_wait=app.config["BUSY_WAIT_SECONDS"],
                         background_fanout=bool(app.config.get("SERVING")),
                         quotas=events.Quotas(sessions=app.config["QUOTA_SESSIONS"],
                                              stored_bytes=app.config["QUOTA_STORED_BYTES"],
                                              websockets_per_token=app.config["QUOTA_WEBSOCKETS_PER_TOKEN"]))

    @app.before_request
    def take_turn():
        # gevent runs a greenlet until it blocks, so a keep-alive client whose next request is
        # already waiting is served again and again while others wait (bench/append.py's p99).
        # Yielding once per request, before it takes a pooled connection, serves them in turn.
        # Nothing else happens before the blueprint's authentication: the body is read after it
        # (routes.read_body), and the pool's connections are taken on first use.
        time.sleep(0)

    app.after_request(close_unread_body)
    app.teardown_request(release_body)

    @app.teardown_request
    def release(exc):
        if not models.db.is_closed():
            models.db.close()

    # errors: always the JSON shape {error, message, errors?}
    @app.errorhandler(ApiError)
    def api_error(e):
        return e.response()

    @app.errorhandler(ValidationError)
    def invalid(e):
        """400 whose message names the first bad field (and in a message list, the first bad message)."""
        errors = e.messages if isinstance(e.messages, dict) else {"_schema": e.messages}
        path, first = [], errors
        while isinstance(first, dict):
            key, first = next(iter(first.items()))
            path.append(str(key))
        if path[0] == "messages" and len(path) > 2:
            message = f"message {path[1]}: {'.'.join(path[2:])}: {first[0]}"
        else:
            message = f"{'.'.join(path)}: {first[0]}"
        return ApiError(400, "invalid_request", message, errors).response()

    @app.errorhandler(events.Busy)
    @app.errorhandler(MaxConnectionsExceeded)
    def busy(e):
        return ApiError(503, "database_busy", "The database is locked by another process; retry shortly.",
                        headers={"Retry-After": "1"}).response()

    @app.errorhandler(events.QuotaExceeded)
    def quota_exceeded(e):
        return ApiError(429, "quota_exceeded", str(e)).response()

    @app.errorhandler(models.StorageUnavailable)
    def storage_unavailable(e):
        return storage_error(e).response()

    @app.errorhandler(sqlite3.Error)
    @app.errorhandler(peewee.DatabaseError)
    def database_error(e):
        failure = models.storage_failure(e)
        if failure is None:
            return internal(e)
        return storage_error(failure).response()

    @app.errorhandler(HTTPException)
    def http_error(e):
        response = e.get_response()
        response.data = jsonify({"error": e.name.lower().replace(" ", "_"), "message": e.description}).data
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal(e):
        log.exception("unhandled error")
        return ApiError(500, "internal_error", "Something went wrong on the server.").response()

    # blueprints
    app.register_blueprint(meta.bp)
    app.register_blueprint(agent_sessions.bp)
    app.register_blueprint(api_sessions.bp)
    app.register_blueprint(updates.bp)
    app.register_blueprint(ui.bp)
    app.extensions["openapi"] = build_spec(app, "Switchboard", "1.0.0")

    # real time
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": app.config["WS_PING_INTERVAL_SECONDS"],
        "max_message_size": app.config["MAX_FRAME_BYTES"],
        "receive_bytes": 65536,
    }
    updates.sock.init_app(app)
    domain.presence.configure(
        write_interval_ms=int(app.config["PRESENCE_WRITE_INTERVAL_SECONDS"] * 1000),
        timeout_ms=int(app.config["PRESENCE_TIMEOUT_SECONDS"] * 1000),
    )
    if app.config.get("SERVING"):
        _close_sockets_on_shutdown(events.hub)
        # The last connection to close checkpoints the WAL into the file: a clean stop leaves one file.
        atexit.register(models.db.close_all)
        threading.Thread(target=_maintain, args=(app.config,), daemon=True, name="maintenance").start()
        threading.Thread(target=updates.watch_tokens, args=(app.config["WS_TOKEN_CHECK_SECONDS"],),
                         daemon=True, name="token-watch").start()
    return app


def _close_sockets_on_shutdown(hub):
    """Chain gunicorn's worker signal handlers so every websocket gets a close frame (1001) first.

    Ctrl-C in a terminal reaches the worker twice (SIGINT from the terminal, then SIGQUIT from the
    master): a second quick exit would raise SystemExit during interpreter shutdown, a traceback.
    """
    quitting = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(signum)

        def handler(number, frame, previous=previous):
            hub.shutdown()
            if number != signal.SIGTERM:
                if quitting.is_set():
                    return
                quitting.set()
            if callable(previous):
                previous(number, frame)
        signal.signal(signum, handler)


def _maintain(config):
    """Every interval: mark silent sessions inactive, prune the update log past its retention."""
    import domain
    import events
    import models
    while True:
        time.sleep(config["MAINTENANCE_INTERVAL_SECONDS"])
        try:
            with models.db.connection_context():
                domain.presence.sweep()
                events.hub.prune(models.now_ms() - int(config["UPDATE_RETENTION_DAYS"] * 86_400_000))
        except Exception:
            log.exception("maintenance failed; retrying next interval")


# --- command line -------------------------------------------------------------------------------

def _open_db(settings):
    import models
    models.init_db(settings["DB"])
    try:
        models.migrate()
    except models.SchemaTooNew as e:
        raise SystemExit(f"{settings['DB']}: {e}") from None
    return models


def create_token(models, name="default", account="default"):
    """Create a token (and its account if missing); returns the secret, shown once, never stored."""
    from events import hub
    secret = "sb_" + secrets.token_urlsafe(32)
    with models.db.connection_context(), hub.write(None):
        owner = models.Account.get_or_none(name=account) or models.Account.create(name=account)
        models.Token.create(account=owner, name=name, secret_hash=models.hash_secret(secret))
    return secret


def cmd_serve(args, settings):
    host = args.host or settings["HOST"]
    port = args.port or settings["PORT"]
    worker = {"gevent": [], "gthread": ["--threads", "16"]}.get(settings["WORKER_CLASS"])
    if worker is None:
        raise SystemExit(f"SWITCHBOARD_WORKER_CLASS={settings['WORKER_CLASS']!r}: use gevent or gthread")
    db_path = os.path.abspath(settings["DB"])
    models = _open_db({**settings, "DB": db_path})
    with models.db.connection_context():
        first_run = not models.Token.select().exists()
    if first_run:
        secret = create_token(models, name="first-run")
        print(f"Switchboard is ready. Open http://{host}:{port}/#token={secret}", flush=True)
    models.db.close_all()
    # Every websocket is a file descriptor; the common soft limit of 1024 would cap connections there.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ValueError, OSError):
        log.warning("could not raise the open-file limit above %s", soft)
    env = {**os.environ, "SWITCHBOARD_DB": db_path}
    here = os.path.dirname(os.path.abspath(__file__))
    # A fresh interpreter: gevent must patch the standard library before anything creates a lock.
    os.execve(sys.executable, [
        sys.executable, "-m", "gunicorn",
        "--worker-class", settings["WORKER_CLASS"], *worker, "--workers", "1",
        "--worker-connections", "10000",
        "--bind", f"{host}:{port}",
        "--pythonpath", here,
        "--no-control-socket",
        "--graceful-timeout", "5",
        # The master restarts a worker whose loop has not turned for this long. No request holds the
        # loop for more than a fraction of a second (long work yields between steps), so a worker
        # silent for a minute is hung, not busy; a restart closes every websocket, so not sooner.
        "--timeout", "60",
        "--log-level", "info",
        "app:create_app({'SERVING': True})",
    ], env)


def cmd_create_token(args, settings):
    models = _open_db(settings)
    print(f"Token for account {args.account!r} (shown once; keep it secret):")
    print(create_token(models, name=args.name, account=args.account))


def cmd_list_tokens(args, settings):
    models = _open_db(settings)
    query = (models.Token
             .select(models.Token, models.Account)
             .join(models.Account)
             .order_by(models.Token.id))
    with models.db.connection_context():
        print(f"{'ID':>4}  {'ACCOUNT':<16} {'NAME':<20} {'CREATED':<24} LAST USED")
        for token in query:
            from schemas import iso
            print(f"{token.id:>4}  {token.account.name:<16} {token.name:<20} {iso(token.created_at):<24} "
                  f"{iso(token.last_used_at) if token.last_used_at else 'never'}")


def cmd_revoke_token(args, settings):
    from events import hub
    models = _open_db(settings)
    with models.db.connection_context(), hub.write(None):
        deleted = models.Token.delete().where(models.Token.id == args.id).execute()
    if not deleted:
        raise SystemExit(f"no token with id {args.id}")
    print(f"revoked token {args.id}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python app.py", description="Switchboard server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve, host=None, port=None)
    token = commands.add_parser("create-token", help="create an API token, printed on the last line")
    token.add_argument("--name", default="cli")
    token.add_argument("--account", default="default")
    token.set_defaults(run=cmd_create_token)
    commands.add_parser("list-tokens", help="list tokens").set_defaults(run=cmd_list_tokens)
    revoke = commands.add_parser("revoke-token", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=cmd_revoke_token)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or [])])
    args.run(args, settings_from_env())


if __name__ == "__main__":
    main(sys.argv[1:])
