"""The one entry point: run a graph for one user input in a conversation thread, as ONE query.

``stream_graph`` opens a ledger ``Query`` (``layer.query``), runs the graph in
a task of its own (so the query's contextvars never leak into the caller),
and yields events as they happen (those of graphs run inside its nodes too),
ending with :class:`RunFinished`.
``run_graph`` is the same run without the events. A budget refusal never
escapes: the run ends with the best answer so far and the Query row's status
is ``budget_exhausted``.

The run's input is the user's message plus a reset of every key the graph's
state schema marks per-query (:class:`~spendgraph.graph.state.PerQuery`), so
a checkpointed thread starts each query clean while its other keys persist.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from spendgraph.graph.events import BudgetThreshold, RunEvent, RunFinished, RunStarted
from spendgraph.graph.nodes import RunContext, exhausted, last_output
from spendgraph.graph.state import AgentOutput, GraphState, per_query_resets, query_input
from spendgraph.providers.budgets import BudgetLimit
from spendgraph.providers.context import QueryScope
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import BudgetEventRecord, CallRecord, QueryStatus
from spendgraph.providers.spend import Spend


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How one run is recorded and bounded.

    ``app``/``user``/``tenant`` label the Query row; ``budget_usd``/``budget_tokens``
    are the per-query budget and ``budgets`` adds scoped ones (per tenant, user,
    app or thread and day/month) to the config's; ``store_text`` opts in to storing
    prompt/completion text (``None``: the ledger config's default); ``stream_tokens`` streams
    model calls so token deltas are emitted; ``recursion_limit`` overrides the
    graph's own.
    """

    app: str = ""
    user: str = ""
    tenant: str = ""
    budget_usd: Decimal | float | str | None = None
    budget_tokens: int | None = None
    budgets: tuple[BudgetLimit, ...] = ()
    store_text: bool | None = None
    stream_tokens: bool = True
    recursion_limit: int | None = None
    # Fork the thread from this checkpoint instead of its latest (a durable run's
    # re-delivery starts again from where the query began).
    from_checkpoint: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: the answer, the Query's status, steps and spend, and the final state.

    ``spend`` is the query's, from the provider layer's accounting; ``calls``
    are the records it was summed from (one per HTTP attempt). ``state`` is
    the graph's final state: builder- or app-specific keys are read from it
    (``result.state["draft"]`` for draft-and-verify, ``result.state["plan"]``...).
    """

    answer: str
    status: QueryStatus
    query_id: str
    thread_id: str
    steps: int
    spend: Spend
    outputs: tuple[AgentOutput, ...]
    stop_reason: str = ""
    state: Mapping[str, Any] = field(default_factory=dict, compare=False)
    calls: tuple[CallRecord, ...] = field(default=(), compare=False)

    def spend_by_agent(self) -> dict[str, Spend]:
        """:attr:`spend` split by agent path ('' for calls made outside an agent)."""
        totals: dict[str, Spend] = {}
        for record in self.calls:
            path = record.agent_path
            totals[path] = totals.get(path, Spend()) + Spend.of_call(record)
        return totals


_DONE = object()
Emit = Callable[[Any], None]


async def stream_graph(
    graph: CompiledStateGraph,
    layer: ProviderLayer,
    text: str,
    *,
    thread_id: str | None = None,
    options: RunOptions | None = None,
) -> AsyncIterator[RunEvent]:
    """Run ``graph`` for ``text`` in ``thread_id`` (a new thread if None), yielding events.

    The last event is :class:`RunFinished`. Stopping the iteration early
    cancels the run (its Query closes as ``cancelled``).
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    run = asyncio.create_task(
        _streamed(graph, layer, text, thread_id or uuid.uuid4().hex, options or RunOptions(), queue)
    )
    try:
        while (event := await queue.get()) is not _DONE:
            yield event
        await run  # re-raises what ended the run
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run


