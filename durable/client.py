"""Starting a query as a workflow, and its outcome as the in-process engine reports it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from spendgraph.durable.codec import record_from_json
from spendgraph.durable.names import WORKFLOW
from spendgraph.durable.spec import QuerySpec
from spendgraph.durable.stream import DeltaSubscription
from spendgraph.graph import RunOptions, RunResult
from spendgraph.graph.state import AgentOutput
from spendgraph.providers.errors import SpendgraphError
from spendgraph.providers.ledger.records import QueryStatus, new_id
from spendgraph.providers.spend import Spend


def query_spec(
    app: str,
    text: str,
    options: RunOptions,
    *,
    thread_id: str | None = None,
    heartbeat_s: float | None = None,
) -> QuerySpec:
    """The workflow input of one query of ``app`` (a new query id; a new thread if None)."""
    budget = options.budget_usd
    return QuerySpec(
        query_id=new_id(),
        app=app,
        text=text,
        thread_id=thread_id or new_id(),
        user=options.user,
        tenant=options.tenant,
        budget_usd=None if budget is None else str(budget),
        budget_tokens=options.budget_tokens,
        store_text=options.store_text,
        stream_tokens=options.stream_tokens,
        recursion_limit=options.recursion_limit,
        heartbeat_s=heartbeat_s,
    )


async def start_query(client: Client, spec: QuerySpec, task_queue: str):
    """Start the query's workflow (its id is the query id); returns its handle."""
    return await client.start_workflow(
        WORKFLOW, spec.to_json(), id=spec.query_id, task_queue=task_queue, result_type=dict
    )


async def run_query(client: Client, spec: QuerySpec, task_queue: str) -> RunResult:
    """Run one query on the workers of ``task_queue`` and wait for how it ended."""
    handle = await start_query(client, spec, task_queue)
    try:
        outcome = await handle.result()
    except WorkflowFailureError as exc:
        raise SpendgraphError(f"query {spec.query_id} failed: {exc.cause}") from exc
    return run_result(outcome)


async def run_query_streaming(
    client: Client,
    spec: QuerySpec,
    task_queue: str,
    redis_url: str,
    on_event: Callable[[dict[str, Any]], None],
) -> RunResult:
    """:func:`run_query`, handing each token delta (from the query's Redis channel, see
    :mod:`spendgraph.durable.stream`) to ``on_event`` as the workers publish it."""
    async with DeltaSubscription(redis_url, spec.query_id) as subscription:

        async def pump() -> None:
            async for event in subscription.events():
                on_event(event)

        pumping = asyncio.create_task(pump())
        try:
            result = await run_query(client, spec, task_queue)
            # `done` was published before the driver returned: let it arrive.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pumping), timeout=5)
            return result
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping


def run_result(outcome: dict[str, Any]) -> RunResult:
    """A workflow's outcome as a :class:`RunResult` (spend summed from its call records)."""
    calls = tuple(record_from_json(r) for r in outcome["calls"])
    spend = Spend()
    for record in calls:
        spend = spend + Spend.of_call(record)
    return RunResult(
        answer=outcome["answer"],
        status=QueryStatus(outcome["status"]),
        query_id=outcome["query_id"],
        thread_id=outcome["thread_id"],
        steps=outcome["steps"],
        spend=spend,
        outputs=tuple(AgentOutput.from_state(o) for o in outcome["outputs"]),
        stop_reason=outcome["stop_reason"],
        calls=calls,
    )
