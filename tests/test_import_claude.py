"""`python client.py import-claude` and `report-usage` against a real server, on transcripts written
from Claude Code's format (tests/fixtures/claude_projects): one session per transcript, records as
messages, merged and skipped lines, malformed lines named, idempotence, --force, and usage summed
per day and model with each API message counted once."""
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from conftest import ROOT, LiveServer

CLIENT = ROOT / "client.py"
FIXTURES = ROOT / "tests" / "fixtures" / "claude_projects"
PROJECT = "-home-ada-src-app"
SA = "5b1c7a2e-0d3f-4c55-9a1e-2f6b8c9d0e11"  # summary, merged and duplicated lines, sidechains, a subagent, bad bytes, a cut line
SB = "8e2d4f60-1a2b-4c3d-8e9f-a0b1c2d3e4f5"  # resumed: starts with its predecessor's records
SC = "c0ffee00-0000-4000-8000-000000000001"  # bookkeeping only
RUN = 60  # seconds any client.py run may take


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("import") / "live.db").start()
    yield server
    server.stop()


@pytest.fixture
def token(server, request):
    return server.new_token(account=request.node.name[:60])


@pytest.fixture
def projects(tmp_path):
    path = tmp_path / "projects"
    shutil.copytree(FIXTURES, path)
    return path


def client_py(server, token, *args, stdin=None, env=None):
    return subprocess.run([sys.executable, str(CLIENT), *args, "--url", server.url, "--token", token],
                          input=stdin, capture_output=True, text=True, timeout=RUN, env={**os.environ, **(env or {})})


def api(server, token, method, path, **kwargs):
    r = requests.request(method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def sessions(server, token):
    return {s["tag"]: s for s in api(server, token, "GET", "/api/sessions")["items"]}


def messages(server, token, sid):
    return api(server, token, "GET", f"/api/sessions/{sid}")["messages"]


def expected_usage(session_id, *paths):
    """The sums computed here independently: each message.id once (its last line), this session's
    records only, API errors ("<synthetic>") left out."""
    last = {}
    for path in paths:
        for raw in Path(path).read_bytes().splitlines():
            try:
                record = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            message = record.get("message") or {}
            if (record.get("type") == "assistant" and record.get("sessionId") == session_id
                    and message.get("model") != "<synthetic>"):
                last[message["id"]] = message["usage"]
    sums = defaultdict(int)
    for usage in last.values():
        sums["input_tokens"] += usage["input_tokens"]
        sums["output_tokens"] += usage["output_tokens"]
        sums["cache_creation_tokens"] += usage["cache_creation_input_tokens"]
        sums["cache_read_tokens"] += usage["cache_read_input_tokens"]
    return dict(sums)


def without_cost(usage):
    return {k: v for k, v in usage.items() if k != "cost_usd"}


def test_transcripts_become_sessions_with_their_records_as_messages(server, token, projects):
    run = client_py(server, token, "import-claude", str(projects))
    assert run.returncode == 0, run.stderr
    assert "2 session(s) imported (11 messages added, 0 already there), 0 skipped" in run.stdout
    assert "1 transcript(s) with nothing to import" in run.stdout
    # the cut-off last line is named, and nothing else is malformed (the bad bytes are not)
    assert "1 malformed line(s)" in run.stdout
    assert f"malformed: {projects / PROJECT / (SA + '.jsonl')}:16" in run.stdout
    found = sessions(server, token)
    assert set(found) == {"claude:" + SA, "claude:" + SB}
    a = found["claude:" + SA]
    assert a["title"] == "Fix the flaky IO test" and a["active"] is False
    got = [(m["role"], m["created_at"], m["content"]) for m in messages(server, token, a["id"])]
    assert got == [
        ("user", "2025-06-01T10:00:00.000Z", "Fix the flaky test in tests/test_io.py"),
        # two lines of one API message: one message, blocks in order
        ("assistant", "2025-06-01T10:00:02.000Z", [
            {"type": "text", "text": "Let me look at the test."},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "pytest tests/test_io.py"}}]),
        ("user", "2025-06-01T10:00:05.000Z", [
            {"tool_use_id": "toolu_01", "type": "tool_result", "content": "1 failed, 3 passed", "is_error": False}]),
        ("assistant", "2025-06-01T10:00:09.000Z", [{"type": "text", "text": "API Error: 529 Overloaded"}]),
        # written twice in the file, said once
        ("assistant", "2025-06-02T00:00:05.000Z", [{"type": "text", "text": "Fixed: the test now waits for the file."}]),
        ("system", "2025-06-02T00:00:06.000Z", "<command-name>/cost</command-name>"),
        ("user", "2025-06-02T00:00:07.000Z", "caf\ufffd\ufffd thanks"),
    ]
    # the meta line, the sidechains, the subagent's transcript and the bookkeeping records are not messages
    b = found["claude:" + SB]
    assert b["title"] == "Add a --port flag to main.py"  # the file's last summary
    assert [m["content"] for m in messages(server, token, b["id"])] == [
        "What does main.py do?", [{"type": "text", "text": "It starts the server."}],
        "Add a --port flag", [{"type": "text", "text": "Done: main.py takes --port."}]]


