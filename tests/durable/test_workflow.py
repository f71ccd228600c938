"""A pipeline query as a Temporal workflow, end to end: dev server, a worker in this
process, the simulator, PostgreSQL for the ledger and the checkpoints."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from spendgraph.agents import Agent
from spendgraph.durable.activities import QueryActivities
from spendgraph.durable.client import query_spec, run_query
from spendgraph.durable.worker import TemporalTarget, run_worker
from spendgraph.graph import open_checkpointer, pipeline, run_graph, with_checkpointer
from spendgraph.graph.app import App
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallStatus, QueryStatus
from spendgraph.providers.spend import Spend

AGENTS = [
    Agent("outline", "Outline an answer in three bullets.", model="default", max_tokens=64),
    Agent("draft", "Write the answer from the outline.", model="default", max_tokens=96),
    Agent("edit", "Tighten the draft.", model="large", max_tokens=64),
]
APP = App(name="three_step", description="three agents in a row", build=lambda: pipeline(AGENTS))


async def test_a_pipeline_query_runs_as_a_workflow_and_is_recorded_once(
    temporal_server, pg_url, sim, config
):
    ledger = Ledger.open(pg_url)
    layer = ProviderLayer(config, ledger, env={})
    target = TemporalTarget(address=temporal_server, task_queue=f"t-{uuid.uuid4().hex[:8]}")
    try:
        async with open_checkpointer(pg_url) as checkpointer:
            client = await Client.connect(temporal_server)
            stop = asyncio.Event()
            activities = QueryActivities(layer, APP, checkpointer)
            worker = asyncio.create_task(run_worker(client, activities, target, stop))
            try:
                spec = query_spec(APP.name, "What is a prefix cache?", APP.run_options())
                result = await run_query(client, spec, target.task_queue)
            finally:
                stop.set()
                await worker
            # The same query in process, for comparison.
            graph = with_checkpointer(APP.build(), checkpointer)
            local = await run_graph(graph, layer, "What is a prefix cache?")
        await ledger.aflush()
        rows = ledger.calls_for_query(result.query_id)
        summary = ledger.query_summary(result.query_id)
    finally:
        await layer.aclose()

    assert result.status is QueryStatus.OK and result.answer
    assert result.query_id == spec.query_id and result.steps == local.steps
    assert [o.agent for o in result.outputs] == ["outline", "draft", "edit"]
    # One ok row per model call, each row once, attributed to its agent and node.
    assert sorted(r.id for r in rows) == sorted(r.id for r in result.calls)
    ok = [r for r in rows if r.status is CallStatus.OK]
    assert [r.agent_path for r in ok] == ["outline", "draft", "edit"] == [r.node for r in ok]
    assert len(ok) == len([r for r in local.calls if r.status is CallStatus.OK])
    # Totals: the workflow's spend is the sum of the ledger's rows.
    summed = Spend()
    for record in rows:
        summed = summed + Spend.of_call(record)
    assert result.spend == summed == summary.spend
    assert summary.query.status == QueryStatus.OK.value and summary.query.finished_at is not None
