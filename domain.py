"""Domain operations: every write any contract can make, each in exactly one place.

The agent API, the management API and the websocket handler all call these; they differ only in the
shapes they load and dump. Each write is one `hub.write()` transaction that records the updates it
causes, which the hub publishes after commit. Nothing here knows HTTP or sockets.
"""
import itertools
import threading

from peewee import fn

from events import hub
from models import Account, Message, Session, db, new_ids, now_ms, pause
from schemas import agent_message_schema, event_session_schema


class SessionNotFound(LookupError):
    pass


# Every request on a session runs this lookup and every append the statements below. They are
# written out once: Peewee renders a query in Python on each execution, and for these that took
# longer than SQLite takes to run them (bench/append.py).
_SESSION_FIELDS = Session._meta.sorted_fields
_FIND_SESSION = 'SELECT {} FROM "session" WHERE "id" = ? AND "account_id" = ?'.format(
    ", ".join(f'"{f.column_name}"' for f in _SESSION_FIELDS))
_MESSAGE_COLUMNS = ("id", "session_id", "seq", "local_id", "role", "content", "metadata", "created_at",
                    "updated_at")
_INSERT_MESSAGES = 'INSERT INTO "message" ({}) VALUES ({})'.format(", ".join(_MESSAGE_COLUMNS),
                                                                  ", ".join("?" * len(_MESSAGE_COLUMNS)))
# Both check the session's account too: an append needs no separate lookup of its session.
_KNOWN_MESSAGES = ('SELECT {} FROM "message" JOIN "session" ON "session"."id" = "message"."session_id" '
                   'WHERE "message"."session_id" = ? AND "session"."account_id" = ? AND "local_id" IN ({{}})').format(
    ", ".join(f'"message"."{c}"' for c in _MESSAGE_COLUMNS))
_TAKE_SEQS = ('UPDATE "session" SET "seq" = "seq" + ?, "updated_at" = ? WHERE "id" = ? AND "account_id" = ? '
              'RETURNING "seq"')


def find_session(account_id, session_id):
    """The caller's session; another account's session is exactly as missing as an absent one."""
    row = db.execute_sql(_FIND_SESSION, (session_id, account_id)).fetchone()
    if row is None:
        raise SessionNotFound(session_id)
    # Built from the row directly: Peewee's result wrapper costs four times the query here. Each value
    # still goes through its field's converter: SQLite answers 0/1 for `active`, which dumps as a number.
    return Session(__no_default__=True, **{f.name: f.python_value(value) for f, value in zip(_SESSION_FIELDS, row)})


def _reload(session):
    return Session.get_by_id(session.id)


def create_session(account_id, *, tag=None, title=None, metadata="", agent_state=None,
                   data_encryption_key=None, active=True, origin=None):
    """Create a session, or load the account's session with this tag. Returns (session, created).

    An agent's session starts active (the agent is there); one made from the browser waits for one.
    """
    with hub.write(account_id, origin) as changes:
        if tag is not None:
            existing = (Session
                        .select()
                        .where((Session.account == account_id) & (Session.tag == tag))
                        .first())
            if existing is not None:
                return existing, False
        session = Session.create(
            account=account_id, tag=tag, title=title, metadata=metadata, agent_state=agent_state,
            data_encryption_key=data_encryption_key, active=active,
        )
        changes.sessions += 1
        changes.add(session.id, {"t": "new-session", **event_session_schema.dump(session)})
    return session, True


def append_messages(account_id, session_id, messages, origin=None):
    """Append one or more messages ({content, local_id, role?, metadata?}) to the account's session.

    A local_id the session already has (or that repeats within the batch) returns the existing row
    and consumes no seq and no update. Returns the distinct rows, dicts of the message table's
    columns, in seq order. The session is looked up by the writes themselves: for another account's
    session the seq allocation finds no row (and the known messages none).
    """
    local_ids = list({m["local_id"] for m in messages if m.get("local_id") is not None})
    with hub.write(account_id, origin) as changes:
        known = {}
        if local_ids:
            rows = db.execute_sql(_KNOWN_MESSAGES.format(", ".join("?" * len(local_ids))),
                                  (session_id, account_id, *local_ids))
            known = {row[3]: dict(zip(_MESSAGE_COLUMNS, row)) for row in rows}
        fresh = []
        for m in messages:
            local_id = m.get("local_id")
            if local_id is not None:
                if local_id in known:
                    continue
                known[local_id] = None  # claimed by this batch
            fresh.append(m)
        created = []
        if fresh:
            now = now_ms()
            last = db.execute_sql(_TAKE_SEQS, (len(fresh), now, session_id, account_id)).fetchall()
            if not last:
                raise SessionNotFound(session_id)
            first_seq = last[0][0] - len(fresh) + 1
            created = [dict(zip(_MESSAGE_COLUMNS, (
                message_id, session_id, first_seq + i, m.get("local_id"), m.get("role"), m["content"],
                m.get("metadata"), m.get("created_at") or now, now)))
                for i, (m, message_id) in enumerate(zip(fresh, new_ids(len(fresh))))]
            db.cursor().executemany(_INSERT_MESSAGES, [tuple(row.values()) for row in created])
            changes.stored_bytes += sum(_size(row["content"], row["metadata"]) for row in created)
            for row in created:
                changes.add(session_id, {"t": "new-message", "sid": session_id,
                                         "message": agent_message_schema.dump(row)})
    existing = [row for row in known.values() if row is not None]
    return sorted(existing + created, key=lambda row: row["seq"])


