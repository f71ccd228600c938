"""The :class:`Telemetry` a provider layer records through: spans and metrics.

One span tree per query::

    invoke_workflow {app}            the query (ProviderLayer.query)
      invoke_agent {agent}           an agent turn (agents/turn.py)
        chat {model}                 one CLIENT span per HTTP attempt: retries and
        chat {model}                   fallbacks are siblings under the turn
        execute_tool {tool}          one tool call; a nested agent turn sits below it

The attempt spans are made from the very :class:`CallRecord` the ledger gets, at
the one place rows are queued (``Attempt._write``), with the row's own start
time and latency: a trace has exactly as many ``chat`` spans as the query has
``Call`` rows, with their tokens and cost. Metrics are recorded from the same
record. Prompt and completion text go on spans only when the record carries
them, that is when the query opted in to storing text.

With nothing configured the tracer is the global API's proxy, and until a
tracer provider is set each hook costs one check (:meth:`Telemetry.tracing`):
no span is started, no context switched, no attribute built.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from spendgraph.providers.context import current_query
from spendgraph.providers.ledger.records import CallRecord, CallStatus, QueryStatus
from spendgraph.providers.telemetry import names as n

if TYPE_CHECKING:
    from spendgraph.providers.context import QueryScope

try:  # the global meter provider until an application sets one (nothing is measured)
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _UnsetMeterProvider
except ImportError:  # pragma: no cover - a later API moved it: always measure then
    _UnsetMeterProvider = ()

log = logging.getLogger(__name__)

_QUIET_STATUSES = (QueryStatus.OK, QueryStatus.BUDGET_EXHAUSTED)


def current_context() -> otel_context.Context:
    """The running OpenTelemetry context: where an attempt's span will hang."""
    return otel_context.get_current()


def telemetry_of(layer: object) -> Telemetry:
    """``layer.telemetry``; records nothing for a stand-in layer that has none (e.g.
    a durable worker's per-workflow layer, whose calls are traced where they run)."""
    found = getattr(layer, "telemetry", None)
    return found if isinstance(found, Telemetry) else _disabled()


