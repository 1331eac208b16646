"""The browser UI in a real headless Chromium (Playwright, sync API) against the real server started
as a user starts it. Each test does what a person would do and checks what they would see, plus the
server's side of it over HTTP. Every test also fails on a JavaScript error, a console error, an
unexpected HTTP error answer or a request to another host; a failing test leaves a screenshot in
test-artifacts/.

Without /usr/bin/chromium these tests skip with a loud reason, unless SWITCHBOARD_REQUIRE_BROWSER=1
(set by .ci/run), which turns the skip into a failure.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN_KEY = "switchboard.token"

expect.set_options(timeout=10_000)


def require_chromium(path=CHROMIUM, environ=os.environ):
    """Skip loudly without Chromium, or fail when the environment says the browser tests must run."""
    if Path(path).exists():
        return
    reason = f"BROWSER TESTS NOT RUN: {path} is missing (apt-get install chromium). Nothing in the UI was tested."
    if environ.get("SWITCHBOARD_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " SWITCHBOARD_REQUIRE_BROWSER=1 does not allow skipping them.")
    pytest.skip(reason)


def test_a_missing_chromium_is_a_loud_skip_locally_and_a_failure_in_ci(tmp_path):
    missing = str(tmp_path / "no-chromium")
    with pytest.raises(pytest.skip.Exception, match="BROWSER TESTS NOT RUN"):
        require_chromium(missing, {})
    with pytest.raises(pytest.fail.Exception, match="does not allow skipping"):
        require_chromium(missing, {"SWITCHBOARD_REQUIRE_BROWSER": "1"})
    assert (ROOT / ".ci" / "run").read_text().count("export SWITCHBOARD_REQUIRE_BROWSER=1") == 1


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Person:
    """A browser tab on the server, plus the server-side checks a test makes (HTTP with the token)."""

    def __init__(self, browser, server, viewport):
        self.server = server
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.problems = []
        self.allowed = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("request", self._check_host)
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(
            f"HTTP {r.status} {r.request.method} {r.url}"))
        self.frames = []  # (direction, parsed frame) of every websocket, in order
        self.page.on("websocket", self._watch_socket)

    def _watch_socket(self, socket):
        socket.on("framesent", lambda payload: self.frames.append(("sent", json.loads(payload))))
        socket.on("framereceived", lambda payload: self.frames.append(("received", json.loads(payload))))

    def received(self, *events):
        return [frame for direction, frame in self.frames if direction == "received" and frame["event"] in events]

    def auths_and_highest_seq_seen(self):
        """(the `since` of each auth frame, the highest seq received before it) for every connection."""
        highest, pairs = None, []
        for direction, frame in self.frames:
            if direction == "sent" and frame["event"] == "auth":
                pairs.append((frame["data"].get("since"), highest))
            elif direction == "received" and frame["event"] in ("update", "ready", "resync"):
                highest = max(highest or 0, frame["data"]["seq"])
        return pairs

    def _check_host(self, request):
        if not request.url.startswith((self.server.url + "/", "blob:", "data:")):
            self.problems.append(f"request to another host: {request.url}")

    def allow(self, pattern):
        """An error this test provokes on purpose (a regex over the problem text)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self):
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    def open(self, token=None):
        """The first-run link, as `serve` prints it."""
        self.page.goto(f"{self.server.url}/#token={token or self.server.token}")
        expect(self.page.locator("#connection")).to_have_text("Connected")
        return self.page

    def session_button(self, text):
        return self.page.locator(".session-item", has_text=text)

    def open_session(self, text):
        self.session_button(text).click()
        expect(self.page.locator("#session-title")).to_have_text(text)

    def messages(self):
        return self.page.locator("#message-list > li")

    def dialog(self, name):
        return self.page.get_by_role("dialog", name=name)

    # the server's side, over HTTP
    def api(self, method, path, **kwargs):
        return requests.request(method, self.server.url + path, headers=self.server.headers, timeout=10, **kwargs)

    def agent_session(self, tag):
        response = self.api("POST", "/v1/sessions", json={"tag": tag, "metadata": "{}"})
        assert response.status_code == 200, response.text
        return response.json()["session"]["id"]

    def agent_says(self, sid, *contents):
        response = self.api("POST", f"/v3/sessions/{sid}/messages",
                            json={"messages": [{"content": c} for c in contents]})
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def sessions(self):
        return self.api("GET", "/api/sessions").json()["items"]


@pytest.fixture
def viewport():
    return {"width": 1280, "height": 800}


@pytest.fixture
def server_env():
    return None


@pytest.fixture
def server(make_server, server_env):
    return make_server(env=server_env)


@pytest.fixture
def person(browser, server, viewport, request):
    person = Person(browser, server, viewport)
    failures = request.session.testsfailed
    yield person
    try:
        # The call phase's report is logged before teardown: a bigger count means this test failed.
        if request.session.testsfailed > failures:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            person.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        person.context.close()
    assert person.unexpected() == [], "the page reported problems"


# --- the token ----------------------------------------------------------------------------------

def test_first_run_link_keeps_the_token_and_removes_it_from_the_address_bar(person):
    page = person.open()
    assert page.url == person.server.url + "/"
    assert "token" not in page.evaluate("location.href + history.state")
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == person.server.token
    page.reload()
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(page.locator("#token-screen")).to_be_hidden()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


def test_without_a_token_the_page_explains_how_to_get_one_and_takes_a_pasted_one(person):
    page = person.page
    page.goto(person.server.url + "/")
    screen = page.locator("#token-screen")
    expect(screen).to_be_visible()
    expect(screen).to_contain_text("python app.py create-token")
    expect(page.locator("#workspace")).to_be_hidden()
    token = person.server.new_token()
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(screen).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == token


def _token_id(server, secret_count):
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "list-tokens"], cwd=ROOT, check=True,
                         env={**os.environ, "SWITCHBOARD_DB": server.db_path}, capture_output=True, text=True)
    ids = [int(line.split()[0]) for line in out.stdout.splitlines()[1:]]
    assert len(ids) == secret_count
    return max(ids)


def _revoke(server, token_id):
    subprocess.run([sys.executable, str(ROOT / "app.py"), "revoke-token", str(token_id)], cwd=ROOT, check=True,
                   env={**os.environ, "SWITCHBOARD_DB": server.db_path}, capture_output=True)


