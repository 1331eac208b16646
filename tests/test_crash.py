"""Crash safety: writers stream into the real server, which is killed (SIGKILL of the master and its
worker) or stopped (SIGTERM) mid-stream, then restarted on the same file. Whatever was acknowledged is
there exactly once with the seq it was acknowledged with, seqs have no gap, and retrying what was not
acknowledged (same localIds, same tags, same deletes) duplicates nothing.

`Stream` and `check_survivors` are shared with bench/stress_crash.py, which runs more rounds."""
import signal
import threading
import time

import psutil
import pytest
import requests
from simple_websocket import ConnectionClosed

from conftest import ON_POSTGRES, connected

WRITERS = 4
SESSIONS = 2  # fewer sessions than writers: two writers race for each session's seqs
TIMEOUT = 5  # every request


class Stream:
    """WRITERS threads appending batches with localIds, and one thread creating sessions by tag and
    deleting others, until the server goes away. Records what was acknowledged and what was not."""

    def __init__(self, server, sessions, doomed):
        self.server = server
        self.sessions = sessions
        self.doomed = doomed
        self.lock = threading.Lock()
        self.acked = {}  # localId -> (sid, id, seq) as acknowledged
        self.unacked = []  # (sid, batch) sent without a 2xx answer
        self.created = {}  # tag -> session id, acknowledged
        self.unacked_tags = []
        self.deleted = []  # session ids, acknowledged
        self.unacked_deletes = []
        self.threads = [threading.Thread(target=self._append, args=(w,), daemon=True) for w in range(WRITERS)]
        self.threads.append(threading.Thread(target=self._create_and_delete, daemon=True))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(TIMEOUT * 3)
        assert not any(t.is_alive() for t in self.threads), "a writer never returned"

    def _append(self, writer):
        sid = self.sessions[writer % len(self.sessions)]
        url = f"{self.server.url}/v3/sessions/{sid}/messages"
        with requests.Session() as http:
            for i in range(100_000):
                batch = [{"content": {"w": writer, "i": i, "j": j}, "localId": f"w{writer}-{i}-{j}"}
                         for j in range(1 + i % 3)]
                try:
                    r = http.post(url, json={"messages": batch}, headers=self.server.headers, timeout=TIMEOUT)
                except requests.RequestException:
                    with self.lock:
                        self.unacked.append((sid, batch))
                    return  # the server is gone
                with self.lock:
                    if r.ok:
                        for m in r.json()["messages"]:
                            self.acked[m["localId"]] = (sid, m["id"], m["seq"])
                    else:
                        self.unacked.append((sid, batch))

    def _create_and_delete(self):
        with requests.Session() as http:
            for k, victim in enumerate(self.doomed):
                tag = f"made-{k}"
                try:
                    r = http.post(self.server.url + "/v1/sessions", json={"tag": tag, "metadata": ""},
                                  headers=self.server.headers, timeout=TIMEOUT)
                except requests.RequestException:
                    self.unacked_tags.append(tag)
                    return
                if r.ok:
                    self.created[tag] = r.json()["session"]["id"]
                else:
                    self.unacked_tags.append(tag)
                try:
                    r = http.delete(f"{self.server.url}/v1/sessions/{victim}", headers=self.server.headers,
                                    timeout=TIMEOUT)
                except requests.RequestException:
                    self.unacked_deletes.append(victim)
                    return
                (self.deleted if r.ok else self.unacked_deletes).append(victim)

    def progress(self):
        with self.lock:
            return len(self.acked), len(self.created), len(self.deleted)


