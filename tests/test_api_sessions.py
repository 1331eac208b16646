"""The management contract (README, "Management API") route by route: exact shapes, the updates every write emits
(caught by an in-process hub subscriber and read back from the update log), streamed reads, and
export → import → export. Real SQLite files; the last tests run the real server."""
import json
import threading

import pytest
import requests

import models
from conftest import run_sql
from events import hub
from schemas import iso

SESSION_KEYS = ["id", "title", "system_prompt", "tag", "active", "created_at", "updated_at", "last_active_at",
                "agent", "hold", "awaiting_message", "usage"]
MESSAGE_KEYS = ["id", "seq", "role", "content", "metadata", "created_at", "delivered_at"]
EXPORT_SESSION_KEYS = {"id", "title", "system_prompt", "tag", "metadata", "agent_state", "created_at", "updated_at"}
EXPORT_MESSAGE_KEYS = {"seq", "role", "content", "metadata", "local_id", "created_at"}
# created_at values the float-based ISO parser turned into the millisecond before
AWKWARD_MS = [2183226373411, 2165497250430, 1079337347472, 541169507341]


def query(app, sql, *params):
    return run_sql(app.config["DB"], sql, params)


def account_id(app, name):
    return query(app, "SELECT id FROM account WHERE name = ?", name)[0][0]


def logged_bodies(app, since=0):
    """Bodies of the update log after `since`, in seq order."""
    return [json.loads(body) for (body,) in query(app, 'SELECT body FROM "update" WHERE seq > ? ORDER BY seq', since)]


def last_seq(app):
    return query(app, 'SELECT COALESCE(MAX(seq), 0) FROM "update"')[0][0]


def published(sub):
    """The update bodies queued for a hub subscriber, in order."""
    bodies = []
    while not sub.queue.empty():
        seq, text = sub.take()
        frame = json.loads(text)
        assert frame["event"] == "update" and frame["data"]["seq"] == seq
        bodies.append(frame["data"]["body"])
    return bodies


def new_session(client, auth, **body):
    r = client.post("/api/sessions", json=body, headers=auth)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def post_message(client, auth, sid, role="user", content="hello", **extra):
    r = client.post(f"/api/sessions/{sid}/messages", json={"role": role, "content": content, **extra}, headers=auth)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def agent_messages(client, auth, sid, contents):
    for start in range(0, len(contents), 100):
        items = [c if isinstance(c, dict) and "content" in c else {"content": c} for c in contents[start:start + 100]]
        r = client.post(f"/v3/sessions/{sid}/messages", json={"messages": items}, headers=auth)
        assert r.status_code == 200, r.get_json()


def export(client, auth, sid):
    r = client.get(f"/api/sessions/{sid}/export", headers=auth)
    assert r.status_code == 200, r.get_json()
    return json.loads(r.get_data())


def import_document(client, auth, document):
    r = client.post("/api/sessions/import", json=document, headers=auth)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# --- GET /api/sessions, POST /api/sessions -------------------------------------------------------

def test_list_is_every_own_session_most_recently_updated_first(app, client, auth, other_auth):
    ids = [new_session(client, auth, title=f"s{i}")["id"] for i in range(3)]
    new_session(client, other_auth, title="bob's")
    for sid, updated_at in zip(ids, [1000, 3000, 2000]):
        query(app, "UPDATE session SET updated_at = ? WHERE id = ?", updated_at, sid)
    r = client.get("/api/sessions", headers=auth)
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert [s["id"] for s in items] == [ids[1], ids[2], ids[0]]
    assert all(list(s) == SESSION_KEYS for s in items)
    assert client.get("/api/sessions", headers=other_auth).get_json()["items"][0]["title"] == "bob's"


def test_create_trims_the_title_and_answers_201_with_the_session(app, client, auth):
    with hub.subscribe(account_id(app, "alice")) as sub:
        session = new_session(client, auth, title="  Incident 42 \n")
    assert list(session) == SESSION_KEYS
    assert session["title"] == "Incident 42" and session["system_prompt"] is None and session["tag"] is None
    assert session["active"] is False  # no agent behind it yet
    assert session["created_at"].endswith("Z") and len(session["created_at"]) == 24
    assert query(app, "SELECT title FROM session WHERE id = ?", session["id"]) == [("Incident 42",)]
    [body] = published(sub)
    assert body["t"] == "new-session" and body["id"] == session["id"] and body["title"] == "Incident 42"
    assert logged_bodies(app) == [body]


