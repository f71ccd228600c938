"""What a 200 answer must be, and how long it may take: checked at the endpoint boundary.

A server (or a proxy in front of it) can answer 200 with an HTML page, invalid
JSON, JSON of another shape, or a stream that stops without its finish chunk;
it can trickle bytes or stream forever. The ``openai`` SDK passes all of that
through (an HTML body comes back as a ``str``; a stream of HTML yields no
chunks and ends "normally"), and its timeout is per read. Here each case
becomes an :class:`~spendgraph.providers.errors.EndpointError`, and every
attempt gets wall-clock deadlines (:class:`AttemptTimeouts`).

A stream is complete when a choice carried a ``finish_reason``: the SDK
swallows ``[DONE]``, so it cannot be told apart from a server closing the
connection. After the finish chunk the trailer (the usage chunk, ``[DONE]``)
is waited for briefly; a server that never sends it is not held against the
answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage

from spendgraph.providers import errors
from spendgraph.providers.config import EndpointConfig
from spendgraph.providers.redact import Redactor

# How long to wait for a stream's trailer (usage chunk, [DONE]) after its finish chunk.
TRAILER_WAIT_S = 2.0
# Every chunk with text carries at least one token, so a stream with more of them than
# this (x max_tokens, + slack) ignores max_tokens and would run until its cap.
RUNAWAY_FACTOR = 2
RUNAWAY_SLACK = 16
# How much of an unexpected body to read and quote.
_BODY_PEEK_BYTES = 2048
_SNIPPET_CHARS = 200
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"\s+")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AttemptTimeouts:
    """Wall-clock limits of one HTTP attempt (seconds).

    ``answer_s``: a non-streamed attempt's whole answer; a stream's first token.
    ``idle_s``: a started stream's longest silence between two chunks.
    ``stream_s``: a stream's whole answer, however steadily it arrives.
    """

    answer_s: float
    idle_s: float
    stream_s: float

    @classmethod
    def of(cls, config: EndpointConfig) -> AttemptTimeouts:
        return cls(
            answer_s=config.timeout_s, idle_s=config.timeout_s, stream_s=config.stream_cap_s()
        )


def snippet(text: str, redactor: Redactor) -> str:
    """A server's text fit for a message: tags stripped, one line, short, no secrets."""
    flat = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    if len(flat) > _SNIPPET_CHARS:
        flat = flat[: _SNIPPET_CHARS - 3] + "..."
    return redactor.scrub(flat) or "(empty body)"


def late(limit_s: float, what: str, *, call_deadline: bool) -> str:
    """The message of a deadline hit: which limit, and how long it was."""
    if call_deadline:
        return f"{what}: the call's deadline (routing.call_timeout_s) ran out"
    return f"{what} within {limit_s:g} s"


# -- non-streamed -------------------------------------------------------------


def checked_completion(response: Any, endpoint: str, redactor: Redactor) -> ChatCompletion:
    """``response`` if it is a chat completion with choices and messages, else BadResponse.

    The SDK builds its models without validation: a JSON body of another shape
    comes back as a ``ChatCompletion`` whose fields are simply missing.
    """
    if isinstance(response, ChatCompletion):
        choices = getattr(response, "choices", None)
        if (
            isinstance(choices, list)
            and choices
            and all(isinstance(getattr(c, "message", None), ChatCompletionMessage) for c in choices)
        ):
            return response
        error = getattr(response, "error", None)
        if isinstance(error, Mapping) and error.get("message"):
            what = f"an error object: {snippet(str(error['message']), redactor)}"
        else:
            what = "JSON without a choice carrying a message"
        raise errors.BadResponse(f"HTTP 200 with {what}", endpoint=endpoint, status_code=200)
    if isinstance(response, str):  # a body whose content type is not JSON
        raise errors.BadResponse(
            f"HTTP 200 with a body that is not JSON: {snippet(response, redactor)}",
            endpoint=endpoint,
            status_code=200,
        )
    raise errors.BadResponse(
        f"HTTP 200 with an unexpected {type(response).__name__}",
        endpoint=endpoint,
        status_code=200,
    )