_CAS_EVENT_KEYS = {"metadata": "metadata", "agent_state": "agentState"}


def compare_and_set(session, field, value, expected_version, origin=None):
    """Set metadata or agent_state if its version is still `expected_version`.

    Returns (succeeded, version, value): on a mismatch, the current version and value.
    """
    version_field = getattr(Session, f"{field}_version")
    with hub.write(session.account_id, origin) as changes:
        current = (Session
                   .select(getattr(Session, field), version_field)
                   .where(Session.id == session.id)
                   .tuples()
                   .first())
        if current is None:
            raise SessionNotFound(session.id)
        current_value, current_version = current
        if current_version != expected_version:
            return False, current_version, current_value
        version = expected_version + 1
        (Session
         .update({getattr(Session, field): value, version_field: version, Session.updated_at: now_ms()})
         .where(Session.id == session.id)
         .execute())
        changes.add(session.id, {"t": "update-session", "id": session.id,
                                 _CAS_EVENT_KEYS[field]: {"value": value, "version": version}})
    return True, version, value


_SETTABLE_EVENT_KEYS = {"title": "title", "system_prompt": "systemPrompt"}


def update_session(session, origin=None, **values):
    """Set the title and/or system prompt; returns the updated session."""
    with hub.write(session.account_id, origin) as changes:
        updated = (Session
                   .update({**{getattr(Session, k): v for k, v in values.items()}, Session.updated_at: now_ms()})
                   .where(Session.id == session.id)
                   .execute())
        if not updated:
            raise SessionNotFound(session.id)
        changes.add(session.id, {"t": "update-session", "id": session.id,
                                 **{_SETTABLE_EVENT_KEYS[k]: v for k, v in values.items()}})
    return _reload(session)


def _size(content, metadata):
    """What a message counts toward the account's stored-bytes quota."""
    return len(content.encode()) + (len(metadata.encode()) if metadata is not None else 0)


_SESSION_BYTES = ('SELECT COALESCE(SUM(LENGTH(CAST("content" AS BLOB)) + COALESCE(LENGTH(CAST("metadata" AS BLOB)), 0)), 0) '
                  'FROM "message" WHERE "session_id" = ?')


def delete_session(session, origin=None):
    """Delete one session; the database cascades to its messages."""
    with hub.write(session.account_id, origin) as changes:
        [(size,)] = db.execute_sql(_SESSION_BYTES, (session.id,)).fetchall()
        if not Session.delete().where(Session.id == session.id).execute():
            raise SessionNotFound(session.id)
        changes.sessions -= 1
        changes.stored_bytes -= size
        changes.add(session.id, {"t": "delete-session", "sid": session.id})
    presence.forget(session.id)


# Rows written or deleted between two yields of a long write: each step takes milliseconds, so the
# worker serves everyone else in between (the write itself still holds the write lock throughout).
WRITE_STEP_ROWS = 500


def delete_all_sessions(account_id, origin=None):
    """Delete every session of the account in one transaction; returns how many.

    It emits one `delete-all` update ({"deleted": N}: every session the account had before it is
    gone), not one per session: 100,000 of them overflowed every watcher's queue and the log."""
    with hub.write(account_id, origin) as changes:
        ids = [sid for (sid,) in Session.select(Session.id).where(Session.account == account_id).tuples()]
        for start in range(0, len(ids), WRITE_STEP_ROWS):
            Session.delete().where(Session.id.in_(ids[start:start + WRITE_STEP_ROWS])).execute()
            pause()
        if ids:
            # nothing is left: the counters go back to zero, whatever they had drifted to
            sessions, stored_bytes = (Account
                                      .select(Account.session_count, Account.stored_bytes)
                                      .where(Account.id == account_id)
                                      .tuples()
                                      .get())
            changes.sessions, changes.stored_bytes = -sessions, -stored_bytes
            changes.add(None, {"t": "delete-all", "deleted": len(ids)})
    presence.forget(*ids)
    return len(ids)


