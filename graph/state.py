"""The state every spendgraph graph carries, its reducers, and the per-query marker.

State is plain JSON-like data (dicts, lists, strings, numbers) so every
checkpointer can store it. ``messages`` is the conversation thread's history
(OpenAI-style ``{"role", "content"}`` dicts: each query adds the user's input
and the final answer); ``query_id`` and ``input`` are set by each run's input.

A key annotated with :data:`PER_QUERY` (or ``PerQuery(reset)``) describes one
query: every run of a checkpointed thread starts it afresh (the run's input
carries the reset, see :func:`query_input`). Unmarked keys keep their value
across the thread's queries -- a game's world, a support call's escalation.
Builders extend :class:`GraphState` with their own keys (``SupervisorState``,
``FanoutState``, ``DraftVerifyState``); an app's own state does the same.

Keys written by parallel branches (fan-out specialists) have reducers:
``outputs`` and ``steps`` accumulate, ``status`` keeps ``budget_exhausted``
once set, and ``stop_reason`` keeps the first reason given.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, get_type_hints

from spendgraph.graph.errors import GraphBuildError
from spendgraph.providers.ledger.records import QueryStatus


@dataclass(frozen=True, slots=True)
class PerQuery:
    """Marks a state key as describing one query: each run starts it at ``reset``.

    Put it in the key's annotation *before* any reducer -- LangGraph takes only
    the last annotation as the reducer, so ``Annotated[int, add, PER_QUERY]``
    would silently lose ``add`` (a run refuses such a schema):
    ``route: Annotated[dict | None, PER_QUERY]``,
    ``narration: Annotated[str, PerQuery("")]``,
    ``steps: Annotated[int, PER_QUERY, count_steps]``. A reducer receives the
    reset like any write, so it must treat it as a restart (``count_steps``
    turns ``None`` into 0).
    """

    reset: Any = None


#: The per-query marker resetting its key to ``None``; see :class:`PerQuery`.
PER_QUERY = PerQuery()


def append_messages(old: list[dict[str, Any]], new: list[dict[str, Any]] | None) -> list[dict]:
    """History only grows: each run appends its user message and final answer."""
    return [*(old or []), *(new or [])]


def collect_outputs(old: list[dict[str, Any]], new: list[dict[str, Any]] | None) -> list[dict]:
    """Agent outputs of this query; ``None`` (each run's reset) starts a new list."""
    return [] if new is None else [*(old or []), *new]


def count_steps(old: int, new: int | None) -> int:
    """Agent turns taken in this query; ``None`` resets to 0."""
    return 0 if new is None else (old or 0) + new


def sticky_status(old: str, new: str | None) -> str:
    """``budget_exhausted`` sticks for the rest of the query; ``running`` (a new query) resets."""
    if new == QueryStatus.RUNNING or old != QueryStatus.BUDGET_EXHAUSTED:
        return new or old
    return old


def first_reason(old: str, new: str | None) -> str:
    """Why the query stopped: the first reason given wins; ``""`` (a new query) resets."""
    if new == "":
        return ""
    return old or new or ""


class GraphState(TypedDict, total=False):
    """What every spendgraph graph holds; subclass it for keys of your own.

    Annotate a node's state parameter with the graph's own schema (or not at
    all): LangGraph passes a node only the keys of the schema its parameter is
    annotated with, so ``state: GraphState`` in a subclass's graph hides the
    subclass's keys. ``status`` holds a :class:`QueryStatus` value as a plain string (the
    checkpointer serializes the state); compare it with the enum members.
    """

    messages: Annotated[list[dict[str, Any]], append_messages]
    query_id: str
    input: str
    steps: Annotated[int, PER_QUERY, count_steps]
    outputs: Annotated[list[dict[str, Any]], PER_QUERY, collect_outputs]
    answer: Annotated[str, PerQuery("")]
    status: Annotated[str, PerQuery(QueryStatus.RUNNING.value), sticky_status]
    stop_reason: Annotated[str, PerQuery(""), first_reason]


@functools.cache
def _hints(schema: type) -> Mapping[str, Any]:
    return get_type_hints(schema, include_extras=True)


def state_keys(schema: type) -> frozenset[str]:
    """The keys (LangGraph channels) of a state schema, inherited ones included."""
    return frozenset(_hints(schema))


@functools.cache
def _markers(schema: type) -> tuple[tuple[str, PerQuery], ...]:
    marked = []
    for key, hint in _hints(schema).items():
        meta = getattr(hint, "__metadata__", ())
        marker = next((item for item in meta if isinstance(item, PerQuery)), None)
        if marker is None:
            continue
        reducers = [item for item in meta if callable(item) and not isinstance(item, type)]
        if reducers and meta[-1] is not reducers[-1]:
            raise GraphBuildError(
                f"{schema.__name__}.{key}: put the reducer last in Annotated[...] "
                "(LangGraph reads only the last item as the reducer), after PER_QUERY"
            )
        marked.append((key, marker))
    return tuple(marked)


def per_query_resets(schema: type) -> dict[str, Any]:
    """What each key ``schema`` marks per-query starts a run at (a fresh copy each call)."""
    return {key: copy.deepcopy(marker.reset) for key, marker in _markers(schema)}


def query_input(text: str, query_id: str, schema: type = GraphState) -> dict[str, Any]:
    """The input of one run: the user's message and the query's id, plus the reset of
    every key ``schema`` marks per-query."""
    return {
        **per_query_resets(schema),
        "messages": [{"role": "user", "content": text}],
        "query_id": query_id,
        "input": text,
    }


@dataclass(frozen=True, slots=True)
class AgentOutput:
    """One agent turn's result as kept in the state (``outputs`` entries are its
    :meth:`to_state`; :meth:`from_state` reads one back)."""

    agent: str
    path: str
    content: str
    parsed: Any = None
    task: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "path": self.path,
            "content": self.content,
            "parsed": self.parsed,
            "task": self.task,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> AgentOutput:
        return cls(
            agent=data["agent"],
            path=data.get("path", data["agent"]),
            content=data.get("content", ""),
            parsed=data.get("parsed"),
            task=data.get("task"),
        )