def prepare(server, doomed_count=200):
    """The sessions the writers append to and the sessions the stream deletes."""
    def create(tag):
        r = requests.post(server.url + "/v1/sessions", json={"tag": tag, "metadata": ""},
                          headers=server.headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return r.json()["session"]["id"]
    return [create(f"stream-{n}") for n in range(SESSIONS)], [create(f"doomed-{n}") for n in range(doomed_count)]


def run_until(stream, messages, deadline_seconds=15):
    """Let the stream run until `messages` appends, 3 creates and 3 deletes were acknowledged."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        acked, created, deleted = stream.progress()
        if acked >= messages and created >= 3 and deleted >= 3:
            return
        time.sleep(0.01)
    raise AssertionError(f"the stream made too little progress: {stream.progress()}")


def kill_hard(server):
    """SIGKILL the gunicorn master and its worker. The master is stopped first so that it cannot
    fork a replacement worker between the two kills."""
    master = psutil.Process(server.proc.pid)
    master.suspend()
    workers = master.children()
    assert workers, "no worker to kill"
    for worker in workers:
        worker.kill()
    master.kill()
    server.proc.wait(TIMEOUT)
    psutil.wait_procs(workers, timeout=TIMEOUT)


def _messages(db, sid):
    return db("SELECT local_id, id, seq FROM message WHERE session_id = ? ORDER BY seq", (sid,))


def _assert_consistent(db, sessions):
    """Per session seqs 1..N matching session.seq and no localId twice; the update log 1..account.seq."""
    if not ON_POSTGRES:
        assert db("PRAGMA integrity_check")[0] == ("ok",)
    for sid in sessions:
        rows = _messages(db, sid)
        assert [seq for _, _, seq in rows] == list(range(1, len(rows) + 1))
        assert db("SELECT seq FROM session WHERE id = ?", (sid,))[0] == (len(rows),)
        assert len({local_id for local_id, _, _ in rows}) == len(rows)
    for account, last in db("SELECT id, seq FROM account"):
        seqs = [s for (s,) in db('SELECT seq FROM "update" WHERE account_id = ? ORDER BY seq', (account,))]
        assert seqs == list(range(1, last + 1))


def go_away(server, how):
    """End the server mid-stream: "sigkill" (a crash) or "sigterm" (a clean stop, which must exit 0
    without a traceback)."""
    if how == "sigkill":
        kill_hard(server)
    else:
        assert server.stop(signal.SIGTERM) == 0
        assert "Traceback" not in server.log()


def check_survivors(server, stream):
    """After the restart: check, retry what was not acknowledged, check again. Returns the figures."""
    assert len(stream.unacked) >= WRITERS, "the server went away while no writer was writing"
    with connected(server.db_path) as db:
        _assert_consistent(db, stream.sessions)
        stored = {local_id: (sid, mid, seq) for sid in stream.sessions for local_id, mid, seq in _messages(db, sid)}
        survivors = sum(stored.get(local_id) == answer for local_id, answer in stream.acked.items())
        assert survivors == len(stream.acked), "an acknowledged append was lost or changed"
        in_flight = [m["localId"] for _, batch in stream.unacked for m in batch]
        committed_unacked = sum(local_id in stored for local_id in in_flight)
        for tag, sid in stream.created.items():
            assert db("SELECT id FROM session WHERE tag = ?", (tag,)) == [(sid,)]
        for sid in stream.deleted:
            assert db("SELECT count(*) FROM session WHERE id = ?", (sid,))[0] == (0,)
            assert db("SELECT count(*) FROM message WHERE session_id = ?", (sid,))[0] == (0,)

    with requests.Session() as http:
        for sid, batch in stream.unacked:
            r = http.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": batch},
                          headers=server.headers, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
        for tag in [*stream.unacked_tags, *list(stream.created)[:3]]:
            r = http.post(server.url + "/v1/sessions", json={"tag": tag, "metadata": ""},
                          headers=server.headers, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            assert stream.created.get(tag, r.json()["session"]["id"]) == r.json()["session"]["id"]
        for sid in [*stream.unacked_deletes, *stream.deleted[:3]]:
            r = http.delete(f"{server.url}/v1/sessions/{sid}", headers=server.headers, timeout=TIMEOUT)
            assert r.status_code in (200, 404), r.text
        # a retried acknowledged batch answers the stored rows
        retried = next(iter(stream.acked))
        sid, mid, seq = stream.acked[retried]
        r = http.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": 0, "localId": retried}]},
                      headers=server.headers, timeout=TIMEOUT)
        assert [(m["id"], m["seq"]) for m in r.json()["messages"]] == [(mid, seq)]

    with connected(server.db_path) as db:
        _assert_consistent(db, stream.sessions)
        after = [local_id for sid in stream.sessions for local_id, _, _ in _messages(db, sid)]
        duplicates = len(after) - len(set(after))
        assert set(after) == set(stream.acked) | set(in_flight)  # everything sent, nothing else
        for tag in stream.unacked_tags:
            assert db("SELECT count(*) FROM session WHERE tag = ?", (tag,))[0] == (1,)
        for sid in stream.unacked_deletes:
            assert db("SELECT count(*) FROM session WHERE id = ?", (sid,))[0] == (0,)
    return {"acknowledged": len(stream.acked), "survivors": survivors, "in flight": len(in_flight),
            "in flight committed": committed_unacked, "duplicates": duplicates,
            "creates acked": len(stream.created), "deletes acked": len(stream.deleted)}


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_acknowledged_writes_survive_the_server_going_away_mid_stream(tmp_path, make_server, ws_connect, how):
    db_path = tmp_path / "crash.db"
    server = make_server(db_path=db_path)
    sessions, doomed = prepare(server)
    watcher = ws_connect(server)
    stream = Stream(server, sessions, doomed).start()
    run_until(stream, messages=150)
    go_away(server, how)
    stream.join()
    if how == "sigterm":  # a clean stop says goodbye to websockets even under write load
        with pytest.raises(ConnectionClosed):
            while True:
                watcher.recv(timeout=30)
        assert watcher.client.close_reason == 1001

    again = make_server(db_path=db_path)
    again.token = server.token
    figures = check_survivors(again, stream)
    print(f"\n{how}: {figures}")
    assert figures["survivors"] == figures["acknowledged"] >= 150
    assert figures["duplicates"] == 0
