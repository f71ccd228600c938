"""Every field written comes back exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from spendgraph.providers.ledger import (
    CallStatus,
    EndpointInfo,
    Ledger,
    LedgerFilter,
    QueryStatus,
)
from spendgraph.providers.usage import Usage, UsageSource


async def test_every_call_field_round_trips(ledger: Ledger, kit):
    query = kit.query(store_text=True)
    await ledger.open_query(query)
    record = kit.call(
        endpoint=EndpointInfo("gb200-fp8", "qwen3-235b", "GB200", "fp8", "dynamo"),
        status=CallStatus.ERROR,
        usage=Usage(1234, 567, 89, 12, UsageSource.ESTIMATED),
        cost_usd=Decimal("0.000000123456789012345"),
        price_version="2025-03-01",
        query_id=query.id,
        agent_path="supervisor/researcher",
        node="research",
        request_id="req-1",
        attempt=3,
        stream=True,
        started_at=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        ttft_ms=41.25,
        latency_ms=812.5,
        error_kind="stream_cut",
        http_status=502,
        prompt_text="user: how much? ünïcödé",
        completion_text="about $0.0001",
    )
    await ledger.record_call(record)

    [stored] = ledger.calls_for_query(query.id)
    assert stored == record
    assert stored.cost_usd.as_tuple() == record.cost_usd.as_tuple()


@pytest.mark.parametrize(
    "cost",
    [
        Decimal("0.000000123"),
        Decimal("0.000000123000"),
        Decimal("1E-18"),
        Decimal("0"),
        Decimal("12345.678901234567890123456789"),
        None,
    ],
    ids=str,
)
async def test_costs_round_trip_exactly(ledger: Ledger, kit, cost):
    record = kit.call(cost_usd=cost)
    await ledger.record_call(record)
    [stored] = list(ledger.iter_calls())
    if cost is None:
        assert stored.cost_usd is None
    else:
        assert stored.cost_usd == cost
        assert stored.cost_usd.as_tuple() == cost.as_tuple()


async def test_query_fields_round_trip(ledger: Ledger, kit):
    query = kit.query(
        thread_id="thread-9",
        budget_usd=Decimal("0.0025"),
        budget_tokens=40_000,
        store_text=True,
        input_preview="what does a B200 cost per token?",
    )
    await ledger.open_query(query)
    running = ledger.query_summary(query.id).query
    assert running.status is QueryStatus.RUNNING
    assert running.finished_at is None

    finished = kit.at(2.5)
    await ledger.close_query(query.id, QueryStatus.ERROR, error="boom", finished_at=finished)
    row = ledger.query_summary(query.id).query
    assert (row.id, row.thread_id) == (query.id, "thread-9")
    assert (row.app, row.user) == ("research_chat", "ana")
    assert row.started_at == query.started_at
    assert row.finished_at == finished
    assert row.status is QueryStatus.ERROR
    assert row.error == "boom"
    assert row.budget_usd == Decimal("0.0025")
    assert row.budget_tokens == 40_000
    assert row.store_text is True
    assert row.input_preview == "what does a B200 cost per token?"


async def test_input_preview_is_dropped_unless_the_query_opted_in(ledger: Ledger, kit):
    query = kit.query(store_text=False, input_preview="patient: Jane Doe, DOB 1970-01-01")
    await ledger.open_query(query)
    assert ledger.query_summary(query.id).query.input_preview is None


async def test_times_come_back_as_utc(ledger: Ledger, kit):
    plus_two = timezone(timedelta(hours=2))
    aware = datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)
    naive = datetime(2025, 3, 1, 12, 30)  # naive means UTC
    await ledger.record_call(kit.call(started_at=aware))
    await ledger.record_call(kit.call(started_at=naive))
    first, second = ledger.iter_calls()
    assert first.started_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert first.started_at.tzinfo == UTC
    assert second.started_at == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    # Filters take the same convention.
    later = list(ledger.iter_calls(LedgerFilter(since=datetime(2025, 3, 1, 12, 15))))
    assert [c.id for c in later] == [second.id]


async def test_calls_outside_any_query_are_recorded(ledger: Ledger, kit):
    record = kit.call(query_id=None)
    await ledger.record_call(record)
    assert list(ledger.iter_calls()) == [record]
    [group] = ledger.summary_by("app")
    assert group.key is None
    assert (group.spend.calls, group.queries) == (1, 0)
