"""Notifications: which update bodies are events, queueing their deliveries, and the worker that sends.

`enqueue` runs inside every write's transaction (events.Writer `on_store`): it reads the update bodies
the write recorded, and queues a webhook run per matching webhook and a push job per subscription in
that same transaction, so producers need no notification code and a committed event is never lost.
The `Dispatcher` (a background thread, a greenlet under gevent) claims due work, sends it with a
bounded number of senders and records each attempt: no request ever waits for a delivery.
"""
import logging
import queue
import threading
import time

import urllib3

import push
import webhooks
from events import writer
from models import (
    SQL,
    PushJob,
    PushSubscription,
    Statement,
    Token,
    Webhook,
    WebhookRun,
    db,
    first_id_at,
    fn,
    new_ids,
    now_ms,
    postgres,
)

log = logging.getLogger("switchboard")

# Run by every write with an event (Statement: rendered once per database).
_INSERT_RUNS = Statement(lambda *row: WebhookRun.insert_many([row], fields=(
    WebhookRun.id, WebhookRun.webhook, WebhookRun.session, WebhookRun.event, WebhookRun.payload, WebhookRun.status,
    WebhookRun.attempts, WebhookRun.next_attempt_at, WebhookRun.created_at)),
    "\0i", 1001, "\0s", "\0e", "\0p", "\0S", 1002, 1003, 1004)
_INSERT_JOBS = Statement(lambda *row: PushJob.insert_many([row], fields=(
    PushJob.subscription, PushJob.session, PushJob.payload, PushJob.attempts, PushJob.next_attempt_at)),
    1001, "\0s", "\0p", 1002, 1003)
_WEBHOOKS = Statement(lambda account_id: (
    Webhook
    .select(Webhook.id, Webhook.events)
    .where(Webhook.account == account_id)), 1001)
_SUBSCRIPTIONS = Statement(lambda account_id: (
    PushSubscription
    .select(PushSubscription.id)
    .join(Token)
    .where(Token.account == account_id)), 1001)


def events_of(bodies):
    """(session id, event, extra data) for each update body that is an event."""
    for session_id, body in bodies:
        kind = body.get("t")
        if session_id is None:
            continue
        if kind == "new-request":
            yield session_id, "request.created", {"request": body.get("request")}
        elif kind == "update-session":
            # A held Claude Code session stopped and waits for the person's next message.
            if body.get("awaitingMessage"):
                yield session_id, "session.waiting", {"waiting": True}
            if body.get("active") is False:
                yield session_id, "session.ended", {}
        elif kind == "new-message":
            yield session_id, "message.created", {"message": body.get("message")}


def enqueue(changes):
    """Queue the deliveries for `changes` (a write's recorded updates), in its transaction."""
    events = list(events_of(changes.bodies))
    if not events:
        return
    subscribed = [(webhook_id, set(names.split(",")))
                  for webhook_id, names in db.execute_sql(*_WEBHOOKS(changes.account_id))]
    pushed = [e for e in events if e[1] in push.PUSHED_EVENTS]
    subscriptions = [s for (s,) in db.execute_sql(*_SUBSCRIPTIONS(changes.account_id))] if pushed else []
    subscribed_to = set().union(*(names for _, names in subscribed))
    wanted = [e for e in events if e[1] in subscribed_to]
    if not wanted and not subscriptions:
        return
    now = now_ms()
    sessions = webhooks.session_rows({session_id for session_id, _, _ in events})
    runs, jobs = [], []
    for session_id, event, extra in wanted:
        if session_id not in sessions:
            continue
        body = webhooks.event_payload(event, sessions[session_id], extra, now)
        targets = [webhook_id for webhook_id, names in subscribed if event in names]
        for webhook_id, run_id in zip(targets, new_ids(len(targets))):
            runs.append((run_id, webhook_id, session_id, event, body, "pending", 0, now, now))
    for session_id, event, _ in pushed if subscriptions else ():
        if session_id in sessions:
            body = push.payload(event, sessions[session_id])
            jobs.extend((subscription, session_id, body, 0, now) for subscription in subscriptions)
    if runs:
        db.cursor().executemany(*_INSERT_RUNS.many(runs))
    if jobs:
        db.cursor().executemany(*_INSERT_JOBS.many(jobs))
    if runs or jobs:
        dispatcher.wake()


