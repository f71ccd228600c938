"""`spendgraph audit summary --by ...`: grouped totals, share of spend, cost per query, bars."""

from __future__ import annotations

import json

import pytest

from spendgraph.cli.formats import LOWER_BOUND_NOTE

# Priced spend of the whole known ledger: 0.00053 + 0.000038 + 0.000016 + 0.0000584 + 0.0000048.
PRICED_TOTAL = "0.0006472"


def _groups(cli, ledger, by: str, *extra: str) -> dict:
    result = cli("audit", "summary", "--by", by, "--ledger", ledger.url, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _row(out: str, key: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(key + " "))


def test_by_agent_table_with_shares_and_bars(cli, known_ledger):
    result = cli("audit", "summary", "--ledger", known_ledger.url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Spend by agent" in out
    researcher = _row(out, "supervisor/researcher")
    # 0.00048 of 0.0006472 priced = 74.2%; the largest group fills its bar.
    assert "$0.000480" in researcher and "74.2%" in researcher
    assert "█" * 16 in researcher
    supervisor = _row(out, "supervisor")
    # Two queries (Q1, Q3): 0.00005 + 0.000016 = 0.000066, 0.000033 per query.
    assert "$0.000066" in supervisor and "10.2%" in supervisor and "$0.000033" in supervisor
    narrator = _row(out, "narrator")
    assert "unknown" in narrator and "$0" not in narrator
    no_agent = _row(out, "(no agent)")
    assert "$0.0000048" in no_agent
    total = _row(out, "total")
    assert ">= $0.0006472" in total and "7,280" in total
    assert LOWER_BOUND_NOTE in " ".join(out.split())


def test_by_hardware_json(cli, known_ledger):
    payload = _groups(cli, known_ledger, "hardware")
    assert payload["by"] == "hardware"
    groups = {group["key"]: group for group in payload["groups"]}
    assert set(groups) == {"H100", "B200", "other"}
    h100 = groups["H100"]
    assert (h100["calls"], h100["queries"], h100["cost_usd"]) == (3, 2, "0.0005384")
    assert h100["cost_per_query_usd"] == "0.0002692"
    assert h100["share_of_priced_spend"] == pytest.approx(0.0005384 / 0.0006472, abs=1e-6)
    b200 = groups["B200"]
    # Q1, Q2, Q3 plus the call outside any query (which is not a query).
    assert (b200["calls"], b200["queries"], b200["cost_usd"]) == (4, 3, "0.0001088")
    # 0.0001088 / 3, rounded to a trillionth of a dollar.
    assert b200["cost_per_query_usd"] == "0.000036266667"
    other = groups["other"]
    assert (other["cost_usd"], other["cost_known_usd"], other["unpriced_calls"]) == (None, "0", 1)
    assert other["cost_per_query_usd"] is None
    total = payload["total"]
    assert (total["calls"], total["queries"], total["unpriced_calls"]) == (8, 4, 1)
    assert (total["cost_usd"], total["cost_known_usd"]) == (None, PRICED_TOTAL)
    assert total["tokens"]["total"] == 7280


def test_by_app_keeps_calls_outside_any_query_apart(cli, known_ledger):
    groups = {g["key"]: g for g in _groups(cli, known_ledger, "app")["groups"]}
    assert set(groups) == {"research_chat", "dungeon", "voice_support", None}
    research = groups["research_chat"]
    # Q1 0.00053 + Q3 0.000016 = 0.000546 over 2 queries.
    assert (research["queries"], research["cost_usd"]) == (2, "0.000546")
    assert research["cost_per_query_usd"] == "0.000273"
    assert groups["dungeon"]["cost_per_query_usd"] is None
    assert groups["dungeon"]["cost_known_per_query_usd"] == "0.000038"
    assert (groups[None]["queries"], groups[None]["cost_usd"]) == (0, "0.0000048")
    table = cli("audit", "summary", "--by", "app", "--ledger", known_ledger.url)
    assert "(outside any query)" in table.stdout


def test_by_day_in_date_order_with_filters(cli, known_ledger):
    payload = _groups(cli, known_ledger, "day", "--since", "2025-03-02", "--until", "2025-03-03")
    assert [group["key"] for group in payload["groups"]] == ["2025-03-02", "2025-03-03"]
    march_3 = payload["groups"][1]
    # Q3 0.000016 + Q4 0.0000584.
    assert (march_3["queries"], march_3["cost_usd"]) == (2, "0.0000744")
    assert payload["filters"]["until"] == "2025-03-04T00:00:00+00:00"


def test_by_user_and_app_filter(cli, known_ledger):
    payload = _groups(cli, known_ledger, "user", "--app", "research_chat")
    groups = {group["key"]: group for group in payload["groups"]}
    assert groups["ana"]["cost_usd"] == "0.00053"
    assert groups["bob"]["cost_usd"] == "0.000016"
    assert payload["total"]["cost_usd"] == "0.000546"
    assert payload["total"]["share_of_priced_spend"] == 1.0


def test_a_thread_filter_totals_one_conversation(cli, known_ledger):
    payload = _groups(cli, known_ledger, "agent", "--thread", "t1")
    assert {group["key"] for group in payload["groups"]} == {"supervisor", "supervisor/researcher"}
    assert payload["total"]["cost_usd"] == "0.00053"  # Q1 alone, its failed attempt included
    assert payload["filters"]["thread"] == "t1"


@pytest.mark.parametrize("by", ["agent", "endpoint", "model", "hardware", "app", "day", "user"])
def test_every_grouping_partitions_the_calls(cli, known_ledger, by):
    payload = _groups(cli, known_ledger, by)
    assert sum(group["calls"] for group in payload["groups"]) == 8
    assert sum(group["unpriced_calls"] for group in payload["groups"]) == 1
    assert payload["total"]["cost_known_usd"] == PRICED_TOTAL
    table = cli("audit", "summary", "--by", by, "--ledger", known_ledger.url)
    assert table.exit_code == 0 and "total" in table.stdout


def test_unknown_grouping_is_a_usage_error(cli, known_ledger):
    result = cli("audit", "summary", "--by", "colour", "--ledger", known_ledger.url)
    assert result.exit_code == 2
    assert "'colour' is not one of" in result.stderr


def test_empty_ledger(cli, empty_ledger):
    result = cli("audit", "summary", "--ledger", empty_ledger, "--json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["groups"] == []
    assert payload["total"]["calls"] == 0 and payload["total"]["cost_usd"] == "0"
    assert "is empty" in result.stderr


def test_a_narrow_terminal_drops_columns_but_never_cuts_an_amount(cli, known_ledger):
    for command in (("summary",), ("queries",), ("reprice", "--on", "H100-FP8")):
        result = cli("audit", *command, "--ledger", known_ledger.url, env={"COLUMNS": "72"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= 72
        assert "…" not in result.stdout
        assert "$0.0000584" in result.stdout  # Q4 / voice/draft, whole
    wide = cli("audit", "summary", "--ledger", known_ledger.url)
    assert "█" in wide.stdout and "queries" in wide.stdout


def test_budget_refusals_are_counted_apart_from_failures(cli, refusals_ledger):
    table = cli("audit", "summary", "--by", "agent", "--ledger", refusals_ledger)
    assert table.exit_code == 0, table.output
    assert "3 (1 failed, 1 refused)" in _row(table.stdout, "writer")
    assert "1 (1 refused)" in _row(table.stdout, "critic")
    assert "4 (1 failed, 2 refused)" in _row(table.stdout, "total")
    args = ("audit", "summary", "--by", "agent", "--ledger", refusals_ledger, "--json")
    payload = json.loads(cli(*args).stdout)
    groups = payload["groups"]
    counts = {g["key"]: (g["calls"], g["failed_calls"], g["refused_calls"]) for g in groups}
    assert counts == {"writer": (3, 1, 1), "critic": (1, 0, 1)}
    total = payload["total"]
    assert (total["calls"], total["failed_calls"], total["refused_calls"]) == (4, 1, 2)


def test_a_rounded_amount_is_explained(cli, tmp_path):
    from datetime import UTC, datetime
    from decimal import Decimal

    from spendgraph.providers.ledger import (
        CallRecord,
        CallStatus,
        EndpointInfo,
        Ledger,
        QueryRecord,
        QueryStatus,
    )
    from spendgraph.providers.usage import Usage

    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    endpoint = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")
    path = str(tmp_path / "thirds.db")
    with Ledger.open(path) as ledger:
        for n in range(3):  # $0.0001 over three queries: $0.0000333... each
            query = f"{n:08d}" + "0" * 24
            ledger.submit_open_query(QueryRecord(app="thirds", id=query, started_at=at))
            cost = Decimal("0.0001") if n == 0 else Decimal(0)
            ledger.submit_call(
                CallRecord(endpoint, CallStatus.OK, Usage(10, 0, 1), cost, "example", query)
            )
            ledger.submit_close_query(query, QueryStatus.OK, finished_at=at)
        ledger.flush()
    result = cli("audit", "summary", "--by", "app", "--ledger", path)
    assert result.exit_code == 0, result.output
    assert "~$0.00003333" in _row(result.stdout, "thirds")
    assert "'~' marks an amount rounded for display (--json has it exact)" in result.stdout
    known = cli("audit", "summary", "--by", "app", "--ledger", path, "--app", "nothing")
    assert "'~' marks" not in known.stdout
