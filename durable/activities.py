"""The activities a worker runs: open and close the Query row, drive the graph, make a call.

One :class:`QueryActivities` per worker process, around that worker's provider
layer (its ledger is the shared PostgreSQL one), its thread checkpointer and the
app it serves. ``model_call`` is where money is spent: one logical call
(``layer.chat``: routing, retries, fallbacks, one ledger row per HTTP attempt)
under the query's id, agent path, node and budget, as they travelled in the
call's arguments. Its rows are committed, then its outcome is signalled to the
workflow, before it reports success: a worker that dies after the signal never
has the call paid twice (the redelivery returns the signalled outcome). The
outcome -- the answer text too -- lives only where the activity's result would
anyway, in the workflow's history on the Temporal server; the ledger and the
checkpoints get no text a query did not opt in to. (The server's history holds
every durable query's input and answers: an app whose text must not be stored,
like the clinical scribe, stays in process or needs an encrypting payload codec.)
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from temporalio import activity
from temporalio.exceptions import ApplicationError

from spendgraph.durable.budget import call_budget, query_budget_store, query_key
from spendgraph.durable.codec import (
    record_to_json,
    request_from_json,
    result_from_json,
    result_to_json,
)
from spendgraph.durable.heartbeat import heartbeating
from spendgraph.durable.layer import WorkflowLayer, error_type
from spendgraph.durable.lost import delivery_request_id, finished, lost_attempt
from spendgraph.durable.names import (
    CALL_ANSWER,
    CALL_ANSWERED,
    CLOSE_QUERY,
    DRIVE_GRAPH,
    MODEL_CALL,
    OPEN_QUERY,
)
from spendgraph.durable.spec import QuerySpec
from spendgraph.durable.stream import DELTA, DONE, DeltaPublisher, event_message
from spendgraph.graph import RunFinished, RunOptions, stream_graph, with_checkpointer
from spendgraph.graph.app import App
from spendgraph.providers.budgets import BudgetStore
from spendgraph.providers.context import QueryScope, agent_scope, query_context
from spendgraph.providers.errors import SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallRecord, QueryRecord, QueryStatus, utcnow

# A test hook (tests/durable/test_crash.py): with this variable set to 1, the worker
# kills itself (SIGKILL) right after a call's outcome is safe with the workflow and
# before its activity reports back -- the one moment the ledger and the workflow know
# of a finished call that Temporal does not. Unset (as everywhere outside that test): inert.
KILL_AFTER_ANSWER_ENV = "SPENDGRAPH_TEST_KILL_AFTER_ANSWER"


def _test_kill_point() -> None:
    if os.environ.get(KILL_AFTER_ANSWER_ENV) == "1":
        os.kill(os.getpid(), signal.SIGKILL)


def _last_start(details) -> datetime | None:
    """When the previous delivery started, from its heartbeat (None: it never beat)."""
    for detail in details or ():
        if isinstance(detail, dict) and detail.get("started_at"):
            return datetime.fromisoformat(detail["started_at"])
    return None


def _non_retryable(exc: SpendgraphError, *details: object) -> ApplicationError:
    """A provider error as Temporal sees it: final (the layer already retried), typed."""
    return ApplicationError(str(exc), *details, type=error_type(exc), non_retryable=True)


class QueryActivities:
    """The activities of one worker, bound to its layer, checkpointer and apps."""

    def __init__(
        self,
        layer: ProviderLayer,
        apps: App | Sequence[App],
        checkpointer: BaseCheckpointSaver | None,
        publisher: DeltaPublisher | None = None,
    ):
        """``apps``: what this worker serves (one task queue can carry several apps);
        ``publisher``: where streamed calls' token deltas go (None: calls are not streamed)."""
        self.layer = layer
        self.apps = {app.name: app for app in ([apps] if isinstance(apps, App) else apps)}
        self.publisher = publisher
        self._checkpointer = checkpointer
        self._graphs: dict[str, Any] = {}
        self._budgets: BudgetStore | None = None

    def all(self) -> list[Any]:
        return [self.open_query, self.drive_graph, self.model_call, self.close_query]

    async def aclose(self) -> None:
        """Close the budget store the calls held against (once the worker has stopped)."""
        if self._budgets is not None:
            await self._budgets.aclose()
            self._budgets = None

    def checkpointer(self, spec: QuerySpec) -> BaseCheckpointSaver | None:
        """The thread checkpointer of the spec's app (None: it keeps no threads)."""
        return self._checkpointer if self._app(spec).keep_threads else None

    def graph(self, spec: QuerySpec):
        """The spec's app's graph, compiled once per worker."""
        if spec.app not in self._graphs:
            app = self._app(spec)
            self._graphs[spec.app] = with_checkpointer(app.build(), self.checkpointer(spec))
        return self._graphs[spec.app]

    # -- the Query row ----------------------------------------------------

    @activity.defn(name=OPEN_QUERY)
    async def open_query(self, data: dict[str, Any]) -> str | None:
        """Open the Query row (once, by id) and return the thread's checkpoint before it."""
        spec = QuerySpec.from_json(data)
        checkpointer = self.checkpointer(spec)
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
        if checkpointer is None:
            return None
        config = {"configurable": {"thread_id": spec.thread_id, "checkpoint_ns": ""}}
        found = await checkpointer.aget_tuple(config)
        return None if found is None else found.config["configurable"]["checkpoint_id"]

    @activity.defn(name=CLOSE_QUERY)
    async def close_query(self, data: dict[str, Any]) -> None:
        """Close the Query row with the run's status (every call row is committed by now)."""
        status = QueryStatus(data["status"])
        await self.layer.ledger.close_query(data["query_id"], status, error=data.get("error"))
        await self._budget_store().forget(query_key(data["query_id"]))

    # -- the graph ----------------------------------------------------------

    @activity.defn(name=DRIVE_GRAPH)
    async def drive_graph(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the app's graph for the query; its model calls go through the workflow."""
        spec = QuerySpec.from_json(data)
        # This worker keeps the query's lease from now on: the worker that opened it
        # (or drove an earlier delivery) may be dead, and a lapsed lease would mark
        # the query interrupted and free its live budget holds.
        await self.layer.ledger.adopt_query(spec.query_id)
        checkpointer = self.checkpointer(spec)
        info = activity.info()
        if info.attempt > 1 and spec.base_checkpoint is None and checkpointer is not None:
            # A new thread: what an earlier delivery checkpointed is this query's own.
            await checkpointer.adelete_thread(spec.thread_id)
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
                result = await self._drive(layer, spec, options)
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

    async def _drive(self, layer: WorkflowLayer, spec: QuerySpec, options: RunOptions):
        """Run the graph; the events a caller shows go out to the query's channel."""
        result = None
        events = stream_graph(
            self.graph(spec), layer, spec.text, thread_id=spec.thread_id, options=options
        )
        async for event in events:
            if isinstance(event, RunFinished):
                result = event.result
            elif self.publisher is not None and (message := event_message(event)) is not None:
                await self.publisher.publish(spec.query_id, message)
        assert result is not None  # stream_graph ends with RunFinished or raises
        return result

    # -- one model call ------------------------------------------------------

    @activity.defn(name=MODEL_CALL)
    async def model_call(self, call: dict[str, Any]) -> dict[str, Any]:
        """One logical model call of the query, its attempts' rows committed on return
        (with those of earlier deliveries that died: see :mod:`spendgraph.durable.lost`)."""
        spec = QuerySpec.from_json(call["spec"])
        info = activity.info()
        workflow = activity.client().get_workflow_handle(
            info.workflow_id, run_id=info.workflow_run_id
        )
        if info.attempt > 1:
            async with heartbeating():  # the query may wait for a workflow task
                answered = await self._answered(workflow, call["key"])
            if answered is not None:
                return answered
        request_id = delivery_request_id(info.workflow_id or "", info.activity_id, info.attempt)
        request = replace(request_from_json(call["request"]), request_id=request_id)
        scope = await self._call_scope(spec)
        with query_context(scope), agent_scope(call["agent_path"], node=call["node"] or None):
            earlier = await self._earlier_deliveries(spec, request, call, info)
            try:
                async with heartbeating({"started_at": utcnow().isoformat()}):
                    result = await self._call(request, call, spec.query_id, info.attempt)
            except SpendgraphError as exc:
                # The failed call's rows go with its error: the query's totals count them.
                rows = [record_to_json(r) for r in (*earlier, *scope.calls)]
                raise _non_retryable(exc, {"attempts": rows}) from exc
            finally:
                await self.layer.ledger.aflush()
        outcome = result_to_json(result, earlier)
        # Rows committed; the outcome safe with the workflow before this reports back.
        await workflow.signal(CALL_ANSWERED, args=[call["key"], outcome])
        _test_kill_point()
        return outcome

    async def _answered(self, workflow, key: str) -> dict[str, Any] | None:
        """The outcome an earlier delivery sent before its worker died (None: it did not).
        Its rows are written again (a no-op by id) in case its ledger lost them."""
        answered = await workflow.query(CALL_ANSWER, key)
        if answered is None:
            return None
        for record in result_from_json(answered).attempts:
            await self.layer.ledger.record_call(record)
        return answered

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

    async def _call_scope(self, spec: QuerySpec) -> QueryScope:
        """The query as this call's scope, its budgets (its own limit too) held in the
        worker's budget store (see :mod:`spendgraph.durable.budget`)."""
        return QueryScope(
            spec.query_id,
            budget=await call_budget(self.layer, self._budget_store(), spec),
            store_text=self._keep_text(spec),
            app=spec.app,
            thread_id=spec.thread_id,
            user=spec.user,
            tenant=spec.tenant,
        )

    def _budget_store(self) -> BudgetStore:
        if self._budgets is None:
            self._budgets = query_budget_store(self.layer)
        return self._budgets

    def _keep_text(self, spec: QuerySpec) -> bool:
        default = self.layer.config.ledger.store_text
        return default if spec.store_text is None else spec.store_text

    def _app(self, spec: QuerySpec) -> App:
        app = self.apps.get(spec.app)
        if app is None:
            served = ", ".join(sorted(self.apps))
            raise ApplicationError(
                f"this worker serves {served}, not app {spec.app!r}", non_retryable=True
            )
        return app
