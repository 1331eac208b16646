"""Switchboard: the app factory, its configuration, and the command line.

`create_app()` wires one short block per concern (config, database, errors, blueprints, real time).
The command line (`python app.py serve|create-token|list-tokens|revoke-token|claude-settings|webhook|backup|...`) is the operator
contract the README documents; `serve` binds the port, then hands the process over to gunicorn with one
gevent worker.
"""
import argparse
import atexit
import errno
import logging
import os
import resource
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.parse

from flask import Flask

__version__ = "0.2.0"

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
    "WS_MAX_UNAUTHENTICATED": 1000,
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
    "RETENTION_DAYS": 0.0,  # 0: sessions are kept until deleted
    "ACCESS_LOG": 0,
    "WORKER_CLASS": "gevent",  # or gthread: kept selectable so bench/ can compare the two
    "APPROVAL_WAIT_SECONDS": 300.0,
    "HOLD_WAIT_SECONDS": 300.0,
    "PUBLIC_URL": "",
    "WEBHOOK_RETRY_BASE_SECONDS": 5.0,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_RUN_RETENTION_DAYS": 7.0,
    "VAPID_SUBJECT": "mailto:switchboard@localhost",
    "PRICES_FILE": "",  # a JSON file of model prices added to the built-in table (prices.py)
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
                raise SystemExit(f"SWITCHBOARD_{name}={raw!r} is not a valid {type(default).__name__}") from None
    return settings


