"""The page's frame in a real headless Chromium: on a laptop and on a phone, with a Claude session whose
first prompt (its title) is a paragraph and that waits for the person, the top bar stays one row, the
title takes two lines at most, and on a phone the search box keeps room to type in. Fixtures and
checks are test_ui_browser.py's."""
from playwright.sync_api import expect
from test_ui_browser import browser, person, server, server_env, viewport  # noqa: F401 (fixtures)
from test_ui_claude import Claude

PROMPT = ("The uploader gives up on the first timeout, which loses whole nightly batches when the network "
          "blinks; add retries with exponential backoff and jitter, keep the tests green, and tell me what changed.")
NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def test_a_long_title_and_someone_waiting_keep_the_top_bar_one_row_on_a_laptop_and_a_phone(person, server):
    claude = Claude(server)
    page = person.open()
    claude.start(PROMPT)
    claude.send("Stop")  # a finished turn: Claude waits for the person
    expect(page.locator("#waiting-button")).to_have_text("1 waiting for you")
    person.session_button(PROMPT[:40]).click()
    title = page.locator("#session-title")
    expect(title).to_contain_text(PROMPT[:100])
    assert title.get_attribute("title") == title.text_content()  # the whole of it on hover

    topbar = page.locator(".topbar")
    assert topbar.bounding_box()["height"] < 60, topbar.bounding_box()
    line = float(title.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
    assert title.bounding_box()["height"] <= 2 * line + 1

    page.set_viewport_size({"width": 390, "height": 844})
    assert topbar.bounding_box()["height"] < 60, topbar.bounding_box()
    assert page.get_by_role("searchbox").bounding_box()["width"] >= 140
    waiting = page.get_by_role("button", name="1 waiting for you")  # what is read out stays whole
    expect(waiting).to_be_visible()
    assert waiting.locator(".waiting-rest").bounding_box()["width"] <= 1  # what is seen: "1 waiting"
    assert title.bounding_box()["height"] <= 2 * line + 1
    assert page.evaluate(NO_OVERFLOW)
    waiting.click()  # opens the session (already open): nothing breaks
    expect(title).to_contain_text(PROMPT[:100])