_IMPORTED_COLUMNS = (Message.id, Message.session, Message.seq, Message.local_id, Message.role,
                     Message.content, Message.metadata, Message.created_at, Message.updated_at)


def import_session(account_id, document, origin=None):
    """Create a session from a loaded export document: fresh ids, seqs 1..N, one transaction.

    The session is inactive (no agent is behind a copy) and has no tag (an agent's create-or-load
    must keep reaching its own session). It emits one `new-session`, not a `new-message` per message:
    a 50,000-message import would flood every watcher; the session's seq says how many to fetch.
    """
    now = now_ms()
    imported, messages = document["session"], document["messages"]
    with hub.write(account_id, origin) as changes:
        session = Session.create(
            account=account_id, title=imported["title"], system_prompt=imported["system_prompt"],
            metadata=imported["metadata"], agent_state=imported["agent_state"], seq=len(messages),
            active=False, created_at=now if imported["created_at"] is None else imported["created_at"],
            updated_at=now,
        )
        # The rows are already database values: sqlite3's executemany writes them ~3.5x faster than
        # insert_many, which renders and converts every value of every chunk in Python.
        changes.sessions += 1
        sql = None
        for start in range(0, len(messages), WRITE_STEP_ROWS):
            step = messages[start:start + WRITE_STEP_ROWS]
            rows = [(message_id, session.id, seq, m["local_id"], m["role"], m["content"], m["metadata"],
                     now if m["created_at"] is None else m["created_at"], now)
                    for seq, m, message_id in zip(itertools.count(start + 1), step, new_ids(len(step)))]
            sql = sql or Message.insert_many(rows[:1], fields=_IMPORTED_COLUMNS).sql()[0]
            db.cursor().executemany(sql, rows)
            changes.stored_bytes += sum(_size(row[5], row[6]) for row in rows)
            pause()
        changes.add(session.id, {"t": "new-session", **event_session_schema.dump(session)})
    return session


class Presence:
    """Heartbeats: an `activity` ephemeral on every beat, a database write at most every
    `write_interval` per session, and durable `update-session {active}` only on transitions."""

    def __init__(self):
        self._written = {}  # session id -> when last_active_at was last written (ms)
        self._lock = threading.Lock()
        self.configure()

    def configure(self, write_interval_ms=30_000, timeout_ms=600_000):
        self.write_interval_ms = write_interval_ms
        self.timeout_ms = timeout_ms

    def forget(self, *session_ids):
        with self._lock:  # once for them all: a delete-all may forget 100,000
            for session_id in session_ids:
                self._written.pop(session_id, None)

    def alive(self, session, time_ms=None, thinking=False):
        now = now_ms()
        at = now if time_ms is None else min(time_ms, now)
        if at < now - self.timeout_ms:
            return  # a heartbeat older than the timeout says nothing about now
        with self._lock:
            due = not session.active or now - self._written.get(session.id, 0) >= self.write_interval_ms
            if due:
                self._written[session.id] = now
        if due:
            self._set(session, True, at)
        hub.ephemeral(session.account_id, session.id, {
            "type": "activity", "id": session.id, "active": True, "activeAt": at, "thinking": thinking})

    def end(self, session, time_ms=None):
        now = now_ms()
        at = now if time_ms is None else min(time_ms, now)
        self.forget(session.id)
        self._set(session, False, at)
        hub.ephemeral(session.account_id, session.id, {
            "type": "activity", "id": session.id, "active": False, "activeAt": at, "thinking": False})

    def _set(self, session, active, at):
        with hub.write(session.account_id) as changes:
            was_active = (Session
                          .select(Session.active)
                          .where(Session.id == session.id)
                          .scalar())
            if was_active is None:
                raise SessionNotFound(session.id)
            (Session
             .update(active=active, last_active_at=fn.MAX(Session.last_active_at, at))
             .where(Session.id == session.id)
             .execute())
            if bool(was_active) != active:
                changes.add(session.id, {"t": "update-session", "id": session.id, "active": active})
        session.active = active

    def sweep(self):
        """Mark sessions silent for longer than the timeout inactive; returns how many."""
        cutoff = now_ms() - self.timeout_ms
        stale = list(Session
                     .select()
                     .where(Session.active & (Session.last_active_at < cutoff)))
        for session in stale:
            self.end(session, session.last_active_at)
        return len(stale)


presence = Presence()
