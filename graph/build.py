"""What the builders share at build time: input checks, common options, compiling."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from spendgraph.agents.agent import Agent
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.nodes import FINISH_NODE
from spendgraph.graph.state import state_keys

#: What a supervisor answers (as ``next``) when the request is done.
FINISH = "FINISH"
# Node names are agent names, so these cannot be: LangGraph's own and the
# routing words -- nor the keys of the builder's state (LangGraph refuses a
# node named like a channel).
ROUTING_NAMES = frozenset({START, END, FINISH, FINISH_NODE})


@dataclass(frozen=True, slots=True)
class GraphOptions:
    """Options every builder understands.

    ``history_limit``: how many earlier messages of the conversation thread each
    agent sees. ``recursion_limit``: LangGraph's super-step limit; ``None``
    derives it from the graph's shape (always set explicitly on the graph).
    """

    history_limit: int = 20
    recursion_limit: int | None = None

    def check(self, builder: str) -> None:
        if self.history_limit < 0:
            raise GraphBuildError(f"{builder}: history_limit must be 0 or more")
        if self.recursion_limit is not None and self.recursion_limit < 1:
            raise GraphBuildError(f"{builder}: recursion_limit must be at least 1")

    def recursion(self, derived: int) -> int:
        return self.recursion_limit if self.recursion_limit is not None else derived


def require_agent(builder: str, role: str, value: Any) -> Agent:
    """``value`` if it is an :class:`Agent`, else a :class:`GraphBuildError` naming the role."""
    if not isinstance(value, Agent):
        raise GraphBuildError(
            f"{builder}: the {role} must be an Agent, got {type(value).__name__} {value!r:.60}"
        )
    return value


def require_agents(builder: str, role: str, values: Any) -> tuple[Agent, ...]:
    """A non-empty tuple of agents from ``values`` (a list or tuple of :class:`Agent`)."""
    if isinstance(values, (str, bytes, Agent)) or not isinstance(values, Sequence):
        raise GraphBuildError(
            f"{builder}: {role} must be a list of Agents, got {type(values).__name__}"
        )
    if not values:
        raise GraphBuildError(f"{builder}: {role} is empty; give at least one Agent")
    return tuple(require_agent(builder, f"{role}[{i}]", value) for i, value in enumerate(values))


def check_names(builder: str, agents: Iterable[Agent], state: type) -> None:
    """Agent names are node names and ledger path parts: unique, and neither routing
    words nor keys of the builder's ``state`` schema."""
    names = [agent.name for agent in agents]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise GraphBuildError(
            f"{builder}: agent names must be unique, but {', '.join(map(repr, duplicates))} "
            "appear more than once"
        )
    taken = ROUTING_NAMES | state_keys(state)
    reserved = sorted(name for name in names if name in taken)
    if reserved:
        raise GraphBuildError(
            f"{builder}: agent name(s) {', '.join(map(repr, reserved))} are reserved "
            f"(reserved: {', '.join(sorted(taken))})"
        )


def check_no_output(builder: str, role: str, agent: Agent, why: str) -> None:
    """The builder sets this agent's output schema itself; one already set is a mistake."""
    if agent.schema is not None:
        raise GraphBuildError(
            f"{builder}: the {role} {agent.name!r} must not have an output schema: {why}"
        )


def check_route(builder: str, option: str, route: str | None, known: Sequence[str]) -> None:
    """A route named in an option must be one of ``known``."""
    if route is not None and route not in known:
        raise GraphBuildError(
            f"{builder}: {option}={route!r} is not a known route "
            f"(known: {', '.join(map(repr, known))})"
        )


def compile_graph(graph: StateGraph, *, name: str, recursion_limit: int) -> CompiledStateGraph:
    """Compile without a checkpointer (``with_checkpointer`` attaches one) and with an
    explicit ``recursion_limit`` bound to the graph."""
    return graph.compile(name=name).with_config(recursion_limit=recursion_limit)