def test_revoking_the_token_sends_the_open_page_back_to_the_token_screen(person):
    token = person.server.new_token()
    page = person.open(token)
    _revoke(person.server, _token_id(person.server, 2))
    # The server closes the revoked token's websocket (4401): no click needed.
    problem = page.locator("#token-problem")
    expect(problem).to_contain_text("revoked")
    expect(page.locator("#token-screen")).to_be_visible()
    expect(page.locator("#workspace")).to_be_hidden()
    expect(page.get_by_label("API token")).to_be_focused()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None

    # A revoked token kept from an earlier visit: refused at the websocket's auth frame.
    page.evaluate(f"localStorage.setItem('{TOKEN_KEY}', {json.dumps(token)})")
    page.reload()
    expect(problem).to_contain_text("revoked")
    expect(page.locator("#token-screen")).to_be_visible()


@pytest.mark.parametrize("server_env", [{"SWITCHBOARD_WS_TOKEN_CHECK_SECONDS": "3600"}])
def test_an_http_401_also_sends_the_person_back_to_the_token_screen(person):
    person.allow(r"\b401\b")  # the answer to the revoked token, and the console line it causes
    person.agent_session("nightly")
    page = person.open(person.server.new_token())
    expect(person.session_button("nightly")).to_be_visible()
    _revoke(person.server, _token_id(person.server, 2))  # the websocket is not told for an hour

    person.session_button("nightly").click()  # its first request is answered 401
    expect(page.locator("#token-problem")).to_contain_text("revoked")
    expect(page.locator("#workspace")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


# --- watching sessions -------------------------------------------------------------------------

def test_a_session_an_agent_creates_appears_live_with_its_activity(person):
    page = person.open()
    expect(page.locator("#sessions-empty")).to_be_visible()
    sid = person.agent_session("build-bot")
    item = person.session_button("build-bot")
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-activity", "active")

    person.api("POST", f"/v1/sessions/{sid}/alive", json={"thinking": True})
    expect(item).to_have_attribute("data-activity", "thinking")
    expect(item).to_contain_text("thinking")
    person.api("POST", f"/v1/sessions/{sid}/end", json={})
    expect(item).to_have_attribute("data-activity", "idle")

    # Most recent first; an untitled session without a tag shows when it started.
    untitled = person.api("POST", "/api/sessions", json={})
    assert untitled.status_code == 201, untitled.text
    expect(page.locator(".session-item").first).to_contain_text("Session started")
    person.agent_says(sid, "back to work")
    expect(page.locator(".session-item").first).to_contain_text("build-bot")
    expect(page.locator(".session-item")).to_have_count(2)


def test_agent_messages_stream_in_live_in_order_and_readable(person):
    person.open()
    sid = person.agent_session("writer")
    person.agent_says(sid, "first", {"tool": "pytest", "result": {"passed": 12, "failed": 0}})
    person.open_session("writer")
    expect(person.messages()).to_have_count(2)

    long_line = "x" * 3000
    person.agent_says(sid, "third\nwith a second line", long_line, "<b>not bold</b>")
    expect(person.messages()).to_have_count(5)
    assert person.messages().evaluate_all("items => items.map(i => Number(i.dataset.seq))") == [1, 2, 3, 4, 5]
    expect(person.messages().nth(0).locator(".content")).to_have_text("first")
    pretty = person.messages().nth(1).locator("pre.content.json")
    expect(pretty).to_contain_text('"passed": 12')
    assert "\n" in pretty.text_content()
    expect(person.messages().nth(4).locator(".content")).to_have_text("<b>not bold</b>")  # text, not markup
    assert person.messages().nth(4).locator("b").count() == 0

    long_message = person.messages().nth(3)
    toggle = long_message.locator("button.expand")
    expect(toggle).to_have_text(re.compile(r"^Show all \(1 lines, 3,000 characters\)$"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    collapsed = long_message.locator(".content").bounding_box()["height"]
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_have_text("Show less")
    assert long_message.locator(".content").bounding_box()["height"] > collapsed


def test_roles_are_labelled_and_look_different(person):
    person.open()
    sid = person.agent_session("roles")
    person.open_session("roles")
    for role in ("system", "user", "assistant", "tool"):
        response = person.api("POST", f"/api/sessions/{sid}/messages", json={"role": role, "content": f"a {role} line"})
        assert response.status_code == 201, response.text
    person.agent_says(sid, "an agent line")
    expect(person.messages()).to_have_count(5)
    assert person.messages().locator(".role").all_text_contents() == ["System", "User", "Assistant", "Tool", "Agent"]
    looks = person.messages().evaluate_all(
        "items => items.map(i => { const s = getComputedStyle(i); return s.backgroundColor + s.borderLeftColor; })")
    assert len(set(looks[:4])) == 4  # each role its own colours (the label says it too, for colour blindness)


def test_older_messages_load_as_the_person_scrolls_up(person):
    page = person.open()
    sid = person.agent_session("chatty")
    for start in range(1, 131, 65):
        person.agent_says(sid, *[f"message {n}" for n in range(start, start + 65)])
    asked = []
    page.on("request", lambda r: "/messages" in r.url and asked.append(r.url.split("?", 1)[1]))
    person.open_session("chatty")
    expect(person.messages()).to_have_count(50)
    expect(person.messages().last).to_contain_text("message 130")
    # However long the session, opening it asks for one page: the newest 50.
    assert asked == [f"before_seq={2**53 - 1}&limit=50"]
    for expected in (100, 130):
        page.locator("#message-scroller").evaluate("s => s.scrollTop = 0")
        expect(person.messages()).to_have_count(expected)
    expect(page.locator("#history-start")).to_have_text("Start of the session")
    assert person.messages().evaluate_all("items => items.map(i => Number(i.dataset.seq))") == list(range(1, 131))


class HeldUpdates:
    """The page's websocket through a relay that holds the update frames while `holding`, in order
    (the page skips an update seq it has passed), until release()."""

    def __init__(self, page):
        self.page, self.sockets, self.held, self.holding = page, [], [], False
        page.route_web_socket(re.compile(r"/v1/updates$"), self._relay)

    def _relay(self, ws):
        server = ws.connect_to_server()
        self.sockets.append(ws)
        server.on_message(lambda message: self.held.append(message)
                          if self.holding and json.loads(message)["event"] == "update" else ws.send(message))
        ws.on_message(lambda message: server.send(message))

    def wait_for(self, count):
        for _ in range(500):  # on PostgreSQL each update reaches the socket a moment after its write
            if len(self.held) >= count:
                return
            self.page.wait_for_timeout(20)
        raise AssertionError(f"{len(self.held)} updates of {count} reached the relay")

    def release(self):
        while self.held:  # still holding: one arriving meanwhile goes after these, in order
            self.sockets[-1].send(self.held.pop(0))
        self.holding = False


def _chatty_written_while_held(person):
    """Session "chatty" with 130 messages written while the page's updates are held."""
    updates = HeldUpdates(person.page)
    page = person.open()
    sid = person.agent_session("chatty")
    expect(person.session_button("chatty")).to_be_visible()
    updates.holding = True
    for start in range(1, 131, 65):
        person.agent_says(sid, *[f"message {n}" for n in range(start, start + 65)])
    return page, sid, updates


def _seqs(person):
    return person.messages().evaluate_all("items => items.map(i => Number(i.dataset.seq))")


def test_updates_reaching_the_page_after_its_history_page_draw_no_gap(person):
    """Updates can reach the page after the page of messages they belong to was fetched (a lagging
    socket; on PostgreSQL, another host's delivery). A message older than the oldest one drawn waits
    for the older page that holds it: what is drawn is always one unbroken run of the history."""
    page, sid, updates = _chatty_written_while_held(person)
    person.open_session("chatty")
    expect(person.messages()).to_have_count(50)  # 81 to 130
    updates.wait_for(130)
    updates.release()
    person.agent_says(sid, "message 131")  # its update follows the held ones: they were handled first
    expect(person.messages().last).to_contain_text("message 131")
    assert _seqs(person) == list(range(81, 132))
    for expected in (101, 131):
        page.locator("#message-scroller").evaluate("s => s.scrollTop = 0")
        expect(person.messages()).to_have_count(expected)
    assert _seqs(person) == list(range(1, 132))


def test_updates_reaching_the_page_while_its_first_history_page_loads_wait_for_it(person):
    """Updates that reach the page while the session's first page of messages is still on its way wait
    for it: drawn at once, they stood above it (on PostgreSQL, another host's delivery lagging behind
    the writes), more than one page and maybe a gap. Those the page holds, or older, are not drawn."""
    first_page = re.compile(r"/api/sessions/[^/]+/messages\?before_seq=")
    pages = []
    person.page.route(first_page, lambda route: pages.append(route))  # answered below
    page, sid, updates = _chatty_written_while_held(person)
    updates.wait_for(130)
    person.open_session("chatty")
    for _ in range(500):
        if pages:
            break
        page.wait_for_timeout(20)
    updates.release()  # the updates arrive while the first page is on its way
    page.wait_for_timeout(300)  # frames enough for them to be drawn, were they drawn before the page
    assert person.messages().count() == 0
    pages.pop().continue_()
    expect(person.messages()).to_have_count(50)
    assert _seqs(person) == list(range(81, 131))
    person.page.unroute(first_page)
    person.agent_says(sid, "message 131")
    expect(person.messages().last).to_contain_text("message 131")
    expect(person.messages()).to_have_count(51)


def test_switching_sessions_quickly_never_mixes_their_messages(person):
    page = person.open()
    slow = person.agent_session("slow")
    person.agent_says(slow, "from slow")
    fast = person.agent_session("fast")
    person.agent_says(fast, "from fast")
    held = []
    page.route(f"**/api/sessions/{slow}/messages*", lambda route: held.append(route))
    person.session_button("slow").click()
    for _ in range(250):  # until the request is held at the route
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1
    person.open_session("fast")
    expect(person.messages()).to_have_count(1)
    held[0].continue_()  # the answer for the session no longer open arrives late
    page.unroute(f"**/api/sessions/{slow}/messages*")
    page.wait_for_load_state("networkidle")
    expect(person.messages()).to_have_count(1)
    expect(person.messages().first).to_contain_text("from fast")


# --- talking to the agent ----------------------------------------------------------------------

def test_the_persons_message_reaches_the_agents_websocket_and_shows_once(person, ws_connect):
    page = person.open()
    sid = person.agent_session("helper")
    agent = ws_connect(person.server, client_type="session-scoped", session_id=sid)
    person.open_session("helper")

    box = page.get_by_label("Message to the agent")
    box.fill("Please run the tests")
    box.press("Enter")
    update = agent.expect("update")["data"]["body"]
    assert update["t"] == "new-message"
    assert update["message"]["content"] == "Please run the tests"
    assert update["message"]["role"] == "user"
    expect(box).to_have_value("")

    # The reply comes after the person's message in seq order, so once it is shown, the update
    # echoing the person's message has been handled too.
    person.agent_says(sid, "Running them now")
    expect(person.messages().last).to_contain_text("Running them now")
    expect(person.messages()).to_have_count(2)
    mine = person.messages().first
    expect(mine).to_have_class(re.compile(r"\brole-user\b"))
    expect(mine.locator(".role")).to_have_text("User")
    assert [m["content"] for m in person.api("GET", f"/api/sessions/{sid}").json()["messages"]] == [
        "Please run the tests", "Running them now"]


def test_keyboard_alone_reaches_everything_in_order(person):
    page = person.open()
    person.agent_session("keys")
    expect(person.session_button("keys")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("aria-live", "polite")

    def tab_order(count):
        names = []
        for _ in range(count):
            page.keyboard.press("Tab")
            names.append(page.evaluate(
                "(e => e.id || e.querySelector('.session-name').textContent)(document.activeElement)"))
        return names

    page.locator("body").focus()
    assert tab_order(11) == ["search-input", "usage-link", "settings-button", "import-button", "delete-all-button",
                             "forget-token-button", "new-session-button", "filter-active", "filter-waiting",
                             "filter-project", "keys"]
    page.keyboard.press("Enter")
    expect(page.locator("#session-title")).to_be_focused()
    assert tab_order(7) == ["rename-button", "prompt-button", "export-button", "delete-button",
                            "deliveries-summary", "send-input", "send-button"]
    page.locator("#send-input").focus()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(person.messages()).to_have_count(1)
    # The update can draw the message before the POST answers; the send ends by focusing the box again.
    expect(page.locator("#send-input")).to_have_value("")
    expect(page.locator("#send-button")).to_be_enabled()
    expect(page.locator("#send-input")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(person.messages().first.get_by_role("button", name="Raw JSON")).to_be_focused()  # the message's own switch
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#deliveries-summary")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#delete-button")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = person.dialog("Delete session?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(person.sessions()) == 1


# --- managing sessions -------------------------------------------------------------------------

def test_rename_and_system_prompt_round_trip(person):
    page = person.open()
    sid = person.agent_session("deploy-42")
    person.open_session("deploy-42")

    page.get_by_role("button", name="Rename…", exact=True).click()
    dialog = person.dialog("Rename session")
    dialog.get_by_label("Title").fill("Release checklist")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#session-title")).to_have_text("Release checklist")
    expect(person.session_button("Release checklist")).to_contain_text("deploy-42")
    assert person.api("GET", f"/api/sessions/{sid}").json()["title"] == "Release checklist"

    person.api("PATCH", f"/api/sessions/{sid}", json={"title": "Renamed elsewhere"})
    expect(page.locator("#session-title")).to_have_text("Renamed elsewhere")

    page.get_by_role("button", name="System prompt…", exact=True).click()
    dialog = person.dialog("System prompt")
    counter = dialog.locator("#prompt-counter")
    expect(counter).to_have_text("0 / 8,000 characters")
    editor = dialog.get_by_label(re.compile("Instructions"))
    editor.fill("Answer in French.")
    expect(counter).to_have_text("17 / 8,000 characters")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog).to_be_hidden()
    assert person.api("GET", f"/api/sessions/{sid}").json()["system_prompt"] == "Answer in French."

    page.reload()
    expect(page.locator("#connection")).to_have_text("Connected")
    person.open_session("Renamed elsewhere")
    page.get_by_role("button", name="System prompt…", exact=True).click()
    expect(editor).to_have_value("Answer in French.")
    editor.fill("y" * 9000)  # the editor stops at the limit, and says so
    expect(counter).to_have_text("8,000 / 8,000 characters")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog).to_be_hidden()
    assert person.api("GET", f"/api/sessions/{sid}").json()["system_prompt"] == "y" * 8000

    page.get_by_role("button", name="System prompt…", exact=True).click()
    editor.fill("")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog).to_be_hidden()
    assert person.api("GET", f"/api/sessions/{sid}").json()["system_prompt"] is None


def test_deleting_a_session_asks_first_and_others_vanish_live(person):
    page = person.open()
    keep, gone, remote = (person.agent_session(t) for t in ("keep", "gone", "remote"))
    person.open_session("gone")

    page.get_by_role("button", name="Delete…", exact=True).click()
    dialog = person.dialog("Delete session?")
    expect(dialog).to_contain_text("gone")
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog).to_be_hidden()
    assert person.api("GET", f"/api/sessions/{gone}").status_code == 200

    page.get_by_role("button", name="Delete…", exact=True).click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(person.session_button("gone")).to_have_count(0)
    expect(page.locator("#session-view")).to_be_hidden()
    expect(page.locator("#sessions-heading")).to_be_focused()
    assert person.api("GET", f"/api/sessions/{gone}").status_code == 404

    person.api("DELETE", f"/v1/sessions/{remote}")  # an agent deletes one: it vanishes here too
    expect(person.session_button("remote")).to_have_count(0)
    expect(page.locator(".session-item")).to_have_count(1)
    assert [s["id"] for s in person.sessions()] == [keep]


def test_delete_all_needs_the_word_delete(person):
    page = person.open()
    for tag in ("a", "b", "c"):
        person.agent_session(tag)
    expect(page.locator(".session-item")).to_have_count(3)

    page.get_by_role("button", name="Delete all…", exact=True).click()
    dialog = person.dialog("Delete every session?")
    dialog.get_by_label("Type delete to confirm").fill("remove")
    dialog.get_by_role("button", name="Delete all sessions", exact=True).click()
    expect(dialog.get_by_role("alert")).to_contain_text("Nothing was deleted")
    expect(dialog).to_be_visible()
    assert len(person.sessions()) == 3
    expect(page.locator(".session-item")).to_have_count(3)

    dialog.get_by_label("Type delete to confirm").fill("delete")
    dialog.get_by_role("button", name="Delete all sessions", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".session-item")).to_have_count(0)
    expect(page.locator("#sessions-empty")).to_be_visible()
    assert person.sessions() == []


