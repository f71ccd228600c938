"""Agents: the Agent definition and how one agent turn runs through the provider layer.

>>> from spendgraph.agents import Agent, run_turn
>>> def lookup(code: str) -> str:
...     '''Look up an ICD-10 code.'''
...     return "J06.9: acute upper respiratory infection"
>>> coder = Agent("coder", "Suggest billing codes.", tools=[lookup])
"""

from spendgraph.agents.agent import Agent
from spendgraph.agents.errors import (
    AgentDefinitionError,
    AgentError,
    AgentOutputError,
    ToolDefinitionError,
)
from spendgraph.agents.events import (
    AgentEvent,
    AgentFinished,
    AgentStarted,
    CallSpent,
    EventSink,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from spendgraph.agents.output import OutputSchema
from spendgraph.agents.tools import Tool, ToolCall, ToolOutcome, run_tool_calls
from spendgraph.agents.turn import TurnOptions, TurnResult, run_turn

__all__ = [
    "Agent",
    "AgentDefinitionError",
    "AgentError",
    "AgentEvent",
    "AgentFinished",
    "AgentOutputError",
    "AgentStarted",
    "CallSpent",
    "EventSink",
    "OutputSchema",
    "TokenDelta",
    "Tool",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolDefinitionError",
    "ToolOutcome",
    "TurnOptions",
    "TurnResult",
    "run_tool_calls",
    "run_turn",
]
