"""Peewee models, database initialisation and schema migration.

This module owns the SQLite file: its pragmas, its tables and the numbered migrations that bring an
older file up to date. It knows nothing of HTTP, JSON shapes or events.
"""
import bisect
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import struct
import threading
import time
from itertools import repeat

import orjson
import peewee
from gevent import get_hub, monkey
from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    Check,
    CompositeKey,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    NodeList,
    OperationalError,
    PostgresqlDatabase,
    TextField,
    Tuple,
    fn,
)
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase
from playhouse.sqlite_ext import FTS5Model, SearchField
from psycopg.pq import TransactionStatus

import unicode61

log = logging.getLogger("switchboard")

# Connections go back to a pool instead of being closed: closing the last connection makes SQLite
# checkpoint and delete the WAL, which more than halves the write rate when done per request.
db = DatabaseProxy()

PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    # A write that waits on another process's lock retries cooperatively in events.write(), so the
    # driver-level wait stays short: under gevent it blocks every connection while it waits.
    "busy_timeout": 10,
    # Deleted rows are overwritten with zeros, not left in free space: a deleted session's text must
    # not stay readable in the file (README "Deleting").
    "secure_delete": 1,
    # A statement's journal (the pages it changes, kept to undo it alone) goes to a temporary file past
    # 64 KiB: a 100-message append created, wrote and deleted one per write, a tenth of the append's
    # CPU (bench/client.py). In memory, as are the sorts of reads that use no index (a search's ranking
    # of its matches) and of an index built by a migration: memory in proportion to what they sort.
    "temp_store": "memory",
}

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> two characters
_TRIPLES = [a + b for a in _CROCKFORD for b in _PAIRS]  # 15 bits -> three characters
_RANDOM_CHUNK = 8 * 512
_LOW_BITS = (1 << 45) - 1
_last_id = 0
_random, _offset = b"", _RANDOM_CHUNK
_id_lock = threading.Lock()


def now_ms():
    return int(time.time() * 1000)


def new_id():
    """26 URL-safe characters: 48 bits of milliseconds then 80 random bits, so ids sort by creation."""
    return new_ids(1)[0]


def new_ids(count):
    """`count` ids (new_id) in creation order, for the rows of one write.

    Random bits alone would order ids made within one millisecond by chance: the first id of a call
    that would not sort after the previous one, and every later id of the call, is the previous one
    plus a random step of 40 bits. An id's last 45 bits (9 characters) are written anew and the rest
    only when a step carries into it: one id cost a microsecond and a half written whole. The random
    bits come from os.urandom a few hundred ids at a time: one system call per id cost more than the id.
    """
    global _last_id, _random, _offset
    ids = []
    with _id_lock:
        if _offset + 8 * (count + 1) > len(_random):
            _random, _offset = os.urandom(max(_RANDOM_CHUNK, 8 * (count + 1))), 0
        first, *steps, extra = struct.unpack_from(f">{count + 1}Q", _random, _offset)  # 64 bits each
        _offset += 8 * (count + 1)
        n = now_ms() << 80 | first << 16 | extra >> 48  # 80 random bits
        if n <= _last_id:
            n = _last_id + 1 + (first >> 24)
        high, low, head = n >> 45, n & _LOW_BITS, None
        for i in range(count):
            if i:
                low += 1 + (steps[i - 1] >> 24)
                if low > _LOW_BITS:
                    high, low, head = high + (low >> 45), low & _LOW_BITS, None
            if head is None:
                head = _encode(high << 45)[:17]
            ids.append(head + _TRIPLES[low >> 30] + _TRIPLES[(low >> 15) & 32767] + _TRIPLES[low & 32767])
        _last_id = high << 45 | low
    return ids


def first_id_at(ms):
    """The smallest id new_ids() can make at `ms`: ids below it were made earlier."""
    return _encode(ms << 80)


def _encode(n, pairs=_PAIRS, triples=_TRIPLES):
    # 130 bits, 5 to a character; written out, as every write makes one or two ids per row.
    return (pairs[n >> 120] + triples[(n >> 105) & 32767] + triples[(n >> 90) & 32767]
            + triples[(n >> 75) & 32767] + triples[(n >> 60) & 32767] + triples[(n >> 45) & 32767]
            + triples[(n >> 30) & 32767] + triples[(n >> 15) & 32767] + triples[n & 32767])


def hash_secret(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


class Statement:
    """A query rendered once per database, with its placeholders, and run many times with new values:
    for the statements every request runs, whose rendering by Peewee cost more than running them.

    `build(*sentinels)` makes the query; each sentinel (make them distinct from each other and from
    the query's constants) marks where the value passed at that position goes. Calling the
    statement with the values gives (sql, params) for db.execute_sql."""

    def __init__(self, build, *sentinels):
        self.build = build
        self.sentinels = sentinels
        self._database = self._sql = self._slots = None

    def render(self):
        if self._database is not db.obj:
            sql, params = self.build(*self.sentinels).sql()
            slots = [self.sentinels.index(p) if p in self.sentinels else None for p in params]
            if sorted(s for s in slots if s is not None) != list(range(len(self.sentinels))):
                raise AssertionError(f"{sql} does not take each of {self.sentinels} once: {params}")
            self._database, self._sql, self._slots = db.obj, sql, (slots, params)
        return self._sql

    def __call__(self, *values):
        sql = self.render()
        slots, params = self._slots
        return sql, [params[i] if slot is None else values[slot] for i, slot in enumerate(slots)]

    def rows(self, rows):
        """(sql, params) writing every row in one statement: for an INSERT of one row whose values are
        the sentinels in order (many rows to a statement, not executemany: see domain._insert_messages)."""
        sql = self.render()
        slots, params = self._slots
        assert slots == list(range(len(slots))), sql
        head, values = sql.split(" VALUES ", 1)
        assert values.startswith("(") and values.endswith(")"), sql  # no RETURNING after the row
        return f"{head} VALUES {', '.join([values] * len(rows))}", [v for row in rows for v in row]

    def write(self, rows, step):
        """Write `rows` (see rows()), `step` to a statement."""
        for start in range(0, len(rows), step):
            db.execute_sql(*self.rows(rows[start:start + step]))

    def many(self, rows):
        """(sql, params of each row) for executemany."""
        sql = self.render()
        slots, params = self._slots
        if slots == list(range(len(slots))):
            return sql, rows  # the values go in as they are, in order
        return sql, [[params[i] if slot is None else row[slot] for i, slot in enumerate(slots)] for row in rows]


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class Account(BaseModel):
    id = AutoField()
    name = CharField(unique=True)
    seq = BigIntegerField(default=0)  # last update seq allocated (events.write)
    created_at = BigIntegerField(default=now_ms)
    # What the quotas count, kept by every write in the statement that allocates its seqs (events.Changes)
    session_count = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])  # (added by ALTER TABLE)
    stored_bytes = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])  # message content and metadata, UTF-8


class Token(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, on_delete="CASCADE", backref="tokens")
    name = CharField()
    secret_hash = CharField(unique=True)
    created_at = BigIntegerField(default=now_ms)
    last_used_at = BigIntegerField(null=True)


class Session(BaseModel):
    id = CharField(primary_key=True, default=new_id)
    account = ForeignKeyField(Account, on_delete="CASCADE", backref="sessions", index=False)
    tag = CharField(null=True)
    title = CharField(null=True)
    system_prompt = TextField(null=True)
    metadata = TextField(default="")
    metadata_version = IntegerField(default=0)
    agent_state = TextField(null=True)
    agent_state_version = IntegerField(default=0)
    data_encryption_key = BlobField(null=True)
    seq = BigIntegerField(default=0)  # last message seq
    active = BooleanField(default=True)
    last_active_at = BigIntegerField(default=now_ms)
    created_at = BigIntegerField(default=now_ms)
    updated_at = BigIntegerField(default=now_ms)
    # Claude Code sessions (routes/hooks.py): which agent drives it, whether its Stop waits for the
    # person's next message (hold) and does so right now (awaiting_message), and the system prompt
    # text last handed to Claude, so each change reaches it once.
    agent = CharField(null=True)
    hold = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])
    awaiting_message = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])
    prompt_delivered = TextField(null=True)
    # The sum of the session's usage reports (UsageReport), kept by the write that changes them, so
    # session lists show spend without reading the reports.
    usage_input = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    usage_output = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    usage_cache_creation = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    usage_cache_read = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    usage_cost = FloatField(default=0.0, constraints=[SQL("DEFAULT 0")])

    @property
    def usage(self):
        return {"input_tokens": self.usage_input, "output_tokens": self.usage_output,
                "cache_creation_tokens": self.usage_cache_creation, "cache_read_tokens": self.usage_cache_read,
                "cost_usd": self.usage_cost}

    class Meta:
        indexes = (
            (("account", "tag"), True),
            (("account", "id"), False),
            (("account", "updated_at", "id"), False),
            (("account", "active", "last_active_at"), False),
        )


class Message(BaseModel):
    id = CharField(primary_key=True, default=new_id)
    session = ForeignKeyField(Session, on_delete="CASCADE", backref="messages", index=False)
    seq = BigIntegerField()
    local_id = CharField(null=True)
    role = CharField(null=True, constraints=[Check("role IN ('user', 'assistant', 'system', 'tool')")])
    content = TextField()  # JSON text, stored verbatim
    metadata = TextField(null=True)  # JSON object text
    created_at = BigIntegerField(default=now_ms)
    updated_at = BigIntegerField(default=now_ms)
    delivered_at = BigIntegerField(null=True)  # a person's message to Claude: null while queued

    class Meta:
        indexes = (
            (("session", "seq"), True),
            (("session", "local_id"), True),
        )


# A person's messages still queued for Claude, found without reading the session's other messages.
Message.add_index(Message
                  .index(Message.session, Message.seq, name="message_queued")
                  .where(Message.delivered_at.is_null() & (Message.role == "user")))


class Update(BaseModel):
    """The durable per-account event log a reconnecting websocket replays from.

    Stored by (account, seq) alone, without a rowid: every write adds a row, and one b-tree instead
    of three (rowid, id, (account, seq)) is fewer pages for each commit to write."""
    account = ForeignKeyField(Account, on_delete="CASCADE", backref="updates", index=False)
    seq = BigIntegerField()
    id = CharField(default=new_id)  # sent with the update; nothing looks it up
    session_id = CharField(null=True)  # no foreign key: a delete-session update outlives its session
    body = TextField()  # JSON
    created_at = BigIntegerField(default=now_ms)

    class Meta:
        primary_key = CompositeKey("account", "seq")
        without_rowid = True


class Request(BaseModel):
    """Something an agent waits on a person for: a Claude Code permission request (routes/hooks.py)."""
    id = CharField(primary_key=True, default=new_id)
    account = ForeignKeyField(Account, on_delete="CASCADE", index=False)
    session = ForeignKeyField(Session, on_delete="CASCADE", backref="requests", index=False)
    key = CharField()  # derived from the hook's body: a repeated hook finds its request
    kind = CharField()
    tool = CharField(null=True)
    input = TextField(null=True)  # JSON
    suggestions = TextField(null=True)  # JSON
    status = CharField(constraints=[Check("status IN ('pending', 'allowed', 'denied', 'expired', 'cancelled')")])
    reason = TextField(null=True)
    created_at = BigIntegerField(default=now_ms)
    decided_at = BigIntegerField(null=True)
    waiter = CharField(null=True)  # the serving process whose hook waits on it (domain.Waiters)

    class Meta:
        indexes = (
            (("session", "key"), True),
            (("session", "id"), False),
            (("account", "status", "id"), False),
            (("account", "id"), False),  # the account's requests, newest first, without a sort
        )


class Webhook(BaseModel):
    """Where an account's events are POSTed. The secret signs deliveries, so it is kept as is (not
    hashed); it is shown once, when the webhook is added, and never read back out."""
    id = AutoField()
    account = ForeignKeyField(Account, on_delete="CASCADE", backref="webhooks")  # indexed: every write with an event reads it
    url = TextField()
    format = CharField()  # json | ntfy | slack
    events = TextField()  # comma-separated event names
    secret = CharField()
    created_at = BigIntegerField(default=now_ms)