class Telemetry:
    """Spans and metrics for one provider layer.

    ``tracer``/``meter`` come from the global API (:meth:`from_global`), from
    providers the layer owns (:func:`~spendgraph.providers.telemetry.setup.telemetry_for`),
    or are no-ops (:meth:`disabled`). ``shutdown`` flushes and closes owned providers.
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        meter: metrics.Meter,
        *,
        shutdown: Callable[[], None] | None = None,
        flush: Callable[[], None] | None = None,
        measure: bool = True,
    ):
        self.tracer = tracer
        self._shutdown = shutdown
        self._flush = flush
        self.measuring = measure  # False: no metric attributes are even built
        self._instruments = _Instruments(meter)

    @classmethod
    def from_global(cls) -> Telemetry:
        """Record through the process's global providers (no-ops until someone sets them).

        Spans follow a tracer provider set later too (the API's proxy); metrics are
        recorded only if a meter provider was set before this call (checking on every
        call would cost more than the no-op tracer does).
        """
        measure = not isinstance(metrics.get_meter_provider(), _UnsetMeterProvider)
        return cls(trace.get_tracer(n.SCOPE), metrics.get_meter(n.SCOPE), measure=measure)

    @classmethod
    def disabled(cls) -> Telemetry:
        """Record nothing at all."""
        return cls(trace.NoOpTracer(), metrics.NoOpMeter(n.SCOPE), measure=False)

    def flush(self) -> None:
        """Export what the providers this object owns have buffered so far."""
        if self._flush is not None:
            self._flush()

    def shutdown(self) -> None:
        """Export what is buffered and close the providers this object owns (if any)."""
        if self._shutdown is not None:
            shutdown, self._shutdown = self._shutdown, None
            shutdown()

    # -- spans of the layers above ---------------------------------------------

    @contextmanager
    def query(self, scope: QueryScope) -> Iterator[QueryTrace]:
        """The ``invoke_workflow {app}`` span of one query, current inside the block."""
        with self._span(n.OP_INVOKE_WORKFLOW, scope.app) as span:
            if span.is_recording():
                span.set_attributes(_query_attributes(scope))
            yield QueryTrace(span)

    @contextmanager
    def agent(self, name: str, path: str, node: str) -> Iterator[None]:
        """The ``invoke_agent {agent}`` span of one agent turn, current inside the block."""
        with self._span(n.OP_INVOKE_AGENT, name) as span:
            if span.is_recording():
                attributes = {n.AGENT_NAME: name, n.AGENT_PATH: path, n.NODE: node}
                span.set_attributes({**attributes, **_scope_attributes(current_query())})
            yield

    @contextmanager
    def tool(self, name: str, call_id: str, arguments: str) -> Iterator[ToolTrace]:
        """The ``execute_tool {tool}`` span of one tool call, current inside the block;
        its arguments and result are added only when the query stores text."""
        with self._span(n.OP_EXECUTE_TOOL, name) as span:
            scope = current_query()
            keep_text = scope is not None and scope.store_text
            if span.is_recording():
                span.set_attributes(
                    {
                        n.TOOL_NAME: name,
                        n.TOOL_TYPE: n.TOOL_TYPE_FUNCTION,
                        n.TOOL_CALL_ID: call_id,
                        **_scope_attributes(scope),
                    }
                )
                if keep_text:
                    span.set_attribute(n.TOOL_CALL_ARGUMENTS, arguments)
            yield ToolTrace(span, keep_text)

    def tracing(self) -> bool:
        """False while spans would record nothing: a no-op tracer, or the global API's
        proxy before any tracer provider is set (checked each time, so a provider set
        later is followed)."""
        tracer = self.tracer
        if isinstance(tracer, trace.NoOpTracer):
            return False
        if isinstance(tracer, trace.ProxyTracer):
            return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        return True

    @contextmanager
    def _span(self, operation: str, subject: str) -> Iterator[trace.Span]:
        if not self.tracing():
            # Nothing would record it: skip the span's start, context switch and end
            # (a few microseconds per agent turn that add up across a fan-out).
            yield trace.INVALID_SPAN
            return
        # No exception is recorded: its message may quote the model's output (or a
        # patient's words); the error's type alone goes on the span.
        with self.tracer.start_as_current_span(
            n.span_name(operation, subject),
            kind=SpanKind.INTERNAL,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if span.is_recording():
                span.set_attribute(n.OPERATION_NAME, operation)
            try:
                yield span
            except BaseException as exc:
                if span.is_recording():
                    span.set_attribute(n.ERROR_TYPE, type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR))
                raise

    # -- the attempt: one ledger row --------------------------------------------

    def attempt(
        self,
        record: CallRecord,
        parent: otel_context.Context | None,
        *,
        app: str = "",
        tier: str = "",
        messages: Sequence[Mapping[str, Any]] = (),
        redact: Callable[[str], str] = str,
    ) -> None:
        """The ``chat {model}`` CLIENT span and the measurements of one Call row.

        ``parent`` is the context the attempt started in (its agent turn), ``app``
        its query's app, ``tier`` the model or tier asked for, ``messages`` the
        request's (put on the span, through ``redact``, only when ``record`` carries
        text). Never raises: telemetry must not fail a call whose row is already queued.
        """
        try:
            self._attempt(record, parent, app, tier, messages, redact)
        except Exception:
            log.exception("could not record the span of call row %s", record.id)

    def _attempt(self, record, parent, app, tier, messages, redact) -> None:
        if not self.measuring and not self.tracing():
            return  # neither a span nor a measurement would be kept
        start = int(record.started_at.timestamp() * 1e9)
        span = self.tracer.start_span(
            n.span_name(n.OP_CHAT, record.endpoint.model),
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=start,
        )
        end = start + int((record.latency_ms or 0.0) * 1e6)
        measuring = self.measuring
        if not span.is_recording() and not measuring:
            span.end(end_time=end)
            return
        common = _metric_attributes(record, app)
        if span.is_recording():
            span.set_attributes({**common, **_attempt_attributes(record, tier)})
            if record.prompt_text is not None:  # the query opted in to storing text
                span.set_attribute(n.INPUT_MESSAGES, redact(_input_messages(messages)))
            if record.completion_text is not None:
                span.set_attribute(n.OUTPUT_MESSAGES, _output_messages(record.completion_text))
            if record.status is not CallStatus.OK:
                span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
        if measuring:
            self._instruments.record(record, common)


@functools.cache
def _disabled() -> Telemetry:  # one per process: it records nothing
    return Telemetry.disabled()


class QueryTrace:
    """The open span of a query: :meth:`finish` adds its totals and how it ended."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span):
        self.span = span

    def finish(self, scope: QueryScope, status: QueryStatus, error_type: str | None) -> None:
        span = self.span
        if not span.is_recording():
            return
        spend = scope.spend
        span.set_attributes(
            {
                n.QUERY_STATUS: status.value,
                n.QUERY_CALLS: spend.calls,
                n.QUERY_INPUT_TOKENS: spend.input_uncached + spend.input_cached,
                n.QUERY_CACHED_INPUT_TOKENS: spend.input_cached,
                n.QUERY_OUTPUT_TOKENS: spend.output,
                n.QUERY_COST_USD: str(spend.known_cost),
                n.QUERY_UNPRICED_CALLS: spend.unpriced,
            }
        )
        if status not in _QUIET_STATUSES:
            span.set_attribute(n.ERROR_TYPE, error_type or status.value)
            span.set_status(Status(StatusCode.ERROR))


