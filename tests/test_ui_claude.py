"""The browser UI for Claude Code sessions and notifications, in a real headless Chromium against the
real server, driven as Claude Code drives it: hook bodies (recorded from Claude Code 2.1.328, see
tests/fixtures/) POSTed to /v1/hooks/claude. A PermissionRequest or a held Stop blocks until it is
answered, so those are sent from a thread and their answers checked. Each test also fails on a
JavaScript error, a console error, an unexpected HTTP error or a request to another host (Person).

Two things a headless test cannot have are stood in for by init scripts, and only them: the tab
being hidden (document.visibilityState), and a push service (PushManager.subscribe: Chromium's
needs Google's servers). Notification itself is the browser's own, with the permission granted to
the context and its constructor wrapped to record what the page shows.
"""
import base64
import json
import threading
import time

import pytest
import requests
from playwright.sync_api import expect
from test_claude_hooks import event
from test_ui_browser import ARTIFACTS, Person, browser  # noqa: F401 (browser is a fixture)

from conftest import run_sql
from receiver import Receiver

RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push({title, body: options?.body, tag: options?.tag, object: this});
    }
  };
  window.__asked = 0;
  const ask = Real.requestPermission.bind(Real);
  window.Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
  let hidden = false;
  window.__hide = (value) => { hidden = value; document.dispatchEvent(new Event("visibilitychange")); };
  Object.defineProperty(Document.prototype, "visibilityState", {get: () => hidden ? "hidden" : "visible"});
  Object.defineProperty(Document.prototype, "hidden", {get: () => hidden});
})();
"""

STUB_PUSH_SERVICE = """
(() => {
  window.__subscribed = [];
  let current = null;
  const subscription = (options) => ({
    endpoint: "https://push.example.invalid/send/abc123",
    options,
    toJSON: () => ({endpoint: "https://push.example.invalid/send/abc123", expirationTime: null,
                    keys: {p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                           auth: "tBHItJI5svbpez7KI4CCXg"}}),
    unsubscribe: async () => { current = null; return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    window.__subscribed.push(Array.from(new Uint8Array(options.applicationServerKey)));
    current = subscription(options);
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


class Claude:
    """One Claude Code session as its hooks reach the server."""

    def __init__(self, server, session_id="cc-ui-1"):
        self.server = server
        self.session_id = session_id
        self.count = 0

    def send(self, name, **changes):
        self.count += 1
        body = event(name, session_id=self.session_id, **changes)
        if name in ("PreToolUse", "PostToolUse", "PermissionRequest"):
            body.setdefault("tool_use_id", f"toolu_ui_{self.count}")
        response = requests.post(self.server.url + "/v1/hooks/claude", json=body, headers=self.server.headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def waiting(self, name, **changes):
        """Send a hook that blocks (PermissionRequest, a held Stop) from a thread; join() gives its answer."""
        answer = {}
        thread = threading.Thread(target=lambda: answer.update(self.send(name, **changes)), daemon=True)
        thread.start()

        def join(timeout=15):
            thread.join(timeout)
            assert not thread.is_alive(), f"the {name} hook is still waiting"
            return answer
        return join

    def asks(self, tool="Bash", tool_input=None):
        return self.waiting("PermissionRequest", tool_name=tool,
                            tool_input=tool_input or {"command": "touch made.txt", "description": "Make a file"})

    def start(self, prompt="Please say hi"):
        self.send("UserPromptSubmit", prompt=prompt)


def wait_until(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def sid_of(person):
    [session] = person.sessions()
    return session["id"]


def pending_requests(person):
    return person.api("GET", "/api/requests?status=pending").json()["items"]


@pytest.fixture
def server_env():
    return None


@pytest.fixture
def server(make_server, server_env):
    return make_server(env=server_env)


@pytest.fixture
def viewport():
    return {"width": 1280, "height": 800}


@pytest.fixture
def people(browser, server, viewport, request):  # noqa: F811
    """people(**context_options) -> a Person; all are closed (and checked for problems) at the end."""
    made = []
    failures = request.session.testsfailed

    def make(init_scripts=(), **options):
        person = Person(browser, server, viewport)
        if options or init_scripts:
            person.context.close()
            person.context = browser.new_context(viewport=viewport, **options)
            for script in init_scripts:
                person.context.add_init_script(script)
            person.page = person.context.new_page()
            page = person.page
            page.on("pageerror", lambda error: person.problems.append(f"page error: {error}"))
            page.on("console", lambda m: m.type == "error" and person.problems.append(f"console: {m.text}"))
            page.on("request", person._check_host)
            page.on("response", lambda r: r.status >= 400 and person.problems.append(
                f"HTTP {r.status} {r.request.method} {r.url}"))
        made.append(person)
        return person

    yield make
    try:
        if request.session.testsfailed > failures:
            ARTIFACTS.mkdir(exist_ok=True)
            for i, person in enumerate(made):
                name = request.node.name + f"-{i}.png"
                person.page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    finally:
        for person in made:
            person.context.close()
    for person in made:
        assert person.unexpected() == [], "the page reported problems"


@pytest.fixture
def person(people):
    return people()


def card(page, n=0):
    return page.locator("#requests li.request").nth(n)


# --- approvals ----------------------------------------------------------------------------------

def test_an_approval_card_appears_live_allow_answers_the_hook_and_another_page_sees_the_outcome(people, server):
    ana, other = people(), people()
    claude = Claude(server)
    page = ana.open()
    claude.start()
    ana.open_session("Please say hi")
    second = other.open()
    other.open_session("Please say hi")
    assert page.title() == "Switchboard"
    expect(page.locator("#waiting-button")).to_be_hidden()

    answer = claude.asks()
    request = card(page)
    expect(request).to_contain_text("Claude wants to use Bash")
    expect(page.locator("#announcer")).to_have_text("Claude asks to use Bash.")
    expect(request.locator("pre.command")).to_have_text("touch made.txt")
    expect(request).to_contain_text("Make a file")
    expect(card(second)).to_contain_text("touch made.txt")
    # the waiting count: top bar, tab title, the session in the list
    expect(page.locator("#waiting-button")).to_have_text("1 waiting for you")
    expect(page).to_have_title("(1) Switchboard")
    expect(ana.session_button("Please say hi").locator(".waiting-marker")).to_have_text("1 waiting for you")
    expect(second).to_have_title("(1) Switchboard")

    request.get_by_role("button", name="Allow").click()
    assert answer() == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}
    expect(card(page).locator(".outcome")).to_contain_text("Allowed")
    expect(card(second).locator(".outcome")).to_contain_text("Allowed")  # live, from update-request
    expect(card(second).get_by_role("button", name="Allow")).to_have_count(0)
    for tab in (page, second):
        expect(tab).to_have_title("Switchboard")
        expect(tab.locator("#waiting-button")).to_be_hidden()
    expect(ana.session_button("Please say hi").locator(".waiting-marker")).to_be_hidden()
    [stored] = ana.api("GET", f"/api/sessions/{sid_of(ana)}/requests").json()["items"]
    assert stored["status"] == "allowed"


def test_deny_with_a_reason_reaches_claude(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start()
    person.open_session("Please say hi")
    answer = claude.asks(tool_input={"command": "git push --force origin main", "description": "Push"})
    request = card(page)
    request.get_by_label("Reason for denying (optional; Claude reads it)").fill("not on main")
    request.get_by_role("button", name="Deny").click()
    assert answer() == {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                               "decision": {"behavior": "deny", "message": "not on main"}}}
    outcome = card(page).locator(".outcome")
    expect(outcome).to_contain_text("Denied")
    expect(outcome).to_contain_text("Reason: not on main")
    # a denial without a reason: Claude reads the server's default
    answer = claude.asks(tool_input={"command": "rm -rf build", "description": "Clean"})
    pending = page.locator("#requests li.request.pending")
    expect(pending).to_contain_text("rm -rf build")
    pending.get_by_role("button", name="Deny").click()
    assert answer()["hookSpecificOutput"]["decision"] == {"behavior": "deny", "message": "Denied in Switchboard."}
    expect(page.locator("#requests li.request[data-status=denied]")).to_have_count(2)


def test_a_decision_that_comes_too_late_shows_what_really_happened(people, server):
    """A page that missed the update (its websocket frames held back) decides after someone else: the
    server's 409 says the request was allowed, and the card shows that, not the page's own Deny."""
    claude = Claude(server)
    slow = people()
    page = slow.page
    held = []

    def route(ws):
        upstream = ws.connect_to_server()
        upstream.on_message(lambda m: held.append(m) if '"update-request"' in str(m) else ws.send(m))
        ws.on_message(lambda m: upstream.send(m))
    page.route_web_socket("**/v1/updates", route)
    slow.open()
    claude.start()
    slow.open_session("Please say hi")
    answer = claude.asks()
    expect(card(page)).to_contain_text("touch made.txt")
    rid = pending_requests(slow)[0]["id"]
    decided = slow.api("POST", f"/api/sessions/{sid_of(slow)}/requests/{rid}/decision", json={"decision": "allow"})
    assert decided.status_code == 200
    assert answer()["hookSpecificOutput"]["decision"] == {"behavior": "allow"}
    slow.allow(r"HTTP 409 POST .*/decision$")
    slow.allow(r"console: Failed to load resource: the server responded with a status of 409")
    card(page).get_by_role("button", name="Deny").click()
    expect(card(page).locator(".outcome")).to_contain_text("Allowed")
    expect(page.locator("#announcer")).to_have_text("This request was already allowed.")
    expect(page).to_have_title("Switchboard")
    assert held, "the update-request frame was held back"


def test_a_decided_request_never_goes_back_to_pending(person):
    """The session's request list (HTTP) can answer with a request still pending after the update
    saying it was decided has been applied: the store keeps the outcome (the reducer, in the page)."""
    page = person.open()
    assert page.evaluate("""async () => {
      const { SessionStore, fromApi } = await import("/static/js/store.js");
      const store = new SessionStore();
      store.upsert(fromApi({id: "s", title: "t", created_at: "2026-12-01T10:00:00Z", updated_at: "2026-12-01T10:00:00Z"}));
      const seen = [];
      for (const status of ["pending", "allowed", "pending"]) {
        store.setRequest({id: "r", sid: "s", tool: "Bash", input: {}, status, createdAt: 1});
        seen.push([store.requests.get("r").status, store.waiting, store.waitingFor("s")]);
      }
      return seen;
    }""") == [["pending", 1, 1], ["allowed", 0, 0], ["allowed", 0, 0]]


def test_write_and_edit_requests_show_the_path_the_content_and_old_and_new(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start()
    person.open_session("Please say hi")
    write = claude.asks("Write", {"file_path": "/home/ana/src/app/notes.md", "content": "# Notes\nfirst line\n"})
    expect(card(page)).to_contain_text("Claude wants to use Write")
    expect(card(page).locator(".input-path")).to_have_text("File /home/ana/src/app/notes.md")
    expect(card(page).locator("pre.tool-input")).to_have_text("# Notes\nfirst line\n")
    edit = claude.asks("Edit", {"file_path": "/home/ana/src/app/app.py", "old_string": "DEBUG = True",
                                "new_string": "DEBUG = False"})
    edit_card = page.locator("#requests li.request", has_text="Claude wants to use Edit")
    expect(edit_card.locator(".input-path")).to_have_text("File /home/ana/src/app/app.py")
    expect(edit_card.locator("pre.old")).to_have_text("DEBUG = True")
    expect(edit_card.locator("pre.new")).to_have_text("DEBUG = False")
    expect(page.locator("#waiting-button")).to_have_text("2 waiting for you")
    expect(page).to_have_title("(2) Switchboard")
    for request in pending_requests(person):
        person.api("POST", f"/api/sessions/{request['session_id']}/requests/{request['id']}/decision",
                   json={"decision": "allow"})
    write(), edit()
    expect(page).to_have_title("Switchboard")


@pytest.mark.parametrize("server_env", [{"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "2"}])
def test_expired_and_cancelled_requests_say_so(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start()
    person.open_session("Please say hi")
    assert claude.asks()() == {}  # nobody decided within 2 s: Claude asks in its terminal
    expect(card(page).locator(".outcome")).to_contain_text("Expired")
    answer = claude.asks(tool_input={"command": "ls", "description": "List"})
    expect(page.locator("#requests li.request.pending")).to_contain_text("ls")
    claude.send("Stop")  # Claude moved on (the person answered in the terminal)
    assert answer() == {}
    expect(page.locator("#requests li.request[data-status=cancelled] .outcome")).to_contain_text("Cancelled")
    expect(page).to_have_title("(1) Switchboard")  # no approval waits any more; the stopped Claude does
    expect(page.locator("#session-subtitle")).to_contain_text("waiting for you")


# --- hold, queued and delivered messages, the running tool -----------------------------------------

def test_the_hold_switch_holds_claude_and_a_message_from_the_page_is_delivered(people, server):
    ana, other = people(), people()
    claude = Claude(server)
    page = ana.open()
    claude.start()
    ana.open_session("Please say hi")
    second = other.open()
    other.open_session("Please say hi")
    switch = page.get_by_role("switch", name="Hold for my next message")
    expect(switch).not_to_be_checked()
    switch.check()
    expect(second.get_by_role("switch", name="Hold for my next message")).to_be_checked()  # update-session {hold}
    sid = sid_of(ana)
    assert ana.api("GET", f"/api/sessions/{sid}").json()["hold"] is True

    stopped = claude.waiting("Stop")  # nothing queued and held: the Stop waits for the person
    expect(page.locator("#session-subtitle")).to_contain_text("waiting for your message")
    expect(page.locator("#waiting-button")).to_have_text("1 waiting for you")
    expect(page).to_have_title("(1) Switchboard")
    expect(ana.session_button("Please say hi").locator(".waiting-marker")).to_be_visible()

    page.get_by_label("Message to the agent").fill("now run the tests")
    page.get_by_role("button", name="Send").click()
    answer = stopped()
    assert answer["decision"] == "block" and "now run the tests" in answer["reason"]
    mine = page.locator("#message-list > li.role-user", has_text="now run the tests")
    expect(mine.locator(".delivery")).to_contain_text("Delivered to Claude")
    expect(second.locator("#message-list > li.role-user", has_text="now run the tests").locator(".delivery")) \
        .to_contain_text("Delivered to Claude")
    expect(page).to_have_title("Switchboard")
    expect(page.locator("#session-subtitle")).not_to_contain_text("waiting for your message")

    switch.uncheck()
    expect(second.get_by_role("switch", name="Hold for my next message")).not_to_be_checked()
    assert ana.api("GET", f"/api/sessions/{sid}").json()["hold"] is False


def test_a_message_is_queued_until_claude_stops(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start()
    person.open_session("Please say hi")
    page.get_by_label("Message to the agent").fill("also update the README")
    page.get_by_role("button", name="Send").click()
    mine = page.locator("#message-list > li.role-user", has_text="also update the README")
    expect(mine.locator(".delivery")).to_have_attribute("data-state", "queued")
    expect(mine.locator(".delivery")).to_contain_text("Queued")
    answer = claude.send("Stop")
    assert "also update the README" in answer["reason"]
    expect(mine.locator(".delivery")).to_have_attribute("data-state", "delivered")
    # after a reload the state comes from the stored message
    page.reload()
    person.open_session("Please say hi")
    expect(page.locator("#message-list > li.role-user", has_text="also update the README").locator(".delivery")) \
        .to_have_attribute("data-state", "delivered")


def test_sessions_of_other_agents_have_no_hold_switch_and_no_delivery_line(person):
    page = person.open()
    sid = person.agent_session("plain-agent")
    person.agent_says(sid, "hello")
    person.open_session("plain-agent")
    expect(page.locator("#message-list > li")).to_have_count(1)
    expect(page.get_by_role("switch", name="Hold for my next message")).to_be_hidden()
    page.get_by_label("Message to the agent").fill("hi")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#message-list > li.role-user")).to_have_count(1)
    expect(page.locator(".delivery")).to_have_count(0)


def test_the_running_tool_line_follows_pre_tool_use(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start()
    person.open_session("Please say hi")
    running = page.locator("#running")
    expect(running).to_be_hidden()
    claude.send("PreToolUse", tool_name="Bash", tool_input={"command": "npm test", "description": "Run tests"},
                tool_use_id="toolu_run")
    expect(running).to_have_text("Running Bash: npm test")
    claude.send("PostToolUse", tool_name="Bash", tool_input={"command": "npm test", "description": "Run tests"},
                tool_use_id="toolu_run")
    expect(running).to_be_hidden()


# --- notifications -----------------------------------------------------------------------------

def notifications_of(page):
    return page.evaluate("window.__notifications.map(({title, body, tag}) => ({title, body, tag}))")


def test_a_hidden_tab_notifies_when_an_agent_needs_the_person_and_a_click_opens_the_session(people, server):
    person = people(init_scripts=[RECORD_NOTIFICATIONS], permissions=["notifications"])
    claude = Claude(server)
    page = person.open()
    claude.start()
    expect(person.session_button("Please say hi")).to_be_visible()
    # off until the person turns it on (in Settings, with a click)
    page.get_by_role("button", name="Settings…").click()
    dialog = person.dialog("Settings")
    switch = dialog.get_by_role("switch", name="Desktop notifications when this tab is hidden and an agent needs you")
    expect(switch).not_to_be_checked()
    switch.check()
    expect(switch).to_be_checked()
    expect(dialog.locator("#notify-status")).to_contain_text("On")
    assert page.evaluate("localStorage.getItem('switchboard.notifications')") == "on"
    dialog.get_by_role("button", name="Close").click()

    first = claude.asks()  # the tab is visible: the page itself shows it, no notification
    expect(page).to_have_title("(1) Switchboard")
    assert notifications_of(page) == []
    page.evaluate("window.__hide(true)")
    second = claude.asks(tool_input={"command": "npm test", "description": "Run the tests"})
    expect(page).to_have_title("(2) Switchboard")
    sid = sid_of(person)
    assert notifications_of(page) == [
        {"title": "Approval requested: Bash", "body": "Please say hi: npm test", "tag": sid}]
    # a click on it brings the page forward on that session
    page.evaluate("window.__notifications[0].object.dispatchEvent(new Event('click'))")
    expect(page.locator("#session-title")).to_have_text("Please say hi")
    expect(page.locator("#requests li.request.pending")).to_have_count(2)
    for request in pending_requests(person):
        person.api("POST", f"/api/sessions/{sid}/requests/{request['id']}/decision", json={"decision": "allow"})
    first(), second()

    # a held session starting to wait for a message is the other thing that needs the person
    person.api("PUT", f"/api/sessions/{sid}/hold", json={"hold": True})
    stopped = claude.waiting("Stop")
    page.wait_for_function("() => window.__notifications.length === 2")  # a function: an expression is eval()ed, which the CSP forbids
    assert notifications_of(page)[1] == {"title": "Waiting for your message", "body": "Please say hi", "tag": sid}
    person.api("PUT", f"/api/sessions/{sid}/hold", json={"hold": False})
    assert stopped() == {}
    # turned off: nothing more, hidden or not
    page.evaluate("localStorage.setItem('switchboard.notifications', 'off')")
    third = claude.asks(tool_input={"command": "make", "description": "Build"})
    # its card is in (the title says too little: the stopped Claude already counted as waiting)
    expect(page.locator("#requests li.request.pending")).to_have_count(1)
    assert len(notifications_of(page)) == 2
    person.api("POST", f"/api/sessions/{sid}/requests/{pending_requests(person)[0]['id']}/decision",
               json={"decision": "allow"})
    third()


def test_permission_is_asked_on_a_click_never_on_load(people, server):
    person = people(init_scripts=[RECORD_NOTIFICATIONS])  # permission not granted: the browser would ask
    claude = Claude(server)
    claude.start()
    page = person.open()
    expect(person.session_button("Please say hi")).to_be_visible()
    assert page.evaluate("window.__asked") == 0
    page.get_by_role("button", name="Settings…").click()
    dialog = person.dialog("Settings")
    dialog.get_by_role("switch", name="Desktop notifications when this tab is hidden and an agent needs you").click()
    page.wait_for_function("() => window.__asked === 1")
    # headless Chromium answers a prompt nobody can see with "denied" or leaves it "default"
    expect(dialog.locator("#notify-status")).to_contain_text("Not turned on")
    expect(dialog.get_by_role("switch", name="Desktop notifications when this tab is hidden and an agent needs you")) \
        .not_to_be_checked()


def test_a_session_link_and_a_push_click_open_the_session(people, server):
    person = people()
    claude = Claude(server)
    claude.start()
    other = Claude(server, "cc-ui-2")
    other.start("Second one")
    sid = {s["title"]: s["id"] for s in person.sessions()}
    page = person.page
    page.goto(f"{server.url}/#token={server.token}&session={sid['Please say hi']}")
    expect(page.locator("#session-title")).to_have_text("Please say hi")
    assert page.url == server.url + "/"
    page.evaluate(f"location.hash = 'session={sid['Second one']}'")
    expect(page.locator("#session-title")).to_have_text("Second one")
    # what the service worker posts when a push notification is clicked
    page.evaluate("""sid => navigator.serviceWorker.dispatchEvent(new MessageEvent("message",
        {data: {type: "open-session", sessionId: sid}}))""", sid["Please say hi"])
    expect(page.locator("#session-title")).to_have_text("Please say hi")


def test_the_waiting_button_opens_the_session_that_waited_longest(person, server):
    page = person.open()
    Claude(server, "cc-a").start("First asks")
    Claude(server, "cc-b").start("Second asks")
    first = Claude(server, "cc-a").asks()
    expect(page).to_have_title("(1) Switchboard")
    second = Claude(server, "cc-b").asks()
    expect(page.locator("#waiting-button")).to_have_text("2 waiting for you")
    page.locator("#waiting-button").click()
    expect(page.locator("#session-title")).to_have_text("First asks")
    card(page).get_by_role("button", name="Allow").click()
    expect(page.locator("#waiting-button")).to_have_text("1 waiting for you")
    page.locator("#waiting-button").click()
    expect(page.locator("#session-title")).to_have_text("Second asks")
    card(page).get_by_role("button", name="Allow").click()
    expect(page.locator("#waiting-button")).to_be_hidden()
    first(), second()


def test_after_a_reconnect_the_count_follows_the_replay_without_notifying_it(people, server):
    """The page's websocket drops; while it is away a request opens and another is decided. Back, the
    replay brings the count in line with the server; replayed updates are not news to notify about
    (the title and the count say it), only what happens while connected is."""
    person = people(init_scripts=[RECORD_NOTIFICATIONS], permissions=["notifications"])
    claude = Claude(server)
    page = person.page
    sockets, cut = [], []

    def route(ws):  # the network between page and server: while cut, every connection is refused
        if cut:
            ws.close()
        else:
            ws.connect_to_server()
            sockets.append(ws)
    page.route_web_socket("**/v1/updates", route)
    person.open()
    page.evaluate("localStorage.setItem('switchboard.notifications', 'on'); window.__hide(true)")
    claude.start()
    first = claude.asks()
    expect(page).to_have_title("(1) Switchboard")
    cut.append(True)
    sockets.pop().close()
    expect(page.locator("#connection")).not_to_have_text("Connected")
    rid = pending_requests(person)[0]["id"]
    person.api("POST", f"/api/sessions/{sid_of(person)}/requests/{rid}/decision", json={"decision": "deny"})
    second = claude.asks(tool_input={"command": "make", "description": "Build"})
    third = claude.asks(tool_input={"command": "make test", "description": "Test"})
    expect(page).to_have_title("(1) Switchboard")  # not connected: the page cannot know yet
    cut.clear()
    expect(page.locator("#connection")).to_have_text("Connected", timeout=30_000)
    expect(page).to_have_title("(2) Switchboard")
    assert [n["body"] for n in notifications_of(page)] == ["Please say hi: touch made.txt"]  # the live one only
    for request in pending_requests(person):
        person.api("POST", f"/api/sessions/{sid_of(person)}/requests/{request['id']}/decision", json={"decision": "allow"})
    first(), second(), third()
    expect(page).to_have_title("Switchboard")


# --- settings: webhooks, push ------------------------------------------------------------------

@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_settings_list_webhooks_with_their_last_run_and_the_session_shows_its_deliveries(person, server, receiver):
    good = person.api("POST", "/api/webhooks", json={"url": receiver.url + "/ok", "events": ["request.created"]})
    assert good.status_code == 201
    receiver.scripts["/bad"] = [500] * 20
    bad = person.api("POST", "/api/webhooks", json={"url": receiver.url + "/bad", "format": "ntfy",
                                                    "events": ["request.created"]})
    assert bad.status_code == 201
    claude = Claude(server)
    page = person.open()
    claude.start()
    answer = claude.asks()
    receiver.wait_for("/ok", 1)
    receiver.wait_for("/bad", 1)
    # The receiver has each request before the server has its answer: the dialog lists what is stored.
    deadline = time.monotonic() + 10
    while not all((w["last_run"] or {}).get("response_status")
                  for w in person.api("GET", "/api/webhooks").json()["items"]):
        assert time.monotonic() < deadline, "the deliveries' answers were not recorded"
        time.sleep(0.05)
    page.get_by_role("button", name="Settings…").click()
    dialog = person.dialog("Settings")
    hooks = dialog.locator("#webhook-list > li")
    expect(hooks).to_have_count(2)
    expect(hooks.nth(0)).to_contain_text(receiver.url + "/ok")
    expect(hooks.nth(0)).to_contain_text("json · request.created")
    expect(hooks.nth(0).locator(".webhook-run")).to_contain_text("last run delivered (HTTP 200) · request.created")
    expect(hooks.nth(1)).to_contain_text("ntfy")
    expect(hooks.nth(1).locator(".webhook-run")).to_contain_text("last run pending (HTTP 500)")

    # add one (its secret is shown once) and remove one
    dialog.get_by_label("Add a webhook: URL").fill(receiver.url + "/new")
    dialog.get_by_label("Format").select_option("slack")
    dialog.get_by_role("button", name="Add webhook").click()
    expect(dialog.locator("#webhook-secret")).to_contain_text("whsec_")
    expect(hooks).to_have_count(3)
    expect(hooks.nth(2)).to_contain_text("slack")
    expect(hooks.nth(2).locator(".webhook-run")).to_have_text("never run")
    hooks.nth(1).get_by_role("button", name="Remove").click()
    expect(hooks).to_have_count(2)
    assert [w["url"] for w in person.api("GET", "/api/webhooks").json()["items"]] == [
        receiver.url + "/ok", receiver.url + "/new"]
    person.allow(r"HTTP 400 POST .*/api/webhooks$")
    person.allow(r"console: Failed to load resource: the server responded with a status of 400")
    dialog.get_by_label("Add a webhook: URL").fill("ftp://example.org/x")
    dialog.get_by_role("button", name="Add webhook").click()
    expect(dialog.locator("#webhook-problem")).to_contain_text("Not added:")
    expect(hooks).to_have_count(2)
    dialog.get_by_role("button", name="Close").click()

    person.open_session("Please say hi")
    page.get_by_text("Deliveries", exact=True).click()
    runs = page.locator("#deliveries-list > li")
    expect(runs).to_have_count(1)  # the removed webhook's runs went with it
    expect(runs.first).to_contain_text("request.created to webhook")
    expect(runs.first).to_contain_text("delivered (1 attempt; last HTTP 200")
    card(page).get_by_role("button", name="Allow").click()
    answer()


def test_push_on_this_device_subscribes_with_the_servers_key_and_unsubscribes(people, server):
    """Up to the subscription: PushManager.subscribe is stubbed (no push service is reachable), the
    service worker registration, the key and the two routes are real."""
    person = people(init_scripts=[STUB_PUSH_SERVICE], permissions=["notifications"])
    page = person.open()
    key = person.api("GET", "/api/push/key").json()["public_key"]
    page.get_by_role("button", name="Settings…").click()
    dialog = person.dialog("Settings")
    switch = dialog.get_by_role("switch", name="Push on this device (even with the page closed)")
    expect(switch).not_to_be_checked()
    with page.expect_response(lambda r: r.url.endswith("/api/push/subscriptions") and r.request.method == "POST") as posted:
        switch.check()
    assert posted.value.status == 201
    assert posted.value.request.post_data_json["endpoint"] == "https://push.example.invalid/send/abc123"
    expect(dialog.locator("#push-status")).to_contain_text("On")
    expected = list(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    assert page.evaluate("window.__subscribed") == [expected]
    assert page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => r.active.scriptURL)") == server.url + "/sw.js"
    assert run_sql(server.db_path, "SELECT endpoint FROM push_subscription") == [("https://push.example.invalid/send/abc123",)]
    dialog.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Settings…").click()
    expect(switch).to_be_checked()  # read back from the browser's subscription
    with page.expect_response(lambda r: r.url.endswith("/api/push/subscriptions") and r.request.method == "DELETE") as deleted:
        switch.uncheck()
    assert deleted.value.status == 204
    assert json.loads(deleted.value.request.post_data) == {"endpoint": "https://push.example.invalid/send/abc123"}
    expect(dialog.locator("#push-status")).to_have_text("Off.")
    assert run_sql(server.db_path, "SELECT count(*) FROM push_subscription") == [(0,)]


# --- a phone -----------------------------------------------------------------------------------

@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_at_390_px_an_approval_card_fits_and_its_buttons_work(person, server):
    claude = Claude(server)
    claude.start()
    answer = claude.asks(tool_input={"command": "npm test -- --reporter=verbose --grep 'a rather long pattern that wraps'",
                                     "description": "Run the tests"})
    wait_until(lambda: pending_requests(person))
    page = person.open()  # what waits is fetched with the list (GET /api/requests?status=pending)
    expect(page.locator("#waiting-button")).to_have_text("1 waiting for you")
    expect(page).to_have_title("(1) Switchboard")
    person.open_session("Please say hi")
    request = card(page)
    expect(request).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = request.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    for name in ("Allow", "Deny"):
        button = request.get_by_role("button", name=name).bounding_box()
        assert button["x"] >= 0 and button["x"] + button["width"] <= 390 and button["height"] >= 40
    request.get_by_role("button", name="Allow").click()
    assert answer()["hookSpecificOutput"]["decision"] == {"behavior": "allow"}
    expect(card(page).locator(".outcome")).to_contain_text("Allowed")
    # the settings dialog keeps its states readable on a phone
    person.api("POST", "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "format": "ntfy"})
    page.get_by_role("button", name="Menu").click()  # a phone's top bar keeps the account's actions there
    page.get_by_role("button", name="Settings…").click()
    dialog = person.dialog("Settings")
    expect(dialog.locator("#notify-status")).to_be_visible()
    expect(dialog.locator("#push-status")).to_be_visible()
    expect(dialog.locator("#webhook-list > li").first).to_contain_text("ntfy · request.created")
    expect(dialog.locator("#webhook-list > li .note").first).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
