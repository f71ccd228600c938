"""One HTTP attempt, accounted: budget hold, timings, usage, cost, one ledger row.

Whatever happens -- success, an error, a cut stream, the caller cancelling, the
budget refusing -- :meth:`Attempt.finish` runs exactly once from a ``finally``
and writes the row: it is put on the ledger's queue synchronously, so a
cancellation cannot lose it.

The call does not wait for the row's commit. The ledger commits in queue
order, and the query scope's close waits for its own ``Query`` row to commit,
so by the time a query is acknowledged every call row before it is durable
(and a row that failed to write fails the query close loudly). Waiting per call
put the ledger writer on every call's critical path: under 64 concurrent
calls that wait measured ~190 ms median, while the writer competed with the
event loop for the GIL.

A row books what the server spent. Its usage report is believed only when it
could be true (:func:`~spendgraph.providers.usage.check_usage`); an impossible
one is replaced by a count and the row flagged ``usage_rejected``. Without a
report -- a cut stream, a cancelled one, a server that sends none -- the prompt
and what arrived are counted, and the prompt's cached prefix is estimated from
what the endpoint was sent before (:mod:`spendgraph.providers.prefixes`). A
non-streamed answer cut mid-body was generated in full but never seen: its row
waits for the call's next attempt, the same request, and books that answer's
output; when no attempt answers, the row books ``max_tokens`` as an upper bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgraph.providers.budgets.query import QueryHold, event_record
from spendgraph.providers.budgets.store import ThresholdCrossed
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.context import QueryScope
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import BudgetExceeded, EndpointError, StreamCut
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import (
    CallRecord,
    CallStatus,
    QueryStatus,
    new_sequential_id,
)
from spendgraph.providers.prefixes import PromptKeys
from spendgraph.providers.telemetry.recorder import Telemetry, current_context
from spendgraph.providers.tokens import local_source, prompt_token_ceiling
from spendgraph.providers.usage import (
    USAGE_REJECTED,
    ImplausibleUsage,
    Usage,
    UsageBounds,
    UsageSource,
    bound_cost,
    check_usage,
    cost_of,
)

# Output bound reserved against a budget when a request sets no max_tokens; it
# is also sent as max_tokens so the bound really holds.
BUDGET_DEFAULT_MAX_TOKENS = 1024

log = logging.getLogger(__name__)


class PendingRows:
    """Rows of a call's attempts that wait for a later attempt to tell their output.

    A non-streamed answer cut mid-body was generated in full, but none of it
    arrived; the call's next attempt sends the same request, so its answer is the
    best estimate of what the cut one cost. The call writes whatever is still
    waiting when it ends (:meth:`write_all`), at the upper bound.
    """

    __slots__ = ("_final", "_waiting")

    def __init__(self) -> None:
        self._waiting: list[tuple[Attempt, CallRecord]] = []
        self._final: dict[str, CallRecord] = {}

    def hold(self, attempt: Attempt, record: CallRecord) -> None:
        self._waiting.append((attempt, record))

    def resolve(self, output: int) -> None:
        """A later attempt answered with ``output`` tokens: book that on the waiting rows."""
        waiting, self._waiting = self._waiting, []
        for attempt, record in waiting:
            usage = replace(record.usage, output=output, source=UsageSource.ESTIMATED)
            cost = cost_of(usage, attempt.endpoint.price)
            attempt.publish(replace(record, usage=usage, cost_usd=cost))

    def write_all(self, records: Sequence[CallRecord]) -> list[CallRecord]:
        """Write the rows still waiting as they are; ``records`` with every row as written."""
        waiting, self._waiting = self._waiting, []
        for attempt, record in waiting:
            attempt.publish(record)
        return [self._final.get(record.id, record) for record in records]

    def written(self, record: CallRecord) -> None:
        self._final[record.id] = record


@dataclass(frozen=True, slots=True)
class CallSite:
    """Who makes a logical call: its query, agent path and node, and its request id."""

    scope: QueryScope | None
    agent_path: str
    node: str
    request_id: str
    pending: PendingRows = field(default_factory=PendingRows)


@dataclass(slots=True)
class Outcome:
    """What an attempt ended with; filled in by the code running the HTTP call."""

    status: CallStatus = CallStatus.CANCELLED
    reported_usage: object | None = None  # the server's usage object, unchecked
    reported_timings: object | None = None  # llama-server's ``timings``, unchecked
    usage_problem: str | None = None  # why the report cannot be believed, if the stream saw it
    error: BaseException | None = None
    generated_text: str = ""
    ttft_at: float | None = None  # perf_counter of the first token (streams)
    completion_text: str | None = None
    output_counted: int | None = None  # output tokens counted as a budgeted stream arrived


class Attempt:
    """Accounting for one HTTP attempt at one endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        request: ChatRequest,
        site: CallSite,
        *,
        number: int,
        ledger: Ledger,
        stream: bool,
        prompt_estimate: Callable[[], int],
        telemetry: Telemetry | None = None,
    ):
        self.endpoint = endpoint
        self.request = request
        self.site = site
        self.number = number
        self.stream = stream
        self._ledger = ledger
        self._telemetry = telemetry
        # Where this attempt's span hangs (its agent turn), even for a row written later.
        self._trace_parent = current_context() if telemetry is not None else None
        self._hold: QueryHold | None = None
        self.id = new_sequential_id()  # the call row's id, and the budget hold's attempt id
        self._started_wall = datetime.now(UTC)
        self._started = time.perf_counter()
        # Counting costs CPU on the hot path: done only for a budget or a missing usage.
        self._prompt_estimate = prompt_estimate
        self.max_tokens = request.max_tokens
        # Set by reserve() under a budget: the server's own prompt count (None when
        # only tiktoken counted), and server tokens per tiktoken token.
        self._prompt_exact: int | None = None
        self.output_scale = 1.0
        # What the endpoint was sent before this prompt: its likely cache hit.
        self._sent = endpoint.prefixes.sent(PromptKeys.of(request.messages, request.tools))

    @property
    def output_limit(self) -> int | None:
        """Output tokens the budget hold covers; None when no budget applies (no counting)."""
        return self.max_tokens if self._hold is not None else None

    async def reserve(self) -> None:
        """Hold this call's upper bound against its budgets, or record a denial and raise."""
        budget = self.site.scope.budget if self.site.scope else None
        if budget is None or budget.unlimited:
            return
        if self.max_tokens is None:
            self.max_tokens = BUDGET_DEFAULT_MAX_TOKENS
        prompt = await self._prompt_bound()
        try:
            self._hold = await budget.reserve(
                self.id,
                usd=bound_cost(prompt, self.max_tokens, self.endpoint.price),
                tokens=prompt + self.max_tokens,
            )
        except BudgetExceeded as exc:
            self.endpoint.prefixes.unanswered(self._sent)
            record = self._record(CallStatus.BUDGET_DENIED, Usage(), None, error=exc)
            self.site.scope.add(record)
            self._write(record)
            exc.record = record
            raise

    async def _prompt_bound(self) -> int:
        """The prompt as the server will count it: its tokenizer endpoint, else tiktoken
        with the endpoint's margin. Only under a budget: it costs a round trip."""
        estimate = self._prompt_estimate()
        try:
            exact = await self.endpoint.count_prompt(self.request.messages, self.request.tools)
        except Exception:  # counting is best effort: the margin covers a failure
            exact = None
        if exact is None:
            return math.ceil(estimate * (1 + self.endpoint.config.prompt_margin))
        self._prompt_exact = exact
        # A server counting more than tiktoken does so for output too: the stream
        # meter scales its tiktoken counts by this (never below 1: that would loosen it).
        self.output_scale = max(1.0, exact / estimate) if estimate else 1.0
        return exact

    def body(self) -> dict[str, Any]:
        """The request for this endpoint, with what its engine needs on top (usage flags)."""
        body = self.request.body(
            self.endpoint.config.model, max_tokens=self.max_tokens, stream=self.stream
        )
        body.update(self.endpoint.profile.request_extras(stream=self.stream))
        return body

    async def finish(self, outcome: Outcome) -> CallRecord:
        """Settle the budget and write the row. Safe to call while being cancelled."""
        interrupted = None
        try:
            usage, flag = await self._usage(outcome)
        except asyncio.CancelledError as exc:  # cancelled while counting: still recorded
            usage, flag = self._with_cache(self._estimated_usage(outcome)), None
            interrupted = exc
        record = self._record(
            outcome.status,
            usage,
            outcome.ttft_at,
            error=outcome.error,
            completion_text=outcome.completion_text,
            flag=flag,
        )
        budget = self.site.scope.budget if self.site.scope else None
        held = budget is not None and self._hold is not None
        if held:
            record = self._check_overrun(record)
        if not held and self._cut_body(outcome):
            self.site.pending.hold(self, record)  # written once a later attempt answers
        else:
            # Queued before the settle's await: a cancellation there (a shared store
            # is a network call) must not lose the row; the hold then expires.
            self.publish(record)
        if record.status is CallStatus.OK:
            self.site.pending.resolve(record.usage.output)
        if held:
            tokens = usage.total_tokens
            crossed = await budget.settle(self._hold, usd=record.cost_usd, tokens=tokens)
            self._report(crossed)
            if budget.overrun is not None:
                self.site.scope.status = QueryStatus.BUDGET_EXHAUSTED
        if interrupted is not None:
            raise interrupted
        return record

    def publish(self, record: CallRecord) -> None:
        """Add ``record`` to its query's totals and queue its row."""
        if self.site.scope is not None:
            self.site.scope.add(record)
        self._write(record)
        self.site.pending.written(record)

    def _report(self, crossed: tuple[ThresholdCrossed, ...]) -> None:
        """A ``budget_event`` row and a scope event for each threshold this call crossed."""
        scope = self.site.scope
        for crossing in crossed:
            event = event_record(crossing, scope.id)
            scope.track(self._ledger.submit_budget_event(event))
            scope.budget_event(event)

    def _check_overrun(self, record: CallRecord) -> CallRecord:
        """A cut stream is charged at most its hold; any other call above it is marked."""
        hold, cost, tokens = self._hold.query, record.cost_usd, record.usage.total_tokens
        if record.status is CallStatus.CUT_AT_BUDGET:
            return replace(record, cost_usd=None if cost is None else min(cost, hold.usd))
        over_usd = cost - hold.usd if cost is not None and cost > hold.usd else None
        over_tokens = tokens - hold.tokens if tokens > hold.tokens else None
        if over_usd is None and over_tokens is None:
            return record
        return replace(record, overrun_usd=over_usd, overrun_tokens=over_tokens)

    # -- usage ------------------------------------------------------------------

    async def _usage(self, outcome: Outcome) -> tuple[Usage, str | None]:
        """What the attempt used, and the flag its row gets (None: nothing to flag)."""
        reported, problem = self._reported(outcome)
        if reported is not None and self._lacks_cache_report(outcome, reported):
            return self._with_cache(reported), None
        if reported is not None:
            self.endpoint.prefixes.answered(
                self._sent, reported.prompt_tokens, reported.input_cached
            )
            return reported, None
        if problem is not None:
            log.warning(
                "endpoint %r reported impossible usage (%s); its tokens were counted instead",
                self.endpoint.name,
                problem,
            )
        usage = self._with_cache(await self._count_usage(outcome))
        flag = USAGE_REJECTED if problem is not None and outcome.status is CallStatus.OK else None
        return usage, flag

    def _lacks_cache_report(self, outcome: Outcome, reported: Usage) -> bool:
        """A cut stream's last per-chunk report, from an engine whose per-chunk usage
        leaves out cached tokens (vLLM, SGLang): its cache hit is estimated instead."""
        profile = self.endpoint.profile
        return (
            isinstance(outcome.error, StreamCut)
            and profile.continuous_usage
            and not profile.continuous_cached
            and reported.input_cached == 0
        )

    def _reported(self, outcome: Outcome) -> tuple[Usage | None, str | None]:
        """The server's report if it could be true; else None and why not (None: no report)."""
        raw, timings = outcome.reported_usage, outcome.reported_timings
        profile = self.endpoint.profile
        if raw is None and not (profile.timings and timings is not None):
            return None, None
        if outcome.status is CallStatus.CUT_AT_BUDGET:
            return None, None  # a stream we closed is booked as metered
        if outcome.usage_problem is not None:
            return None, outcome.usage_problem
        try:
            usage = profile.read_usage(raw, timings)
            check_usage(usage, self._bounds(outcome))
        except ImplausibleUsage as exc:
            return None, str(exc)
        return usage, None

    def _bounds(self, outcome: Outcome) -> UsageBounds:
        messages, tools_bytes = self.request.messages, self._sent.prompt.tools_bytes
        return UsageBounds(
            prompt=prompt_token_ceiling(messages, tools_bytes=tools_bytes),
            max_tokens=self.max_tokens,
            context_window=self.endpoint.context_window,
            answered=bool(outcome.generated_text),
        )

    def _with_cache(self, usage: Usage) -> Usage:
        """``usage`` (all prompt uncached) with the prefix the server likely had cached."""
        prompt, prefixes = usage.prompt_tokens, self.endpoint.prefixes
        if prompt == 0:  # the server never took the prompt
            prefixes.unanswered(self._sent)
            return usage
        cached = prefixes.estimate(self._sent, prompt)
        prefixes.answered(self._sent, prompt, None)
        return replace(usage, input_uncached=prompt - cached, input_cached=cached)

    def _cut_body(self, outcome: Outcome) -> bool:
        """A non-streamed answer the server generated but that broke off on the way."""
        return not self.stream and isinstance(outcome.error, StreamCut)

    async def _count_usage(self, outcome: Outcome) -> Usage:
        """Usage when the server sent none to believe: the prompt plus what arrived, counted."""
        if outcome.status is CallStatus.CUT_AT_BUDGET:
            return self._cut_usage(outcome)
        if outcome.status is CallStatus.ERROR and not isinstance(outcome.error, StreamCut):
            # Refused or unanswered (HTTP error, timeout, connection): nothing was
            # delivered, so nothing is charged.
            return Usage(source=UsageSource.ESTIMATED)
        prompt = output = None
        if outcome.status is not CallStatus.CANCELLED:  # no network while being cancelled
            prompt = await self.endpoint.count_prompt(self.request.messages, self.request.tools)
            if self._cut_body(outcome):  # generated, but none of it arrived
                return self._cut_body_usage(prompt)
            if prompt is not None:
                output = await self.endpoint.count_output(outcome.generated_text)
        if prompt is not None and output is not None:
            return Usage(input_uncached=prompt, output=output, source=UsageSource.COUNTED)
        return self._estimated_usage(outcome)

    def _cut_body_usage(self, prompt: int | None) -> Usage:
        """The prompt counted; the output at most max_tokens, until a later attempt tells."""
        source = UsageSource.ESTIMATED if prompt is None else UsageSource.COUNTED
        if self.max_tokens is not None:
            source = UsageSource.UPPER_BOUND
        return Usage(
            input_uncached=self._prompt_estimate() if prompt is None else prompt,
            output=self.max_tokens or 0,
            source=source,
        )

    def _cut_usage(self, outcome: Outcome) -> Usage:
        """A stream we closed at its bound: the prompt as reserved, the output as metered."""
        # No round trip: the reservation already asked the server for the prompt.
        exact = self._prompt_exact
        return Usage(
            input_uncached=self._prompt_estimate() if exact is None else exact,
            output=min(outcome.output_counted or 0, self.max_tokens or 0),
            source=UsageSource.ESTIMATED if exact is None else UsageSource.COUNTED,
        )

    def _estimated_usage(self, outcome: Outcome) -> Usage:
        return Usage(
            input_uncached=self._prompt_estimate(),
            output=self.endpoint.estimate_text(outcome.generated_text),
            source=local_source(
                self.endpoint.config.tokenizer, self.request.messages, self.request.tools
            ),
        )

    def _record(
        self,
        status: CallStatus,
        usage: Usage,
        ttft_at: float | None,
        *,
        error: BaseException | None = None,
        completion_text: str | None = None,
        flag: str | None = None,
    ) -> CallRecord:
        now = time.perf_counter()
        scope = self.site.scope
        store_text = scope is not None and scope.store_text
        # Stored text is scrubbed of the key: a server may echo it (or the user paste it).
        scrub = self.endpoint.redactor.scrub
        http_status = error.status_code if isinstance(error, EndpointError) else None
        return CallRecord(
            endpoint=self.endpoint.info,
            status=status,
            usage=usage,
            cost_usd=Decimal(0)
            if status is CallStatus.BUDGET_DENIED
            else cost_of(usage, self.endpoint.price),
            price_version=self.endpoint.price.version,
            query_id=scope.id if scope else None,
            agent_path=self.site.agent_path,
            node=self.site.node,
            request_id=self.site.request_id,
            attempt=self.number,
            stream=self.stream,
            started_at=self._started_wall,
            ttft_ms=None if ttft_at is None else (ttft_at - self._started) * 1000,
            latency_ms=(now - self._started) * 1000,
            error_kind=flag or _error_kind(error),
            http_status=http_status,
            prompt_text=scrub(_prompt_text(self.request.messages)) if store_text else None,
            completion_text=scrub(completion_text) if store_text and completion_text else None,
            id=self.id,
        )

    def _write(self, record: CallRecord) -> None:
        future = self._ledger.submit_call(record)
        scope = self.site.scope
        if scope is not None:
            scope.track(future)
        if self._telemetry is not None:  # the span is this row's: one per row, same numbers
            self._telemetry.attempt(
                record,
                self._trace_parent,
                app=scope.app if scope is not None else "",
                tier=self.request.model,
                messages=self.request.messages,
                redact=self.endpoint.redactor.scrub,
            )


def _error_kind(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, BudgetExceeded):
        return "budget"
    if isinstance(error, EndpointError):
        return error.kind
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return type(error).__name__


def _prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in messages)
