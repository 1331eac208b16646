"""Domain operations: every write any contract can make, each in exactly one place.

The agent API, the management API and the websocket handler all call these; they differ only in the
shapes they load and dump. Each write is one function the writer runs in a transaction (`writer.run`),
recording the updates it causes, which the hub publishes after commit. Nothing here knows HTTP or sockets.
"""
import itertools
import json
import secrets
import threading

from peewee import fn

import claude
import models
import prices
from events import hub, update_log, writer
from models import Account, Request, Session, UsageReport, db, new_id, new_ids, now_ms, pause
from schemas import agent_message_schema, event_request_schema, event_session_schema, usage_schema


class SessionNotFound(LookupError):
    pass


def find_session(account_id, session_id):
    """The caller's session; another account's session is exactly as missing as an absent one."""
    row = db.execute_sql(*models.FIND_SESSION(session_id, account_id)).fetchone()
    if row is None:
        raise SessionNotFound(session_id)
    return _session(row)


def _session(row):
    # Built from the row directly: Peewee's result wrapper costs four times the query here. Each value
    # still goes through its field's converter: SQLite answers 0/1 for `active`, which dumps as a number.
    return Session(__no_default__=True, **{f.name: f.python_value(value) for f, value in zip(models.SESSION_FIELDS, row)})


def _reload(session):
    return Session.get_by_id(session.id)


def create_session(account_id, *, tag=None, title=None, metadata="", agent_state=None,
                   data_encryption_key=None, active=True, origin=None):
    """Create a session, or load the account's session with this tag. Returns (session, created).

    An agent's session starts active (the agent is there); one made from the browser waits for one.
    """
    def write(changes):
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
    return writer.run(account_id, write, origin)


def append_messages(account_id, session_id, messages, origin=None, agent=False):
    """Append one or more messages ({content, local_id, role?, metadata?, created_at?}) to the
    account's session.

    A local_id the session already has (or that repeats within the batch) returns the existing row
    and consumes no seq and no update. Returns the distinct rows, dicts of the message table's
    columns, in seq order. The session is looked up by the writes themselves: for another account's
    session the seq allocation finds no row (and the known messages none). `agent`: the messages are
    the agent's own record (the agent contract), so a user message among them was already seen by the
    agent and is not queued for it (a person's message from the management contract is).
    """
    if agent:
        now = now_ms()
        messages = [{**m, "delivered_at": now} if m.get("role") == "user" else m for m in messages]
    return writer.run(account_id, lambda changes: _append(changes, account_id, session_id, messages), origin)


def _append(changes, account_id, session_id, messages):
    """append_messages inside a write that is already open (`changes` is its Changes)."""
    local_ids = list({m["local_id"] for m in messages if m.get("local_id") is not None})
    known = {}
    if local_ids:
        rows = db.execute_sql(*models.known_messages(len(local_ids))(session_id, account_id, *local_ids))
        known = {row[3]: dict(zip(models.MESSAGE_COLUMNS, row)) for row in rows}
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
        last = db.execute_sql(*models.TAKE_MESSAGE_SEQS(len(fresh), now, session_id, account_id)).fetchall()
        if not last:
            raise SessionNotFound(session_id)
        first_seq = last[0][0] - len(fresh) + 1
        rows = [(message_id, session_id, seq, m.get("local_id"), m.get("role"), m["content"], m.get("metadata"),
                 m.get("created_at") or now, now, m.get("delivered_at"))
                for seq, m, message_id in zip(itertools.count(first_seq), fresh, new_ids(len(fresh)))]
        _insert_messages(rows)
        created = [dict(zip(models.MESSAGE_COLUMNS, row)) for row in rows]
        changes.stored_bytes += sum(_size(row["content"], row["metadata"]) for row in created)
        for message in agent_message_schema.dump(created, many=True):
            changes.add(session_id, {"t": "new-message", "sid": session_id, "message": message})
    existing = [row for row in known.values() if row is not None]
    return sorted(existing + created, key=lambda row: row["seq"])


def _insert_messages(rows):
    """Message rows (tuples of models.MESSAGE_COLUMNS), many to a statement. Not executemany: FTS5
    writes the terms it holds to disk at the start of each statement of the transaction it is in, so
    the search trigger wrote an index segment per message, and the index cost three times what it
    does written once per statement (bench/search.py)."""
    models.INSERT_MESSAGES.write(rows, WRITE_STEP_ROWS)


