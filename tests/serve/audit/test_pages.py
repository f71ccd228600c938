"""The audit pages in a real headless Chromium: the numbers on the page are the ledger's.

Each test loads a view, waits for it to render, reads its text and SVG
elements, compares them with the ledger (through its reads or the CLI's
``--json``), and saves a screenshot (see the ``screenshots`` fixture).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from audit_web import EXAMPLE, UNPRICED_APP, cli_json, shown_calls, shown_money

from spendgraph.providers import Spend
from spendgraph.providers.ledger import CallStatus, GroupBy

WAIT_S = 30


def load(browser, served, fragment: str):
    """Open ``#fragment`` and wait until the view has rendered (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(f"{served.url}/#/{fragment}")
    view = browser.find_element("id", "view")
    WebDriverWait(browser, WAIT_S).until(
        lambda _: view.get_attribute("data-state") in ("ready", "error")
    )
    assert view.get_attribute("data-state") == "ready", view.text
    # No script error, no failed request, no resource refused by the page's CSP.
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not problems, problems
    return view


def text_of(browser, css: str) -> str:
    return browser.find_element("css selector", css).text


def all_of(browser, css: str) -> list:
    return browser.find_elements("css selector", css)


def test_spend_page_totals_and_charts(browser, served, screenshots):
    load(browser, served, "spend")
    total = cli_json("audit", "summary", "--by", "app", "--ledger", served.path)["total"]
    ledger_total = sum((group.spend for group in served.ledger.summary_by(GroupBy.APP)), Spend())
    shown_total = text_of(browser, "#total-cost")
    assert shown_total == shown_money(total)
    # One call has no price: the total is a lower bound, never a smaller exact number.
    assert ledger_total.cost is None and ledger_total.unpriced == 1
    assert Decimal(shown_total.removeprefix("≥ $")) == ledger_total.known_cost
    assert text_of(browser, "#total-calls") == shown_calls(total)
    assert f"{ledger_total.refused} refused" in text_of(browser, "#total-calls")
    assert text_of(browser, "#total-queries") == str(total["queries"]) == "4"
    for by in ("app", "agent", "endpoint", "hardware"):
        chart = browser.find_element("css selector", f"section.chart[data-by={by}]")
        assert chart.find_elements("css selector", "rect.segment"), by
        top = cli_json("audit", "summary", "--by", by, "--ledger", served.path)["groups"][0]
        legend = chart.find_element("css selector", ".legend").text
        assert f"{top['key']}: {shown_money(top)}" in legend
    assert {"research_chat", "dungeon"} <= set(
        text_of(browser, "section.chart[data-by=app] .legend").replace(":", " ").split()
    )
    browser.save_screenshot(str(screenshots / "spend.png"))


def test_queries_table_sorts_and_searches_by_id_prefix(browser, served, screenshots):
    listed = cli_json("audit", "queries", "--sort", "cost", "--ledger", served.path)["queries"]
    load(browser, served, "queries?sort=cost")
    rows = all_of(browser, "#queries-table tbody tr.query-row")
    assert [row.get_attribute("data-id") for row in rows] == [q["id"] for q in listed]
    for row, query in zip(rows, listed, strict=True):
        cells = [cell.text for cell in row.find_elements("css selector", "td")]
        assert cells[1] == query["id"][:8] and cells[4] == query["status"]
        assert cells[5] == shown_calls(query) and cells[7] == shown_money(query)
    unpriced = next(q for q in listed if q["app"] == UNPRICED_APP)
    row = browser.find_element("css selector", f"tr.query-row[data-id='{unpriced['id']}']")
    assert row.find_elements("css selector", "td")[7].text == "unknown"
    browser.save_screenshot(str(screenshots / "queries.png"))
    wanted = listed[-1]["id"]
    search = browser.find_element("id", "id-prefix")
    search.send_keys(wanted[:5])
    shown = [row.get_attribute("data-id") for row in all_of(browser, "tr.query-row")]
    assert wanted in shown and all(query_id.startswith(wanted[:5]) for query_id in shown)
    search.send_keys("\n")  # Enter opens the query the prefix names
    view = browser.find_element("id", "view")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda _: wanted in view.text)
    assert browser.current_url.endswith(f"#/query/{wanted[:5]}")


def _queries_by_kind(served):
    """The starved query (refusals) and the one with the most retries."""
    summaries = served.ledger.list_queries(limit=None)
    calls = {s.query.id: served.ledger.calls_for_query(s.query.id) for s in summaries}
    starved = next(
        q for q, rows in calls.items() if any(r.status is CallStatus.BUDGET_DENIED for r in rows)
    )
    retried = max(calls, key=lambda q: sum(r.attempt > 1 for r in calls[q]))
    unpriced = next(s.query.id for s in summaries if s.query.app == UNPRICED_APP)
    return {kind: (query, calls[query]) for kind, query in
            (("starved", starved), ("retried", retried), ("unpriced", unpriced))}  # fmt: skip


