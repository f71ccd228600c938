"""Scoped budgets read the ledger: a period's spend per user/app/thread, threshold rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from spendgraph.providers.ledger import BudgetEventRecord, Ledger, QueryStatus
from spendgraph.providers.usage import Usage


async def test_period_spend_sums_the_scopes_calls_in_the_period(ledger: Ledger, kit):
    ana = kit.query(user="ana", app="shop", thread_id="t1")
    bob = kit.query(user="bob", app="shop", thread_id="t2")
    for query in (ana, bob):
        await ledger.open_query(query)
    usage = Usage(input_uncached=10, input_cached=5, output=20)
    calls = [
        kit.call(query_id=ana.id, started_at=kit.at(0), usage=usage, cost_usd=Decimal("0.001")),
        kit.call(query_id=ana.id, started_at=kit.at(5), usage=usage, cost_usd=None),  # unpriced
        kit.call(query_id=bob.id, started_at=kit.at(6), usage=usage, cost_usd=Decimal("0.002")),
        # the day before: another period
        kit.call(query_id=ana.id, started_at=kit.at(-24 * 60), cost_usd=Decimal("1")),
    ]
    for call in calls:
        await ledger.record_call(call)
    day, next_day = kit.T0.replace(hour=0), kit.T0.replace(hour=0) + timedelta(days=1)
    assert ledger.period_spend("user", "ana", day, next_day) == (Decimal("0.001"), 70)
    assert ledger.period_spend("app", "shop", day, next_day) == (Decimal("0.003"), 105)
    assert ledger.period_spend("thread", "t2", day, next_day) == (Decimal("0.002"), 35)
    assert ledger.period_spend("user", "carol", day, next_day) == (Decimal(0), 0)
    for query in (ana, bob):
        await ledger.close_query(query.id, QueryStatus.OK)


async def test_budget_events_round_trip(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    event = BudgetEventRecord(
        scope="user",
        scope_id="ana",
        period="day",
        period_start=kit.T0.replace(hour=0),
        threshold=Decimal("0.8"),
        unit="usd",
        spent=Decimal("0.0081"),
        limit=Decimal("0.01"),
        query_id=query.id,
        at=kit.at(1),
    )
    ledger.submit_budget_event(event)
    await ledger.aflush()
    assert ledger.budget_events() == [event]
    assert ledger.budget_events(query.id) == [event]
    assert ledger.budget_events("other") == []