class ToolTrace:
    """The open span of a tool call: :meth:`finish` says how it went."""

    __slots__ = ("keep_text", "span")

    def __init__(self, span: trace.Span, keep_text: bool):
        self.span = span
        self.keep_text = keep_text

    def finish(self, ok: bool, content: str) -> None:
        span = self.span
        if not span.is_recording():
            return
        if self.keep_text:
            span.set_attribute(n.TOOL_CALL_RESULT, content)
        if not ok:
            span.set_attribute(n.ERROR_TYPE, "tool_error")
            span.set_status(Status(StatusCode.ERROR))


class _Instruments:
    """The metric instruments, made once per meter."""

    __slots__ = ("cost", "duration", "first_chunk", "tokens")

    def __init__(self, meter: metrics.Meter):
        self.tokens = meter.create_histogram(
            n.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Tokens per HTTP attempt, by gen_ai.token.type (input includes cached)",
            explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            n.METRIC_OPERATION_DURATION,
            unit="s",
            description="Duration of each HTTP attempt",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS),
        )
        self.first_chunk = meter.create_histogram(
            n.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to the first chunk of each streamed attempt that produced one",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS),
        )
        self.cost = meter.create_counter(
            n.METRIC_COST, unit="USD", description="Cost of the attempts whose price is known"
        )

    def record(self, record: CallRecord, attributes: Mapping[str, Any]) -> None:
        usage = record.usage
        self.tokens.record(usage.prompt_tokens, {**attributes, n.TOKEN_TYPE: n.TOKEN_TYPE_INPUT})
        self.tokens.record(usage.output, {**attributes, n.TOKEN_TYPE: n.TOKEN_TYPE_OUTPUT})
        if record.latency_ms is not None:
            self.duration.record(record.latency_ms / 1000, attributes)
        if record.stream and record.ttft_ms is not None:
            self.first_chunk.record(record.ttft_ms / 1000, attributes)
        if record.cost_usd is not None:
            self.cost.add(float(record.cost_usd), attributes)


# -- attributes ----------------------------------------------------------------