@pytest.mark.parametrize("kind", ["starved", "retried", "unpriced"])
def test_a_query_as_a_waterfall_of_its_calls(browser, served, screenshots, kind):
    query_id, calls = _queries_by_kind(served)[kind]
    load(browser, served, f"query/{query_id}")
    shown = cli_json("audit", "show", query_id, "--ledger", served.path)
    assert text_of(browser, "#q-cost") == shown_money(shown["query"])
    assert text_of(browser, "#q-calls") == shown_calls(shown["query"])
    bars = all_of(browser, "#waterfall g.call")
    assert len(bars) == len(calls) == len(shown["calls"])
    # One bar per call row, drawn lane by lane.
    assert sorted(bar.get_attribute("data-call-id") for bar in bars) == sorted(c.id for c in calls)
    by_id = {call.id: (call, row) for call, row in zip(calls, shown["calls"], strict=True)}
    retries = [call for call in calls if call.attempt > 1]
    refused = [call for call in calls if call.status is CallStatus.BUDGET_DENIED]
    assert len(all_of(browser, "#waterfall g.call.retry")) == len(retries)
    assert len(all_of(browser, "#waterfall g.call.refused")) == len(refused)
    marked = {"starved": refused, "retried": retries, "unpriced": calls}[kind]
    assert marked  # this query has what the test looks for
    if kind == "unpriced":
        assert text_of(browser, "#q-cost") == "unknown"
    lanes = {text.get_attribute("data-lane") for text in all_of(browser, "#waterfall text.lane")}
    assert lanes == {call.agent_path or "(no agent)" for call in calls}
    for bar in bars:
        call, row = by_id[bar.get_attribute("data-call-id")]
        title = bar.find_element("css selector", "title").get_attribute("textContent")
        cost = "unknown" if row["cost_usd"] is None else f"${row['cost_usd']}"
        assert f"cost {cost}" in title and f"{call.usage.output:,} output" in title
        assert f"attempt {call.attempt}" in title
    browser.save_screenshot(str(screenshots / f"query-{kind}.png"))


def test_whatif_reprices_on_every_pool_side_by_side(browser, served, screenshots):
    load(browser, served, "whatif")
    actual = cli_json("audit", "queries", "--limit", "0", "--ledger", served.path)
    for pool in ("blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"):
        expected = cli_json(
            "audit", "reprice", "--on", pool, "--config", EXAMPLE, "--ledger", served.path
        )
        cell = browser.find_element("css selector", f"td.pool-total[data-pool='{pool}']")
        assert cell.text == shown_money(expected["total"]["repriced"])
        assert cell.text == "$" + expected["total"]["repriced"]["cost_usd"]
        # The priced calls alone: Hopper 4.00x, Blackwell FP8 2.00x of NVFP4's prices.
        alike = browser.find_element("css selector", f"td.pool-priced-ratio[data-pool='{pool}']")
        assert alike.text == f"{Decimal(expected['total']['priced_calls']['ratio']):.2f}x"
        per_query = all_of(browser, f"td.repriced[data-pool='{pool}']")
        expected_cells = [shown_money(query["repriced"]) for query in expected["queries"]]
        assert [cell.text for cell in per_query] == expected_cells
    known = sum(Decimal(q["cost_known_usd"]) for q in actual["queries"])
    assert Decimal(text_of(browser, "#actual-total").removeprefix("≥ $")) == known
    assert len(all_of(browser, "#whatif-chart g.pool-bar")) >= 4
    browser.save_screenshot(str(screenshots / "whatif.png"))


def test_a_bad_filter_shows_the_servers_reason(browser, served):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served.url}/#/queries?since=not-a-date")
    view = browser.find_element("id", "view")
    WebDriverWait(browser, WAIT_S).until(lambda _: view.get_attribute("data-state") == "error")
    assert "bad parameter since='not-a-date'" in view.text


def test_the_filter_form_narrows_every_view(browser, served):
    from selenium.webdriver.support.ui import WebDriverWait

    load(browser, served, "queries")
    form = browser.find_element("id", "filters")
    form.find_element("name", "app").send_keys("dungeon")
    form.find_element("css selector", "button[type=submit]").click()
    WebDriverWait(browser, WAIT_S).until(lambda _: "app=dungeon" in browser.current_url)
    view = load(browser, served, browser.current_url.split("#/", 1)[1])
    expected = cli_json("audit", "queries", "--app", "dungeon", "--ledger", served.path)
    rows = all_of(browser, "tr.query-row")
    assert [row.get_attribute("data-id") for row in rows] == [q["id"] for q in expected["queries"]]
    assert "1 of 1 queries shown" in view.text
    browser.find_element("css selector", "nav a[data-view=spend]").click()
    WebDriverWait(browser, WAIT_S).until(lambda _: "#/spend?app=dungeon" in browser.current_url)
    load(browser, served, "spend?app=dungeon")
    total = cli_json("audit", "summary", "--app", "dungeon", "--ledger", served.path)["total"]
    assert text_of(browser, "#total-cost") == shown_money(total)


def test_ratios_round_on_the_digits_as_the_cli_does(browser, served):
    load(browser, served, "spend")
    values = ["0.285", "0.125", "0.135", "1.283019", "4", "0.005", "9.995", "0.994999", "12.5"]
    rounded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/assets/util.js').then((m) => done(arguments[0].map((v) => m.fixed(v, 2))));",
        values,
    )
    assert rounded == [f"{Decimal(value):.2f}" for value in values]