@pytest.mark.parametrize("request_body", [None, {}, {"title": None}])
def test_create_without_a_title_makes_an_untitled_session(client, auth, request_body):
    r = client.post("/api/sessions", json=request_body, headers=auth) if request_body is not None \
        else client.post("/api/sessions", headers=auth)
    assert r.status_code == 201 and r.get_json()["title"] is None


def test_a_title_of_120_characters_after_trimming_is_accepted(client, auth):
    assert new_session(client, auth, title="  " + "é" * 120 + "  ")["title"] == "é" * 120


def test_agent_and_management_sessions_are_one_kind_of_row(client, auth):
    r = client.post("/v1/sessions", json={"tag": "cli-1", "metadata": "m"}, headers=auth)
    agent = r.get_json()["session"]
    titled = new_session(client, auth, title="from the browser")
    items = {s["id"]: s for s in client.get("/api/sessions", headers=auth).get_json()["items"]}
    assert items[agent["id"]]["tag"] == "cli-1" and items[agent["id"]]["title"] is None
    assert titled["id"] in {s["id"] for s in client.get("/v1/sessions", headers=auth).get_json()["sessions"]}


# --- GET /api/sessions/:id -----------------------------------------------------------------------

def test_show_streams_the_session_with_every_message_in_seq_order(app, client, auth):
    session = new_session(client, auth, title="long")
    agent_messages(client, auth, session["id"], [{"i": i} for i in range(2 * models.PAGE_ROWS + 500)])
    mine = post_message(client, auth, session["id"], role="assistant", content="ünïcødé ✓", metadata={"k": [1]})
    r = client.get(f"/api/sessions/{session['id']}", headers=auth)
    assert r.status_code == 200 and r.is_streamed and r.mimetype == "application/json"
    shown = json.loads(r.get_data())
    assert list(shown) == SESSION_KEYS + ["messages"]
    assert {k: shown[k] for k in SESSION_KEYS if k != "updated_at"} == \
        {k: session[k] for k in SESSION_KEYS if k != "updated_at"}
    messages = shown["messages"]
    assert [m["seq"] for m in messages] == list(range(1, 2 * models.PAGE_ROWS + 502))
    assert all(list(m) == MESSAGE_KEYS for m in messages)
    assert messages[7]["content"] == {"i": 7} and messages[7]["role"] is None and messages[7]["metadata"] is None
    assert messages[-1] == mine


def test_a_page_also_ends_at_the_byte_cap(client, auth, monkeypatch):
    session = new_session(client, auth)
    for i in range(5):
        post_message(client, auth, session["id"], content=f"message {i} " + "x" * 100)
    monkeypatch.setattr(models, "PAGE_BYTES", 250)  # two messages a page
    r = client.get(f"/api/sessions/{session['id']}", headers=auth)
    assert [m["seq"] for m in json.loads(r.get_data())["messages"]] == [1, 2, 3, 4, 5]


def test_a_streamed_read_holds_no_connection_between_pages_and_ends_at_the_seq_it_saw(app, client, auth,
                                                                                       monkeypatch):
    session = new_session(client, auth)
    for i in range(4):
        post_message(client, auth, session["id"], content=f"m{i}")
    monkeypatch.setattr(models, "PAGE_ROWS", 2)
    r = client.get(f"/api/sessions/{session['id']}/export", headers=auth)
    chunks = iter(r.response)
    head, first_page = next(chunks), next(chunks)
    assert models.db.is_closed()  # the generator runs in this thread: its connection went back to the pool
    post_message(client, auth, session["id"], content="after the request")
    document = json.loads(head + first_page + b"".join(chunks))
    assert [m["content"] for m in document["messages"]] == ["m0", "m1", "m2", "m3"]


