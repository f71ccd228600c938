"""The OpenAI chat-completions wire format, as the front door reads and writes it.

A request names an app as its ``model`` and is one query of that app: its last
user message is the query's input, the conversation continues through a thread
id (the ``X-Spendgraph-Thread-Id`` header or ``metadata.thread_id``), and the
app's agents choose their own models, ``max_tokens`` and temperature.

A response is an ordinary ``chat.completion`` (or ``chat.completion.chunk`` SSE
stream) whose ``usage`` is the whole query — every agent's calls, failed ones
included — in OpenAI's field names, plus one extension field, ``spendgraph``:
the query id, thread id, status, cost (a decimal string, ``null`` when a price
is unknown) and one entry per agent path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendgraph.providers.spend import Spend

THREAD_HEADER = "x-spendgraph-thread-id"
QUERY_HEADER = "x-spendgraph-query-id"
COST_HEADER = "x-spendgraph-cost-usd"
EXTENSION = "spendgraph"
# A thread id travels in headers and names a checkpoint: keep it printable and short.
_THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_INPUT_CHARS = 200_000


class RequestProblem(ValueError):
    """A request the front door cannot run: ``status`` and an OpenAI-style ``code``."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the front door takes from a chat-completions body."""

    app: str
    text: str
    thread_id: str | None
    stream: bool
    include_usage: bool
    user: str


def parse_request(body: object, headers: Mapping[str, str]) -> CompletionRequest:
    """Read a chat-completions body; a :class:`RequestProblem` says what is wrong and where."""
    if not isinstance(body, Mapping):
        raise RequestProblem("the body must be a JSON object")
    app = body.get("model")
    if not isinstance(app, str) or not app:
        raise RequestProblem("'model' must name an app (see GET /v1/models)")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestProblem(f"'stream' must be true or false, got {stream!r}")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise RequestProblem("'stream_options' must be an object")
    user = body.get("user") or ""
    # Printable: it labels the ledger's Query row (and PostgreSQL text holds no NUL).
    if not isinstance(user, str) or len(user) > 256 or not user.isprintable():
        raise RequestProblem("'user' must be a printable string of at most 256 characters")
    return CompletionRequest(
        app=app,
        text=_last_user_text(body.get("messages")),
        thread_id=_thread_id(body.get("metadata"), headers),
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        user=user,
    )


def _last_user_text(messages: object) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestProblem("'messages' must be a non-empty list")
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = _content_text(message.get("content"), index)
            if len(text) > MAX_INPUT_CHARS:
                raise RequestProblem(
                    f"messages[{index}].content has {len(text)} characters "
                    f"(at most {MAX_INPUT_CHARS})"
                )
            return text
    raise RequestProblem("'messages' has no message with role 'user'")


def _content_text(content: object, index: int) -> str:
    """A message's text: a string, or the ``text`` parts of a content list."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = [
            p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        ]
        text = "\n".join(p for p in parts if isinstance(p, str))
    else:
        text = ""
    if not text.strip():
        raise RequestProblem(f"messages[{index}] (the last user message) has no text")
    return text


def _thread_id(metadata: object, headers: Mapping[str, str]) -> str | None:
    value = headers.get(THREAD_HEADER)
    if value is None and isinstance(metadata, Mapping):
        value = metadata.get("thread_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _THREAD_ID.match(value):
        raise RequestProblem(
            "the thread id (header X-Spendgraph-Thread-Id or metadata.thread_id) must be "
            "1-128 letters, digits or . _ : -"
        )
    return value


def error_body(message: str, *, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """An OpenAI-style error object (the ``openai`` client reads ``error.message``)."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


# -- responses -------------------------------------------------------------


def usage_of(spend: Spend) -> dict[str, Any]:
    """A query's :class:`Spend` in OpenAI's usage field names (prompt includes cached)."""
    prompt = spend.input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": spend.output,
        "total_tokens": prompt + spend.output,
        "prompt_tokens_details": {"cached_tokens": spend.input_cached},
        "completion_tokens_details": {"reasoning_tokens": spend.reasoning},
    }


def cost_text(spend: Spend) -> str | None:
    """The cost as an exact decimal string; None when a call's price is unknown."""
    cost = spend.cost
    return None if cost is None else format(cost, "f")


@dataclass(frozen=True, slots=True)
class QueryReport:
    """How a served query ended, for the ``spendgraph`` extension field and headers."""

    query_id: str
    thread_id: str
    status: str
    spend: Spend
    agents: Mapping[str, Spend]

    def extension(self) -> dict[str, Any]:
        spend = self.spend
        return {
            "query_id": self.query_id,
            "thread_id": self.thread_id,
            "status": self.status,
            "cost_usd": cost_text(spend),
            "calls": spend.calls,
            "failed_calls": spend.failed,
            "refused_calls": spend.refused,
            "unpriced_calls": spend.unpriced,
            "agents": [
                {"path": path, "calls": s.calls, "cost_usd": cost_text(s), **usage_of(s)}
                for path, s in sorted(self.agents.items())
            ],
        }

    def headers(self) -> dict[str, str]:
        cost = cost_text(self.spend)
        return {
            QUERY_HEADER: self.query_id,
            THREAD_HEADER: self.thread_id,
            COST_HEADER: "unknown" if cost is None else cost,
        }


def completion(
    app: str, answer: str, finish_reason: str, report: QueryReport, *, created: int | None = None
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{report.query_id}",
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": app,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage_of(report.spend),
        EXTENSION: report.extension(),
    }


@dataclass(frozen=True, slots=True)
class ChunkMaker:
    """Builds the ``chat.completion.chunk`` objects of one streamed query."""

    app: str
    query_id: str
    created: int

    def _base(self) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.query_id}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.app,
        }

    def delta(self, text: str, *, first: bool = False) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": text}
        if first:
            delta["role"] = "assistant"
        return {**self._base(), "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}

    def finish(self, reason: str, extension: dict[str, Any] | None) -> dict[str, Any]:
        chunk = {**self._base(), "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
        if extension is not None:
            chunk[EXTENSION] = extension
        return chunk

    def usage(self, report: QueryReport) -> dict[str, Any]:
        """The last chunk when ``stream_options.include_usage`` is set: no choices."""
        return {
            **self._base(),
            "choices": [],
            "usage": usage_of(report.spend),
            EXTENSION: report.extension(),
        }


def finish_reason(status: str) -> str:
    """``length`` when the query's budget ran out (the answer may be cut short), else ``stop``."""
    return "length" if status == "budget_exhausted" else "stop"
