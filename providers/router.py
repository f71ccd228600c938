"""Choosing an endpoint: policies, observed speed, concurrency limits, health.

The router orders the endpoints that serve a model or tier by the tier's policy
(``cheapest``, ``fastest``, ``cheapest_within_slo``), appends the tier's
fallbacks, and hands out concurrency slots. It learns from every attempt: an
EWMA of time to first token and of latency, and each endpoint's circuit
breaker and rate limit (:mod:`spendgraph.providers.health`), which make it skip
an endpoint that is failing or has told us to wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.providers.config import SpendgraphConfig, TierConfig
from spendgraph.providers.config.errors import did_you_mean
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import NoEndpointAvailable
from spendgraph.providers.health import EndpointHealth

# Expected output length for ranking by cost when a request sets no max_tokens.
DEFAULT_EXPECTED_OUTPUT = 256


@dataclass(slots=True)
class EndpointStats:
    """What the router has observed of one endpoint in this process."""

    health: EndpointHealth
    ttft_ms: float | None = None
    latency_ms: float | None = None
    in_flight: int = 0

    def speed_ms(self) -> float:
        """Best available latency estimate; unobserved endpoints look fast so they get tried."""
        if self.ttft_ms is not None:
            return self.ttft_ms
        return self.latency_ms if self.latency_ms is not None else 0.0


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the router needs to know about a request to rank endpoints."""

    model: str
    # Prompt tokens, counted only if ranking needs them (several priced endpoints).
    prompt_tokens: Callable[[], int]
    max_tokens: int | None = None
    latency_target_ms: float | None = None
    affinity_key: str | None = None  # requests sharing a key stick to one replica per pool
    endpoint: str | None = None  # pinned: only this endpoint
    # The least and most ``prompt_tokens`` can return, known without counting (None:
    # not known); when both rank the endpoints alike, so does the count.
    prompt_bounds: Callable[[], tuple[int, int] | None] | None = None


def by_affinity(ranked: list[Endpoint], key: str) -> list[Endpoint]:
    """Keep the policy's order of pools, but order each pool's replicas by
    rendezvous hashing on ``key``, so one conversation keeps landing on the same
    replica (and its prefix cache) while that replica is healthy and has room;
    when it is not, the next replica in the key's order takes over."""
    pools: dict[str, list[Endpoint]] = {}
    for endpoint in ranked:  # dicts keep insertion order: the best-ranked pool first
        pools.setdefault(endpoint.config.pool, []).append(endpoint)
    ordered: list[Endpoint] = []
    for members in pools.values():
        ordered.extend(sorted(members, key=lambda e: _rendezvous(key, e.name), reverse=True))
    return ordered


def _rendezvous(key: str, name: str) -> bytes:
    return hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else alpha * sample + (1 - alpha) * previous


