"""Errors of the agent layer, rooted in :class:`~spendgraph.providers.errors.SpendgraphError`."""

from __future__ import annotations

from spendgraph.providers.errors import SpendgraphError


class AgentError(SpendgraphError):
    """Base class for errors raised by the agent layer."""


class AgentDefinitionError(AgentError, ValueError):
    """An :class:`~spendgraph.agents.Agent` (or one of its tools) is defined wrongly.

    Raised when the agent is constructed, never in the middle of a run.
    """


class ToolDefinitionError(AgentDefinitionError):
    """A Python function cannot be exposed as a tool (no docstring, missing type hints...)."""


class AgentOutputError(AgentError):
    """An agent's final message does not parse into its output schema.

    ``content`` is the raw text the model produced (kept on the exception, never
    put into the message, which may end up in logs).
    """

    def __init__(self, message: str, *, agent: str, content: str):
        self.agent = agent
        self.content = content
        super().__init__(f"agent {agent!r}: {message}")
