"""The write invariants under real concurrency: client threads against the real server
(`python app.py serve`), with the outcome read back from the SQLite file. Both worker classes run
them: gevent (the default) never preempts a request, gthread's threads do."""
import random
import threading
from collections import Counter

import pytest
import requests

from conftest import connected, run_sql

CREATE_THREADS = 16
APPEND_THREADS = 8


def run_threads(count, work):
    """Start `count` threads on work(i) at the same moment; re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors = []

    def run(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: B902 - reported to the test below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]


@pytest.fixture(params=["gevent", "gthread"])
def live_server(request, make_server):
    return make_server(env={"SWITCHBOARD_WORKER_CLASS": request.param})


def test_concurrent_creates_of_one_tag_make_one_session(live_server):
    answers = [None] * CREATE_THREADS

    def create(i):
        r = requests.post(live_server.url + "/v1/sessions", headers=live_server.headers,
                          json={"tag": "same-tag", "metadata": f"from thread {i}"}, timeout=30)
        answers[i] = (r.status_code, r.json())
    run_threads(CREATE_THREADS, create)
    assert Counter(status for status, _ in answers) == {200: CREATE_THREADS}
    assert len({body["session"]["id"] for _, body in answers}) == 1
    assert run_sql(live_server.db_path, "SELECT count(*) FROM session WHERE tag = 'same-tag'") == [(1,)]
    bodies = run_sql(live_server.db_path, 'SELECT body FROM "update"')
    assert len(bodies) == 1 and '"t":"new-session"' in bodies[0][0]


def test_concurrent_appends_with_duplicate_local_ids_leave_seqs_1_to_n(live_server):
    headers = live_server.headers
    sid = requests.post(live_server.url + "/v1/sessions", json={"tag": "t", "metadata": ""},
                        headers=headers, timeout=30).json()["session"]["id"]
    shared = [f"shared-{n}" for n in range(40)]  # every thread also sends these: most are duplicates
    answers = []  # (localId, id, seq) as the server reported them
    statuses = Counter()
    lock = threading.Lock()

    def append(i):
        rng = random.Random(i)
        http = requests.Session()
        for n in range(15):
            batch = [{"content": {"thread": i, "n": n}, "localId": f"own-{i}-{n}"}]
            batch += [{"content": "shared", "localId": local_id} for local_id in rng.sample(shared, 3)]
            batch += [{"content": "no local id"}] * (n % 2)
            rng.shuffle(batch)
            r = http.post(f"{live_server.url}/v3/sessions/{sid}/messages", json={"messages": batch},
                          headers=headers, timeout=30)
            with lock:
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    answers.extend((m["localId"], m["id"], m["seq"]) for m in r.json()["messages"])
    run_threads(APPEND_THREADS, append)

    assert statuses == {200: APPEND_THREADS * 15}
    with connected(live_server.db_path) as db:
        rows = db("SELECT local_id, id, seq FROM message WHERE session_id = ? ORDER BY seq", (sid,))
        [(session_seq,)] = db("SELECT seq FROM session WHERE id = ?", (sid,))
        [(new_messages,)] = db("""SELECT count(*) FROM "update" WHERE session_id = ?
                                  AND body LIKE '{"t":"new-message"%'""", (sid,))
    seqs = [seq for _, _, seq in rows]
    local_ids = [local_id for local_id, _, _ in rows if local_id is not None]
    unnamed = APPEND_THREADS * 7  # odd n in range(15)
    sent_shared = {local_id for local_id in local_ids if local_id.startswith("shared-")}
    # no gap, no duplicate, and duplicates consumed no seq: N is exactly the distinct messages
    assert seqs == list(range(1, len(rows) + 1))
    assert len(local_ids) == len(set(local_ids)) == APPEND_THREADS * 15 + len(sent_shared)
    assert len(rows) == len(local_ids) + unnamed == session_seq == new_messages
    # every answer, first or duplicate, named the one stored row of its localId
    stored = {local_id: (mid, seq) for local_id, mid, seq in rows if local_id is not None}
    for local_id, mid, seq in answers:
        if local_id is not None:
            assert stored[local_id] == (mid, seq)
