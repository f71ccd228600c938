"""The state every spendgraph graph carries, and its reducers.

State is plain JSON-like data (dicts, lists, strings, numbers) so every
checkpointer can store it. ``messages`` is the conversation thread's history
(OpenAI-style ``{"role", "content"}`` dicts: each query adds the user's input
and the final answer); the other keys describe the current query and are reset
by the input of each run (:func:`query_input`).

Keys written by parallel branches (fan-out specialists) have reducers:
``outputs`` and ``steps`` accumulate, ``status`` keeps ``budget_exhausted``
once set, ``stop_reason`` keeps the first reason given, and ``spend`` keeps
the most recent snapshot of the current query.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, TypedDict

from spendgraph.providers.context import SpendSummary
from spendgraph.providers.usage import CostTotal

RUNNING = "running"
DONE = "ok"
BUDGET_EXHAUSTED = "budget_exhausted"


def append_messages(old: list[dict[str, Any]], new: list[dict[str, Any]] | None) -> list[dict]:
    """History only grows: each run appends its user message and final answer."""
    return [*(old or []), *(new or [])]


def collect_outputs(old: list[dict[str, Any]], new: list[dict[str, Any]] | None) -> list[dict]:
    """Agent outputs of this query; ``None`` (sent by each run's input) starts a new list."""
    return [] if new is None else [*(old or []), *new]


def count_steps(old: int, new: int | None) -> int:
    """Agent turns taken in this query; ``None`` resets to 0."""
    return 0 if new is None else (old or 0) + new


def sticky_status(old: str, new: str | None) -> str:
    """``budget_exhausted`` sticks for the rest of the query; ``running`` (a new query) resets."""
    if new == RUNNING or old != BUDGET_EXHAUSTED:
        return new or old
    return old


def first_reason(old: str, new: str | None) -> str:
    """Why the query stopped: the first reason given wins; ``""`` (a new query) resets."""
    if new == "":
        return ""
    return old or new or ""


def latest_spend(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    """The newest spend snapshot of the current query (the one that has seen the most calls)."""
    if not new:
        return old
    if not old or old.get("query_id") != new.get("query_id"):
        return new
    return new if new.get("calls", 0) >= old.get("calls", 0) else old


class GraphState(TypedDict, total=False):
    """What a spendgraph graph holds; builder-specific keys stay empty in other graphs."""

    messages: Annotated[list[dict[str, Any]], append_messages]
    query_id: str
    input: str
    steps: Annotated[int, count_steps]
    outputs: Annotated[list[dict[str, Any]], collect_outputs]
    answer: str
    status: Annotated[str, sticky_status]
    stop_reason: Annotated[str, first_reason]
    spend: Annotated[dict[str, Any], latest_spend]
    route: dict[str, Any] | None  # supervisor: the last decision
    plan: list[dict[str, Any]] | None  # fan-out: the planner's tasks
    draft: str  # draft-and-verify
    verdict: dict[str, Any] | None


STATE_KEYS = frozenset(GraphState.__annotations__)


def query_input(text: str, query_id: str) -> dict[str, Any]:
    """The input of one run: the user's message, plus a reset of every per-query key."""
    return {
        "messages": [{"role": "user", "content": text}],
        "query_id": query_id,
        "input": text,
        "steps": None,
        "outputs": None,
        "answer": "",
        "status": RUNNING,
        "stop_reason": "",
        "spend": spend_snapshot(query_id, SpendSummary()),
        "route": None,
        "plan": None,
        "draft": "",
        "verdict": None,
    }


def spend_snapshot(query_id: str, spend: SpendSummary) -> dict[str, Any]:
    """A :class:`SpendSummary` as plain data for the state (cost as a decimal string)."""
    return {
        "query_id": query_id,
        "calls": spend.calls,
        "failed_calls": spend.failed_calls,
        "input_uncached": spend.input_uncached,
        "input_cached": spend.input_cached,
        "output": spend.output,
        "reasoning": spend.reasoning,
        "cost_known_usd": str(spend.cost.known),
        "unknown_cost_calls": spend.cost.unknown_calls,
    }


def spend_from_snapshot(data: dict[str, Any]) -> SpendSummary:
    """The :class:`SpendSummary` a snapshot holds."""
    return SpendSummary(
        calls=data.get("calls", 0),
        failed_calls=data.get("failed_calls", 0),
        input_uncached=data.get("input_uncached", 0),
        input_cached=data.get("input_cached", 0),
        output=data.get("output", 0),
        reasoning=data.get("reasoning", 0),
        cost=CostTotal(Decimal(data.get("cost_known_usd", "0")), data.get("unknown_cost_calls", 0)),
    )


@dataclass(frozen=True, slots=True)
class AgentOutput:
    """One agent turn's result as kept in the state."""

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
