"""The provider layer's entry point: every model call spendgraph makes goes through here.

``ProviderLayer.chat`` (and ``.stream``) route a request to an endpoint, retry
retryable failures with backoff, fall back to the next endpoint, enforce the
query's budget, and write one ledger row per HTTP attempt. Retry, fallback and
accounting wrap the single-endpoint client (:class:`Endpoint`) rather than
subclassing it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path

import openai

from spendgraph.providers.attempt import Attempt, CallSite, Outcome
from spendgraph.providers.budget import Budget, BudgetLimits
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.config import SpendgraphConfig, load_config
from spendgraph.providers.context import (
    QueryScope,
    current_agent_path,
    current_node,
    current_query,
    query_context,
)
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import (
    BudgetExceeded,
    ConfigError,
    EndpointError,
    LedgerError,
    NoEndpointAvailable,
    StreamCut,
)
from spendgraph.providers.ledger import Ledger, new_sequential_id
from spendgraph.providers.ledger.records import CallRecord, CallStatus, QueryRecord, QueryStatus
from spendgraph.providers.retry import RetryPolicy
from spendgraph.providers.router import Router, RouteRequest
from spendgraph.providers.streaming import StreamAccumulator
from spendgraph.providers.tokens import DEFAULT_ENCODING, count_chat
from spendgraph.providers.usage import Usage


class _PromptCounts:
    """Prompt tokens of one request, counted once per tokenizer encoding."""

    def __init__(self, request: ChatRequest):
        self._request = request
        self._counts: dict[str, int] = {}

    def count(self, encoding: str) -> int:
        # A per-instance dict, not functools.cache: a cache on the method would
        # keep every request's counter (and its messages) alive forever.
        if encoding not in self._counts:
            request = self._request
            self._counts[encoding] = count_chat(request.messages, encoding, tools=request.tools)
        return self._counts[encoding]


class ProviderLayer:
    """Routes, retries, falls back, enforces budgets and records every attempt."""

    def __init__(
        self, config: SpendgraphConfig, ledger: Ledger, *, env: Mapping[str, str] = os.environ
    ):
        self.config = config
        self.ledger = ledger
        # One connection pool for every endpoint: cheap to build, closed with the layer.
        self._http = openai.DefaultAsyncHttpx2Client()
        self.endpoints = {
            c.name: Endpoint(c, env=env, http_client=self._http) for c in config.endpoints
        }
        self.router = Router(config, self.endpoints)
        self.retries = RetryPolicy(config.routing)

    @classmethod
    def open(
        cls,
        config_path: str | Path | None = None,
        *,
        ledger_url: str | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> ProviderLayer:
        """Load the config (--config, SPENDGRAPH_CONFIG, ./spendgraph.toml) and open the ledger."""
        config = load_config(config_path, env=env)
        if config is None:
            raise ConfigError(
                "no endpoints configured: pass --config, set SPENDGRAPH_CONFIG, "
                "or create spendgraph.toml"
            )
        ledger = Ledger.open(ledger_url or config.ledger.url, env=env)
        return cls(config, ledger, env=env)

    async def aclose(self, *, close_ledger: bool = True) -> None:
        """Close HTTP clients and (by default) flush and close the ledger."""
        for endpoint in self.endpoints.values():
            await endpoint.aclose()
        await self._http.aclose()
        if close_ledger:
            await self.ledger.aclose()

    # -- query scope -----------------------------------------------------

    @asynccontextmanager
    async def query(
        self,
        *,
        app: str = "",
        thread_id: str = "",
        user: str = "",
        budget_usd: Decimal | float | str | None = None,
        budget_tokens: int | None = None,
        store_text: bool | None = None,
        input_text: str | None = None,
    ) -> AsyncIterator[QueryScope]:
        """Open a ledger ``Query``; calls inside are attributed to it and held to its budget.

        On exit the query is closed with status ok, error, cancelled or
        budget_exhausted (or ``scope.status`` if the code set one). ``input_text``
        (the user's input) is stored on the Query row only when text is kept.
        """
        limits = BudgetLimits(
            usd=None if budget_usd is None else Decimal(str(budget_usd)), tokens=budget_tokens
        )
        keep_text = self.config.ledger.store_text if store_text is None else store_text
        record = QueryRecord(
            app=app,
            thread_id=thread_id,
            user=user,
            budget_usd=limits.usd,
            budget_tokens=limits.tokens,
            store_text=keep_text,
            input_preview=input_text if keep_text else None,
        )
        await self.ledger.open_query(record)
        budget = None if limits.unlimited else Budget(limits, query_id=record.id)
        scope = QueryScope(
            record.id, budget=budget, store_text=keep_text, app=app, thread_id=thread_id
        )
        status, error = QueryStatus.OK, None
        try:
            with query_context(scope):
                yield scope
        except BudgetExceeded as exc:
            status, error = QueryStatus.BUDGET_EXHAUSTED, str(exc)
            raise
        except BaseException as exc:
            cancelled = not isinstance(exc, Exception)
            status = QueryStatus.CANCELLED if cancelled else QueryStatus.ERROR
            error = type(exc).__name__ if cancelled else f"{type(exc).__name__}: {exc}"
            raise
        finally:
            # Commits in queue order: once the close is acknowledged, every call
            # row of this query queued before it is durable too.
            await self.ledger.close_query(record.id, scope.status or status, error=error)
            lost = scope.failed_writes()
            if lost:
                raise LedgerError(
                    f"{len(lost)} call row(s) of query {record.id} could not be written: {lost[0]}"
                ) from lost[0]

    # -- calls -----------------------------------------------------------

    def _site(self) -> CallSite:
        return CallSite(
            scope=current_query(),
            agent_path=current_agent_path(),
            node=current_node(),
            request_id=new_sequential_id(),
        )

    def _route(self, request: ChatRequest, site: CallSite, counts: _PromptCounts) -> list[Endpoint]:
        key = None
        if request.affinity_key is not None or self.config.tier(request.model).prefix_affinity:
            key = _affinity_key(request, site)
        return self.router.plan(
            RouteRequest(
                model=request.model,
                prompt_tokens=partial(counts.count, DEFAULT_ENCODING),
                max_tokens=request.max_tokens,
                latency_target_ms=request.latency_target_ms,
                affinity_key=key,
                endpoint=request.endpoint,
            )
        )

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One chat completion, non-streamed: route, retry, fall back, account."""
        site, counts = self._site(), _PromptCounts(request)
        attempts: list[CallRecord] = []

        def once(endpoint: Endpoint):
            return self._complete_once(endpoint, request, site, counts, attempts)

        endpoint, response = await self._first_success(request, site, counts, once)
        self.router.release(endpoint)
        return ChatResult(response, tuple(attempts))

    async def _first_success(
        self, request: ChatRequest, site: CallSite, counts: _PromptCounts, once
    ):
        """Try the routed candidates in order, retrying each, until ``once(endpoint)``
        succeeds. Returns that endpoint with its slot still held (the caller
        releases it) and what ``once`` returned; a non-retryable error surfaces at
        once, and running out of candidates raises :class:`NoEndpointAvailable`."""
        failures: list[EndpointError] = []
        candidates = self._route(request, site, counts)
        while candidates:
            endpoint = await self.router.checkout(candidates)
            try:
                cooling = partial(self.router.cooling, endpoint)
                return endpoint, await self.retries.run(partial(once, endpoint), cooling)
            except EndpointError as exc:
                self.router.release(endpoint)
                if not exc.retryable:
                    raise
                failures.append(exc)
                candidates = [c for c in candidates if c is not endpoint]
            except BaseException:
                self.router.release(endpoint)
                raise
        raise _exhausted(request, failures)

    def _attempt(self, endpoint, request, site, counts, attempts, *, stream: bool) -> Attempt:
        attempt = Attempt(
            endpoint,
            request,
            site,
            number=len(attempts) + 1,
            ledger=self.ledger,
            stream=stream,
            prompt_estimate=partial(counts.count, endpoint.config.tokenizer),
        )
        attempt.reserve()
        return attempt

    async def _complete_once(self, endpoint, request, site, counts, attempts):
        attempt = self._attempt(endpoint, request, site, counts, attempts, stream=False)
        outcome = Outcome()
        try:
            response = await endpoint.complete(attempt.body())
            message = response.choices[0].message if response.choices else None
            outcome.status = CallStatus.OK
            outcome.usage = Usage.from_openai(response.usage) if response.usage else None
            outcome.generated_text = _message_text(message)
            outcome.completion_text = message.content if message else None
            return response
        except EndpointError as exc:
            outcome.status, outcome.error = CallStatus.ERROR, exc
            raise
        finally:
            await self._settle(attempt, outcome, attempts)

    async def _settle(self, attempt: Attempt, outcome: Outcome, attempts: list[CallRecord]):
        record = await attempt.finish(outcome)
        attempts.append(record)
        if record.status is CallStatus.OK:
            self.router.record_success(
                attempt.endpoint, ttft_ms=record.ttft_ms, latency_ms=record.latency_ms or 0.0
            )
        elif isinstance(outcome.error, EndpointError) and (
            outcome.error.retryable or isinstance(outcome.error, StreamCut)
        ):
            self.router.record_failure(attempt.endpoint)

    def stream(self, request: ChatRequest) -> ChatStream:
        """One chat completion, streamed.

        Use as ``async with layer.stream(request) as chunks: async for chunk in chunks``;
        leaving the block early records the attempt as cancelled.
        """
        return ChatStream(self, request)

    async def _stream_chunks(self, request: ChatRequest, sink: ChatStream):
        site, counts = self._site(), _PromptCounts(request)
        attempts: list[CallRecord] = []

        def once(endpoint: Endpoint):
            return self._open_stream(endpoint, request, site, counts, attempts)

        endpoint, opened = await self._first_success(request, site, counts, once)
        try:
            async for chunk in self._drain(opened, attempts):
                yield chunk
        finally:
            self.router.release(endpoint)
        sink.result = ChatResult(opened.accumulator.completion(), tuple(attempts))

    async def _open_stream(self, endpoint, request, site, counts, attempts) -> _OpenStream:
        """Start a stream and read it up to its first token, so failures before it can retry."""
        attempt = self._attempt(endpoint, request, site, counts, attempts, stream=True)
        opened = _OpenStream(attempt)
        try:
            opened.chunks = await endpoint.open_stream(attempt.body())
            async for chunk in opened.chunks:
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
            await self._settle(attempt, opened.outcome(exc), attempts)
            raise

    async def _drain(self, opened: _OpenStream, attempts: list[CallRecord]):
        error: BaseException | None = None
        try:
            for chunk in opened.buffered:
                yield chunk
            if not opened.exhausted:
                async for chunk in opened.chunks:
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
            await opened.chunks.aclose()  # no-op when the stream ended by itself
            await self._settle(opened.attempt, opened.outcome(error), attempts)


class _OpenStream:
    """A stream that has produced its first token, with what it buffered so far."""

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.accumulator = StreamAccumulator()
        self.buffered: list = []
        self.chunks = None
        self.exhausted = False

    def outcome(self, error: BaseException | None) -> Outcome:
        acc = self.accumulator
        if error is None:
            status = CallStatus.OK
        elif isinstance(error, EndpointError):
            status = CallStatus.ERROR
        else:  # CancelledError, GeneratorExit (the consumer stopped), or a bug upstream
            status = CallStatus.CANCELLED
        text = "".join(acc.content)
        return Outcome(
            status=status,
            usage=acc.usage if status is CallStatus.OK else None,
            error=error,
            generated_text=acc.generated_text(),
            ttft_at=acc.first_token_at,
            completion_text=text or None,
        )


class ChatStream:
    """A streamed call: iterate for ``ChatCompletionChunk``s; ``result`` is set at the end."""

    def __init__(self, layer: ProviderLayer, request: ChatRequest):
        self._chunks = layer._stream_chunks(request, self)
        self.result: ChatResult | None = None

    def __aiter__(self):
        return self._chunks

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream early; its attempt is recorded as cancelled."""
        await self._chunks.aclose()


def _affinity_key(request: ChatRequest, site: CallSite) -> str:
    """Explicit; else the conversation thread and the agent (each agent's own prompt
    prefix stays on one replica, and a thread's agents spread over the pool); else
    the conversation's opening, for calls made outside a threaded query."""
    if request.affinity_key is not None:
        return request.affinity_key
    if site.scope is not None and site.scope.thread_id:
        return f"{site.scope.thread_id}\0{site.agent_path}"
    return request.opening_key()


def _message_text(message) -> str:
    if message is None:
        return ""
    calls = "".join(c.function.name + c.function.arguments for c in message.tool_calls or ())
    return (message.content or "") + calls


def _exhausted(request: ChatRequest, failures: list[EndpointError]) -> NoEndpointAvailable:
    detail = "; ".join(str(f) for f in failures[-5:])
    what = (
        f"endpoint {request.endpoint!r} failed after retries"
        if request.endpoint is not None
        else f"every endpoint for {request.model!r} failed after retries and fallbacks"
    )
    return NoEndpointAvailable(
        f"{what}: {detail}",
        attempts=failures,
    )
