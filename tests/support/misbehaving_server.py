"""A tiny OpenAI-compatible server on loopback that misbehaves in ways the simulator cannot.

``scale``: its tokenizer counts ``scale`` x what tiktoken counts (``/tokenize``
and usage alike). ``overgen``: it generates ``overgen`` x ``max_tokens``
(1 honours it). Each answer word is one tiktoken token. Used by the budget
bound tests and ``benchmarks/budget_bounds.py``.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from spendgraph.providers.tokens import count_chat, count_text

WORD = " word"  # one o200k_base token


@dataclass(frozen=True)
class Misbehaviour:
    scale: float = 1.0
    overgen: int = 1
    cached: bool = False  # report the whole prompt as a prefix-cache hit


def _app(how: Misbehaviour) -> Starlette:
    def server_count(tiktoken_count: int) -> int:
        return math.ceil(tiktoken_count * how.scale)

    async def tokenize(request: Request) -> JSONResponse:
        body = await request.json()
        if "messages" in body:
            count = count_chat(body["messages"], "o200k_base")
        else:
            count = count_text(body.get("prompt", ""), "o200k_base")
        return JSONResponse({"count": server_count(count), "max_model_len": 8192, "tokens": []})

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
        }
        head = {"id": "stub", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": WORD * words}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            return JSONResponse(
                {**head, "object": "chat.completion", "choices": [choice]} | {"usage": usage}
            )
        return StreamingResponse(_sse(head, words, usage, body), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/tokenize", tokenize, methods=["POST"]),
        ]
    )


async def _sse(head: dict, words: int, usage: dict, body: dict):
    chunk = {**head, "object": "chat.completion.chunk"}
    for i in range(words):
        delta = {"content": WORD} if i else {"role": "assistant", "content": WORD}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        yield f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"
        await asyncio.sleep(0)  # lets a client's disconnect stop us, as a real server would
    end = {"index": 0, "delta": {}, "finish_reason": "length"}
    yield f"data: {json.dumps({**chunk, 'choices': [end]})}\n\n"
    if (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


@contextmanager
def misbehaving_server(how: Misbehaviour) -> Iterator[str]:
    """Serve ``how`` on a free loopback port; yields the base URL (``.../v1`` is the API)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(how), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