def test_token_sums_equal_the_deduplicated_sums_per_day_and_model(server, token, projects):
    assert client_py(server, token, "import-claude", str(projects)).returncode == 0
    found = sessions(server, token)
    a_files = [projects / PROJECT / f"{SA}.jsonl", projects / PROJECT / SA / "subagents" / "agent-f1e2d3c4.jsonl"]
    assert without_cost(found["claude:" + SA]["usage"]) == expected_usage(SA, *a_files) == {
        "input_tokens": 10 + 20 + 100 + 7, "output_tokens": 40 + 30 + 50 + 3,
        "cache_creation_tokens": 1000, "cache_read_tokens": 1000}
    # the resumed session's copy of its predecessor's records counts for the predecessor, not for it
    assert without_cost(found["claude:" + SB]["usage"]) == expected_usage(SB, projects / PROJECT / f"{SB}.jsonl") == {
        "input_tokens": 40, "output_tokens": 80, "cache_creation_tokens": 2000, "cache_read_tokens": 3000}
    # priced by the server's table: sonnet, haiku 3.5 and opus 4.1
    sonnet = (30 * 3 + 70 * 15 + 1000 * 3.75 + 1000 * 0.30) / 1e6
    haiku = (107 * 0.80 + 53 * 4) / 1e6
    assert found["claude:" + SA]["usage"]["cost_usd"] == pytest.approx(sonnet + haiku, abs=1e-6)
    assert found["claude:" + SB]["usage"]["cost_usd"] == pytest.approx((40 * 15 + 80 * 75 + 2000 * 18.75 + 3000 * 1.5) / 1e6,
                                                                       abs=1e-6)
    days = api(server, token, "GET", "/api/usage", params={"from": "2025-06-01T00:00:00Z", "to": "2025-06-04T00:00:00Z"})
    assert [(d["day"], d["input_tokens"], d["output_tokens"]) for d in days["items"]] == [
        ("2025-06-01", 117, 93), ("2025-06-02", 20, 30), ("2025-06-03", 40, 80)]


def test_a_second_run_adds_nothing(server, token, projects):
    assert client_py(server, token, "import-claude", str(projects)).returncode == 0
    before = {tag: (s, messages(server, token, s["id"])) for tag, s in sessions(server, token).items()}
    again = client_py(server, token, "import-claude", str(projects))
    assert again.returncode == 0, again.stderr
    assert "(0 messages added, 11 already there)" in again.stdout
    after = {tag: (s, messages(server, token, s["id"])) for tag, s in sessions(server, token).items()}
    assert after == before  # messages, usage, titles and times alike


def hook(server, token, body):
    return api(server, token, "POST", "/v1/hooks/claude", json=body)


