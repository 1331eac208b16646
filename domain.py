"""Domain operations: every write any contract can make, each in exactly one place.

The agent API, the management API and the websocket handler all call these; they differ only in the
shapes they load and dump. Each write is one `hub.write()` transaction that records the updates it
causes, which the hub publishes after commit. Nothing here knows HTTP or sockets.
"""
import threading

from peewee import fn

from events import hub
from models import Message, Session, new_id, now_ms
from schemas import event_message_schema, event_session_schema


class SessionNotFound(LookupError):
    pass


def find_session(account_id, session_id):
    """The caller's session; another account's session is exactly as missing as an absent one."""
    session = (Session
               .select()
               .where((Session.id == session_id) & (Session.account == account_id))
               .first())
    if session is None:
        raise SessionNotFound(session_id)
    return session


def _reload(session):
    return Session.get_by_id(session.id)


def create_session(account_id, *, tag=None, title=None, metadata="", agent_state=None,
                   data_encryption_key=None, origin=None):
    """Create a session, or load the account's session with this tag. Returns (session, created)."""
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
            data_encryption_key=data_encryption_key,
        )
        changes.add(session.id, {"t": "new-session", **event_session_schema.dump(session)})
    return session, True


def append_messages(session, messages, origin=None):
    """Append messages ({content, local_id, role?, metadata?}) with the next seqs.

    A local_id the session already has (or that repeats within the batch) returns the existing row
    and consumes no seq and no update. Returns the distinct rows in seq order.
    """
    with hub.write(session.account_id, origin) as changes:
        local_ids = {m["local_id"] for m in messages if m.get("local_id") is not None}
        known = {}
        if local_ids:
            known = {row.local_id: row for row in (Message
                                                   .select()
                                                   .where((Message.session == session.id)
                                                          & Message.local_id.in_(list(local_ids))))}
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
            last = (Session
                    .update(seq=Session.seq + len(fresh), updated_at=now)
                    .where(Session.id == session.id)
                    .returning(Session.seq)
                    .execute())
            if not last:
                raise SessionNotFound(session.id)
            first_seq = last[0].seq - len(fresh) + 1
            created = [Message(id=new_id(), session=session.id, seq=first_seq + i,
                               local_id=m.get("local_id"), role=m.get("role"), content=m["content"],
                               metadata=m.get("metadata"), created_at=m.get("created_at") or now,
                               updated_at=now)
                       for i, m in enumerate(fresh)]
            Message.insert_many([row.__data__ for row in created]).execute()
            for row in created:
                changes.add(session.id, {"t": "new-message", "sid": session.id,
                                         "message": event_message_schema.dump(row)})
    existing = [row for row in known.values() if row is not None]
    return sorted(existing + created, key=lambda row: row.seq)


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


def delete_session(session, origin=None):
    """Delete one session; the database cascades to its messages."""
    with hub.write(session.account_id, origin) as changes:
        if not Session.delete().where(Session.id == session.id).execute():
            raise SessionNotFound(session.id)
        changes.add(session.id, {"t": "delete-session", "sid": session.id})
    presence.forget(session.id)


def delete_all_sessions(account_id, origin=None):
    """Delete every session of the account in one transaction; returns how many."""
    with hub.write(account_id, origin) as changes:
        ids = [sid for (sid,) in Session.select(Session.id).where(Session.account == account_id).tuples()]
        Session.delete().where(Session.account == account_id).execute()
        for sid in ids:
            changes.add(sid, {"t": "delete-session", "sid": sid})
    for sid in ids:
        presence.forget(sid)
    return len(ids)


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

    def forget(self, session_id):
        with self._lock:
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
