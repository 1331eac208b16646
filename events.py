"""The in-process pub/sub hub and the durable per-account update log.

Every durable change goes through `hub.write()`: one IMMEDIATE transaction that also allocates the
account's update seqs and stores the updates, then publication after commit, in seq order. The hub
knows nothing of Flask or sockets: a subscriber is a bounded queue that is dropped, never waited on.
"""
import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from models import Account, Update, db, new_ids, now_ms, off_the_loop, storage, storage_failure
from schemas import to_json

log = logging.getLogger("switchboard")


class Busy(Exception):
    """Another process held the database's write lock for longer than the wait budget."""


def frame(event, data):
    return to_json({"event": event, "data": data})


def update_frame(update_id, seq, body_text, created_at):
    """The `update` frame around a body already encoded (as stored in the log): encoded once, sent as is."""
    return (f'{{"event":"update","data":{{"id":"{update_id}","seq":{int(seq)},'
            f'"body":{body_text},"createdAt":{int(created_at)}}}}}')


class Subscriber:
    """One connection's view of the hub: what it wants, and the queue its handler drains.

    What the hub offers is bounded in count and in bytes (a thousand 1 MiB frames must not pile up
    behind one reader that stopped); the connection's own items (its incoming frames) share the queue
    to keep one order, but never count toward those bounds (`take` tells them apart)."""

    def __init__(self, account_id, session_id, maxsize, token_id=None, max_bytes=1 << 60):
        self.account_id = account_id
        self.session_id = session_id
        self.token_id = token_id
        self.queue = queue.Queue()
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.pending = 0  # items offered by the hub and not yet taken
        self.pending_bytes = 0
        self._lock = threading.Lock()
        self.overflowed = False

    def wants(self, session_id, origin):
        """An update of no session (delete-all) concerns every connection of the account."""
        return origin is not self and (self.session_id is None or session_id in (None, self.session_id))

    def offer(self, item):
        """Queue `item` ((seq or kind, payload)); False when that would pass either bound (the
        subscriber is then dropped)."""
        size = len(item[1]) if isinstance(item[1], str) else 0
        with self._lock:
            if self.pending >= self.maxsize or self.pending_bytes + size > self.max_bytes:
                return False
            self.pending += 1
            self.pending_bytes += size
        self.queue.put_nowait((*item, size))
        return True

    def take(self, timeout=None):
        """The next item, as (kind, payload): hub items are counted off the bounds."""
        kind, payload, size = self.queue.get(timeout=timeout)
        if size is not None:
            with self._lock:
                self.pending -= 1
                self.pending_bytes -= size
        return kind, payload

    def put_own(self, kind, payload):
        """Queue an item of the connection's own (not the hub's): unbounded here, bounded by its caller."""
        self.queue.put_nowait((kind, payload, None))


class Watcher(Subscriber):
    """A request waiting for a change to one session (a long-poll, an approval, a hold): it holds no
    queue and no database connection, only a flag that any publication for the session raises. The
    waiter then reads what it waits for from the database: the log and the tables stay the truth."""

    def __init__(self, account_id, session_id):
        super().__init__(account_id, session_id, 0)
        self.queue = None
        self.changed = threading.Event()

    def offer(self, item):
        self.changed.set()
        return True

    def wait(self, timeout):
        """True if something changed within `timeout` seconds; re-armed for the next wait."""
        changed = self.changed.wait(max(0.0, timeout))
        self.changed.clear()
        return changed


# A transaction that changed this many rows commits in a native thread (Hub._commit); a small one
# here, as the hand-over would cost more than its commit.
BIG_COMMIT_ROWS = 10_000

# Run by every write: written out, as Peewee's rendering of them cost more than running them.
_TAKE_SEQS = ('UPDATE "account" SET "seq" = "seq" + ?, "session_count" = "session_count" + ?, "stored_bytes" = "stored_bytes" + ? '
              'WHERE "id" = ? RETURNING "seq", "session_count", "stored_bytes"')
_INSERT_UPDATES = ('INSERT INTO "update" ("id", "account_id", "seq", "session_id", "body", "created_at") '
                   'VALUES (?, ?, ?, ?, ?, ?)')
# An account's log in seq order is in time order too: the rows below its first recent one are exactly
# the old ones, found by the primary key without reading the rest of the log.
_PRUNE = ('DELETE FROM "update" WHERE "account_id" = ?1 AND "seq" < COALESCE('
          '(SELECT "seq" FROM "update" WHERE "account_id" = ?1 AND "created_at" >= ?2 ORDER BY "seq" LIMIT 1), '
          '9223372036854775807)')