def test_a_session_the_hooks_filled_is_skipped_unless_forced(server, token, projects):
    hook(server, token, {"session_id": SA, "hook_event_name": "UserPromptSubmit", "prompt": "Fix the flaky test",
                         "cwd": "/home/ada/src/app", "transcript_path": "/x.jsonl"})
    sid = sessions(server, token)["claude:" + SA]["id"]
    run = client_py(server, token, "import-claude", str(projects))
    assert "1 session(s) imported" in run.stdout and "1 skipped (already mirrored live" in run.stdout
    assert len(messages(server, token, sid)) == 1
    # its usage is reported all the same (a report replaces, it never adds twice)
    assert sessions(server, token)["claude:" + SA]["usage"]["input_tokens"] == 137
    forced = client_py(server, token, "import-claude", "--force", str(projects))
    assert "(7 messages added, 4 already there)" in forced.stdout, forced.stdout
    session = sessions(server, token)["claude:" + SA]
    stored = messages(server, token, sid)
    assert stored[0]["content"] == "Fix the flaky test" and len(stored) == 8  # the hook's message stays first
    assert session["title"] == "Fix the flaky test"  # a title it had is kept
    assert session["active"] is True  # a live session is not ended by an import
    assert session["agent"] == "claude-code"
    again = client_py(server, token, "import-claude", "--force", str(projects))
    assert "(0 messages added, 11 already there)" in again.stdout
    assert len(messages(server, token, sid)) == 8


def test_imported_prompts_are_not_queued_for_claude_and_its_hooks_take_the_session_over(server, token, projects):
    assert client_py(server, token, "import-claude", str(projects)).returncode == 0
    assert sessions(server, token)["claude:" + SA]["agent"] is None
    answer = hook(server, token, {"session_id": SA, "hook_event_name": "Stop", "stop_hook_active": False})
    assert answer == {}
    assert all(m["delivered_at"] is not None for m in messages(server, token, sessions(server, token)["claude:" + SA]["id"])
               if m["role"] == "user")
    session = sessions(server, token)["claude:" + SA]
    assert session["agent"] == "claude-code" and "imported" not in json.loads(
        {s["id"]: s for s in api(server, token, "GET", "/v1/sessions")["sessions"]}[session["id"]]["metadata"])


def test_the_default_is_claude_codes_projects_directory(server, token, projects, tmp_path):
    config = tmp_path / "claude-config"
    config.mkdir()
    shutil.copytree(projects, config / "projects")
    run = client_py(server, token, "import-claude", env={"CLAUDE_CONFIG_DIR": str(config)})
    assert run.returncode == 0 and "2 session(s) imported" in run.stdout
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    shutil.copytree(projects, home / ".claude" / "projects")
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CONFIG_DIR"}
    run = subprocess.run([sys.executable, str(CLIENT), "import-claude", "--url", server.url, "--token", token],
                         capture_output=True, text=True, timeout=RUN, env={**env, "HOME": str(home)})
    assert "(0 messages added, 11 already there)" in run.stdout, run.stdout + run.stderr


