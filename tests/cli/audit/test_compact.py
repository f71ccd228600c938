"""`spendgraph audit compact --before WHEN`: old calls folded, every audit total unchanged.

The ledger holds groups of calls that fold together (same query, agent,
endpoint, day, status and kind of cost), calls on two days, failed, refused,
unpriced and $0 calls, a call outside any query, a running query (never
folded) and calls after the boundary (kept). Every audit command's ``--json``
is compared before and after, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendgraph.providers.config import example_config_path
from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    GroupBy,
    Ledger,
    LedgerFilter,
    QueryRecord,
    QueryStatus,
)
from spendgraph.providers.reprice import reprice
from spendgraph.providers.usage import Price, Usage, UsageSource
from tests.support.pg_schema import fresh_schema_url

T0 = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)  # two hours before a UTC day ends
BOUNDARY = "2025-03-03"
B200 = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")
H100 = EndpointInfo("h100-fp8-0", "sim-large", "H100", "fp8", "sim")
HOSTED = EndpointInfo("hosted-x", "some-org/big-moe", "other", "", "hosted")
EXAMPLE = str(example_config_path())


def _call(query_id: str | None, minutes: float, n: int, **fields) -> CallRecord:
    defaults = {
        "endpoint": (B200, H100)[n % 2],
        "status": CallStatus.OK,
        "usage": Usage(100 + n, 10 * n, 7 + n, n % 3, UsageSource.REPORTED),
        # Nine-, twelve- and eighteen-decimal costs: the last has no exact femto value.
        "cost_usd": (Decimal("0.000000123"), Decimal("0.000152344704"),
                     Decimal("0.000000000000000001"))[n % 3] * (n + 1),
        "price_version": "example",
        "query_id": query_id,
        "agent_path": ("supervisor", "supervisor/researcher")[n % 2 if n % 5 else 0],
        "started_at": T0 + timedelta(minutes=minutes),
        "ttft_ms": None if n % 4 == 0 else 30.0 + n,
        "latency_ms": 400.0 + n,
    }  # fmt: skip
    return CallRecord(**{**defaults, **fields})


def _write(url: str) -> None:
    done = [QueryRecord(app=("research_chat", "dungeon")[i % 2], user=("ana", "bo", "cy")[i % 3],
                        tenant=("acme", "")[i % 2], thread_id=f"t{i % 2}",
                        started_at=T0 + timedelta(minutes=30 * i)) for i in range(5)]  # fmt: skip
    running = QueryRecord(app="voice_support", started_at=T0 + timedelta(minutes=5))
    calls = []
    for i, query in enumerate(done):
        for n in range(12):  # 6 minutes apart: across midnight for some queries
            calls.append(_call(query.id, 30 * i + 6 * n, n + i))
        calls.append(_call(query.id, 30 * i + 1, 90, endpoint=HOSTED, cost_usd=None))
        calls.append(
            _call(
                query.id,
                30 * i + 2,
                91,
                status=CallStatus.ERROR,
                usage=Usage(),
                cost_usd=Decimal(0),
                error_kind="server_error",
                http_status=503,
            )
        )
        calls.append(_call(query.id, 30 * i + 3, 92, status=CallStatus.BUDGET_DENIED,
                           usage=Usage(), cost_usd=Decimal(0)))  # fmt: skip
        calls.append(_call(query.id, 60 * 30 + i, 93))  # after the boundary: kept as is
    calls += [_call(running.id, 7 + n, n) for n in range(3)]
    calls += [_call(None, 9 + n, n) for n in range(4)]  # outside any query
    with Ledger.open(url) as ledger:
        for query in (*done, running):
            ledger.submit_open_query(query)
        for call in calls:
            ledger.submit_call(call)
        for query in done:
            ledger.submit_close_query(query.id, QueryStatus.OK, finished_at=T0 + timedelta(days=3))
        ledger.flush()


@pytest.fixture(params=["sqlite", "postgresql"])
def foldable_ledger(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        url = str(tmp_path / "ledger.db")
        _write(url)
        yield url
        return
    with fresh_schema_url("spendgraph_compact") as url:
        _write(url)
        yield url


def _json(cli, *args: str) -> dict:
    result = cli("audit", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _every_total(cli, url: str) -> dict:
    totals = {}
    for group in GroupBy:
        totals[f"summary {group}"] = _json(cli, "summary", "--by", str(group), "--ledger", url)
        totals[f"summary {group} day"] = _json(
            cli, "summary", "--by", str(group), "--since", "2025-03-02", "--ledger", url
        )
    totals["summary dungeon"] = _json(cli, "summary", "--app", "dungeon", "--ledger", url)
    for sort in ("time", "cost", "tokens"):
        totals[f"queries {sort}"] = _json(cli, "queries", "--sort", sort, "--ledger", url)
    for query in totals["queries time"]["queries"]:
        shown = _json(cli, "show", query["id"], "--ledger", url)
        totals[f"show {query['id']}"] = shown["query"]
    totals["reprice"] = _json(
        cli, "reprice", "--on", "hopper-h100-fp8", "--config", EXAMPLE, "--ledger", url
    )
    return totals


def _rows(url: str) -> int:
    with Ledger.open(url, create=False) as ledger:
        return len(list(ledger.iter_calls()))


def test_compacting_keeps_every_total(cli, foldable_ledger):
    url = foldable_ledger
    before, rows_before = _every_total(cli, url), _rows(url)

    done = _json(cli, "compact", "--before", BOUNDARY, "--ledger", url)

    assert done["calls"] > done["rows"] > 0
    assert done["queries"] == 6  # five finished queries and the calls outside any query
    assert _rows(url) == rows_before - done["calls"] + done["rows"]
    after = _every_total(cli, url)
    for name, value in before.items():
        assert after[name] == value, name
    # Again: nothing more to gain, nothing changes.
    again = _json(cli, "compact", "--before", BOUNDARY, "--ledger", url)
    assert again["calls"] == 0
    assert _every_total(cli, url) == before


def test_repricing_a_compacted_ledger_counts_each_folded_call(cli, foldable_ledger):
    price = Price(input_uncached=Decimal("0.2"), input_cached=Decimal("0.05"), output=Decimal(1))
    with Ledger.open(foldable_ledger, create=False) as ledger:
        _, before = reprice(ledger, LedgerFilter(), price)
    _json(cli, "compact", "--before", BOUNDARY, "--ledger", foldable_ledger)
    with Ledger.open(foldable_ledger, create=False) as ledger:
        assert any(call.folded > 1 for call in ledger.iter_calls())
        _, after = reprice(ledger, LedgerFilter(), price)
    # Re-priced as many calls as were made, folded or not: same calls, same re-priced cost.
    assert after.repriced == before.repriced
    assert after.repriced.calls == after.actual.calls == before.actual.calls


def test_the_running_query_and_later_calls_are_left_alone(cli, tmp_path):
    url = str(tmp_path / "ledger.db")
    _write(url)
    with Ledger.open(url, create=False) as ledger:
        kept = {
            c.id for c in ledger.iter_calls() if c.started_at >= datetime(2025, 3, 3, tzinfo=UTC)
        }
        running = [s.query.id for s in ledger.list_queries() if s.query.status == "running"]
        running_calls = {c.id for c in ledger.calls_for_query(running[0])}

    cli("audit", "compact", "--before", BOUNDARY, "--ledger", url)

    with Ledger.open(url, create=False) as ledger:
        ids = {c.id for c in ledger.iter_calls()}
        folded = [c for c in ledger.iter_calls() if c.folded > 1]
    assert kept | running_calls <= ids
    assert folded and all(c.prompt_text is None and c.request_id == "" for c in folded)


def test_compact_refuses_filters_and_needs_a_time(cli, tmp_path):
    url = str(tmp_path / "ledger.db")
    _write(url)
    result = cli("audit", "compact", "--before", BOUNDARY, "--app", "dungeon", "--ledger", url)
    assert result.exit_code == 1
    assert "takes no filters" in result.stderr
    result = cli("audit", "compact", "--ledger", url)
    assert result.exit_code == 2
    assert "--before" in result.output
    result = cli("audit", "compact", "--before", "yesterday-ish", "--ledger", url)
    assert result.exit_code == 2
    assert "yesterday-ish" in result.output