_CAS_EVENT_KEYS = {"metadata": "metadata", "agent_state": "agentState"}


def compare_and_set(session, field, value, expected_version, origin=None):
    """Set metadata or agent_state if its version is still `expected_version`.

    Returns (succeeded, version, value): on a mismatch, the current version and value.
    """
    version_field = getattr(Session, f"{field}_version")
    def write(changes):
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
    return writer.run(session.account_id, write, origin)


_SETTABLE_EVENT_KEYS = {"title": "title", "system_prompt": "systemPrompt"}


def update_session(session, origin=None, **values):
    """Set the title and/or system prompt; returns the updated session."""
    def write(changes):
        updated = (Session
                   .update({**{getattr(Session, k): v for k, v in values.items()}, Session.updated_at: now_ms()})
                   .where(Session.id == session.id)
                   .execute())
        if not updated:
            raise SessionNotFound(session.id)
        changes.add(session.id, {"t": "update-session", "id": session.id,
                                 **{_SETTABLE_EVENT_KEYS[k]: v for k, v in values.items()}})
    writer.run(session.account_id, write, origin)
    return _reload(session)


def _size(content, metadata):
    """What a message counts toward the account's stored-bytes quota."""
    return len(content.encode()) + (len(metadata.encode()) if metadata is not None else 0)





def delete_session(session, origin=None):
    """Delete one session; the database cascades to its messages (and the search index with them),
    and its updates in the log are redacted, all in one transaction."""
    def write(changes):
        size = models.session_bytes(session.id).scalar()
        if not Session.delete().where(Session.id == session.id).execute():
            raise SessionNotFound(session.id)
        update_log.redact_session(session.id).execute()
        changes.sessions -= 1
        changes.stored_bytes -= size
        changes.add(session.id, {"t": "delete-session", "sid": session.id})
    writer.run(session.account_id, write, origin)
    presence.forget(session.id)


# Rows written or deleted between two yields of a long write: each step takes milliseconds, so the
# worker serves everyone else in between (the write itself still holds the write lock throughout).
WRITE_STEP_ROWS = 500


def delete_all_sessions(account_id, origin=None):
    """Delete every session of the account in one transaction; returns how many.

    It emits one `delete-all` update ({"deleted": N}: every session the account had before it is
    gone), not one per session: 100,000 of them overflowed every watcher's queue and the log. Every
    earlier update of a session is redacted (delete_session). On SQLite its statements run a step at a
    time in a native thread: a step of 500 sessions (their messages and search entries with them)
    held the worker for tens of milliseconds."""
    def write(changes):
        ids = []
        while step := _in_native_thread(models.delete_sessions_step(account_id, WRITE_STEP_ROWS)):
            ids.extend(sid for (sid,) in step)
        if ids:
            # from the oldest seq the log still holds to the latest (the account's)
            first = update_log.first_seq(account_id)
            last = Account.select(Account.seq).where(Account.id == account_id).scalar()
            for start in range((first or 1) - 1, last or 0, WRITE_STEP_ROWS * 10):
                _in_native_thread(update_log.redact_range(account_id, start, start + WRITE_STEP_ROWS * 10))
            # nothing is left: the counters go back to zero, whatever they had drifted to
            sessions, stored_bytes = (Account
                                      .select(Account.session_count, Account.stored_bytes)
                                      .where(Account.id == account_id)
                                      .tuples()
                                      .get())
            changes.sessions, changes.stored_bytes = -sessions, -stored_bytes
            changes.add(None, {"t": "delete-all", "deleted": len(ids)})
        return ids
    ids = writer.run(account_id, write, origin)
    presence.forget(*ids)
    return len(ids)


def _in_native_thread(query):
    """The rows of one statement (a Peewee query) of the current write, off the event loop."""
    return models.fetch_off_the_loop(*query.sql())


