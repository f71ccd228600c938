"""``pipeline``: agents run in a fixed order, each seeing the outputs before it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from spendgraph.agents.agent import Agent
from spendgraph.graph.build import (
    GraphOptions,
    check_names,
    compile_graph,
    require_agents,
)
from spendgraph.graph.nodes import (
    FINISH_NODE,
    NodeBody,
    RunContext,
    exhausted,
    finish_node,
    guarded,
    output_of,
    prompt,
    take_turn,
)
from spendgraph.graph.state import GraphState

BUILDER = "pipeline"


def pipeline(
    agents: Sequence[Agent],
    *,
    options: GraphOptions | None = None,
) -> CompiledStateGraph:
    """A graph running ``agents`` one after another; the last one's output is the answer.

    Each agent sees the thread's recent history and one user message with the
    request and every earlier agent's output. A budget refusal ends the run
    with the latest output as the answer. The state is the plain
    :class:`GraphState`; attach a checkpointer with ``with_checkpointer``.
    Raises :class:`GraphBuildError` for an empty list, non-Agent items, or
    duplicate/reserved names.
    """
    options = options or GraphOptions()
    options.check(BUILDER)
    chain = require_agents(BUILDER, "agents", agents)
    check_names(BUILDER, chain, GraphState)
    graph = StateGraph(GraphState, context_schema=RunContext)
    followers = [agent.name for agent in chain[1:]] + [FINISH_NODE]
    for agent, follower in zip(chain, followers, strict=True):
        node = _then(follower, guarded(agent, _stage(agent, options)))
        graph.add_node(agent.name, node, destinations=tuple(sorted({follower, FINISH_NODE})))
    graph.add_node(FINISH_NODE, finish_node())
    graph.add_edge(START, chain[0].name)
    graph.add_edge(FINISH_NODE, END)
    return compile_graph(graph, name=BUILDER, recursion_limit=options.recursion(len(chain) + 4))


def _stage(agent: Agent, options: GraphOptions):
    async def body(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        messages = prompt(state, history_limit=options.history_limit, work=state.get("outputs", []))
        turn = await take_turn(runtime, agent, messages)
        return {"outputs": [output_of(turn)], "steps": 1}

    return body


def _then(follower: str, guard: NodeBody) -> NodeBody:
    """The stage routes itself (a ``Command``): ``follower`` next, or ``finish`` once the
    budget is exhausted. A conditional edge would decide the same from the state after
    the stage's write, but LangGraph copies every channel to give it that state."""

    async def node(state: GraphState, runtime: Runtime[RunContext]) -> Command:
        update = await guard(state, runtime)
        done = exhausted(state) or exhausted(update)  # what the status reducer keeps
        return Command(update=update, goto=FINISH_NODE if done else follower)

    node.__name__ = guard.__name__
    return node
