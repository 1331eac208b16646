"""Search (GET /api/search): what is indexed, the query language, paging, isolation, and the index
staying equal to the message table through deletes, imports and a crash."""
import json
import random
import sqlite3
import string
import threading
import time
from contextlib import closing

import pytest
import requests

import domain
import models
from conftest import assert_refused, file_at_version, is_postgres, run_sql, step_adding
from tests.test_crash import kill_hard


def _session(client, auth, title=None):
    r = client.post("/api/sessions", json={"title": title} if title else {}, headers=auth)
    assert r.status_code == 201
    return r.get_json()["id"]


def _append(client, auth, sid, *contents):
    r = client.post(f"/v3/sessions/{sid}/messages",
                    json={"messages": [{"content": c} for c in contents]}, headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    return [m["id"] for m in r.get_json()["messages"]]


def _search(client, auth, q, **params):
    r = client.get("/api/search", query_string={"q": q, **params}, headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def _ids(answer):
    return [hit["message_id"] for hit in answer["items"]]


def _text(hit):
    return "".join(s["text"] for s in hit["snippet"])


def _index_matches_messages(path):
    """The message index holds terms of exactly the messages with indexable text, and FTS5's own check
    (every message's terms, read through search_text(), are in the index, and nothing else) passes.
    (On PostgreSQL the index is a column of the message row, generated with it: it cannot differ.)"""
    if is_postgres(path):
        return True
    with sqlite3.connect(path) as conn:
        models.register_functions(conn)
        conn.execute("INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)")
        conn.execute("INSERT INTO session_search (session_search, rank) VALUES ('integrity-check', 1)")
        # The index's own rows (its table would read the messages): the documents its terms are in.
        conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, message_search, instance)")
        indexed = {r for (r,) in conn.execute("SELECT DISTINCT doc FROM temp.terms")}
        messages = {r for (r,) in conn.execute(
            "SELECT rowid FROM message WHERE search_text(content) != ''")}
    return indexed == messages


CLAUDE_BLOCKS = [
    {"type": "text", "text": "I will list the quokka files"},
    {"type": "thinking", "thinking": "pondering marmots", "signature": "c2lnbmF0dXJlc2VjcmV0"},
    {"type": "tool_use", "id": "toolu_01abc", "name": "Bash", "input": {"command": "ls narwhal/"}},
    {"type": "tool_result", "tool_use_id": "toolu_01abc", "content": [{"type": "text", "text": "axolotl.txt"}]},
]


@pytest.mark.parametrize("content,word", [
    ("plain words about a wombat", "wombat"),
    ({"role": "user", "content": {"type": "text", "text": "happy-style capybara"}}, "capybara"),
    ({"type": "output", "stream": "stdout", "text": "build finished: pangolin"}, "pangolin"),
    (CLAUDE_BLOCKS, "quokka"),
    (CLAUDE_BLOCKS, "marmots"),
    (CLAUDE_BLOCKS, "narwhal"),
    (CLAUDE_BLOCKS, "axolotl"),
])
def test_text_inside_json_content_is_found(client, auth, content, word):
    sid = _session(client, auth)
    [mid] = _append(client, auth, sid, content)
    answer = _search(client, auth, word)
    assert _ids(answer) == [mid]
    [hit] = answer["items"]
    assert hit["session_id"] == sid and hit["seq"] == 1 and hit["role"] is None
    assert {"text": word, "match": True} in hit["snippet"]


@pytest.mark.parametrize("word", ["text", "tool_use", "toolu_01abc", "stdout", "signature", "c2lnbmF0dXJlc2VjcmV0",
                                  "user", "ZW5jcnlwdGVk"])
def test_keys_identifiers_and_encrypted_content_are_not_indexed(client, auth, word):
    sid = _session(client, auth)
    _append(client, auth, sid, CLAUDE_BLOCKS, {"type": "output", "stream": "stdout", "text": "x"},
            {"role": "user", "content": {"type": "text", "text": "y"}}, {"t": "encrypted", "c": "ZW5jcnlwdGVk"})
    assert _search(client, auth, f'"{word}"')["items"] == []


def test_phrase_prefix_unicode_and_snippet_segments(client, auth):
    sid = _session(client, auth)
    phrase, apart, prefix, accents = _append(
        client, auth, sid, "the quick brown fox jumps", "brown dogs are quick", "zebras and zebu",
        "Ünïcödé café in 東京 today")
    assert _ids(_search(client, auth, '"quick brown"')) == [phrase]
    assert set(_ids(_search(client, auth, "quick brown"))) == {phrase, apart}
    for q in ("z*", "ze*", "zeb*", "zebr*", "zebu*"):  # prefixes with an index of their own (2, 3) and without
        assert _ids(_search(client, auth, q)) == [prefix], q
    assert _ids(_search(client, auth, "cafe")) == [accents]  # accents folded
    assert _ids(_search(client, auth, "CAFÉ")) == [accents]
    assert _ids(_search(client, auth, "東京")) == [accents]
    assert {"text": "Ünïcödé", "match": True} in _search(client, auth, "unicode")["items"][0]["snippet"]
    [hit] = _search(client, auth, '"quick brown"')["items"]
    assert hit["snippet"] == [{"text": "the ", "match": False}, {"text": "quick brown", "match": True},
                              {"text": " fox jumps", "match": False}]


# Text as FTS5's unicode61 tokenizer splits and folds it, and queries as FTS5 reads them: each query with
# the messages (places in PARITY_TEXTS) FTS5 finds. The test runs on each engine in turn, so PostgreSQL
# (its search columns and models._QueryParser) must find the same.
PARITY_TEXTS = [
    "a well-known fix", "mail bob.smith@example.com today", "see https://docs.example.org/guide?page=2#top",
    "don't panic, it’s fine", "utf8 on x86_64, version v1.2.3", "東京タワーに行った and 大阪 城",
    "Crème Brûlée for ΣΟΦΙΑ in İSTANBUL", "cafe\u0301 and Straße", "🤖bot and x² plus ½cup",
    "The <zebra> crossing in /usr/lib/axolotl.txt", "snake_case_name", "alpha beta", "alpha", "gamma delta",
    "1e5x and 2e3", "lead " + "y" * 2100 + " tail",
]
PARITY_QUERIES = {
    # hyphens, e-mail addresses, URLs, apostrophes (ASCII and U+2019), digits inside words
    "well": {0}, "known": {0}, '"well known"': {0}, "wellknown": set(), "bob": {1}, "smith": {1},
    '"example com"': {1}, "https": {2}, "docs": {2}, "guide": {2}, "page": {2}, "top": {2}, "don": {3}, "t": {3},
    "dont": set(), "s": {3}, "utf8": {4}, "utf": set(), "x86": {4}, "64": {4}, "v1": {4}, "3": {4},
    # CJK runs are one word up to a space or punctuation
    "東京タワーに行った": {5}, "東京": set(), "大阪": {5}, "城": {5},
    # case and accents folded beyond ASCII (a combining accent too), but no ß to ss
    "creme": {6}, "BRULEE": {6}, "crème": {6}, "σοφια": {6}, "istanbul": {6}, "cafe": {7}, "café": {7},
    "straße": {7}, "strasse": set(),
    # characters FTS5 keeps in a word that PostgreSQL's parser would split off (its locale's classes)
    "🤖bot": {8}, "bot": set(), "x²": {8}, "x": set(), "½cup": {8}, "cup": set(),
    # tags, paths, file names, underscores
    "zebra": {9}, "usr": {9}, "axolotl": {9}, "txt": {9}, "snake": {10}, "case": {10}, '"snake case name"': {10},
    "snake_case": {10},
    # the grammar: NOT binds tighter than AND, AND than OR, words side by side tighter than all
    "alpha NOT beta gamma": {11, 12}, "alpha OR beta gamma": {11, 12}, "alpha AND beta OR delta": {11, 13},
    "alpha AND (beta OR delta)": {11}, "gamma NOT (delta OR alpha)": set(), "ALPHA NOT BETA": {12}, "(alpha)": {11, 12},
    # a phrase of no words: left out beside others, nothing with AND
    "—": set(), "alpha —": {11, 12}, "alpha AND —": set(), "— OR gamma": {13}, "alpha NOT —": {11, 12},
    # phrases: quoted, joined with +, a bareword of several words, prefixes, NEAR
    "alpha + beta": {11}, "alpha_beta": {11}, 'alpha"beta"': {11}, '"alpha beta"*': {11}, "alp*": {11, 12},
    "AlPhA": {11, 12}, "NEAR(alpha beta)": {11}, "NEAR(alpha beta, 3)": {11}, "NEAR": set(),
    # what PostgreSQL's parser would read otherwise: a number then a word; a word too long for it to keep
    "1e5x": {14}, "1e5": set(), "2e3": {14}, "lead": {15}, '"lead tail"': set(),
}


def test_the_same_words_find_the_same_messages_on_both_engines(client, auth):
    sid = _session(client, auth)
    ids = _append(client, auth, sid, *PARITY_TEXTS)
    found = {q: {ids.index(mid) for mid in _ids(_search(client, auth, q, limit=100))} for q in PARITY_QUERIES}
    assert {q: hits for q, hits in found.items() if hits != PARITY_QUERIES[q]} == {}


def test_snippets_mark_the_original_text(client, auth):
    """The words matched by their folded form are marked as written; a long text is cut around the match
    as FTS5 cuts it; a title is marked whole."""
    sid = _session(client, auth, "Crème <brûlée> notes.txt")
    long = " ".join(f"word{i}" for i in range(20)) + ". Then the Café opened, " + " ".join(f"more{i}" for i in range(20))
    _append(client, auth, sid, long)
    title, message = _search(client, auth, "cafe OR brulee")["items"]
    assert title["snippet"] == [{"text": "Crème <", "match": False}, {"text": "brûlée", "match": True},
                                {"text": "> notes.txt", "match": False}]
    assert message["snippet"] == [{"text": "…Then the ", "match": False}, {"text": "Café", "match": True},
                                  {"text": " opened, more0 more1 more2 more3 more4 more5 more6 more7 more8 more9 more10 more11…",
                                   "match": False}]


def test_snippets_are_cut_as_fts5_cuts_them(tmp_path):
    """models._marked (PostgreSQL's snippets) against FTS5's snippet() and highlight() on varied text."""
    rng = random.Random(3)
    words = ["alpha", "Beta", "gamma", "délta", "eps", "zeta", "eta", "theta"]
    separators = [" ", " ", " ", ", ", ". ", ": ", " - ", "\n", "...", " (", ") "]
    queries = ["alpha", "beta", "delta", "alpha beta", '"alpha beta"', "alpha OR zeta", "gam*", "alpha NOT theta",
               '"eta theta" delta', "e*"]
    with closing(sqlite3.connect(tmp_path / "fts5.db")) as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        for i in range(150):
            text = rng.choice(["", " ", "¿"]) + "".join(rng.choice(words) + rng.choice(separators)
                                                        for _ in range(rng.randrange(1, 45)))
            conn.execute("DELETE FROM t")
            conn.execute("INSERT INTO t (rowid, x) VALUES (1, ?)", (text,))
            for q in queries:
                _, phrases = models._QueryParser(q).parse()
                for function, size in (("snippet(t, 0, char(2), char(3), '…', 16)", 16), ("snippet(t, 0, char(2), char(3), '…', 5)", 5),
                                       ("highlight(t, 0, char(2), char(3))", None)):
                    for (expected,) in conn.execute(f"SELECT {function} FROM t WHERE t MATCH ?", (q,)):
                        assert models._marked(text, phrases, size) == expected, (i, q, size, text)


# Every code point of the planes FTS5's tables reach into (and the last ones) as the middle of "q?q".
_PLANES = [*range(1, 0xD800), *range(0xE000, 0x20000), *range(0xE0000, 0xE0200), *range(0x10FF00, 0x110000)]


def test_words_are_split_and_folded_as_fts5_does(app, tmp_path):
    """unicode61.py against the running SQLite's FTS5, one code point at a time; on PostgreSQL, its search
    vectors against them (every character that folds, separates or is dropped, the neighbours of each
    separating range, and every 17th other)."""
    with closing(sqlite3.connect(tmp_path / "fts5.db")) as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        conn.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", ((c, f"q{chr(c)}q") for c in _PLANES))
        expected = {c: [] for c in _PLANES}
        for c, term in conn.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
            expected[c].append(term)
    assert {c: terms for c, terms in expected.items() if [w for _, _, w in models._words(f"q{chr(c)}q")] != terms} == {}
    if not is_postgres(app.config["DB"]):
        return
    special = {c for c in _PLANES if expected[c] != [f"q{chr(c)}q"]}
    checked = sorted(special | {c + d for c in special for d in (-1, 1)} & set(_PLANES) | set(_PLANES[::17]))
    rows = run_sql(app.config["DB"], "SELECT n, lexeme, positions FROM unnest(?::text[]) WITH ORDINALITY AS d (doc, n), "
                   "unnest(switchboard_search_vector(doc))", ([f"q{chr(c)}q" for c in checked],))
    vectors = {c: [] for c in checked}
    for n, lexeme, positions in rows:
        vectors[checked[n - 1]] += [(position, lexeme) for position in positions]
    assert {c: vector for c, vector in vectors.items() if [w for _, w in sorted(vector)] != expected[c]} == {}


ESC = "\x1b"
# (a string of content, what search reads of it): SGR colours, other CSI sequences, OSC titles and
# hyperlinks (ended by BEL or ESC \\), other escapes (ESC 7, ESC ( B), and ESCs that start nothing whole.
ESCAPED_TEXTS = [
    (f"{ESC}[32mPASSED{ESC}[0m test_a", "PASSED test_a"),
    (f"{ESC}[1;38;5;208mbold{ESC}[22;39m {ESC}[38:2::1:2:3mrgb{ESC}[m", "bold rgb"),
    (f"10%\r{ESC}[2K\r{ESC}[1A{ESC}[?25lbar{ESC}[?25h", "10%\r\rbar"),
    (f"{ESC}]0;title\x07after {ESC}]8;;https://x.invalid{ESC}\\link{ESC}]8;;{ESC}\\", "after link"),
    (f"{ESC}7saved{ESC}8 {ESC}(Bcharset", "saved charset"),
    (f"{ESC}]unended title", "unended title"),
    (f"{ESC}[31", "31"),
    (f"{ESC}\nnext line{ESC}", "\nnext line"),
    ("no escapes at all: [32m stays", "no escapes at all: [32m stays"),
]


def test_terminal_escape_sequences_are_not_words(app, client, auth):
    """A wrapped command's coloured output is found by its words, and its snippet holds no escapes; on
    PostgreSQL the search column's function reads each string exactly as search_text() does."""
    sid = _session(client, auth)
    [mid] = _append(client, auth, sid, {"type": "output", "stream": "stdout",
                                         "text": f"{ESC}[1m{ESC}[32mPASSED{ESC}[0m tests/test_a.py"})
    [hit] = _search(client, auth, "PASSED")["items"]
    assert hit["message_id"] == mid and _text(hit) == "PASSED tests/test_a.py"
    assert _search(client, auth, "32mPASSED")["items"] == []
    for text, expected in ESCAPED_TEXTS:
        assert models.search_text(json.dumps({"text": text, "more": [text]})) == f"{expected} {expected}", text
    if is_postgres(app.config["DB"]):
        contents = [json.dumps({"text": text, "more": [text]}) for text, _ in ESCAPED_TEXTS]
        rows = run_sql(app.config["DB"], "SELECT switchboard_search_text(c) FROM unnest(?::text[]) WITH ORDINALITY AS d (c, n) "
                       "ORDER BY n", (contents,))
        assert [text for (text,) in rows] == [models.search_text(c) for c in contents]
    assert _index_matches_messages(app.config["DB"])


def test_the_states_of_a_line_being_redrawn_are_not_found_its_finished_line_is(app, client, auth):
    """client.py run's progress states (the page hides them once the line goes on) are not hits; the
    line they end in is. Only output marked `"progress": true` is left out, on both engines alike."""
    sid = _session(client, auth)
    state = {"type": "output", "stream": "stderr", "text": "training epoch 3: 40%", "progress": True}
    _, line = _append(client, auth, sid, state, {"type": "output", "stream": "stderr",
                                                  "text": "training epoch 3: 40%\rtraining epoch 3: 100%"})
    assert _ids(_search(client, auth, "epoch")) == [line]
    kept = [{**state, "progress": False}, {**state, "progress": "true"}, {**state, "type": "log"}, {"progress": True,
                                                                                                  "text": "x"}]
    contents = [json.dumps(c) for c in (state, {"type": "output", "progress": True}, *kept)]
    expected = [None, None] + [models.search_text(c) for c in contents[2:]]
    assert [models.search_text(c) for c in contents] == expected and None not in expected[2:]
    if is_postgres(app.config["DB"]):
        rows = run_sql(app.config["DB"], "SELECT switchboard_search_text(c) FROM unnest(?::text[]) WITH ORDINALITY AS d (c, n) "
                       "ORDER BY n", (contents,))
        assert [text for (text,) in rows] == expected
    assert _index_matches_messages(app.config["DB"])


def test_titles_are_found_first_and_follow_renames(client, auth):
    sid = _session(client, auth, "Deploy the gazelle")
    [mid] = _append(client, auth, sid, "gazelle notes")
    answer = _search(client, auth, "gazelle")
    assert [(h["session_id"], h["message_id"], h["seq"]) for h in answer["items"]] == [(sid, None, None), (sid, mid, 1)]
    assert answer["items"][0]["snippet"][-1] == {"text": "gazelle", "match": True}
    assert client.patch(f"/api/sessions/{sid}", json={"title": "Deploy the ibex"}, headers=auth).status_code == 200
    assert _ids(_search(client, auth, "gazelle")) == [mid]
    assert [h["title"] for h in _search(client, auth, "ibex")["items"]] == ["Deploy the ibex"]


def test_pages_walk_every_hit_once_newest_first(client, auth):
    sid = _session(client, auth, "lynx lynx")
    ids = _append(client, auth, sid, *[f"lynx number {i}" for i in range(7)])
    seen, cursor, pages = [], None, 0
    while True:
        answer = _search(client, auth, "lynx", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += _ids(answer)
        pages += 1
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == [None] + ids[::-1] and pages == 3
    assert _ids(_search(client, auth, "lynx", limit=8)) == [None] + ids[::-1]
    assert _search(client, auth, "lynx", limit=8)["next_cursor"] is None


def test_session_filter_and_isolation_between_accounts(client, auth, other_auth):
    mine, also_mine = _session(client, auth), _session(client, auth)
    [a] = _append(client, auth, mine, "shared secret okapi")
    [b] = _append(client, auth, also_mine, "okapi again")
    theirs = _session(client, other_auth)
    [c] = _append(client, other_auth, theirs, "their okapi")
    assert set(_ids(_search(client, auth, "okapi"))) == {a, b}
    assert _ids(_search(client, auth, "okapi", session_id=mine)) == [a]
    assert _ids(_search(client, other_auth, "okapi")) == [c]
    assert _search(client, other_auth, "okapi", session_id=mine)["items"] == []


def test_deleted_sessions_vanish_from_results(app, client, auth):
    kept, gone = _session(client, auth, "tapir kept"), _session(client, auth, "tapir gone")
    _append(client, auth, kept, "tapir one")
    _append(client, auth, gone, "tapir two", "tapir three")
    assert client.delete(f"/api/sessions/{gone}", headers=auth).status_code == 204
    assert {h["session_id"] for h in _search(client, auth, "tapir")["items"]} == {kept}
    assert _index_matches_messages(app.config["DB"])
    assert client.delete("/api/sessions", headers=auth).status_code == 200
    assert _search(client, auth, "tapir")["items"] == []
    assert _index_matches_messages(app.config["DB"])


def test_an_import_is_indexed_in_its_transaction(app, client, auth):
    sid = _session(client, auth, "walrus")
    _append(client, auth, sid, "walrus tusk", CLAUDE_BLOCKS)
    document = client.get(f"/api/sessions/{sid}/export", headers=auth).get_json()
    r = client.post("/api/sessions/import", json=document, headers=auth)
    assert r.status_code == 201
    copy = r.get_json()["session"]["id"]
    assert {h["session_id"] for h in _search(client, auth, "tusk")["items"]} == {sid, copy}
    assert len(_search(client, auth, "quokka", session_id=copy)["items"]) == 1
    assert _index_matches_messages(app.config["DB"])


@pytest.mark.parametrize("q", ['"unterminated', "AND", "(", "a OR", "*", "NEAR(", "nocolumn:word", "^",
                               # a column filter naming either index's column (text, title) fails in the other
                               "text:word", "title:word", "-text:word", "{text}:word",
                               # what the query grammar refuses (models._QueryParser)
                               "axolotl.txt", "well-known", "don't", "a (b OR c)", "(a) b", "a + ^b", "a**",
                               "near(a b)", "NEAR(a b, x)", "NEAR(a b,)", "{}:a",
                               "*reads"])  # FTS5's special queries are not searches
def test_a_query_fts5_cannot_parse_is_a_400(app, client, auth, q):
    _append(client, auth, _session(client, auth), "anything")
    answer = assert_refused(app, client, "GET", "/api/search?" + requests.compat.urlencode({"q": q}), None, auth,
                            400, "invalid_request", "q")
    assert list(answer["errors"]) == ["q"]


@pytest.mark.parametrize("query,field", [
    ("", "q"), ("q=", "q"), ("q=" + "a" * 501, "q"), ("q=a&limit=0", "limit"), ("q=a&limit=101", "limit"),
    ("q=a&limit=x", "limit"), ("q=a&cursor=m.x", "cursor"), ("q=a&cursor=x.1", "cursor"), ("q=a&cursor=", "cursor"),
    ("q=a&unknown=1", "unknown"),
])
def test_bad_search_parameters_are_refused(app, client, auth, query, field):
    assert_refused(app, client, "GET", "/api/search?" + query, None, auth, 400, "invalid_request", field)


def test_search_needs_a_token(client):
    assert client.get("/api/search?q=a").status_code == 401


@pytest.mark.sqlite_only  # SQLite's VACUUM and rowids
def test_the_index_survives_vacuum(app, client, auth):
    """Hits join the index to messages by rowid: VACUUM must keep message rowids (it does for tables with indexes)."""
    sid = _session(client, auth)
    _append(client, auth, sid, *[f"filler {i}" for i in range(50)])
    client.delete(f"/api/sessions/{sid}", headers=auth)
    sid = _session(client, auth)
    [mid] = _append(client, auth, sid, "after the vacuum: dugong")
    models.db.close_all()
    with sqlite3.connect(app.config["DB"]) as conn:
        conn.execute("VACUUM")
    assert _ids(_search(client, auth, "dugong")) == [mid]
    assert _index_matches_messages(app.config["DB"])


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
def test_migration_indexes_messages_already_stored(tmp_path):
    """A file from before the search migration, with messages, gains a full index when it runs."""
    path = tmp_path / "before.db"
    with file_at_version(path, step_adding("message_search")) as conn:
        conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'a', 0, 0)")
        conn.execute("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, seq, "
                     "active, last_active_at, created_at, updated_at) VALUES ('s', 1, 'old beluga', '', 0, 0, 2, 0, 0, 0, 0)")
        for seq, content in ((1, '"stored beluga"'), (2, json.dumps(CLAUDE_BLOCKS))):
            conn.execute("INSERT INTO message (id, session_id, seq, content, created_at, updated_at) "
                         "VALUES (?, 's', ?, ?, 0, 0)", (f"m{seq}", seq, content))
    models.init_db(str(path))
    models.migrate()
    with models.db.connection_context():
        hits, _ = models.search(1, "beluga")
        assert [(h["message_id"], h["title"]) for h in hits] == [(None, "old beluga"), ("m1", "old beluga")]
        assert [h["message_id"] for h in models.search(1, "quokka")[0]] == ["m2"]
    models.db.close_all()
    assert _index_matches_messages(path)


# What the index held before search_text(): json_tree's strings, in SQL (migration step 8).
_JSON_TREE_TEXT = ("SELECT CASE WHEN json_valid(?1) AND json_extract(?1, '$.t') IS NOT 'encrypted' THEN "
                   "coalesce((SELECT group_concat(value, ' ') FROM json_tree(?1) WHERE type = 'text' AND "
                   "coalesce(key, '') NOT IN ('type', 't', 'id', 'role', 'tool_use_id', 'signature', 'data', "
                   "'media_type', 'stream')), '') END")


@pytest.mark.parametrize("content", [
    '"a plain string"', json.dumps(CLAUDE_BLOCKS), '{"role":"user","content":{"type":"text","text":"happy"}}',
    '{"type":"output","stream":"stderr","text":"line"}', '{"t":"encrypted","c":"ZW5j"}', '{"c":"ZW5j","t":"encrypted"}',
    '[{"t":"encrypted","c":"inner"}]', '{"t":"plain","data":{"x":"under data"},"id":["in","a list"]}',
    '{"a":{"b":[["deep",{"type":"shallow","k":"kept"}]]}}', '{}', '[]', '42', 'null', 'true', '"é 東京 \\u00e9"',
    '{"big":123456789012345678901234567890,"s":"after a big number"}', '{"k":"x","k":"duplicate"}', 'not json',
])
def test_search_text_is_what_json_tree_gave(content):
    """search_text() (Python, called by the trigger) indexes exactly the strings the SQL trigger did."""
    with sqlite3.connect(":memory:") as conn:
        expected = conn.execute(_JSON_TREE_TEXT, (content,)).fetchone()[0]
    if content == '{"k":"x","k":"duplicate"}':
        expected = "duplicate"  # json_tree walks both members; no stored content has duplicate keys (it is re-encoded)
    assert models.search_text(content) == expected


def test_search_text_is_what_json_tree_gave_on_random_values():
    """The same on random nested values: strings under every kind of key, in arrays, at any depth."""
    rng = random.Random(13)
    keys = ["text", "type", "t", "id", "role", "data", "stream", "content", "input", "é"]

    def value(depth):
        roll = rng.random()
        if depth > 8 or roll < 0.35:
            return rng.choice(["word", "two words", "", "東京", 7, 2.5, None, True])
        if roll < 0.7:
            return {key: value(depth + 1) for key in rng.sample(keys, rng.randint(0, 4))}
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]
    with sqlite3.connect(":memory:") as conn:
        for _ in range(500):
            content = json.dumps(value(0), ensure_ascii=False)
            assert models.search_text(content) == conn.execute(_JSON_TREE_TEXT, (content,)).fetchone()[0], content


