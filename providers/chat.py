"""The request and result types of the provider layer's one entry point."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionMessage

from spendgraph.providers.ledger.records import CallRecord
from spendgraph.providers.usage import Usage


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion as an agent asks for it: ``model`` is a model name or a tier."""

    messages: Sequence[Mapping[str, Any]]
    model: str = "default"
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    latency_target_ms: float | None = None  # overrides the tier's target for this call
    # Prefix affinity: requests with the same key go to the same replica of a
    # pool. None: the query's thread and agent, else the conversation's opening.
    affinity_key: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # Pin the call to one configured endpoint by name: no routing, no fallback
    # (retries still apply). For measuring or debugging one replica.
    endpoint: str | None = None
    # The ledger's request id of the call (groups its attempts); None: a fresh one. Set by
    # a caller that delivers one call more than once (a durable activity's retries), so
    # the rows of each delivery can be found again.
    request_id: str | None = None

    def opening_key(self) -> str:
        """A hash of the conversation's opening: every message up to and including
        the first user message. Later turns of one conversation share it (and the
        prefix a replica has cached), whatever came after; different conversations
        with the same system prompt differ by their first user message."""
        digest = hashlib.blake2b(digest_size=16)
        for message in self.messages:
            digest.update(f"{message.get('role')}\0{message.get('content') or ''}\0".encode())
            if message.get("role") == "user":
                break
        return digest.hexdigest()

    def body(self, model: str, *, max_tokens: int | None, stream: bool) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create`` against one endpoint."""
        params: dict[str, Any] = {"model": model, "messages": list(self.messages)}
        optional = {
            "tools": list(self.tools) if self.tools else None,
            "tool_choice": self.tool_choice if self.tools else None,
            "response_format": self.response_format,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        if stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        if self.extra_headers:
            params["extra_headers"] = dict(self.extra_headers)
        return params


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished call: the response, and the ledger record of every attempt it took."""

    response: ChatCompletion
    attempts: tuple[CallRecord, ...]

    @property
    def call(self) -> CallRecord:
        """The record of the attempt that succeeded."""
        return self.attempts[-1]

    @property
    def message(self) -> ChatCompletionMessage:
        return self.response.choices[0].message

    @property
    def content(self) -> str:
        return self.message.content or ""

    @property
    def finish_reason(self) -> str | None:
        return self.response.choices[0].finish_reason

    @property
    def usage(self) -> Usage:
        return self.call.usage

    @property
    def cost_usd(self) -> Decimal | None:
        """Cost of the successful attempt (failed attempts have their own rows)."""
        return self.call.cost_usd
