"""A Claude Code session that waits for the person: a Stop that delivers nothing (held or not) and a
Notification that asks for them (a permission dialog, an idle prompt, a question) set
`awaiting_message`, which raises one `session.waiting` event per waiting episode, however many hooks
repeat it; Claude working again (a prompt, a tool, the session's end) closes the episode. Driven with
Claude Code's recorded hook bodies against the real server, delivered to a webhook receiver on
127.0.0.1 and checked with the Standard Webhooks reference library; the page's count in Chromium."""
import json
import threading

import pytest
import requests
import test_ui_browser
from playwright.sync_api import expect
from test_claude_hooks import event, post_hook, waiting_hook
from test_webhooks import add_live, verify

from conftest import run_sql
from receiver import Receiver

browser = test_ui_browser.browser  # the browser tests' Chromium, shared as it is


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def server_env():
    return {"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "1", "SWITCHBOARD_HOLD_WAIT_SECONDS": "1"}


@pytest.fixture
def server(make_server, server_env):
    return make_server(env=server_env)


def waiting_runs(server):
    """(session id, payload) of every session.waiting run queued so far (queued in the hook's write)."""
    return [(sid, json.loads(payload)) for sid, payload in run_sql(
        server.db_path, "SELECT session_id, payload FROM webhook_run WHERE event = 'session.waiting' ORDER BY id")]


def awaiting(server, session_id="s-1"):
    [(awaiting,)] = run_sql(server.db_path, "SELECT awaiting_message FROM session WHERE tag = ?", ("claude:" + session_id,))
    return awaiting


def hook(server, name, **fields):
    return post_hook(server, event(name, session_id="s-1", **fields))


def notification(server, kind):
    return hook(server, "Notification", message="Claude Code", notification_type=kind)


def test_a_finished_turn_and_a_notification_raise_one_waiting_event_per_episode(server, receiver):
    webhook = add_live(server, receiver.url + "/hook", events=["session.waiting"])
    hook(server, "UserPromptSubmit")
    assert awaiting(server) == 0 and waiting_runs(server) == []

    # Episode 1: the turn ends with nothing queued; the idle prompt and a repeated Stop say it again.
    assert hook(server, "Stop") == {}
    assert awaiting(server) == 1
    notification(server, "idle_prompt")
    hook(server, "Stop")
    assert len(waiting_runs(server)) == 1

    # Claude works again: the episode is over, without an event.
    hook(server, "UserPromptSubmit", prompt="go on")
    assert awaiting(server) == 0
    hook(server, "PreToolUse")
    notification(server, "auth_success")  # informs, asks for nothing
    assert awaiting(server) == 0 and len(waiting_runs(server)) == 1

    # Episode 2: a permission dialog in the terminal (no request pending here).
    notification(server, "permission_prompt")
    assert awaiting(server) == 1 and len(waiting_runs(server)) == 2
    hook(server, "PostToolUse")
    assert awaiting(server) == 0

    # A Stop that delivers a queued message: Claude goes on, nothing waits.
    [session] = requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
    requests.post(f"{server.url}/api/sessions/{session['id']}/messages", json={"role": "user", "content": "more"},
                  headers=server.headers)
    assert hook(server, "Stop")["decision"] == "block"
    assert awaiting(server) == 0 and len(waiting_runs(server)) == 2

    # Episode 3: a Notification from a Claude Code that names no type; the end closes it.
    hook(server, "Notification", message="Claude is waiting for your input")
    hook(server, "SessionEnd")
    assert awaiting(server) == 0

    runs = waiting_runs(server)
    assert [sid for sid, _ in runs] == [session["id"]] * 3
    delivered = receiver.wait_for("/hook", 3)
    for request in delivered:
        body = verify(webhook["secret"], request)
        assert body["type"] == "session.waiting" and body["data"]["waiting"] is True
        assert body["data"]["session"]["id"] == session["id"]
    assert len({request["headers"]["webhook-id"] for request in delivered}) == 3


def test_a_notification_about_a_pending_approval_raises_no_second_event(server):
    add_live(server, "http://127.0.0.1:9/hook", events=["request.created", "session.waiting"])
    hook(server, "UserPromptSubmit")
    thread, answers, pending = waiting_hook(server, event("PermissionRequest", session_id="s-1"))
    notification(server, "permission_prompt")  # the same dialog: request.created already told the person
    assert awaiting(server) == 0 and waiting_runs(server) == []
    thread.join(5)
    assert answers == [{}]  # nobody decided within a second: Claude asks in its terminal...
    notification(server, "permission_prompt")  # ...and says so: now only the person can answer
    assert awaiting(server) == 1 and len(waiting_runs(server)) == 1


def test_a_held_stop_that_times_out_keeps_waiting_and_one_that_delivers_ends_the_episode(server):
    add_live(server, "http://127.0.0.1:9/hook", events=["session.waiting"])
    hook(server, "UserPromptSubmit")
    [session] = requests.get(server.url + "/api/sessions", headers=server.headers).json()["items"]
    requests.put(f"{server.url}/api/sessions/{session['id']}/hold", json={"hold": True}, headers=server.headers)
    assert hook(server, "Stop") == {}  # held for a second, nothing came: Claude stops and still waits
    assert awaiting(server) == 1 and len(waiting_runs(server)) == 1

    answers = []
    stop = threading.Thread(target=lambda: answers.append(hook(server, "Stop", stop_hook_active=True)))
    stop.start()
    requests.post(f"{server.url}/api/sessions/{session['id']}/messages", json={"role": "user", "content": "next"},
                  headers=server.headers)
    stop.join(5)
    assert answers and answers[0]["decision"] == "block"
    assert awaiting(server) == 0 and len(waiting_runs(server)) == 1


def test_concurrent_hooks_of_one_episode_raise_one_event(server):
    add_live(server, "http://127.0.0.1:9/hook", events=["session.waiting"])
    hook(server, "UserPromptSubmit")
    barrier = threading.Barrier(12)
    failures = []

    def ask(i):
        barrier.wait()
        try:
            if i % 2:
                notification(server, "idle_prompt")
            else:
                hook(server, "Stop")
        except Exception as e:  # reported below, with the others
            failures.append(e)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == [] and not any(thread.is_alive() for thread in threads)
    assert awaiting(server) == 1 and len(waiting_runs(server)) == 1


def test_the_page_counts_a_stopped_claude_as_waiting_for_you(browser, server):
    person = test_ui_browser.Person(browser, server, {"width": 1280, "height": 800})
    try:
        page = person.open()
        hook(server, "UserPromptSubmit")
        hook(server, "Stop")
        waiting = page.locator("#waiting-button")
        expect(waiting).to_have_text("1 waiting for you")
        expect(page).to_have_title("(1) Switchboard")
        person.page.locator(".session-item").first.click()
        expect(page.locator("#session-subtitle")).to_contain_text("waiting for you")
        notification(server, "idle_prompt")
        hook(server, "UserPromptSubmit", prompt="again")
        expect(waiting).to_be_hidden()
        expect(page).to_have_title("Switchboard")
        assert person.unexpected() == []
    finally:
        person.context.close()
