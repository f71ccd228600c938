"""What every builder's nodes share: the run context, agent turns, the budget guard, finishing.

Nodes get the provider layer from LangGraph's runtime context
(:class:`RunContext`), so a compiled graph holds no layer and no connection:
the same graph object can run against any layer. Each node that runs an agent
is wrapped by :func:`guarded`: a :class:`BudgetExceeded` raised anywhere in
the turn becomes ``status = budget_exhausted`` in the state (and a
:class:`BudgetExhausted` event), and the builders then route straight to
the ``finish`` node, which settles on the best answer so far. A graph written
by hand uses the same parts. The query's spend so far is the provider layer's
accounting: ``spendgraph.providers.context.current_query().spend`` in a node.
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
from spendgraph.graph.state import AgentOutput
from spendgraph.providers.context import agent_scope
from spendgraph.providers.errors import BudgetExceeded, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import QueryStatus

#: The name of the node a graph ends in (:func:`finish_node`); route to it to wrap up.
FINISH_NODE = "finish"
NodeUpdate = dict[str, Any]
NodeBody = Callable[[Any, "Runtime[RunContext]"], Awaitable[NodeUpdate]]


@dataclass(frozen=True, slots=True)
class RunContext:
    """LangGraph runtime context of a run: the provider layer, and whether to stream tokens.

    ``run_graph``/``stream_graph`` pass it; a graph of your own declares it with
    ``StateGraph(MyState, context_schema=RunContext)``, and its nodes take a
    ``runtime: Runtime[RunContext]`` argument to hand to :func:`take_turn`.
    """

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

    ``messages`` is what the agent sees (see :func:`prompt`); the result's
    ``content``/``parsed`` is its answer, :func:`output_of` makes it a state
    update. Wrap the node in :func:`guarded` so a budget refusal ends the run
    gracefully. The agent scope is set here, inside the node, so attribution never depends
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
    """A turn as an ``outputs`` entry of the state: return ``{"outputs": [output_of(turn)]}``."""
    return AgentOutput(
        agent=turn.agent,
        path=turn.path,
        content=turn.content,
        parsed=OutputSchema.to_json(turn.parsed),
        task=task,
    ).to_state()


def guarded(agent: Agent, body: NodeBody, *, parent: str | None = None) -> NodeBody:
    """Wrap a node body that runs ``agent`` with the budget guard:
    ``graph.add_node(name, guarded(agent, body))``.

    A :class:`BudgetExceeded` from the body becomes a ``budget_exhausted``
    status (and a :class:`BudgetExhausted` event) instead of an exception;
    route on :func:`exhausted` to :data:`FINISH_NODE` after it.
    """
    path = f"{parent}/{agent.name}" if parent else agent.name

    async def node(state: Any, runtime: Runtime[RunContext]) -> NodeUpdate:
        try:
            return await body(state, runtime)
        except BudgetExceeded as exc:
            runtime.stream_writer(BudgetExhausted(agent.name, path, str(exc)))
            return {"status": QueryStatus.BUDGET_EXHAUSTED.value, "stop_reason": "budget"}

    node.__name__ = f"{agent.name}_node"
    return node


def exhausted(state: Mapping[str, Any]) -> bool:
    """Whether the query's budget refused a call: a conditional edge then goes to
    :data:`FINISH_NODE` instead of starting another turn."""
    return state.get("status") == QueryStatus.BUDGET_EXHAUSTED


def last_output(state: Mapping[str, Any]) -> str:
    """The best answer so far in a sequential graph: the latest agent output."""
    outputs = state.get("outputs") or []
    return outputs[-1]["content"] if outputs else ""


def finish_node(fallback: Callable[[Mapping[str, Any]], str] = last_output):
    """The node every graph ends in: settle the answer and add it to the thread's history.

    ``answer`` is what a node already decided, else ``fallback(state)`` -- the
    best answer so far (e.g. after a budget refusal or a step limit). Add it as
    ``graph.add_node(FINISH_NODE, finish_node())`` with an edge to ``END``.
    """

    # Not annotated GraphState: LangGraph hands a node only the keys of the schema its
    # state parameter is annotated with, and the fallback may read a subclass's keys.
    async def finish(state: Any) -> NodeUpdate:
        answer = state.get("answer") or fallback(state)
        update: NodeUpdate = {
            "answer": answer,
            "status": QueryStatus.OK.value,
            "stop_reason": "done",
        }
        if answer:
            update["messages"] = [{"role": "assistant", "content": answer}]
        return update

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
    """The messages an agent sees: at most ``history_limit`` messages of the thread's
    history, then one user message with this query's request, the ``work`` done so far
    (``outputs`` entries), the agent's own ``task`` and a ``note``. Pass it to
    :func:`take_turn`."""
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
