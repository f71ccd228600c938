"""What every builder's nodes share: the run context, agent turns, the budget guard, finishing.

Nodes get the provider layer from LangGraph's runtime context
(:class:`RunContext`), so a compiled graph holds no layer and no connection:
the same graph object can run against any layer. Each node that runs an agent
is wrapped by :func:`guarded`: a :class:`BudgetExceeded` raised anywhere in
the turn becomes ``status = budget_exhausted`` in the state (and a
:class:`BudgetExhausted` event), and the builders' edges then go straight to
the ``finish`` node, which settles on the best answer so far.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime

from spendgraph.agents.agent import Agent
from spendgraph.agents.output import OutputSchema
from spendgraph.agents.turn import TurnOptions, TurnResult, run_turn
from spendgraph.graph.events import BudgetExhausted
from spendgraph.graph.state import (
    BUDGET_EXHAUSTED,
    DONE,
    AgentOutput,
    GraphState,
    spend_snapshot,
)
from spendgraph.providers.context import agent_scope, current_query
from spendgraph.providers.errors import BudgetExceeded, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer

FINISH_NODE = "finish"
NodeUpdate = dict[str, Any]
NodeBody = Callable[[Any, "Runtime[RunContext]"], Awaitable[NodeUpdate]]


@dataclass(frozen=True, slots=True)
class RunContext:
    """LangGraph runtime context of a run: the provider layer, and whether to stream tokens."""

    layer: ProviderLayer
    stream_tokens: bool = True


async def take_turn(
    runtime: Runtime[RunContext],
    agent: Agent,
    messages: Sequence[Mapping[str, Any]],
    *,
    parent: str | None = None,
    node: str | None = None,
    stream: bool | None = None,
) -> TurnResult:
    """Run one turn of ``agent`` in this node, its calls attributed to ``parent/agent``.

    The agent scope is set here, inside the node, so attribution never depends
    on how LangGraph schedules tasks.
    """
    if not isinstance(runtime.context, RunContext):
        raise SpendgraphError(
            "spendgraph graphs need the provider layer in their run context: run them with "
            "spendgraph.graph.run_graph/stream_graph, or pass context=RunContext(layer)"
        )
    options = TurnOptions(
        stream=runtime.context.stream_tokens if stream is None else stream,
        sink=runtime.stream_writer,
        node=node,
    )
    with agent_scope(parent) if parent else nullcontext():
        return await run_turn(runtime.context.layer, agent, messages, options)


def output_of(turn: TurnResult, *, task: str | None = None) -> dict[str, Any]:
    """A turn as an ``outputs`` entry of the state."""
    return AgentOutput(
        agent=turn.agent,
        path=turn.path,
        content=turn.content,
        parsed=OutputSchema.to_json(turn.parsed),
        task=task,
    ).to_state()


def guarded(agent: Agent, body: NodeBody, *, parent: str | None = None) -> NodeBody:
    """Wrap a node body with the budget guard and the spend snapshot.

    A :class:`BudgetExceeded` from the body becomes a ``budget_exhausted``
    status instead of an exception; every update carries the query's current
    spend, read from the provider layer's accounting.
    """
    path = f"{parent}/{agent.name}" if parent else agent.name

    async def node(state: Any, runtime: Runtime[RunContext]) -> NodeUpdate:
        try:
            update = await body(state, runtime)
        except BudgetExceeded as exc:
            runtime.stream_writer(BudgetExhausted(agent.name, path, str(exc)))
            update = {"status": BUDGET_EXHAUSTED, "stop_reason": "budget"}
        return with_spend(update)

    node.__name__ = f"{agent.name}_node"
    return node


def with_spend(update: NodeUpdate) -> NodeUpdate:
    """``update`` plus the current query's spend snapshot (when a query is open)."""
    scope = current_query()
    if scope is not None:
        update = {**update, "spend": spend_snapshot(scope.id, scope.spend)}
    return update


def exhausted(state: Mapping[str, Any]) -> bool:
    return state.get("status") == BUDGET_EXHAUSTED


def last_output(state: Mapping[str, Any]) -> str:
    """The best answer so far in a sequential graph: the latest agent output."""
    outputs = state.get("outputs") or []
    return outputs[-1]["content"] if outputs else ""


def finish_node(fallback: Callable[[Mapping[str, Any]], str] = last_output):
    """The node every graph ends in: settle the answer and add it to the thread's history.

    ``answer`` is what a node already decided, else ``fallback(state)`` -- the
    best answer so far (e.g. after a budget refusal or a step limit).
    """

    async def finish(state: GraphState) -> NodeUpdate:
        answer = state.get("answer") or fallback(state)
        update: NodeUpdate = {"answer": answer, "status": DONE, "stop_reason": "done"}
        if answer:
            update["messages"] = [{"role": "assistant", "content": answer}]
        return with_spend(update)

    return finish


def history_window(history: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` recent messages, cut at fixed points: the window's start
    moves in steps of half the limit, so for many turns in a row the prompt
    begins with the same messages and the replica's prefix cache keeps hitting.
    (A window sliding by one message per turn changes the prompt's start, and so
    misses the cache, on every turn.)"""
    if limit <= 0:
        return []
    if len(history) <= limit:
        return history
    step = max(1, limit // 2)
    start = -(-(len(history) - limit) // step) * step  # the first cut point keeping <= limit
    return history[start:]


def prompt(
    state: Mapping[str, Any],
    *,
    history_limit: int,
    work: Sequence[Mapping[str, Any]] = (),
    task: str | None = None,
    note: str | None = None,
) -> list[dict[str, Any]]:
    """The messages an agent sees: recent thread history, then one user message with
    this query's request, the work done so far, and the agent's own task."""
    history = list(state.get("messages") or [])
    request = state.get("input") or ""
    if history and history[-1].get("role") == "user" and history[-1].get("content") == request:
        history = history[:-1]
    previous = history_window(history, history_limit)
    parts = [f"Request: {request}"] if request else []
    if work:
        done = "\n\n".join(f"[{item['agent']}] {item['content']}" for item in work)
        parts.append(f"Work so far:\n{done}")
    if task:
        parts.append(f"Your task: {task}")
    if note:
        parts.append(note)
    content = "\n\n".join(parts) if (work or task or note) else request
    return [*previous, {"role": "user", "content": content}]
