""""Delete means gone": a deleted session's content leaves the messages, the search index and the
update log in the deletion's own transaction, and (on SQLite) its bytes do not stay readable in the file."""
import json
import sqlite3
from pathlib import Path

import pytest

import models
from app import create_app
from conftest import _bearer, connected, database, is_postgres, run_sql, snapshot
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


def _log(db):
    return run_sql(db, 'SELECT seq, session_id, body FROM "update" ORDER BY account_id, seq')


def _file_bytes(path):
    """The database file and its WAL after a checkpoint that empties the WAL (README "Deleting")."""
    models.db.close_all()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
    finally:
        conn.close()
    return b"".join(p.read_bytes() for p in Path(path).parent.glob(Path(path).name + "*"))


def _assert_gone(db, *texts, kept):
    """No row holds `texts` or a word of them in the update log; on SQLite neither do the file's bytes
    nor the search index. `kept` is text still stored: the control that the checks would see it."""
    rows = repr(snapshot(db))
    assert kept in rows
    for text in texts:
        assert text not in rows, text
    # Only words of letters: a number such as 8812 can turn up inside a timestamp (CI saw 1796206881223).
    words = [w for t in texts for w in t.split() if len(w) > 3 and w.isalpha()]
    assert not [b for (b,) in run_sql(db, 'SELECT body FROM "update"') if any(w in b for w in words)]
    if is_postgres(db):
        return
    stored = _file_bytes(db)
    assert kept.encode() in stored
    with connected(db) as run:
        for text in texts:
            assert text.encode() not in stored, text
            for word in text.split():
                assert run("SELECT count(*) FROM message_search WHERE message_search MATCH ?", (f'"{word}"',)) == [(0,)]
                assert run("SELECT count(*) FROM session_search WHERE session_search MATCH ?", (f'"{word}"',)) == [(0,)]


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
    _assert_gone(app.config["DB"], SECRET, TITLE, kept="kept words")


def test_delete_all_redacts_every_session_update_before_it(app, client, auth, other_auth):
    for i in range(3):
        _fill(client, auth, f"{TITLE} {i}", f"{SECRET} {i}")
    theirs = _fill(client, other_auth, "their title", "their words")
    assert client.delete("/api/sessions", headers=auth).get_json() == {"deleted": 3}
    mine = run_sql(app.config["DB"], 'SELECT seq, body FROM "update" WHERE account_id = (SELECT account_id FROM session '
                   'WHERE id = ?) ORDER BY seq', (theirs,))
    assert mine and all(REDACTED != body for _, body in mine)  # the other account's log is untouched
    log = [row for row in _log(app.config["DB"]) if row[1] != theirs]
    last = json.loads(log[-1][2])
    assert last == {"t": "delete-all", "deleted": 3}
    assert all(body == REDACTED for _, sid, body in log[:-1] if sid is not None)
    _assert_gone(app.config["DB"], *[f"{SECRET} {i}" for i in range(3)], TITLE, kept="their words")


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


@pytest.mark.sqlite_only  # a SQLite pragma
def test_secure_delete_is_on_for_every_connection(app):
    with models.db.connection_context():
        assert models.db.execute_sql("PRAGMA secure_delete").fetchone() == (1,)


@pytest.mark.sqlite_only  # the SQLite file's bytes
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
