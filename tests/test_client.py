"""client.py: the standard-library client and `python client.py run -- CMD`, tested as a person uses
them: the file fetched from the server, real commands in real subprocesses, a real server that is
killed, restarted or not started yet. The HTTP retry rules are checked against a stub server that
answers what a real one only answers in trouble (503 with Retry-After, 500, a lost answer)."""
import ast
import glob
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from test_crash import kill_hard

from conftest import ROOT, LiveServer, database, free_port

CLIENT = ROOT / "client.py"
PY = sys.executable
WAIT = 90  # seconds any wrapped run may take before the test fails


def oldest_python():
    """Python 3.9, the oldest client.py supports: pyenv's, else one on PATH."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    path = found[0] if found else shutil.which("python3.9")
    if path and subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"]).returncode == 0:
        return path
    reason = "CLIENT NOT TESTED UNDER PYTHON 3.9: no python3.9 found (pyenv install 3.9)."
    if os.environ.get("SWITCHBOARD_REQUIRE_PYTHON39") == "1":  # set by .ci/run
        pytest.fail(reason + " SWITCHBOARD_REQUIRE_PYTHON39=1 does not allow skipping it.")
    pytest.skip(reason)


def wrap(server, *command, token=None, tag=None, options=(), python=PY, client=CLIENT, env=None, preexec_fn=None):
    args = [python, str(client), "run", "--url", server.url, "--token", token or server.token]
    if tag:
        args += ["--tag", tag]
    return subprocess.Popen([*args, *options, "--", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def finished(proc, timeout=WAIT):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def api(server, method, path, token=None, **kwargs):
    r = requests.request(method, server.url + path, headers={"Authorization": f"Bearer {token or server.token}"},
                         timeout=10, **kwargs)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def session_by_tag(server, tag, token=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in api(server, "GET", "/api/sessions", token)["items"]:
            if session["tag"] == tag:
                return session
        time.sleep(0.1)
    raise AssertionError(f"no session tagged {tag}")


def messages(server, sid, token=None):
    """Every message of the session (agent-contract shape), in seq order."""
    found, after = [], 0
    while True:
        page = api(server, "GET", f"/v3/sessions/{sid}/messages", token, params={"after_seq": after, "limit": 500})
        found += page["messages"]
        if not page["hasMore"]:
            return found
        after = found[-1]["seq"]


def outputs(found, stream="stdout"):
    return [m["content"]["text"] for m in found if m["role"] is None and m["content"]["stream"] == stream]


def exit_message(found):
    [last] = [m for m in found if m["role"] == "system" and (m["metadata"] or {}).get("type") == "exit"]
    assert found[-1] == last
    return last


def printer(count, every=None, pause=0.0, stderr=None, code=0):
    """A Python command printing `line 0` .. `line N-1` (pausing every `every` lines), then exiting."""
    return [PY, "-c", "import sys, time\n"
            f"for i in range({count}):\n"
            f"    print(f'line {{i}}')\n"
            f"    if {every or 0} and i % {every or 1} == 0: sys.stdout.flush(); time.sleep({pause})\n"
            + (f"print({stderr!r}, file=sys.stderr)\n" if stderr else "")
            + f"sys.exit({code})"]


# --- the file itself ------------------------------------------------------------------------------

def test_client_imports_only_the_standard_library():
    tree = ast.parse(CLIENT.read_text())
    names = {alias.name.split(".")[0]
             for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert names and names <= sys.stdlib_module_names, names - sys.stdlib_module_names
    # and it loads with no site-packages at all, under the oldest Python it claims
    for python in (PY, oldest_python()):
        subprocess.run([python, "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); import client"],
                       check=True, cwd="/")


def test_get_client_py_serves_the_file_without_a_token(client):
    r = client.get("/client.py")
    assert r.status_code == 200 and r.mimetype == "text/x-python"
    assert r.data == CLIENT.read_bytes()
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
    again = client.get("/client.py", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_help_explains_the_wrapper_and_the_library():
    top = subprocess.run([PY, str(CLIENT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "run" in top and "Switchboard" in top and "inbox" in top
    run = subprocess.run([PY, str(CLIENT), "run", "--help"], capture_output=True, text=True, check=True).stdout
    for phrase in ("-- CMD", "SWITCHBOARD_URL", "SWITCHBOARD_TOKEN", "--tag", "--title", "stdin", "exit code",
                   "Ctrl-C", "buffer", '"stream"', "HOST:COMMAND:START-TIME:PID"):
        assert phrase in run, phrase


def test_without_a_server_or_token_it_says_so_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    r = subprocess.run([PY, str(CLIENT), "run", "--", "touch", str(marker)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "SWITCHBOARD_URL" in r.stderr and not marker.exists()


# --- the wrapper ----------------------------------------------------------------------------------

def test_the_readme_flow_downloaded_file_url_and_token_from_the_environment(live_server, tmp_path):
    (tmp_path / "client.py").write_bytes(requests.get(live_server.url + "/client.py", timeout=10).content)
    env = {**os.environ, "SWITCHBOARD_URL": live_server.url, "SWITCHBOARD_TOKEN": live_server.token}
    sh = shutil.which("sh")  # by its path: the title names the program without its directory, as the tag does
    r = subprocess.run([PY, "client.py", "run", "--", sh, "-c", "echo hello; echo warning >&2"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0 and r.stdout == "hello\n" and r.stderr == "warning\n"
    [session] = api(live_server, "GET", "/api/sessions")["items"]
    assert sh.startswith("/") and session["title"] == "sh -c 'echo hello; echo warning >&2'"
    host, command, started, pid = session["tag"].split(":")
    assert command == "sh" and started.endswith("Z") and pid.isdigit()
    assert session["active"] is False  # ended
    found = messages(live_server, session["id"])
    assert outputs(found) == ["hello"] and outputs(found, "stderr") == ["warning"]
    assert {m["content"]["type"] for m in found[:-1]} == {"output"}


@pytest.mark.parametrize("python", ["current", "3.9"])
def test_ten_thousand_lines_arrive_complete_in_order_once(live_server, python):
    proc = wrap(live_server, *printer(10_000, stderr="to stderr"), tag="lines",
                python=PY if python == "current" else oldest_python())
    code, out, err = finished(proc)
    assert code == 0, err
    assert out.splitlines() == [f"line {i}" for i in range(10_000)] and err == "to stderr\n"
    found = messages(live_server, session_by_tag(live_server, "lines")["id"])
    assert outputs(found) == [f"line {i}" for i in range(10_000)]
    assert outputs(found, "stderr") == ["to stderr"]
    assert [m["seq"] for m in found] == list(range(1, 10_003))
    assert len({m["localId"] for m in found if m["role"] is None}) == 10_001
    last = exit_message(found)
    assert last["content"] == "Exited with code 0." and last["metadata"]["exitCode"] == 0


def test_a_non_zero_exit_code_is_recorded_and_is_the_wrappers(live_server):
    code, _, _ = finished(wrap(live_server, *printer(3, code=3), tag="fails"))
    assert code == 3
    last = exit_message(messages(live_server, session_by_tag(live_server, "fails")["id"]))
    assert last["content"] == "Exited with code 3." and last["metadata"]["exitCode"] == 3
    assert last["metadata"]["signal"] is None


def _wait_for_line(proc, line):
    """Read the wrapper's echo of the command's stdout until `line` (bounded by the test timeout)."""
    got = []
    while True:
        text = proc.stdout.readline()
        assert text, f"the wrapper's output ended before {line!r}: {got}"
        got.append(text)
        if text.rstrip("\n") == line:
            return got


def test_sigint_reaches_the_command_which_decides_how_to_end(live_server):
    command = [PY, "-c", "import signal, sys, time\n"
               "def stop(*_):\n    print('interrupted', flush=True); sys.exit(42)\n"
               "signal.signal(signal.SIGINT, stop)\nprint('ready', flush=True)\ntime.sleep(60)"]
    proc = wrap(live_server, *command, tag="trap")
    _wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    code, out, _ = finished(proc)
    assert code == 42 and out == "interrupted\n"
    found = messages(live_server, session_by_tag(live_server, "trap")["id"])
    assert outputs(found) == ["ready", "interrupted"] and exit_message(found)["metadata"]["exitCode"] == 42


@pytest.mark.parametrize("ignored", [False, True], ids=["", "started-with-sigint-ignored"])
def test_a_command_killed_by_sigint_is_reported_as_such(live_server, ignored):
    """Also when the wrapper starts with SIGINT ignored (a shell's background job): the command must
    not inherit that."""
    proc = wrap(live_server, "sh", "-c", "echo ready; exec sleep 60", tag="killed",
                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None)
    _wait_for_line(proc, "ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _, _ = finished(proc)
    assert code == 130 and time.monotonic() - started < 30
    last = exit_message(messages(live_server, session_by_tag(live_server, "killed")["id"]))
    assert last["content"] == "Killed by SIGINT (exit code 130)." and last["metadata"]["signal"] == "SIGINT"


def test_what_a_person_sends_reaches_the_commands_stdin_and_nothing_else_does(live_server):
    command = [PY, "-c", "import sys\nprint('waiting', flush=True)\n"
               "for line in sys.stdin:\n    print('got: ' + line.rstrip('\\n'), flush=True)\n"
               "    if line.strip() == 'bye': break"]
    proc = wrap(live_server, *command, tag="echo")
    _wait_for_line(proc, "waiting")
    sid = session_by_tag(live_server, "echo")["id"]
    for text in ("hello there", {"not": "text"}, "bye"):
        api(live_server, "POST", f"/api/sessions/{sid}/messages", json={"role": "user", "content": text})
    code, out, _ = finished(proc)
    assert code == 0
    # The command's own output, also in the session, never comes back to it as input.
    expected = ["got: hello there", 'got: {"not": "text"}', "got: bye"]
    assert out.splitlines() == expected
    assert outputs(messages(live_server, sid)) == ["waiting", *expected]


def test_a_prompt_without_a_newline_shows_and_long_lines_arrive_whole_in_pieces(live_server):
    long_line = "".join(chr(0x41 + i % 26) for i in range(40_000)) + "é"
    command = [PY, "-c", f"import sys\nprint({long_line!r})\nprint('Name? ', end='', flush=True)\n"
               "name = sys.stdin.readline().strip()\nprint('Hello ' + name)"]
    proc = wrap(live_server, *command, tag="prompt")
    sid = session_by_tag(live_server, "prompt")["id"]
    deadline = time.monotonic() + 30
    while "Name? " not in outputs(messages(live_server, sid)):  # sent after 200 ms of quiet, no newline needed
        assert time.monotonic() < deadline, outputs(messages(live_server, sid))
        time.sleep(0.1)
    api(live_server, "POST", f"/api/sessions/{sid}/messages", json={"role": "user", "content": "Ana"})
    code, _, _ = finished(proc)
    assert code == 0
    lines = outputs(messages(live_server, sid))
    assert [len(line) for line in lines[:3]] == [16_384, 16_384, 7_233]  # 16,384 characters a message
    assert "".join(lines[:3]) == long_line
    assert lines[3:] == ["Name? ", "Hello Ana"]


def test_a_progress_bar_shows_its_state_while_it_is_redrawn_and_the_line_arrives_whole(live_server):
    """A bar redrawn every 50 ms for 3 s (never quiet for 200 ms) and one redrawn every 400 ms: their
    states go as they are drawn, marked `progress`, before each line ends; each line still arrives
    whole once it ends."""
    fast = "".join(f"\r{i}%" for i in range(61)) + "\rdone"
    command = [PY, "-c", "import sys, time\n"
               "for i in range(61):\n    sys.stderr.write(f'\\r{i}%'); sys.stderr.flush(); time.sleep(0.05)\n"
               "sys.stderr.write('\\rdone\\n'); sys.stderr.flush()\n"
               "for state in 'ABC':\n    sys.stdout.write('\\r' + state); sys.stdout.flush(); time.sleep(0.4)\n"
               "print()"]
    assert finished(wrap(live_server, *command, tag="bars"))[0] == 0
    found = [m for m in messages(live_server, session_by_tag(live_server, "bars")["id"]) if m["role"] is None]
    states = [m for m in found if m["content"].get("progress") is True]
    lines = [m for m in found if "progress" not in m["content"]]
    assert [(m["content"]["stream"], m["content"]["text"]) for m in lines] == [("stderr", fast), ("stdout", "\rA\rB\rC")]
    fast_states = [m for m in states if m["content"]["stream"] == "stderr"]
    assert fast_states and all(m["seq"] < lines[0]["seq"] for m in fast_states)
    numbers = [int(m["content"]["text"].rstrip("%")) for m in fast_states]  # one state each, e.g. "19%"
    assert numbers == sorted(numbers)
    assert fast_states[0]["createdAt"] <= lines[0]["createdAt"] - 1000  # sent a second or more before it ended
    slow_states = [m["content"]["text"] for m in states if m["content"]["stream"] == "stdout"]
    assert slow_states and "".join(slow_states) in "ABC"  # each after 200 ms of quiet (a busy host may merge two)


def test_lines_of_any_characters_arrive_as_printed_on_both_streams(live_server):
    """Each line is turned into JSON by the wrapper's own template: quotes, backslashes, tabs, control
    characters, non-ASCII and bytes that are not UTF-8 (each a U+FFFD) all arrive as printed."""
    tricky = ['say "hi"', "C:\\path\\to", "a\tb", "bell \x07 esc \x1b[31m", "café 東京 🦊", '{"json": [1]}', "}\"]"]
    command = [PY, "-c", "import sys\n"
               f"for line in {tricky!r}:\n    print(line)\n    print('err ' + line, file=sys.stderr)\n"
               "sys.stdout.flush()\nsys.stdout.buffer.write(b'not utf-8: \\xff\\xfe\\n')"]
    proc = wrap(live_server, *command, tag="tricky")
    assert proc.wait(timeout=WAIT) == 0  # its echo holds bytes that are not UTF-8: left unread (a few lines fit the pipe)
    found = messages(live_server, session_by_tag(live_server, "tricky")["id"])
    assert outputs(found) == [*tricky, "not utf-8: \ufffd\ufffd"]
    assert outputs(found, "stderr") == ["err " + line for line in tricky]


def test_lines_keep_their_order_across_stdout_and_stderr(live_server):
    """Each line is printed once the wrapper has read the one before it (its pipe is empty again), as
    lines a moment apart are: 200 lines alternating between the two streams arrive in the order printed
    (two reading threads queued them in the order they got the GIL, not the order they read them)."""
    command = [PY, "-c", "import fcntl, struct, sys, termios, time\n"
               "for i in range(200):\n"
               "    out = (sys.stdout, sys.stderr)[i % 2]\n"
               "    out.write(f'line {i}\\n')\n"
               "    out.flush()\n"
               "    while struct.unpack('i', fcntl.ioctl(out.fileno(), termios.FIONREAD, b'0000'))[0]:\n"
               "        time.sleep(0.0001)\n"]
    proc = wrap(live_server, *command, tag="interleaved")
    assert finished(proc)[0] == 0
    found = messages(live_server, session_by_tag(live_server, "interleaved")["id"])
    assert [m["content"]["text"] for m in found if m["role"] is None] == [f"line {i}" for i in range(200)]


def on_a_terminal(args, env, cwd=None):
    """Run `args` with a pseudo-terminal as its stdout, read until it ends; its exit code."""
    main, side = pty.openpty()
    proc = subprocess.Popen(args, stdout=side, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(side)
    with open(main, "rb", buffering=0) as echo:
        try:
            while echo.read(65536):
                pass
        except OSError:  # EIO: no one holds the terminal open any more
            pass
    return proc.wait(timeout=WAIT)


COLOR_NAMES = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS", "NO_COLOR")
SHOW_COLOR_ENV = ["sh", "-c", " ".join(f"printf '%s ' ${{{name}-unset}};" for name in COLOR_NAMES)]


def _color_env(server, tag, options, env, terminal):
    """What the wrapped command was told about colour (the values of COLOR_NAMES, "unset" when not),
    run with `options` in `env` (os.environ without COLOR_NAMES, plus `env`), the wrapper's stdout a
    terminal (a pseudo-terminal) or a pipe."""
    env = {**{k: v for k, v in os.environ.items() if k not in COLOR_NAMES}, **env}
    args = [PY, str(CLIENT), "run", "--url", server.url, "--token", server.token, "--tag", tag, *options, "--",
            *SHOW_COLOR_ENV]
    if terminal:
        assert on_a_terminal(args, env) == 0
    else:
        assert subprocess.run(args, capture_output=True, env=env, timeout=WAIT).returncode == 0
    [text] = outputs(messages(server, session_by_tag(server, tag)["id"]))
    return dict(zip(COLOR_NAMES, text.split()))


FORCED = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1", "PY_COLORS": "1", "NO_COLOR": "unset"}
NONE = dict.fromkeys(COLOR_NAMES, "unset")


@pytest.mark.parametrize("options, env, terminal, told", [
    ((), {}, True, FORCED),  # on a terminal the command would have coloured: told to in the pipe
    ((), {}, False, NONE),  # into a pipe or a file: the command decides as it would have
    ((), {"NO_COLOR": "1"}, True, {**NONE, "NO_COLOR": "1"}),  # what the environment says stands
    ((), {"FORCE_COLOR": "0"}, True, {**NONE, "FORCE_COLOR": "0"}),
    (("--color", "always"), {"NO_COLOR": "1"}, False, FORCED),
    (("--color", "never"), {"FORCE_COLOR": "1", "PY_COLORS": "1"}, True, {**NONE, "NO_COLOR": "1"}),
], ids=["auto-terminal", "auto-pipe", "auto-no-color-set", "auto-force-color-0", "always", "never"])
def test_the_command_is_told_to_colour_as_it_would_have_on_the_terminal(live_server, options, env, terminal, told):
    assert _color_env(live_server, "colour", options, env, terminal) == told


def test_a_real_pytest_run_wrapped_from_a_terminal_arrives_in_colour(live_server, tmp_path):
    """pytest writing into the wrapper's pipe colours its summary as it does on a terminal; search finds
    the coloured word (the escapes are not part of it)."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k not in COLOR_NAMES and not k.startswith("PYTEST")}
    assert on_a_terminal([PY, str(CLIENT), "run", "--url", live_server.url, "--token", live_server.token, "--tag",
                          "pytest", "--", PY, "-m", "pytest", "-p", "no:cacheprovider", "test_one.py"],
                         env, cwd=tmp_path) == 0
    sid = session_by_tag(live_server, "pytest")["id"]
    [summary] = [text for text in outputs(messages(live_server, sid)) if "1 passed" in text]
    assert "\x1b[32m" in summary  # green
    hits = api(live_server, "GET", "/api/search", params={"q": "passed", "session_id": sid})["items"]
    assert hits and "\x1b" not in "".join(part["text"] for hit in hits for part in hit["snippet"])


def test_heartbeats_show_the_command_running_and_printing(live_server, ws_connect):
    watcher = ws_connect(live_server)
    proc = wrap(live_server, *printer(60, every=1, pause=0.1), tag="beats")  # prints for 6 s
    activity = None
    deadline = time.monotonic() + 30
    while activity is None:  # a beat every 5 s: the first may come before the first line
        assert time.monotonic() < deadline
        frame = watcher.recv(10)
        if frame["event"] == "ephemeral" and frame["data"]["thinking"]:
            activity = frame["data"]
    assert activity["type"] == "activity" and activity["active"] is True
    assert finished(proc)[0] == 0
    assert api(live_server, "GET", "/api/sessions")["items"][0]["active"] is False


def test_a_server_killed_and_restarted_mid_run_loses_and_duplicates_no_line(make_server, tmp_path):
    server = make_server()
    count = 4000
    proc = wrap(server, *printer(count, every=20, pause=0.01), tag="crash")
    sid = session_by_tag(server, "crash")["id"]
    deadline = time.monotonic() + 30
    while len(messages(server, sid)) < 300:
        assert time.monotonic() < deadline, "no progress before the crash"
        time.sleep(0.05)
    kill_hard(server)
    time.sleep(1)  # the command prints on while the server is gone
    restarted = make_server(db_path=server.db_path, port=server.port)
    code, out, err = finished(proc)
    assert code == 0, err
    assert len(out.splitlines()) == count
    found = messages(restarted, sid, token=server.token)
    assert outputs(found) == [f"line {i}" for i in range(count)]
    assert [m["seq"] for m in found] == list(range(1, count + 2))
    assert exit_message(found)["metadata"]["exitCode"] == 0
    assert "dropped" not in err


def _server_not_started_yet(tmp_path):
    """A database with a token, and a port where nothing listens yet."""
    db_path = tmp_path / "later.db"
    out = subprocess.run([PY, str(ROOT / "app.py"), "create-token"], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "SWITCHBOARD_DB": database(db_path)})
    token = out.stdout.strip().splitlines()[-1]
    server = LiveServer(db_path, port=free_port())
    server.token = token
    return server


