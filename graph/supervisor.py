"""``supervisor``: an LLM picks the next specialist with a structured output, until FINISH.

The supervisor agent answers with ``{"next": <specialist name or FINISH>,
"instruction": "..."}`` (an enum built from the specialists' names); the chosen
specialist runs with that instruction and control returns to the supervisor.
The run ends on FINISH, after ``max_steps`` specialist turns, or when the
budget refuses a call. An unusable decision (unparseable, or naming no
specialist) makes the supervisor ask again ``retries`` times, then finish.
Specialists' calls are attributed to ``<supervisor>/<specialist>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from spendgraph.agents.agent import Agent
from spendgraph.agents.errors import AgentOutputError
from spendgraph.graph.build import (
    FINISH,
    GraphOptions,
    check_names,
    check_no_output,
    check_route,
    compile_graph,
    require_agent,
    require_agents,
)
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.events import Routed
from spendgraph.graph.nodes import (
    FINISH_NODE,
    RunContext,
    exhausted,
    finish_node,
    guarded,
    last_output,
    output_of,
    prompt,
    take_turn,
)
from spendgraph.graph.state import PER_QUERY, GraphState

BUILDER = "supervisor"


class SupervisorState(GraphState, total=False):
    """A supervisor graph's state: ``route`` is the supervisor's last decision
    (``next``, ``instruction``, and ``invalid``/``error`` after an unusable one)."""

    route: Annotated[dict[str, Any] | None, PER_QUERY]


@dataclass(frozen=True, slots=True)
class SupervisorOptions(GraphOptions):
    """``max_steps``: specialist turns before the run finishes. ``retries``: how often the
    supervisor is asked again after an unusable decision. ``first``: a specialist to run
    before the supervisor's first decision (``None``: the supervisor decides from the start)."""

    max_steps: int = 6
    retries: int = 1
    first: str | None = None


def route_model(names: Sequence[str]) -> type[BaseModel]:
    """The supervisor's decision: an enum of ``names`` plus FINISH, and an instruction."""
    choices = Literal[tuple([*names, FINISH])]  # type: ignore[valid-type]
    return create_model(
        "Route",
        next=(choices, Field(description=f"the specialist who acts next, or {FINISH}")),
        instruction=(
            str,
            Field(description="what that specialist should do; with FINISH, the final answer"),
        ),
    )


def supervisor(
    supervisor_agent: Agent,
    specialists: Sequence[Agent],
    *,
    options: SupervisorOptions | None = None,
) -> CompiledStateGraph:
    """A graph where ``supervisor_agent`` routes the request between ``specialists``.

    The answer is the last specialist's output (or the supervisor's FINISH
    instruction when no specialist ran); the state is :class:`SupervisorState`.
    Raises :class:`GraphBuildError` for an empty or invalid specialist list,
    duplicate/reserved names, a supervisor that already has an output schema,
    or an unknown ``first``.
    """
    options = options or SupervisorOptions()
    boss = require_agent(BUILDER, "supervisor agent", supervisor_agent)
    team = require_agents(BUILDER, "specialists", specialists)
    _check(boss, team, options)
    deciding = boss.replace(output=route_model([agent.name for agent in team]))
    graph = StateGraph(SupervisorState, context_schema=RunContext)
    graph.add_node(boss.name, guarded(boss, _decide(deciding, team, options)))
    for agent in team:
        graph.add_node(
            agent.name, guarded(agent, _specialist(agent, boss, options), parent=boss.name)
        )
        graph.add_conditional_edges(
            agent.name, _after_specialist(boss, options), [boss.name, FINISH_NODE]
        )
    graph.add_node(FINISH_NODE, finish_node(_best_answer))
    graph.add_edge(START, options.first or boss.name)
    graph.add_conditional_edges(
        boss.name, _after_decision(boss, options), [boss.name, FINISH_NODE, *(a.name for a in team)]
    )
    graph.add_edge(FINISH_NODE, END)
    decisions = (options.max_steps + 1) * (options.retries + 1)
    return compile_graph(
        graph,
        name=BUILDER,
        recursion_limit=options.recursion(decisions + options.max_steps + 3),
    )