def test_oversized_content_is_cut_or_wrapped_never_refused(server, token, tmp_path):
    path = tmp_path / "big" / "d00dfeed-0000-4000-8000-000000000002.jsonl"
    path.parent.mkdir()
    sid = path.stem
    long_prompt = "x" * 60_000
    lines = [
        {"type": "user", "sessionId": sid, "uuid": "u1", "timestamp": "2025-07-01T00:00:00Z",
         "message": {"role": "user", "content": long_prompt}},
        {"type": "user", "sessionId": sid, "uuid": "u2", "timestamp": "2025-07-01T00:00:01Z",
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "y" * 3_000_000}]}},
        {"type": "user", "sessionId": sid, "uuid": "u3", "timestamp": "2025-07-01T00:00:02Z",
         "message": {"role": "user", "content": ""}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = client_py(server, token, "import-claude", str(path))
    assert run.returncode == 0 and "(3 messages added" in run.stdout and "1 message(s) over" in run.stdout, run.stdout
    stored = messages(server, token, sessions(server, token)["claude:" + sid]["id"])
    assert stored[0]["content"] == [{"type": "text", "text": long_prompt}]
    assert len(stored[1]["content"][0]["text"]) < 1_000_000 and "cut by import-claude" in stored[1]["content"][0]["text"]
    assert stored[2]["content"] == [{"type": "text", "text": ""}]


def test_report_usage_reads_the_stop_hooks_transcript(server, token, projects):
    transcript = projects / PROJECT / f"{SA}.jsonl"
    stop = {"session_id": SA, "transcript_path": str(transcript), "cwd": "/home/ada/src/app",
            "hook_event_name": "Stop", "stop_hook_active": False}
    run = client_py(server, token, "report-usage", stdin=json.dumps(stop))
    assert run.returncode == 0 and run.stdout == "" and run.stderr == ""
    session = sessions(server, token)["claude:" + SA]
    assert session["usage"]["input_tokens"] == 137
    # the transcript grows; the next Stop replaces the day's report instead of adding to it
    with open(transcript, "a") as f:
        f.write("\n" + json.dumps({"type": "assistant", "sessionId": SA, "uuid": "late", "timestamp": "2025-06-02T01:00:00Z",
                                   "message": {"id": "msg_late", "model": "claude-sonnet-4-20250514", "content": [],
                                               "usage": {"input_tokens": 1000, "output_tokens": 1}}}) + "\n")
    assert client_py(server, token, "report-usage", stdin=json.dumps(stop)).returncode == 0
    assert client_py(server, token, "report-usage", stdin=json.dumps(stop)).returncode == 0
    assert sessions(server, token)["claude:" + SA]["usage"]["input_tokens"] == 1137
    # the import reports the same keys: it agrees instead of doubling
    assert client_py(server, token, "import-claude", str(projects)).returncode == 0
    assert sessions(server, token)["claude:" + SA]["usage"]["input_tokens"] == 1137


@pytest.mark.parametrize("stdin", ["", "not json", "[1]", json.dumps({"session_id": SA}),
                                   json.dumps({"session_id": SA, "transcript_path": "/no/such/file.jsonl"})])
def test_report_usage_never_fails_the_hook(server, token, stdin):
    run = client_py(server, token, "report-usage", stdin=stdin)
    assert run.returncode == 0 and run.stdout == "" and "switchboard report-usage:" in run.stderr
    assert sessions(server, token) == {}


def test_report_usage_with_the_server_down_still_exits_0(token, projects, tmp_path):
    stop = {"session_id": SA, "transcript_path": str(projects / PROJECT / f"{SA}.jsonl"), "hook_event_name": "Stop"}
    down = LiveServer(tmp_path / "down.db")  # never started: nothing listens on its port
    run = client_py(down, token, "report-usage", stdin=json.dumps(stop))
    assert run.returncode == 0 and "switchboard report-usage:" in run.stderr


def test_claude_settings_with_usage_adds_a_command_hook_on_stop_and_session_end(tmp_path):
    def settings(*args):
        out = subprocess.run([sys.executable, str(ROOT / "app.py"), "claude-settings", "--url", "http://sb:8000", *args],
                             capture_output=True, text=True, check=True, env={**os.environ, "SWITCHBOARD_DB": str(tmp_path / "s.db")})
        return json.loads(out.stdout)["hooks"]
    plain = settings()
    assert [h["type"] for h in plain["Stop"][0]["hooks"]] == ["http"]
    hooks = settings("--with-usage", "--client", "/opt/sb/client.py")
    for event in ("Stop", "SessionEnd"):
        http, command = hooks[event][0]["hooks"]
        assert http == plain[event][0]["hooks"][0]
        assert command == {"type": "command", "command": "python3 /opt/sb/client.py report-usage --url http://sb:8000",
                           "timeout": 30}
    assert {event: groups for event, groups in hooks.items() if event not in ("Stop", "SessionEnd")} == {
        event: groups for event, groups in plain.items() if event not in ("Stop", "SessionEnd")}
    default = settings("--with-usage")["Stop"][0]["hooks"][1]["command"]
    assert default == f"python3 {ROOT / 'client.py'} report-usage --url http://sb:8000"


def test_the_library_reports_usage(server, token):
    sys.path.insert(0, str(ROOT))
    try:
        from client import Switchboard
    finally:
        sys.path.remove(str(ROOT))
    session = Switchboard(server.url, token).session("lib-usage")
    answer = session.usage("run-1", {"input": 1_000_000, "output": 0}, model="claude-sonnet-4-5")
    assert answer["success"] is True and answer["cost"] == {"total": 3}
    session.usage("run-2", {"output": 10}, cost=0.5, time=1_750_000_000_000)
    assert sessions(server, token)["lib-usage"]["usage"] == {
        "input_tokens": 1_000_000, "output_tokens": 10, "cache_creation_tokens": 0, "cache_read_tokens": 0,
        "cost_usd": 3.5}


def test_the_import_runs_on_python_3_9(server, token, projects):
    from test_client import oldest_python
    run = subprocess.run([oldest_python(), str(CLIENT), "import-claude", str(projects), "--url", server.url,
                          "--token", token], capture_output=True, text=True, timeout=RUN)
    assert run.returncode == 0 and "2 session(s) imported (11 messages added" in run.stdout, run.stderr
    found = sessions(server, token)
    assert found["claude:" + SA]["usage"]["input_tokens"] == 137
    assert messages(server, token, found["claude:" + SA]["id"])[0]["created_at"] == "2025-06-01T10:00:00.000Z"


def test_a_real_claude_code_transcript_reports_its_usage_at_stop_and_imports(tmp_path):
    """The real Claude Code (tests/test_claude_code.py) against the stand-in model, with the settings
    `claude-settings --with-usage` prints: the command hooks (Stop, SessionEnd) report the usage of the
    transcript Claude Code wrote, and importing that transcript gives the same usage and its records.
    (At Stop alone the transcript lacked the turn's last answer: SessionEnd is what reports it.)"""
    from test_claude_code import Script, claude_binary, finish

    from fake_anthropic import FakeAnthropic, text, tool_use

    binary = claude_binary()
    server = LiveServer(tmp_path / "real.db").start()
    fake = FakeAnthropic(Script([text("Saying hi."), tool_use("Bash", {"command": "echo hi-from-bash",
                                                                        "description": "Say hi"})],
                                [text("Said hi.")]))
    try:
        home, work = tmp_path / "home", tmp_path / "work"
        home.mkdir()
        work.mkdir()
        settings = home / "switchboard.json"
        settings.write_text(subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "claude-settings", "--url", server.url, "--with-usage"],
            capture_output=True, text=True, check=True, cwd=ROOT).stdout)
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": fake.url,
               "ANTHROPIC_API_KEY": "sk-test", "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "DISABLE_AUTOUPDATER": "1", "SWITCHBOARD_TOKEN": server.token}
        finish(subprocess.Popen([binary, "-p", "Please say hi", "--settings", str(settings)], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
        [transcript] = list((home / ".claude" / "projects").rglob("*.jsonl"))
        assert transcript.parent.name == "".join(c if c.isalnum() else "-" for c in str(work))
        expected = expected_usage(transcript.stem, transcript)
        assert expected["input_tokens"] > 0 and expected["output_tokens"] > 0
        live = sessions(server, server.token)["claude:" + transcript.stem]
        assert live["agent"] == "claude-code" and without_cost(live["usage"]) == expected
        # the hooks mirrored it: the import skips its messages and agrees on its usage
        run = client_py(server, server.token, "import-claude", str(home / ".claude" / "projects"))
        assert "0 session(s) imported" in run.stdout and "1 skipped" in run.stdout and "0 malformed" in run.stdout
        assert sessions(server, server.token)["claude:" + transcript.stem]["usage"] == live["usage"]
        # into another account, the transcript itself becomes the session
        other = server.new_token(account="other")
        run = client_py(server, other, "import-claude", str(transcript))
        assert run.returncode == 0 and "1 session(s) imported" in run.stdout and "0 malformed" in run.stdout, run.stdout
        imported = sessions(server, other)["claude:" + transcript.stem]
        assert without_cost(imported["usage"]) == expected
        stored = messages(server, other, imported["id"])
        records = [json.loads(line) for line in transcript.read_text().splitlines()]
        said = [r for r in records if r.get("type") in ("user", "assistant") and not r.get("isMeta")
                and not r.get("isSidechain")]
        assert {m["role"] for m in stored} <= {"user", "assistant", "system"}
        assert stored[0]["role"] == "user" and stored[0]["content"] == "Please say hi"
        blocks = [b for m in stored if m["role"] == "assistant" for b in m["content"]]
        assert {"type": "text", "text": "Said hi."} in blocks
        assert any(b.get("type") == "tool_use" and b["input"]["command"] == "echo hi-from-bash" for b in blocks)
        assert any(isinstance(m["content"], list) and m["content"][0].get("type") == "tool_result" for m in stored)
        assert len(stored) == len({r["message"].get("id") or r["uuid"] if r["type"] == "assistant" else r["uuid"]
                                   for r in said})
    finally:
        fake.close()
        server.stop()