def prune(older_than_ms):
    """Delete finished runs (delivered or failed) created before `older_than_ms`; returns how many.
    Run ids begin with their creation time: the old ones are a range of the primary key."""
    return writer.run(None, lambda changes: (WebhookRun
                                             .delete()
                                             .where((WebhookRun.id < first_id_at(older_than_ms))
                                                    & (WebhookRun.status != "pending"))
                                             .execute()))


# --- the worker -----------------------------------------------------------------------------------

# Pending runs are matched with the literal of the partial index they are read by (models.WebhookRun).
_PENDING = WebhookRun.status == SQL("'pending'")
# On PostgreSQL, where several processes claim work, a row another one is claiming is skipped: each
# run and job is leased (then sent) by one process only.
_DUE_RUNS = Statement(lambda now, limit: _claimed(
    WebhookRun
    .select(WebhookRun.id, Webhook.url, Webhook.format, Webhook.secret, WebhookRun.payload, WebhookRun.attempts)
    .join(Webhook)
    .where(_PENDING & (WebhookRun.next_attempt_at <= now))
    .order_by(WebhookRun.next_attempt_at)
    .limit(limit), WebhookRun), 1001, 1002)
_DUE_JOBS = Statement(lambda now, limit: _claimed(
    PushJob
    .select(PushJob.id, PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth, PushJob.payload,
            PushJob.attempts, PushJob.subscription)
    .join(PushSubscription)
    .where(PushJob.next_attempt_at <= now)
    .order_by(PushJob.next_attempt_at)
    .limit(limit), PushJob), 1001, 1002)
_LEASE_RUN = Statement(lambda lease, run_id: (
    WebhookRun
    .update({WebhookRun.next_attempt_at: lease})
    .where(WebhookRun.id == run_id)), 1001, "\0i")
_LEASE_JOB = Statement(lambda lease, job_id: (
    PushJob
    .update({PushJob.next_attempt_at: lease})
    .where(PushJob.id == job_id)), 1001, 1002)
_RECORD_RUN = Statement(lambda status, attempts, due, response_status, duration_ms, error, run_id: (
    WebhookRun
    .update({WebhookRun.status: status, WebhookRun.attempts: attempts, WebhookRun.next_attempt_at: due,
             WebhookRun.response_status: response_status, WebhookRun.duration_ms: duration_ms,
             WebhookRun.error: error})
    .where(WebhookRun.id == run_id)), "\0S", 1001, 1002, 1003, 1004, "\0e", "\0i")


def _claimed(query, table):
    return query.for_update(of=table, skip_locked=True) if postgres() else query


def _next_due():
    """When the next pending run or job is due (epoch ms), or None."""
    runs = WebhookRun.select(fn.MIN(WebhookRun.next_attempt_at)).where(_PENDING).scalar()
    jobs = PushJob.select(fn.MIN(PushJob.next_attempt_at)).scalar()
    return min((due for due in (runs, jobs) if due is not None), default=None)

_IDLE_POLL_SECONDS = 1.0  # how soon work queued by another process (or a lost wake-up) is noticed
_GATHER_SECONDS = 0.005  # after a wake-up: lets more outcomes and events arrive, for one transaction


