"""One OpenAI-compatible endpoint: its client, its error mapping, its token counter.

This is the boundary with the ``openai`` SDK: every SDK or transport exception
leaves this module as a :mod:`spendgraph.providers.errors` type, with whatever
the server said scrubbed of keys (:mod:`spendgraph.providers.redact`); a 200
answer that is not a chat completion is a ``BadResponse``, and every attempt
runs within wall-clock deadlines (:mod:`spendgraph.providers.responses`). The
SDK's own retries are off (``max_retries=0``) because the router retries
itself, so that every HTTP attempt becomes its own ledger row.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spendgraph.providers import errors
from spendgraph.providers.config import EndpointConfig
from spendgraph.providers.engines import EngineProfile, MeasuredCounts, TokenizerApi, prompt_key
from spendgraph.providers.engines.counting import chatml_segments, text_key
from spendgraph.providers.engines.profiles import profile_for, tokenizer_for
from spendgraph.providers.ledger.records import EndpointInfo
from spendgraph.providers.prefixes import PrefixMemory
from spendgraph.providers.redact import GENERIC, Redactor, authorization_secret
from spendgraph.providers.responses import (
    AttemptTimeouts,
    StreamClock,
    check_event_stream,
    checked_completion,
    guarded_chunks,
    invalid_json,
    late,
    snippet,
)
from spendgraph.providers.tokens import chatml_prompt_text, count_chat, count_text
from spendgraph.providers.usage import Price

# The longest a best-effort tokenizer request may take.
EXTRA_TIMEOUT_S = 5.0
# How much later than our own deadlines the HTTP client's per-read timeout fires.
READ_BACKSTOP_S = 1.0


def map_sdk_error(
    exc: BaseException, endpoint: str, redactor: Redactor = GENERIC
) -> errors.EndpointError:
    """Translate an ``openai``/transport exception into our error tree.

    Whatever the server said is scrubbed by ``redactor``, and of the key the failed
    request carried, before it becomes part of a message.
    """
    if isinstance(exc, errors.EndpointError):
        return exc
    redactor = redactor.with_secrets([_sent_secret(exc)])
    if isinstance(exc, openai.APITimeoutError):
        return errors.EndpointTimeout("request timed out", endpoint=endpoint)
    if isinstance(exc, openai.APIConnectionError) and _body_cut(exc):
        # The server answered (and did the work); the body broke off on the way.
        cause = redactor.scrub(str(exc.__cause__))
        return errors.StreamCut(f"the response ended early: {cause}", endpoint=endpoint)
    if isinstance(exc, openai.APIConnectionError):
        return errors.EndpointConnectionError(
            f"connection failed: {redactor.scrub(str(exc))}", endpoint=endpoint
        )
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, endpoint, redactor)
    if isinstance(exc, openai.APIError):
        # An error event inside a 200 stream (``data: {"error": ...}``): the server failed.
        message = snippet(exc.message, redactor)
        return errors.ServerError(f"error event in the stream: {message}", endpoint=endpoint)
    # Anything else raised while reading a response body (a peer that closed
    # mid-stream surfaces as the transport's protocol error).
    return errors.StreamCut(f"response ended early: {type(exc).__name__}", endpoint=endpoint)


# What each transport says of a body that broke off after the response's head: h11
# (under httpx) and aiohttp (its ClientPayloadError, wrapped in httpx2's ReadError).
_BODY_CUT_SIGNS = ("complete message body", "payload is not completed")


def _body_cut(exc: BaseException) -> bool:
    """Whether the transport says a response's body ended early (the server had answered),
    as opposed to a connection that failed before any answer."""
    cause = exc.__cause__
    for _ in range(3):  # the SDK's error <- the transport's <- aiohttp's own
        if cause is None:
            return False
        if any(sign in str(cause) for sign in _BODY_CUT_SIGNS):
            return True
        cause = cause.__cause__
    return False


def sdk_cause(exc: BaseException) -> BaseException | None:
    """What to chain a mapped error to: not an SDK error that holds the server's body
    verbatim (it may echo the key, and a logged traceback prints the cause)."""
    return None if isinstance(exc, openai.APIError) and exc.body is not None else exc


def _sent_secret(exc: BaseException) -> str | None:
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    return authorization_secret(headers.get("authorization")) if headers is not None else None


def _status_error(
    exc: openai.APIStatusError, endpoint: str, redactor: Redactor
) -> errors.EndpointError:
    status = exc.status_code
    message = f"HTTP {status}: {_server_message(exc, redactor)}"
    if status == 429:
        retry_after = _retry_after(exc.response.headers)
        return errors.RateLimited(
            message, endpoint=endpoint, status_code=status, retry_after=retry_after
        )
    if status >= 500:
        return errors.ServerError(message, endpoint=endpoint, status_code=status)
    if status in (401, 403):
        return errors.AuthenticationFailed(message, endpoint=endpoint, status_code=status)
    # 408 (the server's own request timeout) and 409 (a conflict, e.g. a lock): worth
    # another attempt, as OpenAI's SDK also judges them.
    if status == 408:
        return errors.EndpointTimeout(message, endpoint=endpoint, status_code=status)
    if status == 409:
        return errors.Conflict(message, endpoint=endpoint, status_code=status)
    return errors.BadRequest(message, endpoint=endpoint, status_code=status)


def _server_message(exc: openai.APIStatusError, redactor: Redactor) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return snippet(str(inner["message"]), redactor)
    if isinstance(body, str) and body:  # not JSON: the SDK keeps the text, not in its message
        return snippet(body, redactor)
    return snippet(exc.message, redactor)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _server_root(base_url: str) -> str:
    """``http://host:port/r/x/v1`` -> ``http://host:port/r/x``: where vLLM/llama.cpp extras live."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Endpoint:
    """A configured endpoint with its pooled ``AsyncOpenAI`` client."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        env: Mapping[str, str] = os.environ,
        http_client: Any = None,
    ):
        """``http_client`` lets many endpoints share one connection pool (and one TLS
        context, which costs ~55 ms to build per client); the owner closes it."""
        self.config = config
        self.name = config.name
        self.price: Price = config.price.to_price() if config.price else Price.unknown()
        self.info = EndpointInfo(
            name=config.name,
            model=config.model,
            hardware=config.hardware,
            precision=config.precision,
            engine=config.engine,
        )
        self.timeouts = AttemptTimeouts.of(config)
        self._root = _server_root(config.base_url)
        # What to send this engine and how to read it; the tokenizer endpoint is the
        # engine's unless the config's tokenize_api chose one (or "none").
        self.profile: EngineProfile = profile_for(config.engine)
        self.tokenizer: TokenizerApi | None = (
            tokenizer_for(config.tokenize_api)
            if config.tokenize_api_chosen()
            else self.profile.tokenizer
        )
        # Measured counts by prompt (or rendered segment): a thread's history is
        # counted by the server once, not on every turn.
        self.counts = MeasuredCounts()
        self._overhead: int | None = None  # tokens a count adds to any text (a BOS)
        api_key = config.api_key(env)
        self.redactor = Redactor([api_key])
        quiet_client_logs()
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=api_key,
            # Per read, and a backstop only: the deadlines below are wall-clock, and
            # set a little later so that ours fire first (aiohttp's read timer is
            # as punctual as our watchdog; at the same instant it would win the race).
            timeout=config.timeout_s + READ_BACKSTOP_S,
            max_retries=0,
            http_client=http_client,
        )
        self._owns_http_client = http_client is None
        # What this endpoint was sent: estimates cache hits on rows without a usage report.
        self.prefixes = PrefixMemory()
        # The model's context window, once the server's tokenizer endpoint has said it.
        self.context_window: int | None = None

    def map_error(self, exc: BaseException) -> tuple[errors.EndpointError, BaseException | None]:
        """``exc`` as our error (server text scrubbed of keys), and what to chain it to."""
        return map_sdk_error(exc, self.name, self.redactor), sdk_cause(exc)

    async def complete(
        self, body: dict[str, Any], *, not_after: float | None = None
    ) -> ChatCompletion:
        """One non-streamed HTTP attempt, answered in full within ``timeout_s`` (and by
        ``not_after``, the call's deadline on the event loop's clock, if earlier)."""
        loop = asyncio.get_running_loop()
        limit = self.timeouts.answer_s
        deadline, call_bound = _earliest(loop.time() + limit, not_after)
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._create(body)
        except TimeoutError:
            message = late(limit, "no complete answer", call_deadline=call_bound)
            raise errors.EndpointTimeout(message, endpoint=self.name) from None
        except openai.OpenAIError as exc:
            mapped, cause = self.map_error(exc)
            raise mapped from cause
        except ValueError as exc:  # JSONDecodeError: a JSON content type, a body that is not
            raise invalid_json(exc, self.name, self.redactor) from None
        return checked_completion(response, self.name, self.redactor)

    async def open_stream(
        self, body: dict[str, Any], *, not_after: float | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Start one streamed HTTP attempt; iterate the result for chunks.

        The first token must come within ``timeout_s`` (and by ``not_after``), the
        next progress within ``timeout_s`` of the last, the whole stream within
        ``stream_timeout_s``; a stream must end with its finish chunk, and one that
        streams far past ``max_tokens`` is cut.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        limits = self.timeouts
        first, call_bound = _earliest(started + limits.answer_s, not_after)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        clock = StreamClock(limits, started, first, call_bound, max_tokens)
        stream = None
        try:
            async with asyncio.timeout_at(min(first, started + limits.stream_s)):
                stream = await self._create(body)
                await check_event_stream(stream, self.name, self.redactor)
        except BaseException as exc:
            if stream is not None:
                await stream.close()
            if isinstance(exc, TimeoutError):
                message = clock.late(loop.time(), progressed=False)
                raise errors.EndpointTimeout(message, endpoint=self.name) from None
            if isinstance(exc, openai.OpenAIError):
                mapped, cause = self.map_error(exc)
                raise mapped from cause
            raise
        return guarded_chunks(stream, self.name, self.redactor, clock, self.map_error)

    async def _create(self, body: dict[str, Any]) -> Any:
        """``chat.completions.create(**body)`` without the SDK's parameter transform.

        The transform walks the whole request against the SDK's typed parameters
        (~0.5 ms for a 2k-character prompt with one tool, on every attempt) and
        changes nothing in a body of plain JSON values, which is what
        :meth:`ChatRequest.body` builds; ``post`` is the SDK's own request path
        after it, with the same auth, retries (none), timeout and response types.

        A stream yields each event's JSON as the SDK decoded it (``AsyncStream[object]``,
        its error events already raised); :func:`~spendgraph.providers.responses.parse_chunk`
        turns it into a chunk far faster than the SDK's own construction.
        """
        payload = dict(body)
        headers = payload.pop("extra_headers", None)
        stream = bool(payload.get("stream"))
        return await self.client.post(
            "/chat/completions",
            body=payload,
            cast_to=ChatCompletion,
            options={"headers": headers} if headers else {},
            stream=stream,
            stream_cls=openai.AsyncStream[object],
        )

    async def count_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Any) -> int | None:
        """Exact prompt tokens from the server's tokenizer endpoint, or None if it has none.

        Counts are remembered per prompt (and, for prompts rendered here, per
        message), so repeated history costs no round trip.
        """
        api = self.tokenizer
        if api is None:
            return None
        key = prompt_key(messages, tools)
        known = self.counts.get(key)
        if known is not None:
            return known
        if api.chat:
            body = {"model": self.config.model, "messages": list(messages)}
            if tools:
                body["tools"] = list(tools)
            answer = await self._post_extra(api.path, body)
            self._learn_context_window(answer)
            count = api.count_of(answer)
        elif api.template_path is not None:
            count = await self._count_templated(api, messages)
        elif api.style == "llama-cpp-python":
            count = await self._count_segments(api, chatml_prompt_text(messages))
        else:
            # A text-only tokenizer (SGLang, TensorRT-LLM) cannot apply the chat
            # template: its count of our rendering would not be the server's.
            count = None
        if count is not None:
            self.counts.put(key, count)
        return count

    async def _count_templated(self, api: TokenizerApi, messages: Sequence[Mapping[str, Any]]):
        """llama-server: its own template renders the prompt, its tokenizer counts it."""
        rendered = await self._post_extra(api.template_path, {"messages": list(messages)})
        prompt = rendered.get("prompt") if rendered else None
        if not isinstance(prompt, str):
            return None
        body = api.text_body(self.config.model, prompt, special=True)
        return api.count_of(await self._post_extra(api.path, body))

    async def _count_segments(self, api: TokenizerApi, text: str) -> int | None:
        """Count a rendered ChatML prompt one message segment at a time, each once.

        llama-cpp-python renders ChatML itself (SmolLM2, the embedded model, uses
        it) and has no endpoint that applies the template, so the prompt is
        rendered here; its special tokens keep segments from merging, so the
        segments' counts add up to the prompt's.
        """
        overhead = await self._count_overhead(api)
        if overhead is None:
            return None
        total = overhead
        for segment in chatml_segments(text):
            key = text_key(segment)
            count = self.counts.get(key)
            if count is None:
                body = api.text_body(self.config.model, segment, special=True)
                measured = api.count_of(await self._post_extra(api.path, body))
                if measured is None:
                    return None
                count = measured - overhead
                self.counts.put(key, count)
            total += count
        return total

    async def _count_overhead(self, api: TokenizerApi) -> int | None:
        """What the tokenizer adds to any text (a BOS token), measured once on ``""``."""
        if self._overhead is None:
            answer = await self._post_extra(
                api.path, api.text_body(self.config.model, "", special=True)
            )
            self._overhead = api.count_of(answer)
        return self._overhead

    def _learn_context_window(self, answer: Mapping[str, Any] | None) -> None:
        window = answer.get("max_model_len") if answer else None
        if isinstance(window, int) and not isinstance(window, bool) and window > 0:
            self.context_window = window

    async def count_output(self, text: str) -> int | None:
        """Exact tokens of generated text from the server's tokenizer, if it has one."""
        api = self.tokenizer
        if api is None:
            return None
        body = api.text_body(self.config.model, text, special=False)
        count = api.count_of(await self._post_extra(api.path, body))
        if api.style == "llama-cpp-python" and count is not None:
            # Its endpoint adds what it adds to any text (a BOS); generated text has none.
            overhead = await self._count_overhead(api)
            count = count - overhead if overhead is not None else None
        return count

    def estimate_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Any) -> int:
        """Prompt tokens counted locally with this endpoint's tiktoken encoding."""
        return count_chat(messages, self.config.tokenizer, tools=tools)

    def estimate_text(self, text: str) -> int:
        return count_text(text, self.config.tokenizer)

    async def _post_extra(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        # Counting is best effort (the caller falls back to tiktoken), so it is
        # bounded tightly: it runs before a budgeted call and after a failed one.
        try:
            async with asyncio.timeout(min(self.timeouts.answer_s, EXTRA_TIMEOUT_S)):
                answer = await self.client.post(self._root + path, body=body, cast_to=object)
        except (openai.OpenAIError, TimeoutError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self.client.close()


def _earliest(own: float, not_after: float | None) -> tuple[float, bool]:
    """The earlier of the attempt's own deadline and the call's; and whether it is the call's."""
    if not_after is not None and not_after < own:
        return not_after, True
    return own, False


def quiet_client_logs() -> None:
    """Silence the HTTP client's per-request INFO lines (one per call, with its URL),
    unless the program set those loggers' levels itself."""
    for name in ("httpx", "httpx2", "openai"):  # openai>=3 sends through httpx2
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