def _check(boss: Agent, team: tuple[Agent, ...], options: SupervisorOptions) -> None:
    options.check(BUILDER)
    if options.max_steps < 1:
        raise GraphBuildError(f"{BUILDER}: max_steps must be at least 1")
    if options.retries < 0:
        raise GraphBuildError(f"{BUILDER}: retries must be 0 or more")
    check_names(BUILDER, (boss, *team), SupervisorState)
    check_no_output(
        BUILDER, "supervisor agent", boss, "its decision schema is built from the specialists"
    )
    check_route(BUILDER, "first", options.first, [agent.name for agent in team])


def _menu(team: Sequence[Agent], route: Mapping[str, Any] | None) -> str:
    lines = [f"- {agent.name}: {agent.instructions.strip().splitlines()[0]}" for agent in team]
    names = ", ".join([*(agent.name for agent in team), FINISH])
    note = (
        "Specialists:\n" + "\n".join(lines) + f"\n\nChoose who acts next (`next`: one of {names}) "
        f"and give them an `instruction`. Choose {FINISH} when the request is answered; "
        "then `instruction` is the final answer."
    )
    if route and route.get("error"):
        note += f"\n\nYour previous decision could not be used ({route['error']}). Choose again."
    return note


def _decide(deciding: Agent, team: Sequence[Agent], options: SupervisorOptions):
    async def body(state: SupervisorState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        route = state.get("route")
        messages = prompt(
            state,
            history_limit=options.history_limit,
            work=state.get("outputs") or [],
            note=_menu(team, route),
        )
        try:
            turn = await take_turn(runtime, deciding, messages)
        except AgentOutputError as exc:
            invalid = (route or {}).get("invalid", 0) + 1
            update: dict[str, Any] = {
                "route": {"next": None, "instruction": "", "invalid": invalid, "error": str(exc)},
                "steps": 1,
            }
            if invalid > options.retries:
                update["stop_reason"] = "invalid_route"
            return update
        decision = turn.parsed
        finished = decision.next == FINISH
        runtime.stream_writer(
            Routed(deciding.name, () if finished else (decision.next,), decision.instruction)
        )
        update = {
            "route": {"next": decision.next, "instruction": decision.instruction, "invalid": 0},
            "steps": 1,
        }
        if finished:
            update["stop_reason"] = "finish"
        return update

    return body


def _specialist(agent: Agent, boss: Agent, options: SupervisorOptions):
    async def body(state: SupervisorState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        outputs = state.get("outputs") or []
        instruction = (state.get("route") or {}).get("instruction") or None
        messages = prompt(
            state, history_limit=options.history_limit, work=outputs, task=instruction
        )
        turn = await take_turn(runtime, agent, messages, parent=boss.name)
        update: dict[str, Any] = {"outputs": [output_of(turn, task=instruction)], "steps": 1}
        if len(outputs) + 1 >= options.max_steps:
            update["stop_reason"] = "step_limit"
        return update

    return body


def _after_decision(boss: Agent, options: SupervisorOptions):
    async def route(state: SupervisorState) -> str:
        decision = state.get("route") or {}
        target = decision.get("next")
        if exhausted(state) or target == FINISH:
            return FINISH_NODE
        if target is None:
            return boss.name if decision.get("invalid", 0) <= options.retries else FINISH_NODE
        return target

    return route


def _after_specialist(boss: Agent, options: SupervisorOptions):
    async def route(state: SupervisorState) -> str:
        if exhausted(state) or len(state.get("outputs") or []) >= options.max_steps:
            return FINISH_NODE
        return boss.name

    return route


def _best_answer(state: Mapping[str, Any]) -> str:
    answer = last_output(state)
    if answer:
        return answer
    decision = state.get("route") or {}
    return decision.get("instruction", "") if decision.get("next") == FINISH else ""
