"""The front door's Prometheus metrics: queries, calls, tokens and cost, refusals, in-flight.

Labels are bounded: app, agent path, endpoint, status and token type — never a
query, thread, tenant or user id. With several worker processes,
``PROMETHEUS_MULTIPROC_DIR`` is set by ``spendgraph serve app`` and each
worker writes its samples there, so ``/metrics`` on any worker shows them all.
Each :class:`ServeMetrics` has its own registry (no state configured at import).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from spendgraph.graph.run import RunResult
from spendgraph.providers.ledger.records import CallStatus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_TYPES = ("input_uncached", "input_cached", "output", "reasoning")


class ServeMetrics:
    """Counters of one worker (or, in multiprocess mode, a view of every worker's)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        registry = None if self._multiprocess else self.registry
        if self._multiprocess:
            _forget_dead_workers(os.environ[MULTIPROC_ENV])
            multiprocess.MultiProcessCollector(self.registry)
        self.queries = Counter(
            "spendgraph_queries",
            "Queries served, by how they ended.",
            ["app", "status"],
            registry=registry,
        )
        self.calls = Counter(
            "spendgraph_calls",
            "HTTP attempts to endpoints, by status.",
            ["app", "agent", "endpoint", "status"],
            registry=registry,
        )
        self.tokens = Counter(
            "spendgraph_tokens",
            "Tokens of those attempts, by bucket.",
            ["app", "agent", "endpoint", "type"],
            registry=registry,
        )
        self.cost = Counter(
            "spendgraph_cost_usd",
            "Known cost of those attempts in USD.",
            ["app", "agent", "endpoint"],
            registry=registry,
        )
        self.unpriced = Counter(
            "spendgraph_unpriced_calls",
            "Attempts whose price is unknown (not in cost).",
            ["app", "agent", "endpoint"],
            registry=registry,
        )
        self.refusals = Counter(
            "spendgraph_budget_refusals",
            "Calls a budget refused before sending them.",
            ["app", "agent"],
            registry=registry,
        )
        self.requests = Counter(
            "spendgraph_http_requests",
            "Front-door requests by response code.",
            ["app", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "spendgraph_query_duration_seconds",
            "Wall time of served queries.",
            ["app"],
            registry=registry,
        )
        self.active = Gauge(
            "spendgraph_in_flight_queries",
            "Queries running now.",
            ["app"],
            registry=registry,
            multiprocess_mode="livesum",
        )

    @contextmanager
    def in_flight(self, app: str) -> Iterator[None]:
        gauge = self.active.labels(app)
        gauge.inc()
        with self.duration.labels(app).time():
            try:
                yield
            finally:
                gauge.dec()

    def observe(self, app: str, result: RunResult) -> None:
        """Count a finished query and each of its attempts, from the query's own records."""
        self.queries.labels(app, result.status.value).inc()
        for record in result.calls:
            agent, endpoint = record.agent_path, record.endpoint.name
            self.calls.labels(app, agent, endpoint, record.status.value).inc()
            if record.status is CallStatus.BUDGET_DENIED:
                self.refusals.labels(app, agent).inc()
            usage = record.usage
            for kind in TOKEN_TYPES:
                value = getattr(usage, kind)
                if value:
                    self.tokens.labels(app, agent, endpoint, kind).inc(value)
            if record.cost_usd is None:
                self.unpriced.labels(app, agent, endpoint).inc()
            elif record.cost_usd:
                self.cost.labels(app, agent, endpoint).inc(float(record.cost_usd))

    def request(self, app: str, code: int) -> None:
        self.requests.labels(app, str(code)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _forget_dead_workers(folder: str) -> None:
    """Drop the live gauges (in-flight) of worker processes that died: a worker killed
    mid-load would otherwise count its last in-flight queries forever. Each worker,
    a restarted one too, does this as it starts."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
