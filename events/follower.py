"""On PostgreSQL, where several processes write: the update log is what every process publishes from.

A committed write NOTIFYs its account's id (events/writes.py); each process LISTENs on one connection
and, for the accounts its subscribers follow, reads the log after the last seq it published, in seq
order, and hands the frames to its hub. An account's seqs are allocated in commit order (its row is
locked until commit), so reading by seq never skips one committed later. A lost notification only
delays: every `catch_up` seconds the follower compares each followed account's latest seq with its own.
The listening connection also says that its process is alive (SERVING): its name carries the process's id.
"""
import logging
import threading
import time

import psycopg
from peewee import SQL

from events.updatelog import update_frame
from models import Account, Update, db

log = logging.getLogger("switchboard")

CHANNEL = "switchboard_updates"
APPLICATION = "switchboard-follower"  # the listening connection's name, then its process's id
PAGE_ROWS = 500


class Follower:
    # The ids of the processes serving the database now (their listening connections' names), as a
    # subquery: read by the statement it is part of, so it holds every process that had its listener
    # connected when that statement began. A connection closes with its process, at once when it is killed.
    # A listener of a version that named it without an id stands for the id '' (domain.expire_leftovers).
    SERVING = SQL('(SELECT substr("application_name", %s) FROM "pg_stat_activity" '
                  'WHERE "datname" = current_database() AND "application_name" LIKE %s)',
                  [len(APPLICATION) + 2, APPLICATION + "%"])

    def __init__(self, hub):
        self.hub = hub
        self._lock = threading.Lock()
        self._published = {}  # account id -> the last seq this process published
        self._due = set()  # accounts with news to read
        self._origins = {}  # (account id, seq) -> the local connection whose write it was
        self._wake = threading.Event()
        self.running = False

    def start(self, url, process, catch_up=1.0):
        """Listen as the process `process`: connected when this returns, so the process is seen alive
        (SERVING) before it serves anything; a request its hook waits on is never taken for a dead one's."""
        self.running = True
        self.hub.on_subscribe = self.follow
        name = f"{APPLICATION} {process}"
        threading.Thread(target=self._listen, args=(url, name, self._connect(url, name)), daemon=True,
                         name="follower-listen").start()
        threading.Thread(target=self._run, args=(catch_up,), daemon=True, name="follower").start()

    def follow(self, account_id):
        """Called as a subscriber registers, before it reads the log: from now on every update after the
        account's current seq reaches this process's hub."""
        with self._lock:
            if account_id in self._published:
                return
        opened = db.is_closed()
        try:
            if opened:
                db.connect()
            seq = Account.select(Account.seq).where(Account.id == account_id).scalar() or 0
        finally:
            if opened:
                db.close()
        with self._lock:
            self._published.setdefault(account_id, seq)

    def expect(self, writes):
        """A local transaction is about to commit these Changes: their updates are not sent back to
        the connection each came from (recorded before COMMIT, as the log may be read before it returns)."""
        with self._lock:
            for changes in writes:
                if changes.published and changes.origin is not None:
                    for seq, _, _ in changes.published:
                        self._origins[(changes.account_id, seq)] = changes.origin

    def forget(self, writes):
        """The transaction of these Changes did not commit."""
        with self._lock:
            for changes in writes:
                for seq, _, _ in changes.published or ():
                    self._origins.pop((changes.account_id, seq), None)

    def committed(self, writes):
        """A local transaction committed these Changes: read their updates from the log now."""
        with self._lock:
            self._due.update(changes.account_id for changes in writes)
        self._wake.set()

    @staticmethod
    def _connect(url, name):
        connection = psycopg.connect(url, autocommit=True, application_name=name)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def _listen(self, url, name, connection):
        while True:
            try:
                with connection or self._connect(url, name) as connection:
                    with self._lock:
                        self._due.update(self._published)  # whatever came while not listening
                    self._wake.set()
                    for note in connection.notifies():
                        with self._lock:
                            self._due.add(int(note.payload))
                        self._wake.set()
            except Exception:
                log.exception("listening for updates failed; reconnecting")
                time.sleep(1)
            connection = None

    def _run(self, catch_up):
        next_check = time.monotonic() + catch_up
        while True:
            self._wake.wait(max(0.0, next_check - time.monotonic()))
            self._wake.clear()
            due = set()
            try:
                with db.connection_context():
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + catch_up
                        self._check_all()
                    with self._lock:
                        due, self._due = self._due, set()
                    for account_id in due:
                        self._deliver(account_id)
            except Exception:
                log.exception("publishing from the update log failed; retrying")
                with self._lock:
                    self._due.update(due)
                time.sleep(0.1)

    def _check_all(self):
        """Forget accounts nobody here follows any more; mark due those whose seq moved."""
        with self._lock:
            # read under this lock: an account registered meanwhile is followed again after it
            followed = self.hub.accounts()
            for account_id in [a for a in self._published if a not in followed]:
                del self._published[account_id]
            self._origins = {key: origin for key, origin in self._origins.items() if key[0] in followed}
            published = dict(self._published)
        if published:
            for account_id, seq in (Account
                                    .select(Account.id, Account.seq)
                                    .where(Account.id.in_(list(published)))
                                    .tuples()):
                if seq > published[account_id]:
                    with self._lock:
                        self._due.add(account_id)

    def _deliver(self, account_id):
        with self._lock:
            after = self._published.get(account_id)
        while after is not None:
            rows = (Update
                    .select(Update.id, Update.seq, Update.session_id, Update.body, Update.created_at)
                    .where((Update.account == account_id) & (Update.seq > after))
                    .order_by(Update.seq)
                    .limit(PAGE_ROWS)
                    .tuples())
            page = list(rows)
            for update_id, seq, session_id, body, created_at in page:
                with self._lock:
                    origin = self._origins.pop((account_id, seq), None)
                self.hub.publish(account_id, session_id, (seq, update_frame(update_id, seq, body, created_at)), origin)
            if not page:
                return
            after = page[-1][1]
            with self._lock:
                if account_id in self._published:
                    self._published[account_id] = after
            if len(page) < PAGE_ROWS:
                return
