"""The activities a worker runs: open and close the Query row, drive the graph, make a call.

One :class:`QueryActivities` per worker process, around that worker's provider
layer (its ledger is the shared PostgreSQL one), its thread checkpointer and the
app it serves. ``model_call`` is where money is spent: one logical call
(``layer.chat``: routing, retries, fallbacks, one ledger row per HTTP attempt)
under the query's id, agent path, node and budget, as they travelled in the
call's arguments. Its rows are committed before it reports success.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from temporalio import activity
from temporalio.exceptions import ApplicationError

from spendgraph.durable.codec import record_to_json, request_from_json, result_to_json
from spendgraph.durable.heartbeat import heartbeating
from spendgraph.durable.layer import WorkflowLayer
from spendgraph.durable.lost import delivery_request_id, finished, lost_attempt
from spendgraph.durable.names import CLOSE_QUERY, DRIVE_GRAPH, MODEL_CALL, OPEN_QUERY
from spendgraph.durable.spec import QuerySpec
from spendgraph.durable.stream import DELTA, DONE, DeltaPublisher
from spendgraph.graph import RunOptions, run_graph, with_checkpointer
from spendgraph.graph.app import App
from spendgraph.providers.budgets import QueryBudget, ScopeIds
from spendgraph.providers.budgets.query import split_limits
from spendgraph.providers.context import QueryScope, agent_scope, query_context
from spendgraph.providers.errors import SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallRecord, QueryRecord, QueryStatus, utcnow


def _last_start(details) -> datetime | None:
    """When the previous delivery started, from its heartbeat (None: it never beat)."""
    for detail in details or ():
        if isinstance(detail, dict) and detail.get("started_at"):
            return datetime.fromisoformat(detail["started_at"])
    return None


def _non_retryable(exc: SpendgraphError) -> ApplicationError:
    """A provider error as Temporal sees it: final (the layer already retried), typed."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