def test_a_server_down_at_start_gets_the_output_when_it_comes_up(make_server, tmp_path):
    later = _server_not_started_yet(tmp_path)
    proc = wrap(later, *printer(50), tag="early")
    time.sleep(2)  # the command has run and ended; the wrapper waits for the server
    assert proc.poll() is None
    make_server(db_path=later.db_path, port=later.port)
    code, out, err = finished(proc)
    assert code == 0, err
    assert len(out.splitlines()) == 50
    found = messages(later, session_by_tag(later, "early")["id"])
    assert outputs(found) == [f"line {i}" for i in range(50)] and exit_message(found)["metadata"]["exitCode"] == 0


def test_a_full_buffer_drops_lines_counts_them_and_says_so(make_server, tmp_path):
    later = _server_not_started_yet(tmp_path)
    proc = wrap(later, *printer(250, code=1), tag="full", options=["--buffer", "100"])
    time.sleep(2)
    make_server(db_path=later.db_path, port=later.port)
    code, _, err = finished(proc)
    assert code == 1
    assert "150 line(s) dropped" in err
    found = messages(later, session_by_tag(later, "full")["id"])
    assert outputs(found) == [f"line {i}" for i in range(100)]
    [notice] = [m for m in found if m["role"] == "system" and m["metadata"]["type"] == "dropped"]
    assert notice["metadata"]["dropped"] == 150 and notice["content"].startswith("150 messages dropped here")
    assert found.index(notice) == 100  # where the lines went missing
    assert exit_message(found)["metadata"] == {**exit_message(found)["metadata"], "exitCode": 1, "dropped": 150}


