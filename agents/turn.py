"""One agent turn: the tool-calling loop, run through the provider layer.

model call -> tool calls (concurrently when the model asks for several) ->
model call ... until the model answers without tool calls or the agent's
``max_steps`` is reached (the last allowed call is made without tools, so it
must answer in text). Every model call runs inside ``agent_scope(agent.name)``
so the ledger attributes it to this agent's path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spendgraph.agents.agent import Agent
from spendgraph.agents.events import (
    AgentFinished,
    AgentStarted,
    CallSpent,
    EventSink,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
    discard,
)
from spendgraph.agents.tools import (
    ToolCall,
    ToolOutcome,
    parse_tool_calls,
    run_tool_calls,
    tool_calls_json,
)
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.context import agent_scope
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallRecord
from spendgraph.providers.telemetry.recorder import telemetry_of


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How a turn runs: ``stream`` model calls (emitting token deltas) to ``sink``.

    ``node`` names the graph node in ledger rows (default: the agent's name).
    """

    stream: bool = False
    sink: EventSink = discard
    node: str | None = None


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one turn produced.

    ``content`` is the final message text, ``parsed`` its structured value
    (``None`` without an output schema), ``messages`` the assistant and tool
    messages the turn added, ``calls`` the ledger record of every HTTP attempt.
    """

    agent: str
    path: str
    content: str
    parsed: Any
    messages: tuple[dict[str, Any], ...]
    calls: tuple[CallRecord, ...]
    tool_outcomes: tuple[ToolOutcome, ...]
    model_calls: int
    finish_reason: str | None


class _Turn:
    """The mutable bookkeeping of one running turn."""

    def __init__(self, layer: ProviderLayer, agent: Agent, options: TurnOptions, path: str):
        self.layer = layer
        self.agent = agent
        self.options = options
        self.path = path
        self.calls: list[CallRecord] = []
        self.outcomes: list[ToolOutcome] = []
        self.added: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.options.sink(event)

    async def call_model(self, request: ChatRequest) -> ChatResult:
        if self.options.stream:
            result = await self._stream(request)
        else:
            result = await self.layer.chat(request)
        self.calls.extend(result.attempts)
        for record in result.attempts:
            self.emit(CallSpent(self.agent.name, self.path, record))
        return result

    async def _stream(self, request: ChatRequest) -> ChatResult:
        async with self.layer.stream(request) as chunks:
            async for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        self.emit(TokenDelta(self.agent.name, self.path, choice.delta.content))
        assert chunks.result is not None  # set when the stream ends normally
        return chunks.result

    async def run_tools(self, calls: list[ToolCall]) -> None:
        def started(call: ToolCall) -> None:
            self.emit(
                ToolCallStarted(self.agent.name, self.path, call.id, call.name, call.arguments)
            )

        def finished(outcome: ToolOutcome) -> None:
            call = outcome.call
            self.emit(
                ToolCallFinished(
                    self.agent.name, self.path, call.id, call.name, outcome.ok, outcome.content
                )
            )

        def traced(call: ToolCall):
            return telemetry_of(self.layer).tool(call.name, call.id, call.arguments)

        outcomes = await run_tool_calls(
            self.agent.tools, calls, on_start=started, on_finish=finished, traced=traced
        )
        self.outcomes.extend(outcomes)
        self.added.extend(outcome.message() for outcome in outcomes)


async def run_turn(
    layer: ProviderLayer,
    agent: Agent,
    messages: Sequence[Mapping[str, Any]],
    options: TurnOptions | None = None,
) -> TurnResult:
    """Run one turn of ``agent`` over ``messages`` (its system prompt is added here).

    Raises what the provider layer raises (``BudgetExceeded``,
    ``NoEndpointAvailable``...) and :class:`AgentOutputError` when the final
    message does not match the agent's output schema. Tool failures do not
    raise: they go back to the model as ``tool`` messages.
    """
    options = options or TurnOptions()
    node = options.node or agent.name
    with (
        agent_scope(agent.name, node=options.node) as path,
        telemetry_of(layer).agent(agent.name, path, node),
    ):
        turn = _Turn(layer, agent, options, path)
        turn.emit(AgentStarted(agent.name, path, node))
        conversation = [agent.system_message(), *messages]
        result = None
        for step in range(agent.max_steps):
            last_step = step == agent.max_steps - 1
            request = agent.request([*conversation, *turn.added], allow_tools=not last_step)
            result = await turn.call_model(request)
            calls = parse_tool_calls(result.message.tool_calls)
            turn.added.append(_assistant_message(result, calls))
            if not calls:
                break
            await turn.run_tools(calls)
        assert result is not None  # max_steps >= 1
        content = result.content
        parsed = agent.schema.parse(content, agent=agent.name) if agent.schema else None
        model_calls = sum(1 for m in turn.added if m["role"] == "assistant")
        turn.emit(AgentFinished(agent.name, path, content, model_calls, parsed))
        return TurnResult(
            agent=agent.name,
            path=path,
            content=content,
            parsed=parsed,
            messages=tuple(turn.added),
            calls=tuple(turn.calls),
            tool_outcomes=tuple(turn.outcomes),
            model_calls=model_calls,
            finish_reason=result.finish_reason,
        )


def _assistant_message(result: ChatResult, calls: list[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.message.content or ""}
    if calls:
        message["tool_calls"] = tool_calls_json(calls)
        if not message["content"]:
            message["content"] = None
    return message