def test_export_then_import_recreates_the_session(person, tmp_path):
    page = person.open()
    sid = person.agent_session("export-me")
    person.api("PATCH", f"/api/sessions/{sid}", json={"title": "Trip notes"})
    person.agent_says(sid, "Grüße aus Köln 🚆", {"steps": [1, 2, 3]})
    person.open_session("Trip notes")
    page.get_by_label("Message to the agent").fill("Thanks!")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(person.messages()).to_have_count(3)

    with page.expect_download() as download:
        page.get_by_role("button", name="Export", exact=True).click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["session"]["title"] == "Trip notes"
    assert [m["content"] for m in document["messages"]] == ["Grüße aus Köln 🚆", {"steps": [1, 2, 3]}, "Thanks!"]

    page.locator("#import-file").set_input_files(str(path))
    expect(page.locator(".session-item", has_text="Trip notes")).to_have_count(2)
    expect(page.locator("#session-title")).to_have_text("Trip notes")
    expect(person.messages()).to_have_count(3)
    expect(person.messages().nth(0).locator(".content")).to_have_text("Grüße aus Köln 🚆")
    expect(person.messages().nth(1).locator(".content")).to_contain_text('"steps"')
    expect(person.messages().nth(2).locator(".content")).to_have_text("Thanks!")
    copy = next(s for s in person.sessions() if s["id"] != sid)
    again = person.api("GET", f"/api/sessions/{copy['id']}/export").json()
    strip = lambda doc: [{k: m[k] for k in ("seq", "role", "content", "metadata", "created_at")} for m in doc["messages"]]
    assert strip(again) == strip(document)


