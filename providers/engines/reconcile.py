"""Check the ledger's books against each server's own token counters.

A :class:`Snapshot` reads every endpoint's Prometheus counters (the names and
path its engine profile gives); two snapshots bracket a window, and
:func:`reconcile` compares the servers' increments with the ledger's sums of
the calls that started in that window. Endpoints that share one metrics URL
(several configured names on one server) are compared as one group.

Drift is ledger minus server: positive when the ledger booked more than the
server says it processed, negative when the server did work the ledger never
saw (traffic that bypassed the provider layer, a row that was lost).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from spendgraph.providers.config import EndpointConfig
from spendgraph.providers.engines.profiles import MetricNames, profile_for
from spendgraph.providers.ledger import Ledger, LedgerFilter

SCRAPE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Counters:
    """Token counters of one server (None: it does not export that one)."""

    prompt: float | None
    generation: float | None
    cached: float | None = None

    def minus(self, before: Counters) -> Counters:
        def delta(now: float | None, then: float | None) -> float | None:
            # A labelled counter appears with its first request: absent before is 0.
            return None if now is None else now - (then or 0.0)

        return Counters(
            delta(self.prompt, before.prompt),
            delta(self.generation, before.generation),
            delta(self.cached, before.cached),
        )


@dataclass(frozen=True, slots=True)
class Scrape:
    """One metrics URL read once: its counters, or why they could not be read."""

    url: str | None
    endpoints: tuple[str, ...]
    counters: Counters | None = None
    problem: str | None = None  # "no metrics" when the engine exports none


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every endpoint's counters at one moment."""

    taken_at: datetime
    scrapes: tuple[Scrape, ...]

    def to_json(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at.isoformat(), "scrapes": [asdict(s) for s in self.scrapes]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """A snapshot saved with :meth:`to_json` (``ValueError``/``KeyError`` if malformed)."""
        scrapes = []
        for item in data["scrapes"]:
            counters = item.get("counters")
            scrapes.append(
                Scrape(
                    url=item.get("url"),
                    endpoints=tuple(item["endpoints"]),
                    counters=None if counters is None else Counters(**counters),
                    problem=item.get("problem"),
                )
            )
        taken = datetime.fromisoformat(data["taken_at"])
        return cls(taken if taken.tzinfo else taken.replace(tzinfo=UTC), tuple(scrapes))


def metrics_url(endpoint: EndpointConfig, names: MetricNames) -> str:
    """``http://host:port/r/x/v1`` + ``/metrics`` -> ``http://host:port/r/x/metrics``."""
    parts = urlsplit(endpoint.base_url.rstrip("/"))
    path = parts.path.removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path + names.path, "", ""))


def _groups(endpoints: Sequence[EndpointConfig]) -> list[tuple[str | None, list[EndpointConfig]]]:
    groups: dict[str, list[EndpointConfig]] = {}
    bare: list[tuple[str | None, list[EndpointConfig]]] = []
    for endpoint in endpoints:
        names = profile_for(endpoint.engine).metrics
        if names is None:
            bare.append((None, [endpoint]))
        else:
            groups.setdefault(metrics_url(endpoint, names), []).append(endpoint)
    return [*groups.items(), *bare]


def parse_counters(text: str, names: MetricNames) -> Counters:
    """The token counters in a Prometheus exposition, summed over all label sets."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value

    def pick(name: str | None) -> float | None:
        return None if name is None else sums.get(name)

    return Counters(pick(names.prompt), pick(names.generation), pick(names.cached))


async def _scrape(
    client: httpx.AsyncClient, url: str | None, group: list[EndpointConfig], env: Mapping[str, str]
) -> Scrape:
    names = tuple(e.name for e in group)
    if url is None:
        return Scrape(None, names, problem="no metrics")
    metrics = profile_for(group[0].engine).metrics
    headers = {}
    if group[0].api_key_env:
        headers["authorization"] = f"Bearer {group[0].api_key(env)}"
    try:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        counters = parse_counters(response.text, metrics)
    except (httpx.HTTPError, ValueError) as exc:
        # The URL has no credentials (the config refuses them); the key is in a header.
        return Scrape(url, names, problem=f"cannot read metrics: {type(exc).__name__}: {exc}")
    return Scrape(url, names, counters=counters)


async def take_snapshot(
    endpoints: Sequence[EndpointConfig], *, env: Mapping[str, str] = os.environ
) -> Snapshot:
    """Read every endpoint's counters now (concurrently)."""
    taken_at = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        scrapes = await asyncio.gather(
            *(_scrape(client, url, group, env) for url, group in _groups(endpoints))
        )
    return Snapshot(taken_at, tuple(scrapes))


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket: what the server counted, what the ledger booked, the drift."""

    server: int | None
    ledger: int

    @property
    def drift(self) -> int | None:
        return None if self.server is None else self.ledger - self.server

    @property
    def drift_pct(self) -> Decimal | None:
        drift = self.drift
        if drift is None or not self.server:
            return Decimal(0) if drift == 0 else None
        return (Decimal(self.drift) * 100 / Decimal(self.server)).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Drift:
    """One metrics group over the window (``problem`` set: nothing to compare)."""

    endpoints: tuple[str, ...]
    url: str | None
    problem: str | None = None
    buckets: dict[str, Bucket] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.problem is None and all(not b.drift for b in self.buckets.values())


def reconcile(
    before: Snapshot,
    after: Snapshot,
    ledger: Ledger,
    endpoints: Sequence[EndpointConfig],
) -> list[Drift]:
    """Each group's server increments between the snapshots against the ledger's sums
    of calls started in ``[before.taken_at, after.taken_at)``."""
    window = LedgerFilter(since=before.taken_at, until=after.taken_at)
    booked = {total.key: total.spend for total in ledger.summary_by("endpoint", window)}
    earlier = {s.endpoints: s for s in before.scrapes}
    by_name = {e.name: e for e in endpoints}
    drifts = []
    for scrape in after.scrapes:
        first = earlier.get(scrape.endpoints)
        problem = scrape.problem or (first.problem if first else "not in the first snapshot")
        if problem is not None or first is None or first.counters is None:
            drifts.append(Drift(scrape.endpoints, scrape.url, problem=problem))
            continue
        if scrape.counters.prompt is None and scrape.counters.generation is None:
            drifts.append(Drift(scrape.endpoints, scrape.url, "no token counters in its metrics"))
            continue
        served = scrape.counters.minus(first.counters)
        uncached_only = profile_for(by_name[scrape.endpoints[0]].engine).metrics.prompt_uncached
        spends = [booked[name] for name in scrape.endpoints if name in booked]
        uncached = sum(s.input_uncached for s in spends)
        cached = sum(s.input_cached for s in spends)
        buckets = {
            "prompt": Bucket(_int(served.prompt), uncached if uncached_only else uncached + cached),
            "generation": Bucket(_int(served.generation), sum(s.output for s in spends)),
        }
        if served.cached is not None:
            buckets["cached"] = Bucket(_int(served.cached), cached)
        drifts.append(Drift(scrape.endpoints, scrape.url, buckets=buckets))
    return drifts


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)