# --- the library ----------------------------------------------------------------------------------

@pytest.fixture
def lib():
    sys.path.insert(0, str(ROOT))
    import client
    return client


def test_library_sends_in_order_once_with_a_title_and_metadata(live_server, lib):
    session = lib.Switchboard(live_server.url, live_server.token).session("lib", title="  Library run ",
                                                                          metadata={"k": 1})
    for i in range(250):
        session.send({"i": i})
    session.send("same", local_id="fixed")
    session.send("same again", local_id="fixed")  # one message: the localId is already stored
    assert session.flush(timeout=30)
    found = messages(live_server, session.id)
    assert [m["content"] for m in found] == [{"i": i} for i in range(250)] + ["same"]
    assert found[-1]["localId"] == "fixed"
    detail = api(live_server, "GET", f"/api/sessions/{session.id}")
    assert detail["title"] == "Library run" and detail["tag"] == "lib"
    again = lib.Switchboard(live_server.url, live_server.token).session("lib")
    assert again.id == session.id and again.seq == 251


def test_library_inbox_yields_what_people_send_and_skips_the_agents_own(live_server, lib):
    session = lib.Switchboard(live_server.url, live_server.token).session("inbox")
    api(live_server, "POST", f"/api/sessions/{session.id}/messages", json={"role": "user", "content": "old"})
    fresh = lib.Switchboard(live_server.url, live_server.token).session("inbox")  # loaded after "old"
    fresh.send({"text": "agent output"})
    fresh.send("the agent quoting the person", role="user")
    fresh.send("a note", role="system")
    fresh.flush(timeout=30)
    api(live_server, "POST", f"/api/sessions/{fresh.id}/messages", json={"role": "user", "content": "new"})
    api(live_server, "POST", f"/api/sessions/{fresh.id}/messages", json={"role": "assistant", "content": "x"})
    api(live_server, "POST", f"/api/sessions/{fresh.id}/messages", json={"role": "user", "content": "newer"})
    inbox = fresh.inbox(wait=5)
    assert [next(inbox)["content"], next(inbox)["content"]] == ["new", "newer"]
    got = {}
    waiter = threading.Thread(target=lambda: got.update(m=next(inbox)), daemon=True)
    waiter.start()
    time.sleep(0.5)
    assert not got  # waiting on the server
    api(live_server, "POST", f"/api/sessions/{fresh.id}/messages", json={"role": "user", "content": "live"})
    waiter.join(10)
    assert got["m"]["content"] == "live"