class QuotaExceeded(Exception):
    """A write would take the account past one of its quotas (Quotas)."""

    def __init__(self, what, limit):
        super().__init__(f"This account may hold at most {limit:,} {what}.")
        self.what = what
        self.limit = limit


class Quotas:
    """Per-account limits (0: none). `sessions` and `stored_bytes` are checked by every write, in the
    statement that allocates its seqs; `websockets_per_token` when a websocket subscribes."""

    def __init__(self, sessions=0, stored_bytes=0, websockets_per_token=0):
        self.sessions = sessions
        self.stored_bytes = stored_bytes
        self.websockets_per_token = websockets_per_token


class Changes:
    """Updates collected inside one write transaction; seqs are allocated together at its end, with
    the change to what the account holds (`sessions`, `stored_bytes`), checked against its quotas."""

    def __init__(self, account_id, origin, quotas):
        self.account_id = account_id
        self.origin = origin
        self.quotas = quotas
        self.bodies = []
        self.published = []
        self.sessions = 0
        self.stored_bytes = 0

    def add(self, session_id, body):
        self.bodies.append((session_id, body))

    def _store(self):
        if not self.bodies:
            return
        count = len(self.bodies)
        [(last, sessions, stored_bytes)] = db.execute_sql(
            _TAKE_SEQS, (count, self.sessions, self.stored_bytes, self.account_id)).fetchall()
        # Only growth is refused: a write that frees space always goes through.
        if self.sessions > 0 and 0 < self.quotas.sessions < sessions:
            raise QuotaExceeded("sessions", self.quotas.sessions)
        if self.stored_bytes > 0 and 0 < self.quotas.stored_bytes < stored_bytes:
            raise QuotaExceeded("bytes of messages", self.quotas.stored_bytes)
        created_at = now_ms()
        rows = []
        for seq, (session_id, body), update_id in zip(itertools.count(last - count + 1), self.bodies, new_ids(count)):
            body_text = to_json(body)
            rows.append((update_id, self.account_id, seq, session_id, body_text, created_at))
            self.published.append((seq, session_id, update_frame(update_id, seq, body_text, created_at)))
        db.cursor().executemany(_INSERT_UPDATES, rows)


class _Group:
    """One open write transaction and the writers in it (Hub.write)."""

    def __init__(self, connection):
        self.connection = connection
        self.changes_before = connection.total_changes  # rows changed by it: connection.total_changes - this
        self.members = []  # their Changes, in the order they ran
        self.done = threading.Event()
        self.error = None

    @contextmanager
    def joined(self):
        """Run on the group's connection, in a savepoint: Peewee (and db.execute_sql) use the current
        thread's connection, which is swapped for the group's and back."""
        state = db.obj._state
        own = state.conn, state.closed
        state.conn, state.closed = self.connection, False
        cursor = self.connection.cursor()
        try:
            cursor.execute("SAVEPOINT write")
            try:
                yield cursor
            except BaseException:
                if self.connection.in_transaction:  # some errors end the whole transaction themselves
                    cursor.execute("ROLLBACK TO write")
                    cursor.execute("RELEASE write")
                raise
        finally:
            state.conn, state.closed = own


