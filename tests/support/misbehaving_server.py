"""A tiny OpenAI-compatible server on loopback that misbehaves in ways the simulator cannot.

``scale``: its tokenizer counts ``scale`` x what tiktoken counts (``/tokenize``
and usage alike). ``overgen``: it generates ``overgen`` x ``max_tokens``
(1 honours it). Each answer word is one tiktoken token. Used by the budget
bound tests and ``benchmarks/budget_bounds.py``.

``usage``: what its usage report says, honestly or one of the lies in
:data:`USAGE_LIES` (negative counts, 10^15 tokens, more cached than prompt
tokens...). ``cumulative``: streams carry usage on every chunk, counting up as
vLLM's ``continuous_usage_stats`` and SGLang do (the final report is the lie);
``cumulative_down`` makes the per-chunk count go down at the end. Its
``/tokenize`` says the context window is :data:`CONTEXT_WINDOW`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loopback_server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from spendgraph.providers.tokens import count_chat, count_text

WORD = " word"  # one o200k_base token
CONTEXT_WINDOW = 8192


def _lie(field: str, value: Callable[[dict, int], Any]) -> Callable[[dict, int], dict]:
    def apply(usage: dict, limit: int) -> dict:
        lied = json.loads(json.dumps(usage))
        parent, _, name = field.rpartition(".")
        target = lied[parent] if parent else lied
        target[name] = value(usage, limit)
        return lied

    return apply


# How a lying report differs from the truth (``usage``, the request's max_tokens).
USAGE_LIES: dict[str, Callable[[dict, int], dict]] = {
    "honest": lambda usage, limit: usage,
    "negative": lambda usage, limit: {
        **usage,
        "prompt_tokens": -100,
        "completion_tokens": -50,
        "total_tokens": -150,
    },
    "huge": lambda usage, limit: {
        **usage,
        "prompt_tokens": 10**15,
        "completion_tokens": 10**15,
        "total_tokens": 2 * 10**15,
    },
    "zero_prompt": _lie("prompt_tokens", lambda u, limit: 0),
    "zero_completion": _lie("completion_tokens", lambda u, limit: 0),
    "fractional": _lie("prompt_tokens", lambda u, limit: u["prompt_tokens"] + 0.5),
    "not_a_number": _lie("completion_tokens", lambda u, limit: "twelve"),
    "no_completion": _lie("completion_tokens", lambda u, limit: None),
    "cached_over_prompt": _lie(
        "prompt_tokens_details.cached_tokens", lambda u, limit: 2 * u["prompt_tokens"]
    ),
    "reasoning_over_completion": _lie(
        "completion_tokens_details.reasoning_tokens", lambda u, limit: u["completion_tokens"] + 10
    ),
    "over_max_tokens": _lie("completion_tokens", lambda u, limit: 100 * limit + 100),
    "prompt_over_sent": _lie("prompt_tokens", lambda u, limit: 50 * u["prompt_tokens"] + 5000),
    "over_context_window": _lie("completion_tokens", lambda u, limit: CONTEXT_WINDOW),
}


@dataclass(frozen=True)
class Misbehaviour:
    scale: float = 1.0
    overgen: int = 1
    cached: bool = False  # report the whole prompt as a prefix-cache hit
    usage: str = "honest"  # a key of USAGE_LIES
    cumulative: bool = False  # streams: usage on every chunk, the lie on the last
    cumulative_down: bool = False  # ...and the per-chunk count goes down before the end


def _app(how: Misbehaviour) -> Starlette:
    def server_count(tiktoken_count: int) -> int:
        return math.ceil(tiktoken_count * how.scale)

    async def tokenize(request: Request) -> JSONResponse:
        body = await request.json()
        if "messages" in body:
            count = count_chat(body["messages"], "o200k_base")
        else:
            count = count_text(body.get("prompt", ""), "o200k_base")
        window = CONTEXT_WINDOW
        return JSONResponse({"count": server_count(count), "max_model_len": window, "tokens": []})

    async def chat(request: Request):
        body = await request.json()
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 64
        # Server tokens generated, then as many one-tiktoken-token words as they make.
        words = max(1, int(limit * how.overgen / how.scale))
        prompt = server_count(count_chat(body["messages"], "o200k_base"))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": server_count(words),
            "total_tokens": prompt + server_count(words),
            "prompt_tokens_details": {"cached_tokens": prompt if how.cached else 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        reported = USAGE_LIES[how.usage](usage, limit)
        head = {"id": "stub", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": WORD * words}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            return JSONResponse(
                {**head, "object": "chat.completion", "choices": [choice]} | {"usage": reported}
            )
        running = _running_usage(how, usage, server_count, limit)
        stream = _sse(head, words, reported, body, running)
        return StreamingResponse(stream, media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/tokenize", tokenize, methods=["POST"]),
        ]
    )


def _running_usage(
    how: Misbehaviour, usage: dict, server_count: Callable[[int], int], limit: int
) -> Callable[[int], dict | None] | None:
    """The per-chunk usage of a cumulative stream after ``i + 1`` words (lying as the
    final report does), or None."""
    if not (how.cumulative or how.cumulative_down):
        return None

    def after(words: int) -> dict:
        tokens = server_count(words)
        if how.cumulative_down:
            tokens *= 10  # ten times too many, so the true final count goes down
        so_far = {
            **usage,
            "completion_tokens": tokens,
            "total_tokens": usage["prompt_tokens"] + tokens,
        }
        return USAGE_LIES[how.usage](so_far, limit)

    return after


async def _sse(
    head: dict, words: int, usage: dict, body: dict, running: Callable[[int], dict] | None = None
):
    chunk = {**head, "object": "chat.completion.chunk"}
    for i in range(words):
        delta = {"content": WORD} if i else {"role": "assistant", "content": WORD}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        extra = {} if running is None else {"usage": running(i + 1)}
        yield f"data: {json.dumps({**chunk, 'choices': [choice], **extra})}\n\n"
        await asyncio.sleep(0)  # lets a client's disconnect stop us, as a real server would
    end = {"index": 0, "delta": {}, "finish_reason": "length"}
    yield f"data: {json.dumps({**chunk, 'choices': [end]})}\n\n"
    if running is not None or (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


@contextmanager
def misbehaving_server(how: Misbehaviour) -> Iterator[str]:
    """Serve ``how`` on a free loopback port; yields the base URL (``.../v1`` is the API)."""
    with serve_in_thread(lambda _url: _app(how)) as url:
        yield url
