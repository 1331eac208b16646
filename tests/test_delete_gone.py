""""Delete means gone": a deleted session's content leaves the messages, the search index and the
update log in the deletion's own transaction, and its bytes do not stay readable in the file."""
import json
import sqlite3
from pathlib import Path

import pytest

import models
from app import create_app
from conftest import _bearer, database
from events import REDACTED

SECRET = "Quixotic zanzibar payload 8812"
TITLE = "Clandestine heliotrope"


def _fill(client, auth, title=TITLE, text=SECRET):
    sid = client.post("/api/sessions", json={"title": title}, headers=auth).get_json()["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": text}, headers=auth)
    client.post(f"/v3/sessions/{sid}/messages", headers=auth, json={"messages": [
        {"content": [{"type": "text", "text": text}, {"type": "tool_use", "id": "t1", "name": "Bash",
                                                      "input": {"command": text}}]}]})
    client.patch(f"/api/sessions/{sid}", json={"title": title + " renamed"}, headers=auth)
    return sid


def _log(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute('SELECT seq, session_id, body FROM "update" ORDER BY account_id, seq').fetchall()
    finally:
        conn.close()


def _file_bytes(path):
    """The database file and its WAL after a checkpoint that empties the WAL (README "Deleting")."""
    models.db.close_all()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
    finally:
        conn.close()
    return b"".join(p.read_bytes() for p in Path(path).parent.glob(Path(path).name + "*"))


def _assert_gone(path, *texts):
    stored = _file_bytes(path)
    with sqlite3.connect(path) as conn:
        for text in texts:
            assert text.encode() not in stored, text
            for word in text.split():
                assert conn.execute("SELECT count(*) FROM message_search WHERE message_search MATCH ?",
                                    (f'"{word}"',)).fetchone() == (0,)
                assert conn.execute("SELECT count(*) FROM session_search WHERE session_search MATCH ?",
                                    (f'"{word}"',)).fetchone() == (0,)
        words = [w for t in texts for w in t.split() if len(w) > 3]
        assert not [b for (b,) in conn.execute('SELECT body FROM "update"') if any(w in b for w in words)]


def test_deleting_a_session_redacts_its_updates_and_keeps_every_seq(app, client, auth):
    kept = _fill(client, auth, "kept title", "kept words")
    gone = _fill(client, auth)
    before = _log(app.config["DB"])
    assert client.delete(f"/api/sessions/{gone}", headers=auth).status_code == 204
    after = _log(app.config["DB"])
    assert [seq for seq, _, _ in after] == list(range(1, len(before) + 2))  # no gap, one more: the deletion
    for (_seq, sid, body), (_, _, old) in zip(after, before):
        assert body == (REDACTED if sid == gone else old)
    assert after[-1][1] == gone and json.loads(after[-1][2]) == {"t": "delete-session", "sid": gone}
    assert sum(sid == kept for _, sid, _ in after) == 4
    _assert_gone(app.config["DB"], SECRET, TITLE)
    stored = _file_bytes(app.config["DB"])
    assert b"kept words" in stored  # the check above would see text that is there


def test_delete_all_redacts_every_session_update_before_it(app, client, auth, other_auth):
    for i in range(3):
        _fill(client, auth, f"{TITLE} {i}", f"{SECRET} {i}")
    theirs = _fill(client, other_auth, "their title", "their words")
    assert client.delete("/api/sessions", headers=auth).get_json() == {"deleted": 3}
    with sqlite3.connect(app.config["DB"]) as conn:
        mine = conn.execute('SELECT seq, body FROM "update" WHERE account_id = (SELECT account_id FROM session '
                            'WHERE id = ?) ORDER BY seq', (theirs,)).fetchall()
        assert mine and all(REDACTED != body for _, body in mine)  # the other account's log is untouched
    log = [row for row in _log(app.config["DB"]) if row[1] != theirs]
    last = json.loads(log[-1][2])
    assert last == {"t": "delete-all", "deleted": 3}
    assert all(body == REDACTED for _, sid, body in log[:-1] if sid is not None)
    _assert_gone(app.config["DB"], *[f"{SECRET} {i}" for i in range(3)], TITLE)


def test_a_replaying_websocket_gets_redacted_updates_in_place(make_server, ws_connect):
    import requests
    server = make_server()
    sid = requests.post(server.url + "/api/sessions", json={"title": TITLE}, headers=server.headers).json()["id"]
    requests.post(f"{server.url}/api/sessions/{sid}/messages", json={"role": "user", "content": SECRET},
                  headers=server.headers)
    assert requests.delete(f"{server.url}/api/sessions/{sid}", headers=server.headers).status_code == 204
    ws = ws_connect(server, since=0, ready=False)
    frames = [ws.expect("update")["data"] for _ in range(3)]
    assert [f["seq"] for f in frames] == [1, 2, 3]
    assert [f["body"] for f in frames] == [{"t": "redacted"}, {"t": "redacted"}, {"t": "delete-session", "sid": sid}]
    assert ws.expect("ready")["data"]["seq"] == 3


def test_secure_delete_is_on_for_every_connection(app):
    with models.db.connection_context():
        assert models.db.execute_sql("PRAGMA secure_delete").fetchone() == (1,)


@pytest.mark.parametrize("how", ["agent", "management"])
def test_without_secure_delete_the_text_would_stay_in_the_file(tmp_path, monkeypatch, how):
    """The control for the byte checks above: with the pragma off, deleted text is still in the file."""
    monkeypatch.setitem(models.PRAGMAS, "secure_delete", 0)
    app = create_app({"DB": database(tmp_path / "off.db"), "TESTING": True})
    try:
        client, auth = app.test_client(), _bearer("alice")
        sid = _fill(client, auth)
        route = f"/v1/sessions/{sid}" if how == "agent" else f"/api/sessions/{sid}"
        assert client.delete(route, headers=auth).status_code in (200, 204)
        assert SECRET.encode() in _file_bytes(app.config["DB"])
    finally:
        models.db.close_all()