class Hub:
    CLOSE = "close"  # queue item (CLOSE, (code, reason)): the connection must end

    def __init__(self):
        self._subscribers = defaultdict(set)
        self._per_token = defaultdict(int)  # token id -> its open websockets (counted under the quota)
        self._lock = threading.Lock()
        # One writer at a time, held across commit and publish so every account's seqs reach
        # subscribers in order. SQLite allows one writer anyway; this queues writers in-process
        # instead of letting them spin on the file lock.
        self._write_lock = threading.Lock()
        self._group = None  # the write transaction writers join, while one is open
        self._outbox = None
        self.stopping = False  # set by shutdown(): waiting requests answer now instead of holding it up
        self.configure()

    def configure(self, queue_size=1024, queue_bytes=16 << 20, busy_wait=5.0, background_fanout=False,
                  quotas=Quotas(), on_store=None):
        """`background_fanout` (the server's worker) hands each publication to one fan-out thread,
        so a publishing request costs the same at 10 subscribers or 10,000; without it (tests
        driving the app in-process) publication happens inline, in the same order.

        `on_store(changes)` runs in each write's transaction once its updates are stored: what it
        writes (notifications.py queues deliveries) commits, or not, with them."""
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.quotas = quotas
        self.busy_wait = busy_wait
        self.on_store = on_store
        if background_fanout and self._outbox is None:
            self._outbox = queue.Queue()
            threading.Thread(target=self._fan_out_forever, daemon=True, name="fan-out").start()

    def subscribe(self, account_id, session_id=None, token_id=None):
        """A websocket's Subscriber, registered for the duration of the block; QuotaExceeded when its
        token already has as many open as the quota allows."""
        return self._registered(Subscriber(account_id, session_id, self.queue_size, token_id, self.queue_bytes),
                                self.quotas.websockets_per_token)

    def watch(self, account_id, session_id):
        """A Watcher of one session for the duration of the block. Start watching before reading
        what you wait for: a change committed after the read then always wakes the wait."""
        return self._registered(Watcher(account_id, session_id))

    @contextmanager
    def _registered(self, subscriber, per_token=0):
        with self._lock:
            if per_token and subscriber.token_id is not None:
                if self._per_token[subscriber.token_id] >= per_token:
                    raise QuotaExceeded("open websockets per token", per_token)
                self._per_token[subscriber.token_id] += 1
            self._subscribers[subscriber.account_id].add(subscriber)
        try:
            yield subscriber
        finally:
            self._drop(subscriber)

    def _drop(self, subscriber):
        with self._lock:
            subscribers = self._subscribers.get(subscriber.account_id)
            if subscribers is not None and subscriber in subscribers:
                subscribers.discard(subscriber)
                if subscriber.token_id in self._per_token:
                    self._per_token[subscriber.token_id] -= 1
                    if not self._per_token[subscriber.token_id]:
                        del self._per_token[subscriber.token_id]
                if not subscribers:
                    del self._subscribers[subscriber.account_id]

    def publish(self, account_id, session_id, item, origin=None):
        """Offer `item` ((seq or None, frame text)) to every interested subscriber of the account.

        Callers publish in seq order (under the write lock); the one outbox keeps that order. With no
        subscriber there is nothing to do: one that subscribes later replays this from the log, as it
        subscribes before it reads the log and this was committed before the check."""
        if account_id not in self._subscribers:
            return
        if self._outbox is not None:
            self._outbox.put((account_id, session_id, item, origin))
        else:
            self._fan_out(account_id, session_id, item, origin)

    def _fan_out_forever(self):
        while True:
            try:
                self._fan_out(*self._outbox.get())
            except Exception:
                log.exception("fan-out failed for one publication")

    def _fan_out(self, account_id, session_id, item, origin):
        with self._lock:
            subscribers = list(self._subscribers.get(account_id, ()))
        for subscriber in subscribers:
            if not subscriber.wants(session_id, origin):
                continue
            if not subscriber.offer(item):
                # A reader that cannot keep up loses its place and reconnects with `since`;
                # the publisher never waits for it.
                subscriber.overflowed = True
                self._drop(subscriber)

    def subscribers(self):
        """Every websocket's Subscriber (watchers are not connections)."""
        with self._lock:
            return [s for group in self._subscribers.values() for s in group if not isinstance(s, Watcher)]

    def close(self, subscriber, code, reason):
        if not subscriber.offer((self.CLOSE, (code, reason))):
            subscriber.overflowed = True  # closes it just the same

    def shutdown(self):
        """Close every websocket (1001) and wake every watcher, which then sees `stopping` and answers."""
        self.stopping = True
        with self._lock:
            watchers = [s for group in self._subscribers.values() for s in group if isinstance(s, Watcher)]
        for watcher in watchers:
            watcher.offer(None)
        for subscriber in self.subscribers():
            self.close(subscriber, 1001, "Server shutting down.")  # errors.CLOSE_GOING_AWAY

    def ephemeral(self, account_id, session_id, data):
        self.publish(account_id, session_id, (None, frame("ephemeral", data)))

    @contextmanager
    def write(self, account_id, origin=None, busy_wait=None):
        """A write for one account; its updates are published once it has committed.

        Writes that arrive together share one transaction (group commit): the first to find none open
        begins one on its connection and runs; the others run on that same connection, each in a
        savepoint of its own, so one failing undoes only itself. The first then lets every writer
        that is ready join (one yield), commits them all at once and publishes their updates in seq
        order; no writer returns before that commit. A commit writes each page once for the whole
        group, and costs as much as all the statements of a one-message append (bench/append.py).

        `busy_wait` (default: the configured one) bounds the whole wait, in this process's queue of
        writers as well as on another process's lock: behind a lock held elsewhere, queued writers
        would otherwise spend the budget one after another and the last would wait N times as long.
        Transactions are plain SQL, not Peewee's atomic(), whose bookkeeping cost a tenth of a
        one-message append: nothing inside may open one (get_or_create does).
        """
        changes = Changes(account_id, origin, self.quotas)
        deadline = time.monotonic() + (self.busy_wait if busy_wait is None else busy_wait)
        if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Busy()
        leading = False
        try:
            group = self._group
            if group is None:
                storage.check()
                group = _Group(db.connection())
                self._begin(group.connection.cursor(), deadline)
                self._group, leading = group, True
            with group.joined() as cursor:
                yield changes
                changes._store()
                if changes.bodies and self.on_store is not None:
                    self.on_store(changes)
                cursor.execute("RELEASE write")
            group.members.append(changes)
        except BaseException as e:
            if leading:  # nobody else can have joined yet: this write held the lock throughout
                self._group = None
                if group.connection.in_transaction:
                    group.connection.cursor().execute("ROLLBACK")
            failure = storage_failure(e)
            if failure is None or failure is e:
                raise
            storage.failure = failure
            raise failure from e
        finally:
            self._write_lock.release()
        if leading:
            self._commit(group)
        group.done.wait()
        if group.error is not None:
            raise group.error

    def _commit(self, group):
        time.sleep(0)  # every writer that is ready now joins this transaction
        try:
            with self._write_lock:
                self._group = None
                cursor = group.connection.cursor()
                try:
                    if group.connection.total_changes - group.changes_before < BIG_COMMIT_ROWS:
                        cursor.execute("COMMIT")
                    else:
                        # Writing the pages that were still in memory and the automatic checkpoint
                        # that follows blocked the worker for 120-200 ms after a 100,000-session
                        # delete-all: out of the event loop, only the writers wait for them.
                        off_the_loop(cursor.execute, "COMMIT")
                except BaseException as e:
                    group.error = storage_failure(e) or e
                    if group.error is not e:
                        storage.failure = group.error
                    if group.connection.in_transaction:
                        cursor.execute("ROLLBACK")
                    return
                storage.failure = None
                for changes in group.members:
                    for seq, session_id, text in changes.published:
                        self.publish(changes.account_id, session_id, (seq, text), changes.origin)
        finally:
            group.done.set()

    @staticmethod
    def _begin(cursor, deadline):
        # BEGIN IMMEDIATE is the only statement that can meet another process's write lock (WAL
        # readers never block); waiting here with time.sleep yields to other greenlets.
        while True:
            try:
                return cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise Busy() from e
                time.sleep(0.02)

    def replay(self, account_id, since, page_rows=500, page_bytes=1 << 20):
        """(pages, latest): the frames of every update after `since` up to the latest seq, as an
        iterator of pages; pages is None when the log no longer reaches back that far.

        Each page (page_rows rows, or page_bytes of bodies) is read on a pooled connection held only
        while reading it, by keyset on (account, seq): a connection holds one page, however long the
        log, and no read transaction stays open while a slow peer takes the frames."""
        latest = Account.get_by_id(account_id).seq
        if since > latest:
            return None, latest
        first = (Update
                 .select(Update.seq)
                 .where(Update.account == account_id)
                 .order_by(Update.seq)
                 .limit(1)
                 .scalar())
        if since < latest and (first is None or first > since + 1):
            return None, latest
        return self._pages(account_id, since, latest, page_rows, page_bytes), latest

    @staticmethod
    def _pages(account_id, after, latest, page_rows, page_bytes):
        while after < latest:
            query = (Update
                     .select(Update.id, Update.seq, Update.session_id, Update.body, Update.created_at)
                     .where((Update.account == account_id) & (Update.seq > after) & (Update.seq <= latest))
                     .order_by(Update.seq)
                     .limit(page_rows))
            page, size = [], 0
            with db.connection_context():
                cursor = db.execute(query)
                try:
                    for uid, seq, session_id, body, created_at in cursor:
                        page.append((seq, session_id, update_frame(uid, seq, body, created_at)))
                        size += len(body)
                        if size >= page_bytes:
                            break
                finally:
                    cursor.close()  # ends the read transaction, even after a break
            if not page:
                return
            yield page
            after = page[-1][0]

    def prune(self, older_than_ms):
        """Delete updates older than `older_than_ms`, an account at a time; returns how many."""
        deleted = 0
        for (account_id,) in list(Account.select(Account.id).tuples()):
            with self.write(None):
                deleted += db.execute_sql(_PRUNE, (account_id, older_than_ms)).rowcount
        return deleted


hub = Hub()
