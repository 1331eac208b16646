"""The in-process hub: who is subscribed to an account's updates, and publication to them.

It knows nothing of Flask, sockets or the database: a subscriber is a bounded queue that is dropped,
never waited on; a watcher is a flag. What is durable (the update log) and how it is written (the
writer) live beside it, in events/updatelog.py and events/writes.py.
"""
import logging
import queue
import threading
from collections import defaultdict
from contextlib import contextmanager

from schemas import to_json

log = logging.getLogger("switchboard")


class QuotaExceeded(Exception):
    """A write or a subscription would take the account past one of its quotas."""

    def __init__(self, what, limit):
        super().__init__(f"This account may hold at most {limit:,} {what}.")
        self.what = what
        self.limit = limit


def frame(event, data):
    return to_json({"event": event, "data": data})


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


class Hub:
    CLOSE = "close"  # queue item (CLOSE, (code, reason)): the connection must end

    def __init__(self):
        self._subscribers = defaultdict(set)
        self._per_token = defaultdict(int)  # token id -> its open websockets (counted under the quota)
        self._lock = threading.Lock()
        self._outbox = None
        self.on_subscribe = None  # called with the account id as anyone registers (events/follower.py)
        self.stopping = False  # set by shutdown(): waiting requests answer now instead of holding it up
        self.configure()

    def configure(self, queue_size=1024, queue_bytes=16 << 20, background_fanout=False, websockets_per_token=0):
        """`background_fanout` (the server's worker) hands each publication to one fan-out thread,
        so a publishing request costs the same at 10 subscribers or 10,000; without it (tests
        driving the app in-process) publication happens inline, in the same order.
        `websockets_per_token` (0: none) is the quota of open websockets a token may hold."""
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.websockets_per_token = websockets_per_token
        if background_fanout and self._outbox is None:
            self._outbox = queue.Queue()
            threading.Thread(target=self._fan_out_forever, daemon=True, name="fan-out").start()

    def subscribe(self, account_id, session_id=None, token_id=None):
        """A websocket's Subscriber, registered for the duration of the block; QuotaExceeded when its
        token already has as many open as the quota allows."""
        return self._registered(Subscriber(account_id, session_id, self.queue_size, token_id, self.queue_bytes),
                                self.websockets_per_token)

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
            if self.on_subscribe is not None:
                self.on_subscribe(subscriber.account_id)
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

        Callers publish in seq order (the writer, after each commit); the one outbox keeps that order. With no
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

    def accounts(self):
        """The ids of the accounts someone here is subscribed to or watches."""
        with self._lock:
            return set(self._subscribers)

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