class WebhookRun(BaseModel):
    """One event's delivery to one webhook: queued, then updated by every attempt. Its id is the
    `webhook-id` header, the same on every retry, so a receiver can drop duplicates."""
    id = CharField(primary_key=True, default=new_id)
    webhook = ForeignKeyField(Webhook, on_delete="CASCADE", backref="runs", index=False)
    session = ForeignKeyField(Session, on_delete="CASCADE", backref="webhook_runs", index=False)
    event = CharField()
    payload = TextField()  # the event as JSON (the `json` format's body); other formats are made from it
    status = CharField(constraints=[Check("status IN ('pending', 'delivered', 'failed')")])
    attempts = IntegerField(default=0)
    next_attempt_at = BigIntegerField(null=True)  # when pending: due time, or the end of a running attempt's lease
    response_status = IntegerField(null=True)
    duration_ms = IntegerField(null=True)
    error = TextField(null=True)
    created_at = BigIntegerField(default=now_ms)

    class Meta:
        indexes = (
            (("session", "id"), False),  # a session's runs, newest first; and the cascade
            (("webhook", "id"), False),  # a webhook's last run; and the cascade
        )


class VapidKey(BaseModel):
    """The server's one Web Push (VAPID) key pair, made on first start."""
    id = IntegerField(primary_key=True, constraints=[Check("id = 1")])
    private_key = TextField()  # PEM
    public_key = CharField()  # base64url uncompressed P-256 point, as pushManager.subscribe wants it
    created_at = BigIntegerField(default=now_ms)


class PushSubscription(BaseModel):
    """A browser's push endpoint, held by the token that registered it (and deleted with it)."""
    id = AutoField()
    token = ForeignKeyField(Token, on_delete="CASCADE", backref="push_subscriptions")
    endpoint = TextField(unique=True)
    p256dh = CharField()
    auth = CharField()
    created_at = BigIntegerField(default=now_ms)


class PushJob(BaseModel):
    """A notification queued for one subscription: sent by the delivery worker, retried like a run."""
    id = AutoField()
    subscription = ForeignKeyField(PushSubscription, on_delete="CASCADE", backref="jobs")
    session = ForeignKeyField(Session, on_delete="CASCADE", backref="push_jobs")
    payload = TextField()
    attempts = IntegerField(default=0)
    next_attempt_at = BigIntegerField(index=True)


# --- the statements of tokens, sessions, messages and requests that requests run ---------------------
#
# Rendered once per database (Statement): Peewee renders a query in Python on each execution, and for
# these that took longer than SQLite takes to run them (bench/append.py). A person's queued messages
# are matched with the literal of the partial index (Message), which a parameter would not use.

FIND_TOKEN = Statement(lambda secret_hash: (
    Token
    .select(Token.id, Token.secret_hash, Token.account)
    .where(Token.secret_hash == secret_hash)), "\0h")
SESSION_FIELDS = Session._meta.sorted_fields
MESSAGE_FIELDS = Message._meta.sorted_fields
MESSAGE_COLUMNS = tuple(f.column_name for f in MESSAGE_FIELDS)
REQUEST_FIELDS = Request._meta.sorted_fields
REQUEST_COLUMNS = tuple(f.column_name for f in REQUEST_FIELDS)
_QUEUED_FOR_CLAUDE = Message.delivered_at.is_null() & (Message.role == SQL("'user'"))

FIND_SESSION = Statement(lambda session_id, account_id: (
    Session
    .select(*SESSION_FIELDS)
    .where((Session.id == session_id) & (Session.account == account_id))), "\0s", 1001)
FIND_TAGGED = Statement(lambda account_id, tag: (
    Session
    .select(*SESSION_FIELDS)
    .where((Session.account == account_id) & (Session.tag == tag))), 1001, "\0t")
# Checks the session's account too: an append needs no separate lookup of its session.
TAKE_MESSAGE_SEQS = Statement(lambda count, now, session_id, account_id: (
    Session
    .update({Session.seq: Session.seq + count, Session.updated_at: now})
    .where((Session.id == session_id) & (Session.account == account_id))
    .returning(Session.seq)), 1001, 1002, "\0s", 1003)
INSERT_MESSAGES = Statement(lambda *row: Message.insert_many([row], fields=MESSAGE_FIELDS).returning(),
                            "\0i", "\0s", 1001, "\0l", "\0r", "\0c", "\0m", 1002, 1003, 1004)
QUEUED = Statement(lambda session_id: (
    Message
    .select(SQL("1"))
    .where((Message.session == session_id) & _QUEUED_FOR_CLAUDE)
    .limit(1)), "\0s")
PENDING = Statement(lambda session_id: (
    Request
    .select(SQL("1"))
    .where((Request.session == session_id) & (Request.status == "pending"))
    .limit(1)), "\0s")
DELIVER = Statement(lambda now, session_id: (
    Message
    .update({Message.delivered_at: now})
    .where((Message.session == session_id) & _QUEUED_FOR_CLAUDE)
    .returning(Message.id, Message.seq, Message.content)), 1001, "\0s")
INSERT_REQUEST = Statement(lambda *row: Request.insert_many([row], fields=REQUEST_FIELDS),
                           "\0i", 1001, "\0s", "\0k", "\0K", "\0t", "\0n", "\0g", "\0S", "\0r", 1002, 1003, "\0w")


def delete_sessions_step(account_id, limit):
    """Deletes up to `limit` of the account's sessions, returning their ids: delete-all a step at a time."""
    return (Session
            .delete()
            .where(Session.id.in_(Session.select(Session.id).where(Session.account == account_id).limit(limit)))
            .returning(Session.id))


@functools.lru_cache(maxsize=256)
def known_messages(count):
    """The statement finding which of `count` local ids a session (of the account) already has."""
    return Statement(lambda session_id, account_id, *local_ids: (
        Message
        .select(*MESSAGE_FIELDS)
        .join(Session, on=(Session.id == Message.session))
        .where((Message.session == session_id) & (Session.account == account_id) & Message.local_id.in_(local_ids))),
        "\0s", 1001, *(f"\0{i}" for i in range(count)))


def requests_of(account_id, session_id=None, status=None):
    """The account's (or one session's) requests, newest first, optionally of one status."""
    query = Request.select(*REQUEST_FIELDS).where(Request.account == account_id)
    if session_id is not None:
        query = query.where(Request.session == session_id)
    if status is not None:
        query = query.where(Request.status == status)
    return query.order_by(Request.id.desc())


def session_bytes(session_id):
    """What the session's messages count toward the stored-bytes quota: content and metadata, UTF-8."""
    return (Message
            .select(fn.COALESCE(fn.SUM(utf8_length(Message.content)
                                       + fn.COALESCE(utf8_length(Message.metadata), 0)), 0))
            .where(Message.session == session_id))


# A deleted session's updates are found without reading the rest of the log (domain.delete_session).
Update.add_index(Update.index(Update.session_id, name="update_session_id").where(Update.session_id.is_null(False)))

# The pending requests, and whose hook waits on each: what the maintenance runner checks every interval.
Request.add_index(Request.index(Request.account, Request.waiter, name="request_pending")
                  .where(Request.status == "pending"))

# Only pending runs are ever due: the index the worker polls holds them alone, not every run kept.
WebhookRun.add_index(WebhookRun.index(WebhookRun.next_attempt_at, name="webhook_run_due")
                     .where(WebhookRun.status == "pending"))


class UsageReport(BaseModel):
    """Tokens an agent reports for a session under a key (happy-server's usage report): a report
    replaces the previous one of its key. `at` is when the usage happened, the day it counts for."""
    id = CharField(primary_key=True, default=new_id)
    account = ForeignKeyField(Account, on_delete="CASCADE", index=False)
    session = ForeignKeyField(Session, on_delete="CASCADE", index=False)
    key = CharField()
    model = CharField(null=True)
    input_tokens = BigIntegerField()
    output_tokens = BigIntegerField()
    cache_creation_tokens = BigIntegerField()
    cache_read_tokens = BigIntegerField()
    cost_usd = FloatField()
    at = BigIntegerField()
    created_at = BigIntegerField(default=now_ms)
    updated_at = BigIntegerField(default=now_ms)

    class Meta:
        indexes = (
            (("session", "key"), True),  # replace-by-key; a session's sum; the cascade
            (("account", "at"), False),  # /api/usage: the account's reports in a time range
        )


USAGE_NAMES = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "cost_usd")


def usage_sums(*where):
    """The sums of USAGE_NAMES over the usage reports matching `where` (0 when none)."""
    return (UsageReport
            .select(*(fn.COALESCE(fn.SUM(getattr(UsageReport, name)), 0) for name in USAGE_NAMES))
            .where(*where))


# --- what differs between the dialects ------------------------------------------------------------

def postgres():
    return isinstance(db.obj, PostgresqlDatabase)


def greatest(*values):
    return fn.GREATEST(*values) if postgres() else fn.MAX(*values)


def utf8_length(text):
    return fn.octet_length(text) if postgres() else fn.LENGTH(text.cast("BLOB"))


def _utc_day(epoch_ms):
    """The UTC day (YYYY-MM-DD) of an epoch-millisecond expression, in the database's dialect."""
    if postgres():
        return fn.to_char(NodeList((fn.to_timestamp(epoch_ms / 1000), SQL("AT TIME ZONE 'UTC'"))), SQL("'YYYY-MM-DD'"))
    return fn.strftime(SQL("'%Y-%m-%d'"), epoch_ms / 1000, SQL("'unixepoch'"))


def usage_summary(account_id, start, end, group, limit):
    """The account's usage reported for [start, end) (epoch ms): (total, items). Items are dicts of
    USAGE_NAMES plus `day` (UTC, oldest first, days with usage only) or `session_id` and `title` (most
    expensive first, at most `limit`). Both read the reports through the (account, at) index."""
    where = (UsageReport.account == account_id) & (UsageReport.at >= start) & (UsageReport.at < end)
    total = dict(zip(USAGE_NAMES, db.execute(usage_sums(where)).fetchone()))
    if group == "day":
        # grouped by the alias: the expression written twice would hold different parameters
        query = (usage_sums(where)
                 .select_extend(_utc_day(UsageReport.at).alias("day"))
                 .group_by(SQL('"day"'))
                 .order_by(SQL('"day"')))
        items = [{"day": row[-1], **dict(zip(USAGE_NAMES, row))} for row in db.execute(query)]
    else:
        sums = usage_sums(where)
        query = (sums
                 .select_extend(UsageReport.session, Session.title)
                 .join(Session, on=(Session.id == UsageReport.session))
                 .group_by(UsageReport.session, Session.title)
                 .order_by(sums.selected_columns[4].desc(), sums.selected_columns[0].desc(), UsageReport.session)
                 .limit(limit))
        items = [{"session_id": row[5], "title": row[6], **dict(zip(USAGE_NAMES, row))} for row in db.execute(query)]
    return total, items


# --- search (README "Search") -----------------------------------------------------------------------
#
# The text a message is found by: every string in its content JSON (a plain string, Claude content
# blocks, tool input and output, happy-style {role, content: {type, text}}, output lines) except the
# values of keys that name or identify rather than say something (type, id, signature, base64 data,
# ...), joined by spaces; nothing for happy's end-to-end encrypted {"t": "encrypted", "c"} content, nor
# for the states of a line a wrapped command is still redrawing (output marked "progress": the page
# hides them once the line goes on, so a hit would open the session at a line no one sees; the line
# itself is found when it ends).
# Triggers keep the index in the statement that writes the message, so it commits (or not) with it
# on every path, a cascade included. The text is pulled out by search_text(), a function every
# connection init_db opens has (register_functions() gives it to a plain sqlite3 connection): done
# in SQL with json_tree, the trigger cost more than the rest of an append (bench/search.py).
#
# The index holds terms only. Its text is the view message_text (search_text() of each message,
# computed again for the hits a snippet is cut from), not a second copy of every message: writing that
# copy, and each message's token count (columnsize, for ranking by relevance, which search does not
# do), cost as much as the terms themselves. Because the index is told what to delete by the same
# function, search_text() must give what it gave when the message was indexed: a change to it comes
# with a migration step that rebuilds the index. Rows are keyed by the message's rowid, which VACUUM
# keeps because the table has indexes. Session titles have an index that reads them from the session
# table.

