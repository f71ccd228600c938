"""The query workflow: open the Query row, drive the graph, run each model call once.

Deterministic code only (Temporal replays it): no spendgraph imports beyond this
layer's constants, no I/O. The graph itself runs in the ``drive_graph``
activity on some worker (LangGraph is not replay-safe); every model call it
makes comes back here as the ``model_call`` update, which runs it as an
activity of its own and remembers the outcome under the call's deterministic
key. When a worker dies, Temporal retries the activities it held: the new
driver re-runs the graph from the thread's checkpoint before the query, and
every call that had finished is answered from that memo (never run again);
only the calls in flight run twice. A call's activity also signals its outcome
(``call_answered``) once its rows are committed and before it reports back: a
worker killed in between has its call answered from that signal, by the
update and by the activity's redelivery (``call_answer``), not paid again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from spendgraph.durable.names import (
    CALL_ANSWER,
    CALL_ANSWERED,
    CLOSE_QUERY,
    DRIVE_GRAPH,
    MODEL_CALL,
    MODEL_CALL_UPDATE,
    OPEN_QUERY,
    WORKFLOW,
)

# A worker that stops heartbeating for this long is taken for dead: its
# activities are retried elsewhere (the default; a spec may shorten it).
HEARTBEAT_S = 10.0
# Deliveries of one activity: the first, plus retries after workers died.
MAX_DELIVERIES = 4
_BOOKKEEPING = timedelta(seconds=60)


@workflow.defn(name=WORKFLOW)
class QueryWorkflow:
    """One end-user query (the workflow id is the query id)."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[Any]] = {}
        # Outcomes a call's activity sent before it reported back (its worker may die
        # in between: the outcome is kept here, so the call is never paid twice).
        self._answers: dict[str, dict[str, Any]] = {}
        self._heartbeat = timedelta(seconds=HEARTBEAT_S)

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run the query described by ``spec`` (see :class:`~spendgraph.durable.spec.QuerySpec`)."""
        self._heartbeat = timedelta(seconds=float(spec.get("heartbeat_s") or HEARTBEAT_S))
        spec = dict(spec)
        spec["base_checkpoint"] = await workflow.execute_activity(
            OPEN_QUERY, spec, start_to_close_timeout=_BOOKKEEPING
        )
        try:
            outcome = await workflow.execute_activity(
                DRIVE_GRAPH,
                spec,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=self._heartbeat,
                retry_policy=RetryPolicy(maximum_attempts=MAX_DELIVERIES),
            )
        except ActivityError as exc:
            await workflow.wait_condition(self._settled)
            error = str(exc.cause or exc)
            await self._close(spec, "error", error)
            # The provider error's type name travels on, for the caller to map back.
            kind = exc.cause.type if isinstance(exc.cause, ApplicationError) else None
            raise ApplicationError(
                f"query {spec['query_id']} failed: {error}", type=kind, non_retryable=True
            ) from exc
        await workflow.wait_condition(self._settled)
        await self._close(spec, outcome["status"], None)
        return outcome

    def _settled(self) -> bool:
        """Every update answered and every call's activity reported (one answered from
        its signalled outcome, too: its redelivery reports it), so the query's calls
        are all closed before the query is."""
        calls_done = all(task.done() for task in self._calls.values())
        return workflow.all_handlers_finished() and calls_done

    async def _close(self, spec: dict[str, Any], status: str, error: str | None) -> None:
        close = {"query_id": spec["query_id"], "status": status, "error": error}
        await workflow.execute_activity(CLOSE_QUERY, close, start_to_close_timeout=_BOOKKEEPING)

    @workflow.update(name=MODEL_CALL_UPDATE)
    async def model_call(self, key: str, call: dict[str, Any]) -> dict[str, Any]:
        """The outcome of the call ``key``: run once as an activity, then remembered."""
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(
                workflow.execute_activity(
                    MODEL_CALL,
                    call,
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=self._heartbeat,
                    retry_policy=RetryPolicy(maximum_attempts=MAX_DELIVERIES),
                )
            )
            self._calls[key] = task
        await workflow.wait_condition(lambda: task.done() or key in self._answers)
        if not task.done():  # answered, though its activity has not reported (yet)
            return self._answers[key]
        try:
            return await task
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):  # keep the error's type name and rows
                raise ApplicationError(
                    cause.message, *cause.details, type=cause.type, non_retryable=True
                ) from exc
            raise ApplicationError(str(cause or exc), non_retryable=True) from exc

    @workflow.signal(name=CALL_ANSWERED)
    def call_answered(self, key: str, outcome: dict[str, Any]) -> None:
        """The call ``key`` finished (its rows are committed): its outcome, kept."""
        self._answers.setdefault(key, outcome)

    @workflow.query(name=CALL_ANSWER)
    def call_answer(self, key: str) -> dict[str, Any] | None:
        """The outcome the call ``key`` sent, if it did."""
        return self._answers.get(key)
