"""The writer: every durable change is a function it runs in a transaction it owns, with the account's
updates stored in the log (events/updatelog.py) and published by the hub (events/pubsub.py) once committed.

On SQLite, writes that arrive together share one transaction (group commit): the first writer to find
none running leads, and runs every queued write on its own connection, one after another, each in a
savepoint. Nothing here knows HTTP or sockets.
"""
import sqlite3
import threading
import time
from collections import deque

from events.follower import CHANNEL
from events.pubsub import QuotaExceeded
from models import (
    Account,
    Statement,
    checkpointer,
    db,
    in_transaction,
    off_the_loop,
    postgres,
    storage,
    storage_failure,
)

# A transaction that changed this many rows commits in a native thread (Writer._commit); a small one
# here, as the hand-over would cost more than its commit (a 100-message append's, handed over, cost the
# worker a third more CPU per message: bench/search.py).
BIG_COMMIT_ROWS = 10_000

# On PostgreSQL, where writes of one account run side by side (Writer._alone), each first takes the
# account's row: they take turns, as on SQLite, so what one reads (a tag, a local id) is what the one
# before it committed, not a row another is inserting meanwhile (a unique-key error, a 500).
LOCK_ACCOUNT = Statement(lambda account_id: Account.select(Account.id).where(Account.id == account_id).for_update(), 1001)


class Busy(Exception):
    """Another process held the database's write lock for longer than the wait budget (or the write
    was given up with the transaction it was in)."""


class Quotas:
    """Per-account limits (0: none), checked by every write in the statement that allocates its seqs.
    Only growth is refused: a write that frees space always goes through."""

    def __init__(self, sessions=0, stored_bytes=0):
        self.sessions = sessions
        self.stored_bytes = stored_bytes


class Changes:
    """What one write records: the updates it causes (`add`), and how it changes what the account
    holds (`sessions`, `stored_bytes`); `published` is filled when they are stored."""

    def __init__(self, account_id, origin):
        self.account_id = account_id
        self.origin = origin
        self.bodies = []
        self.published = []
        self.sessions = 0
        self.stored_bytes = 0

    def add(self, session_id, body):
        self.bodies.append((session_id, body))


class _Write:
    """One call of Writer.run: queued, then run by the leader of a transaction (maybe its own thread)."""
    __slots__ = ("fn", "changes", "deadline", "result", "error", "leads", "wake")

    def __init__(self, fn, changes, deadline):
        self.fn = fn
        self.changes = changes
        self.deadline = deadline
        self.result = self.error = None
        self.leads = False
        self.wake = threading.Event()  # set when it is done, or when it is to lead the next transaction