_UNSEARCHED_KEYS = frozenset(("type", "t", "id", "role", "tool_use_id", "signature", "data", "media_type", "stream"))

# Terminal escape sequences (a coloured word from a wrapped command: "\x1b[32mPASSED\x1b[0m") are not
# words: left in, FTS5 would index "32mPASSED". Each string loses its CSI sequences, OSC sequences
# ended by BEL or ESC \, other escape sequences (ESC, intermediate bytes, a final byte: ESC 7, ESC ( B)
# and any ESC that starts none of them: the same expression as the PostgreSQL function's
# (_ESCAPES_SQL) and the page's (static/js/terminal.js), which must match this one exactly.
_ESCAPES_PATTERN = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])?"
_ESCAPES = re.compile(_ESCAPES_PATTERN)


def _words_only(text):
    return _ESCAPES.sub("", text) if "\x1b" in text else text


def search_text(content):
    """The text message `content` (JSON text) is found by, "" when it holds none; None when it is not
    indexed (encrypted content, a progress state, or text that is not JSON). The strings in document order, as
    json_tree walks them: a key that is left out only leaves out a string right under it."""
    try:
        value = orjson.loads(content)
    except (orjson.JSONDecodeError, TypeError):
        try:
            value = json.loads(content)  # what orjson refuses and Python takes (integers past 64 bits)
        except (ValueError, TypeError):
            return None
    kind = type(value)
    if kind is str:
        return _words_only(value)
    if kind is dict and (value.get("t") == "encrypted"
                         or (value.get("type") == "output" and value.get("progress") is True)):
        return None
    # Depth first, one iterator per open object or array: no recursion limit, and no tuple made and
    # pushed for every item (the search triggers call this for every message written and deleted).
    texts, open_ = [], [iter(((None, value),))]
    while open_:
        for key, item in open_[-1]:
            kind = type(item)
            if kind is str:
                if key not in _UNSEARCHED_KEYS:
                    texts.append(_words_only(item))
            elif kind is dict:
                open_.append(iter(item.items()))
                break
            elif kind is list:
                open_.append(zip(repeat(None), item))
                break
        else:
            open_.pop()
    return " ".join(texts)


def register_functions(conn):
    """Give a plain sqlite3 connection the SQL functions the schema's triggers call."""
    conn.create_function("search_text", 1, search_text, deterministic=True)


class SearchIndex(FTS5Model):
    """An FTS5 table created after the statements it reads from (PRELUDE) and with the triggers that
    keep it."""
    PRELUDE = ()
    TRIGGERS = ()
    SETTINGS = ()  # statements setting FTS5's options kept in the index itself (its _config table)

    @classmethod
    def create_table(cls, safe=True, **options):
        for statement in cls.PRELUDE:
            cls._meta.database.execute_sql(statement)
        super().create_table(safe, **options)
        for statement in cls.TRIGGERS + cls.SETTINGS:
            cls._meta.database.execute_sql(statement)

    class Meta:
        database = db
        legacy_table_names = False


class MessageSearch(SearchIndex):
    text = SearchField()

    PRELUDE = ('CREATE VIEW "message_text" AS SELECT "rowid", search_text("content") AS "text" FROM "message"',)
    # LIMIT 1 keeps SQLite from flattening the subquery into the outer one, which calls the function
    # twice per message. An index reading another table is told the text to delete.
    TRIGGERS = (
        'CREATE TRIGGER "message_search_insert" AFTER INSERT ON "message" BEGIN '
        'INSERT INTO "message_search" ("rowid", "text") SELECT new."rowid", "text" '
        'FROM (SELECT search_text(new."content") AS "text" LIMIT 1) WHERE "text" IS NOT NULL; END',
        'CREATE TRIGGER "message_search_delete" AFTER DELETE ON "message" BEGIN '
        'INSERT INTO "message_search" ("message_search", "rowid", "text") SELECT \'delete\', old."rowid", "text" '
        'FROM (SELECT search_text(old."content") AS "text" LIMIT 1) WHERE "text" IS NOT NULL; END',
    )
    # Each write's terms make a segment, and FTS5 merges segments as they pile up: by default 4 at a
    # time, so every term is written again at each of log4(segments) levels, a fifth of what the index
    # costs an append. 16 at a time halves the levels; a search reads up to 15 segments a level
    # instead of 3, within the noise of its timings (bench/README.md). `crisismerge` (at how many
    # segments a level is merged at once, in the write that reaches it) stays above automerge.
    SETTINGS = (
        'INSERT INTO "message_search" ("message_search", "rank") VALUES (\'automerge\', 16)',
        'INSERT INTO "message_search" ("message_search", "rank") VALUES (\'crisismerge\', 64)',
    )

    class Meta:
        # No prefix indexes: the 2- and 3-character ones cost about 15 µs of CPU per 40-word message
        # written, more than the rest of the index. Without them a prefix query gathers every word it
        # matches first: err* on a million messages takes tens of ms (bench/README.md), off the event
        # loop, so it delays its own answer only.
        options = {"columnsize": 0, "content": "message_text", "content_rowid": "rowid"}


class SessionSearch(SearchIndex):
    title = SearchField()

    TRIGGERS = (
        'CREATE TRIGGER "session_search_insert" AFTER INSERT ON "session" BEGIN '
        'INSERT INTO "session_search" ("rowid", "title") VALUES (new."rowid", new."title"); END',
        'CREATE TRIGGER "session_search_delete" AFTER DELETE ON "session" BEGIN '
        'INSERT INTO "session_search" ("session_search", "rowid", "title") VALUES (\'delete\', old."rowid", old."title"); END',
        'CREATE TRIGGER "session_search_update" AFTER UPDATE OF "title" ON "session" BEGIN '
        'INSERT INTO "session_search" ("session_search", "rowid", "title") '
        'VALUES (\'delete\', old."rowid", old."title"); '
        'INSERT INTO "session_search" ("rowid", "title") VALUES (new."rowid", new."title"); END',
    )

    class Meta:
        options = {"content": "session", "content_rowid": "rowid"}


class BadQuery(ValueError):
    """A search query FTS5 cannot parse."""


# Marks around each match in a snippet, split out again by search(): no markup ever leaves the server.
_OPEN, _CLOSE = "\x02", "\x03"
SNIPPET_TOKENS = 16
_TITLE_HITS = ('SELECT "session"."id", "session"."title", NULL, NULL, NULL, "session"."created_at", '
               'highlight("session_search", 0, char(2), char(3)), "session_search"."rowid" '
               'FROM "session_search" JOIN "session" ON "session"."rowid" = "session_search"."rowid" '
               'WHERE "session_search" MATCH ?1 AND "session"."account_id" = ?2 AND "session_search"."rowid" < ?3 '
               'AND (?4 IS NULL OR "session"."id" = ?4) ORDER BY "session_search"."rowid" DESC LIMIT ?5')
_MESSAGE_HITS = ('SELECT "message"."session_id", "session"."title", "message"."id", "message"."seq", "message"."role", '
                 '"message"."created_at", snippet("message_search", 0, char(2), char(3), \'…\', {}), '
                 '"message_search"."rowid" FROM "message_search" '
                 'JOIN "message" ON "message"."rowid" = "message_search"."rowid" '
                 'JOIN "session" ON "session"."id" = "message"."session_id" '
                 'WHERE "message_search" MATCH ?1 AND "session"."account_id" = ?2 AND {} '
                 'ORDER BY "message_search"."rowid" DESC LIMIT ?5')
# One session's messages lie between the rowids of its first and last messages (rowids grow as rows are
# written, as seqs do): the index reads only that range, not every match of the account above it.
# (FTS5 takes one bound on each side, so the cursor and the range make one upper bound.)
_SESSION_ROWS = ('"message"."session_id" = ?4 AND "message_search"."rowid" < min(?3, 1 + '
                 '(SELECT "rowid" FROM "message" WHERE "session_id" = ?4 ORDER BY "seq" DESC LIMIT 1)) '
                 'AND "message_search"."rowid" >= (SELECT "rowid" FROM "message" WHERE "session_id" = ?4 ORDER BY "seq" LIMIT 1)')
_MESSAGE_HITS, _SESSION_MESSAGE_HITS = (_MESSAGE_HITS.format(SNIPPET_TOKENS, rows) for rows in (
    '"message_search"."rowid" < ?3 AND ?4 IS NULL', _SESSION_ROWS))
_HIT_KEYS = ("session_id", "title", "message_id", "seq", "role", "created_at", "snippet")
_NO_CURSOR = ("t", 1 << 62)


def search(account_id, query, session_id=None, limit=20, cursor=None):
    """(hits, next cursor or None) for an FTS5 query over the account's session titles and message text.

    Title hits come first, then message hits, each newest first (by rowid, so a page is read from the
    index without ranking every match: a common word matches half the messages). A cursor is
    (phase "t" or "m", last rowid). Raises BadQuery for a query FTS5 cannot parse.
    """
    phase, after = cursor or _NO_CURSOR
    hits = []
    if query.startswith("*"):  # FTS5's special queries (*reads, *id) answer with its internals, not hits
        raise BadQuery(f"unknown special query: {query[1:]}")
    if postgres():
        tsquery, phrases = _QueryParser(query).parse()
        if tsquery is None:
            return [], None
        if phase == "t":
            hits = _hits(_PG_TITLE_HITS, "t", (tsquery, account_id, after, session_id, session_id, limit + 1), phrases)
            phase, after = "m", 1 << 62
        if len(hits) <= limit:
            hits += _hits(_PG_MESSAGE_HITS, "m", (tsquery, account_id, after, session_id, session_id,
                                                  limit + 1 - len(hits)), phrases)
        more = len(hits) > limit
        hits = hits[:limit]
        return [hit for hit, _ in hits], (hits[-1][1] if more else None)
    try:
        if phase == "t":
            hits = _hits(_TITLE_HITS, "t", (query, account_id, after, session_id, limit + 1))
            phase, after = "m", 1 << 62
        if len(hits) <= limit:
            hits += _hits(_MESSAGE_HITS if session_id is None else _SESSION_MESSAGE_HITS, "m",
                          (query, account_id, after, session_id, limit + 1 - len(hits)))
    except OperationalError as e:
        # Peewee raises its own exception while handling the driver's. The statements are fixed: a plain
        # SQL error (not busy, not I/O) can only come from the query text.
        if getattr(e.__context__, "sqlite_errorcode", None) == sqlite3.SQLITE_ERROR:
            raise BadQuery(str(e)) from None
        raise
    more = len(hits) > limit
    hits = hits[:limit]
    return [hit for hit, _ in hits], (hits[-1][1] if more else None)


# PostgreSQL: the same hits from the tsvector columns (POSTGRES_MIGRATIONS), newest first by the rows'
# search position. The columns hold the words FTS5's unicode61 tokenizer would index (unicode61.py,
# switchboard_search_vector), not what PostgreSQL's parser makes of the text (it keeps "notes.txt" or
# "<tag>" whole and folds no accents). The query is read by FTS5's grammar here (_QueryParser) into a
# tsquery of words made the same way (_words), and a hit's snippet is cut here from its text as
# FTS5's snippet() cuts it (_marked).
_PG_TITLE_HITS = ('SELECT "id", "title", NULL, NULL, NULL, "created_at", "title", "search_position" '
                  'FROM "session", CAST(%s AS tsquery) AS "q" '
                  'WHERE "title_search" @@ "q" AND "account_id" = %s AND "search_position" < %s '
                  'AND (%s::text IS NULL OR "id" = %s) ORDER BY "search_position" DESC LIMIT %s')
