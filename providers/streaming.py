"""Assembling a streamed chat completion from its chunks, usage included.

Usage is read from whatever chunk carries it -- the final ``choices: []`` chunk
OpenAI sends, or every chunk when a server reports cumulative usage -- and the
last value wins, so cumulative reports are never added up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spendgraph.providers.usage import Usage


@dataclass(slots=True)
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Collects a stream's text, tool calls, finish reason, usage and first-token time."""

    def __init__(self) -> None:
        self.response_id = ""
        self.model = ""
        self.created = 0
        self.role = "assistant"
        self.content: list[str] = []
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.first_token_at: float | None = None
        self.chunks = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.chunks += 1
        self.response_id = self.response_id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        if chunk.usage is not None:
            self.usage = Usage.from_openai(chunk.usage)
        for choice in chunk.choices:
            self._add_delta(choice.delta)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def _add_delta(self, delta: Any) -> None:
        if delta.role:
            self.role = delta.role
        if delta.content:
            self._mark_first_token()
            self.content.append(delta.content)
        for call in delta.tool_calls or ():
            self._mark_first_token()
            parts = self.tool_calls.setdefault(call.index, _ToolCallParts())
            parts.id = parts.id or (call.id or "")
            if call.function is not None:
                parts.name = parts.name or (call.function.name or "")
                if call.function.arguments:
                    parts.arguments.append(call.function.arguments)

    def _mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def generated_text(self) -> str:
        """Everything generated so far, as text to count when the server reports no usage."""
        calls = "".join(p.name + "".join(p.arguments) for p in self.tool_calls.values())
        return "".join(self.content) + calls

    def completion(self) -> ChatCompletion:
        """The stream as the equivalent non-streamed ``ChatCompletion``."""
        message: dict[str, Any] = {"role": self.role, "content": "".join(self.content) or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": parts.id,
                    "type": "function",
                    "function": {"name": parts.name, "arguments": "".join(parts.arguments)},
                }
                for _, parts in sorted(self.tool_calls.items())
            ]
        return ChatCompletion.model_validate(
            {
                "id": self.response_id or "stream",
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}
                ],
            }
        )
