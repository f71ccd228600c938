"""The streamed half of the provider layer: a streamed call, and assembling it from chunks.

:class:`ChatStream` drives one :class:`~spendgraph.providers.call.ModelCall`:
an attempt is read up to its first token before it counts as started, so a
failure before that retries or falls back like a non-streamed call; after
the first token nothing can be retried, and whatever breaks the stream (the
server, the network, the consumer leaving early) is recorded on its row.

Usage is read from whatever chunk carries it -- the final ``choices: []`` chunk
OpenAI sends, or every chunk when a server reports cumulative usage -- and the
last value wins, so cumulative reports are never added up. The attempt checks
the report before believing it; cumulative reports that go down are not believed.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spendgraph.providers.attempt import Attempt, Outcome
from spendgraph.providers.call import ModelCall
from spendgraph.providers.chat import ChatResult
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import EndpointError, StreamCut
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.tokens import count_text


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
        self.usage: object | None = None  # the server's last usage object, unchecked
        self.timings: object | None = None  # llama-server's last ``timings``, unchecked
        self.usage_problem: str | None = None
        self.first_token_at: float | None = None
        self.chunks = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.chunks += 1
        self.response_id = self.response_id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        if chunk.usage is not None:
            self._add_usage(chunk.usage)
        extra = chunk.model_extra
        if extra and extra.get("timings") is not None:
            self.timings = extra["timings"]
        for choice in chunk.choices:
            self._add_delta(choice.delta)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def _add_usage(self, usage: Any) -> None:
        before = _completion_tokens(self.usage)
        now = _completion_tokens(usage)
        if before is not None and now is not None and now < before:
            self.usage_problem = f"cumulative completion_tokens went down from {before} to {now}"
        self.usage = usage

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


class OutputMeter:
    """Counts a budgeted stream's output as it arrives, to close it at the hold's bound.

    Each chunk's text is counted with tiktoken and scaled by how much more the
    server's tokenizer counted the prompt (``Attempt.output_scale``). A server's
    cumulative usage per chunk counts hidden tokens too (reasoning), so it is
    used when it says more; a report of fewer tokens than arrived (or one that is
    no count at all) cannot hold the meter back.
    """

    __slots__ = ("_local", "_reported", "encoding", "limit", "scale")

    def __init__(self, limit: int, scale: float, encoding: str):
        self.limit, self.scale, self.encoding = limit, scale, encoding
        self._local = 0
        self._reported = 0

    @property
    def counted(self) -> int:
        return max(self._reported, math.ceil(self._local * self.scale))

    def add(self, chunk: ChatCompletionChunk) -> bool:
        """Count ``chunk``; True when the output would go past the bound with it."""
        reported = _completion_tokens(chunk.usage)
        if reported is not None:
            self._reported = max(self._reported, reported)
        if not chunk.choices:
            return False  # the usage trailer: the answer is over, nothing is left to cut
        text = "".join(_chunk_text(choice.delta) for choice in chunk.choices)
        if text:
            self._local += count_text(text, self.encoding)
        return self.counted > self.limit


def _completion_tokens(usage: Any) -> int | None:
    """A usage object's completion tokens, if it holds a count that could be true."""
    value = getattr(usage, "completion_tokens", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _chunk_text(delta: Any) -> str:
    calls = "".join(
        (c.function.name or "") + (c.function.arguments or "")
        for c in delta.tool_calls or ()
        if c.function is not None
    )
    return (delta.content or "") + calls


class ChatStream:
    """A streamed call: iterate for ``ChatCompletionChunk``s; ``result`` is set at the end.

    Use as ``async with layer.stream(request) as chunks: async for chunk in chunks``;
    leaving the block early records the attempt as cancelled. A stream left
    without closing it (``break`` out of a bare ``async for``) is closed by its
    query's end at the latest, so its row is in before the query is closed and
    its endpoint slot is given back.
    """

    def __init__(self, call: ModelCall):
        self._state = _StreamState(call)
        # The generator refers to the state, never to this object: dropping the
        # stream frees it at once (no reference cycle waiting for the collector),
        # and asyncio then closes the generator.
        self._chunks = self._state.chunks()
        scope = call.site.scope
        if scope is not None:
            scope.hold_stream(self._state.token, self._chunks)

    @property
    def result(self) -> ChatResult | None:
        """The whole call (message, attempts) once the stream has ended; else None."""
        return self._state.result

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._chunks

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream early; its attempt is recorded as cancelled."""
        await self._chunks.aclose()

    async def collect(self) -> ChatResult:
        """Read the whole stream; the call as one result (what ``layer.chat`` returns)."""
        async with self:
            async for _chunk in self._chunks:
                pass
        assert self._state.result is not None  # the stream ended without an error
        return self._state.result


class _StreamState:
    """What the chunk generator of one :class:`ChatStream` works on."""

    __slots__ = ("call", "result", "token")

    def __init__(self, call: ModelCall):
        self.call = call
        self.result: ChatResult | None = None
        self.token = object()  # this stream's key in its query's open streams

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        call = self.call
        try:
            endpoint, opened = await call.first_success(self._open)
            try:
                # aclosing: leaving early must settle the attempt now, not when
                # the collector finalizes the inner generator.
                async with aclosing(self._drain(opened)) as drained:
                    async for chunk in drained:
                        yield chunk
            finally:
                call.services.router.release(endpoint)
            self.result = call.result(opened.accumulator.completion())
        finally:
            if call.site.scope is not None:
                call.site.scope.drop_stream(self.token)

    async def _open(self, endpoint: Endpoint) -> _OpenStream:
        """Start a stream and read it up to its first token, so failures before it can retry."""
        attempt = await self.call.begin(endpoint)
        opened = _OpenStream(attempt)
        try:
            opened.chunks = await endpoint.open_stream(attempt.body(), not_after=self.call.deadline)
            async for chunk in opened.chunks:
                if opened.meter is not None:
                    opened.meter.add(chunk)  # the first token is always delivered
                opened.accumulator.add(chunk)
                opened.buffered.append(chunk)
                if opened.accumulator.first_token_at is not None:
                    break
            else:
                opened.exhausted = True
            return opened
        except BaseException as exc:
            if opened.chunks is not None:
                await opened.chunks.aclose()
            await self.call.settle(attempt, opened.outcome(exc))
            raise

    async def _drain(self, opened: _OpenStream) -> AsyncIterator[ChatCompletionChunk]:
        error: BaseException | None = None
        try:
            for chunk in opened.buffered:
                yield chunk
            if not opened.exhausted:
                async for chunk in opened.chunks:
                    if opened.meter is not None and opened.meter.add(chunk):
                        # Past the hold: stop reading (closing below tells the
                        # server) so the call cannot cost more than it reserved.
                        opened.cut_at_budget()
                        break
                    opened.accumulator.add(chunk)
                    yield chunk
        except EndpointError as exc:
            # After the first token nothing can be retried: whatever broke, the
            # stream was cut short.
            error = (
                exc
                if isinstance(exc, StreamCut)
                else StreamCut(f"stream broke after the first token: {exc}", endpoint=exc.endpoint)
            )
            raise error from exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                await opened.chunks.aclose()  # no-op when the stream ended by itself
                await self.call.settle(opened.attempt, opened.outcome(error))
            finally:
                # The error's traceback holds this frame, which holds the error:
                # left alone, that cycle keeps the SDK's stream generators alive
                # until the collector runs, maybe after their event loop closed.
                error = None


class _OpenStream:
    """A stream that has produced its first token, with what it buffered so far."""

    __slots__ = ("accumulator", "attempt", "buffered", "chunks", "cut", "exhausted", "meter")

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.accumulator = StreamAccumulator()
        self.buffered: list[ChatCompletionChunk] = []
        self.chunks = None
        self.exhausted = False
        self.cut = False
        limit = attempt.output_limit  # None without a budget: nothing is counted
        self.meter = (
            None
            if limit is None
            else OutputMeter(limit, attempt.output_scale, attempt.endpoint.config.tokenizer)
        )

    def cut_at_budget(self) -> None:
        self.cut = True
        self.accumulator.finish_reason = "length"  # what the consumer sees: a capped answer

    def outcome(self, error: BaseException | None) -> Outcome:
        acc = self.accumulator
        if error is None and self.cut:
            status = CallStatus.CUT_AT_BUDGET
        elif error is None:
            status = CallStatus.OK
        elif isinstance(error, EndpointError):
            status = CallStatus.ERROR
        else:  # CancelledError, GeneratorExit (the consumer stopped), or a bug upstream
            status = CallStatus.CANCELLED
        text = "".join(acc.content)
        meter = self.meter
        return Outcome(
            status=status,
            reported_usage=acc.usage,
            reported_timings=acc.timings,
            usage_problem=acc.usage_problem,
            error=error,
            generated_text=acc.generated_text(),
            ttft_at=acc.first_token_at,
            completion_text=text or None,
            output_counted=None if meter is None else min(meter.counted, meter.limit),
        )
