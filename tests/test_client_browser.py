"""End to end through a real headless Chromium: what a person types into the session view's send box
reaches the stdin of a command that `python client.py run` wraps, and the command's answer comes
back to the page. Without /usr/bin/chromium this skips loudly (fails in CI), as tests/test_ui_browser.py."""
import sys

import pytest
from playwright.sync_api import expect
from test_client import _wait_for_line, finished, wrap
from test_ui_browser import Person, browser  # noqa: F401 (browser is a fixture)

ECHO = [sys.executable, "-c", "import sys\nprint('waiting for you', flush=True)\n"
        "for line in sys.stdin:\n    print('got: ' + line.rstrip('\\n'), flush=True)\n"
        "    if line.strip() == 'bye': break"]


@pytest.fixture
def person(browser, live_server):  # noqa: F811 (browser is the imported fixture)
    person = Person(browser, live_server, {"width": 1280, "height": 800})
    yield person
    person.context.close()
    assert person.unexpected() == [], "the page reported problems"


def test_a_persons_input_reaches_a_wrapped_command(person, live_server):
    proc = wrap(live_server, *ECHO, tag="wrapped", options=["--title", "Wrapped echo"])
    try:
        _wait_for_line(proc, "waiting for you")
        page = person.open()
        person.open_session("Wrapped echo")
        listing = page.locator("#message-list")
        expect(listing).to_contain_text("waiting for you")

        box = page.get_by_label("Message to the agent")
        box.fill("hello from the browser")
        box.press("Enter")
        assert _wait_for_line(proc, "got: hello from the browser") == ["got: hello from the browser\n"]
        expect(listing).to_contain_text("got: hello from the browser")  # the command's answer, live

        box.fill("bye")
        box.press("Enter")
        code, out, _ = finished(proc)
        assert code == 0 and out == "got: bye\n"
        expect(listing).to_contain_text("Exited with code 0.")
    finally:
        if proc.poll() is None:
            proc.kill()
