"""An OpenAI-compatible stub on loopback that answers in the hostile ways real servers and
proxies do: 200 with an HTML page or invalid JSON, streams without a finish chunk, bodies
trickled a byte at a time, streams that never end, error bodies echoing the API key.

One server serves every mode: ``server.url("html")`` is a base URL (``.../v1``) whose
chat completions answer in that mode, streamed or not as the request asks. Each URL
has its own key, so its request counter (``server.requests(url)``) and ``times``
(misbehave for the first N requests, then answer normally) are its own.

Modes: ``ok``, ``html``, ``invalid_json``, ``wrong_shape``, ``no_finish`` (a stream
of tokens that stops without its finish chunk or ``[DONE]``; non-streamed, a JSON
body cut short), ``no_done`` (a whole stream but its ``[DONE]``), ``finish_then_hang``
(the finish chunk, then neither usage nor ``[DONE]`` nor the end), ``trickle`` (a
valid answer, ``trickle_s`` per byte), ``endless`` (a token every 0.1 s, forever),
``silent_after_first`` (one token, then nothing), ``no_token`` (a role chunk, then
nothing), ``echo_401``/``echo_500`` (an error whose message quotes the request's
Authorization header), ``echo_html_500`` (a proxy page quoting the headers),
``echo_bare_401``/``echo_masked_401`` (the key alone, or as ``sk-abc1****wxyz``),
``status_408``/``status_409``, ``error_event`` (a 200 whose answer -- or a stream's one
event -- is an ``{"error": ...}`` quoting the Authorization header).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from loopback_server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "The hostile server answered."
WORDS = ANSWER.split(" ")
MODES = (
    "ok",
    "html",
    "invalid_json",
    "wrong_shape",
    "no_finish",
    "no_done",
    "finish_then_hang",
    "trickle",
    "endless",
    "silent_after_first",
    "no_token",
    "echo_401",
    "echo_500",
    "echo_html_500",
    "echo_bare_401",
    "echo_masked_401",
    "status_408",
    "status_409",
    "error_event",
    "echo_answer",
)
PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


@dataclass
class HostileServer:
    """The running stub: its root URL, and what it was asked."""

    root: str
    trickle_s: float = 1.0
    _counts: Counter[str] = field(default_factory=Counter)
    _times: dict[str, int] = field(default_factory=dict)

    def url(self, mode: str, *, times: int | None = None) -> str:
        """A fresh base URL (``.../v1``) answering in ``mode`` (the first ``times``
        requests only, then normally)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        key = uuid.uuid4().hex[:12]
        if times is not None:
            self._times[key] = times
        return f"{self.root}/m/{mode}/{key}/v1"

    def requests(self, url: str) -> int:
        """How many chat completions the URL was asked for."""
        return self._counts[url.rstrip("/").split("/")[-2]]


def _app(server: HostileServer) -> Starlette:
    async def chat(request: Request) -> Response:
        mode, key = request.path_params["mode"], request.path_params["key"]
        server._counts[key] += 1
        limit = server._times.get(key)
        if limit is not None and server._counts[key] > limit:
            mode = "ok"
        body = await request.json()
        stream = bool(body.get("stream"))
        auth = request.headers.get("authorization", "")
        return _answer(mode, stream, body, auth, server.trickle_s)

    return Starlette(routes=[Route("/m/{mode}/{key}/v1/chat/completions", chat, methods=["POST"])])


