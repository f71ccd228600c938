"""Shared budgets through the real provider layer: the store is chosen by the ledger, stored
limits bind every query, and worker processes on one PostgreSQL ledger never overshoot
a tenant's budget together, and a killed worker's holds are freed within its lease."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal

import pytest
from budget_workers import (
    ENDPOINT_TOML,
    MESSAGES,
    TENANT,
    hold_in_query,
    run_workers,
    tenant_month,
    tenant_queries,
)
from sqlalchemy import text

from spendgraph.providers.budgets import (
    BudgetLimit,
    InMemoryBudgetStore,
    PostgresBudgetStore,
    ScopeBudgetExceeded,
    ScopeKind,
    remove_limit,
    set_limit,
)
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import CallStatus, Ledger

REQUEST = ChatRequest(messages=MESSAGES, max_tokens=32)


@pytest.fixture
async def layer_on(sim):
    """``layer_on(ledger)``: a provider layer on the simulator, closed afterwards."""
    layers: list[ProviderLayer] = []

    def build(ledger: Ledger) -> ProviderLayer:
        toml = ENDPOINT_TOML.replace("{sim}", sim.base_url)
        layer = ProviderLayer(parse_config(toml, source="test.toml", env={}), ledger, env={})
        layers.append(layer)
        return layer

    yield build
    for layer in layers:
        await layer.aclose(close_ledger=False)


async def test_the_ledger_chooses_the_store(layer_on, pg_ledger, ledger):
    assert isinstance(layer_on(pg_ledger).budget_store, PostgresBudgetStore)
    assert isinstance(layer_on(ledger).budget_store, InMemoryBudgetStore)  # SQLite


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
async def test_a_stored_limit_binds_every_query_of_its_tenant(layer_on, where, request):
    ledger = request.getfixturevalue("ledger" if where == "sqlite" else "pg_ledger")
    layer = layer_on(ledger)
    set_limit(ledger.engine, BudgetLimit("tenant", "month", usd=Decimal("0.00002"), id=TENANT))
    with pytest.raises(ScopeBudgetExceeded) as refused:
        for _ in range(20):
            async with layer.query(tenant=TENANT):
                await layer.chat(REQUEST)
    assert refused.value.key.kind is ScopeKind.TENANT and refused.value.key.id == TENANT
    async with layer.query(tenant="globex") as other:  # another tenant is not held to it
        await layer.chat(REQUEST)
    assert other.spend.calls == 1
    # Removed: within the cache's few seconds the layer lets the tenant spend again.
    remove_limit(ledger.engine, "tenant", TENANT, "month")
    layer.stored_limits.invalidate()
    async with layer.query(tenant=TENANT) as again:
        await layer.chat(REQUEST)
    assert again.spend.calls == 1


async def test_worker_processes_share_one_tenant_budget(pg_url, pg_ledger, spawn, sim):
    limit = Decimal("0.0001")  # room for about 17 of the 45 calls' holds
    set_limit(pg_ledger.engine, BudgetLimit("tenant", "month", usd=limit, id=TENANT))
    reports = run_workers(spawn, tenant_queries, lambda i: (pg_url, sim.base_url, 15), 3)
    answered = sum(count for count, _ in reports)
    refused = sum(count for _, count in reports)
    assert answered > 0 and refused > 0, reports
    key = tenant_month()
    spent, _tokens = pg_ledger.period_spend("tenant", TENANT, key.period_start, key.period_end())
    assert spent <= limit  # overshoot 0, whichever worker served which query
    # The store counted exactly what the ledger recorded: every hold was settled to its
    # call row's cost, none is left over.
    store = PostgresBudgetStore.for_engine(pg_ledger.engine)
    assert store.spent(key).usd == spent
    await store.aclose()
    with pg_ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM budget_hold")).scalar() == 0
    denied = [
        row
        for query in pg_ledger.list_queries(limit=None)
        for row in pg_ledger.calls_for_query(query.query.id)
        if row.status is CallStatus.BUDGET_DENIED
    ]
    assert len(denied) == refused


async def test_a_killed_workers_holds_are_freed_within_its_lease(
    pg_url, pg_ledger, spawn, sim, layer_on
):
    limit = Decimal("0.001")
    set_limit(pg_ledger.engine, BudgetLimit("tenant", "month", usd=limit, id=TENANT))
    held, lease_s = spawn.Event(), 2.0
    args = (pg_url, sim.base_url, str(limit), lease_s, held)
    worker = spawn.Process(target=hold_in_query, args=args)
    worker.start()
    try:
        assert held.wait(120), "the worker never took its hold"
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # mid-query, holding the whole budget
        worker.join(30)
    killed_at = time.monotonic()
    layer = layer_on(pg_ledger)
    refusals = 0
    while True:
        try:
            async with layer.query(tenant=TENANT):
                await layer.chat(REQUEST)
            break
        except ScopeBudgetExceeded:
            refusals += 1
            await asyncio.sleep(0.2)
        # The hold itself lasts 15 minutes: only the dead worker's lease can free it.
        assert time.monotonic() - killed_at < lease_s + 20, "the dead worker's hold stayed"
    assert refusals >= 1
    with pg_ledger.engine.connect() as conn:
        states = conn.execute(text("SELECT state FROM budget_hold ORDER BY created_at")).all()
    assert [state for (state,) in states] == ["released"]  # the granted call settled (gone)


async def test_a_hold_is_taken_under_the_call_rows_id(layer_on, pg_ledger):
    layer = layer_on(pg_ledger)
    set_limit(pg_ledger.engine, BudgetLimit("tenant", "day", usd=Decimal(1), id=TENANT))
    async with layer.query(tenant=TENANT) as scope, layer.stream(REQUEST) as chunks:
        async for _ in chunks:
            break  # mid-stream: the attempt holds
        with pg_ledger.engine.connect() as conn:
            (held,) = conn.execute(text("SELECT attempt_id FROM budget_hold")).scalars()
    (row,) = pg_ledger.calls_for_query(scope.id)
    assert row.id == held  # what the reconciliation looks the attempt up by