def test_import_errors_are_shown_plainly_and_nothing_is_created(person, tmp_path):
    person.allow(r"\b400\b")  # the server refusing the bad document, and the console line it causes
    page = person.open()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "session": {"title": "Broken"}, "messages": [
        {"role": "user", "content": "fine"}, {"role": "robot", "content": "not a role"}]}))
    page.locator("#import-file").set_input_files(str(bad))
    dialog = person.dialog("Import failed")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("bad.json was not imported")
    expect(dialog).to_contain_text("message 2")  # the second, counted from 1
    expect(dialog.locator("#import-errors")).to_contain_text("role")
    dialog.get_by_role("button", name="Close", exact=True).click()

    not_json = tmp_path / "notes.txt"
    not_json.write_text("this is not JSON")
    page.locator("#import-file").set_input_files(str(not_json))
    expect(dialog).to_contain_text("notes.txt is not a JSON file")
    dialog.get_by_role("button", name="Close", exact=True).click()
    assert person.sessions() == []
    expect(page.locator(".session-item")).to_have_count(0)


# --- staying connected --------------------------------------------------------------------------

def test_after_a_server_restart_the_page_catches_up_without_reloading(person):
    person.allow(r"WebSocket connection to .* failed")  # Chromium logs each refused retry while it is down
    page = person.open()
    sid = person.agent_session("survivor")
    person.agent_says(sid, "before 1", "before 2")
    person.open_session("survivor")
    expect(person.messages()).to_have_count(2)
    page.evaluate("window.sameDocument = true")

    person.server.stop()
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    person.server.start()  # the same database file and port
    person.agent_says(sid, "after 1", "after 2", "after 3")
    person.agent_session("born-while-away")

    expect(page.locator("#connection")).to_have_text("Connected", timeout=30_000)
    expect(person.messages()).to_have_count(5)
    expect(person.session_button("born-while-away")).to_be_visible()
    assert person.messages().evaluate_all("items => items.map(i => i.querySelector('.content').textContent)") == [
        "before 1", "before 2", "after 1", "after 2", "after 3"]
    assert page.evaluate("window.sameDocument") is True
    auths = person.auths_and_highest_seq_seen()
    assert len(auths) >= 2 and auths[0] == (None, None)
    assert all(since == seen for since, seen in auths[1:])  # every reconnect asks for what it has not seen
    assert len(person.received("resync")) == 0
    person.agent_says(sid, "live again")
    expect(person.messages()).to_have_count(6)