class Dispatcher:
    """Claims due runs and push jobs, hands them to `senders` sender threads, records the outcomes.

    A claim leases the work (its due time moves past the attempt's timeout), so a process that dies
    mid-attempt leaves it to be retried, not lost; the queue lives in SQLite and survives restarts."""

    def __init__(self):
        self._wake = threading.Event()
        self._todo = queue.Queue()
        self._done = queue.Queue()
        self._in_flight = 0
        self.configure()

    # 8 senders: as fast as 16 to a local receiver (bench/webhooks.py), with less of the worker's CPU
    # taken from serving requests during a burst; a receiver that hangs holds one sender until the timeout.
    def configure(self, retry_base_seconds=5.0, max_attempts=8, timeout_seconds=10.0, senders=8,
                  public_url="", vapid_subject="mailto:switchboard@localhost"):
        self.retry_base_ms = int(retry_base_seconds * 1000)
        self.max_attempts = max_attempts
        self.timeout = timeout_seconds
        self.senders = senders
        self.public_url = public_url
        self.vapid_subject = vapid_subject

    def wake(self):
        self._wake.set()

    def start(self):
        for number in range(self.senders):
            threading.Thread(target=self._send_forever, daemon=True, name=f"notify-sender-{number}").start()
        threading.Thread(target=self._dispatch_forever, daemon=True, name="notify-dispatch").start()

    def retry_delay_ms(self, attempts):
        """After the `attempts`-th failed attempt: the base, doubled for each attempt before it."""
        return self.retry_base_ms * 2 ** (attempts - 1)

    def _dispatch_forever(self):
        wait = 0
        while True:
            if self._wake.wait(wait):
                time.sleep(_GATHER_SECONDS)
            self._wake.clear()
            try:
                with db.connection_context():
                    wait = self._cycle()
            except Exception:
                log.exception("notification dispatch failed; retrying")
                wait = _IDLE_POLL_SECONDS

    def _cycle(self):
        """Record finished attempts and claim due work in one transaction; returns how long to sleep."""
        finished = []
        while True:
            try:
                finished.append(self._done.get_nowait())
            except queue.Empty:
                break
        free = max(0, self.senders - self._in_flight + len(finished))
        try:
            runs, jobs, next_due = self._claim(finished, free)
        except BaseException:
            for outcome in finished:  # recorded by the next cycle
                self._done.put(outcome)
            raise
        self._in_flight += len(runs) + len(jobs) - len(finished)
        for run in runs:
            self._todo.put(("run", run))
        for job in jobs:
            self._todo.put(("push", job))
        if self._in_flight >= self.senders or next_due is None:
            return _IDLE_POLL_SECONDS  # a finished attempt wakes the loop
        return min(_IDLE_POLL_SECONDS, max(0.0, (next_due - now_ms()) / 1000))

    def _claim(self, finished, free):
        def write(changes):
            now = now_ms()
            self._record(finished, now)
            lease = now + int((self.timeout + 5) * 1000)
            runs = [dict(zip(("id", "url", "format", "secret", "payload", "attempts"), row))
                    for row in db.execute_sql(*_DUE_RUNS(now, free))]
            jobs = [dict(zip(("id", "endpoint", "p256dh", "auth", "payload", "attempts", "subscription_id"), row))
                    for row in db.execute_sql(*_DUE_JOBS(now, free - len(runs)))]
            db.cursor().executemany(*_LEASE_RUN.many([(lease, run["id"]) for run in runs]))
            db.cursor().executemany(*_LEASE_JOB.many([(lease, job["id"]) for job in jobs]))
            return runs, jobs, _next_due()
        return writer.run(None, write)

    def _record(self, finished, now):
        runs = []
        for kind, item, status, duration_ms, error in finished:
            attempts = item["attempts"] + 1
            if kind == "run":
                if error is None:
                    state, due = "delivered", None
                elif attempts >= self.max_attempts:
                    state, due = "failed", None
                else:
                    state, due = "pending", now + self.retry_delay_ms(attempts)
                runs.append((state, attempts, due, status, duration_ms, error, item["id"]))
            elif status in push.GONE:
                PushSubscription.delete().where(PushSubscription.id == item["subscription_id"]).execute()
            elif error is None or attempts >= self.max_attempts:
                PushJob.delete().where(PushJob.id == item["id"]).execute()
            else:
                (PushJob
                 .update(attempts=attempts, next_attempt_at=now + self.retry_delay_ms(attempts))
                 .where(PushJob.id == item["id"])
                 .execute())
        if runs:
            db.cursor().executemany(*_RECORD_RUN.many(runs))

    def _send_forever(self):
        # One per sender, so connections to a receiver are kept alive. urllib3 rather than requests:
        # a third of the CPU per delivery (bench/webhooks.py).
        http = urllib3.PoolManager()
        while True:
            kind, item = self._todo.get()
            status, duration_ms, error = None, 0, None
            try:
                if kind == "run":
                    status, duration_ms, error = webhooks.deliver(item, http, self.timeout, self.public_url)
                else:
                    started = time.monotonic()
                    status, error = push.deliver(item, http, self.timeout, self.vapid_subject)
                    duration_ms = int((time.monotonic() - started) * 1000)
            except Exception as e:  # a bug here must cost one attempt, never the sender
                log.exception("notification delivery failed")
                error = type(e).__name__
            self._done.put((kind, item, status, duration_ms, error))
            self._wake.set()


dispatcher = Dispatcher()
