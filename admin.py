"""Operator tasks the command line runs against the database file: backup, restore, and every
session exported or imported as version-1 documents.

Each works while a server runs on the same file (restore excepted: it refuses), streams what it
copies, and reports progress on a terminal. It calls the same domain operations and export code as
the HTTP routes; nothing here is reachable over HTTP.
"""
import fcntl
import json
import os
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import domain
import models
import schemas


class Progress:
    """One line rewritten in place on a terminal (stderr), at most ten times a second; silent
    when stderr is a file or a pipe, where only the final summary belongs."""

    def __init__(self, what, stream=sys.stderr):
        self.what = what
        self.stream = stream
        self.live = stream.isatty()
        self.shown = 0.0

    def __call__(self, done, total=None):
        now = time.monotonic()
        if self.live and (now - self.shown >= 0.1 or done == total):
            self.shown = now
            of = f"/{total}" if total is not None else ""
            self.stream.write(f"\r{self.what}: {done}{of}")
            self.stream.flush()

    def finish(self):
        if self.live and self.shown:
            self.stream.write("\n")


# --- the file: backup and restore -----------------------------------------------------------------

@contextmanager
def server_lock(path, exclusive):
    """An advisory lock on the database file: every server holds it shared while it runs, restore
    takes it exclusively. It is a flock, which SQLite's own (fcntl) locks never see or touch."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"{path} is in use by a running Switchboard server: stop it first") from None
        yield fd
    finally:
        os.close(fd)


def hold_while_serving(path):
    """Take the shared lock for the life of the process (and of the process it execs into)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"{path} is being restored: wait for the restore to finish") from None
    os.set_inheritable(fd, True)
    return fd


def _copy(source, target, progress, pages=1024):
    """SQLite's online backup of `source` into `target`, a step of `pages` pages at a time.

    The source's read transaction is opened first and held to the end: every step then reads the same
    snapshot, so writers committing meanwhile neither restart the copy (as they would between
    steps otherwise) nor reach it. In WAL mode they are not blocked either."""
    source.execute("BEGIN")
    source.execute("SELECT count(*) FROM sqlite_master").fetchone()
    try:
        source.backup(target, pages=pages, progress=lambda status, remaining, total: progress(total - remaining, total))
    finally:
        source.execute("COMMIT")


def backup(db_path, target_path):
    """A consistent copy of the database, taken while a server may be writing to it."""
    target_path = Path(target_path)
    if target_path.exists():
        raise SystemExit(f"{target_path} exists: name a new file")
    partial = target_path.with_name(target_path.name + ".partial")
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    target = sqlite3.connect(partial, isolation_level=None)
    progress = Progress("backup (pages)")
    try:
        _copy(source, target, progress)
        target.execute("PRAGMA journal_mode = delete")  # one self-contained file
        if target.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            raise SystemExit(f"the copy in {partial} failed its integrity check")
    finally:
        progress.finish()
        source.close()
        target.close()
    os.replace(partial, target_path)
    return target_path.stat().st_size


def _check_backup(path):
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such file")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            if conn.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise SystemExit(f"{path} fails SQLite's integrity check: not restored")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise SystemExit(f"{path} is not a SQLite database ({e}): not restored") from None
    if not {"account", "token", "session", "message"} <= tables:
        raise SystemExit(f"{path} is not a Switchboard database: not restored")
    if version > models.SCHEMA_VERSION:
        raise SystemExit(f"{path} has schema version {version}, newer than this server's "
                         f"{models.SCHEMA_VERSION}: upgrade Switchboard first")


def restore(backup_path, db_path):
    """Replace the database with a backup; refused while a server uses the database."""
    _check_backup(backup_path)
    with server_lock(db_path, exclusive=True):
        source = sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True, isolation_level=None)
        target = sqlite3.connect(db_path, isolation_level=None)
        progress = Progress("restore (pages)")
        try:
            _copy(source, target, progress)
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            progress.finish()
            source.close()
            target.close()
    # An older backup is brought up to date now rather than at the next start.
    models.init_db(db_path)
    models.migrate()
    models.db.close_all()


# --- every session: export and import -------------------------------------------------------------

def _account_id(name):
    account = models.Account.get_or_none(models.Account.name == name)
    if account is None:
        raise SystemExit(f"no account named {name!r}")
    return account.id


def export_all(target, account):
    """Every session of the account as export documents: a directory gets one file per session
    (as the download names it), any other path one document per line (JSON Lines)."""
    target = Path(target)
    with models.db.connection_context():
        account_id = _account_id(account)
        sessions = list(models.Session
                        .select()
                        .where(models.Session.account == account_id)
                        .order_by(models.Session.id))
    progress = Progress("exported sessions")
    one_file = None if target.is_dir() else open(target, "w", encoding="utf-8")
    try:
        for done, session in enumerate(sessions, 1):
            chunks = schemas.export_document(session, models.now_ms(), models.message_pages(session.id, session.seq))
            if one_file is None:
                with open(target / f"session-{session.id}.json", "w", encoding="utf-8") as out:
                    out.writelines(chunks)
            else:
                one_file.writelines(chunks)
                one_file.write("\n")
            progress(done, len(sessions))
    finally:
        progress.finish()
        if one_file is not None:
            one_file.close()
    return len(sessions)


def _documents(source):
    """(name, raw document text) of every document in a directory of files or a JSON Lines file."""
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.glob("*.json")):
            yield path.name, path.read_text(encoding="utf-8")
    else:
        with open(source, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield f"{source.name}:{number}", line


def import_all(source, account):
    """Import every document (as `POST /api/sessions/import` would, each in its own transaction).

    Every document is checked before anything is written: one bad document is named and nothing is
    imported, so a run can be repeated once the file is fixed without duplicating sessions. The
    documents are read twice (checked, then imported) so that only one is in memory at a time."""
    from marshmallow import ValidationError

    def load(name, raw):
        try:
            return schemas.import_document_schema.load(schemas.parse_json(raw))
        except ValidationError as e:
            raise SystemExit(f"{name}: {json.dumps(e.messages)[:500]}; nothing imported") from None
        except (ValueError, RecursionError):
            raise SystemExit(f"{name}: not valid JSON; nothing imported") from None

    total = sum(1 for name, raw in _documents(source) if load(name, raw))
    progress = Progress("imported sessions")
    messages = 0
    try:
        with models.db.connection_context():
            account_id = _account_id(account)
            for done, (name, raw) in enumerate(_documents(source), 1):
                document = load(name, raw)
                domain.import_session(account_id, document)
                messages += len(document["messages"])
                progress(done, total)
    finally:
        progress.finish()
    return total, messages