def test_show_of_an_empty_session_has_no_messages(client, auth):
    session = new_session(client, auth)
    assert json.loads(client.get(f"/api/sessions/{session['id']}", headers=auth).get_data())["messages"] == []


# --- PATCH /api/sessions/:id and /system-prompt --------------------------------------------------

def test_rename_trims_answers_the_session_and_emits_update_session(app, client, auth):
    session = new_session(client, auth, title="old")
    with hub.subscribe(account_id(app, "alice")) as sub:
        r = client.patch(f"/api/sessions/{session['id']}", json={"title": "  new name  "}, headers=auth)
    assert r.status_code == 200
    renamed = r.get_json()
    assert list(renamed) == SESSION_KEYS and renamed["title"] == "new name"
    assert renamed["updated_at"] >= session["updated_at"]
    assert published(sub) == [{"t": "update-session", "id": session["id"], "title": "new name"}]
    assert logged_bodies(app)[-1] == {"t": "update-session", "id": session["id"], "title": "new name"}
    assert query(app, "SELECT title FROM session WHERE id = ?", session["id"]) == [("new name",)]


def test_system_prompt_set_keep_and_clear(app, client, auth):
    sid = new_session(client, auth)["id"]
    path = f"/api/sessions/{sid}/system-prompt"
    with hub.subscribe(account_id(app, "alice")) as sub:
        r = client.patch(path, json={"system_prompt": "  Runbook: https://x/rb \n"}, headers=auth)
        assert r.status_code == 200 and r.get_json()["system_prompt"] == "  Runbook: https://x/rb \n"
        assert published(sub) == [{"t": "update-session", "id": sid, "systemPrompt": "  Runbook: https://x/rb \n"}]
        before = last_seq(app)
        for no_change in ({"system_prompt": None}, {}):
            r = client.patch(path, json=no_change, headers=auth)
            assert r.status_code == 200 and r.get_json()["system_prompt"] == "  Runbook: https://x/rb \n"
        assert published(sub) == [] and last_seq(app) == before
        r = client.patch(path, json={"system_prompt": " \t\n"}, headers=auth)
        assert r.status_code == 200 and r.get_json()["system_prompt"] is None
        assert published(sub) == [{"t": "update-session", "id": sid, "systemPrompt": None}]
    assert query(app, "SELECT system_prompt FROM session WHERE id = ?", sid) == [(None,)]


def test_a_system_prompt_of_8000_characters_is_accepted(client, auth):
    sid = new_session(client, auth)["id"]
    r = client.patch(f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "p" * 8000}, headers=auth)
    assert r.status_code == 200 and len(r.get_json()["system_prompt"]) == 8000


# --- POST /api/sessions/:id/messages -------------------------------------------------------------

@pytest.mark.parametrize("role, content, metadata", [
    ("user", "restart the worker, please", None),
    ("assistant", "日本語 🚀 " + "x" * (50_000 - 10), {"model": "m-1", "tokens": 12}),
    ("system", "x", {}),
    ("tool", {"exit": 0, "stdout": ["ok"]}, None),
    ("user", 42, None),
])
def test_post_message_appends_answers_201_and_emits_new_message(app, client, auth, role, content, metadata):
    sid = new_session(client, auth)["id"]
    body = {"role": role, "content": content} if metadata is None else \
        {"role": role, "content": content, "metadata": metadata}
    with hub.subscribe(account_id(app, "alice")) as sub:
        r = client.post(f"/api/sessions/{sid}/messages", json=body, headers=auth)
    assert r.status_code == 201
    message = r.get_json()
    assert list(message) == MESSAGE_KEYS
    assert (message["seq"], message["role"], message["content"], message["metadata"]) == (1, role, content, metadata)
    [event] = published(sub)
    assert event["t"] == "new-message" and event["sid"] == sid
    assert {k: event["message"][k] for k in ("id", "seq", "role", "content", "metadata")} == \
        {k: message[k] for k in ("id", "seq", "role", "content", "metadata")}
    assert logged_bodies(app)[-1] == event
    assert query(app, "SELECT seq, role, content FROM message WHERE session_id = ?", sid) == \
        [(1, role, json.dumps(content, ensure_ascii=False, separators=(",", ":")))]
    assert query(app, "SELECT seq FROM session WHERE id = ?", sid) == [(1,)]