class Router:
    """Orders candidate endpoints and manages their concurrency slots and health."""

    def __init__(
        self,
        config: SpendgraphConfig,
        endpoints: dict[str, Endpoint],
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.endpoints = endpoints
        routing = config.routing
        self.stats = {
            name: EndpointStats(
                EndpointHealth(
                    failure_rate=routing.breaker_failure_rate,
                    min_attempts=routing.breaker_min_attempts,
                    window_s=routing.breaker_window_s,
                    open_s=routing.breaker_open_s,
                )
            )
            for name in endpoints
        }
        self._clock = clock
        # Tier settings by name: a tier without a [tiers] table gets fresh defaults
        # built on every lookup (~0.1 ms of pydantic work, three times a call).
        self._tiers: dict[str, TierConfig] = {}
        # Replaced by a fresh Event at every release; waiters hold the old one.
        self._slot_freed = asyncio.Event()

    # -- ranking ---------------------------------------------------------

    def tier(self, name: str) -> TierConfig:
        """The config's settings of tier (or model) ``name``, looked up once."""
        settings = self._tiers.get(name)
        if settings is None:
            settings = self._tiers[name] = self.config.tier(name)
        return settings

    def named(self, name: str) -> Endpoint:
        """The endpoint called ``name``, else :class:`NoEndpointAvailable` with a did-you-mean."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise NoEndpointAvailable(
                f"no configured endpoint is named {name!r}{did_you_mean(name, self.endpoints)}"
            )
        return endpoint

    def plan(self, request: RouteRequest) -> list[Endpoint]:
        """Candidates in the order to try them: the tier's own, then its fallbacks'."""
        if request.endpoint is not None:
            return [self.named(request.endpoint)]
        ordered: list[Endpoint] = []
        seen: set[str] = set()
        for name in self._tier_chain(request.model):
            ranked = self._rank(name, request)
            if request.affinity_key and self.tier(name).prefix_affinity:
                ranked = by_affinity(ranked, request.affinity_key)
            for endpoint in ranked:
                if endpoint.name not in seen:
                    seen.add(endpoint.name)
                    ordered.append(endpoint)
        if not ordered:
            raise NoEndpointAvailable(f"no configured endpoint serves {request.model!r}")
        return ordered

    def _tier_chain(self, model: str) -> list[str]:
        chain, pending = [], [model]
        while pending:
            name = pending.pop(0)
            if name not in chain:
                chain.append(name)
                pending.extend(self.tier(name).fallbacks)
        return chain

    def _rank(self, model: str, request: RouteRequest) -> list[Endpoint]:
        serving = [self.endpoints[c.name] for c in self.config.endpoints_for(model)]
        tier = self.tier(model)
        policy = tier.policy or self.config.routing.policy
        # Equal prices (replicas of a pool) go least-loaded first, so a pool
        # without prefix affinity still spreads concurrent requests.
        by_cost = serving if len(serving) < 2 else self._by_cost(serving, request)
        if policy == "cheapest":
            return by_cost
        by_speed = sorted(serving, key=lambda e: self.stats[e.name].speed_ms())
        if policy == "fastest":
            return by_speed
        target = self._latency_target(tier, request)
        if target is None:
            return by_cost
        meets = [e for e in by_cost if self.stats[e.name].speed_ms() <= target]
        return meets + [e for e in by_speed if e not in meets]

    @staticmethod
    def _latency_target(tier: TierConfig, request: RouteRequest) -> float | None:
        if request.latency_target_ms is not None:
            return request.latency_target_ms
        return tier.latency_target_ms

    def _by_cost(self, serving: list[Endpoint], request: RouteRequest) -> list[Endpoint]:
        prompt = _ranking_prompt(serving, request)
        stats = self.stats
        return sorted(
            serving, key=lambda e: (*self._cost_key(e, request, prompt), stats[e.name].in_flight)
        )

    @staticmethod
    def _cost_key(
        endpoint: Endpoint, request: RouteRequest, prompt: Callable[[], int]
    ) -> tuple[int, Decimal]:
        price = endpoint.price
        if price.input_uncached is None or price.output is None:
            return (1, Decimal(0))  # unknown price ranks after every known one
        output = request.max_tokens or DEFAULT_EXPECTED_OUTPUT
        return (0, price.input_uncached * prompt() + price.output * output)

    # -- health ----------------------------------------------------------

    def health(self, endpoint: Endpoint) -> EndpointHealth:
        return self.stats[endpoint.name].health

    def cooling(self, endpoint: Endpoint) -> bool:
        """Whether new requests skip ``endpoint`` (breaker open or probing, or rate-limited)."""
        return not self.stats[endpoint.name].health.usable(self._clock())

    def why_unusable(self, endpoint: Endpoint) -> str:
        return f"{endpoint.name!r} " + self.health(endpoint).why_unusable(self._clock())

    def record_success(self, endpoint: Endpoint, *, ttft_ms: float | None, latency_ms: float):
        stats = self.stats[endpoint.name]
        alpha = self.config.routing.ewma_alpha
        if ttft_ms is not None:
            stats.ttft_ms = _ewma(stats.ttft_ms, ttft_ms, alpha)
        stats.latency_ms = _ewma(stats.latency_ms, latency_ms, alpha)
        now = self._clock()
        stats.health.success(now, now - latency_ms / 1000)

    def record_failure(self, endpoint: Endpoint, *, latency_ms: float) -> None:
        """A failed attempt that lasted ``latency_ms``, for the endpoint's breaker."""
        now = self._clock()
        self.stats[endpoint.name].health.failure(now, now - latency_ms / 1000)

    def record_neutral(self, endpoint: Endpoint, *, latency_ms: float) -> None:
        """An attempt that says nothing about health (rejected request, cancel)."""
        now = self._clock()
        self.stats[endpoint.name].health.neutral(now, now - latency_ms / 1000)

    def rate_limited(self, endpoint: Endpoint, retry_after_s: float) -> None:
        """The server asked for ``retry_after_s`` of quiet: every call skips it until then."""
        self.stats[endpoint.name].health.rate_limit(self._clock() + retry_after_s)

    # -- concurrency -----------------------------------------------------

    def _has_room(self, endpoint: Endpoint) -> bool:
        limit = endpoint.config.max_concurrency
        return limit is None or self.stats[endpoint.name].in_flight < limit

    async def checkout(self, candidates: Sequence[Endpoint]) -> Endpoint:
        """Take a slot on the first usable candidate, waiting while all are full.

        With ``on_limit = "overflow"`` a full endpoint passes the request to the
        next candidate; with ``"wait"`` the request waits for the first one.
        Open breakers and rate-limited endpoints are skipped; when no candidate
        is left, :class:`NoEndpointAvailable` says why and when each recovers.
        """
        stats = self.stats
        while True:
            now = self._clock()
            usable = [e for e in candidates if stats[e.name].health.usable(now)]
            if not usable:
                raise NoEndpointAvailable(
                    "no candidate endpoint is usable: "
                    + "; ".join(self.why_unusable(e) for e in candidates)
                )
            if self.config.routing.on_limit == "wait":
                usable = usable[:1]
            chosen = next((e for e in usable if self._has_room(e)), None)
            if chosen is not None:
                chosen_stats = stats[chosen.name]
                chosen_stats.in_flight += 1
                chosen_stats.health.admit(now)
                return chosen
            await self._slot_freed.wait()

    def release(self, endpoint: Endpoint) -> None:
        """Give a slot back (synchronous, so it is safe in ``finally`` under cancellation)."""
        self.stats[endpoint.name].in_flight -= 1
        freed, self._slot_freed = self._slot_freed, asyncio.Event()
        freed.set()


def _ranking_prompt(serving: list[Endpoint], request: RouteRequest) -> Callable[[], int]:
    """The prompt tokens to rank ``serving`` by: a bound when it ranks them as the count
    would, else the count (its CPU cost only where the order depends on it).

    A cost is linear in the prompt's tokens, so two endpoints compare alike at every
    count between two bounds if they compare alike at both (equal at both: equal
    everywhere); then the order at the lower bound is the order at the count.
    """
    bounds = request.prompt_bounds() if request.prompt_bounds is not None else None
    if bounds is None:
        return request.prompt_tokens
    low, high = bounds
    at_low = [Router._cost_key(e, request, lambda: low) for e in serving]
    at_high = [Router._cost_key(e, request, lambda: high) for e in serving]
    for i in range(len(serving)):
        for j in range(i + 1, len(serving)):
            if _compare(at_low[i], at_low[j]) != _compare(at_high[i], at_high[j]):
                return request.prompt_tokens
    return lambda: low


def _compare(a: tuple[int, Decimal], b: tuple[int, Decimal]) -> int:
    return (a > b) - (a < b)
