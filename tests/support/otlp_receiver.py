"""A real OTLP/HTTP receiver on loopback: decodes the protobuf payloads exporters POST.

``otlp_receiver()`` serves ``/v1/traces`` and ``/v1/metrics`` (protobuf bodies,
gzip or not, as ``opentelemetry-exporter-otlp-proto-http`` sends them) with
``opentelemetry-proto``'s message types and keeps what arrived as plain
:class:`Span` and :class:`Point` values for tests to check.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loopback_server import serve_in_thread
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int
    service: str


@dataclass(frozen=True)
class Point:
    """One data point of a metric: a sum's value or a histogram's sum and count."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    value: float
    count: int | None = None  # histograms only


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> tuple[list[Span], list[Point]]:
        with self.lock:
            return list(self.spans), list(self.points)

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()
            self.points.clear()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


async def _body(request: Request) -> bytes:
    body = await request.body()
    return gzip.decompress(body) if request.headers.get("content-encoding") == "gzip" else body


def _app(received: Received) -> Starlette:
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest.FromString(await _body(request))
        spans = []
        for resource_spans in message.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            service=service,
                        )
                    )
        with received.lock:
            received.spans.extend(spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        return Response(reply, media_type=PROTOBUF)

    async def metrics(request: Request) -> Response:
        message = ExportMetricsServiceRequest.FromString(await _body(request))
        points = []
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.extend(_points(metric))
        with received.lock:
            received.points.extend(points)
        reply = ExportMetricsServiceResponse().SerializeToString()
        return Response(reply, media_type=PROTOBUF)

    routes = [
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _points(metric) -> list[Point]:
    kind = metric.WhichOneof("data")
    if kind == "histogram":
        return [
            Point(metric.name, metric.unit, _attributes(p.attributes), p.sum, p.count)
            for p in metric.histogram.data_points
        ]
    if kind == "sum":
        return [
            Point(
                metric.name,
                metric.unit,
                _attributes(p.attributes),
                p.as_double if p.HasField("as_double") else p.as_int,
            )
            for p in metric.sum.data_points
        ]
    return []


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """Serve on a free loopback port; yields its base URL and what it received."""
    received = Received()
    with serve_in_thread(lambda _url: _app(received)) as url:
        yield url, received