@pytest.mark.parametrize("server_env", [{"SWITCHBOARD_UPDATE_RETENTION_DAYS": "0.00001",  # about 0.9 s
                                         "SWITCHBOARD_MAINTENANCE_INTERVAL_SECONDS": "0.2"}])
def test_when_the_update_log_no_longer_reaches_back_the_page_refetches(person, ws_connect):
    person.allow(r"WebSocket connection to .* failed")  # Chromium logs each retry while offline
    page = person.open()
    sid = person.agent_session("long-trip")
    doomed = person.agent_session("doomed")
    person.agent_says(sid, "seen 1", "seen 2")
    person.open_session("long-trip")
    expect(person.messages()).to_have_count(2)
    page.evaluate("window.sameDocument = true")

    # Offline emulation keeps an open websocket open: a restart closes it, and the page stays away.
    person.context.set_offline(True)
    person.server.stop()
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    person.server.start()
    person.agent_says(sid, "missed 1", "missed 2")
    person.api("DELETE", f"/api/sessions/{doomed}")
    person.agent_session("newcomer")
    seen = max(f["data"]["seq"] for f in person.received("update", "ready"))
    for _ in range(100):  # until the log has pruned everything the page missed
        probe = ws_connect(person.server, since=seen, ready=False)
        if probe.recv()["event"] == "resync":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the update log was never pruned")

    person.context.set_offline(False)
    expect(page.locator("#connection")).to_have_text("Connected", timeout=30_000)
    expect(person.session_button("newcomer")).to_be_visible()
    expect(person.session_button("doomed")).to_have_count(0)
    expect(person.messages()).to_have_count(4)
    assert [f["event"] for f in person.received("resync", "ready")][-2:] == ["resync", "ready"]
    assert person.messages().evaluate_all("items => items.map(i => i.querySelector('.content').textContent)") == [
        "seen 1", "seen 2", "missed 1", "missed 2"]
    assert page.evaluate("window.sameDocument") is True
    person.agent_says(sid, "live again")
    expect(person.messages()).to_have_count(5)


# --- small screens ------------------------------------------------------------------------------

@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_phone_width_shows_one_pane_at_a_time_without_sideways_scrolling(person):
    page = person.open()
    sid = person.agent_session("a-tag-that-is-rather-long-for-a-phone-screen-" + "z" * 80)
    person.agent_says(sid, "w" * 500, {"deeply": {"nested": ["json", "value", "x" * 300]}},
                      output("stdout", "o" * 300), output("stderr", "e" * 300))
    no_overflow = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    expect(page.locator("#account")).to_have_text("Account: default")
    assert page.evaluate(no_overflow)

    page.locator(".session-item").first.click()
    expect(person.messages()).to_have_count(3)
    expect(page.locator(".session-list-pane")).to_be_hidden()
    expect(page.get_by_label("Message to the agent")).to_be_visible()
    assert page.evaluate(no_overflow)
    page.get_by_role("button", name="Rename…", exact=True).click()
    assert page.evaluate(no_overflow)
    page.keyboard.press("Escape")

    page.get_by_role("button", name="← Sessions", exact=True).click()
    expect(page.locator(".session-list-pane")).to_be_visible()
    expect(page.locator("#session-view")).to_be_hidden()
    expect(page.locator(".session-item").first).to_be_focused()


# --- whose account ------------------------------------------------------------------------------

def test_the_top_bar_names_the_account_and_a_link_for_another_account_asks_first(person):
    page = person.open()
    account = page.locator("#account")
    expect(account).to_have_text("Account: default")
    mine = person.server.token
    person.agent_session("my-session")
    expect(person.session_button("my-session")).to_be_visible()

    theirs = person.server.new_token("mallory")
    page.goto("about:blank")  # a new visit through the link (not only a new fragment in the open page)
    page.goto(f"{person.server.url}/#token={theirs}")
    dialog = person.dialog("Switch account?")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#switch-linked")).to_have_text("mallory")
    expect(dialog.locator("#switch-current")).to_have_text("default")
    expect(dialog.get_by_role("button", name="Keep my account")).to_be_focused()
    assert "token" not in page.url  # out of the address bar before anything else
    page.keyboard.press("Escape")  # the safe answer is the default one
    expect(dialog).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(account).to_have_text("Account: default")
    expect(person.session_button("my-session")).to_be_visible()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == mine

    # The same link in the open page (only the fragment changes), answered "switch" this time.
    page.evaluate("token => { location.hash = 'token=' + token; }", theirs)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Switch account").click()
    expect(account).to_have_text("Account: mallory")
    expect(page.locator("#sessions-empty")).to_be_visible()
    expect(person.session_button("my-session")).to_have_count(0)
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == theirs
    assert "token" not in page.url