def _answer(mode: str, stream: bool, body: dict, auth: str, trickle_s: float) -> Response:
    if mode == "html":
        return Response(PROXY_PAGE, media_type="text/html")
    if mode == "invalid_json" and not stream:
        return Response('{"id": "x", "choices": [', media_type="application/json")
    if mode == "invalid_json":
        return _sse(_frames(["data: {this is not json\n\n"]))
    if mode == "wrong_shape" and not stream:
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0})
    if mode == "wrong_shape":
        return _sse(_frames([_data({"id": "x", "object": "chat.completion.chunk"})]))
    if mode == "no_finish" and not stream:
        return Response(json.dumps(_completion(body))[:40], media_type="application/json")
    if mode == "no_finish":
        return _sse(_frames([_data(_chunk(body, {"content": w + " "})) for w in WORDS]))
    if mode == "no_done" and stream:
        return _sse(_frames(_stream_frames(body)[:-1]))
    if mode == "finish_then_hang" and stream:
        return _sse(_frames(_stream_frames(body)[:-2], then_hang=True))
    if mode == "trickle":
        text = "".join(_stream_frames(body)) if stream else json.dumps(_completion(body))
        media = "text/event-stream" if stream else "application/json"
        return StreamingResponse(_trickle(text, trickle_s), media_type=media)
    if mode == "endless" and stream:
        return _sse(_endless(body))
    if mode == "endless":
        return StreamingResponse(_trickle(" " * 10_000, trickle_s), media_type="application/json")
    if mode == "silent_after_first":
        first = [_data(_chunk(body, {"role": "assistant", "content": WORDS[0]}))]
        return _sse(_frames(first, then_hang=True))
    if mode == "no_token":
        return _sse(_frames([_data(_chunk(body, {"role": "assistant"}))], then_hang=True))
    if mode in ("echo_401", "echo_500"):
        status = 401 if mode == "echo_401" else 500
        message = f"Incorrect API key provided: {auth}. You can find your API key at ..."
        error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
        return JSONResponse({"error": error}, status_code=status)
    if mode in ("echo_bare_401", "echo_masked_401"):
        key = auth.removeprefix("Bearer ")
        shown = key if mode == "echo_bare_401" else f"{key[:10]}****{key[-4:]}"
        return JSONResponse({"error": {"message": f"invalid key {shown}"}}, status_code=401)
    if mode == "echo_html_500":
        page = f"<html><body><h1>500</h1><pre>authorization: {auth}</pre></body></html>"
        return Response(page, status_code=500, media_type="text/html")
    if mode == "error_event":  # a 200 whose answer is an error quoting the headers
        error = {"error": {"message": f"engine overloaded (request had {auth})"}}
        return _sse(_frames([_data(error)])) if stream else JSONResponse(error)
    if mode == "echo_answer":  # a 200 whose answer quotes the headers, with a NUL in it
        text = f"Your request had {auth} \x00 -- done."
        if not stream:
            return JSONResponse({**_completion(body), "choices": [_choice(text)]})
        frames = [_data(_chunk(body, {"role": "assistant", "content": text}))]
        frames.append(_data(_chunk(body, {}, finish="stop")))
        return _sse(_frames([*frames, "data: [DONE]\n\n"]))
    if mode in ("status_408", "status_409"):
        status = int(mode[-3:])
        return JSONResponse({"error": {"message": f"status {status}"}}, status_code=status)
    if stream:
        return _sse(_frames(_stream_frames(body)))
    return JSONResponse(_completion(body))


def _usage(body: dict) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": len(WORDS), "total_tokens": prompt + 4}


def _completion(body: dict) -> dict:
    message = {"role": "assistant", "content": ANSWER}
    return {
        "id": "hostile",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(body),
    }


def _choice(text: str) -> dict:
    return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}


def _chunk(body: dict, delta: dict, finish: str | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": "hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [choice],
    }


def _data(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _stream_frames(body: dict) -> list[str]:
    frames = [_data(_chunk(body, {"role": "assistant", "content": WORDS[0]}))]
    frames += [_data(_chunk(body, {"content": " " + w})) for w in WORDS[1:]]
    frames.append(_data(_chunk(body, {}, finish="stop")))
    usage = {**_chunk(body, {}), "choices": [], "usage": _usage(body)}
    frames += [_data(usage), "data: [DONE]\n\n"]
    return frames


def _sse(frames: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream")


async def _frames(frames: list[str], *, then_hang: bool = False) -> AsyncIterator[str]:
    for frame in frames:
        yield frame
        await asyncio.sleep(0)
    if then_hang:  # until the client leaves (Starlette cancels us then)
        await asyncio.Event().wait()


async def _trickle(text: str, per_byte_s: float) -> AsyncIterator[bytes]:
    for byte in text.encode():
        yield bytes([byte])
        await asyncio.sleep(per_byte_s)


async def _endless(body: dict) -> AsyncIterator[str]:
    yield _data(_chunk(body, {"role": "assistant", "content": "again"}))
    while True:
        await asyncio.sleep(0.1)
        yield _data(_chunk(body, {"content": " and again"}))


@contextmanager
def hostile_server(*, trickle_s: float = 1.0) -> Iterator[HostileServer]:
    """Serve every hostile mode on a free loopback port."""
    made: list[HostileServer] = []

    def build(url: str):
        made.append(HostileServer(url, trickle_s=trickle_s))
        return _app(made[0])

    with serve_in_thread(build, timeout_graceful_shutdown=1):
        yield made[0]
