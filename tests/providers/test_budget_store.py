"""The in-memory budget store: all-or-nothing holds, no overshoot, expiry, thresholds once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendgraph.providers.budgets import (
    Allowance,
    BudgetLimit,
    BudgetLimits,
    HoldRequest,
    InMemoryBudgetStore,
    Period,
    PeriodSpend,
    QueryBudget,
    ScopeBudgetExceeded,
    ScopeIds,
    ScopeKey,
    ScopeKind,
    period_start,
)
from spendgraph.providers.budgets.query import split_limits

NOW = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
DAY = ScopeKey(ScopeKind.USER, "ana", Period.DAY, period_start(Period.DAY, NOW))
MONTH = ScopeKey(ScopeKind.APP, "shop", Period.MONTH, period_start(Period.MONTH, NOW))


class Clock:
    """A clock the test moves by hand (expiry without waiting)."""

    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def request(attempt: str, *allowances: Allowance, usd="0.1", tokens=10, ttl_s=60) -> HoldRequest:
    amount = None if usd is None else Decimal(usd)
    return HoldRequest(attempt, allowances, amount, tokens, NOW + timedelta(seconds=ttl_s))


def test_periods_are_utc_calendar_days_and_months():
    assert DAY.period_start == datetime(2026, 12, 31, tzinfo=UTC)
    assert DAY.period_end() == datetime(2027, 1, 1, tzinfo=UTC)
    assert MONTH.period_start == datetime(2026, 12, 1, tzinfo=UTC)
    assert MONTH.period_end() == datetime(2027, 1, 1, tzinfo=UTC)
    assert str(DAY) == "user 'ana' day 2026-12-31"


def test_limits_are_checked_when_declared():
    with pytest.raises(ValueError, match="usd and/or tokens"):
        BudgetLimit("user", "day")
    with pytest.raises(ValueError, match="period 'query' goes with scope 'query'"):
        BudgetLimit("user", "query", usd=1)
    assert BudgetLimit("app", "month", usd=2).usd == Decimal(2)


async def test_a_hold_is_all_or_nothing_across_its_scopes():
    store = InMemoryBudgetStore()
    day = Allowance(DAY, usd=Decimal("1"))
    month = Allowance(MONTH, usd=Decimal("0.15"))
    await store.reserve(request("a1", day, month))
    with pytest.raises(ScopeBudgetExceeded) as refused:
        await store.reserve(request("a2", day, month))
    assert refused.value.key == MONTH and "app 'shop' month 2026-12" in str(refused.value)
    # the day allowance, which had room, holds nothing for the refused request
    assert store.held(DAY) == PeriodSpend(Decimal("0.1"), 10)


async def test_fifty_concurrent_reservations_never_overshoot():
    store = InMemoryBudgetStore()
    day = Allowance(DAY, usd=Decimal("1.00"))

    async def one(i: int):
        try:
            return await store.reserve(request(f"a{i}", day, usd="0.03"))
        except ScopeBudgetExceeded:
            return None

    holds = [h for h in await asyncio.gather(*(one(i) for i in range(50))) if h is not None]
    assert len(holds) == 33  # floor(1.00 / 0.03)
    for hold in holds:
        await store.settle(hold, usd=Decimal("0.02"), tokens=5)
    assert store.spent(DAY) == PeriodSpend(Decimal("0.66"), 165)
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)


async def test_unknown_price_is_refused_by_a_usd_limit_only():
    store = InMemoryBudgetStore()
    with pytest.raises(ScopeBudgetExceeded, match="price is unknown"):
        await store.reserve(request("a1", Allowance(DAY, usd=Decimal(1)), usd=None))
    await store.reserve(request("a2", Allowance(MONTH, tokens=100), usd=None))


async def test_an_expired_hold_stops_counting():
    clock = Clock()
    store = InMemoryBudgetStore(clock=clock)
    day = Allowance(DAY, usd=Decimal("0.15"))
    stray = await store.reserve(request("crashed", day, ttl_s=60))  # never settled
    with pytest.raises(ScopeBudgetExceeded):
        await store.reserve(request("a2", day))
    clock.now = NOW + timedelta(seconds=60)
    fresh = await store.reserve(request("a3", day, ttl_s=600))
    # The stray attempt did finish after all: its cost counts, its hold is not freed twice.
    await store.settle(stray, usd=Decimal("0.01"), tokens=1)
    assert store.held(DAY) == PeriodSpend(Decimal("0.1"), 10)
    await store.release(fresh)
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)
    assert store.spent(DAY) == PeriodSpend(Decimal("0.01"), 1)


async def test_thresholds_fire_once_each():
    store = InMemoryBudgetStore()
    day = Allowance(DAY, usd=Decimal("1"))
    fired = []
    for cost in ("0.5", "0.3", "0.1", "0.05", "0.04"):
        hold = await store.reserve(request(f"a{cost}", day, usd="0.01"))
        fired.append(await store.settle(hold, usd=Decimal(cost), tokens=1))
    assert [[c.threshold for c in crossed] for crossed in fired] == [
        [],
        [Decimal("0.8")],
        [],
        [Decimal("0.95")],
        [],
    ]
    assert fired[1][0].spent == Decimal("0.8") and fired[1][0].limit == Decimal("1")


async def test_a_period_starts_from_the_loaders_spend_and_does_not_refire():
    loaded = []

    async def loader(key: ScopeKey) -> PeriodSpend:
        loaded.append(key)
        return PeriodSpend(Decimal("0.85"), 0)

    store = InMemoryBudgetStore(loader)
    day = Allowance(DAY, usd=Decimal("1"))
    hold = await store.reserve(request("a1", day))
    crossed = await store.settle(hold, usd=Decimal("0.1"), tokens=1)
    assert [c.threshold for c in crossed] == [Decimal("0.95")]  # 80% was passed before
    with pytest.raises(ScopeBudgetExceeded):
        await store.reserve(request("a2", day))
    assert loaded == [DAY]  # loaded once


def test_a_querys_limits_resolve_to_its_scopes_tightest_first():
    ids = ScopeIds(query="q1", user="ana", app="shop")  # no thread
    declared = (
        BudgetLimit("user", "day", usd=5),
        BudgetLimit("user", "day", usd=8, tokens=100, id="ana"),  # the same key: merged
        BudgetLimit("user", "day", usd=1, id="bob"),  # someone else's
        BudgetLimit("query", "query", usd="0.5"),
        BudgetLimit("thread", "day", usd=1),  # the query has no thread
    )
    limits, scoped = split_limits(declared, ids, "0.7", None)
    assert limits == BudgetLimits(usd=Decimal("0.5"))
    assert scoped == (BudgetLimit("user", "day", usd=Decimal(5), tokens=100),)


async def test_ended_periods_are_forgotten():
    clock = Clock()
    store = InMemoryBudgetStore(clock=clock)
    hold = await store.reserve(request("a1", Allowance(DAY, usd=Decimal(1))))
    await store.settle(hold, usd=Decimal("0.1"), tokens=1)
    clock.now = NOW + timedelta(days=1)
    tomorrow = ScopeKey(ScopeKind.USER, "ana", Period.DAY, period_start(Period.DAY, clock.now))
    await store.reserve(request("a2", Allowance(tomorrow, usd=Decimal(1)), ttl_s=2 * 86400))
    assert store.spent(DAY) is None and store.held(tomorrow) == PeriodSpend(Decimal("0.1"), 10)


async def test_a_scoped_refusal_gives_the_querys_own_hold_back():
    store = InMemoryBudgetStore()
    ids = ScopeIds(query="q1", user="ana")
    scoped = (BudgetLimit("user", "day", usd=Decimal("0.15")),)
    budget = QueryBudget(BudgetLimits(usd=Decimal(1)), scoped, ids, store, clock=Clock())
    await budget.reserve("a1", usd=Decimal("0.1"), tokens=1)
    with pytest.raises(ScopeBudgetExceeded) as refused:
        await budget.reserve("a2", usd=Decimal("0.1"), tokens=1)
    assert refused.value.query_id == "q1" and refused.value.key == DAY
    assert budget.query.remaining_usd() == Decimal("0.9")  # only a1 is held
