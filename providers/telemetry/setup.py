"""Build a provider layer's :class:`Telemetry` from ``[telemetry]`` and the ``OTEL_*`` variables.

An OTLP/HTTP endpoint (``[telemetry] endpoint``, else ``$OTEL_EXPORTER_OTLP_ENDPOINT``
or the per-signal ``..._TRACES_ENDPOINT``/``..._METRICS_ENDPOINT``) makes the layer
own a tracer and a meter provider that export there (the ``otel`` extra: the SDK
and the OTLP/HTTP exporter). Without one, the layer records through the global
providers, so an application that configured OpenTelemetry itself (Logfire,
``opentelemetry-instrument``...) gets spendgraph's spans in its own pipeline.
The exporters read the rest of their settings (headers, timeout, compression)
from the standard variables themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from spendgraph.providers.errors import ConfigError
from spendgraph.providers.telemetry import names as n
from spendgraph.providers.telemetry.config import TelemetryConfig
from spendgraph.providers.telemetry.recorder import Telemetry

DEFAULT_SERVICE_NAME = "spendgraph"
_EXTRA_HINT = "install the otel extra: pip install 'spendgraph[otel]'"


def telemetry_for(config: TelemetryConfig, env: Mapping[str, str] = os.environ) -> Telemetry:
    """The telemetry a layer with this ``[telemetry]`` table and environment records through."""
    if not config.enabled or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry.disabled()
    traces, metrics_url = _endpoints(config, env)
    if traces is None and metrics_url is None:
        return Telemetry.from_global()
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            f"telemetry export to {traces or metrics_url} needs the OpenTelemetry SDK and "
            f"OTLP/HTTP exporter: {_EXTRA_HINT}",
            key="telemetry.endpoint",
        ) from exc
    return exporting_telemetry(
        OTLPSpanExporter(endpoint=traces) if traces else None,
        OTLPMetricExporter(endpoint=metrics_url) if metrics_url else None,
        service_name=config.service_name or env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        export_interval_s=config.metric_export_interval_s or _interval_s(env),
    )


def exporting_telemetry(
    span_exporter,
    metric_exporter,
    *,
    service_name: str = DEFAULT_SERVICE_NAME,
    export_interval_s: float = 60.0,
) -> Telemetry:
    """Telemetry on providers of its own that batch spans to ``span_exporter`` and read
    metrics into ``metric_exporter`` every ``export_interval_s`` (either may be None:
    that signal is then not recorded). :meth:`Telemetry.shutdown` flushes both."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    closers, flushers = [], []
    if span_exporter is not None:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        tracer = tracer_provider.get_tracer(n.SCOPE)
        closers.append(tracer_provider.shutdown)
        flushers.append(tracer_provider.force_flush)
    else:
        tracer = trace.NoOpTracer()
    if metric_exporter is not None:
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=export_interval_s * 1000
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meter_provider.get_meter(n.SCOPE)
        closers.append(meter_provider.shutdown)
        flushers.append(meter_provider.force_flush)
    else:
        meter = metrics.NoOpMeter(n.SCOPE)

    def shutdown() -> None:
        for close in closers:  # each flushes what it buffered first
            close()

    def flush() -> None:
        for push in flushers:
            push()

    measure = metric_exporter is not None
    return Telemetry(tracer, meter, shutdown=shutdown, flush=flush, measure=measure)


def _endpoints(config: TelemetryConfig, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The OTLP/HTTP URLs of traces and metrics (None: that signal is not exported)."""
    base = config.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or None
    metrics_url = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip() or None
    if config.endpoint or not traces:
        traces = f"{base}/v1/traces" if base else None
    if config.endpoint or not metrics_url:
        metrics_url = f"{base}/v1/metrics" if base else None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        traces = None
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        metrics_url = None
    return traces, metrics_url


def _interval_s(env: Mapping[str, str]) -> float:
    raw = env.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    try:
        return float(raw) / 1000 if raw else 60.0
    except ValueError:
        raise ConfigError(
            f"OTEL_METRIC_EXPORT_INTERVAL must be milliseconds, got {raw!r}",
            key="OTEL_METRIC_EXPORT_INTERVAL",
        ) from None
