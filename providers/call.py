"""One logical model call: its request, where it was made, and every HTTP attempt it took.

``ProviderLayer.chat`` and ``.stream`` each make one :class:`ModelCall`. The
call plans its route once, takes a concurrency slot on a candidate, retries it
with backoff, falls back to the next candidate, and owns the ledger record of
every attempt (:class:`~spendgraph.providers.attempt.Attempt` accounts for one
of them). The streaming half lives in :mod:`spendgraph.providers.streaming`;
it drives the same call object through :meth:`ModelCall.first_success`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from spendgraph.providers.attempt import Attempt, CallSite, Outcome
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.config import SpendgraphConfig
from spendgraph.providers.context import current_agent_path, current_node, current_query
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import (
    EndpointError,
    NoEndpointAvailable,
    RateLimited,
    StreamCut,
)
from spendgraph.providers.ledger import Ledger, new_sequential_id
from spendgraph.providers.ledger.records import CallRecord, CallStatus
from spendgraph.providers.retry import RetryPolicy
from spendgraph.providers.router import Router, RouteRequest
from spendgraph.providers.telemetry.recorder import Telemetry
from spendgraph.providers.tokens import DEFAULT_ENCODING, count_chat, recipe_bounds

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallServices:
    """What every call through one provider layer shares."""

    config: SpendgraphConfig
    ledger: Ledger
    router: Router
    retries: RetryPolicy
    telemetry: Telemetry = field(default_factory=Telemetry.disabled)


class ModelCall:
    """One logical call (a ``chat`` or a ``stream``) and the attempts it has made so far."""

    __slots__ = ("_counts", "attempts", "deadline", "request", "services", "site", "stream")

    def __init__(self, services: CallServices, request: ChatRequest, *, stream: bool = False):
        self.services = services
        self.request = request
        self.stream = stream
        # Read once, where the caller stands: retries and fallbacks keep the
        # attribution even if they run after the caller's scope changed.
        self.site = CallSite(
            scope=current_query(),
            agent_path=current_agent_path(),
            node=current_node(),
            request_id=request.request_id or new_sequential_id(),
        )
        self.attempts: list[CallRecord] = []
        self._counts: dict[str, int] = {}
        # The call's wall-clock limit on the event loop's clock, set when routing starts.
        self.deadline: float | None = None

    # -- prompt tokens ------------------------------------------------------

    @property
    def budgeted(self) -> bool:
        """Whether the call's query holds it to a budget (which costs counting work)."""
        scope = self.site.scope
        # The layer gives a query a budget object only when some limit applies.
        return scope is not None and scope.budget is not None

    def prompt_tokens(self, encoding: str = DEFAULT_ENCODING) -> int:
        """The request's prompt counted with ``encoding``, once per encoding (it costs CPU).

        Every candidate endpoint with this tokenizer shares the count; across calls,
        the process's count cache (:mod:`.count_cache`) remembers each message, so a
        thread's next turn counts only its new messages.
        """
        counted = self._counts.get(encoding)
        if counted is None:
            request = self.request
            counted = self._counts[encoding] = count_chat(
                request.messages, encoding, tools=request.tools
            )
        return counted

    # -- routing and attempts -------------------------------------------------

    def candidates(self) -> list[Endpoint]:
        """The endpoints to try, in order (the tier's, then its fallbacks')."""
        request, router = self.request, self.services.router
        key = None
        if request.affinity_key is not None or router.tier(request.model).prefix_affinity:
            key = self._affinity_key()
        return router.plan(
            RouteRequest(
                model=request.model,
                prompt_tokens=self.prompt_tokens,
                max_tokens=request.max_tokens,
                latency_target_ms=request.latency_target_ms,
                affinity_key=key,
                endpoint=request.endpoint,
                prompt_bounds=self._prompt_bounds,
            )
        )

    def _prompt_bounds(self) -> tuple[int, int] | None:
        """What :meth:`prompt_tokens` can return for the router, known without counting."""
        counted = self._counts.get(DEFAULT_ENCODING)
        if counted is not None:
            return counted, counted
        request = self.request
        return recipe_bounds(request.messages, DEFAULT_ENCODING, request.tools)

    async def first_success(self, once: Callable[[Endpoint], Awaitable[T]]) -> tuple[Endpoint, T]:
        """Try the candidates in order, retrying each, until ``once(endpoint)`` succeeds.

        Returns that endpoint with its slot still held (the caller releases it)
        and what ``once`` returned. A non-retryable error surfaces at once;
        running out of candidates (tried, or skipped by the router as open or
        rate-limited) or of the call's time (``routing.call_timeout_s``; ``once``
        passes :attr:`deadline` on to the endpoint) raises :class:`NoEndpointAvailable`.
        """
        router, retries = self.services.router, self.services.retries
        loop = asyncio.get_running_loop()
        limit = self.services.config.routing.call_timeout_s
        self.deadline = deadline = loop.time() + limit
        failures: list[EndpointError] = []
        candidates = self.candidates()
        while candidates:
            if failures and loop.time() >= deadline:
                raise self._exhausted(failures, f"the call's {limit:g} s (call_timeout_s) ran out")
            try:
                async with asyncio.timeout_at(deadline):  # with on_limit = "wait"
                    endpoint = await router.checkout(candidates)
            except TimeoutError:
                detail = f"no endpoint had a free slot within the call's {limit:g} s"
                if not failures:
                    raise NoEndpointAvailable(detail) from None
                raise self._exhausted(failures, detail) from None
            except NoEndpointAvailable as exc:
                if not failures:
                    raise
                raise self._exhausted(failures, str(exc)) from None
            try:
                value = await retries.run(
                    lambda: once(endpoint),  # noqa: B023 - awaited before the loop moves on
                    lambda: router.cooling(endpoint),  # noqa: B023
                    deadline=deadline,
                    last=len(candidates) == 1,
                )
            except EndpointError as exc:
                router.release(endpoint)
                if not exc.retryable:
                    raise
                failures.append(exc)
                candidates = [c for c in candidates if c is not endpoint]
            except BaseException:
                router.release(endpoint)
                raise
            else:
                return endpoint, value
        raise self._exhausted(failures)

    async def begin(self, endpoint: Endpoint) -> Attempt:
        """A new attempt at ``endpoint``, its budget hold taken (or its refusal recorded)."""
        attempt = Attempt(
            endpoint,
            self.request,
            self.site,
            number=len(self.attempts) + 1,
            ledger=self.services.ledger,
            stream=self.stream,
            prompt_estimate=lambda: self.prompt_tokens(endpoint.config.tokenizer),
            telemetry=self.services.telemetry,
        )
        await attempt.reserve()
        return attempt

    async def settle(self, attempt: Attempt, outcome: Outcome) -> CallRecord:
        """Record how ``attempt`` ended and tell the router what it learned."""
        record = await attempt.finish(outcome)
        self.attempts.append(record)
        router, error, endpoint = self.services.router, outcome.error, attempt.endpoint
        latency_ms = record.latency_ms or 0.0
        if record.status is CallStatus.OK:
            router.record_success(endpoint, ttft_ms=record.ttft_ms, latency_ms=latency_ms)
        elif isinstance(error, RateLimited):
            # The server answered, so not a health failure; a wait longer than a
            # call may stall for keeps every call off the endpoint until it is over.
            if self.services.retries.waits_too_long(error):
                router.rate_limited(endpoint, error.retry_after)
            router.record_neutral(endpoint, latency_ms=latency_ms)
        elif isinstance(error, EndpointError) and (error.retryable or isinstance(error, StreamCut)):
            router.record_failure(endpoint, latency_ms=latency_ms)
        else:  # rejected request, budget refusal, cancel: nothing learned, probe freed
            router.record_neutral(endpoint, latency_ms=latency_ms)
        return record

    def result(self, response) -> ChatResult:
        return ChatResult(response, tuple(self.attempts))

    # -- the non-streamed call ------------------------------------------------

    async def complete(self) -> ChatResult:
        """Route, retry, fall back and account for one non-streamed completion."""
        try:
            endpoint, response = await self.first_success(self._complete_once)
        finally:  # rows of answers cut mid-body waited for a later attempt's output
            self.attempts = self.site.pending.write_all(self.attempts)
        self.services.router.release(endpoint)
        return self.result(response)

    async def _complete_once(self, endpoint: Endpoint):
        attempt = await self.begin(endpoint)
        outcome = Outcome()
        try:
            response = await endpoint.complete(attempt.body(), not_after=self.deadline)
            message = response.choices[0].message if response.choices else None
            outcome.status = CallStatus.OK
            outcome.reported_usage = response.usage  # checked when the attempt settles
            outcome.generated_text = _message_text(message)
            outcome.completion_text = message.content if message else None
            return response
        except EndpointError as exc:
            outcome.status, outcome.error = CallStatus.ERROR, exc
            raise
        finally:
            await self.settle(attempt, outcome)

    # -- helpers ----------------------------------------------------------------

    def _affinity_key(self) -> str:
        """Explicit; else the conversation thread and the agent (each agent's own prompt
        prefix stays on one replica, and a thread's agents spread over the pool); else
        the conversation's opening, for calls made outside a threaded query."""
        request, site = self.request, self.site
        if request.affinity_key is not None:
            return request.affinity_key
        if site.scope is not None and site.scope.thread_id:
            return f"{site.scope.thread_id}\0{site.agent_path}"
        return request.opening_key()

    def _exhausted(self, failures: list[EndpointError], skipped: str = "") -> NoEndpointAvailable:
        request = self.request
        detail = "; ".join(str(f) for f in failures[-5:])
        # Say when the failed endpoints may be tried again (open breaker, long Retry-After).
        router = self.services.router
        tried = dict.fromkeys(f.endpoint for f in failures if f.endpoint in router.endpoints)
        now_skipped = [router.endpoints[n] for n in tried if router.cooling(router.endpoints[n])]
        why = [router.why_unusable(e) for e in now_skipped] + ([skipped] if skipped else [])
        if why:
            detail += "; now " + "; ".join(why)
        what = (
            f"endpoint {request.endpoint!r} failed after retries"
            if request.endpoint is not None
            else f"every endpoint for {request.model!r} failed after retries and fallbacks"
        )
        return NoEndpointAvailable(f"{what}: {detail}", attempts=failures)


def _message_text(message) -> str:
    if message is None:
        return ""
    calls = "".join(c.function.name + c.function.arguments for c in message.tool_calls or ())
    return (message.content or "") + calls