# The versions just before each migration that rebuilds the message index: the trigger moving to
# search_text(), the index keeping terms only, then each change of what search_text() reads.
REBUILDS = sorted({step_adding("search_text("), step_adding("content=message_text"),
                   *(i for i, step in enumerate(models.MIGRATIONS) if any("'rebuild'" in q for q in step))})


@pytest.mark.sqlite_only  # a SQLite file of an earlier version
@pytest.mark.parametrize("version", REBUILDS)
def test_a_file_from_before_a_rebuild_of_the_index_gets_it_rebuilt(tmp_path, monkeypatch, version):
    """The migrations that rebuild the message index (moving the trigger to search_text(), then keeping
    terms only, then leaving escape sequences out, then progress states) index again what was stored,
    and the index still equals the messages after new ones and a cascade."""
    path = tmp_path / "old.db"
    search_text = models.search_text

    def as_before_progress_states_were_left_out(content):
        try:
            value = json.loads(content)
        except ValueError:
            return search_text(content)
        if isinstance(value, dict):
            value.pop("progress", None)
        return search_text(json.dumps(value))

    monkeypatch.setattr(models, "search_text", as_before_progress_states_were_left_out)  # the old file's triggers
    with file_at_version(path, version) as conn:
        conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'a', 0, 0)")
        for sid in ("s", "t"):
            conn.execute("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, "
                         "seq, active, last_active_at, created_at, updated_at) VALUES (?, 1, 'x', '', 0, 0, 2, 0, 0, 0, 0)",
                         (sid,))
        coloured = json.dumps({"type": "output", "stream": "stdout", "text": f"{ESC}[32mgreen{ESC}[0m beluga"})
        state = json.dumps({"type": "output", "stream": "stdout", "text": "beluga 40%", "progress": True})
        for mid, sid, seq, content in (("m1", "s", 1, '"stored beluga"'), ("m2", "s", 2, json.dumps(CLAUDE_BLOCKS)),
                                       ("m3", "t", 1, '"doomed beluga"'), ("m4", "t", 2, '{"t":"encrypted","c":"x"}'),
                                       ("m5", "t", 3, coloured), ("m6", "t", 4, state)):
            conn.execute("INSERT INTO message (id, session_id, seq, content, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, 0, 0)", (mid, sid, seq, content))
    monkeypatch.undo()
    models.init_db(str(path))
    assert models.migrate() == version
    with models.db.connection_context():
        trigger = models.db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'message_search_insert'").fetchone()[0]
        assert "search_text(" in trigger and "json_tree" not in trigger
        domain.append_messages(1, "s", [{"content": '{"type":"output","stream":"stdout","text":"new beluga"}'}])
        found = models.search(1, "beluga")[0]
        hits = {h["message_id"] for h in found}
        assert len(hits) == 4 and {"m1", "m3", "m5"} < hits
        assert {_text(h) for h in found} == {"stored beluga", "doomed beluga", "new beluga", "green beluga"}
        assert [h["message_id"] for h in models.search(1, "green")[0]] == ["m5"]  # its escapes are not words
        assert not models.db.execute_sql(  # no second copy of the text, no token counts
            "SELECT name FROM sqlite_master WHERE name IN ('message_search_content', 'message_search_docsize')").fetchall()
        assert [h["message_id"] for h in models.search(1, "quokka")[0]] == ["m2"]
        assert [h["message_id"] for h in models.search(1, "quo*")[0]] == ["m2"]
        domain.delete_session(domain.find_session(1, "t"))
        assert {h["message_id"] for h in models.search(1, "beluga")[0]} == hits - {"m3", "m5"}
    models.db.close_all()
    assert _index_matches_messages(path)