class QueryActivities:
    """The activities of one worker, bound to its layer, checkpointer and app."""

    def __init__(
        self,
        layer: ProviderLayer,
        app: App,
        checkpointer: BaseCheckpointSaver | None,
        publisher: DeltaPublisher | None = None,
    ):
        """``publisher``: where streamed calls' token deltas go (None: calls are not streamed)."""
        self.layer = layer
        self.app = app
        self.publisher = publisher
        self.checkpointer = checkpointer if app.keep_threads else None
        self._graph = None

    def all(self) -> list[Any]:
        return [self.open_query, self.drive_graph, self.model_call, self.close_query]

    @property
    def graph(self):
        if self._graph is None:
            self._graph = with_checkpointer(self.app.build(), self.checkpointer)
        return self._graph

    # -- the Query row ----------------------------------------------------

    @activity.defn(name=OPEN_QUERY)
    async def open_query(self, data: dict[str, Any]) -> str | None:
        """Open the Query row (once, by id) and return the thread's checkpoint before it."""
        spec = QuerySpec.from_json(data)
        self._check_app(spec)
        ledger = self.layer.ledger
        if spec.query_id not in ledger.query_ids_with_prefix(spec.query_id, limit=1):
            keep_text = self._keep_text(spec)
            record = QueryRecord(
                app=spec.app,
                thread_id=spec.thread_id,
                user=spec.user,
                tenant=spec.tenant,
                budget_usd=spec.budget,
                budget_tokens=spec.budget_tokens,
                store_text=keep_text,
                input_preview=spec.text if keep_text else None,
                id=spec.query_id,
            )
            await ledger.open_query(record)
        if self.checkpointer is None:
            return None
        config = {"configurable": {"thread_id": spec.thread_id, "checkpoint_ns": ""}}
        found = await self.checkpointer.aget_tuple(config)
        return None if found is None else found.config["configurable"]["checkpoint_id"]

    @activity.defn(name=CLOSE_QUERY)
    async def close_query(self, data: dict[str, Any]) -> None:
        """Close the Query row with the run's status (every call row is committed by now)."""
        status = QueryStatus(data["status"])
        await self.layer.ledger.close_query(data["query_id"], status, error=data.get("error"))

    # -- the graph ----------------------------------------------------------

    @activity.defn(name=DRIVE_GRAPH)
    async def drive_graph(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the app's graph for the query; its model calls go through the workflow."""
        spec = QuerySpec.from_json(data)
        self._check_app(spec)
        info = activity.info()
        if info.attempt > 1 and spec.base_checkpoint is None and self.checkpointer is not None:
            # A new thread: what an earlier delivery checkpointed is this query's own.
            await self.checkpointer.adelete_thread(spec.thread_id)
        handle = activity.client().get_workflow_handle(
            info.workflow_id, run_id=info.workflow_run_id
        )
        layer = WorkflowLayer(self.layer, handle, spec)
        options = RunOptions(
            app=spec.app,
            user=spec.user,
            tenant=spec.tenant,
            stream_tokens=spec.stream_tokens,
            recursion_limit=spec.recursion_limit,
            from_checkpoint=spec.base_checkpoint,
        )
        try:
            async with heartbeating():
                result = await run_graph(
                    self.graph, layer, spec.text, thread_id=spec.thread_id, options=options
                )
        except SpendgraphError as exc:
            raise _non_retryable(exc) from exc
        finally:
            if self.publisher is not None:
                await self.publisher.publish(spec.query_id, {"type": DONE})
        return {
            "query_id": result.query_id,
            "thread_id": result.thread_id,
            "answer": result.answer,
            "status": result.status.value,
            "stop_reason": result.stop_reason,
            "steps": result.steps,
            "outputs": [output.to_state() for output in result.outputs],
            "calls": [record_to_json(record) for record in result.calls],
        }

    # -- one model call ------------------------------------------------------

    @activity.defn(name=MODEL_CALL)
    async def model_call(self, call: dict[str, Any]) -> dict[str, Any]:
        """One logical model call of the query, its attempts' rows committed on return
        (with those of earlier deliveries that died: see :mod:`spendgraph.durable.lost`)."""
        spec = QuerySpec.from_json(call["spec"])
        info = activity.info()
        request_id = delivery_request_id(info.workflow_id or "", info.activity_id, info.attempt)
        request = replace(request_from_json(call["request"]), request_id=request_id)
        scope = await self._call_scope(spec, call["remaining"])
        with query_context(scope), agent_scope(call["agent_path"], node=call["node"] or None):
            earlier = await self._earlier_deliveries(spec, request, call, info)
            try:
                async with heartbeating({"started_at": utcnow().isoformat()}):
                    result = await self._call(request, call, spec.query_id, info.attempt)
            except SpendgraphError as exc:
                raise _non_retryable(exc) from exc
            finally:
                await self.layer.ledger.aflush()
        return result_to_json(result, earlier)

    async def _earlier_deliveries(self, spec, request, call, info) -> tuple[CallRecord, ...]:
        """The rows earlier deliveries of this call left, with the lost attempt of each
        that died mid-call written now."""
        if info.attempt == 1:
            return ()
        ledger = self.layer.ledger
        await ledger.aflush()
        rows = await asyncio.to_thread(ledger.calls_for_query, spec.query_id)
        started = _last_start(info.heartbeat_details) or info.current_attempt_scheduled_time
        found: list[CallRecord] = []
        for delivery in range(1, info.attempt):
            request_id = delivery_request_id(info.workflow_id or "", info.activity_id, delivery)
            mine = [r for r in rows if r.request_id == request_id]
            if not finished(mine):
                record = lost_attempt(
                    self.layer,
                    request,
                    request_id=request_id,
                    attempt=len(mine) + 1,
                    started_at=started,
                    stream=bool(call.get("stream")),
                )
                await ledger.record_call(record)
                mine.append(record)
            found.extend(mine)
        return tuple(found)

    async def _call(self, request, call: dict[str, Any], query_id: str, delivery: int):
        """``layer.chat``, or a stream whose deltas go out to the query's channel."""
        if not (call.get("stream") and self.publisher is not None):
            return await self.layer.chat(request)
        base = {"type": DELTA, "key": call["key"], "delivery": delivery}
        base |= {"agent_path": call["agent_path"], "node": call["node"]}
        async with self.layer.stream(request) as chunks:
            async for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        event = {**base, "text": choice.delta.content}
                        await self.publisher.publish(query_id, event)
        assert chunks.result is not None  # set when the stream ends normally
        return chunks.result

    async def _call_scope(self, spec: QuerySpec, remaining: dict[str, Any]) -> QueryScope:
        """The query as this call's scope: what is left of its own budget (as the graph
        driver saw it) plus the scoped budgets of the shared store."""
        layer = self.layer
        declared = (*layer.budgets, *await layer.stored_limits.current())
        ids = ScopeIds(
            query="", user=spec.user, app=spec.app, thread=spec.thread_id, tenant=spec.tenant
        )
        usd = None if remaining["usd"] is None else Decimal(remaining["usd"])
        limits, scoped = split_limits(declared, ids, usd, remaining["tokens"])
        budget = None
        if scoped or not limits.unlimited:
            budget = QueryBudget(
                limits, scoped, replace(ids, query=spec.query_id), layer.budget_store
            )
        return QueryScope(
            spec.query_id,
            budget=budget,
            store_text=self._keep_text(spec),
            app=spec.app,
            thread_id=spec.thread_id,
            user=spec.user,
            tenant=spec.tenant,
        )

    def _keep_text(self, spec: QuerySpec) -> bool:
        default = self.layer.config.ledger.store_text
        return default if spec.store_text is None else spec.store_text

    def _check_app(self, spec: QuerySpec) -> None:
        if spec.app != self.app.name:
            raise ApplicationError(
                f"this worker serves app {self.app.name!r}, not {spec.app!r}", non_retryable=True
            )
