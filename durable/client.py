"""Starting a query as a workflow, and its outcome as the in-process engine reports it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.exceptions import RedisError
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from spendgraph.durable.codec import record_from_json
from spendgraph.durable.layer import error_of
from spendgraph.durable.names import WORKFLOW
from spendgraph.durable.spec import QuerySpec
from spendgraph.durable.stream import DELTA, DONE, DeltaSubscription, run_event
from spendgraph.graph import RunFinished, RunOptions, RunResult, RunStarted
from spendgraph.graph.events import RunEvent
from spendgraph.graph.state import AgentOutput
from spendgraph.providers.errors import SpendgraphError
from spendgraph.providers.ledger.records import QueryStatus, new_id
from spendgraph.providers.spend import Spend

log = logging.getLogger("spendgraph.durable")
# How long the last events may take to arrive once the workflow has ended.
_LAST_WORD_S = 5.0


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
        raise failure_of(spec, exc) from exc
    return run_result(outcome)


def failure_of(spec: QuerySpec, exc: WorkflowFailureError) -> SpendgraphError:
    """A failed workflow as the error the in-process run would have raised (by type)."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return error_of(cause)
    return SpendgraphError(f"query {spec.query_id} failed: {cause}")


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


async def query_events(
    client: Client, spec: QuerySpec, task_queue: str, redis_url: str | None
) -> AsyncIterator[RunEvent]:
    """The query's run as the in-process engine's events: :class:`RunStarted`, then (with
    ``redis_url``) the token deltas and agent events the workers publish, as they come,
    and last :class:`RunFinished`; a failed query raises its error.

    A delta of a call's earlier delivery (its worker died mid-stream) that arrives after
    the retry began is dropped. Stopping the iteration early leaves the query running
    on the workers: it is durable, and finishes (and is recorded) without the caller."""
    yield RunStarted(spec.query_id, spec.thread_id)
    async with contextlib.AsyncExitStack() as stack:
        subscription = await _subscribed(stack, redis_url, spec.query_id)
        handle = await start_query(client, spec, task_queue)
        outcome = asyncio.ensure_future(_outcome(handle, spec))
        stack.callback(outcome.cancel)
        if subscription is not None:
            async for event in _live(subscription, outcome):
                yield event
        yield RunFinished(await outcome)


async def _subscribed(stack, redis_url: str | None, query_id: str) -> DeltaSubscription | None:
    """The query's channel, subscribed before it starts; None without Redis (or with a
    Redis that fails: the answer then comes whole, as the query ends)."""
    if redis_url is None:
        return None
    subscription = DeltaSubscription(redis_url, query_id)
    try:
        return await stack.enter_async_context(subscription)
    except (RedisError, OSError) as exc:
        log.warning("query %s not streamed: Redis at %s failed (%s)", query_id, redis_url, exc)
        return None


async def _outcome(handle, spec: QuerySpec) -> RunResult:
    try:
        return run_result(await handle.result())
    except WorkflowFailureError as exc:
        raise failure_of(spec, exc) from exc


async def _live(subscription: DeltaSubscription, outcome: asyncio.Future) -> AsyncIterator:
    """The published events until the driver's ``done`` (or a short wait once the
    workflow has ended: a driver that died never sent it)."""
    latest: dict[str, int] = {}
    messages = aiter(subscription.events())
    while True:
        receiving = asyncio.ensure_future(anext(messages, None))
        await asyncio.wait({receiving, outcome}, return_when=asyncio.FIRST_COMPLETED)
        if not receiving.done():
            try:  # `done` was published before the driver returned: let it arrive
                await asyncio.wait_for(receiving, timeout=_LAST_WORD_S)
            except TimeoutError:
                return
        message = receiving.result()
        if message is None or message.get("type") == DONE:
            return
        if message.get("type") == DELTA:
            key, delivery = message["key"], message["delivery"]
            if delivery < latest.get(key, 0):
                continue
            latest[key] = delivery
        event = run_event(message)
        if event is not None:
            yield event


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