def test_the_index_equals_the_messages_after_a_sigkill_mid_write(tmp_path, make_server):
    """Writers append, rename and delete until the server is killed mid-write: the file then holds an
    index equal to its messages and titles."""
    server = make_server()
    headers = {"Authorization": f"Bearer {server.token}"}
    progress = {"writes": 0}
    stop = threading.Event()

    def write(n):
        http = requests.Session()
        i = 0
        while not stop.is_set():
            try:
                sid = http.post(server.url + "/api/sessions", json={"title": f"crash {n} {i}"}, headers=headers,
                                timeout=5).json()["id"]
                http.post(f"{server.url}/v3/sessions/{sid}/messages", headers=headers, timeout=5, json={
                    "messages": [{"content": f"crash text {n} {i} {k}"} for k in range(20)] + [{"content": CLAUDE_BLOCKS}]})
                http.patch(f"{server.url}/api/sessions/{sid}", json={"title": f"renamed {i}"}, headers=headers, timeout=5)
                if i % 3 == 0:
                    http.delete(f"{server.url}/api/sessions/{sid}", headers=headers, timeout=5)
                progress["writes"] += 1
                i += 1
            except (requests.RequestException, ValueError, KeyError):
                return  # the server is gone
    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while progress["writes"] < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_hard(server)
    stop.set()
    for t in threads:
        t.join(10)
    assert progress["writes"] >= 30
    assert _index_matches_messages(server.db_path)
    if is_postgres(server.db_path):
        return
    with sqlite3.connect(server.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM message_search WHERE message_search MATCH 'crash'").fetchone()[0] == \
            conn.execute("SELECT count(*) FROM message WHERE content LIKE '%crash text%'").fetchone()[0] > 0


def test_one_sessions_pages_among_interleaved_sessions(client, auth):
    a, b = _session(client, auth), _session(client, auth)
    mine = []
    for i in range(5):
        mine += _append(client, auth, a, f"heron {i}")
        _append(client, auth, b, f"heron other {i}")
    seen, cursor = [], None
    while True:
        answer = _search(client, auth, "heron", session_id=a, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += _ids(answer)
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == mine[::-1]
    assert _search(client, auth, "heron", session_id=_session(client, auth))["items"] == []


@pytest.mark.sqlite_only  # FTS5's segments
def test_a_batch_is_indexed_as_one_segment(app, client, auth):
    """The index takes a batch in one piece: FTS5 writes what it holds at each statement, so messages
    written a statement each made a segment each (and merges of them) instead of one."""
    sid = _session(client, auth)
    _append(client, auth, sid, *[f"segment word{i}" for i in range(100)])
    with sqlite3.connect(app.config["DB"]) as conn:
        # id 1: the averages, id 10: the structure; then the pages of the segments
        assert conn.execute("SELECT count(*) FROM message_search_data").fetchone()[0] == 3
    assert _ids(_search(client, auth, "word99")) and _index_matches_messages(app.config["DB"])


@pytest.mark.sqlite_only  # a query SQLite answers slowly, in one call that keeps its thread
def test_a_slow_search_holds_up_no_one_else(live_server):
    """SQLite answers a query in one call that keeps the thread: the search runs beside the event loop,
    so the worker answers others while a slow one (every word matched, then none kept) runs."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {live_server.token}"
    sid = http.post(live_server.url + "/api/sessions", json={}).json()["id"]
    rng = random.Random(5)
    for _ in range(300):
        r = http.post(f"{live_server.url}/v3/sessions/{sid}/messages", json={"messages": [
            {"content": " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randrange(3, 9)))
                                 for _ in range(20))} for _ in range(100)]})
        assert r.status_code == 200
    everything = "(" + " OR ".join(f"{letter}*" for letter in string.ascii_lowercase) + ")"
    search = {}

    def run():
        search["started"] = time.monotonic()
        search["status"] = requests.get(live_server.url + "/api/search", headers=http.headers, timeout=60, params={
            "q": f"{everything} AND {everything} NOT {everything}"}).status_code
        search["ended"] = time.monotonic()
    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.1)  # the search has begun
    answered = 0  # /health asked and answered while the search runs
    while thread.is_alive() and answered < 1000:
        assert requests.get(live_server.url + "/health", timeout=60).status_code == 200
        answered += 1
    thread.join()
    assert search["status"] == 200
    took = search["ended"] - search["started"]
    assert took > 0.25  # slow enough for the check to mean something
    assert answered >= 5  # the loop blocked, the first would have waited for the search's end
