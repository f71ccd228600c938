"""A durable query's own budget holds across parallel branches and workers: research_chat's
specialists run as activities on two workers at once, each reserving in the shared
PostgreSQL budget store; together they never spend past the limit, and the calls it
refused are ``budget_denied`` rows."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from temporalio.client import Client

from spendgraph.cli.apps import load_app
from spendgraph.durable.budget import query_key
from spendgraph.durable.client import query_spec, run_query
from spendgraph.graph import open_checkpointer
from spendgraph.providers.budgets import PostgresBudgetStore
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallStatus, QueryStatus
from spendgraph.providers.spend import Spend

RESEARCH = load_app("research_chat")
# Room for the planner and a few specialists (each reserves its upper bound, well
# above what it then costs), not for all twelve and the synthesizer.
LIMIT = Decimal("0.00015")


async def test_parallel_branches_on_two_workers_stay_within_the_querys_budget(
    worker_for, temporal_server, pg_url, sim, config
):
    layers = [ProviderLayer(config, Ledger.open(pg_url), env={}) for _ in range(2)]
    try:
        async with open_checkpointer(pg_url) as checkpointer, contextlib.AsyncExitStack() as stack:
            queue = await stack.enter_async_context(worker_for(layers[0], RESEARCH, checkpointer))
            await stack.enter_async_context(
                worker_for(layers[1], RESEARCH, checkpointer, queue=queue)
            )
            client = await Client.connect(temporal_server)
            options = RESEARCH.run_options(budget_usd=LIMIT)
            spec = query_spec(RESEARCH.name, RESEARCH.samples[0], options)
            result = await run_query(client, spec, queue)
        ledger = layers[0].ledger
        rows = ledger.calls_for_query(result.query_id)
        summary = ledger.query_summary(result.query_id)
        store = PostgresBudgetStore.for_engine(ledger.engine)
        try:
            account = store.spent(query_key(result.query_id))
        finally:
            await store.aclose()
    finally:
        for layer in layers:
            await layer.aclose()

    assert (
        result.status is QueryStatus.BUDGET_EXHAUSTED and summary.query.status == "budget_exhausted"
    )
    ok = [r for r in rows if r.status is CallStatus.OK]
    denied = [r for r in rows if r.status is CallStatus.BUDGET_DENIED]
    assert len(ok) >= 2 and denied  # some specialists ran, the budget refused others
    assert all(r.cost_usd == 0 and r.usage.total_tokens == 0 for r in denied)
    assert {r.agent_path for r in denied} - {"planner"}  # refused branches, not the start
    summed = Spend()
    for record in rows:
        summed = summed + Spend.of_call(record)
    assert summary.spend == summed == result.spend
    assert summed.cost <= LIMIT  # the limit held across the branches and the workers
    # Every hold settled, the query's account was dropped when it closed.
    assert account is None