_PG_MESSAGE_HITS = ('SELECT "m"."session_id", "s"."title", "m"."id", "m"."seq", "m"."role", "m"."created_at", '
                    'switchboard_search_text("m"."content"), "m"."search_position" '
                    'FROM "message" AS "m" JOIN "session" AS "s" ON "s"."id" = "m"."session_id", '
                    'CAST(%s AS tsquery) AS "q" WHERE "m"."search" @@ "q" AND "s"."account_id" = %s '
                    'AND "m"."search_position" < %s AND (%s::text IS NULL OR "m"."session_id" = %s) '
                    'ORDER BY "m"."search_position" DESC LIMIT %s')
# Each separator to a space and each letter that folds to its folded form, a character for a character
# (a table: a regular expression naming the separators takes three times as long to split a text).
_SPACED = {**str.maketrans(unicode61.FOLD_FROM, unicode61.FOLD_TO),
           **{code: " " for first, last in unicode61.SEPARATORS for code in range(first, last + 1)}}
_DIACRITIC = re.compile(f"[{''.join(map(chr, unicode61.DIACRITICS))}]")
_NOT_SPACES = re.compile("[^ ]+")


def _words(text):
    """(start, end, word) of each word of `text` as FTS5 indexes it: accents dropped, case folded."""
    spaced = text.translate(_SPACED)  # the offsets stay the text's
    accents = _DIACRITIC.search(spaced) is not None
    for match in _NOT_SPACES.finditer(spaced):
        word = _DIACRITIC.sub("", match.group()) if accents else match.group()
        if word:
            yield match.start(), match.end(), word


def _bracket(code_points):
    """A regular expression's bracket body for PostgreSQL naming `code_points` ((first, last) or one)."""
    return "".join(f"\\U{first:08x}-\\U{last:08x}" if last > first else f"\\U{first:08x}"
                   for first, last in (c if isinstance(c, tuple) else (c, c) for c in code_points))


_QUERY_SPACE = re.compile(r"[ \t\n\r]*")
_QUOTED = re.compile(r'"((?:[^"]|"")*+)"')
_BAREWORD = re.compile(r"[0-9A-Za-z_\x1a\x80-\U0010ffff]+")


def _query_tokens(text):
    """FTS5's tokens of a query: (kind, text), kind one of the characters (){}:,+*-^, "AND", "OR", "NOT",
    "word" (a bareword) or "string" (quoted, its quotes undone); ("end", "") last."""
    tokens, at = [], 0
    while (at := _QUERY_SPACE.match(text, at).end()) < len(text):
        if text[at] in "(){}:,+*-^":
            tokens.append((text[at], text[at]))
            at += 1
        elif text[at] == '"':
            if not (quoted := _QUOTED.match(text, at)):
                raise BadQuery("unterminated string")
            tokens.append(("string", quoted.group(1).replace('""', '"')))
            at = quoted.end()
        elif bareword := _BAREWORD.match(text, at):
            word = bareword.group()
            tokens.append((word if word in ("AND", "OR", "NOT") else "word", word))
            at = bareword.end()
        else:
            raise BadQuery(f'fts5: syntax error near "{text[at]}"')
    return tokens + [("end", "")]


class _QueryParser:
    """An FTS5 query read as FTS5's grammar reads it (ext/fts5/fts5parse.y: NOT binds tighter than AND,
    AND than OR, words side by side tighter than all), refusing what it refuses. Each part is
    (tsquery, phrases): the tsquery None where FTS5 matches nothing (a phrase of no words; words side
    by side skip it, AND with it matches nothing), phrases the lists of (word, prefix?) a snippet marks.
    What PostgreSQL cannot say is widened: NEAR(a b) is a AND b, ^a is a anywhere."""

    def __init__(self, text):
        self.tokens, self.at = _query_tokens(text), 0

    def parse(self):
        query = self.either()
        self.take("end")
        return query

    def peek(self, ahead=0):
        return self.tokens[self.at + ahead][0]

    def take(self, *kinds):
        kind, text = self.tokens[self.at]
        if kind not in kinds:
            raise BadQuery(f'fts5: syntax error near "{text}"')
        self.at += 1
        return text

    def either(self):
        left, shown = self.both()
        while self.peek() == "OR":
            self.take("OR")
            right, more = self.both()
            left = right if left is None else left if right is None else f"({left}) | ({right})"
            shown += more
        return left, shown

    def both(self):
        left, shown = self.but_not()
        while self.peek() == "AND":
            self.take("AND")
            right, more = self.but_not()
            left = None if left is None or right is None else f"({left}) & ({right})"
            shown += more
        return left, shown

    def but_not(self):
        left, shown = self.operand()
        while self.peek() == "NOT":
            self.take("NOT")
            right, _ = self.operand()
            if left is not None and right is not None:
                left = f"({left}) & !({right})"
        return left, shown

    def operand(self):
        self.refuse_columns()
        if self.peek() == "(":
            self.take("(")
            operand = self.either()
            self.take(")")
            return operand
        parts = [self.near()]
        while self.peek() in ("word", "string", "^", "-", "{"):
            parts.append(self.near())
        return _all(parts)

    def refuse_columns(self):
        """A column filter (col:, -col:, {a b}:) names a column only one of the two indexes has (text,
        title), so FTS5 refuses it in the other."""
        if self.peek() in ("-", "{") or self.peek() in ("word", "string") and self.peek(1) == ":":
            if self.peek() == "-":
                self.take("-")
            if self.peek() == "{":
                self.take("{")
            raise BadQuery(f"no such column: {self.take('word', 'string')}")

    def near(self):
        self.refuse_columns()
        if self.peek() == "^":
            self.take("^")
        elif self.peek() == "word" and self.peek(1) == "(":
            if (word := self.take("word")) != "NEAR":
                raise BadQuery(f'fts5: syntax error near "{word}"')
            self.take("(")
            phrases = [self.phrase()]
            while self.peek() in ("word", "string"):
                phrases.append(self.phrase())
            if self.peek() == ",":
                self.take(",")
                distance = self.take("word", "string")
                if self.tokens[self.at - 1][0] != "word" or not distance.isascii() or not distance.isdigit():
                    raise BadQuery(f'expected integer, got "{distance}"')
            self.take(")")
            return _all(phrases)
        return self.phrase()

    def phrase(self):
        terms = self.phrase_words()
        while self.peek() == "+":
            self.take("+")
            terms += self.phrase_words()
        if not terms:
            return None, []
        return " <-> ".join(f"'{word}'" + ":*" * prefix for word, prefix in terms), [terms]

    def phrase_words(self):
        words = [word for _, _, word in _words(self.take("word", "string"))]
        prefix = self.peek() == "*"
        if prefix:
            self.take("*")
        return [(word, prefix and i == len(words) - 1) for i, word in enumerate(words)]


def _all(parts):
    """Parts side by side: all of them, those of no words left out."""
    queries = [f"({query})" for query, _ in parts if query is not None]
    return (" & ".join(queries) or None), [phrase for _, phrases in parts for phrase in phrases]


_SENTENCE_END = re.compile(r"[.:][ \t\n\r]+")


def _marked(text, phrases, size=None):
    """`text` with each instance of `phrases` (lists of (word, prefix?)) between _OPEN and _CLOSE, as
    FTS5's highlight() marks it or, given a size, its snippet() cuts it: the `size` words it scores
    best ("…" where cut), as ext/fts5/fts5_aux.c does."""
    words = list(_words(text))
    terms = [word for _, _, word in words]

    def matches(at, term, prefix):
        return terms[at] == term or prefix and terms[at].startswith(term)

    # (first word, word after the last, phrase) of each instance, in FTS5's order
    found = sorted(((at, at + len(phrase), n) for n, phrase in enumerate(phrases)
                    for at in range(len(words) - len(phrase) + 1)
                    if matches(at, *phrase[0]) and all(matches(at + k, *term) for k, term in enumerate(phrase[1:], 1))),
                   key=lambda instance: (instance[0], instance[2]))
    starts = [at for at, _, _ in found]

    def score(first_word):
        """1000 for each phrase found from `first_word` on within `size` words, 1 for each repeat; the
        first instance's word and the last's end."""
        seen, total = set(), 0
        within = found[bisect.bisect_left(starts, first_word):bisect.bisect_left(starts, first_word + size)]
        for _, _, n in within:
            total += 1 if n in seen else 1000
            seen.add(n)
        return total, within[0][0] if within else 0, within[-1][1] if within else 0

    first, last, best = 0, len(words) - 1, 0
    if size is not None:
        # the window around each instance, centred (C's division); or from the start of its sentence (a
        # word after "." or ":" and a space), scored a little higher
        after_stop = {stop.end() for stop in _SENTENCE_END.finditer(text)}
        sentences = [i for i, (start, _, _) in enumerate(words) if i == 0 or start in after_stop]
        for at in starts:
            total, start, end = score(at)
            if total > best:
                best, first = total, max(0, min(start - int((size - (end - start)) / 2), len(words) - size))
            sentence = sentences[bisect.bisect_right(sentences, at) - 1]
            if len(words) > size and sentence < at:
                total = score(sentence)[0] + (120 if sentence == 0 else 100)
                if total > best:
                    best, first = total, sentence
        last = first + size - 1
    spans = []  # overlapping instances as one; those starting before the cut are not marked
    for at, stop, _ in found:
        if spans and at <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], stop - 1)
        else:
            spans.append([at, stop - 1])
    spans = [span for span in reversed(spans) if span[0] >= first]  # the next one last
    out, offset = ["…"] if first else [], words[first][0] if first else 0
    for at in range(first, min(last, len(words) - 1) + 1):
        start, end, _ = words[at]
        if spans and at == spans[-1][0]:
            out += [text[offset:start], _OPEN]
            offset = start
        if spans and at == spans[-1][1]:
            out += [text[offset:end], _CLOSE]
            offset = end
            spans.pop()
        if at == last:
            out.append(text[offset:end])
            offset = end
            if spans and spans[-1][0] <= at < spans[-1][1]:
                out.append(_CLOSE)
    out.append(text[offset:] if last >= len(words) - 1 else "…")
    return "".join(out)


# Searches running at once off the event loop: the others wait their turn in their greenlets, so slow
# queries cannot take every thread of the pool the writer commits in.
_SEARCHES = threading.BoundedSemaphore(4)


def _hits(sql, phase, params, phrases=None):
    """Hits from SQL returning _HIT_KEYS and a position; on PostgreSQL the "snippet" is the text, which
    `phrases` mark here."""
    if postgres():
        rows = db.execute_sql(sql, params).fetchall()
    else:
        # A query FTS5 answers slowly (a prefix matching many words) delays its own answer only.
        with _SEARCHES:
            rows = fetch_off_the_loop(sql, params)
    found = []
    for row in rows:
        hit = dict(zip(_HIT_KEYS, row[:7]))
        snippet = hit["snippet"] or ""
        if phrases is not None:
            if len(snippet) > 10_000:
                # Python's CPU, on the event loop: a long message's snippet takes tens of milliseconds
                # (a 100,000-character one about 40), so others are served between two of them.
                pause()
            snippet = _marked(snippet, phrases, SNIPPET_TOKENS if phase == "m" else None)
        hit["snippet"] = _segments(snippet)
        found.append((hit, (phase, row[7])))
    return found


def _segments(text):
    """Snippet text with match marks as [{"text", "match"}]: consecutive pieces, marks removed."""
    segments = []
    for i, part in enumerate(text.split(_OPEN)):
        matched, _, rest = part.partition(_CLOSE) if i else ("", "", part)
        for piece, match in ((matched, True), (rest, False)):
            if piece:
                segments.append({"text": piece, "match": match})
    return segments


# --- the reads the views run: each a query, so tests can render it (EXPLAIN QUERY PLAN) -------------

def message_range(session_id, limit, after_seq=None, before_seq=None):
    """Up to `limit` of the session's messages after `after_seq` (ascending, the default from 0) or
    before `before_seq` (descending)."""
    query = Message.select().where(Message.session == session_id)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq).order_by(Message.seq.desc())
    else:
        query = query.where(Message.seq > (after_seq or 0)).order_by(Message.seq)
    return query.limit(limit)


def newest_messages(session_id, limit):
    return Message.select().where(Message.session == session_id).order_by(Message.seq.desc()).limit(limit)