def invalid_json(exc: ValueError, endpoint: str, redactor: Redactor) -> errors.BadResponse:
    """A body served as JSON that does not parse (the SDK raises ``JSONDecodeError``)."""
    body = getattr(exc, "doc", "")
    return errors.BadResponse(
        f"HTTP 200 with invalid JSON: {snippet(body, redactor)}",
        endpoint=endpoint,
        status_code=200,
    )


# -- streamed -----------------------------------------------------------------


async def check_event_stream(stream: Any, endpoint: str, redactor: Redactor) -> None:
    """BadResponse unless a stream's response is server-sent events (or says nothing).

    An HTML page would otherwise be parsed as a stream of no events; its start
    is read and quoted, as the page usually says what went wrong.
    """
    response = stream.response
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("", "text/event-stream"):
        return
    peek = bytearray()
    async for part in response.aiter_bytes():
        peek += part
        if len(peek) >= _BODY_PEEK_BYTES:
            break
    text = peek[:_BODY_PEEK_BYTES].decode("utf-8", errors="replace")
    raise errors.BadResponse(
        f"HTTP {response.status_code} with {media_type} instead of an event stream: "
        f"{snippet(text, redactor)}",
        endpoint=endpoint,
        status_code=response.status_code,
    )


def parse_chunk(data: object) -> Any:
    """One stream event's decoded JSON as a ``ChatCompletionChunk``, as the SDK would build it.

    The SDK builds each chunk leniently, walking the model's type hints in Python
    (40-80 us a chunk, most of a streamed call's client-side CPU); pydantic-core's
    strict validation builds the same object in ~3 us. Whatever it rejects -- a
    missing field, a float where an int belongs -- is built exactly as the SDK
    builds it (its ``construct_type`` calls ``construct(**data)``), so an odd or
    hostile server's chunk reaches the checks below as it always did. JSON that is
    not an object is no chunk either way: it fails the shape check as before.
    """
    if type(data) is not dict:
        return data
    try:
        return ChatCompletionChunk.model_validate(data, strict=True)
    except pydantic.ValidationError:
        return ChatCompletionChunk.construct(**data)


