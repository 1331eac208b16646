"""The README's screenshots, taken again: a real server (`python app.py serve`, temporary database), a
Claude Code session driven through its hooks as Claude Code drives them (a prompt, tool calls, a
Markdown answer with code, then a command waiting for approval), a command wrapped by client.py, and
usage reports; then headless Chromium shows them at 1280 x 800 and 390 x 844 (a phone), light and dark.

Usage: python docs/screenshots/make.py   (writes the PNGs next to this file)
"""
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
CLAUDE = "5b1f0f5e-2d1c-4c55-9d8e-6c3a1f0e7a21"
CWD = "/home/ana/src/uploader"

ANSWER = """## Retries added

The uploader now retries **transient** failures (timeouts, 502/503/504) with exponential backoff:

| attempt | wait |
|---------|------|
| 1 | 0.5 s |
| 2 | 1 s |
| 3 | 2 s |

```python
def upload(path, attempts=4):
    for attempt in range(attempts):
        try:
            return _put(path)
        except TransientError:
            time.sleep(0.5 * 2 ** attempt)
    raise UploadFailed(path)
```

All 42 tests pass. Next I can add a jitter so that clients retrying together spread out."""


def hook(server, name, **fields):
    body = {"session_id": CLAUDE, "transcript_path": f"/home/ana/.claude/projects/-home-ana-src-uploader/{CLAUDE}.jsonl",
            "cwd": CWD, "permission_mode": "default", "hook_event_name": name, **fields}
    response = requests.post(server.url + "/v1/hooks/claude", json=body, headers=server.headers, timeout=120)
    response.raise_for_status()
    return response.json()


def held(server, name, **fields):
    try:
        hook(server, name, **fields)
    except requests.ConnectionError:
        pass  # the server stopped while it waited


def tool(server, n, name, tool_input, output):
    hook(server, "PreToolUse", tool_name=name, tool_input=tool_input, tool_use_id=f"toolu_{n}")
    hook(server, "PostToolUse", tool_name=name, tool_input=tool_input, tool_use_id=f"toolu_{n}",
         tool_response=output)


def claude_session(server):
    hook(server, "SessionStart", source="startup")
    hook(server, "UserPromptSubmit", prompt="The uploader gives up on the first timeout. Add retries with backoff.")
    tool(server, 1, "Read", {"file_path": f"{CWD}/uploader.py"}, {"type": "text", "file": {"numLines": 88}})
    tool(server, 2, "Edit", {"file_path": f"{CWD}/uploader.py", "old_string": "return _put(path)",
                             "new_string": "for attempt in range(attempts): ..."}, {"filePath": f"{CWD}/uploader.py"})
    tool(server, 3, "Bash", {"command": "python -m pytest -q", "description": "Run the tests"},
         {"stdout": "42 passed in 1.92s", "stderr": "", "interrupted": False})
    hook(server, "Stop", stop_hook_active=False, last_assistant_message=ANSWER)
    hook(server, "UserPromptSubmit", prompt="Good. Tag a release and push it.")
    tool(server, 4, "Bash", {"command": "git tag v1.4.0", "description": "Tag the release"},
         {"stdout": "", "stderr": "", "interrupted": False})
    # Held until someone decides (or the server stops): the page shows it waiting for approval.
    threading.Thread(target=held, args=(server, "PermissionRequest"), kwargs={
        "tool_name": "Bash", "tool_input": {"command": "git push origin main --tags", "description": "Push the release"},
        "tool_use_id": "toolu_5"}, daemon=True).start()
    [session] = [s for s in requests.get(server.url + "/api/sessions", headers=server.headers, timeout=10).json()["items"]
                 if s.get("title") != "nightly build"]
    requests.post(f"{server.url}/v1/sessions/{session['id']}/usage", headers=server.headers, timeout=10, json={
        "key": "turn-1", "model": "claude-sonnet-4-5", "tokens": {"input": 18_400, "output": 2_150, "cache_read": 96_000,
                                                                  "cache_creation": 4_100}}).raise_for_status()
    return session["id"]


def wrapped_command(server):
    """What `python client.py run -- make nightly` stores: output lines, then the exit code."""
    sid = requests.post(server.url + "/api/sessions", json={"title": "nightly build"}, headers=server.headers,
                        timeout=10).json()["id"]
    lines = [("stdout", "building wheel for uploader (pyproject.toml) ... done"),
             ("stdout", "running 42 tests"), ("stderr", "warning: tests/test_slow.py took 4.1 s"),
             ("stdout", "42 passed in 1.92s"), ("stdout", "uploading dist/uploader-1.4.0-py3-none-any.whl")]
    requests.post(f"{server.url}/v3/sessions/{sid}/messages", headers=server.headers, timeout=10, json={
        "messages": [{"content": {"type": "output", "stream": stream, "text": text}} for stream, text in lines]})


def shoot(browser, server, size, scheme, name, session_title=None):
    context = browser.new_context(viewport=size, color_scheme=scheme, device_scale_factor=1)
    page = context.new_page()
    page.goto(f"{server.url}/#token={server.token}")
    expect(page.locator("#connection")).to_have_text("Connected")
    if session_title:
        page.locator(".session-item", has_text=session_title).click()
        expect(page.locator("#session-title")).to_have_text(session_title)
        page.wait_for_timeout(800)  # the Markdown libraries and highlighting are in
    page.screenshot(path=str(HERE / f"{name}.png"))
    context.close()


def main():
    directory = tempfile.TemporaryDirectory()
    server = LiveServer(Path(directory.name) / "screenshots.db", env={"SWITCHBOARD_APPROVAL_WAIT_SECONDS": "600"}).start()
    try:
        wrapped_command(server)
        time.sleep(0.01)  # the Claude session is the newest
        claude_session(server)
        time.sleep(0.5)  # the approval is waiting
        title = requests.get(server.url + "/api/sessions", headers=server.headers, timeout=10).json()["items"][0]["title"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM)
            for scheme in ("light", "dark"):
                shoot(browser, server, {"width": 1280, "height": 800}, scheme, f"desktop-{scheme}", title)
                shoot(browser, server, {"width": 390, "height": 844}, scheme, f"phone-{scheme}", title)
            shoot(browser, server, {"width": 1280, "height": 800}, "light", "desktop-output", "nightly build")
            browser.close()
    finally:
        server.stop()
        directory.cleanup()


if __name__ == "__main__":
    main()