def sessions_by_update(account_id, limit=None, cursor=None, columns=()):
    """The account's sessions, most recently updated first (ties: newest id first), from the index
    that orders them; after `cursor` ((updated_at, id) of the last one seen), if given."""
    query = (Session
             .select(*columns)
             .where(Session.account == account_id)
             .order_by(Session.updated_at.desc(), Session.id.desc())
             .limit(limit))
    if cursor is not None:
        query = query.where(Tuple(Session.updated_at, Session.id) < Tuple(*cursor))
    return query


def sessions_by_id(account_id, limit, before_id=None, changed_since=None):
    """The account's sessions, newest id first, before `before_id` and updated after `changed_since`."""
    query = Session.select().where(Session.account == account_id)
    if before_id is not None:
        query = query.where(Session.id < before_id)
    if changed_since is not None:
        query = query.where(Session.updated_at > changed_since)
    return query.order_by(Session.id.desc()).limit(limit)


def active_sessions(account_id, since_ms, limit):
    """The account's active sessions alive after `since_ms`, newest activity first."""
    return (Session
            .select()
            .where((Session.account == account_id) & (Session.active == True)  # noqa: E712 (= 1 uses the index)
                   & (Session.last_active_at > since_ms))
            .order_by(Session.last_active_at.desc())
            .limit(limit))


# The working directory a session's metadata names (Claude Code's and client.py's `cwd`); null when
# the metadata is not JSON (an agent may encrypt it) or names no string there.
_CWD_SQLITE = SQL("CASE WHEN json_valid(\"metadata\") AND json_type(\"metadata\", '$.cwd') = 'text' "
                  "THEN json_extract(\"metadata\", '$.cwd') END")
_CWD_POSTGRES = SQL('switchboard_cwd("metadata")')  # PostgreSQL's step 2


def _cwd():
    return _CWD_POSTGRES if postgres() else _CWD_SQLITE


