"""hub.watch(): a request waiting for a change to one session wakes on that session's updates only."""
import threading
import time

import domain
import models
from events import hub


def _account():
    with models.db.connection_context():
        return models.Account.create(name="watcher").id


def test_watch_wakes_on_a_change_to_its_session_only(app):
    account = _account()
    with models.db.connection_context():
        watched, _ = domain.create_session(account, tag="watched")
        other, _ = domain.create_session(account, tag="other")

    def append(session_id, delay):
        time.sleep(delay)
        with models.db.connection_context():
            domain.append_messages(account, session_id, [{"content": '"hi"'}])

    with hub.watch(account, watched.id) as watcher:
        threading.Thread(target=append, args=(other.id, 0)).start()
        assert not watcher.wait(0.3)  # another session's message does not wake it
        started = time.monotonic()
        threading.Thread(target=append, args=(watched.id, 0.1)).start()
        assert watcher.wait(5)
        assert time.monotonic() - started < 2
        assert not watcher.wait(0.1)  # re-armed after a wake
    assert hub.subscribers() == []


def test_a_change_before_the_wait_is_not_lost(app):
    account = _account()
    with models.db.connection_context():
        session, _ = domain.create_session(account, tag="s")
        with hub.watch(account, session.id) as watcher:
            domain.append_messages(account, session.id, [{"content": '"hi"'}])
            assert watcher.wait(0)