def test_messages_from_the_browser_and_the_agent_share_one_seq(client, auth):
    sid = new_session(client, auth)["id"]
    agent_messages(client, auth, sid, ["a", "b"])
    assert post_message(client, auth, sid)["seq"] == 3


# --- DELETE ----------------------------------------------------------------------------------------

def test_delete_answers_204_cascades_and_emits_delete_session(app, client, auth):
    sid = new_session(client, auth)["id"]
    post_message(client, auth, sid)
    with hub.subscribe(account_id(app, "alice")) as sub:
        r = client.delete(f"/api/sessions/{sid}", headers=auth)
    assert r.status_code == 204 and r.get_data() == b""
    assert published(sub) == [{"t": "delete-session", "sid": sid}]
    assert query(app, "SELECT COUNT(*) FROM message") == [(0,)]
    assert query(app, "SELECT COUNT(*) FROM session") == [(0,)]
    assert client.delete(f"/api/sessions/{sid}", headers=auth).status_code == 404


def test_delete_all_deletes_every_own_session_in_one_transaction_and_no_one_elses(app, client, auth, other_auth):
    mine = [new_session(client, auth, title=f"s{i}")["id"] for i in range(3)]
    for sid in mine:
        post_message(client, auth, sid)
    bobs = new_session(client, other_auth, title="bob's")["id"]
    post_message(client, other_auth, bobs)
    bob_rows = query(app, "SELECT * FROM message WHERE session_id = ?", bobs)
    bob_log = query(app, 'SELECT seq, body FROM "update" WHERE account_id = ?', account_id(app, "bob"))
    before = query(app, 'SELECT COALESCE(MAX(seq), 0) FROM "update" WHERE account_id = ?', account_id(app, "alice"))
    with hub.subscribe(account_id(app, "alice")) as sub, hub.subscribe(account_id(app, "bob")) as bob_sub:
        r = client.delete("/api/sessions", headers=auth)
    assert r.status_code == 200 and r.get_json() == {"deleted": 3}
    # one update for the lot, not one per session
    assert published(sub) == [{"t": "delete-all", "deleted": 3}]
    assert bob_sub.queue.empty()
    seqs = query(app, 'SELECT seq, session_id, body FROM "update" WHERE account_id = ? AND seq > ?',
                 account_id(app, "alice"), before[0][0])
    assert seqs == [(before[0][0] + 1, None, '{"t":"delete-all","deleted":3}')]
    assert query(app, "SELECT id FROM session") == [(bobs,)]
    assert query(app, "SELECT * FROM message WHERE session_id = ?", bobs) == bob_rows
    assert query(app, 'SELECT seq, body FROM "update" WHERE account_id = ?', account_id(app, "bob")) == bob_log
    assert client.delete("/api/sessions", headers=auth).get_json() == {"deleted": 0}


# --- export and import ---------------------------------------------------------------------------

def test_export_is_a_streamed_version_1_download(client, auth):
    session = new_session(client, auth, title="export me")
    client.patch(f"/api/sessions/{session['id']}/system-prompt", json={"system_prompt": "be brief"}, headers=auth)
    post_message(client, auth, session["id"], content="hi", metadata={"a": 1})
    r = client.get(f"/api/sessions/{session['id']}/export", headers=auth)
    assert r.status_code == 200 and r.is_streamed and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"] == f'attachment; filename="session-{session["id"]}.json"'
    document = json.loads(r.get_data())
    assert list(document) == ["version", "exported_at", "session", "messages"]
    assert document["version"] == 1 and document["exported_at"].endswith("Z")
    assert set(document["session"]) == EXPORT_SESSION_KEYS
    assert document["session"]["system_prompt"] == "be brief" and document["session"]["metadata"] == ""
    [message] = document["messages"]
    assert set(message) == EXPORT_MESSAGE_KEYS
    assert (message["seq"], message["role"], message["content"], message["metadata"], message["local_id"]) == \
        (1, "user", "hi", {"a": 1}, None)


