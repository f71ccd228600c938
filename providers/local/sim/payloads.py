"""JSON payloads in the exact shapes of OpenAI's chat completion API."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from spendgraph.providers.local.sim.completion import Completion, ToolCall


@dataclass(frozen=True)
class ResponseIds:
    """What every chunk of one response repeats."""

    id: str
    created: int
    model: str
    system_fingerprint: str

    @classmethod
    def new(cls, model: str, fingerprint: str) -> ResponseIds:
        return cls(f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), model, fingerprint)


def usage(prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The ``usage`` object, with OpenAI's detail sub-objects."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def completion_body(
    ids: ResponseIds, completion: Completion, usage_: dict[str, Any]
) -> dict[str, Any]:
    """A whole (non-streamed) ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content, "refusal": None}
    if completion.tool_call is not None:
        message["tool_calls"] = [_tool_call_json(completion.tool_call)]
    return {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "system_fingerprint": ids.system_fingerprint,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_,
    }


# Pass as `usage_` to leave the key out of a chunk.
OMIT: Any = object()


def chunk(
    ids: ResponseIds,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_: Any = OMIT,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` makes the usage-only chunk (``choices: []``).

    ``usage_`` is left out of the chunk unless given (``None`` is sent as ``null``,
    as OpenAI does on every chunk when ``include_usage`` is on).
    """
    body: dict[str, Any] = {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "system_fingerprint": ids.system_fingerprint,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage_ is not OMIT:
        body["usage"] = usage_
    return body


def first_delta(completion: Completion) -> dict[str, Any]:
    """The delta that opens a stream: the role, and for a tool call its id and name."""
    if completion.tool_call is None:
        return {"role": "assistant", "content": "", "refusal": None}
    call = completion.tool_call
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        ],
    }


def piece_delta(completion: Completion, text: str) -> dict[str, Any]:
    """The delta carrying one streamed piece (content, or tool-call argument text)."""
    if completion.tool_call is None:
        return {"content": text}
    return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}


def sse(payload: Any) -> bytes:
    """One server-sent event."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


SSE_DONE = sse("[DONE]")