def test_library_alive_and_end(live_server, lib):
    session = lib.Switchboard(live_server.url, live_server.token).session("presence")
    session.send("last words")
    assert session.alive(thinking=True) is True
    assert api(live_server, "GET", f"/api/sessions/{session.id}")["active"] is True
    session.end(timeout=30)
    assert api(live_server, "GET", f"/api/sessions/{session.id}")["active"] is False
    assert [m["content"] for m in messages(live_server, session.id)] == ["last words"]
    with pytest.raises(lib.SwitchboardError):
        session.send("after the end")


def test_library_refused_token_raises(live_server, lib):
    with pytest.raises(lib.SwitchboardError) as refused:
        lib.Switchboard(live_server.url, "sb_wrong").session("nope")
    assert refused.value.status == 401


class Stub:
    """A stub HTTP server answering from a script: a list of (status, headers, body) or "drop"
    (read the request, store it, close without answering). Records (method, path, body, time)."""

    def __init__(self, script):
        self.script = list(script)
        self.seen = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stub.seen.append((self.command, self.path, body, time.monotonic()))
                step = stub.script.pop(0) if stub.script else (200, {}, {})
                if callable(step):
                    step = step(self.command, self.path, body)
                if step == "drop":
                    self.close_connection = True
                    return
                status, headers, answer = step
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SESSION = (200, {}, {"session": {"id": "s1", "seq": 0}})


