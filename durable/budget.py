"""A durable query's budgets: its own limit held in the shared budget store, like the scoped ones.

In process, a query's own limit is a :class:`~spendgraph.providers.budget.Budget`
in the one process running it. A durable query's calls run as activities on
any worker, several at once (research_chat's twelve specialists): a limit each
worker enforced on its own -- "the limit minus what the query spent so far" --
would let parallel branches overshoot together. So the query's limit becomes
an allowance of the budget store (scope ``query``, keyed by the query id) held
in the same all-or-nothing reserve as the tenant/user/app/thread ones: on a
PostgreSQL ledger that is one row lock shared by every worker, so the holds of
all in-flight calls of the query never add up past the limit, and a refusal is
recorded as a ``budget_denied`` row like any other. The account is dropped when
the query closes (:func:`query_key`), so the store does not grow by a row a query.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from spendgraph.durable.spec import QuerySpec
from spendgraph.providers.budget import BudgetLimits
from spendgraph.providers.budgets import (
    BudgetLimit,
    BudgetStore,
    Period,
    PeriodSpend,
    QueryBudget,
    ScopeIds,
    ScopeKey,
    ScopeKind,
    budget_store_for,
)
from spendgraph.providers.budgets.limits import period_start
from spendgraph.providers.budgets.query import split_limits
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import utcnow


def query_budget_store(layer: ProviderLayer) -> BudgetStore:
    """The worker's budget store: shared in PostgreSQL on a PostgreSQL ledger (the
    layer's choice), seeded from the ledger -- a query's account from its rows."""

    async def spent_before(key: ScopeKey) -> PeriodSpend:
        ledger = layer.ledger
        await ledger.aflush()
        if key.kind is ScopeKind.QUERY:
            spend = (await asyncio.to_thread(ledger.query_summary, key.id)).spend
            return PeriodSpend(spend.known_cost, spend.total_tokens)
        usd, tokens = await asyncio.to_thread(
            ledger.period_spend, key.kind.value, key.id, key.period_start, key.period_end()
        )
        return PeriodSpend(usd, tokens)

    return budget_store_for(layer.ledger, spent_before)


async def call_budget(
    layer: ProviderLayer, store: BudgetStore, spec: QuerySpec
) -> QueryBudget | None:
    """The budgets one call of the query is held to, all in ``store`` (None: no budget)."""
    declared = (*layer.budgets, *await layer.stored_limits.current())
    ids = ScopeIds(
        query="", user=spec.user, app=spec.app, thread=spec.thread_id, tenant=spec.tenant
    )
    limits, scoped = split_limits(declared, ids, spec.budget, spec.budget_tokens)
    # Not a calendar scope: the limit travels with the request, keyed by the query id.
    if not limits.unlimited:
        own = BudgetLimit(ScopeKind.QUERY, Period.QUERY, limits.usd, limits.tokens)
        scoped = (*scoped, own)
    if not scoped:
        return None
    return QueryBudget(BudgetLimits(), scoped, replace(ids, query=spec.query_id), store)


def query_key(query_id: str) -> ScopeKey:
    """The budget store's key of a query's own limit."""
    return ScopeKey(ScopeKind.QUERY, query_id, Period.QUERY, period_start(Period.QUERY, utcnow()))