def create_app(config=None):
    """The WSGI app. `SERVING` (set by `serve` for the gunicorn worker) also starts the background
    maintenance and closes websockets cleanly on shutdown signals."""
    import domain
    import errors
    import events
    import models
    import notifications
    import prices
    import push
    import schemas
    from routes import (
        JsonProvider,
        agent_sessions,
        api_sessions,
        build_spec,
        close_unread_body,
        hooks,
        meta,
        release_body,
        requests,
        ui,
        updates,
    )
    from routes import push as push_routes
    from routes import usage as usage_routes
    from routes import webhooks as webhook_routes

    app = Flask(__name__)
    app.config.from_mapping(settings_from_env())
    app.config.update(config or {})
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json = JsonProvider(app)

    # database: one pool of connections kept open for the life of the process
    models.init_db(app.config["DB"], serving=bool(app.config.get("SERVING")))
    models.migrate()
    schemas.limits.content_bytes = app.config["MAX_CONTENT_BYTES"]
    schemas.limits.metadata_bytes = app.config["MAX_METADATA_BYTES"]
    schemas.limits.key_chars = app.config["MAX_KEY_CHARS"]
    try:
        prices.configure(app.config["PRICES_FILE"])
    except ValueError as e:
        raise SystemExit(f"SWITCHBOARD_PRICES_FILE: {e}") from None
    schemas.limits.import_messages = app.config["MAX_IMPORT_MESSAGES"]
    events.hub.configure(queue_size=app.config["WS_QUEUE_SIZE"], queue_bytes=app.config["WS_QUEUE_BYTES"],
                         background_fanout=bool(app.config.get("SERVING")),
                         websockets_per_token=app.config["QUOTA_WEBSOCKETS_PER_TOKEN"])
    # On PostgreSQL the server publishes from the update log what any process committed (events/follower.py)
    following = bool(app.config.get("SERVING")) and models.postgres()
    events.writer.configure(busy_wait=app.config["BUSY_WAIT_SECONDS"], on_store=notifications.enqueue,
                            quotas=events.Quotas(sessions=app.config["QUOTA_SESSIONS"],
                                                 stored_bytes=app.config["QUOTA_STORED_BYTES"]),
                            follower=events.follower if following else None)

    # notifications: queued by every write (on_store), sent by the dispatcher when serving
    push.ensure_key()
    notifications.dispatcher.configure(
        retry_base_seconds=app.config["WEBHOOK_RETRY_BASE_SECONDS"], max_attempts=app.config["WEBHOOK_MAX_ATTEMPTS"],
        timeout_seconds=app.config["WEBHOOK_TIMEOUT_SECONDS"], public_url=app.config["PUBLIC_URL"],
        vapid_subject=app.config["VAPID_SUBJECT"])

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

    # errors: always the JSON shape {error, message, errors?} (errors.py)
    errors.init_app(app)

    # blueprints
    app.register_blueprint(meta.bp)
    app.register_blueprint(agent_sessions.bp)
    app.register_blueprint(api_sessions.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(requests.bp)
    app.register_blueprint(updates.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(webhook_routes.bp)
    app.register_blueprint(push_routes.bp)
    app.register_blueprint(usage_routes.bp)
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
    # approvals: each request names the process its hook waits in; one whose process is gone is
    # expired, at start and every maintenance interval (on PostgreSQL the living ones are those
    # listening: this one too, before it serves anything)
    domain.waiters.configure(alive=events.follower.SERVING if following else None)
    if following:
        events.follower.start(app.config["DB"], domain.waiters.this)
    if app.config.get("SERVING"):
        with models.db.connection_context():
            domain.expire_leftovers()  # left by processes that are gone (this one's predecessor, for one)
        _close_sockets_on_shutdown(events.hub)
        # The last connection to close checkpoints the WAL into the file: a clean stop leaves one file.
        atexit.register(models.db.close_all)
        if not models.postgres():
            models.checkpointer.start(app.config["DB"])
            atexit.register(models.checkpointer.stop)  # first: atexit runs the last registered first
        threading.Thread(target=_maintain, args=(app.config,), daemon=True, name="maintenance").start()
        notifications.dispatcher.start()
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
    """Every interval: mark silent sessions inactive, expire approval requests whose process is gone,
    delete sessions idle past their retention (if one is set), prune the update log and finished
    webhook runs past their own."""
    import domain
    import models
    import notifications
    while True:
        time.sleep(config["MAINTENANCE_INTERVAL_SECONDS"])
        try:
            with models.db.connection_context():
                if not models.claim_maintenance(int(config["MAINTENANCE_INTERVAL_SECONDS"] * 1000)):
                    continue
                domain.presence.sweep()
                domain.expire_leftovers()
                if config["RETENTION_DAYS"] > 0:
                    domain.delete_idle_sessions(models.now_ms() - int(config["RETENTION_DAYS"] * 86_400_000))
                domain.prune_updates(models.now_ms() - int(config["UPDATE_RETENTION_DAYS"] * 86_400_000))
                notifications.prune(models.now_ms() - int(config["WEBHOOK_RUN_RETENTION_DAYS"] * 86_400_000))
        except Exception:
            log.exception("maintenance failed; retrying next interval")


# --- command line -------------------------------------------------------------------------------

def _is_postgres(url):
    return url.startswith(("postgresql://", "postgres://"))


def _without_password(url):
    """A PostgreSQL URL as it may be printed: user, host and database, never the password."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=(user + "@" if user else "") + netloc[2]))


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
    from events import writer
    secret = "sb_" + secrets.token_urlsafe(32)

    def write(changes):
        owner = models.Account.get_or_none(name=account) or models.Account.create(name=account)
        models.Token.create(account=owner, name=name, secret_hash=models.hash_secret(secret))
    with models.db.connection_context():
        writer.run(None, write)
    return secret


def _listen(host, port):
    """The listening socket, bound here so that a busy port is one clear error before anything is
    written, and the ready line is only printed once the port is ours. gunicorn inherits it."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as e:
        hint = " (is another server running there? pick another with --port)" if e.errno == errno.EADDRINUSE else ""
        raise SystemExit(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    listener.set_inheritable(True)
    return listener


def cmd_serve(args, settings):
    host = args.host or settings["HOST"]
    port = args.port or settings["PORT"]
    # serving.Worker is gunicorn's gevent worker accepting connections in turns (serving.py).
    worker = {"gevent": ["--worker-class", "serving.Worker"],
              "gthread": ["--worker-class", "gthread", "--threads", "16"]}.get(settings["WORKER_CLASS"])
    if worker is None:
        raise SystemExit(f"SWITCHBOARD_WORKER_CLASS={settings['WORKER_CLASS']!r}: use gevent or gthread")
    if args.workers < 1:
        raise SystemExit("--workers: at least 1")
    if args.workers > 1 and not _is_postgres(settings["DB"]):
        raise SystemExit(f"--workers {args.workers}: a SQLite database is served by one process (it takes one "
                         "writer at a time, and updates are published by the process that wrote them). "
                         "Set SWITCHBOARD_DB=postgresql://... to run several workers or hosts.")
    listener = _listen(host, port)
    if _is_postgres(settings["DB"]):
        db_path = settings["DB"]
        models = _open_db(settings)
        print(f"Database: {_without_password(db_path)}", flush=True)
    else:
        db_path = os.path.abspath(settings["DB"])
        created = not os.path.exists(db_path)
        import admin
        admin.hold_while_serving(db_path)  # kept across the exec: `restore` refuses while it is held
        models = _open_db({**settings, "DB": db_path})
        # Said every time: a server started from another directory with a relative SWITCHBOARD_DB
        # opens another file, and the data would seem gone.
        print(f"Database: {db_path}" + (" (created a new database)" if created else ""), flush=True)
    with models.db.connection_context():
        first_run = not models.Token.select().exists()
    if first_run:
        secret = create_token(models, name="first-run")
        print(f"Switchboard is ready. Open http://{host}:{port}/#token={secret}", flush=True)
    else:
        print(f"Switchboard is ready at http://{host}:{port}/", flush=True)
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
        *worker, "--workers", str(args.workers),
        "--worker-connections", "10000",
        "--bind", f"fd://{listener.fileno()}",
        "--pythonpath", here,
        "--no-control-socket",
        "--graceful-timeout", "5",
        # The master restarts a worker whose loop has not turned for this long. No request holds the
        # loop for more than a fraction of a second (long work yields between steps), so a worker
        # silent for a minute is hung, not busy; a restart closes every websocket, so not sooner.
        "--timeout", "60",
        "--log-level", "info",
        # Who asked for what, and how it went; never a header (the token travels in one) or a body.
        *(["--access-logfile", "-", "--access-logformat", '%(h)s %(t)s "%(r)s" %(s)s %(B)s %(M)sms']
          if settings["ACCESS_LOG"] else []),
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
    from events import writer
    models = _open_db(settings)
    with models.db.connection_context():
        deleted = writer.run(None, lambda changes: models.Token.delete().where(models.Token.id == args.id).execute())
    if not deleted:
        raise SystemExit(f"no token with id {args.id}")
    print(f"revoked token {args.id}")


def cmd_claude_settings(args, settings):
    import json

    import claude
    url = args.url or settings["PUBLIC_URL"] or f"http://{settings['HOST']}:{settings['PORT']}"
    usage_command = None
    if args.with_usage:
        client = os.path.abspath(args.client or os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.py"))
        usage_command = f"python3 {shlex.quote(client)} report-usage --url {shlex.quote(url)}"
    print(json.dumps(claude.settings(url, settings["APPROVAL_WAIT_SECONDS"], settings["HOLD_WAIT_SECONDS"],
                                     approvals=not args.no_approvals, usage_command=usage_command), indent=2))


def _file_only(settings, task):
    if _is_postgres(settings["DB"]):
        raise SystemExit(f"{task} copies a SQLite file; on PostgreSQL use pg_dump and pg_restore")


def cmd_backup(args, settings):
    import admin
    _file_only(settings, "backup")
    db_path = os.path.abspath(settings["DB"])
    if not os.path.exists(db_path):
        raise SystemExit(f"{db_path}: no such database")
    size = admin.backup(db_path, args.file)
    print(f"backed up {db_path} to {os.path.abspath(args.file)} ({size:,} bytes)")


def cmd_restore(args, settings):
    import admin
    _file_only(settings, "restore")
    db_path = os.path.abspath(settings["DB"])
    admin.restore(args.file, db_path)
    print(f"restored {db_path} from {os.path.abspath(args.file)}")


def _app_for_cli(settings):
    """The app, for commands that load documents as the routes do (its limits, its migrations)."""
    try:
        return create_app({"DB": settings["DB"]})
    except Exception as e:
        import models
        if isinstance(e, models.SchemaTooNew):
            raise SystemExit(f"{settings['DB']}: {e}") from None
        raise


def cmd_export(args, settings):
    import admin
    _app_for_cli(settings)
    count = admin.export_all(args.all, args.account)
    print(f"exported {count} sessions of account {args.account!r} to {os.path.abspath(args.all)}")


def cmd_import(args, settings):
    import admin
    _app_for_cli(settings)
    sessions, messages = admin.import_all(args.all, args.account)
    print(f"imported {sessions} sessions ({messages} messages) into account {args.account!r}")


def cmd_webhook_add(args, settings):
    from marshmallow import ValidationError

    import schemas
    import webhooks
    models = _open_db(settings)
    wanted = {"url": args.url, "format": args.format}
    if args.events:
        wanted["events"] = [name for value in args.events for name in value.split(",") if name]
    try:
        body = schemas.webhook_create_schema.load(wanted)
    except ValidationError as e:
        raise SystemExit(f"webhook not added: {e.messages}") from None
    with models.db.connection_context():
        account = models.Account.get_or_none(name=args.account)
        if account is None:
            raise SystemExit(f"no account named {args.account!r}")
        webhook = webhooks.add(account.id, body["url"], body["events"], body["format"])
    print(f"Webhook {webhook.id} ({webhook.format}: {webhook.events}) -> {webhook.url}")
    print("Its signing secret (shown once; deliveries carry webhook-signature made with it):")
    print(webhook.secret)


def cmd_webhook_list(args, settings):
    import webhooks
    from schemas import iso
    models = _open_db(settings)
    with models.db.connection_context():
        names = dict(models.Account.select(models.Account.id, models.Account.name).tuples())
        print(f"{'ID':>4}  {'ACCOUNT':<16} {'FORMAT':<6} {'EVENTS':<48} {'LAST RUN':<40} URL")
        for webhook in webhooks.listed():
            run = webhook.last_run
            last = "never" if run is None else (f"{run.status} ({run.attempts} attempt{'s' * (run.attempts != 1)}"
                                                f"{', ' + run.error if run.error else ''}) {iso(run.created_at)}")
            print(f"{webhook.id:>4}  {names[webhook.account_id]:<16} {webhook.format:<6} {webhook.events:<48} "
                  f"{last:<40} {webhook.url}")


def cmd_webhook_remove(args, settings):
    import webhooks
    models = _open_db(settings)
    with models.db.connection_context():
        try:
            webhooks.remove(None, args.id)
        except webhooks.WebhookNotFound:
            raise SystemExit(f"no webhook with id {args.id}") from None
    print(f"removed webhook {args.id}")


def _settings_help():
    width = max(len(name) for name in DEFAULTS) + len("SWITCHBOARD_")
    lines = [f"  SWITCHBOARD_{name:<{width - 12}}  {default}" for name, default in DEFAULTS.items()]
    return ("settings (environment variables, with their defaults; the README's configuration table "
            "says what each means):\n" + "\n".join(lines))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python app.py", description="Switchboard: a self-hosted server for AI agent sessions. "
        "With no command (or only serve's options), it serves.",
        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"Switchboard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server (the default)", epilog=_settings_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", help="bind address (default: SWITCHBOARD_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: SWITCHBOARD_PORT, else 8000)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (default 1; more than one needs PostgreSQL)")
    serve.set_defaults(run=cmd_serve)
    token = commands.add_parser("create-token", help="create an API token, printed alone on the last line")
    token.add_argument("--name", default="cli")
    token.add_argument("--account", default="default")
    token.set_defaults(run=cmd_create_token)
    commands.add_parser("list-tokens", help="list tokens").set_defaults(run=cmd_list_tokens)
    revoke = commands.add_parser("revoke-token", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=cmd_revoke_token)
    hooks = commands.add_parser("claude-settings", help="print the Claude Code settings that send its hooks here")
    hooks.add_argument("--url", help="this server's URL as Claude Code reaches it (default SWITCHBOARD_PUBLIC_URL)")
    hooks.add_argument("--no-approvals", action="store_true",
                       help="watch only: tool permissions are asked in the terminal as usual")
    hooks.add_argument("--with-usage", action="store_true",
                       help="also report token usage at every Stop and SessionEnd (a command hook: client.py report-usage)")
    hooks.add_argument("--client", metavar="PATH",
                       help="where client.py is on the agent's machine (default: this server's own copy)")
    hooks.set_defaults(run=cmd_claude_settings)
    backup = commands.add_parser("backup", help="copy the database to FILE while the server runs")
    backup.add_argument("file")
    backup.set_defaults(run=cmd_backup)
    restore = commands.add_parser("restore", help="replace the database with a backup (stop the server first)")
    restore.add_argument("file")
    restore.set_defaults(run=cmd_restore)
    export = commands.add_parser("export", help="every session as export documents: one file each in a "
                                 "directory, or one per line in a file")
    export.add_argument("--all", required=True, metavar="DIR|FILE")
    export.add_argument("--account", default="default")
    export.set_defaults(run=cmd_export)
    import_ = commands.add_parser("import", help="import every document of a directory or a file that "
                                  "export --all wrote (or downloads from the browser)")
    import_.add_argument("--all", required=True, metavar="DIR|FILE")
    import_.add_argument("--account", default="default")
    import_.set_defaults(run=cmd_import)
    webhook = commands.add_parser("webhook", help="add, list or remove webhooks").add_subparsers(
        dest="webhook_command", required=True)
    add = webhook.add_parser("add", help="add a webhook; its signing secret is printed on the last line")
    add.add_argument("url")
    add.add_argument("--events", nargs="+", metavar="EVENT",
                     help="request.created session.waiting session.ended message.created "
                          "(default: all but message.created)")
    add.add_argument("--format", default="json", help="json (default), ntfy or slack")
    add.add_argument("--account", default="default")
    add.set_defaults(run=cmd_webhook_add)
    webhook.add_parser("list", help="list webhooks and their last run").set_defaults(run=cmd_webhook_list)
    remove = webhook.add_parser("remove", help="remove a webhook by id")
    remove.add_argument("id", type=int)
    remove.set_defaults(run=cmd_webhook_remove)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")  # `python app.py --port 9000` serves
    args = parser.parse_args(argv)
    args.run(args, settings_from_env())


if __name__ == "__main__":
    main(sys.argv[1:])