async def run_graph(
    graph: CompiledStateGraph,
    layer: ProviderLayer,
    text: str,
    *,
    thread_id: str | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run ``graph`` for ``text`` as one ledger query and return how it ended."""
    # The same run as stream_graph's, minus the events nobody reads: LangGraph's custom
    # stream wakes the event loop once per event, a large part of a fan-out's CPU.
    # Its own task, so the query's contextvars never leak into the caller.
    return await asyncio.create_task(
        _run(graph, layer, text, thread_id or uuid.uuid4().hex, options or RunOptions(), None)
    )


async def thread_messages(graph: CompiledStateGraph, thread_id: str) -> list[dict[str, Any]]:
    """The conversation history a checkpointed thread holds (empty for an unknown thread)."""
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    return list(snapshot.values.get("messages") or [])


def _state_schema(graph: CompiledStateGraph) -> type:
    builder = getattr(graph, "builder", None)
    return getattr(builder, "state_schema", GraphState)


async def _streamed(graph, layer, text, thread_id, options: RunOptions, queue) -> None:
    try:
        result = await _run(graph, layer, text, thread_id, options, queue.put_nowait)
        queue.put_nowait(RunFinished(result))
    finally:
        queue.put_nowait(_DONE)


async def _run(graph, layer, text, thread_id, options: RunOptions, emit: Emit | None) -> RunResult:
    """One run as one Query; ``emit`` gets its events (``None``: nobody listens)."""
    schema = _state_schema(graph)
    per_query_resets(schema)  # a schema it cannot reset fails here, before a Query opens
    async with layer.query(
        app=options.app,
        thread_id=thread_id,
        user=options.user,
        tenant=options.tenant,
        budget_usd=options.budget_usd,
        budget_tokens=options.budget_tokens,
        budgets=options.budgets,
        store_text=options.store_text,
    ) as scope:
        if emit is not None:
            emit(RunStarted(scope.id, thread_id))
            _forward_budget_events(scope, emit)
        start = query_input(text, scope.id, schema)
        state = await _drive(graph, layer, start, thread_id, options, emit)
        status = QueryStatus.BUDGET_EXHAUSTED if exhausted(state) else QueryStatus.OK
        scope.status = status
    # Read after the close: it records the streams a node left open.
    return _result(state, status, thread_id, scope)


def _forward_budget_events(scope: QueryScope, emit: Emit) -> None:
    """Put the query's threshold crossings on the run's event stream (in order, from
    whichever thread settled the call)."""
    loop = asyncio.get_running_loop()

    def forward(record: BudgetEventRecord) -> None:
        loop.call_soon_threadsafe(emit, BudgetThreshold(record))

    scope.on_budget_event(forward)


async def _drive(graph, layer, start, thread_id, options, emit: Emit | None) -> dict[str, Any]:
    """Stream the graph, forwarding custom events to ``emit``; returns the last state values.

    Streamed with ``subgraphs=True``: the events of a graph running inside a node
    (a compiled graph added as a node, or invoked by a node's code) reach the
    caller too. Only the outer graph's own values count as the run's state.
    Without ``emit`` only the outer graph's values are streamed."""
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if options.recursion_limit is not None:
        config["recursion_limit"] = options.recursion_limit
    if options.from_checkpoint is not None:
        config["configurable"]["checkpoint_id"] = options.from_checkpoint
    context = RunContext(layer=layer, stream_tokens=options.stream_tokens)
    state: dict[str, Any] = {}
    try:
        if emit is None:
            async for chunk in graph.astream(start, config, context=context, stream_mode="values"):
                state = chunk
            return state
        async for namespace, mode, chunk in graph.astream(
            start,
            config,
            context=context,
            stream_mode=["custom", "values"],
            subgraphs=True,
        ):
            if mode == "custom":
                emit(chunk)
            elif not namespace:  # a subgraph's values are its own state, not the run's
                state = chunk
    except BudgetExceeded:
        # Raised outside the agent nodes' guard (e.g. a custom node): the run
        # still ends with what it has.
        status = QueryStatus.BUDGET_EXHAUSTED.value
        state = {**state, "status": status, "stop_reason": "budget"}
        state["answer"] = state.get("answer") or last_output(state)
    return state


def _result(state, status, thread_id, scope: QueryScope) -> RunResult:
    return RunResult(
        answer=state.get("answer") or "",
        status=status,
        query_id=scope.id,
        thread_id=thread_id,
        steps=state.get("steps") or 0,
        spend=scope.spend,
        calls=scope.calls,
        outputs=tuple(AgentOutput.from_state(o) for o in state.get("outputs") or []),
        stop_reason=state.get("stop_reason") or "",
        state=state,
    )