def test_export_import_export_reproduces_every_message(app, client, auth):
    r = client.post("/v1/sessions", json={"tag": "agent-7", "metadata": "enc:abc", "agentState": "{\"s\":1}"},
                    headers=auth)
    sid = r.get_json()["session"]["id"]
    client.patch(f"/api/sessions/{sid}", json={"title": "Ops 🚨"}, headers=auth)
    client.patch(f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "Severity matrix: …"}, headers=auth)
    agent_messages(client, auth, sid, [
        {"content": {"t": "encrypted", "c": "AAEC"}, "localId": "l-1"},
        {"content": ["tool", {"argv": ["ls", "-la"]}], "localId": "l-2"},
        {"content": ""},  # agents may store what a chat message may not: it must still come back
        {"content": "y" * 60_000},
        {"content": 0},
    ])
    post_message(client, auth, sid, role="user", content="naïve café — 日本語 — 🚀🚀", metadata={"lang": "mixed"})
    post_message(client, auth, sid, role="assistant", content="z" * 50_000, metadata={"nested": {"a": [1, None]}})
    post_message(client, auth, sid, role="system", content={"json": True})
    post_message(client, auth, sid, role="tool", content="ok")
    # created_at values an import must keep to the millisecond
    for seq, ms in enumerate(AWKWARD_MS, start=1):
        query(app, "UPDATE message SET created_at = ? WHERE session_id = ? AND seq = ?", ms, sid, seq)
    first = export(client, auth, sid)
    with hub.subscribe(account_id(app, "alice")) as sub:
        imported = import_document(client, auth, first)
    assert imported["imported_messages"] == 9
    [event] = published(sub)  # one new-session, no new-message per message
    assert event["t"] == "new-session" and event["id"] == imported["session"]["id"] and event["seq"] == 9
    second = export(client, auth, imported["session"]["id"])

    assert second["session"].pop("id") != first["session"].pop("id")
    assert first["session"].pop("tag") == "agent-7" and second["session"].pop("tag") is None
    assert second["session"].pop("updated_at") >= first["session"].pop("updated_at")
    assert second["session"] == first["session"]
    assert second["messages"] == first["messages"]
    assert [m["created_at"] for m in second["messages"][:4]] == [iso(ms) for ms in AWKWARD_MS]
    assert [m["role"] for m in second["messages"]] == [None] * 5 + ["user", "assistant", "system", "tool"]
    # fresh ids, seqs 1..N, and the copy is a session of its own
    new_ids = {row[0] for row in query(app, "SELECT id FROM message WHERE session_id = ?", imported["session"]["id"])}
    old_ids = {row[0] for row in query(app, "SELECT id FROM message WHERE session_id = ?", sid)}
    assert len(new_ids) == 9 and not new_ids & old_ids


def test_import_answers_the_new_session_and_writes_seqs_1_to_n_in_document_order(app, client, auth):
    document = {"version": 1, "session": {"title": "  restored  ", "system_prompt": "   "}, "messages": [
        {"seq": 30, "role": "user", "content": "first", "created_at": "2020-01-01T00:00:00.5+02:00"},
        {"seq": 10, "role": None, "content": {"second": 2}, "metadata": None},
        {"role": "assistant", "content": "third", "metadata": {"m": 1}, "local_id": "x"},
    ]}
    result = import_document(client, auth, document)
    assert list(result) == ["session", "imported_messages"] and result["imported_messages"] == 3
    session = result["session"]
    assert list(session) == SESSION_KEYS
    assert (session["title"], session["system_prompt"], session["tag"], session["active"]) == \
        ("restored", None, None, False)
    rows = query(app, "SELECT seq, role, content, metadata, local_id, created_at FROM message WHERE session_id = ? "
                      "ORDER BY seq", session["id"])
    assert [r[:5] for r in rows] == [(1, "user", '"first"', None, None), (2, None, '{"second":2}', None, None),
                                     (3, "assistant", '"third"', '{"m":1}', "x")]
    assert rows[0][5] == 1577829600500  # 2019-12-31T22:00:00.500Z
    assert rows[1][5] >= models.now_ms() - 60_000  # no created_at: the import's time
    assert query(app, "SELECT seq, metadata, agent_state FROM session WHERE id = ?", session["id"]) == [(3, "", None)]