@pytest.fixture
def stub():
    stubs = []

    def make(*script):
        stubs.append(Stub(script))
        return stubs[-1]
    yield make
    for s in stubs:
        s.close()


def test_retry_after_on_503_is_honoured(stub, lib):
    server = stub(SESSION, (503, {"Retry-After": "1"}, {"error": "database_busy"}), (200, {}, {"messages": []}))
    session = lib.Switchboard(server.url, "sb_x").session("t")
    session.send("x")
    session.flush(timeout=30)
    first, second = [at for method, path, _, at in server.seen if path.startswith("/v3/")]
    assert second - first >= 0.95


def test_5xx_and_network_errors_are_retried_with_backoff_4xx_is_not(stub, lib, monkeypatch):
    server = stub(SESSION, (500, {}, {}), "drop", (502, {}, {}), (200, {}, {"messages": []}))
    # The pauses the client chose, read where it chooses them: the gaps the server sees also hold the
    # machine's delays, which on a loaded run made a 0.25 s pause look longer than the 0.5 s after it.
    pauses, chosen = [], lib._pause
    monkeypatch.setattr(lib, "_pause", lambda *args: pauses.append(chosen(*args)) or pauses[-1])
    session = lib.Switchboard(server.url, "sb_x").session("t")
    session.send("x")
    session.flush(timeout=30)
    attempts = [at for _, path, _, at in server.seen if path.startswith("/v3/")]
    assert len(attempts) == 4 and len(pauses) >= 2
    # 0.25 s doubling, each within its 20% of jitter (a dropped connection is retried at once, once)
    assert all(0.8 <= pause / (0.25 * 2 ** n) <= 1.2 for n, pause in enumerate(pauses)), pauses
    assert attempts[1] - attempts[0] >= pauses[0]

    refused = stub((400, {}, {"error": "invalid_request", "message": "tag: bad"}))
    with pytest.raises(lib.SwitchboardError, match="tag: bad"):
        lib.Switchboard(refused.url, "sb_x").session("t")
    assert len(refused.seen) == 1


