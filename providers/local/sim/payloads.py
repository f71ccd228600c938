"""JSON payloads in the exact shapes of OpenAI's chat completion API."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from spendgraph.providers.local.sim.completion import Completion, Piece, ToolCall


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
    if completion.tool_calls:
        message["tool_calls"] = [_tool_call_json(call) for call in completion.tool_calls]
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


def _call_opening(completion: Completion, index: int) -> dict[str, Any]:
    """The first streamed fragment of tool call ``index``: its id, type and name."""
    call = completion.tool_calls[index]
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }


def first_delta(completion: Completion) -> dict[str, Any]:
    """The delta that opens a stream: the role, and for tool calls the first call's id and name."""
    if not completion.tool_calls:
        return {"role": "assistant", "content": "", "refusal": None}
    return {"role": "assistant", "content": None, "tool_calls": [_call_opening(completion, 0)]}


def piece_delta(completion: Completion, piece: Piece) -> dict[str, Any]:
    """The delta carrying one streamed piece: content, a call's opening, or argument text.

    Tool calls stream as OpenAI does: each call has its own ``index``; its first
    fragment carries the id, type and name, the next ones argument text only.
    """
    if not completion.tool_calls:
        return {"content": piece.text}
    if piece.opens:
        return {"tool_calls": [_call_opening(completion, piece.call)]}
    return {"tool_calls": [{"index": piece.call, "function": {"arguments": piece.text}}]}


def sse(payload: Any) -> bytes:
    """One server-sent event."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


SSE_DONE = sse("[DONE]")