def test_an_empty_session_round_trips(client, auth):
    sid = new_session(client, auth, title="empty")["id"]
    result = import_document(client, auth, export(client, auth, sid))
    assert result["imported_messages"] == 0 and result["session"]["title"] == "empty"


# --- the real server -----------------------------------------------------------------------------

def big_document(count):
    return {"version": 1, "session": {"title": "big"}, "messages": [
        {"role": ("user", "assistant", None)[i % 3], "content": f"message {i} ✓" if i % 3 < 2 else {"i": i},
         "metadata": {"i": i}, "created_at": iso(1_600_000_000_000 + i)} for i in range(count)]}


def test_import_and_streamed_export_over_the_real_server(live_server):
    document = big_document(3000)
    r = requests.post(live_server.url + "/api/sessions/import", json=document, headers=live_server.headers)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["id"]
    r = requests.get(f"{live_server.url}/api/sessions/{sid}/export", headers=live_server.headers, stream=True)
    assert r.status_code == 200 and r.headers.get("Transfer-Encoding") == "chunked"
    exported = json.loads(b"".join(r.iter_content(1 << 16)))
    assert [{k: m[k] for k in ("role", "content", "metadata", "created_at")} for m in exported["messages"]] == \
        document["messages"]
    assert [m["seq"] for m in exported["messages"]] == list(range(1, 3001))


def test_a_concurrent_reader_never_sees_part_of_an_import(live_server):
    """The session row and its messages commit together: whenever the session is listed, all of its
    messages are there."""
    count = 20_000
    document = big_document(count)
    seen, stop = [], threading.Event()

    def watch():
        http = requests.Session()
        while not stop.is_set():
            for item in http.get(live_server.url + "/api/sessions", headers=live_server.headers).json()["items"]:
                shown = http.get(f"{live_server.url}/api/sessions/{item['id']}", headers=live_server.headers).json()
                seen.append(len(shown["messages"]))
                stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = requests.post(live_server.url + "/api/sessions/import", json=document, headers=live_server.headers)
    stop.wait(30)
    stop.set()
    watcher.join(30)
    assert r.status_code == 201
    assert seen == [count]


def test_management_writes_reach_a_websocket_watcher(live_server, ws_connect):
    base, headers = live_server.url + "/api/sessions", live_server.headers
    ws = ws_connect(live_server)
    sid = requests.post(base, json={"title": "watched"}, headers=headers).json()["id"]
    requests.patch(f"{base}/{sid}", json={"title": "renamed"}, headers=headers)
    requests.patch(f"{base}/{sid}/system-prompt", json={"system_prompt": "p"}, headers=headers)
    requests.post(f"{base}/{sid}/messages", json={"role": "user", "content": "hi"}, headers=headers)
    copy = requests.post(f"{base}/import", json=big_document(3), headers=headers).json()["session"]["id"]
    requests.delete(f"{base}/{sid}", headers=headers)
    requests.delete(base, headers=headers)
    bodies = [ws.expect("update")["data"]["body"] for _ in range(7)]
    assert [b["t"] for b in bodies] == ["new-session", "update-session", "update-session", "new-message",
                                        "new-session", "delete-session", "delete-all"]
    assert bodies[1]["title"] == "renamed" and bodies[2]["systemPrompt"] == "p"
    assert bodies[3]["message"]["content"] == "hi" and bodies[3]["message"]["role"] == "user"
    assert bodies[4]["id"] == copy and bodies[5]["sid"] == sid and bodies[6]["deleted"] == 1
    ws.silent()


def test_a_session_made_in_the_browser_waits_for_an_agent(client, auth):
    created = client.post("/api/sessions", json={"title": "plan"}, headers=auth).json
    assert created["active"] is False
    assert client.get("/v2/sessions/active", headers=auth).json["sessions"] == []
    agent = client.post("/v1/sessions", json={"tag": "a", "metadata": "m"}, headers=auth).json["session"]
    assert agent["active"] is True