def test_a_library_giving_up_says_how_much_was_not_delivered(stub, lib):
    server = stub(SESSION, *[(503, {"Retry-After": "0"}, {})] * 50)  # 0: still the backoff's pause
    session = lib.Switchboard(server.url, "sb_x", retry_for=1).session("t")
    session.send("a")
    session.send("b")
    with pytest.raises(lib.SwitchboardError, match="2 message"):
        session.flush(timeout=30)
    assert session.undelivered == 2


def test_a_message_with_a_role_whose_answer_was_lost_is_not_sent_twice(stub, lib):
    stored = {}

    def page(method, path, body):
        return 200, {}, {"messages": [{"seq": 1, "role": "system", "content": stored["content"],
                                       "metadata": stored["metadata"]}], "hasMore": False}

    def store(method, path, body):
        stored.update(body)
        return "drop"  # stored, but the answer never arrives

    server = stub(SESSION, store, page)
    session = lib.Switchboard(server.url, "sb_x").session("t")
    session.send("exit 0", role="system")
    session.flush(timeout=30)
    posts = [(m, p) for m, p, _, _ in server.seen if m == "POST" and p.startswith("/api/")]
    assert posts == [("POST", "/api/sessions/s1/messages")]
    assert stored["metadata"]["localId"]


def test_the_readme_library_example_runs_as_written(live_server, lib):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Connect any agent"):readme.index("## Agent API")]
    example = section[section.index("```python\n") + 10:]
    example = example[:example.index("```")]
    example = (example.replace('"http://127.0.0.1:8000"', repr(live_server.url))
               .replace('"sb_..."', repr(live_server.token)))
    runner = threading.Thread(target=exec, args=(example, {}), daemon=True)
    runner.start()
    sid = session_by_tag(live_server, "nightly-report")["id"]
    assert api(live_server, "GET", f"/api/sessions/{sid}")["title"] == "Nightly report"
    for text in ("the summary", "stop"):
        api(live_server, "POST", f"/api/sessions/{sid}/messages", json={"role": "user", "content": text})
    runner.join(30)
    assert not runner.is_alive()
    # The example's first messages are sent in the background: the person's may come before them.
    found = [(m["role"], json.dumps(m["content"])) for m in messages(live_server, sid)]
    reply = (None, json.dumps({"text": "working on: the summary"}))
    assert sorted(found, key=repr) == sorted([
        (None, json.dumps({"text": "Starting the report"})), ("assistant", '"Step 1 of 3 done"'),
        ("user", '"the summary"'), ("user", '"stop"'), reply], key=repr)
    assert found.index(reply) > found.index(("user", '"the summary"'))
    assert api(live_server, "GET", f"/api/sessions/{sid}")["active"] is False


def test_a_refused_token_is_said_at_once_and_the_command_runs_on(live_server):
    proc = wrap(live_server, "sh", "-c", "echo first; sleep 3; echo second; exit 4", token="sb_wrong")
    said = proc.stderr.readline()
    assert said.startswith("switchboard: not mirrored (the command runs on):") and "401" in said
    assert proc.poll() is None  # said while the command runs
    code, out, err = finished(proc)
    assert code == 4 and out == "first\nsecond\n" and err == ""  # said once
    assert api(live_server, "GET", "/api/sessions")["items"] == []