def session_page(account_id, limit, cursor=None, active=None, waiting=None, project=None):
    """(sessions, next cursor or None): one page of the account's sessions, most recently updated first.

    Keyset on (updated_at, id), read from the index that orders them; the cursor is the last
    session's "updated_at.id". A session updated during a walk moves above the cursor: it is not
    listed again (nor, if not yet reached, at all): the walk lists every session left untouched
    once, and the update log tells a watcher about the moved one. Filters (None: any) are checked
    on the rows the index walk reads, so a filter that matches few sessions reads more of them."""
    if cursor is not None:
        updated_at, _, session_id = cursor.partition(".")
        cursor = int(updated_at), session_id
    query = sessions_by_update(account_id, limit + 1, cursor)
    if active is not None:
        query = query.where(Session.active == active)
    if waiting is not None:
        pending = Request.select(Request.session).where((Request.account == account_id) & (Request.status == "pending"))
        condition = (Session.awaiting_message == True) | Session.id.in_(pending)  # noqa: E712 (SQL, not Python)
        query = query.where(condition if waiting else ~condition)
    if project is not None:
        query = query.where(_cwd() == project)
    rows = list(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (f"{rows[-1].updated_at}.{rows[-1].id}" if more else None)


def projects(account_id, limit=200):
    """The working directories the account's sessions name, most recently updated first, with counts."""
    cwd, last = _cwd(), fn.MAX(Session.updated_at)
    rows = (Session
            .select(cwd, fn.COUNT(SQL("*")), last)
            .where((Session.account == account_id) & cwd.is_null(False))
            .group_by(cwd)
            .order_by(last.desc())
            .limit(limit)
            .tuples())
    return [{"directory": d, "sessions": n, "updated_at": at} for d, n, at in rows]


PAGE_ROWS = 1000
PAGE_BYTES = 4 << 20  # a page also ends here: a thousand 1 MiB messages must not sit in memory at once


def message_pages(session_id, last_seq):
    """The session's messages with seq up to `last_seq`, as dicts, in pages of PAGE_ROWS rows or
    PAGE_BYTES of content.

    Each page is read on a pooled connection held only while reading it: a streamed answer is sent
    after the request's own connection was released, and a slow client must not keep a read
    transaction open. Stopping at the seq the caller saw makes the result the session as it was
    then, however many messages arrive meanwhile.
    """
    after = 0
    while after < last_seq:
        query = (Message
                 .select(Message.id, Message.seq, Message.role, Message.content, Message.metadata,
                         Message.local_id, Message.created_at, Message.delivered_at)
                 .where((Message.session == session_id) & (Message.seq > after) & (Message.seq <= last_seq))
                 .order_by(Message.seq)
                 .limit(PAGE_ROWS))
        page, size = [], 0
        with db.connection_context():
            cursor = db.execute(query)
            try:
                names = [column[0] for column in cursor.description]
                for values in cursor:
                    page.append(dict(zip(names, values)))
                    size += len(page[-1]["content"]) + len(page[-1]["metadata"] or "")
                    if size >= PAGE_BYTES:
                        break
            finally:
                cursor.close()  # ends the statement, and with it the read transaction, even after a break
        if not page:
            return
        yield page
        after = page[-1]["seq"]


MODELS = [Account, Token, Session, Message, Update, Request, Webhook, WebhookRun, VapidKey, PushSubscription,
          PushJob, UsageReport, MessageSearch, SessionSearch]

# Each step takes the database from version i to i + 1. Steps are frozen SQL, never the current
# models: a file created by an old version must go through exactly the steps a new file goes through.
MIGRATIONS = [
    [
        'CREATE TABLE IF NOT EXISTS "account" ("id" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(255) NOT NULL, "seq" INTEGER NOT NULL, "created_at" INTEGER NOT NULL)',
        'CREATE UNIQUE INDEX IF NOT EXISTS "account_name" ON "account" ("name")',
        'CREATE TABLE IF NOT EXISTS "token" ("id" INTEGER NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "name" VARCHAR(255) NOT NULL, "secret_hash" VARCHAR(255) NOT NULL, "created_at" INTEGER NOT NULL, "last_used_at" INTEGER, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX IF NOT EXISTS "token_account_id" ON "token" ("account_id")',
        'CREATE UNIQUE INDEX IF NOT EXISTS "token_secret_hash" ON "token" ("secret_hash")',
        'CREATE TABLE IF NOT EXISTS "session" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "tag" VARCHAR(255), "title" VARCHAR(255), "system_prompt" TEXT, "metadata" TEXT NOT NULL, "metadata_version" INTEGER NOT NULL, "agent_state" TEXT, "agent_state_version" INTEGER NOT NULL, "data_encryption_key" BLOB, "seq" INTEGER NOT NULL, "active" INTEGER NOT NULL, "last_active_at" INTEGER NOT NULL, "created_at" INTEGER NOT NULL, "updated_at" INTEGER NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX IF NOT EXISTS "session_account_id" ON "session" ("account_id")',
        'CREATE UNIQUE INDEX IF NOT EXISTS "session_account_id_tag" ON "session" ("account_id", "tag")',
        'CREATE INDEX IF NOT EXISTS "session_account_id_updated_at" ON "session" ("account_id", "updated_at")',
        'CREATE INDEX IF NOT EXISTS "session_account_id_active_last_active_at" ON "session" ("account_id", "active", "last_active_at")',
        'CREATE TABLE IF NOT EXISTS "message" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "session_id" VARCHAR(255) NOT NULL, "seq" INTEGER NOT NULL, "local_id" VARCHAR(255), "role" VARCHAR(255) CHECK (role IN (\'user\', \'assistant\', \'system\', \'tool\')), "content" TEXT NOT NULL, "metadata" TEXT, "created_at" INTEGER NOT NULL, "updated_at" INTEGER NOT NULL, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX IF NOT EXISTS "message_session_id" ON "message" ("session_id")',
        'CREATE UNIQUE INDEX IF NOT EXISTS "message_session_id_seq" ON "message" ("session_id", "seq")',
        'CREATE UNIQUE INDEX IF NOT EXISTS "message_session_id_local_id" ON "message" ("session_id", "local_id")',
        'CREATE TABLE IF NOT EXISTS "update" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "seq" INTEGER NOT NULL, "session_id" VARCHAR(255), "body" TEXT NOT NULL, "created_at" INTEGER NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX IF NOT EXISTS "update_account_id" ON "update" ("account_id")',
        'CREATE UNIQUE INDEX IF NOT EXISTS "update_account_id_seq" ON "update" ("account_id", "seq")',
    ],
    # 2: the v2 cursor pages by (account, id); the dropped indexes were maintained by every write
    # and each duplicates the leading column of a composite index on its table.
    [
        'CREATE INDEX IF NOT EXISTS "session_account_id_id" ON "session" ("account_id", "id")',
        'DROP INDEX IF EXISTS "session_account_id"',
        'DROP INDEX IF EXISTS "message_session_id"',
        'DROP INDEX IF EXISTS "update_account_id"',
    ],
    # 3: the update log keyed by (account, seq) without a rowid (see Update); its rows are copied over.
    [
        'ALTER TABLE "update" RENAME TO "update_v2"',
        'CREATE TABLE "update" ("account_id" INTEGER NOT NULL, "seq" INTEGER NOT NULL, "id" VARCHAR(255) NOT NULL, "session_id" VARCHAR(255), "body" TEXT NOT NULL, "created_at" INTEGER NOT NULL, PRIMARY KEY ("account_id", "seq"), FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE) WITHOUT ROWID',
        'INSERT INTO "update" ("account_id", "seq", "id", "session_id", "body", "created_at") '
        'SELECT "account_id", "seq", "id", "session_id", "body", "created_at" FROM "update_v2"',
        'DROP TABLE "update_v2"',
    ],
    # 4: Claude Code sessions: agent, hold and the delivered system prompt on sessions, delivery of a
    # person's messages, and the requests (approvals) an agent waits on.
    [
        'ALTER TABLE "session" ADD COLUMN "agent" VARCHAR(255)',
        'ALTER TABLE "session" ADD COLUMN "hold" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "awaiting_message" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "prompt_delivered" TEXT',
        'ALTER TABLE "message" ADD COLUMN "delivered_at" INTEGER',
        'CREATE INDEX IF NOT EXISTS "message_queued" ON "message" ("session_id", "seq") WHERE (("delivered_at" IS NULL) AND ("role" = \'user\'))',
        'CREATE TABLE IF NOT EXISTS "request" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "session_id" VARCHAR(255) NOT NULL, "key" VARCHAR(255) NOT NULL, "kind" VARCHAR(255) NOT NULL, "tool" VARCHAR(255), "input" TEXT, "suggestions" TEXT, "status" VARCHAR(255) NOT NULL CHECK (status IN (\'pending\', \'allowed\', \'denied\', \'expired\', \'cancelled\')), "reason" TEXT, "created_at" INTEGER NOT NULL, "decided_at" INTEGER, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE UNIQUE INDEX IF NOT EXISTS "request_session_id_key" ON "request" ("session_id", "key")',
        'CREATE INDEX IF NOT EXISTS "request_session_id_id" ON "request" ("session_id", "id")',
        'CREATE INDEX IF NOT EXISTS "request_account_id_status_id" ON "request" ("account_id", "status", "id")',
    ],
    # 5: notifications.
    # Webhooks and their runs (the durable delivery queue), the Web Push key, subscriptions and their
    # queue. Pending runs are found through a partial index that holds only them.
    [
        'CREATE TABLE "webhook" ("id" INTEGER NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "url" TEXT NOT NULL, "format" VARCHAR(255) NOT NULL, "events" TEXT NOT NULL, "secret" VARCHAR(255) NOT NULL, "created_at" INTEGER NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "webhook_account_id" ON "webhook" ("account_id")',
        'CREATE TABLE "webhook_run" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "webhook_id" INTEGER NOT NULL, "session_id" VARCHAR(255) NOT NULL, "event" VARCHAR(255) NOT NULL, "payload" TEXT NOT NULL, "status" VARCHAR(255) NOT NULL CHECK (status IN (\'pending\', \'delivered\', \'failed\')), "attempts" INTEGER NOT NULL, "next_attempt_at" INTEGER, "response_status" INTEGER, "duration_ms" INTEGER, "error" TEXT, "created_at" INTEGER NOT NULL, FOREIGN KEY ("webhook_id") REFERENCES "webhook" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "webhook_run_session_id_id" ON "webhook_run" ("session_id", "id")',
        'CREATE INDEX "webhook_run_webhook_id_id" ON "webhook_run" ("webhook_id", "id")',
        'CREATE INDEX "webhook_run_due" ON "webhook_run" ("next_attempt_at") WHERE ("status" = \'pending\')',
        'CREATE TABLE "vapid_key" ("id" INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), "private_key" TEXT NOT NULL, "public_key" VARCHAR(255) NOT NULL, "created_at" INTEGER NOT NULL)',
        'CREATE TABLE "push_subscription" ("id" INTEGER NOT NULL PRIMARY KEY, "token_id" INTEGER NOT NULL, "endpoint" TEXT NOT NULL, "p256dh" VARCHAR(255) NOT NULL, "auth" VARCHAR(255) NOT NULL, "created_at" INTEGER NOT NULL, FOREIGN KEY ("token_id") REFERENCES "token" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "push_subscription_token_id" ON "push_subscription" ("token_id")',
        'CREATE UNIQUE INDEX "push_subscription_endpoint" ON "push_subscription" ("endpoint")',
        'CREATE TABLE "push_job" ("id" INTEGER NOT NULL PRIMARY KEY, "subscription_id" INTEGER NOT NULL, "session_id" VARCHAR(255) NOT NULL, "payload" TEXT NOT NULL, "attempts" INTEGER NOT NULL, "next_attempt_at" INTEGER NOT NULL, FOREIGN KEY ("subscription_id") REFERENCES "push_subscription" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "push_job_subscription_id" ON "push_job" ("subscription_id")',
        'CREATE INDEX "push_job_session_id" ON "push_job" ("session_id")',
        'CREATE INDEX "push_job_next_attempt_at" ON "push_job" ("next_attempt_at")',
    ],
    # 6: the counters the per-account quotas check, from what is stored;
    # the lists' order (updated_at, id) read from one index, without a sort or a row lookup per session.
    [
        'CREATE INDEX IF NOT EXISTS "session_account_id_updated_at_id" ON "session" ("account_id", "updated_at", "id")',
        'DROP INDEX IF EXISTS "session_account_id_updated_at"',
        'ALTER TABLE "account" ADD COLUMN "session_count" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "account" ADD COLUMN "stored_bytes" INTEGER NOT NULL DEFAULT 0',
        'UPDATE "account" SET "session_count" = (SELECT COUNT(*) FROM "session" WHERE "session"."account_id" = "account"."id"), '
        '"stored_bytes" = (SELECT COALESCE(SUM(LENGTH(CAST("message"."content" AS BLOB)) '
        '+ COALESCE(LENGTH(CAST("message"."metadata" AS BLOB)), 0)), 0) FROM "message" '
        'JOIN "session" ON "session"."id" = "message"."session_id" WHERE "session"."account_id" = "account"."id")',
    ],
    # 7: usage and cost. Usage reports, and their sum on each session (kept by the write that changes
    # a report) so session lists need no join. Self-contained: it touches nothing another step adds.
    [
        'ALTER TABLE "session" ADD COLUMN "usage_input" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "usage_output" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "usage_cache_creation" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "usage_cache_read" INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "session" ADD COLUMN "usage_cost" REAL NOT NULL DEFAULT 0',
        'CREATE TABLE "usage_report" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "session_id" VARCHAR(255) NOT NULL, "key" VARCHAR(255) NOT NULL, "model" VARCHAR(255), "input_tokens" INTEGER NOT NULL, "output_tokens" INTEGER NOT NULL, "cache_creation_tokens" INTEGER NOT NULL, "cache_read_tokens" INTEGER NOT NULL, "cost_usd" REAL NOT NULL, "at" INTEGER NOT NULL, "created_at" INTEGER NOT NULL, "updated_at" INTEGER NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE UNIQUE INDEX "usage_report_session_id_key" ON "usage_report" ("session_id", "key")',
        'CREATE INDEX "usage_report_account_id_at" ON "usage_report" ("account_id", "at")',
    ],
    # 8: search: full-text indexes of message text and session titles, kept by triggers (see
    # MessageSearch), filled from what is already stored; and the update log by session.
    [
        'CREATE VIRTUAL TABLE "message_search" USING fts5 ("text")',
        'CREATE TRIGGER "message_search_insert" AFTER INSERT ON "message" WHEN json_valid(new."content") AND json_extract(new."content", \'$.t\') IS NOT \'encrypted\' BEGIN INSERT INTO "message_search" ("rowid", "text") SELECT new."rowid", group_concat("value", \' \') FROM json_tree(new."content") WHERE "type" = \'text\' AND coalesce("key", \'\') NOT IN (\'type\', \'t\', \'id\', \'role\', \'tool_use_id\', \'signature\', \'data\', \'media_type\', \'stream\'); END',
        'CREATE TRIGGER "message_search_delete" AFTER DELETE ON "message" BEGIN DELETE FROM "message_search" WHERE "rowid" = old."rowid"; END',
        'CREATE VIRTUAL TABLE "session_search" USING fts5 ("title", content=session, content_rowid=rowid)',
        'CREATE TRIGGER "session_search_insert" AFTER INSERT ON "session" BEGIN INSERT INTO "session_search" ("rowid", "title") VALUES (new."rowid", new."title"); END',
        'CREATE TRIGGER "session_search_delete" AFTER DELETE ON "session" BEGIN INSERT INTO "session_search" ("session_search", "rowid", "title") VALUES (\'delete\', old."rowid", old."title"); END',
        'CREATE TRIGGER "session_search_update" AFTER UPDATE OF "title" ON "session" BEGIN INSERT INTO "session_search" ("session_search", "rowid", "title") VALUES (\'delete\', old."rowid", old."title"); INSERT INTO "session_search" ("rowid", "title") VALUES (new."rowid", new."title"); END',
        'INSERT INTO "message_search" ("rowid", "text") SELECT "message"."rowid", (SELECT group_concat("value", \' \') FROM json_tree("message"."content") WHERE "type" = \'text\' AND coalesce("key", \'\') NOT IN (\'type\', \'t\', \'id\', \'role\', \'tool_use_id\', \'signature\', \'data\', \'media_type\', \'stream\')) FROM "message" WHERE json_valid("message"."content") AND json_extract("message"."content", \'$.t\') IS NOT \'encrypted\'',
        'INSERT INTO "session_search" ("session_search") VALUES (\'rebuild\')',
        # a deleted session's updates are redacted in the deletion's transaction: found by this index
        'CREATE INDEX "update_session_id" ON "update" ("session_id") WHERE ("session_id" IS NOT NULL)',
    ],
    # 9: the message index rebuilt with prefix indexes, and its text pulled out by search_text() (see
    # MessageSearch) instead of json_tree in SQL.
    [
        'DROP TABLE "message_search"',
        'CREATE VIRTUAL TABLE "message_search" USING fts5 ("text", prefix=\'2 3\')',
        'DROP TRIGGER "message_search_insert"',
        'CREATE TRIGGER "message_search_insert" AFTER INSERT ON "message" BEGIN INSERT INTO "message_search" ("rowid", "text") SELECT new."rowid", "text" FROM (SELECT search_text(new."content") AS "text" LIMIT 1) WHERE "text" IS NOT NULL; END',
        'INSERT INTO "message_search" ("rowid", "text") SELECT "rowid", search_text("content") FROM "message" WHERE search_text("content") IS NOT NULL',
    ],
    # 10: an account's requests newest first (all statuses) read from an index instead of sorted.
    [
        'CREATE INDEX "request_account_id_id" ON "request" ("account_id", "id")',
    ],
    # 11: the message index holds terms only, reading its text from the view message_text (see
    # MessageSearch), without prefix indexes or token counts.
    [
        'DROP TRIGGER "message_search_insert"',
        'DROP TRIGGER "message_search_delete"',
        'DROP TABLE "message_search"',
        'CREATE VIEW "message_text" AS SELECT "rowid", search_text("content") AS "text" FROM "message"',
        'CREATE VIRTUAL TABLE "message_search" USING fts5 ("text", columnsize=0, content=message_text, content_rowid=rowid)',
        'CREATE TRIGGER "message_search_insert" AFTER INSERT ON "message" BEGIN INSERT INTO "message_search" ("rowid", "text") SELECT new."rowid", "text" FROM (SELECT search_text(new."content") AS "text" LIMIT 1) WHERE "text" IS NOT NULL; END',
        'CREATE TRIGGER "message_search_delete" AFTER DELETE ON "message" BEGIN INSERT INTO "message_search" ("message_search", "rowid", "text") SELECT \'delete\', old."rowid", "text" FROM (SELECT search_text(old."content") AS "text" LIMIT 1) WHERE "text" IS NOT NULL; END',
        'INSERT INTO "message_search" ("message_search") VALUES (\'rebuild\')',
    ],
    # 12: the process whose hook waits on a request, and the pending requests found by it: a request
    # whose process is gone is expired (domain.expire_leftovers).
    [
        'ALTER TABLE "request" ADD COLUMN "waiter" VARCHAR(255)',
        'CREATE INDEX "request_pending" ON "request" ("account_id", "waiter") WHERE ("status" = \'pending\')',
    ],
    # 13: the message index merges its segments 16 at a time (see MessageSearch.SETTINGS).
    list(MessageSearch.SETTINGS),
    # 14: search_text() leaves terminal escape sequences out (see _ESCAPES): the index is built again
    # from the messages, so that what a delete tells it is what it holds.
    ['INSERT INTO "message_search" ("message_search") VALUES (\'rebuild\')'],
    # 15: search_text() leaves progress states out (see "search"): the same again.
    ['INSERT INTO "message_search" ("message_search") VALUES (\'rebuild\')'],
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    pass


# What a message is found by on PostgreSQL: the same strings of its content JSON as the SQLite triggers
# take (see "search" above), by a function the message row's generated search column calls.
_SEARCH_TEXT_FUNCTION = """CREATE FUNCTION switchboard_search_text(content text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE doc jsonb;
BEGIN
    BEGIN
        doc := content::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF jsonb_typeof(doc) = 'object' AND doc ->> 't' = 'encrypted' THEN
        RETURN NULL;
    END IF;
    RETURN (WITH RECURSIVE node(key, value) AS (
                SELECT NULL::text, doc
                UNION ALL
                SELECT child.key, child.value FROM node CROSS JOIN LATERAL (
                    SELECT e.key, e.value FROM jsonb_each(
                        CASE WHEN jsonb_typeof(node.value) = 'object' THEN node.value ELSE '{}'::jsonb END) AS e
                    UNION ALL
                    SELECT NULL, a.value FROM jsonb_array_elements(
                        CASE WHEN jsonb_typeof(node.value) = 'array' THEN node.value ELSE '[]'::jsonb END) AS a
                ) AS child)
            SELECT string_agg(value #>> '{}', ' ') FROM node
            WHERE jsonb_typeof(value) = 'string' AND coalesce(key, '') NOT IN
                ('type', 't', 'id', 'role', 'tool_use_id', 'signature', 'data', 'media_type', 'stream'));
END $$"""

# A string of the content without its terminal escape sequences, as _words_only() makes it: strpos
# first, as Python's `in`, so that most strings skip the regular expression.
_ESCAPES_SQL = (f"CASE WHEN strpos(value #>> '{{}}', chr(27)) = 0 THEN value #>> '{{}}' "
                f"ELSE regexp_replace(value #>> '{{}}', '{_ESCAPES_PATTERN}', '', 'g') END")

# switchboard_search_text() as step 6 leaves it: strings without their escape sequences, and no more
# than the 100,000 characters a snippet is cut from.
_SEARCH_TEXT_6 = (_SEARCH_TEXT_FUNCTION
                  .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
                  .replace("RETURN (WITH RECURSIVE", "RETURN left((WITH RECURSIVE")
                  .replace("SELECT string_agg(value #>> '{}', ' ')", f"SELECT string_agg({_ESCAPES_SQL}, ' ')")
                  .replace("'media_type', 'stream'));", "'media_type', 'stream')), 100000);"))

# What PostgreSQL's search columns hold: the words of a text as _words() makes them, and where they
# are. Separators become spaces, accents go, ASCII letters are lowered; a text with other letters has
# each that folds replaced, looked up once per distinct letter (translate() with the whole table
# compares every character with all of it), and its vector written out: to_tsvector()'s parser sorts
# characters by the database's locale (in C.UTF-8 it splits "x²", "🤖bot" or a private-use character
# off a word, where FTS5 does not). On words of a-z and 0-9 the parser agrees in every locale, and is
# faster, but for "1e5x" (a number then a word) and a word of 2,048 bytes or more (left out, where a
# written-out vector counts its place): those take the written-out way too.
_SEARCH_VECTOR_FUNCTION = f"""CREATE FUNCTION switchboard_search_vector(doc text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE spaced text := lower(regexp_replace(regexp_replace(doc, '[{_bracket(unicode61.SEPARATORS)}]', ' ', 'g'),
                                            '[{_bracket(unicode61.DIACRITICS)}]', '', 'g') COLLATE "C");
BEGIN
    IF spaced ~ '[^ 0-9a-z]' THEN
        spaced := coalesce((SELECT translate(spaced, string_agg(letter, ''),
                                             string_agg(substr('{unicode61.FOLD_TO}', strpos('{unicode61.FOLD_FROM}', letter), 1), ''))
                            FROM (SELECT DISTINCT matched[1] AS letter
                                  FROM regexp_matches(spaced, '[{unicode61.FOLD_FROM}]', 'g') AS matched) AS letters), spaced);
    END IF;
    IF spaced !~ '[^ 0-9a-z]|[0-9]e[0-9]|[0-9a-z]{{255}}' THEN
        RETURN to_tsvector('simple', spaced);
    END IF;
    RETURN (SELECT coalesce(string_agg('''' || word || ''':' || position, ' ')::tsvector, '')
            FROM regexp_split_to_table(btrim(spaced, ' '), ' +') WITH ORDINALITY AS words(word, position)
            WHERE octet_length(word) BETWEEN 1 AND 2047);
END $$"""

# PostgreSQL's steps, frozen like SQLite's; the version lives in the one-row "schema_version" table.
# Text columns are TEXT (SQLite does not enforce VARCHAR lengths either) and floats are 8 bytes.
POSTGRES_MIGRATIONS = [
    # 1: the schema of SQLite's step 10; search by tsvector columns the rows generate themselves (see
    # search_text below), GIN-indexed, and a position that orders hits newest first, as SQLite's rowid.
    [
        _SEARCH_TEXT_FUNCTION,
        'CREATE TABLE "account" ("id" SERIAL NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "seq" BIGINT NOT NULL, "created_at" BIGINT NOT NULL, "session_count" BIGINT NOT NULL DEFAULT 0, "stored_bytes" BIGINT NOT NULL DEFAULT 0)',
        'CREATE UNIQUE INDEX "account_name" ON "account" ("name")',
        'CREATE TABLE "session" ("id" TEXT NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "tag" TEXT, "title" TEXT, "system_prompt" TEXT, "metadata" TEXT NOT NULL, "metadata_version" INTEGER NOT NULL, "agent_state" TEXT, "agent_state_version" INTEGER NOT NULL, "data_encryption_key" BYTEA, "seq" BIGINT NOT NULL, "active" BOOLEAN NOT NULL, "last_active_at" BIGINT NOT NULL, "created_at" BIGINT NOT NULL, "updated_at" BIGINT NOT NULL, "agent" TEXT, "hold" BOOLEAN NOT NULL DEFAULT FALSE, "awaiting_message" BOOLEAN NOT NULL DEFAULT FALSE, "prompt_delivered" TEXT, "usage_input" BIGINT NOT NULL DEFAULT 0, "usage_output" BIGINT NOT NULL DEFAULT 0, "usage_cache_creation" BIGINT NOT NULL DEFAULT 0, "usage_cache_read" BIGINT NOT NULL DEFAULT 0, "usage_cost" DOUBLE PRECISION NOT NULL DEFAULT 0, "search_position" BIGSERIAL NOT NULL, "title_search" tsvector GENERATED ALWAYS AS (to_tsvector(\'simple\', coalesce("title", \'\'))) STORED, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "session_title_search" ON "session" USING gin ("title_search")',
        'CREATE UNIQUE INDEX "session_account_id_tag" ON "session" ("account_id", "tag")',
        'CREATE INDEX "session_account_id_id" ON "session" ("account_id", "id")',
        'CREATE INDEX "session_account_id_updated_at_id" ON "session" ("account_id", "updated_at", "id")',
        'CREATE INDEX "session_account_id_active_last_active_at" ON "session" ("account_id", "active", "last_active_at")',
        'CREATE TABLE "message" ("id" TEXT NOT NULL PRIMARY KEY, "session_id" TEXT NOT NULL, "seq" BIGINT NOT NULL, "local_id" TEXT, "role" TEXT CHECK (role IN (\'user\', \'assistant\', \'system\', \'tool\')), "content" TEXT NOT NULL, "metadata" TEXT, "created_at" BIGINT NOT NULL, "updated_at" BIGINT NOT NULL, "delivered_at" BIGINT, "search_position" BIGSERIAL NOT NULL, "search" tsvector GENERATED ALWAYS AS (to_tsvector(\'simple\', coalesce(switchboard_search_text("content"), \'\'))) STORED, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "message_search" ON "message" USING gin ("search")',
        'CREATE UNIQUE INDEX "message_session_id_seq" ON "message" ("session_id", "seq")',
        'CREATE UNIQUE INDEX "message_session_id_local_id" ON "message" ("session_id", "local_id")',
        'CREATE INDEX "message_queued" ON "message" ("session_id", "seq") WHERE (("delivered_at" IS NULL) AND ("role" = \'user\'))',
        'CREATE TABLE "token" ("id" SERIAL NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "name" TEXT NOT NULL, "secret_hash" TEXT NOT NULL, "created_at" BIGINT NOT NULL, "last_used_at" BIGINT, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "token_account_id" ON "token" ("account_id")',
        'CREATE UNIQUE INDEX "token_secret_hash" ON "token" ("secret_hash")',
        'CREATE TABLE "push_subscription" ("id" SERIAL NOT NULL PRIMARY KEY, "token_id" INTEGER NOT NULL, "endpoint" TEXT NOT NULL, "p256dh" TEXT NOT NULL, "auth" TEXT NOT NULL, "created_at" BIGINT NOT NULL, FOREIGN KEY ("token_id") REFERENCES "token" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "push_subscription_token_id" ON "push_subscription" ("token_id")',
        'CREATE UNIQUE INDEX "push_subscription_endpoint" ON "push_subscription" ("endpoint")',
        'CREATE TABLE "push_job" ("id" SERIAL NOT NULL PRIMARY KEY, "subscription_id" INTEGER NOT NULL, "session_id" TEXT NOT NULL, "payload" TEXT NOT NULL, "attempts" INTEGER NOT NULL, "next_attempt_at" BIGINT NOT NULL, FOREIGN KEY ("subscription_id") REFERENCES "push_subscription" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "push_job_subscription_id" ON "push_job" ("subscription_id")',
        'CREATE INDEX "push_job_session_id" ON "push_job" ("session_id")',
        'CREATE INDEX "push_job_next_attempt_at" ON "push_job" ("next_attempt_at")',
        'CREATE TABLE "request" ("id" TEXT NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "session_id" TEXT NOT NULL, "key" TEXT NOT NULL, "kind" TEXT NOT NULL, "tool" TEXT, "input" TEXT, "suggestions" TEXT, "status" TEXT NOT NULL CHECK (status IN (\'pending\', \'allowed\', \'denied\', \'expired\', \'cancelled\')), "reason" TEXT, "created_at" BIGINT NOT NULL, "decided_at" BIGINT, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE UNIQUE INDEX "request_session_id_key" ON "request" ("session_id", "key")',
        'CREATE INDEX "request_session_id_id" ON "request" ("session_id", "id")',
        'CREATE INDEX "request_account_id_status_id" ON "request" ("account_id", "status", "id")',
        'CREATE INDEX "request_account_id_id" ON "request" ("account_id", "id")',
        'CREATE TABLE "update" ("account_id" INTEGER NOT NULL, "seq" BIGINT NOT NULL, "id" TEXT NOT NULL, "session_id" TEXT, "body" TEXT NOT NULL, "created_at" BIGINT NOT NULL, PRIMARY KEY ("account_id", "seq"), FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "update_session_id" ON "update" ("session_id") WHERE ("session_id" IS NOT NULL)',
        'CREATE TABLE "usage_report" ("id" TEXT NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "session_id" TEXT NOT NULL, "key" TEXT NOT NULL, "model" TEXT, "input_tokens" BIGINT NOT NULL, "output_tokens" BIGINT NOT NULL, "cache_creation_tokens" BIGINT NOT NULL, "cache_read_tokens" BIGINT NOT NULL, "cost_usd" DOUBLE PRECISION NOT NULL, "at" BIGINT NOT NULL, "created_at" BIGINT NOT NULL, "updated_at" BIGINT NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE UNIQUE INDEX "usage_report_session_id_key" ON "usage_report" ("session_id", "key")',
        'CREATE INDEX "usage_report_account_id_at" ON "usage_report" ("account_id", "at")',
        'CREATE TABLE "vapid_key" ("id" INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), "private_key" TEXT NOT NULL, "public_key" TEXT NOT NULL, "created_at" BIGINT NOT NULL)',
        'CREATE TABLE "webhook" ("id" SERIAL NOT NULL PRIMARY KEY, "account_id" INTEGER NOT NULL, "url" TEXT NOT NULL, "format" TEXT NOT NULL, "events" TEXT NOT NULL, "secret" TEXT NOT NULL, "created_at" BIGINT NOT NULL, FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "webhook_account_id" ON "webhook" ("account_id")',
        'CREATE TABLE "webhook_run" ("id" TEXT NOT NULL PRIMARY KEY, "webhook_id" INTEGER NOT NULL, "session_id" TEXT NOT NULL, "event" TEXT NOT NULL, "payload" TEXT NOT NULL, "status" TEXT NOT NULL CHECK (status IN (\'pending\', \'delivered\', \'failed\')), "attempts" INTEGER NOT NULL, "next_attempt_at" BIGINT, "response_status" INTEGER, "duration_ms" INTEGER, "error" TEXT, "created_at" BIGINT NOT NULL, FOREIGN KEY ("webhook_id") REFERENCES "webhook" ("id") ON DELETE CASCADE, FOREIGN KEY ("session_id") REFERENCES "session" ("id") ON DELETE CASCADE)',
        'CREATE INDEX "webhook_run_session_id_id" ON "webhook_run" ("session_id", "id")',
        'CREATE INDEX "webhook_run_webhook_id_id" ON "webhook_run" ("webhook_id", "id")',
        'CREATE INDEX "webhook_run_due" ON "webhook_run" ("next_attempt_at") WHERE ("status" = \'pending\')',
        # when maintenance last ran, claimed by one process of many (claim_maintenance)
        'CREATE TABLE "maintenance" ("id" INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), "ran_at" BIGINT NOT NULL)',
        'INSERT INTO "maintenance" ("id", "ran_at") VALUES (1, 0)',
    ],
    # 2: the working directory a session's metadata names, for the list's project filter (SQLite
    # reads it with json_valid and json_extract, which PostgreSQL lacks for text that may not be JSON).
    [
        """CREATE FUNCTION switchboard_cwd(metadata text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE doc jsonb;
BEGIN
    BEGIN
        doc := metadata::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF jsonb_typeof(doc) = 'object' AND jsonb_typeof(doc -> 'cwd') = 'string' THEN
        RETURN doc ->> 'cwd';
    END IF;
    RETURN NULL;
END $$""",
    ],
    # 3: a message's search text is its first 100,000 characters: a tsvector holds at most 1 MB, and a
    # 1 MB message of base64 made one of more (its insert failed); FTS5 has no such limit.
    [
        _SEARCH_TEXT_FUNCTION
        .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
        .replace("RETURN (WITH RECURSIVE", "RETURN left((WITH RECURSIVE")
        .replace("'media_type', 'stream'));", "'media_type', 'stream')), 100000);"),
    ],
    # 4: SQLite's step 12 (the waiter of a request).
    [
        'ALTER TABLE "request" ADD COLUMN "waiter" TEXT',
        'CREATE INDEX "request_pending" ON "request" ("account_id", "waiter") WHERE ("status" = \'pending\')',
    ],
    # 5: the search columns hold the words FTS5 would index (switchboard_search_vector): generated
    # again, with their indexes.
    [
        _SEARCH_VECTOR_FUNCTION,
        'ALTER TABLE "message" DROP COLUMN "search"',
        'ALTER TABLE "message" ADD COLUMN "search" tsvector GENERATED ALWAYS AS (switchboard_search_vector(coalesce(switchboard_search_text("content"), \'\'))) STORED',
        'CREATE INDEX "message_search" ON "message" USING gin ("search")',
        'ALTER TABLE "session" DROP COLUMN "title_search"',
        'ALTER TABLE "session" ADD COLUMN "title_search" tsvector GENERATED ALWAYS AS (switchboard_search_vector(coalesce("title", \'\'))) STORED',
        'CREATE INDEX "session_title_search" ON "session" USING gin ("title_search")',
    ],
    # 6: SQLite's step 14 (terminal escape sequences are not words): each string of the content loses
    # them, and the rows holding one (JSON writes ESC as \u001b) generate their search column again.
    [
        _SEARCH_TEXT_6,
        'UPDATE "message" SET "content" = "content" WHERE strpos(lower("content"), \'\\u001b\') > 0',
    ],
    # 7: SQLite's step 15 (progress states are not found), and the rows that may hold one.
    [
        _SEARCH_TEXT_6.replace(
            "IF jsonb_typeof(doc) = 'object' AND doc ->> 't' = 'encrypted' THEN",
            "IF jsonb_typeof(doc) = 'object' AND (doc ->> 't' = 'encrypted'\n"
            "            OR (doc ->> 'type' = 'output' AND doc -> 'progress' = 'true'::jsonb)) THEN"),
        'UPDATE "message" SET "content" = "content" WHERE strpos("content", \'"progress"\') > 0',
    ],
]


def init_db(url, max_connections=64, serving=False):
    """A pool of connections to `url`: a SQLite file path, or postgresql://user:pass@host/db (psycopg 3).
    timeout: how long a request waits for a free pooled connection (then 503); SQLite's own lock wait
    is the busy_timeout pragma. `serving`: the server's own pool, whose SQLite file checkpoints
    mostly in the background (Checkpointer)."""
    if url.startswith(("postgresql://", "postgres://")):
        database = PooledPostgresqlDatabase(url, timeout=10, max_connections=max_connections, stale_timeout=None)
    else:
        pragmas = PRAGMAS if not serving else {**PRAGMAS, "wal_autocheckpoint": Checkpointer.FALLBACK_PAGES,
                                                "journal_size_limit": Checkpointer.KEEP_BYTES}
        database = PooledSqliteDatabase(url, pragmas=pragmas, timeout=10, max_connections=max_connections,
                                        stale_timeout=None, check_same_thread=False)
        database.register_function(search_text, "search_text", 1, deterministic=True)
    db.initialize(database)
    return database


def migrate():
    """Bring the database to its engine's latest schema version; returns the version it had. On SQLite
    the version lives in PRAGMA user_version, and nothing is written when no migration is due, so a
    server starts (and reads) on a full disk. On PostgreSQL, servers starting together take turns
    (an advisory lock) and the last ones find nothing to do."""
    if postgres():
        return _migrate_postgres()
    with db.connection_context():
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            with db.atomic("IMMEDIATE"):
                version = db.execute_sql("PRAGMA user_version").fetchone()[0]
                _check_version(version, SCHEMA_VERSION)
                for step in MIGRATIONS[version:]:
                    for statement in step:
                        db.execute_sql(statement)
                db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
    storage.watch(db.database)
    return version


_MIGRATION_LOCK = 0x5357424D  # the advisory lock key servers migrate under ("SWBM")


def _migrate_postgres():
    latest = len(POSTGRES_MIGRATIONS)
    with db.connection_context(), db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.execute_sql('CREATE TABLE IF NOT EXISTS "schema_version" ("version" INTEGER NOT NULL)')
        row = db.execute_sql('SELECT "version" FROM "schema_version"').fetchone()
        version = 0 if row is None else row[0]
        _check_version(version, latest)
        for step in POSTGRES_MIGRATIONS[version:]:
            for statement in step:
                db.execute_sql(statement)
        if row is None:
            db.execute_sql('INSERT INTO "schema_version" ("version") VALUES (%s)', (latest,))
        elif version != latest:
            db.execute_sql('UPDATE "schema_version" SET "version" = %s', (latest,))
    return version


def _check_version(version, latest):
    if version > latest:
        raise SchemaTooNew(f"database schema version {version} is newer than this server's {latest}; "
                           "upgrade Switchboard")


def claim_maintenance(interval_ms):
    """Whether this process is the one to run this interval's maintenance: on PostgreSQL, where many
    may serve one database, the first to claim it once 90% of an interval has passed since the last
    run (the row's lock decides between claims made together); on SQLite (one process), always."""
    if not postgres():
        return True
    now = now_ms()
    with db.atomic():
        return db.execute_sql('UPDATE "maintenance" SET "ran_at" = %s WHERE "ran_at" <= %s',
                              (now, now - interval_ms * 9 // 10)).rowcount == 1


def in_transaction(connection):
    """Whether a driver connection (sqlite3's or psycopg's) is inside a transaction (or a failed one)."""
    if postgres():
        return connection.info.transaction_status != TransactionStatus.IDLE
    return connection.in_transaction


# --- the file's health ----------------------------------------------------------------------------

class StorageUnavailable(Exception):
    """The database cannot store anything: the disk is full, the file is read-only, or the file the
    server opened is no longer the one at its path (deleted or replaced under it)."""

    def __init__(self, reason, full=False):
        super().__init__(reason)
        self.reason = reason
        self.full = full


# SQLite's primary result codes that say the storage, not the statement, failed.
_STORAGE_CODES = {sqlite3.SQLITE_FULL: "The disk holding the database is full.",
                  sqlite3.SQLITE_READONLY: "The database file is read-only.",
                  sqlite3.SQLITE_IOERR: "The database file cannot be read or written (I/O error).",
                  sqlite3.SQLITE_CANTOPEN: "The database file cannot be opened."}


def storage_failure(exc):
    """The StorageUnavailable an exception (sqlite3's or Peewee's wrapper of it) amounts to, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageUnavailable):
            return exc
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            primary = code & 0xFF
            return StorageUnavailable(_STORAGE_CODES[primary], primary == sqlite3.SQLITE_FULL) \
                if primary in _STORAGE_CODES else None
        # Peewee wraps the driver's exception as its first argument
        exc = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__cause__
    return None


class Storage:
    """Whether the file still takes writes, for /health and for every write transaction.

    SQLite keeps writing to a file deleted under it (its open descriptor still works), acknowledging
    writes that vanish at the next start: so the path is checked against the file opened at start.
    A write that failed for want of storage marks the file degraded until a write succeeds again.
    """

    def __init__(self):
        self.path = None
        self.identity = None
        self.failure = None
        self._lost_logged = False

    def watch(self, path):
        st = os.stat(path)
        self.path, self.identity, self.failure, self._lost_logged = path, (st.st_dev, st.st_ino), None, False

    def check(self):
        """Raise StorageUnavailable if the file at the path is not the one opened at start."""
        if self.identity is None:
            return
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self.identity
        except OSError:
            same = False
        if not same:
            if not self._lost_logged:
                self._lost_logged = True
                log.critical("DATABASE FILE LOST: %s was deleted or replaced while the server had it open; "
                             "refusing every write. Restore the file or restart the server.", self.path)
            raise StorageUnavailable("The database file was deleted or replaced under the running server.")

    def healthy(self):
        """None when the file takes writes, else the StorageUnavailable that says why not."""
        try:
            self.check()
        except StorageUnavailable as e:
            return e
        return self.failure


storage = Storage()


class Checkpointer:
    """Copies the SQLite file's write-ahead log into the file itself from a native thread, shortly
    after writes, instead of in the write that finds the log long (SQLite's automatic checkpoint).

    That checkpoint ran inside a COMMIT on the event loop: about every thousandth page, one write also
    copied the pages of the dozen writes before it and waited for the disk to sync them, and every
    connection waited with it. Here the copy and the syncs run beside the loop, on another core
    (bench/README.md: beside 100-line appends, /health's p99 10-45% lower in turns, and the appends
    as fast or faster). A log copied whole is started again from its beginning by the next write;
    one that never is (commits kept landing) stops growing at FALLBACK_PAGES, where a write
    checkpoints as before: the log stays bounded however this thread fares, so its errors are left
    to that fallback and to the writes, which report a failing disk themselves (Storage)."""

    DELAY = 0.1  # seconds from a commit to the checkpoint: the commits meanwhile share it
    PASSES = 8
    FALLBACK_PAGES = 10_000  # in the log (of 4 KiB each) before a write checkpoints itself
    # What of the log's file is kept when it starts again (it only grows otherwise): its old pages
    # hold text deleted since (README "Deleting").
    KEEP_BYTES = 4 * 1024 * 1024

    def __init__(self):
        self.path = None
        self._due = self._busy = None
        self._stopped = False

    def start(self, path):
        self.path = path
        lock = monkey.get_original("_thread", "allocate_lock")
        self._due, self._busy = lock(), lock()  # _due released: a checkpoint is due
        self._due.acquire()
        monkey.get_original("_thread", "start_new_thread")(self._run, (monkey.get_original("time", "sleep"),))

    def wake(self):
        """A write committed: checkpoint soon. Cheap, and safe from any thread."""
        if self._due is not None and self._due.locked():
            try:
                self._due.release()
            except RuntimeError:  # another writer released it first
                pass

    def stop(self):
        """No checkpoint after this returns (at exit: this thread's connection must not be the last
        to close, whose close removes the log)."""
        if self._busy is not None:
            with self._busy:
                self._stopped = True

    def _run(self, sleep):
        # Nothing here may touch gevent (this is not the loop's thread): a plain connection, opened for
        # each checkpoint.
        while True:
            self._due.acquire()
            sleep(self.DELAY)
            with self._busy:
                if self._stopped:
                    return
                try:
                    with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                        self._checkpoint(conn)
                except sqlite3.Error:
                    pass

    def _checkpoint(self, conn):
        # A pass copies the log as it was when the pass began: again while commits landed during the
        # last one (each pass is shorter than the one before).
        before = None
        for _ in range(self.PASSES):
            _blocked, pages, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages == before:
                return
            before = pages


checkpointer = Checkpointer()


def pause():
    """Let the worker serve everyone else between two steps of a long piece of work (pages of a
    listing or a replay, chunks of an import). time.sleep(0) is not enough under gevent: it runs the
    greenlets already ready but does not poll the sockets, so /health waited out a whole 60,000-session
    listing; a millisecond's timer makes the loop poll them."""
    time.sleep(0.001)


def off_the_loop(function, *args):
    """function(*args) in a native thread when the worker runs gevent, so the event loop serves every
    other connection meanwhile; for a C call that releases the GIL and takes long (sqlite3 does, for
    each statement). Elsewhere (gthread, the command line) it runs here."""
    if not monkey.is_module_patched("threading"):
        return function(*args)
    return get_hub().threadpool.apply(function, args)


def fetch_off_the_loop(sql, params):
    """The rows of one statement, run and fetched by off_the_loop on this greenlet's connection (Peewee's
    own would be the native thread's), its errors raised as Peewee raises them."""
    cursor = db.connection().cursor()

    def run():
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []  # psycopg refuses to fetch from an UPDATE
    with peewee.__exception_wrapper__:
        return off_the_loop(run)
