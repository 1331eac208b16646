"""Tokens: a revoked one is refused by the very next request, and a secret is never written anywhere it
could be read back: not in the server's log, not in a URL, not in the database file (only its sha256),
not in `list-tokens`. (Open websockets of a revoked token: test_updates.py.)"""
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT, WS, run_sql

TIMEOUT = 5


def cli(server, *args):
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, env={**os.environ, "SWITCHBOARD_DB": server.db_path})
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def token_id(server, secret):
    [(found,)] = run_sql(server.db_path, "SELECT id FROM token WHERE secret_hash = ?",
                         (hashlib.sha256(secret.encode()).hexdigest(),))
    return found


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def refused_on_websocket(server, secret):
    ws = WS(server.ws_url)
    try:
        ws.send("auth", {"token": secret})
        error = ws.expect("error")["data"]["error"]
        return error == "unauthorized" and ws.close_code() == 4401
    finally:
        ws.close()


def test_a_revoked_token_is_refused_by_the_very_next_request(live_server):
    doomed, kept = live_server.new_token(), live_server.new_token()
    url = live_server.url + "/v1/sessions"
    answers = []  # (started, status) of a client hammering with the doomed token on one keep-alive connection
    stop = threading.Event()

    def hammer():
        with requests.Session() as http:
            while not stop.is_set():
                started = time.monotonic()
                answers.append((started, http.get(url, headers=bearer(doomed), timeout=TIMEOUT).status_code))

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    while len(answers) < 20:
        time.sleep(0.01)
    doomed_id = token_id(live_server, doomed)
    revoking = time.monotonic()
    assert f"revoked token {doomed_id}" in cli(live_server, "revoke-token", str(doomed_id))
    revoked = time.monotonic()
    after = len(answers)
    assert requests.get(url, headers=bearer(doomed), timeout=TIMEOUT).status_code == 401
    assert refused_on_websocket(live_server, doomed)
    while len(answers) < after + 20:
        time.sleep(0.01)
    stop.set()
    thread.join(TIMEOUT)
    assert {status for started, status in answers if started < revoking} == {200}
    assert {status for started, status in answers if started > revoked} == {401}
    assert requests.get(url, headers=bearer(kept), timeout=TIMEOUT).status_code == 200


def test_a_token_in_the_query_string_is_not_a_credential(client, auth):
    secret = auth["Authorization"].split()[1]
    for query in (f"token={secret}", f"access_token={secret}", f"auth={secret}"):
        r = client.get(f"/v1/sessions?{query}")
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
        assert secret not in r.get_data(as_text=True)


def _raw(server, data):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(data)
        return s.recv(4096)


