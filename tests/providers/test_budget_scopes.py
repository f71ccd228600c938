"""User, app and thread budgets through the layer: shared by queries, kept across restarts."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from spendgraph.providers.budgets import (
    BudgetLimit,
    Period,
    PeriodSpend,
    ScopeBudgetExceeded,
    ScopeKey,
    ScopeKind,
    period_start,
)
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]
REQUEST = ChatRequest(messages=MESSAGES, max_tokens=32)


def budgets_toml(*entries: str) -> str:
    return "".join(f"\n[[budgets]]\n{entry}\n" for entry in entries)


def day_key(scope: str, scope_id: str) -> ScopeKey:
    today = period_start(Period.DAY, datetime.now(UTC))
    return ScopeKey(ScopeKind(scope), scope_id, Period.DAY, today)


def user_day(user: str) -> ScopeKey:
    return day_key("user", user)


def day_spend(ledger, scope: str, scope_id: str) -> PeriodSpend:
    """What the ledger says ``scope_id`` spent today."""
    ledger.flush()
    key = day_key(scope, scope_id)
    return PeriodSpend(*ledger.period_spend(scope, scope_id, key.period_start, key.period_end()))


async def spend_until_refused(layer, limit=200, **query) -> ScopeBudgetExceeded:
    """Call one at a time in one query until a scoped budget refuses; the refusal."""
    with pytest.raises(ScopeBudgetExceeded) as refused:
        async with layer.query(**query):
            for _ in range(limit):
                await layer.chat(REQUEST)
    return refused.value


async def test_a_users_day_budget_is_shared_by_concurrent_queries(
    make_layer, endpoint_toml, ledger
):
    limit = Decimal("0.00005")  # a handful of 32-token calls
    toml = endpoint_toml("b", "b200-nvfp4-0") + budgets_toml(
        f'scope = "user"\nperiod = "day"\nusd = {limit}'
    )
    layer = make_layer(toml)

    async def one():
        try:
            return await layer.chat(REQUEST)
        except BudgetExceeded:
            return None

    async def query(n: int):
        async with layer.query(user="ana", app="shop") as scope:
            results = await asyncio.gather(*(one() for _ in range(10)))
        return scope, results

    runs = await asyncio.gather(*(query(n) for n in range(5)))  # 50 calls at once
    granted = sum(r is not None for _, results in runs for r in results)
    assert 0 < granted < 50
    assert day_spend(ledger, "user", "ana").usd <= limit
    rows = [row for scope, _ in runs for row in ledger.calls_for_query(scope.id)]
    denied = [row for row in rows if row.status is CallStatus.BUDGET_DENIED]
    assert len(denied) == 50 - granted and all(row.error_kind == "budget" for row in denied)
    # Another user has a day of their own.
    async with layer.query(user="bob") as scope:
        await layer.chat(REQUEST)
    assert scope.spend.calls == 1


async def test_a_new_layer_continues_the_periods_spend(make_layer, endpoint_toml, ledger):
    toml = endpoint_toml("b", "b200-nvfp4-0") + budgets_toml(
        'scope = "user"\nperiod = "day"\nusd = 0.00004'
    )
    first = make_layer(toml)
    await spend_until_refused(first, user="ana")
    spent_before = day_spend(ledger, "user", "ana")
    restarted = make_layer(toml)  # a restart: a fresh store on the same ledger
    refused = await spend_until_refused(restarted, limit=1, user="ana")
    assert refused.key == user_day("ana")
    assert restarted.budget_store.spent(user_day("ana")) == spent_before


async def test_an_app_month_budget_from_the_query(make_layer, endpoint_toml, ledger):
    layer = make_layer(endpoint_toml("b", "b200-nvfp4-0"))
    monthly = [BudgetLimit("app", "month", usd=Decimal("0.00003"), id="shop")]
    refused = await spend_until_refused(layer, app="shop", budgets=monthly)
    assert refused.key.kind is ScopeKind.APP and refused.key.period is Period.MONTH
    assert refused.key.period_start.day == 1 and refused.key.period_start.hour == 0
    # The limit names app "shop" only: another app is not held to it.
    async with layer.query(app="blog", budgets=monthly) as scope:
        for _ in range(3):
            await layer.chat(REQUEST)
    assert scope.budget is None and scope.spend.calls == 3


async def test_a_thread_token_budget_and_the_query_status(make_layer, endpoint_toml, ledger):
    toml = endpoint_toml("b", "b200-nvfp4-0") + budgets_toml(
        'scope = "thread"\nperiod = "day"\ntokens = 200'
    )
    layer = make_layer(toml)
    refused = await spend_until_refused(layer, thread_id="t1")
    assert refused.key.kind is ScopeKind.THREAD and refused.key.id == "t1"
    assert 0 < day_spend(ledger, "thread", "t1").tokens <= 200
    ledger.flush()
    (summary,) = [q for q in ledger.list_queries() if q.query.thread_id == "t1"]
    assert summary.query.status is QueryStatus.BUDGET_EXHAUSTED
    assert summary.spend.refused == 1
    async with layer.query(thread_id="t2"):
        await layer.chat(REQUEST)


async def test_thresholds_are_recorded_and_emitted_once(make_layer, endpoint_toml, ledger):
    toml = endpoint_toml("b", "b200-nvfp4-0") + budgets_toml(
        'scope = "user"\nperiod = "day"\ntokens = 2000'
    )
    layer = make_layer(toml)
    seen = []
    with contextlib.suppress(ScopeBudgetExceeded):
        for _ in range(3):  # several queries of one user
            async with layer.query(user="ana") as scope:
                scope.on_budget_event(seen.append)
                for _ in range(20):
                    await layer.chat(REQUEST)
    ledger.flush()
    rows = ledger.budget_events()
    assert rows == seen
    assert [(r.scope, r.scope_id, r.period, r.unit) for r in rows] == [
        ("user", "ana", "day", "tokens")
    ] * 2
    assert [r.threshold for r in rows] == [Decimal("0.8"), Decimal("0.95")]
    assert all(r.spent >= r.threshold * r.limit and r.limit == 2000 for r in rows)
    assert rows[0].period_start == user_day("ana").period_start


async def test_calls_with_no_budget_touch_no_store(make_layer, endpoint_toml, ledger):
    layer = make_layer(endpoint_toml("b", "b200-nvfp4-0"))
    async with layer.query(user="ana", app="shop", thread_id="t") as scope:
        await layer.chat(REQUEST)
    assert scope.budget is None
    assert layer.budget_store.spent(user_day("ana")) is None
    assert ledger.budget_events() == []