def test_a_link_for_the_same_account_or_a_refused_one_needs_no_question(person):
    person.allow(r"\b401\b")  # the link's refused token, asked about before it is used
    page = person.open()
    another_of_mine = person.server.new_token("default")
    page.goto(f"{person.server.url}/#token={another_of_mine}")
    # Both tokens are looked up first: the switch lands a moment later, without a question.
    page.wait_for_function("([key, token]) => localStorage.getItem(key) === token", arg=[TOKEN_KEY, another_of_mine])
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(page.locator("#account")).to_have_text("Account: default")
    expect(person.dialog("Switch account?")).to_be_hidden()

    page.goto(f"{person.server.url}/#token=sb_not-a-real-token")
    expect(page.locator("#announcer")).to_contain_text("not accepted")
    expect(page.locator("#connection")).to_have_text("Connected")
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == another_of_mine


# --- text that tries to look like something else ------------------------------------------------

SPOOF = "invoice\u202efdp.exe"


def test_direction_controls_are_shown_not_obeyed_in_titles_tags_and_messages(person):
    page = person.open()
    sid = person.agent_session(SPOOF)
    item = person.session_button("invoice")
    expect(item).to_be_visible()
    shown = "invoice⟨U+202E⟩fdp.exe"
    assert item.locator(".session-name").inner_text() == shown
    person.api("PATCH", f"/api/sessions/{sid}", json={"title": "\u2067Q3 report\u2069 \u200fsigned"})
    expect(item.locator(".session-name")).to_have_text("⟨U+2067⟩Q3 report⟨U+2069⟩ ⟨U+200F⟩signed")
    expect(item.locator(".session-meta")).to_contain_text(shown)  # the tag, under the title

    person.agent_says(sid, f"please open {SPOOF} now", "\u061cmark\u200e")
    item.click()
    expect(person.messages()).to_have_count(2)
    expect(page.locator("#session-subtitle")).to_contain_text(shown)
    expect(person.messages().nth(0).locator(".content")).to_have_text(f"please open {shown} now")
    expect(person.messages().nth(1).locator(".content")).to_have_text("⟨U+061C⟩mark⟨U+200E⟩")
    # Nothing on the page still holds a control that could reorder what is drawn.
    controls = r"/[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/"
    assert page.evaluate(f"{controls}.test(document.body.innerText)") is False
    marker = person.messages().nth(0).locator(".bidi-control")
    expect(marker).to_have_attribute("title", re.compile("U\\+202E"))
    # Each piece of user text is its own direction island.
    styles = page.evaluate("""() => [document.querySelector('.session-name'), document.querySelector('#session-title'),
        document.querySelector('.message .content')].map(e => [e.dir, getComputedStyle(e).unicodeBidi])""")
    assert styles == [["auto", "isolate"], ["auto", "isolate"], ["auto", "plaintext"]]


def test_right_to_left_text_stays_inside_its_own_piece(person):
    person.open()
    person.agent_session("שלום עולם")
    item = person.session_button("שלום")
    expect(item).to_be_visible()
    # The tag is isolated: the Latin words after it keep their left-to-right order and place.
    meta = item.locator(".session-name")
    assert meta.evaluate("e => e.matches(':dir(rtl)')") is True
    expect(item.locator(".session-meta")).to_contain_text("active · updated")


# --- command output ------------------------------------------------------------------------------

def output(stream, text):
    return {"type": "output", "stream": stream, "text": text}


def progress(stream, text):
    """The state so far of a line still being redrawn, as client.py run sends it."""
    return {**output(stream, text), "progress": True}


def test_command_output_reads_like_a_terminal_one_block_per_run(person):
    page = person.open()
    sid = person.agent_session("wrapped")
    person.agent_says(sid, output("stdout", "compiling 1/2\n"), output("stdout", "compiling 2/2\n"),
                      output("stderr", "warning: unused variable"))
    person.open_session("wrapped")
    runs = page.locator("#message-list > li.run")
    expect(runs).to_have_count(1)
    run = runs.first
    expect(run.locator(".line")).to_have_count(3)
    expect(run.locator(".role")).to_have_text("Output")
    expect(run.locator(".seq")).to_have_text("#1–3 · 3 lines")
    assert run.locator(".line").all_inner_texts()[:2] == ["compiling 1/2", "compiling 2/2"]
    stderr = run.locator(".line.stderr")
    expect(stderr).to_have_count(1)
    # Screen readers hear which stream a line came from; eyes see a colour.
    expect(stderr).to_have_text("stderr: warning: unused variable")
    expect(stderr.locator(".visually-hidden")).to_have_text("stderr: ")
    look = run.locator(".line").evaluate_all(
        "lines => lines.map(l => [getComputedStyle(l).fontFamily, getComputedStyle(l).color])")
    assert all("mono" in family.lower() for family, _ in look), look
    assert look[0][1] == look[1][1] != look[2][1]

    # Live lines join the block; a person's message ends it, and the next output starts another.
    person.agent_says(sid, output("stdout", "tests: 12 passed"))
    expect(run.locator(".line")).to_have_count(4)
    expect(person.messages()).to_have_count(1)
    page.get_by_label("Message to the agent").fill("ship it")
    page.get_by_label("Message to the agent").press("Enter")
    expect(person.messages()).to_have_count(2)
    person.agent_says(sid, output("stdout", "deploying"), output("stdout", "done"))
    expect(person.messages()).to_have_count(3)
    expect(runs).to_have_count(2)
    expect(runs.nth(1).locator(".line")).to_have_count(2)
    # Something that only looks like output (a person's JSON text, or another shape) stays a card.
    person.agent_says(sid, {"type": "output", "stream": "elsewhere", "text": "x"})
    expect(person.messages()).to_have_count(4)
    expect(person.messages().last).to_have_class(re.compile(r"\bkind-text\b"))


