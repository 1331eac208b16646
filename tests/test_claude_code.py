"""The real Claude Code (`claude -p`, the pinned npm release) driven against `python app.py serve`, its
model replaced by a scripted stand-in for the Messages API (tests/fake_anthropic.py).

Claude Code's hooks are configured with exactly what `python app.py claude-settings` prints. The
binary comes from SWITCHBOARD_CLAUDE_BIN or .ci/node_modules (installed by .ci/run); without it these
tests skip with a loud reason, unless SWITCHBOARD_REQUIRE_CLAUDE=1 (set by .ci/run) makes that a failure.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT, LiveServer, run_sql
from fake_anthropic import FakeAnthropic, said, text, tool_use

CLAUDE_VERSION = "2.1.328"
RUN_SECONDS = 60  # a bound for one `claude -p` run; each takes about a second and a half here


def claude_binary(environ=os.environ):
    path = environ.get("SWITCHBOARD_CLAUDE_BIN") or str(ROOT / ".ci" / "node_modules" / ".bin" / "claude")
    if Path(path).exists():
        return path
    reason = (f"CLAUDE CODE TESTS NOT RUN: {path} is missing (npm install --prefix .ci "
              f"@anthropic-ai/claude-code@{CLAUDE_VERSION}, or set SWITCHBOARD_CLAUDE_BIN). "
              "Nothing was tested against the real Claude Code.")
    if environ.get("SWITCHBOARD_REQUIRE_CLAUDE") == "1":
        pytest.fail(reason + " SWITCHBOARD_REQUIRE_CLAUDE=1 does not allow skipping them.")
    pytest.skip(reason)


def test_a_missing_claude_is_a_loud_skip_locally_and_a_failure_in_ci(tmp_path):
    missing = {"SWITCHBOARD_CLAUDE_BIN": str(tmp_path / "no-claude")}
    with pytest.raises(pytest.skip.Exception, match="CLAUDE CODE TESTS NOT RUN"):
        claude_binary(missing)
    with pytest.raises(pytest.fail.Exception, match="does not allow skipping"):
        claude_binary({**missing, "SWITCHBOARD_REQUIRE_CLAUDE": "1"})
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export .*SWITCHBOARD_REQUIRE_CLAUDE=1", ci, re.M)
    assert f"@anthropic-ai/claude-code@{CLAUDE_VERSION}" in ci


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    claude_binary()
    server = LiveServer(tmp_path_factory.mktemp("claude") / "live.db",
                        env={"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "30", "SWITCHBOARD_HOLD_WAIT_SECONDS": "30"}).start()
    yield server
    server.stop()


class Script:
    """What the stand-in model says: `steps[n]` once the conversation holds n tool results; `after`
    runs (in the stand-in's thread) before each answer, to act "while Claude works"."""

    def __init__(self, *steps, after=None):
        self.steps = steps
        self.after = after

    def __call__(self, body):
        results = sum(1 for m in body.get("messages", []) if isinstance(m.get("content"), list)
                      for block in m["content"] if block.get("type") == "tool_result")
        if self.after:
            self.after(body)
        step = self.steps[min(results, len(self.steps) - 1)]
        return step(body) if callable(step) else step


class Claude:
    """`claude -p` in a temporary HOME and working directory, its hooks pointing at `server`."""

    def __init__(self, binary, server, fake, tmp_path):
        self.binary, self.server, self.fake = binary, server, fake
        self.home, self.work = tmp_path / "home", tmp_path / "work"
        self.home.mkdir(exist_ok=True)
        self.work.mkdir(exist_ok=True)
        settings = subprocess.run([sys.executable, str(ROOT / "app.py"), "claude-settings", "--url", server.url],
                                  capture_output=True, text=True, check=True, cwd=ROOT).stdout
        self.settings = self.home / "switchboard.json"
        self.settings.write_text(settings)
        self.env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "ANTHROPIC_BASE_URL": fake.url,
                    "ANTHROPIC_API_KEY": "sk-test", "DISABLE_TELEMETRY": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
                    "SWITCHBOARD_TOKEN": server.token}

    def start(self, prompt, *args):
        return subprocess.Popen([self.binary, "-p", prompt, "--settings", str(self.settings), *args],
                                cwd=self.work, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def run(self, prompt, *args):
        process = self.start(prompt, *args)
        return finish(process)


def finish(process, timeout=RUN_SECONDS):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"claude did not finish in {timeout}s:\n{out}\n{err}") from None
    assert process.returncode == 0, f"{out}\n{err}"
    return out


@pytest.fixture
def claude(server, tmp_path):
    fakes = []

    def make(script):
        fake = FakeAnthropic(script)
        fakes.append(fake)
        return Claude(claude_binary(), server, fake, tmp_path)
    yield make
    for fake in fakes:
        fake.close()