class Writer:
    def __init__(self, log, hub):
        self.log = log
        self.hub = hub
        self._lock = threading.Lock()
        self._queue = deque()  # writes waiting for a transaction, oldest first
        self._leader = None  # the write whose thread runs transactions now
        self._running = None  # that thread, while it runs writes (a write cannot start another)
        self.configure()

    def configure(self, busy_wait=5.0, quotas=Quotas(), on_store=None, follower=None):
        """`busy_wait` bounds a write's whole wait, in this process's queue as well as on another
        process's lock. `on_store(changes)` runs in each write's transaction once its updates are
        stored: what it writes (notifications.py queues deliveries) commits, or not, with them.
        With a `follower` (PostgreSQL, events/follower.py), committed updates are announced to every
        process and published from the log; without one, the writer publishes them itself."""
        self.busy_wait = busy_wait
        self.quotas = quotas
        self.on_store = on_store
        self.follower = follower

    def run(self, account_id, fn, origin=None, busy_wait=None):
        """Run `fn(changes)` in a write transaction for the account (None: no account's updates) and
        return what it returns, once committed and its updates published, in seq order; or raise what
        it raised, its writes undone (and no one else's).

        `fn` runs on the transaction's connection, which may be another thread's: it must use nothing
        of its caller's thread (no request context) and must not call run() itself. Transactions are
        plain SQL, not Peewee's atomic(), whose bookkeeping cost a tenth of a one-message append:
        nothing inside may open one (get_or_create does)."""
        if self._running == threading.get_ident():
            raise RuntimeError("a write cannot start another write")
        deadline = time.monotonic() + (self.busy_wait if busy_wait is None else busy_wait)
        write = _Write(fn, Changes(account_id, origin), deadline)
        if self.follower is not None:
            return self._alone(write)
        with self._lock:
            self._queue.append(write)
            if self._leader is None:
                self._leader, write.leads = write, True
        if not write.leads and not write.wake.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                if not write.leads and write in self._queue:
                    self._queue.remove(write)  # never started: it may give up
                    raise Busy()
            # Started (or about to lead): it ends with its transaction, which always ends (_lead).
            write.wake.wait()
        if write.leads:
            self._lead(write)
        if write.error is not None:
            raise write.error
        return write.result

    def _lead(self, first):
        """Run one transaction: every queued write (`first` among them), then, after letting every
        writer that is ready join (one yield), those that did; commit, publish, and hand the lead
        to the oldest write still queued. Every write taken ends here, whatever happens."""
        taken, connection, cursor = [], None, None
        try:
            try:
                connection = db.connection()
                cursor = connection.cursor()
                storage.check()
                self._begin(cursor, first.deadline)
                changes_before = None if postgres() else connection.total_changes
            except BaseException as e:
                with self._lock:
                    self._queue.remove(first)  # the next one queued leads instead
                if not isinstance(e, Exception):
                    raise
                first.error = _failure(e)
                return
            self._running = threading.get_ident()
            for joining in (False, True):
                if joining:
                    time.sleep(0)  # every writer that is ready now joins this transaction
                with self._lock:
                    batch = list(self._queue)
                    self._queue.clear()
                for i, write in enumerate(batch):
                    taken.append(write)
                    self._run(connection, cursor, write)
                    if not in_transaction(connection):  # an error ended the whole transaction
                        with self._lock:
                            self._queue.extendleft(reversed(batch[i + 1:]))
                        break
                else:
                    continue
                break
            self._commit(connection, cursor, taken, changes_before)
        except BaseException:
            # The leader itself was stopped (its greenlet killed, an interrupt): nothing commits.
            if cursor is not None and in_transaction(connection):
                cursor.execute("ROLLBACK")
            for write in taken:
                write.error = write.error or Busy()
            raise
        finally:
            self._running = None
            for write in taken:
                if write is not first:
                    write.wake.set()
            with self._lock:
                self._leader = self._queue[0] if self._queue else None
                if self._leader is not None:
                    self._leader.leads = True
                    self._leader.wake.set()

    def _alone(self, write):
        """On PostgreSQL with a follower: the write in a transaction of its own, on its own connection,
        beside any others (the database locks the rows each one writes, and the follower publishes in
        seq order). Not grouped: two processes' groups could lock the same rows in opposite orders."""
        connection = db.connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN")  # no savepoint: alone, a failing write undoes the whole transaction
        try:
            if write.changes.account_id is not None:
                cursor.execute(*LOCK_ACCOUNT(write.changes.account_id))
            write.result = write.fn(write.changes)
            self._store(write.changes)
            self._commit(connection, cursor, [write])
        except BaseException:
            if in_transaction(connection):
                cursor.execute("ROLLBACK")
            raise
        if write.error is not None:
            raise write.error
        return write.result

    def _run(self, connection, cursor, write):
        cursor.execute("SAVEPOINT write")
        try:
            write.result = write.fn(write.changes)
            self._store(write.changes)
            cursor.execute("RELEASE write")
        except Exception as e:
            write.error = _failure(e)
            if in_transaction(connection):  # some errors end the whole transaction themselves
                cursor.execute("ROLLBACK TO write")
                cursor.execute("RELEASE write")

    def _store(self, changes):
        """Allocate the write's seqs and store its updates, checking the account's quotas."""
        if not changes.bodies:
            return
        last, sessions, stored_bytes = self.log.allocate(changes.account_id, len(changes.bodies),
                                                         changes.sessions, changes.stored_bytes)
        if changes.sessions > 0 and 0 < self.quotas.sessions < sessions:
            raise QuotaExceeded("sessions", self.quotas.sessions)
        if changes.stored_bytes > 0 and 0 < self.quotas.stored_bytes < stored_bytes:
            raise QuotaExceeded("bytes of messages", self.quotas.stored_bytes)
        changes.published = self.log.append(changes.account_id, last, changes.bodies)
        if self.on_store is not None:
            self.on_store(changes)

    def _commit(self, connection, cursor, taken, changes_before=None):
        """`changes_before`: SQLite's count of rows changed on the connection when the transaction began."""
        failed = next((w.error for w in taken if w.error is not None), None)
        try:
            if not in_transaction(connection):
                raise failed or Busy()
            if self.follower is not None:  # delivered to every listening process at commit
                # before COMMIT: this process may read the notification (and the log) before COMMIT returns
                self.follower.expect([w.changes for w in taken if w.error is None])
                for account_id in {w.changes.account_id for w in taken if w.error is None and w.changes.published}:
                    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(account_id)))
            if changes_before is None or connection.total_changes - changes_before < BIG_COMMIT_ROWS:
                cursor.execute("COMMIT")
            else:
                # Writing the pages that were still in memory and the automatic checkpoint that
                # follows blocked the worker for 120-200 ms after a 100,000-session delete-all: out
                # of the event loop, only the writers wait for them.
                off_the_loop(cursor.execute, "COMMIT")
        except Exception as e:
            error = _failure(e)
            if self.follower is not None:  # before ROLLBACK: then the next write takes their seqs
                self.follower.forget([w.changes for w in taken])
            if in_transaction(connection):
                cursor.execute("ROLLBACK")
            for write in taken:
                write.error = write.error or error
            return
        storage.failure = None
        checkpointer.wake()
        if self.follower is not None:
            self.follower.committed([w.changes for w in taken if w.error is None])
            return
        for write in taken:
            if write.error is None:
                changes = write.changes
                for seq, session_id, text in changes.published:
                    self.hub.publish(changes.account_id, session_id, (seq, text), changes.origin)

    @staticmethod
    def _begin(cursor, deadline):
        if postgres():
            return cursor.execute("BEGIN")  # rows are locked by the statements that write them
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


def _failure(e):
    """What a write's caller gets for `e`: a storage failure (disk full, file gone) as
    StorageUnavailable, which also marks the file degraded until a write succeeds; else `e`."""
    failure = storage_failure(e)
    if failure is None or failure is e:
        return e
    storage.failure = failure
    failure.__cause__ = e
    return failure