def test_tokens_never_appear_in_the_servers_log(make_server):
    # The access log on: every request line is written, so a token in any URL would show.
    server = make_server({"GUNICORN_CMD_ARGS": "--access-logfile -", "SWITCHBOARD_WS_TOKEN_CHECK_SECONDS": "0.2"})
    good, revoked, closed = server.new_token(), server.new_token(), server.new_token()
    cli(server, "revoke-token", str(token_id(server, revoked)))
    forged = "sb_" + "A" * 43
    secrets = {"good": good, "revoked": revoked, "closed": closed, "forged": forged}
    h = bearer(good)

    # HTTP: successes, every kind of error, bad tokens
    sid = requests.post(server.url + "/v1/sessions", json={"tag": "t", "metadata": ""}, headers=h, timeout=TIMEOUT).json()["session"]["id"]
    assert requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": "x", "localId": "l"}]},
                         headers=h, timeout=TIMEOUT).status_code == 200
    for method, path, body, status in [("GET", "/v1/sessions/nope/messages", None, 404), ("PUT", "/v1/sessions", None, 405),
                                       ("POST", "/v1/sessions", {"tag": 5}, 400), ("GET", "/nowhere", None, 404),
                                       ("POST", "/api/sessions", "text", 415)]:
        kwargs = {"data": body} if isinstance(body, str) else {"json": body}
        assert requests.request(method, server.url + path, headers=h, timeout=TIMEOUT, **kwargs).status_code == status
    for name in ("revoked", "forged"):
        assert requests.get(server.url + "/v1/sessions", headers=bearer(secrets[name]), timeout=TIMEOUT).status_code == 401
    assert requests.get(server.url + "/v1/sessions", headers={"Authorization": good}, timeout=TIMEOUT).status_code == 401
    huge = (f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {good}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1000000000\r\n\r\n{{").encode()
    assert _raw(server, huge).startswith(b"HTTP/1.1 413")
    # requests gunicorn refuses before the app sees them, each carrying a token in a header
    for malformed in [f"Authorization: Bearer {good}\x01", f"Authorization : Bearer {good}",
                      f"Authorization: Bearer {good}{'x' * 9000}", f"X-{good}: 1"]:
        assert _raw(server, f"GET /v1/sessions HTTP/1.1\r\nHost: x\r\n{malformed}\r\n\r\n".encode()).startswith(b"HTTP/1.1 4")

    # websockets: good auth, an event, bad auths, a socket whose token is revoked while open
    ws = WS(server.ws_url)
    ws.send("auth", {"token": good})
    ws.expect("ready")
    ws.send("message", {"sid": sid, "content": {"secret": "not a token"}}, ack=1)
    ws.expect("ack")
    ws.send("message", {"sid": "nope", "content": 1}, ack=2)
    ws.expect("error")
    ws.close()
    for name in ("revoked", "forged"):
        assert refused_on_websocket(server, secrets[name])
    doomed = WS(server.ws_url)
    doomed.send("auth", {"token": closed})
    doomed.expect("ready")
    cli(server, "revoke-token", str(token_id(server, closed)))
    assert doomed.expect("error", timeout=TIMEOUT)["data"]["message"] == "Token revoked."
    doomed.close()

    assert server.stop() == 0
    log = server.log()
    assert re.search(r'"POST /v1/sessions HTTP/1\.1" 200', log), "the access log is not in the output"
    for name, secret in {**secrets, "first-run": server.token}.items():
        allowed = 1 if name == "first-run" else 0  # the first-run link, printed once on purpose
        assert log.count(secret[3:]) == allowed, f"the {name} token is in the log"
    assert re.search(r"^Switchboard is ready\. Open http://\S+/#token=" + re.escape(server.token) + "$", log, re.M)


def test_tokens_are_stored_only_as_their_sha256(live_server):
    secrets = [live_server.token, live_server.new_token(), live_server.new_token("other")]
    for secret in secrets:  # used: last_used_at is written
        assert requests.get(live_server.url + "/v1/sessions", headers=bearer(secret), timeout=TIMEOUT).status_code == 200
    rows = repr(run_sql(live_server.db_path, "SELECT * FROM token"))
    assert not [secret for secret in secrets if secret[3:] in rows]
    hashes = {h for (h,) in run_sql(live_server.db_path, "SELECT secret_hash FROM token")}
    assert hashes == {hashlib.sha256(s.encode()).hexdigest() for s in secrets}


@pytest.mark.sqlite_only  # the bytes of the SQLite file and its WAL
def test_no_token_secret_is_in_the_database_files(live_server):
    secrets = [live_server.token, live_server.new_token(), live_server.new_token("other")]
    for secret in secrets:  # used: last_used_at is written, so the token rows are in the WAL too
        assert requests.get(live_server.url + "/v1/sessions", headers=bearer(secret), timeout=TIMEOUT).status_code == 200

    def stored():
        return b"".join(path.read_bytes() for path in Path(live_server.db_path).parent.glob(Path(live_server.db_path).name + "*")
                        if not path.name.endswith(".log"))
    for snapshot in (stored(), (live_server.stop(), stored())[1]):  # while running (WAL), after the checkpoint
        for secret in secrets:
            assert secret[3:].encode() not in snapshot
            assert hashlib.sha256(secret.encode()).hexdigest().encode() in snapshot


def test_list_tokens_prints_neither_secrets_nor_their_hashes(live_server):
    secrets = [live_server.token, live_server.new_token(), live_server.new_token("other")]
    listing = cli(live_server, "list-tokens")
    assert len(listing.splitlines()) == 1 + len(secrets)
    for secret in secrets:
        assert secret[3:] not in listing
        assert hashlib.sha256(secret.encode()).hexdigest()[:16] not in listing


# The browser sends the token in the Authorization header and in the websocket's auth frame, nowhere else.
# static/vendor/ holds third-party builds (Markdown, sanitizer, highlighter) that only ever see message text.
UI = [p for p in (ROOT / "static").rglob("*") if p.suffix in (".js", ".html") and "vendor" not in p.parts] \
    + list((ROOT / "templates").rglob("*.html"))
URL_CALLS = re.compile(r"\b(fetch|WebSocket|EventSource|open|assign|replace|URL)\s*\(([^;]*)")


def test_the_ui_never_puts_the_token_in_a_url():
    assert any(p.name == "live.js" for p in UI) and any(p.name == "api.js" for p in UI)
    sources = {p: p.read_text() for p in UI}
    for path, text in sources.items():
        assert not re.search(r"[?&][\w-]*token[\w-]*=", text, re.I), path
        for call, arguments in URL_CALLS.findall(text):
            first = arguments.split(",")[0]
            assert "token" not in first.lower(), f"{path.name}: {call}({arguments.strip()}"
        for line in text.splitlines():
            if re.search(r"location|href|history", line) and re.search(r"token", line, re.I):
                # only reading the first-run link's fragment and then removing it from the address bar
                assert "location.hash" in line or "replaceState" in line, f"{path.name}: {line.strip()}"
    sent = "".join(sources[p] for p in UI if p.name in ("api.js", "live.js"))
    assert "Authorization: `Bearer ${" in sent and re.search(r"\{\s*token:\s*this\.token", sent)


def test_pages_the_server_serves_carry_no_token(live_server):
    for path in ("/", "/health", "/openapi.json"):
        r = requests.get(live_server.url + path, headers=bearer(live_server.token), timeout=TIMEOUT)
        assert r.status_code == 200 and live_server.token[3:] not in r.text
        assert all(live_server.token[3:] not in value for value in r.headers.values())
