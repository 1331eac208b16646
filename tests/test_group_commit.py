"""Group commit (events.Hub.write): writers that arrive together share one transaction, each in its own
savepoint. Driven in-process with real threads on a real SQLite file; the outcome is read back through
a connection of its own, so only committed rows count."""
import sqlite3
import threading

import pytest

import domain
import models
from app import create_token
from events import hub


def _sessions(app):
    with sqlite3.connect(app.config["DB"]) as conn:
        return sorted(tag for (tag,) in conn.execute("SELECT tag FROM session"))


@pytest.fixture
def account(app):
    with models.db.connection_context():
        create_token(models, account="alice")
        return models.Account.get(name="alice").id


def test_writers_joining_an_open_transaction_commit_with_it_and_a_failure_undoes_only_itself(
        app, account, monkeypatch):
    leader_waiting, joined, groups = threading.Event(), threading.Event(), []
    commit = hub._commit

    def commit_once_others_joined(group):
        leader_waiting.set()
        assert joined.wait(10)
        commit(group)
        groups.append(list(group.members))
    monkeypatch.setattr(hub, "_commit", commit_once_others_joined)

    def leader():
        with models.db.connection_context():
            domain.create_session(account, tag="first")
    thread = threading.Thread(target=leader)
    thread.start()
    assert leader_waiting.wait(10)  # its transaction is open, not committed
    assert _sessions(app) == []

    with models.db.connection_context():
        with pytest.raises(RuntimeError):
            with hub.write(account):
                domain.Session.create(account=account, tag="failed")
                raise RuntimeError("this writer fails after its insert")
        with hub.write(account) as changes:
            domain.Session.create(account=account, tag="second")
            changes.add(None, {"t": "test"})
            joined.set()
        # back from the block only once the shared transaction has committed
        assert _sessions(app) == ["first", "second"]
    thread.join(10)
    assert len(groups) == 1 and len(groups[0]) == 2  # one commit for both writers that succeeded
    with sqlite3.connect(app.config["DB"]) as conn:
        assert conn.execute('SELECT seq, body FROM "update" ORDER BY seq').fetchall()[-1] == (2, '{"t":"test"}')


def test_a_failing_first_writer_leaves_nothing_open_and_the_next_write_starts_afresh(app, account):
    with models.db.connection_context():
        with pytest.raises(RuntimeError):
            with hub.write(account):
                domain.Session.create(account=account, tag="failed")
                raise RuntimeError("the first writer fails")
        assert hub._group is None
        domain.create_session(account, tag="next")
    assert _sessions(app) == ["next"]