def _progress(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries generated text, reasoning or a tool call."""
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.tool_calls:
            return True
        if getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None):
            return True
    return False


def _shape_error(chunk: Any, endpoint: str) -> errors.BadResponse | None:
    choices = getattr(chunk, "choices", None)
    if isinstance(choices, list) and all(getattr(c, "delta", None) is not None for c in choices):
        return None
    return errors.BadResponse(
        "a stream chunk without choices and their deltas", endpoint=endpoint, status_code=200
    )


@dataclass(slots=True)
class StreamClock:
    """Deadlines of one streamed attempt, on the event loop's clock."""

    limits: AttemptTimeouts
    started: float
    first_deadline: float  # the earlier of the first-token limit and the call's deadline
    call_bound: bool  # whether that deadline is the call's
    max_tokens: int | None = None  # the request's: a stream far past it is cut

    def runaway(self, progress_chunks: int) -> bool:
        """Whether a stream has sent far more chunks with text than ``max_tokens`` allows."""
        bound = self.max_tokens
        return bound is not None and progress_chunks > bound * RUNAWAY_FACTOR + RUNAWAY_SLACK

    def next_deadline(self, quiet_since: float, progressed: bool, finished: bool) -> float:
        """When the wait for the next chunk ends; ``quiet_since``: when the last
        progress (or the finish chunk) was handed on and reading resumed."""
        cap = self.started + self.limits.stream_s
        if finished:
            return min(quiet_since + min(TRAILER_WAIT_S, self.limits.idle_s), cap)
        if progressed:
            return min(quiet_since + self.limits.idle_s, cap)
        return min(self.first_deadline, cap)

    def late(self, now: float, progressed: bool) -> str:
        limits = self.limits
        if now >= self.started + limits.stream_s - 1e-3:
            return f"the stream did not finish within {limits.stream_s:g} s (stream_timeout_s)"
        if progressed:
            return f"the stream went silent for {limits.idle_s:g} s (timeout_s)"
        return late(limits.answer_s, "no first token", call_deadline=self.call_bound)


class Watchdog:
    """One timer for a whole stream, cancelling the reading task when a wait for a chunk
    passes its deadline.

    ``asyncio.timeout_at`` per chunk does the same at ~7 us a chunk (a timer
    scheduled and cancelled every time, 15% on top of the SDK's own parsing);
    this timer is moved only when it fires before the current deadline. It
    cancels only while :meth:`wait` is suspended -- never in the consumer's code
    between two chunks.
    """

    __slots__ = ("_deadline", "_fired", "_handle", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._deadline = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._fired = False

    async def wait(self, awaitable: Awaitable[T], deadline: float) -> T:
        """``await awaitable``; TimeoutError once the loop's clock passes ``deadline``."""
        self._deadline = deadline
        task = self._task = asyncio.current_task()
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(deadline, self._fire)
        try:
            value = await awaitable
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if task.uncancel() == 0:  # ours alone, not the caller's too
                    raise TimeoutError from None
            raise
        finally:
            self._task = None
        if self._fired:  # the awaitable swallowed our cancellation
            self._fired = False
            task.uncancel()
        return value

    def _fire(self) -> None:
        self._handle = None
        if self._task is None:
            return  # between two waits: the next one arms the timer again
        if self._loop.time() < self._deadline:  # the deadline moved on since
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._fired = True
        self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def guarded_chunks(
    stream: Any,
    endpoint: str,
    redactor: Redactor,
    clock: StreamClock,
    map_error: Callable[[BaseException], tuple[errors.EndpointError, BaseException | None]],
) -> AsyncIterator[ChatCompletionChunk]:
    """The SDK stream's chunks, within ``clock``'s deadlines, checked, mapped to our errors.

    ``map_error`` maps any other exception to ours and says what to chain it to.

    Ends with StreamCut when the server closed the stream before a finish
    chunk; a deadline hit is an ``EndpointTimeout`` before the first progress
    (retryable) and a :class:`~spendgraph.providers.errors.StreamTimeout` after it.
    """
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop)
    chunks = aiter(stream)
    progressed = finished = False
    count = progress_chunks = 0
    # Silence is counted from the last chunk that made progress, so a server sending
    # empty chunks forever goes silent too; but not the consumer's time with a chunk.
    quiet_since: float | None = None
    try:
        while True:
            if quiet_since is None:
                quiet_since = loop.time()
            when = clock.next_deadline(quiet_since, progressed, finished)
            try:
                chunk = parse_chunk(await watchdog.wait(anext(chunks), when))
            except StopAsyncIteration:
                break
            except TimeoutError:
                if finished:
                    return  # only the trailer is missing; the answer is whole
                message = clock.late(loop.time(), progressed)
                error = errors.StreamTimeout if progressed else errors.EndpointTimeout
                raise error(message, endpoint=endpoint) from None
            bad = _shape_error(chunk, endpoint)
            if bad is not None:
                raise bad
            count += 1
            if _progress(chunk):
                progressed, quiet_since = True, None
                progress_chunks += 1
                if clock.runaway(progress_chunks):
                    raise errors.StreamCut(
                        f"the server sent {progress_chunks} chunks of text for "
                        f"max_tokens = {clock.max_tokens} and did not stop",
                        endpoint=endpoint,
                    )
            if not finished and any(c.finish_reason for c in chunk.choices):
                finished, quiet_since = True, None
            yield chunk
        if not finished:
            raise errors.StreamCut(
                f"the stream ended before its finish chunk (after {count} chunk(s))",
                endpoint=endpoint,
            )
    except errors.EndpointError:
        raise
    except ValueError as exc:  # a data line that is not JSON (JSONDecodeError)
        raise invalid_json(exc, endpoint, redactor) from None
    except Exception as exc:
        # Besides the SDK's errors, the transport's own (a peer closing mid-body)
        # arrive here; map_error sorts them without us importing that library.
        mapped, cause = map_error(exc)
        if progressed and isinstance(mapped, errors.EndpointTimeout):
            message = f"a read timed out after the first token ({clock.limits.idle_s:g} s)"
            mapped = errors.StreamTimeout(message, endpoint=endpoint)
        raise mapped from cause
    finally:
        watchdog.close()
        await stream.close()
