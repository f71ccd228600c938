"""What an agent turn reports while it runs, for a terminal (or any sink) to render.

Events are small frozen values handed to an :data:`EventSink` -- any callable
taking one event (inside a graph it is LangGraph's stream writer). Every event
names the agent and its full agent path (``supervisor/coder``), so parallel
branches can be told apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgraph.providers.ledger.records import CallRecord


@dataclass(frozen=True, slots=True)
class AgentStarted:
    """An agent's turn began."""

    agent: str
    path: str
    node: str


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of text the model produced while streaming."""

    agent: str
    path: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model asked for a tool call; ``arguments`` is its raw JSON text."""

    agent: str
    path: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended; ``ok`` is false for errors and invalid arguments."""

    agent: str
    path: str
    call_id: str
    name: str
    ok: bool
    result: str


@dataclass(frozen=True, slots=True)
class CallSpent:
    """One HTTP attempt was recorded in the ledger (failed attempts included)."""

    agent: str
    path: str
    record: CallRecord

    @property
    def cost_usd(self) -> Decimal | None:
        return self.record.cost_usd

    @property
    def endpoint(self) -> str:
        return self.record.endpoint.name

    @property
    def tokens(self) -> int:
        return self.record.usage.total_tokens


@dataclass(frozen=True, slots=True)
class AgentFinished:
    """An agent's turn ended with ``content`` (its final message text)."""

    agent: str
    path: str
    content: str
    model_calls: int
    parsed: Any = None


AgentEvent = (
    AgentStarted | TokenDelta | ToolCallStarted | ToolCallFinished | CallSpent | AgentFinished
)
EventSink = Callable[[Any], None]


def discard(_event: Any) -> None:
    """The sink that drops every event."""
