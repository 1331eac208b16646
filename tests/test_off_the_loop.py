"""SQLite's part of a big write runs in a native thread only when another request can use the worker
meanwhile (models.at_work). gevent starts its pool's threads on first use, so the worker's thread
count tells whether anything ran there."""
import threading

import pytest
import requests

# On PostgreSQL nothing runs in a native thread: psycopg waits in gevent.
pytestmark = pytest.mark.sqlite_only


def _append(http, server, sid, word, batches=20):
    for i in range(batches):
        r = http.post(f"{server.url}/v3/sessions/{sid}/messages",
                      json={"messages": [{"content": f"{word} {i} {k}"} for k in range(100)]}, timeout=30)
        assert r.status_code == 200, r.text


def test_an_agent_alone_writes_on_the_loop_and_agents_together_beside_it(live_server):
    http = requests.Session()
    http.headers.update(live_server.headers)
    sid = http.post(live_server.url + "/v1/sessions", json={"tag": "t", "metadata": "{}"}).json()["session"]["id"]
    threads = live_server.worker.num_threads()
    # A long-poll waiting meanwhile is not at work: the agent is still alone.
    poll = threading.Thread(target=lambda: requests.get(
        f"{live_server.url}/v3/sessions/{sid}/messages", params={"after_seq": 10**6, "wait": 3},
        headers=live_server.headers, timeout=30))
    poll.start()
    _append(http, live_server, sid, "alone")
    assert live_server.worker.num_threads() == threads
    poll.join()

    def agent(word):
        session = requests.Session()
        session.headers.update(live_server.headers)
        _append(session, live_server, sid, word)
    agents = [threading.Thread(target=agent, args=(f"agent{n}",)) for n in range(3)]
    for thread in agents:
        thread.start()
    for thread in agents:
        thread.join()
    assert live_server.worker.num_threads() > threads