def _scope_attributes(scope: QueryScope | None) -> dict[str, Any]:
    if scope is None:
        return {}
    attributes: dict[str, Any] = {n.QUERY_ID: scope.id}
    if scope.app:
        attributes[n.APP] = scope.app
    if scope.thread_id:
        attributes[n.CONVERSATION_ID] = scope.thread_id
    return attributes


def _query_attributes(scope: QueryScope) -> dict[str, Any]:
    attributes = {n.OPERATION_NAME: n.OP_INVOKE_WORKFLOW, **_scope_attributes(scope)}
    if scope.app:
        attributes[n.WORKFLOW_NAME] = scope.app
    return attributes


def _metric_attributes(record: CallRecord, app: str) -> dict[str, Any]:
    """What both the span and the metrics carry: few values each (see names.METRIC_ATTRIBUTES)."""
    endpoint = record.endpoint
    attributes: dict[str, Any] = {
        n.OPERATION_NAME: n.OP_CHAT,
        n.PROVIDER_NAME: endpoint.engine or n.PROVIDER_UNKNOWN,
        n.REQUEST_MODEL: endpoint.model,
        n.ENDPOINT: endpoint.name,
        n.AGENT_PATH: record.agent_path,
    }
    if endpoint.hardware:
        attributes[n.HARDWARE] = endpoint.hardware
    if endpoint.precision:
        attributes[n.PRECISION] = endpoint.precision
    if app:
        attributes[n.APP] = app
    if record.error_kind is not None:
        attributes[n.ERROR_TYPE] = record.error_kind
    elif record.status is not CallStatus.OK:
        attributes[n.ERROR_TYPE] = record.status.value
    return attributes


def _attempt_attributes(record: CallRecord, tier: str) -> dict[str, Any]:
    usage = record.usage
    attributes: dict[str, Any] = {
        n.INPUT_TOKENS: usage.prompt_tokens,
        n.CACHE_READ_INPUT_TOKENS: usage.input_cached,
        n.INPUT_UNCACHED_TOKENS: usage.input_uncached,
        n.OUTPUT_TOKENS: usage.output,
        n.REASONING_OUTPUT_TOKENS: usage.reasoning,
        n.USAGE_SOURCE: usage.source.value,
        n.REQUEST_STREAM: record.stream,
        n.CALL_ID: record.id,
        n.CALL_STATUS: record.status.value,
        n.REQUEST_ID: record.request_id,
        n.ATTEMPT: record.attempt,
        n.NODE: record.node,
        n.PRICE_VERSION: record.price_version,
    }
    if record.endpoint.engine:
        attributes[n.ENGINE] = record.endpoint.engine
    if record.query_id is not None:
        attributes[n.QUERY_ID] = record.query_id
    if tier:
        attributes[n.TIER] = tier
    if record.status is CallStatus.OK:
        # The endpoint serves one model; the row keeps that name.
        attributes[n.RESPONSE_MODEL] = record.endpoint.model
    if record.cost_usd is not None:
        attributes[n.COST_USD] = _exact(record.cost_usd)
        attributes[n.COST_USD_DOUBLE] = float(record.cost_usd)
    if record.ttft_ms is not None:
        attributes[n.RESPONSE_TIME_TO_FIRST_CHUNK] = record.ttft_ms / 1000
    if record.http_status is not None:
        attributes[n.HTTP_STATUS] = record.http_status
    return attributes


def _exact(amount: Decimal) -> str:
    return format(amount, "f")


def _input_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The request's messages in the conventions' JSON shape (role, text parts)."""
    shaped = [
        {
            "role": str(message.get("role")),
            "parts": [{"type": "text", "content": _text(message.get("content"))}],
        }
        for message in messages
    ]
    return json.dumps(shaped, ensure_ascii=False)


def _output_messages(completion: str) -> str:
    shaped = [{"role": "assistant", "parts": [{"type": "text", "content": completion}]}]
    return json.dumps(shaped, ensure_ascii=False)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, default=str)