def api(server, method, path, **kwargs):
    r = requests.request(method, server.url + path, headers=server.headers, timeout=10, **kwargs)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def poll(check, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


def claude_session(server, session_id):
    [found] = [s for s in api(server, "GET", "/api/sessions")["items"] if s["tag"] == f"claude:{session_id}"]
    return found


def newest_claude_session(server):
    """The session a running claude made (the newest Claude session)."""
    sessions = [s for s in api(server, "GET", "/api/sessions")["items"] if s["agent"] == "claude-code"]
    return max(sessions, key=lambda s: s["created_at"])


def test_a_prompt_becomes_a_session_with_its_messages(server, claude):
    say_hi = tool_use("Bash", {"command": "echo hi-from-bash", "description": "Say hi"})
    run = claude(Script([text("Saying hi."), say_hi], [text("Said hi.")]))
    assert "Said hi." in run.run("Please say hi\nand nothing else", "--output-format", "json")
    transcript = next((run.home / ".claude" / "projects").rglob("*.jsonl"))
    session = claude_session(server, transcript.stem)
    assert session["title"] == "Please say hi" and session["agent"] == "claude-code" and not session["active"]
    messages = api(server, "GET", f"/api/sessions/{session['id']}")["messages"]
    assert [m["role"] for m in messages] == ["user", "tool", "assistant", "system"]
    assert messages[0]["content"] == "Please say hi\nand nothing else" and messages[0]["delivered_at"]
    assert messages[1]["content"]["tool"] == "Bash"
    assert messages[1]["content"]["input"]["command"] == "echo hi-from-bash"
    assert messages[1]["content"]["response"]["stdout"] == "hi-from-bash"
    assert messages[2]["content"] == "Said hi."
    assert messages[3]["content"].startswith("Session ended")
    [agent_view] = [s for s in api(server, "GET", "/v1/sessions")["sessions"] if s["id"] == session["id"]]
    metadata = json.loads(agent_view["metadata"])
    assert metadata["agent"] == "claude-code" and metadata["cwd"] == str(run.work)
    assert metadata["transcriptPath"] == str(transcript) and metadata["permissionMode"] == "default"


def test_a_finished_turn_says_once_that_claude_waits_and_the_end_closes_it(server, claude):
    webhook = api(server, "POST", "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["session.waiting"]})
    try:
        run = claude(Script([text("Done.")]))
        run.run("Say done")
        transcript = next((run.home / ".claude" / "projects").rglob("*.jsonl"))
        session = claude_session(server, transcript.stem)
        assert session["awaiting_message"] is False  # Stop opened the waiting episode, SessionEnd closed it
        queued = run_sql(server.db_path, "SELECT event FROM webhook_run WHERE session_id = ?", (session["id"],))
        assert queued == [("session.waiting",)]
    finally:
        api(server, "DELETE", f"/api/webhooks/{webhook['id']}")


def _touch_script(after=None):
    return Script([tool_use("Bash", {"command": "touch made.txt", "description": "Make a file"})],
                  lambda body: [text("Finished: " + said({"messages": body["messages"][-1:]})[:300])], after=after)


def _pending(server, since_ids=()):
    items = api(server, "GET", "/api/requests", params={"status": "pending"})["items"]
    return [r for r in items if r["id"] not in since_ids]


def test_a_tool_call_waits_for_allow_in_the_browser_and_then_runs(server, claude):
    run = claude(_touch_script())
    process = run.start("Make a file")
    try:
        [pending] = poll(lambda: _pending(server), what="pending request")
        assert pending["tool"] == "Bash" and pending["input"]["command"] == "touch made.txt"
        assert pending["suggestions"] and pending["kind"] == "permission"
        time.sleep(0.5)
        assert process.poll() is None and not (run.work / "made.txt").exists()  # Claude waits with us
        decided = api(server, "POST", f"/api/sessions/{pending['session_id']}/requests/{pending['id']}/decision",
                      json={"decision": "allow"})
        assert decided["status"] == "allowed"
        finish(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert (run.work / "made.txt").exists()
    messages = api(server, "GET", f"/api/sessions/{pending['session_id']}")["messages"]
    assert any(m["role"] == "tool" and m["content"]["input"]["command"] == "touch made.txt" for m in messages)


def test_a_denied_tool_call_does_not_run_and_the_reason_reaches_the_model(server, claude):
    run = claude(_touch_script())
    process = run.start("Make a file")
    try:
        [pending] = poll(lambda: _pending(server), what="pending request")
        api(server, "POST", f"/api/sessions/{pending['session_id']}/requests/{pending['id']}/decision",
            json={"decision": "deny", "reason": "Not on Fridays, says Ana"})
        finish(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (run.work / "made.txt").exists()
    assert run.fake.bodies_saying("Not on Fridays, says Ana")
    [request] = api(server, "GET", f"/api/sessions/{pending['session_id']}/requests")["items"]
    assert request["status"] == "denied" and request["reason"] == "Not on Fridays, says Ana"


def test_a_request_is_cancelled_when_claude_code_goes_away(server, claude):
    run = claude(_touch_script())
    process = run.start("Make a file")
    [pending] = poll(lambda: _pending(server), what="pending request")
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    killed = time.monotonic()
    path = f"/api/sessions/{pending['session_id']}/requests"
    poll(lambda: api(server, "GET", path)["items"][0]["status"] == "cancelled", timeout=5, what="cancellation")
    assert time.monotonic() - killed < 3


def test_a_message_sent_while_claude_works_is_delivered_at_stop_and_claude_continues(server, claude):
    sent = {}

    def send_once(body):
        if not sent:
            session = newest_claude_session(server)
            sent["message"] = api(server, "POST", f"/api/sessions/{session['id']}/messages",
                                  json={"role": "user", "content": "Also update the changelog, please"})
            sent["session"] = session
            assert sent["message"]["delivered_at"] is None  # queued: Claude has not seen it yet

    def answer(body):
        if "Also update the changelog" in said({"messages": body["messages"][-1:]}):
            return [text("Changelog updated.")]
        return [text("First task done.")]
    run = claude(Script(answer, after=send_once))
    out = run.run("Fix the bug", "--output-format", "json")
    assert "Changelog updated." in out
    [steered] = run.fake.bodies_saying("Also update the changelog, please")
    assert "from Switchboard" in said({"messages": steered["messages"][-1:]})
    messages = api(server, "GET", f"/api/sessions/{sent['session']['id']}")["messages"]
    [mine] = [m for m in messages if m["id"] == sent["message"]["id"]]
    assert mine["delivered_at"] is not None
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["First task done.", "Changelog updated."]


def test_hold_keeps_claude_waiting_for_the_next_message(server, claude):
    held = {}

    def hold_once(body):
        if not held:
            held["session"] = newest_claude_session(server)
            api(server, "PUT", f"/api/sessions/{held['session']['id']}/hold", json={"hold": True})

    def answer(body):
        last = said({"messages": body["messages"][-1:]})
        return [text("Deployed." if "now deploy" in last else "Built.")]
    run = claude(Script(answer, after=hold_once))
    process = run.start("Build it")
    try:
        sid = poll(lambda: held.get("session"), what="session")["id"]
        poll(lambda: api(server, "GET", f"/api/sessions/{sid}")["awaiting_message"], what="awaiting")
        time.sleep(0.5)
        assert process.poll() is None  # Claude stopped, and waits for us
        api(server, "POST", f"/api/sessions/{sid}/messages", json={"role": "user", "content": "now deploy"})
        poll(lambda: run.fake.bodies_saying("now deploy"), what="steering at the model")
        poll(lambda: api(server, "GET", f"/api/sessions/{sid}")["awaiting_message"], what="awaiting again")
        assert process.poll() is None  # held again after the second turn
        api(server, "PUT", f"/api/sessions/{sid}/hold", json={"hold": False})
        finish(process, timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    session = api(server, "GET", f"/api/sessions/{sid}")
    assert not session["awaiting_message"] and not session["hold"]
    assert [m["content"] for m in session["messages"] if m["role"] == "assistant"] == ["Built.", "Deployed."]


def test_the_system_prompt_reaches_claude_once_per_change(server, claude):
    run = claude(Script(lambda body: [text("ok")]))
    run.run("First")
    session_id = next((run.home / ".claude" / "projects").rglob("*.jsonl")).stem
    sid = claude_session(server, session_id)["id"]
    api(server, "PATCH", f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "Answer in French."})
    run.run("Second", "--resume", session_id)
    run.run("Third", "--resume", session_id)
    api(server, "PATCH", f"/api/sessions/{sid}/system-prompt", json={"system_prompt": "Answer in Dutch."})
    run.run("Fourth", "--resume", session_id)

    def turn(prompt):
        """What the model was sent from the turn's prompt on (hook context follows the prompt)."""
        for body in run.fake.requests:
            for index, message in enumerate(body["messages"]):
                blocks = message["content"] if isinstance(message["content"], list) else [{"text": message["content"]}]
                if message["role"] == "user" and any(block.get("text") == prompt for block in blocks):
                    return said({"messages": body["messages"][index:]})
        raise AssertionError(f"the model never saw {prompt!r}")
    assert "Session instructions from Switchboard" not in turn("First")
    assert "Session instructions from Switchboard:\n\nAnswer in French." in turn("Second")
    assert "Session instructions" not in turn("Third")
    assert "Answer in Dutch." in turn("Fourth") and "French" not in turn("Fourth")