def delete_idle_sessions(updated_before):
    """Delete every session (of every account) neither updated nor alive since `updated_before` (ms);
    returns how many. One session per transaction, each announced like a deletion from its owner's
    browser."""
    idle = list(Session
                .select(Session.id, Session.account)
                .where((Session.updated_at < updated_before) & (Session.last_active_at < updated_before))
                .order_by(Session.updated_at))
    for session in idle:
        try:
            delete_session(session)
        except SessionNotFound:
            pass  # deleted meanwhile
    return len(idle)


def prune_updates(older_than_ms):
    """Delete the update log's entries older than `older_than_ms`, an account at a time; returns how many."""
    return sum(writer.run(account_id, lambda changes: update_log.prune(changes.account_id, older_than_ms).execute())
               for (account_id,) in list(Account.select(Account.id).tuples()))



def import_session(account_id, document, origin=None):
    """Create a session from a loaded export document: fresh ids, seqs 1..N, one transaction.

    The session is inactive (no agent is behind a copy) and has no tag (an agent's create-or-load
    must keep reaching its own session). It emits one `new-session`, not a `new-message` per message:
    a 50,000-message import would flood every watcher; the session's seq says how many to fetch.
    """
    now = now_ms()
    imported, messages = document["session"], document["messages"]
    def write(changes):
        session = Session.create(
            account=account_id, title=imported["title"], system_prompt=imported["system_prompt"],
            metadata=imported["metadata"], agent_state=imported["agent_state"], seq=len(messages),
            active=False, created_at=now if imported["created_at"] is None else imported["created_at"],
            updated_at=now,
        )
        # The rows are already database values: written as they are, ~3.5x faster than insert_many,
        # which renders and converts every value of every chunk in Python.
        changes.sessions += 1
        for start in range(0, len(messages), WRITE_STEP_ROWS):
            step = messages[start:start + WRITE_STEP_ROWS]
            rows = [(message_id, session.id, seq, m["local_id"], m["role"], m["content"], m["metadata"],
                     now if m["created_at"] is None else m["created_at"], now, None)
                    for seq, m, message_id in zip(itertools.count(start + 1), step, new_ids(len(step)))]
            _insert_messages(rows)
            changes.stored_bytes += sum(_size(row[5], row[6]) for row in rows)
            pause()
        changes.add(session.id, {"t": "new-session", **event_session_schema.dump(session)})
        return session
    return writer.run(account_id, write, origin)


# --- Claude Code sessions: hook events, requests (approvals), steering and hold (routes/hooks.py) ---

class Waiters:
    """Which process waits on each pending request, and which processes are alive to answer.

    A PermissionRequest hook waits in the process it reached, whose id the request keeps (`waiter`).
    `alive` gives the ids of the processes alive now: on SQLite only this one serves the file; on
    PostgreSQL those whose follower listens (events/follower.py), a subquery read by the very
    statement that expires the others."""

    def __init__(self):
        self.configure()

    def configure(self, alive=None):
        """A new id for this process: made by the process that serves (create_app; gunicorn forks its
        workers before they load the app), from the system's randomness, so no two processes share one."""
        self.this = secrets.token_hex(8)
        self.alive = [self.this] if alive is None else alive


waiters = Waiters()


class RequestNotFound(LookupError):
    pass


