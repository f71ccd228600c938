"""``fanout``: a planner picks specialists and sub-questions; they run in parallel; a
synthesizer combines their answers.

The planner answers with ``{"tasks": [{"specialist": <name>, "question": "..."}]}``
(the names are an enum, the list length bounded by ``min_tasks``/``max_tasks``);
each task becomes a LangGraph ``Send`` to that specialist's node, so they run
concurrently. Specialists' calls are attributed to ``<planner>/<specialist>``.
After a budget refusal no new turn starts: the synthesizer is skipped and the
answer is the specialists' answers so far, joined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, Field, create_model

from spendgraph.agents.agent import Agent
from spendgraph.agents.errors import AgentOutputError
from spendgraph.graph.build import (
    GraphOptions,
    check_names,
    check_no_output,
    compile_graph,
    require_agent,
    require_agents,
)
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.events import Routed
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
from spendgraph.graph.state import PER_QUERY, GraphState

BUILDER = "fanout"


class FanoutState(GraphState, total=False):
    """A fan-out graph's state: ``plan`` is the planner's tasks
    (``{"specialist", "question"}`` each)."""

    plan: Annotated[list[dict[str, Any]] | None, PER_QUERY]


@dataclass(frozen=True, slots=True)
class FanoutOptions(GraphOptions):
    """Bounds of the planner's task list (``max_tasks=None``: one per specialist)."""

    min_tasks: int = 1
    max_tasks: int | None = None

    def task_bounds(self, specialists: int) -> tuple[int, int]:
        return self.min_tasks, self.max_tasks if self.max_tasks is not None else specialists


def plan_model(names: Sequence[str], min_tasks: int, max_tasks: int) -> type[BaseModel]:
    """The planner's output: tasks naming a specialist (an enum of ``names``) and a question."""
    task = create_model(
        "Task",
        specialist=(Literal[tuple(names)], Field(description="who answers this sub-question")),  # type: ignore[valid-type]
        question=(str, Field(description="the sub-question for that specialist")),
    )
    return create_model(
        "Plan",
        tasks=(list[task], Field(min_length=min_tasks, max_length=max_tasks)),  # type: ignore[valid-type]
    )


def fanout(
    planner: Agent,
    specialists: Sequence[Agent],
    synthesizer: Agent,
    *,
    options: FanoutOptions | None = None,
) -> CompiledStateGraph:
    """A graph where ``planner`` fans the request out to ``specialists`` in parallel and
    ``synthesizer`` writes the answer from theirs.

    An unreadable plan falls back to asking every specialist (up to
    ``max_tasks``) the user's request. The state is :class:`FanoutState`.
    Raises :class:`GraphBuildError` for an empty or invalid specialist list,
    duplicate/reserved names, a planner that already has an output schema, or
    bad task bounds.
    """
    options = options or FanoutOptions()
    lead = require_agent(BUILDER, "planner", planner)
    team = require_agents(BUILDER, "specialists", specialists)
    writer = require_agent(BUILDER, "synthesizer", synthesizer)
    low, high = _check(lead, team, writer, options)
    planning = lead.replace(output=plan_model([agent.name for agent in team], low, high))
    graph = StateGraph(FanoutState, context_schema=RunContext)
    names = tuple(agent.name for agent in team)
    plan = _dispatching(guarded(lead, _plan(planning, team, options, high)))
    graph.add_node(lead.name, plan, destinations=(*names, FINISH_NODE))
    for agent in team:
        graph.add_node(
            agent.name, guarded(agent, _specialist(agent, lead, options), parent=lead.name)
        )
        graph.add_edge(agent.name, writer.name)
    graph.add_node(writer.name, guarded(writer, _synthesize(writer, options)))
    graph.add_node(FINISH_NODE, finish_node(joined_answers))
    graph.add_edge(START, lead.name)
    graph.add_edge(writer.name, FINISH_NODE)
    graph.add_edge(FINISH_NODE, END)
    return compile_graph(graph, name=BUILDER, recursion_limit=options.recursion(8))


def _check(
    lead: Agent, team: tuple[Agent, ...], writer: Agent, options: FanoutOptions
) -> tuple[int, int]:
    options.check(BUILDER)
    check_names(BUILDER, (lead, *team, writer), FanoutState)
    check_no_output(BUILDER, "planner", lead, "its plan schema is built from the specialists")
    low, high = options.task_bounds(len(team))
    if low < 1 or high < low:
        raise GraphBuildError(
            f"{BUILDER}: need 1 <= min_tasks <= max_tasks, got min_tasks={low}, max_tasks={high}"
        )
    return low, high


def _plan(planning: Agent, team: Sequence[Agent], options: FanoutOptions, high: int):
    menu = "Specialists:\n" + "\n".join(
        f"- {agent.name}: {agent.instructions.strip().splitlines()[0]}" for agent in team
    )
    note = menu + "\n\nSplit the request into sub-questions, each for one specialist."

    async def body(state: FanoutState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        messages = prompt(state, history_limit=options.history_limit, note=note)
        try:
            turn = await take_turn(runtime, planning, messages)
            tasks = [task.model_dump() for task in turn.parsed.tasks]
        except AgentOutputError:
            request = state.get("input") or ""
            tasks = [{"specialist": agent.name, "question": request} for agent in team[:high]]
        runtime.stream_writer(Routed(planning.name, tuple(t["specialist"] for t in tasks)))
        return {"plan": tasks, "steps": 1}

    return body


def _dispatching(guard: NodeBody) -> NodeBody:
    """The planner sends the tasks itself (a ``Command``): a conditional edge would send
    the same from the state after the plan's write, but LangGraph copies every channel
    (one per specialist's edge, too) to give it that state."""

    async def node(state: FanoutState, runtime: Runtime[RunContext]) -> Command:
        update = await guard(state, runtime)
        # The planner's keys as the reducers keep them: ``plan`` replaced, a budget
        # refusal's ``status`` sticks.
        return Command(update=update, goto=_dispatch({**state, **update}))

    node.__name__ = guard.__name__
    return node


def _dispatch(state: Mapping[str, Any]) -> list[Send] | str:
    plan = state.get("plan") or []
    if exhausted(state) or not plan:
        return FINISH_NODE
    shared = {"messages": state.get("messages") or [], "input": state.get("input") or ""}
    return [Send(task["specialist"], {**shared, "task": task}) for task in plan]


def _specialist(agent: Agent, lead: Agent, options: FanoutOptions):
    async def body(payload: Mapping[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
        question = payload["task"]["question"]
        messages = prompt(payload, history_limit=options.history_limit, task=question)
        turn = await take_turn(runtime, agent, messages, parent=lead.name)
        return {"outputs": [output_of(turn, task=question)], "steps": 1}

    return body


def _synthesize(writer: Agent, options: FanoutOptions):
    note = "Combine the specialists' answers above into one answer to the request."

    async def body(state: FanoutState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        answers = state.get("outputs") or []
        if exhausted(state) or not answers:
            return {}  # the budget is spent: no new turn; finish joins what there is
        messages = prompt(state, history_limit=options.history_limit, work=answers, note=note)
        turn = await take_turn(runtime, writer, messages)
        return {"outputs": [output_of(turn)], "answer": turn.content, "steps": 1}

    return body


def joined_answers(state: Mapping[str, Any]) -> str:
    """The fan-out's best answer without a synthesis: every specialist's answer, labelled."""
    outputs = state.get("outputs") or []
    return "\n\n".join(f"[{item['agent']}] {item['content']}" for item in outputs)
