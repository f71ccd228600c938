"""Budgets: reservations bound concurrent calls; refusals are typed errors with a row."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from decimal import Decimal

import pytest

from spendgraph.providers.budget import Budget, BudgetLimits
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]


def test_reservations_from_many_threads_never_exceed_the_limit():
    budget = Budget(BudgetLimits(usd=Decimal("1.00")))
    granted = []

    def worker():
        for _ in range(100):
            with contextlib.suppress(BudgetExceeded):
                granted.append(budget.reserve(usd=Decimal("0.013"), tokens=0))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 76  # floor(1.00 / 0.013)
    assert budget.denied == 800 - 76
    for hold in granted:
        budget.settle(hold, usd=Decimal("0.010"), tokens=5)
    assert budget.spent_usd == Decimal("0.760")
    assert budget.remaining_usd() == Decimal("0.240")


def test_unknown_price_cannot_be_bounded_by_a_usd_budget():
    budget = Budget(BudgetLimits(usd=Decimal("1")))
    with pytest.raises(BudgetExceeded, match="price is unknown"):
        budget.reserve(usd=None, tokens=10)


def test_token_budget():
    budget = Budget(BudgetLimits(tokens=100))
    hold = budget.reserve(usd=None, tokens=60)
    with pytest.raises(BudgetExceeded, match="40 of the 100-token budget"):
        budget.reserve(usd=None, tokens=60)
    budget.settle(hold, usd=None, tokens=30)
    budget.reserve(usd=None, tokens=70)


async def test_twenty_concurrent_calls_never_overshoot(make_layer, endpoint_toml, ledger):
    layer = make_layer(endpoint_toml("b", "b200-nvfp4-0"))
    budget = Decimal("0.00005")  # enough for a handful of 64-token calls, not 20
    request = ChatRequest(messages=MESSAGES, max_tokens=64)

    async def one():
        try:
            return await layer.chat(request)
        except BudgetExceeded:
            return None

    with pytest.raises(BudgetExceeded):
        async with layer.query(budget_usd=budget) as scope:
            results = await asyncio.gather(*(one() for _ in range(20)))
            succeeded = [r for r in results if r is not None]
            concurrent_ok = len(succeeded)
            assert 0 < concurrent_ok < 20
            for _ in range(50):  # then one call at a time until the budget refuses
                succeeded.append(await layer.chat(request))
    ledger.flush()
    rows = ledger.calls_for_query(scope.id)
    ok = [r for r in rows if r.status is CallStatus.OK]
    denied = [r for r in rows if r.status is CallStatus.BUDGET_DENIED]
    assert len(ok) == len(succeeded)
    assert len(denied) == (20 - concurrent_ok) + 1  # the refused ones, and the last call
    assert all(r.cost_usd == 0 and r.usage.total_tokens == 0 for r in denied)
    summary = ledger.query_summary(scope.id)
    assert summary.spend.cost <= budget
    assert summary.query.status == QueryStatus.BUDGET_EXHAUSTED
