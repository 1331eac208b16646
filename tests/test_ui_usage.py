"""Tokens and cost in the browser (real headless Chromium against the real server): the compact usage
line of the session list and header, kept live by usage reports, and the Usage view (#usage) with its
per-day SVG chart of the last 30 UTC days, totals and most expensive sessions. Usage is seeded as
agents send it, through POST /v1/sessions/:id/usage with `time` on chosen days. Each test also fails on
a JavaScript error, a console error, an unexpected HTTP error or a request to another host (Person)."""
import time
from datetime import datetime, timezone

import pytest
import test_ui_browser
from playwright.sync_api import expect

# The browser tests' fixtures (a Chromium, a server, a Person in a tab), shared as they are.
browser, server_env, server, viewport, person = (test_ui_browser.browser, test_ui_browser.server_env,
                                                 test_ui_browser.server, test_ui_browser.viewport, test_ui_browser.person)

DAY = 86_400_000
NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def now_ms():
    return int(time.time() * 1000)


def day_of(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d")


def report(person, sid, key, cost, days_ago=0, tokens=None):
    body = {"key": key, "tokens": tokens or {"input": 1000, "output": 200}, "cost": {"total": cost},
            "time": now_ms() - days_ago * DAY}
    response = person.api("POST", f"/v1/sessions/{sid}/usage", json=body)
    assert response.status_code == 200, response.text


def open_usage(person):
    page = person.page
    menu = page.locator("#menu-button")
    if menu.is_visible():  # a phone: the account's actions are behind it, and fold once one is chosen
        menu.click()
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#usage-screen")).to_be_visible()
    expect(page.locator("#usage-screen")).to_have_attribute("aria-busy", "false")
    return page


def bars(page):
    return page.locator("#usage-chart g.day")


def test_the_usage_view_charts_30_days_with_zero_days_totals_and_the_costliest_sessions(person):
    deploy = person.agent_session("deploy")
    docs = person.agent_session("docs")
    cheap = person.agent_session("cheap")
    report(person, deploy, "a", 1.5, days_ago=0)
    report(person, deploy, "b", 0.5, days_ago=3)
    report(person, docs, "a", 0.75, days_ago=10)
    report(person, cheap, "a", 0.001, days_ago=10)
    report(person, docs, "old", 100, days_ago=45)  # before the window: in no bar and no total
    page = person.open()
    page = open_usage(person)
    assert page.url.endswith("/#usage")
    expect(page.locator("#usage-empty")).to_be_hidden()

    expect(bars(page)).to_have_count(30)
    days = [bars(page).nth(i).get_attribute("data-day") for i in range(30)]
    assert days[-1] == day_of(now_ms()) and days[0] == day_of(now_ms() - 29 * DAY)
    assert len(set(days)) == 30
    amounts = {day: float(bars(page).nth(i).get_attribute("data-amount")) for i, day in enumerate(days)}
    assert amounts[day_of(now_ms())] == 1.5
    assert amounts[day_of(now_ms() - 3 * DAY)] == 0.5
    assert amounts[day_of(now_ms() - 10 * DAY)] == pytest.approx(0.751)
    assert sum(1 for amount in amounts.values() if amount == 0) == 27  # every day is drawn, empty ones too

    heights = {day: float(bars(page).nth(i).locator("rect.bar").get_attribute("height")) for i, day in enumerate(days)}
    assert heights[day_of(now_ms() - 5 * DAY)] == 0
    assert heights[day_of(now_ms())] == pytest.approx(3 * heights[day_of(now_ms() - 3 * DAY)])
    today = bars(page).last.locator("title")
    assert "$1.50" in today.text_content() and "1,200 tokens" in today.text_content()
    assert "no usage" in bars(page).nth(days.index(day_of(now_ms() - 5 * DAY))).locator("title").text_content()
    # Axis labels: the y axis from $0 to a round top, a date under every seventh day back from today.
    expect(page.locator("#usage-chart .y-label")).to_have_text(["$0.00", "$1.00", "$2.00"])
    expect(page.locator("#usage-chart .x-label")).to_have_count(5)
    # The same days for screen readers, and the top bar says where the person is.
    rows = page.locator("#usage-chart table tr")
    expect(rows).to_have_count(31)
    expect(rows.last).to_have_text(day_of(now_ms()) + "$1.501,200")
    expect(page.get_by_role("link", name="Usage", exact=True)).to_have_attribute("aria-current", "page")

    totals = page.locator("#usage-totals")
    expect(totals).to_contain_text("Cost$2.75")
    expect(totals).to_contain_text("Tokens4,800")
    top = page.locator("#usage-sessions li")
    expect(top).to_have_count(3)
    expect(top.nth(0)).to_contain_text("deploy")
    expect(top.nth(0)).to_contain_text("$2.00")
    expect(top.nth(1)).to_contain_text("docs")
    expect(top.nth(2)).to_contain_text("<$0.01")

    # Tokens instead of cost: same days, other heights and labels.
    page.get_by_label("Tokens", exact=True).check()
    expect(page.locator("#usage-chart .y-label").last).to_have_text("5k")
    assert float(bars(page).last.get_attribute("data-amount")) == 1200

    # A session in the list opens it; Back comes back to the chart.
    top.nth(1).get_by_role("link").click()
    expect(page.locator("#session-title")).to_have_text("docs")
    expect(page.locator("#usage-screen")).to_be_hidden()
    page.go_back()
    expect(page.locator("#usage-screen")).to_be_visible()
    expect(bars(page)).to_have_count(30)
    page.get_by_role("button", name="← Sessions").click()
    expect(page.locator("#usage-screen")).to_be_hidden()
    expect(page.locator("#workspace")).to_be_visible()
    assert page.url == person.server.url + "/"


def test_without_usage_the_view_says_so_and_reports_arriving_live_fill_it(person):
    sid = person.agent_session("quiet")
    page = person.open()
    page.goto(person.server.url + "/#usage")  # its own address: a link or a reload lands on it
    expect(page.locator("#usage-empty")).to_be_visible()
    expect(page.locator("#usage-empty")).to_contain_text("No usage reported")
    expect(page.locator("#usage-data")).to_be_hidden()
    page.reload()
    expect(page.locator("#usage-empty")).to_be_visible()

    report(person, sid, "a", 0.42)
    expect(page.locator("#usage-data")).to_be_visible()
    expect(bars(page)).to_have_count(30)
    expect(page.locator("#usage-sessions li")).to_have_text(["quiet1.2k tok · $0.42"])


def test_the_list_and_the_header_show_tokens_and_cost_and_follow_reports(person):
    paid = person.agent_session("paid")
    person.agent_session("free")
    report(person, paid, "a", 0.42, tokens={"input": 12000, "output": 300})
    page = person.open()
    usage = person.session_button("paid").locator(".session-usage")
    expect(usage).to_have_text("12.3k tok · $0.42")
    assert "input 12,000, output 300" in usage.get_attribute("title")
    expect(person.session_button("free").locator(".session-usage")).to_be_hidden()

    person.open_session("paid")
    header = page.locator("#session-usage")
    expect(header).to_have_text("12.3k tok · $0.42")
    report(person, paid, "b", 1, tokens={"cache_read": 1_000_000})
    expect(header).to_have_text("1m tok · $1.42")
    expect(usage).to_have_text("1m tok · $1.42")
    expect(person.session_button("paid")).to_have_attribute("aria-current", "true")
    # A report is no edit: the session keeps its place in the list.
    expect(page.locator(".session-item").first).to_contain_text("free")

    person.open_session("free")
    expect(header).to_be_hidden()


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_the_usage_view_fits_a_phone(person):
    for i in range(12):
        sid = person.agent_session(f"a-session-with-a-long-name-{i}-" + "x" * 60)
        report(person, sid, "a", 10 ** (i % 4) + i, days_ago=i * 2, tokens={"input": 123_456_789})
    page = person.open()
    assert page.evaluate(NO_OVERFLOW)
    open_usage(person)
    expect(bars(page)).to_have_count(30)
    assert page.evaluate(NO_OVERFLOW)
    chart = page.locator("#usage-chart svg").bounding_box()
    assert chart["x"] >= 0 and chart["x"] + chart["width"] <= 390
    expect(page.locator("#usage-sessions li")).to_have_count(10)
    page.get_by_label("Tokens", exact=True).check()
    assert page.evaluate(NO_OVERFLOW)
    page.locator("#usage-sessions a").first.click()
    expect(page.locator("#session-usage")).to_be_visible()
    assert page.evaluate(NO_OVERFLOW)
