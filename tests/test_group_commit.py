"""Group commit (events.Writer.run): writes that arrive together share one transaction, each in its own
savepoint, all run on the leading writer's connection. Driven in-process with real threads on a real
SQLite file; the outcome is read back through a connection of its own, so only committed rows count."""
import threading
import time

import pytest

import domain
import models
from app import create_token
from conftest import run_sql
from events import Busy, writer


def _sessions(app):
    return sorted(tag for (tag,) in run_sql(app.config["DB"], "SELECT tag FROM session"))


@pytest.fixture
def account(app):
    with models.db.connection_context():
        create_token(models, account="alice")
        return models.Account.get(name="alice").id


def _queued(count):
    """Wait until `count` writes wait in the writer's queue."""
    deadline = time.monotonic() + 10
    while len(writer._queue) < count:
        assert time.monotonic() < deadline, "the writes never queued"
        time.sleep(0.005)


def _leading():
    """Wait until a write is running (its transaction open)."""
    deadline = time.monotonic() + 10
    while writer._running is None:
        assert time.monotonic() < deadline, "no write started"
        time.sleep(0.005)


def _in_thread(target, outcomes, name):
    def run():
        with models.db.connection_context():
            try:
                outcomes[name] = target()
            except BaseException as e:  # noqa: B036 (the outcome under test)
                outcomes[name] = e
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _create(account, tag, fail=None):
    def write(changes):
        session = domain.Session.create(account=account, tag=tag)
        changes.add(session.id, {"t": "test", "tag": tag})
        if fail is not None:
            raise fail
        return threading.get_ident()
    return write


def test_writes_queued_behind_an_open_transaction_commit_with_it_and_a_failure_undoes_only_itself(
        app, account, monkeypatch):
    commits = []
    commit = writer._commit

    def counted(connection, cursor, taken, *rest):
        commits.append([w.fn for w in taken])
        commit(connection, cursor, taken, *rest)
    monkeypatch.setattr(writer, "_commit", counted)
    outcomes, seen = {}, {}

    def first(changes):
        _create(account, "first")(changes)
        _queued(2)  # the others queue while this transaction is open
        assert _sessions(app) == []  # nothing committed yet
        return threading.get_ident()
    leader = _in_thread(lambda: writer.run(account, first), outcomes, "first")
    _leading()
    failing = _in_thread(lambda: writer.run(account, _create(account, "failed", RuntimeError("undone"))),
                         outcomes, "failed")
    _queued(1)

    def second():
        thread = writer.run(account, _create(account, "second"))
        seen["after"] = _sessions(app)  # back only once the shared transaction has committed
        return thread
    joined = _in_thread(second, outcomes, "second")
    for thread in (leader, failing, joined):
        thread.join(10)
    assert isinstance(outcomes["failed"], RuntimeError)
    assert seen["after"] == ["first", "second"] == _sessions(app)
    assert len(commits) == 1 and len(commits[0]) == 3  # one transaction for the three writes
    assert outcomes["second"] == outcomes["first"] == leader.ident  # every write ran on the leader's thread
    assert run_sql(app.config["DB"], 'SELECT seq, body FROM "update" ORDER BY seq')[-2:] == [
        (1, '{"t":"test","tag":"first"}'), (2, '{"t":"test","tag":"second"}')]


def test_a_failing_first_writer_leaves_nothing_open_and_the_next_write_starts_afresh(app, account):
    with models.db.connection_context():
        with pytest.raises(RuntimeError):
            writer.run(account, _create(account, "failed", RuntimeError("the first writer fails")))
        assert writer._leader is None and not writer._queue
        domain.create_session(account, tag="next")
    assert _sessions(app) == ["next"]


class Killed(BaseException):
    """What a greenlet killed in the middle of a write sees (as GreenletExit)."""


def test_writes_joined_to_a_transaction_whose_leader_dies_fail_at_once_and_the_writer_goes_on(app, account):
    outcomes = {}

    def first(changes):
        _create(account, "first")(changes)
        _queued(2)
    leader = _in_thread(lambda: writer.run(account, first), outcomes, "first")
    _leading()
    joined = _in_thread(lambda: writer.run(account, _create(account, "joined")), outcomes, "joined")
    _queued(1)
    dying = _in_thread(lambda: writer.run(account, _create(account, "dying", Killed())), outcomes, "dying")
    for thread in (leader, joined, dying):
        thread.join(10)
        assert not thread.is_alive(), "a write hung on a transaction that died"
    assert isinstance(outcomes["first"], Killed)  # the leader's own thread is the one stopped
    assert isinstance(outcomes["joined"], Busy) and isinstance(outcomes["dying"], Busy)
    assert _sessions(app) == []
    assert writer._leader is None and writer._running is None
    with models.db.connection_context():
        domain.create_session(account, tag="after")
    assert _sessions(app) == ["after"]


def test_a_write_that_waits_past_its_budget_before_starting_gives_up_and_never_runs(app, account):
    outcomes, release = {}, threading.Event()

    def slow(changes):
        _create(account, "slow")(changes)
        assert release.wait(10)
    leader = _in_thread(lambda: writer.run(account, slow), outcomes, "slow")
    _leading()
    started = time.monotonic()
    waiting = _in_thread(lambda: writer.run(account, _create(account, "late"), busy_wait=0.2), outcomes, "late")
    waiting.join(10)
    assert isinstance(outcomes["late"], Busy) and time.monotonic() - started < 2
    release.set()
    leader.join(10)
    assert _sessions(app) == ["slow"]
    assert not writer._queue


def test_a_write_cannot_start_another_write(app, account):
    with models.db.connection_context(), pytest.raises(RuntimeError, match="cannot start another"):
        writer.run(account, lambda changes: writer.run(account, lambda inner: None))
    assert writer._leader is None


def test_a_leader_stopped_before_its_transaction_began_hands_the_lead_on(app, account, monkeypatch):
    outcomes = {}
    begin = writer._begin
    calls = []

    def stopped_once(cursor, deadline):
        calls.append(1)
        if len(calls) == 1:
            _queued(3)  # its own write and two others wait in the queue
            raise Killed()
        return begin(cursor, deadline)
    monkeypatch.setattr(writer, "_begin", stopped_once)
    leader = _in_thread(lambda: writer.run(account, _create(account, "stopped")), outcomes, "stopped")
    deadline = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    others = [_in_thread(lambda tag=tag: writer.run(account, _create(account, tag)), outcomes, tag)
              for tag in ("next", "last")]
    for thread in (leader, *others):
        thread.join(10)
        assert not thread.is_alive(), "a write hung behind a leader that never began"
    assert isinstance(outcomes["stopped"], Killed)
    assert _sessions(app) == ["last", "next"]
    assert writer._leader is None and not writer._queue
