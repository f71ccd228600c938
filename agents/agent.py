"""The Agent definition: who it is, which model it asks, which tools it has, what it answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from spendgraph.agents.errors import AgentDefinitionError
from spendgraph.agents.output import OutputSchema
from spendgraph.agents.tools import NAME_PATTERN, Tool, as_tools
from spendgraph.providers.chat import ChatRequest

OutputSpec = OutputSchema | type[BaseModel] | Mapping[str, Any]


@dataclass(frozen=True)
class Agent:
    """One specialist: instructions, a model (name or tier), tools and an optional output schema.

    ``tools`` accepts :class:`Tool` objects or plain functions (converted here);
    ``output`` accepts a pydantic model class or a JSON schema dict (normalized
    to an :class:`OutputSchema`). ``max_steps`` bounds the model calls of one
    turn (the tool-calling loop). ``name`` is used in ledger agent paths
    (``supervisor/coder``), so it is restricted to letters, digits, ``_`` and ``-``.
    """

    name: str
    instructions: str
    model: str = "default"
    tools: Sequence[Tool | Callable[..., Any]] = ()
    output: OutputSpec | None = field(default=None, hash=False)
    max_tokens: int | None = None
    temperature: float | None = None
    latency_target_ms: float | None = None
    max_steps: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise AgentDefinitionError(
                f"agent name {self.name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if not isinstance(self.instructions, str):
            raise AgentDefinitionError(f"agent {self.name!r}: instructions must be a string")
        if not self.model:
            raise AgentDefinitionError(
                f"agent {self.name!r}: model (a model name or tier) is empty"
            )
        self._check_numbers()
        object.__setattr__(self, "tools", as_tools(self.tools))
        if self.output is not None:
            object.__setattr__(self, "output", OutputSchema.of(self.output))

    def _check_numbers(self) -> None:
        problems = []
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            problems.append(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.latency_target_ms is not None and self.latency_target_ms <= 0:
            problems.append(f"latency_target_ms must be positive, got {self.latency_target_ms}")
        if self.max_steps < 1:
            problems.append(f"max_steps must be at least 1, got {self.max_steps}")
        if problems:
            raise AgentDefinitionError(f"agent {self.name!r}: " + "; ".join(problems))

    @property
    def schema(self) -> OutputSchema | None:
        """The normalized output schema (``output`` after construction)."""
        return self.output  # type: ignore[return-value]

    def replace(self, **changes: Any) -> Agent:
        """A copy with ``changes`` applied (and validated again)."""
        return dataclasses.replace(self, **changes)

    def system_message(self) -> dict[str, str]:
        return {"role": "system", "content": self.instructions}

    def request(
        self, messages: Sequence[Mapping[str, Any]], *, allow_tools: bool = True
    ) -> ChatRequest:
        """The chat request for one model call of this agent over ``messages``."""
        tools = [tool.openai_schema() for tool in self.tools] if allow_tools else []
        schema = self.schema
        return ChatRequest(
            messages=list(messages),
            model=self.model,
            tools=tools or None,
            tool_choice="auto" if tools else None,
            response_format=schema.response_format() if schema is not None else None,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            latency_target_ms=self.latency_target_ms,
        )