def test_output_shows_ansi_colours_and_progress_as_a_terminal_does(person):
    page = person.open()
    sid = person.agent_session("coloured")
    esc = "\x1b"
    person.agent_says(
        sid,
        output("stdout", f"{esc}[32mPASSED{esc}[0m test_a"),
        output("stdout", f"{esc}[1;31mFAILED{esc}[22m test_b{esc}[39m done"),
        output("stdout", "10%\r50%\r" + f"{esc}[2K\r100% {esc}]0;window title{esc}\\ok"),
        output("stdout", f"{esc}[38;5;208morange{esc}[0m {esc}[48;2;10;20;30mdeep{esc}[0m {esc}[7minverse{esc}[27m"),
        output("stderr", f"{esc}[33mwarning{esc}[0m: <b>not markup</b>{esc}[K{esc}"),
    )
    person.open_session("coloured")
    lines = page.locator("#message-list > li.run .line")
    expect(lines).to_have_count(5)
    assert lines.all_text_contents() == ["PASSED test_a", "FAILED test_b done", "100% ok", "orange deep inverse",
                                       "stderr: warning: <b>not markup</b>"]
    styles = lines.evaluate_all("""lines => lines.map(line => [...line.querySelectorAll(':scope > span:not(.visually-hidden)')]
        .map(span => [span.textContent, getComputedStyle(span).color, getComputedStyle(span).backgroundColor,
                      getComputedStyle(span).fontWeight]))""")
    plain = lines.first.evaluate("l => getComputedStyle(l).color")
    transparent = "rgba(0, 0, 0, 0)"
    assert styles[0] == [["PASSED", "rgb(126, 231, 135)", transparent, "400"]]  # green, then plain text
    assert styles[1] == [["FAILED", "rgb(255, 123, 114)", transparent, "700"],  # bold red
                         [" test_b", "rgb(255, 123, 114)", transparent, "400"]]  # 22: not bold; 39: default
    assert styles[2] == []  # the progress bar's last state, the window title dropped
    assert styles[3] == [["orange", "rgb(255, 135, 0)", transparent, "400"],  # 256 colours
                         ["deep", plain, "rgb(10, 20, 30)", "400"],  # 24-bit background
                         ["inverse", "rgb(22, 25, 29)", "rgb(227, 230, 234)", "400"]]  # the terminal's colours swapped
    assert styles[4] == [["warning", "rgb(227, 179, 65)", transparent, "400"]]
    assert page.locator("#message-list b").count() == 0


def test_a_line_still_being_redrawn_shows_its_latest_state_in_place(person):
    """client.py run sends the state of a progress bar as it goes (`progress: true`): each state takes
    the place of the one before, on its own stream only, and the finished line takes the place of the
    last; live and when the session is opened again."""
    page = person.open()
    sid = person.agent_session("download")
    person.open_session("download")
    lines = page.locator("#message-list > li.run .line")
    person.agent_says(sid, output("stdout", "fetching"), progress("stderr", "10%"))
    expect(lines.filter(visible=True)).to_have_text(["fetching", "stderr: 10%"])
    person.agent_says(sid, progress("stderr", "60%"), output("stdout", "still fetching"))
    expect(lines.filter(visible=True)).to_have_text(["fetching", "stderr: 60%", "still fetching"])
    header = page.locator("#message-list > li.run .seq")
    expect(header).to_have_text("#1–4 · 2 lines")  # a line's states are not lines of their own
    # The whole line holds every state (over 3,000 characters): the last one shows, whole and still cyan.
    whole = "\x1b[36m" + "".join(f"\r{i:3}% {'#' * (i // 5)}" for i in range(101)) * 2 + "\r"
    assert len(whole) > 3000
    person.agent_says(sid, output("stderr", whole))
    shown = ["fetching", "still fetching", "stderr: 100% ####################"]
    expect(lines.filter(visible=True)).to_have_text(shown)
    assert lines.last.locator("span.ansi-fg-6").text_content() == "100% ####################"
    expect(lines.last.locator(".more-line")).to_have_count(0)
    expect(lines).to_have_count(5)
    expect(header).to_have_text("#1–5 · 3 lines")
    page.reload()
    person.open_session("download")
    expect(lines).to_have_count(5)
    expect(lines.filter(visible=True)).to_have_text(shown)
    expect(header).to_have_text("#1–5 · 3 lines")


def test_output_runs_join_across_pages_loaded_on_scroll(person):
    page = person.open()
    sid = person.agent_session("long-build")
    for start in range(1, 121, 60):
        person.agent_says(sid, *[output("stdout" if n % 10 else "stderr", f"line {n}") for n in range(start, start + 60)])
    person.open_session("long-build")
    run = page.locator("#message-list > li.run")
    expect(run.locator(".line")).to_have_count(50)
    for expected in (100, 120):
        page.locator("#message-scroller").evaluate("s => s.scrollTop = 0")
        expect(run.locator(".line")).to_have_count(expected)
    expect(person.messages()).to_have_count(1)
    assert run.locator(".line").evaluate_all("ls => ls.map(l => Number(l.dataset.seq))") == list(range(1, 121))
    expect(run.locator(".seq")).to_have_text("#1–120 · 120 lines")
    expect(run.locator(".line.stderr")).to_have_count(12)


def test_a_huge_message_holds_only_its_start_until_shown(person):
    person.open()
    sid = person.agent_session("big")
    huge = "\n".join(f"row {n} " + "x" * 90 for n in range(10_000))  # just under 1 MiB, the content limit
    person.agent_says(sid, huge)
    person.open_session("big")
    content = person.messages().first.locator(".content")
    assert len(content.text_content()) <= 1500
    toggle = person.messages().first.locator("button.expand")
    expect(toggle).to_have_text(re.compile(r"^Show all \(10,000 lines, "))
    toggle.click()
    expect(toggle).to_have_text("Show less")
    assert content.text_content() == huge
    toggle.click()
    assert len(content.text_content()) <= 1500


# --- a long list ---------------------------------------------------------------------------------

def test_a_long_list_is_drawn_a_page_at_a_time_and_an_update_touches_one_item(person):
    ids = [person.agent_session(f"s-{n:03}") for n in range(230)]
    page = person.open()
    expect(page.locator("#session-count")).to_have_text("(100+)")
    items = page.locator(".session-item")
    expect(items).to_have_count(100)
    more = page.locator("#sessions-more")
    expect(more).to_have_text("Show more")
    expect(items.first).to_contain_text("s-229")

    # The oldest session (not drawn) gets a message: it comes to the top, and nothing else is redrawn.
    page.evaluate("""() => { window.touched = new Set();
        new MutationObserver(records => records.forEach(r => {
            const item = (r.target.nodeType === 1 ? r.target : r.target.parentElement).closest('li') ||
                         [...r.addedNodes, ...r.removedNodes].find(n => n.nodeName === 'LI');
            if (item) window.touched.add(item.querySelector('.session-name').textContent);
        })).observe(document.getElementById('session-list'), {subtree: true, childList: true, characterData: true, attributes: true}); }""")
    person.agent_says(ids[0], "wake up")
    expect(items.first).to_contain_text("s-000")
    expect(items).to_have_count(101)
    touched = set(page.evaluate("[...window.touched]"))
    assert touched == {"s-000"}, touched  # fetched alone and drawn at the top: nothing else is redrawn

    more.dispatch_event("click")  # by hand (a click without the scrolling that fetches pages by itself)
    expect(page.locator(".session-item").nth(101)).to_be_focused()
    expect(page.locator(".session-item").nth(101)).to_contain_text("s-129")  # the walk does not list s-000 again
    page.locator("#session-list-pane").evaluate("p => p.scrollTop = p.scrollHeight")
    expect(items).to_have_count(230)
    expect(more).to_be_hidden()
    expect(page.locator("#session-count")).to_have_text("(230)")
    assert len(set(items.evaluate_all("els => els.map(e => e.dataset.sessionId)"))) == 230


