"""Events of a graph run, for the terminal chat (or any consumer) to render.

A run streams, in order of occurrence: :class:`RunStarted`; the agent events
of :mod:`spendgraph.agents.events` (agent active, token deltas, tool calls,
per-call spend); the graph's own events below (routing decisions, budget
refusals and thresholds, the draft and the verdict of draft-and-verify); and last
:class:`RunFinished`, which carries the :class:`~spendgraph.graph.run.RunResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spendgraph.agents.events import (
    AgentEvent,
    AgentFinished,
    AgentStarted,
    CallSpent,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from spendgraph.providers.ledger.records import BudgetEventRecord

if TYPE_CHECKING:
    from spendgraph.graph.run import RunResult


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A graph run began as ledger query ``query_id`` in conversation ``thread_id``."""

    query_id: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Routed:
    """A coordinating agent chose what runs next (``to`` is empty when it chose to finish)."""

    by: str
    to: tuple[str, ...]
    instruction: str = ""


@dataclass(frozen=True, slots=True)
class BudgetExhausted:
    """The query's budget refused a call of ``agent``; the run wraps up with what it has."""

    agent: str
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class BudgetThreshold:
    """A call of this run took a user/app/thread budget past a threshold (80%, 95%).

    ``record`` is the ``budget_event`` row written to the ledger: scope, id,
    period, threshold, spent and limit.
    """

    record: BudgetEventRecord


@dataclass(frozen=True, slots=True)
class DraftReady:
    """draft-and-verify: the fast agent's draft, before the strong agent checks it.

    ``ttft_ms`` is the draft call's time to first token; ``within_target`` says
    whether it met the latency target (``None`` when the time is unknown).
    """

    agent: str
    text: str
    ttft_ms: float | None
    latency_target_ms: float
    within_target: bool | None


@dataclass(frozen=True, slots=True)
class VerdictReady:
    """draft-and-verify: the strong agent's verdict (``accepted`` is None if it was unreadable)."""

    agent: str
    accepted: bool | None
    problems: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended; ``result`` holds the answer, status, steps and spend."""

    result: RunResult


GraphEvent = (
    RunStarted
    | Routed
    | BudgetExhausted
    | BudgetThreshold
    | DraftReady
    | VerdictReady
    | RunFinished
)
RunEvent = AgentEvent | GraphEvent

__all__ = [
    "AgentFinished",
    "AgentStarted",
    "BudgetExhausted",
    "BudgetThreshold",
    "CallSpent",
    "DraftReady",
    "GraphEvent",
    "Routed",
    "RunEvent",
    "RunFinished",
    "RunStarted",
    "TokenDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "VerdictReady",
]