class RequestNotPending(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def _request(row):
    return dict(zip(models.REQUEST_COLUMNS, row))


def _request_changed(changes, row, created=False):
    changes.add(row["session_id"], {"t": "new-request" if created else "update-request",
                                    "request": event_request_schema.dump(row)})


def hook_event(account_id, hook, key, *, message=None, request=None, cancel=None, deliver=False,
               instructions=False, waiting=None):
    """One write for one Claude Code hook event. The account's session tagged `claude:<session_id>` is
    created on the first event of any kind (inside the write, so concurrent first events make one),
    and its metadata and title are kept current. Then, as asked: `cancel` settles the session's pending
    requests as cancelled (all of them, or those for a (tool, input JSON) pair); `deliver` marks the
    person's queued messages delivered; `instructions` hands over the system prompt if it changed since
    it was last handed over; `message` (role, content JSON, metadata JSON) is stored once per `key`;
    `request` (tool, input JSON, suggestions JSON) opens a permission request, or finds the one this
    same hook opened before; `waiting` True says Claude now waits for the person (unless this write
    delivered a message, or a pending request already asks for them), False that it works again
    (see _set_waiting). Returns a dict: session, request, delivered (contents), instructions."""
    tag = claude.TAG_PREFIX + hook["session_id"]
    result = {"request": None, "delivered": [], "instructions": None}
    if message is None and request is None and cancel is None and not deliver:
        # Most events of a busy session (PreToolUse) change nothing: no write transaction for them.
        row = db.execute_sql(*models.FIND_TAGGED(account_id, tag)).fetchone()
        if row is not None:
            session = _session(row)
            if (not _stale(session, hook)
                    and not (instructions and session.system_prompt != session.prompt_delivered)
                    and (waiting is None or session.awaiting_message == waiting)):
                result["session"] = session
                return result
    def write(changes):
        now = now_ms()
        row = db.execute_sql(*models.FIND_TAGGED(account_id, tag)).fetchone()
        if row is None:
            session = Session.create(account=account_id, tag=tag, agent=claude.AGENT, title=claude.title(hook),
                                     metadata=json.dumps(claude.metadata(hook, {})))
            changes.sessions += 1
            changes.add(session.id, {"t": "new-session", **event_session_schema.dump(session)})
        else:
            session = _session(row)
            _keep_current(changes, session, hook, now)
        if cancel is not None:
            _cancel(changes, session.id, now, cancel)
        if deliver:
            result["delivered"] = _deliver(changes, session.id, now)
        if instructions and session.system_prompt != session.prompt_delivered:
            (Session
             .update(prompt_delivered=session.system_prompt)
             .where(Session.id == session.id)
             .execute())
            if session.system_prompt:
                result["instructions"] = claude.instructions(session.system_prompt)
        if message is not None:
            role, content, metadata = message
            _append(changes, account_id, session.id, [{
                "local_id": "claude:" + key, "role": role, "content": content, "metadata": metadata,
                "delivered_at": now if role == "user" else None}])
        if request is not None:
            result["request"] = _open_request(changes, session, key, request, now)
        if waiting is not None:
            _set_waiting(changes, session.id, waiting and not result["delivered"]
                         and db.execute_sql(*models.PENDING(session.id)).fetchone() is None)
        result["session"] = session
    writer.run(account_id, write)
    return result


def _previous_metadata(session):
    try:
        previous = json.loads(session.metadata)
    except ValueError:
        previous = None
    return previous if isinstance(previous, dict) else {}


def _stale(session, hook):
    """Whether the hook changes the session's metadata or gives it its first title."""
    previous = _previous_metadata(session)
    return claude.metadata(hook, previous) != previous or bool(session.title is None and claude.title(hook))


def _keep_current(changes, session, hook, now):
    previous = _previous_metadata(session)
    current = claude.metadata(hook, previous)
    if current != previous:
        text = json.dumps(current)
        version = session.metadata_version + 1
        # A session made before its first hook (client.py import-claude) becomes Claude Code's here.
        agent = {} if session.agent == claude.AGENT else {"agent": claude.AGENT}
        (Session
         .update(metadata=text, metadata_version=version, updated_at=now, **agent)
         .where(Session.id == session.id)
         .execute())
        session.metadata, session.metadata_version = text, version
        session.agent = claude.AGENT
        changes.add(session.id, {"t": "update-session", "id": session.id,
                                 "metadata": {"value": text, "version": version}, **agent})
    title = session.title is None and claude.title(hook)
    if title:
        (Session
         .update(title=title, updated_at=now)
         .where((Session.id == session.id) & Session.title.is_null())
         .execute())
        session.title = title
        changes.add(session.id, {"t": "update-session", "id": session.id, "title": title})


def _cancel(changes, session_id, now, match):
    query = (Request
             .update(status="cancelled", decided_at=now)
             .where((Request.session == session_id) & (Request.status == "pending"))
             .returning(*models.REQUEST_FIELDS))
    if match != "all":
        tool, tool_input = match
        query = query.where(_same(Request.tool, tool) & _same(Request.input, tool_input))
    for row in db.execute(query).fetchall():
        _request_changed(changes, _request(row))


def _same(field, value):
    return field.is_null() if value is None else field == value


def _deliver(changes, session_id, now):
    rows = sorted(db.execute_sql(*models.DELIVER(now, session_id)).fetchall(), key=lambda row: row[1])
    for message_id, _, _ in rows:
        changes.add(session_id, {"t": "update-message", "sid": session_id,
                                 "message": {"id": message_id, "deliveredAt": now}})
    return [content for _, _, content in rows]


def _open_request(changes, session, key, request, now):
    # A repeated hook (the same event sent again, perhaps reaching another process) waits on the
    # request the first one opened: from now on in this process, which the request names its waiter.
    ours = (Request.session == session.id) & (Request.key == key)
    existing = (db.execute(Request
                           .update(waiter=waiters.this)
                           .where(ours & (Request.status == "pending"))
                           .returning(*models.REQUEST_FIELDS)).fetchone()
                or db.execute(Request.select(*models.REQUEST_FIELDS).where(ours)).fetchone())
    if existing is not None:
        return _request(existing)
    tool, tool_input, suggestions = request
    row = dict(zip(models.REQUEST_COLUMNS, (new_id(), session.account_id, session.id, key, "permission", tool, tool_input,
                                      suggestions, "pending", None, now, None, waiters.this)))
    db.execute_sql(models.INSERT_REQUEST.render(), tuple(row.values()))
    _request_changed(changes, row, created=True)
    return row


def deliver_queued(account_id, session_id):
    """Mark the person's queued messages delivered; their contents, oldest first (no write if none)."""
    if db.execute_sql(*models.QUEUED(session_id)).fetchone() is None:
        return []
    return writer.run(account_id, lambda changes: _deliver(changes, session_id, now_ms()))


def find_request(account_id, request_id, session_id=None):
    query = models.requests_of(account_id, session_id).where(Request.id == request_id)
    row = db.execute(query).fetchone()
    if row is None:
        raise RequestNotFound(request_id)
    return _request(row)


def list_requests(account_id, session_id=None, status=None):
    """The account's (or one session's) requests, newest first, optionally of one status."""
    return [_request(row) for row in db.execute(models.requests_of(account_id, session_id, status)).fetchall()]


def settle_request(account_id, request_id, status, reason=None, session_id=None):
    """Move a pending request to `status`. Only a pending one moves: of two concurrent decisions the
    first wins and the other raises RequestNotPending with the status it met."""
    def write(changes):
        query = (Request
                 .update(status=status, reason=reason, decided_at=now_ms())
                 .where((Request.id == request_id) & (Request.account == account_id) & (Request.status == "pending"))
                 .returning(*models.REQUEST_FIELDS))
        if session_id is not None:
            query = query.where(Request.session == session_id)
        row = db.execute(query).fetchone()
        if row is None:
            raise RequestNotPending(find_request(account_id, request_id, session_id)["status"])
        row = _request(row)
        _request_changed(changes, row)
        return row
    return writer.run(account_id, write)


def set_hold(session, hold):
    """Switch hold: while on, a Stop with nothing queued waits for the person's next message."""
    def write(changes):
        if not (Session
                .update(hold=hold, updated_at=now_ms())
                .where(Session.id == session.id)
                .execute()):
            raise SessionNotFound(session.id)
        changes.add(session.id, {"t": "update-session", "id": session.id, "hold": hold})
    writer.run(session.account_id, write)
    return _reload(session)


def set_awaiting(account_id, session_id, awaiting):
    """Say (durably: a reconnecting browser sees it) whether Claude is stopped waiting for the person."""
    writer.run(account_id, lambda changes: _set_waiting(changes, session_id, awaiting))


def _set_waiting(changes, session_id, awaiting):
    """Only a change is written and announced: one `awaitingMessage: true` (one session.waiting event)
    per waiting episode, however many Stop and Notification hooks repeat it."""
    if (Session
            .update(awaiting_message=awaiting)
            .where((Session.id == session_id) & (Session.awaiting_message != awaiting))
            .execute()):
        changes.add(session_id, {"t": "update-session", "id": session_id, "awaitingMessage": awaiting})


def expire_leftovers():
    """Expire the pending requests whose waiter is not alive: its hook got no answer from it and never
    will, and the person would be shown an approval nobody waits on. Run at start and by the
    maintenance runner. Returns how many expired. A session awaiting the person still does: its
    Claude, whose held Stop got no answer either, stopped and waits in its terminal."""
    # A request without a waiter was opened by a version that kept none: alive only while such a
    # version's process serves (its follower's name holds no id: the id '').
    left = (Request.status == "pending") & fn.COALESCE(Request.waiter, "").not_in(waiters.alive)
    expired = 0
    def write(changes):
        rows = db.execute(Request
                          .update(status="expired", decided_at=now_ms())
                          .where((Request.account == changes.account_id) & left)
                          .returning(*models.REQUEST_FIELDS)).fetchall()
        for row in rows:
            _request_changed(changes, _request(row))
        return len(rows)
    for (account_id,) in list(Request.select(Request.account).where(left).distinct().tuples()):
        expired += writer.run(account_id, write)
    return expired


# --- usage and cost (happy-server's usage report) ---

def report_usage(account_id, session_id, report, origin=None):
    """Store a usage report ({key, model, tokens, cost, time}) in place of the session's previous
    one of the same key; priced from the table (prices.py) when it brings no cost. The session's sum
    changes in the same write and is announced as `update-session {usage}`. Returns the report row."""
    now = now_ms()
    at = now if report["time"] is None else min(report["time"], now)
    tokens = report["tokens"]
    counts = (tokens["input"], tokens["output"], tokens["cache_creation"], tokens["cache_read"])
    cost = prices.cost(report["model"], *counts) if "cost" not in report else report["cost"]["total"]
    def write(changes):
        if db.execute_sql(*models.FIND_SESSION(session_id, account_id)).fetchone() is None:
            raise SessionNotFound(session_id)
        fields = (UsageReport.input_tokens, UsageReport.output_tokens, UsageReport.cache_creation_tokens,
                  UsageReport.cache_read_tokens, UsageReport.cost_usd, UsageReport.model, UsageReport.at,
                  UsageReport.updated_at)
        row = db.execute(UsageReport
                         .insert(id=new_id(), account=account_id, session=session_id, key=report["key"],
                                 **dict(zip((f.name for f in fields), (*counts, cost, report["model"], at, now))),
                                 created_at=now)
                         .on_conflict(conflict_target=[UsageReport.session, UsageReport.key], preserve=fields)
                         .returning(UsageReport.id, UsageReport.cost_usd, UsageReport.created_at,
                                    UsageReport.updated_at)).fetchone()
        # The session's sum is read back from its reports (a handful per session): a replaced report
        # needs no arithmetic on the old one, and the sum can never drift from the rows.
        totals = db.execute(models.usage_sums(UsageReport.session == session_id)).fetchone()
        (Session
         .update(dict(zip((Session.usage_input, Session.usage_output, Session.usage_cache_creation,
                           Session.usage_cache_read, Session.usage_cost), totals)))
         .where(Session.id == session_id)
         .execute())
        usage = dict(zip(models.USAGE_NAMES, totals))
        changes.add(session_id, {"t": "update-session", "id": session_id, "usage": usage_schema.dump(usage)})
        return dict(zip(("id", "cost_usd", "created_at", "updated_at"), row))
    return writer.run(account_id, write, origin)


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

    def alive(self, session, time_ms=None, thinking=False, **extra):
        """`extra` rides on the activity ephemeral (a Claude Code tool call's `tool` and `detail`)."""
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
            "type": "activity", "id": session.id, "active": True, "activeAt": at, "thinking": thinking, **extra})

    def end(self, session, time_ms=None):
        now = now_ms()
        at = now if time_ms is None else min(time_ms, now)
        self.forget(session.id)
        self._set(session, False, at)
        hub.ephemeral(session.account_id, session.id, {
            "type": "activity", "id": session.id, "active": False, "activeAt": at, "thinking": False})

    def _set(self, session, active, at):
        def write(changes):
            was_active = (Session
                          .select(Session.active)
                          .where(Session.id == session.id)
                          .scalar())
            if was_active is None:
                raise SessionNotFound(session.id)
            (Session
             .update(active=active, last_active_at=models.greatest(Session.last_active_at, at))
             .where(Session.id == session.id)
             .execute())
            if bool(was_active) != active:
                changes.add(session.id, {"t": "update-session", "id": session.id, "active": active})
        writer.run(session.account_id, write)
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