def test_delete_all_as_one_update_empties_the_list_and_closes_the_open_session(person):
    """The server sends one `delete-all` update for a bulk delete (not one per session): the frames
    on their way into the page are counted, and the page acts on that one update."""
    seen = []

    def relay(ws):
        server = ws.connect_to_server()

        def to_page(message):
            frame = json.loads(message)
            if frame["event"] == "update":
                seen.append(frame["data"]["body"]["t"])
            ws.send(message)
        server.on_message(to_page)
        ws.on_message(lambda message: server.send(message))

    person.page.route_web_socket(re.compile(r"/v1/updates$"), relay)
    page = person.open()
    for tag in ("one", "two", "three"):
        person.agent_session(tag)
    expect(page.locator(".session-item")).to_have_count(3)
    person.session_button("two").click()
    expect(page.locator("#session-title")).to_have_text("two")

    assert person.api("DELETE", "/api/sessions").json() == {"deleted": 3}  # from elsewhere
    expect(page.locator(".session-item")).to_have_count(0)
    expect(page.locator("#sessions-empty")).to_be_visible()
    expect(page.locator("#session-view")).to_be_hidden()
    expect(page.locator("#announcer")).to_have_text("Every session was deleted.")
    assert seen.count("delete-all") == 1 and "delete-session" not in seen
    person.agent_session("after")  # later updates still apply
    expect(page.locator(".session-item")).to_have_count(1)


def test_the_reducer_applies_every_update_kind(person):
    page = person.open()
    result = page.evaluate("""async () => {
        const { SessionStore, applyUpdate } = await import('/static/js/store.js');
        const changes = [];
        const store = new SessionStore(c => changes.push(c.type));
        const s = (id, updatedAt) => ({t: 'new-session', id, updatedAt, createdAt: 1, active: true, tag: id, title: null});
        const out = [];
        const apply = (body, createdAt = 0) => out.push(applyUpdate(store, {body, createdAt}));
        apply(s('a', 10)); apply(s('b', 20)); apply(s('c', 30));
        const order = () => store.first(10).map(x => x.id).join('');
        const steps = [order()];
        apply({t: 'new-message', sid: 'a', message: {id: 'm', seq: 1, updatedAt: 40}}); steps.push(order());
        apply({t: 'update-session', id: 'b', title: 'B'}, 50); steps.push(order());
        apply({t: 'update-session', id: 'c', active: false}, 60); steps.push(order());
        apply({t: 'delete-session', sid: 'a'}); steps.push(order());
        apply({t: 'update-session', id: 'gone', title: 'x'}, 70);
        apply({t: 'delete-all', deleted: 2}); steps.push(order() || 'empty');
        apply(s('d', 80)); steps.push(order());
        apply({t: 'some-future-kind'});
        return {steps, out, size: store.size, b: store.get('b'), changes};
    }""")
    assert result["steps"] == ["cba", "acb", "bac", "bac", "bc", "empty", "d"]
    assert result["out"][3:] == [{"message": {"sid": "a", "message": {"id": "m", "seq": 1, "updatedAt": 40}}},
                                 {"changed": "b"}, {"changed": "c"}, {"deleted": "a"}, {"changed": "gone"},
                                 {"deletedAll": 2}, {"changed": "d"}, None]
    assert result["size"] == 1 and result["b"] is None
    assert result["changes"].count("reset") == 1


def test_the_timeline_keeps_seq_order_and_runs_whatever_order_messages_arrive_in(person):
    page = person.open()
    result = page.evaluate("""async () => {
        const { Timeline } = await import('/static/js/timeline.js');
        const { registerKind } = await import('/static/js/messages.js');
        const { h } = await import('/static/js/dom.js');
        // A new shape of content is one registration away.
        registerKind({ name: 'approval', label: 'Approval', matches: m => m.content?.type === 'approval',
                       render: m => [h('p', { class: 'content' }, `Allow ${m.content.tool}?`)] });
        const list = document.createElement('ol');
        const timeline = new Timeline(list);
        const out = (seq, text) => ({ id: `m${seq}`, seq, role: null, metadata: null, createdAt: seq,
                                      content: { type: 'output', stream: 'stdout', text } });
        const shape = () => [...list.children].map(c => c.classList.contains('run')
            ? 'run:' + [...c.querySelectorAll('.line')].map(l => l.dataset.seq).join(',') : 'card:' + c.dataset.seq);
        const steps = [];
        for (const seq of [5, 6, 2, 3, 8]) timeline.insert(out(seq, `line ${seq}`));
        steps.push(shape());
        timeline.insert({ id: 'm7', seq: 7, role: 'user', content: 'stop', metadata: null, createdAt: 7 });
        steps.push(shape());
        timeline.insert(out(4, 'line 4'));  // fills the gap: the two runs become one
        steps.push(shape());
        timeline.insert({ id: 'm4b', seq: 4.5, role: 'user', content: 'in the middle', metadata: null, createdAt: 4 });
        steps.push(shape());  // a card inside a run splits it
        timeline.insert(out(6, 'again'));  // the same id again: drawn once
        timeline.insert({ id: 'm9', seq: 9, role: null, content: { type: 'approval', tool: 'Bash' }, metadata: null, createdAt: 9 });
        steps.push(shape());
        return { steps, approval: list.lastElementChild.className + ' / ' + list.lastElementChild.textContent,
                 range: list.querySelector('.run .seq').textContent };
    }""")
    assert result["steps"] == [
        ["run:2,3,5,6,8"],  # neighbours join even across seqs not seen yet...
        ["run:2,3,5,6", "card:7", "run:8"],  # ...and a card arriving in between splits them
        ["run:2,3,4,5,6", "card:7", "run:8"],
        ["run:2,3,4", "card:4.5", "run:5,6", "card:7", "run:8"],
        ["run:2,3,4", "card:4.5", "run:5,6", "card:7", "run:8", "card:9"],
    ]
    assert result["approval"].startswith("message role-agent kind-approval / Approval ")
    assert "Allow Bash?" in result["approval"]
    assert result["range"] == "#2–4 · 3 lines"
