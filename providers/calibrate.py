"""Measure an endpoint's throughput, to price it from what its GPUs cost per hour.

A self-hosted endpoint has no price list: it has a GPU bill. ``calibrate``
sends two short loads to one endpoint through the provider layer (so every
request is a ledger row, under one query) and measures

* prefill throughput: distinct long prompts with ``max_tokens=1``, uncached
  prompt tokens per second of wall time;
* decode throughput: short prompts generating ``output_tokens`` each, output
  tokens per second of wall time.

Both are aggregate rates at the plan's concurrency, the way a busy server
works -- and a price measured at 4 requests in flight is not the price at 64.
:func:`sweep` therefore measures decode at each of several concurrencies,
streamed, with each request's time to first token and the gaps between its
tokens (TTFT and inter-token latency, p50/p95), and :func:`choose` picks the
*operating point*: the highest output throughput whose TTFT p95 and ITL p95
meet the given targets (none: the highest throughput). The price is then that
point's: GPU $/hour / output tokens per hour, with prefill measured at the
same concurrency. :meth:`Calibration.price` turns them into USD per million tokens with
the same rule as ``price = { gpu_hour_usd, input_tokens_per_s,
output_tokens_per_s }`` in the config, which is what the CLI prints to paste.
Prompts start with a fresh nonce so no prefix cache can make prefill look free.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import PriceConfig
from spendgraph.providers.errors import EndpointError, NoEndpointAvailable, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.tokens import count_text
from spendgraph.providers.usage import PER_MILLION, Price, Usage

CALIBRATION_APP = "spendgraph-calibrate"
_FILLER = (
    "Throughput calibration text: a steady stream of ordinary words, numbers such as "
    "1024 and 4096, and punctuation, so the tokenizer sees typical prose. "
)

# Asks for more than output_tokens, so a real model does not stop early.
_LONG_ANSWER = "Count from 1 to 2000 in words, one number per line, with no other text."


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    """How hard to push: ``requests`` per phase, ``concurrency`` at a time."""

    requests: int = 16
    concurrency: int = 4
    prompt_tokens: int = 2000
    output_tokens: int = 256


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase: tokens the server reported, wall time, and failed requests."""

    tokens: int
    seconds: float
    failed: int

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.tokens and self.seconds > 0 else None


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one endpoint sustained, and the query its requests are recorded under."""

    endpoint: str
    prefill: PhaseResult
    decode: PhaseResult
    query_id: str

    def price(self, gpu_hour_usd: Decimal | None) -> Price:
        """Per-million rates at ``gpu_hour_usd``; unknown without a rate or a measurement."""
        if gpu_hour_usd is None:
            return Price.unknown()
        input_rate, output_rate = self.prefill.tokens_per_s, self.decode.tokens_per_s
        if gpu_hour_usd > 0 and input_rate is None and output_rate is None:
            return Price.unknown()
        return PriceConfig(
            gpu_hour_usd=gpu_hour_usd,
            input_tokens_per_s=three_figures(input_rate),
            output_tokens_per_s=three_figures(output_rate),
        ).to_price()


async def calibrate(
    layer: ProviderLayer, endpoint: str, plan: CalibrationPlan = CalibrationPlan()
) -> Calibration:
    """Run both phases against the endpoint named ``endpoint`` (one ledger query).

    Raises :class:`NoEndpointAvailable` for an unknown name, and the endpoint's
    error when every request of a phase failed (it is unreachable or refuses)."""
    tokenizer = layer.router.named(endpoint).config.tokenizer  # before the query opens
    long_prompt = _text_of(plan.prompt_tokens, tokenizer)
    async with layer.query(app=CALIBRATION_APP, thread_id=f"calibrate-{endpoint}") as scope:
        prefill = await _phase(layer, plan, _request(endpoint, long_prompt, 1), _prompt_tokens)
        decode = await _phase(
            layer, plan, _request(endpoint, _LONG_ANSWER, plan.output_tokens), _output_tokens
        )
    return Calibration(endpoint, prefill, decode, scope.id)


def _prompt_tokens(usage: Usage) -> int:
    return usage.input_uncached  # cached tokens skipped prefill: they do not count


def _output_tokens(usage: Usage) -> int:
    return usage.output


def _request(endpoint: str, text: str, max_tokens: int) -> Callable[[], ChatRequest]:
    def build() -> ChatRequest:
        nonce = f"[{uuid.uuid4().hex}] "  # first, so no two prompts share a cached prefix
        message = {"role": "user", "content": nonce + text}
        return ChatRequest(messages=[message], endpoint=endpoint, max_tokens=max_tokens)

    return build


async def _phase(
    layer: ProviderLayer,
    plan: CalibrationPlan,
    build: Callable[[], ChatRequest],
    measured: Callable[[Usage], int],
) -> PhaseResult:
    tokens = 0
    errors: list[SpendgraphError] = []
    pending = iter(range(plan.requests))

    async def worker() -> None:
        nonlocal tokens
        for _ in pending:
            try:
                result = await layer.chat(build())
            except (EndpointError, NoEndpointAvailable) as exc:
                errors.append(exc)  # recorded in the ledger; the phase goes on
                continue
            tokens += measured(result.usage)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, plan.concurrency))))
    seconds = time.perf_counter() - started
    if errors and len(errors) == plan.requests:
        raise errors[-1]
    return PhaseResult(tokens, seconds, len(errors))


def _text_of(tokens: int, encoding: str) -> str:
    """Filler prose of about ``tokens`` tokens in ``encoding``."""
    per_copy = max(1, count_text(_FILLER, encoding))
    return _FILLER * max(1, tokens // per_copy)


def three_figures(rate: float | None) -> float | None:
    """``rate`` to three significant figures: a measurement is not more precise than
    that, and a price pasted into the config should not pretend it is."""
    return None if rate is None else float(f"{rate:.3g}")


# -- the concurrency sweep ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50 and p95 of some latencies in ms (None: nothing measured)."""

    p50: float | None = None
    p95: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        if not values:
            return cls()
        ordered = sorted(values)
        return cls(_nearest_rank(ordered, 50), _nearest_rank(ordered, 95))


def _nearest_rank(ordered: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class LatencyTargets:
    """What a latency-sensitive app needs: TTFT and inter-token p95 at most these (ms)."""

    ttft_ms: float | None = None
    itl_ms: float | None = None

    def missed_by(self, point: SweepPoint) -> list[str]:
        """Why ``point`` misses the targets (empty: it meets them)."""
        missed = []
        for name, target, measured in (
            ("TTFT", self.ttft_ms, point.ttft_ms.p95),
            ("ITL", self.itl_ms, point.itl_ms.p95),
        ):
            if target is not None and (measured is None or measured > target):
                shown = "nothing" if measured is None else f"{measured:.1f} ms"
                missed.append(f"{name} p95 {shown} > {target:g} ms")
        return missed

    def describe(self) -> str:
        named = (("TTFT", self.ttft_ms), ("ITL", self.itl_ms))
        return " and ".join(f"{n} p95 <= {t:g} ms" for n, t in named if t is not None) or (
            "no latency target"
        )


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """Decode measured at one concurrency: throughput, TTFT and inter-token latency."""

    concurrency: int
    requests: int
    decode: PhaseResult
    ttft_ms: Percentiles
    itl_ms: Percentiles

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second, to three figures (what a price is computed from)."""
        return three_figures(self.decode.tokens_per_s)

    def tokens_per_gpu_dollar(self, gpu_hour_usd: Decimal | None) -> Decimal | None:
        """Output tokens one dollar of GPU time buys at this point."""
        rate = self.tokens_per_s
        if gpu_hour_usd is None or gpu_hour_usd <= 0 or rate is None:
            return None
        return Decimal(repr(rate)) * 3600 / gpu_hour_usd

    def output_price(self, gpu_hour_usd: Decimal | None) -> Decimal | None:
        """USD per million output tokens: GPU $/hour / output tokens per hour."""
        rate = self.tokens_per_s
        if gpu_hour_usd is None or rate is None:
            return None
        return gpu_hour_usd * PER_MILLION / (Decimal(repr(rate)) * 3600)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The chosen point of a sweep (None: no point met the targets) and why."""

    chosen: SweepPoint | None
    reason: str


def choose(points: Sequence[SweepPoint], targets: LatencyTargets) -> OperatingPoint:
    """The highest-throughput point without failures that meets ``targets``."""
    measured = [p for p in points if p.tokens_per_s is not None and p.decode.failed == 0]
    meeting = [p for p in measured if not targets.missed_by(p)]
    if not meeting:
        if not measured:
            return OperatingPoint(None, "no concurrency completed its requests without failures")
        lowest = min(measured, key=lambda p: p.concurrency)  # the best latency on offer
        why = "; ".join(targets.missed_by(lowest))
        return OperatingPoint(
            None,
            f"no concurrency met {targets.describe()}: even {lowest.concurrency} in flight "
            f"had {why}",
        )
    best = max(meeting, key=lambda p: (p.tokens_per_s or 0, -p.concurrency))
    faster = [p for p in measured if (p.tokens_per_s or 0) > (best.tokens_per_s or 0)]
    reason = f"highest output throughput ({best.tokens_per_s:g} tok/s) meeting {targets.describe()}"
    if faster:
        top = max(faster, key=lambda p: p.tokens_per_s or 0)
        reason += f"; {top.concurrency} in flight is faster but {'; '.join(targets.missed_by(top))}"
    return OperatingPoint(best, reason)


@dataclass(frozen=True, slots=True)
class Sweep:
    """A concurrency sweep of one endpoint, its operating point, and the calibration there.

    ``calibration`` (prefill and decode at the chosen concurrency) is None when no
    point met the targets: then there is no price to quote.
    """

    endpoint: str
    targets: LatencyTargets
    points: tuple[SweepPoint, ...]
    operating_point: OperatingPoint
    calibration: Calibration | None
    query_id: str = field(default="")


async def sweep(
    layer: ProviderLayer,
    endpoint: str,
    plan: CalibrationPlan,
    concurrencies: Sequence[int],
    targets: LatencyTargets = LatencyTargets(),
) -> Sweep:
    """Measure decode at each concurrency, choose the operating point, prefill there.

    Each point sends ``max(plan.requests, concurrency)`` streamed requests, so
    every slot is busy at least once. All of it is one ledger query.
    """
    tokenizer = layer.router.named(endpoint).config.tokenizer
    long_prompt = _text_of(plan.prompt_tokens, tokenizer)
    decode = _request(endpoint, _LONG_ANSWER, plan.output_tokens)
    async with layer.query(app=CALIBRATION_APP, thread_id=f"calibrate-{endpoint}") as scope:
        points = [
            await _sweep_point(layer, c, max(plan.requests, c), decode) for c in concurrencies
        ]
        chosen = choose(points, targets)
        calibration = None
        if chosen.chosen is not None:
            at = CalibrationPlan(plan.requests, chosen.chosen.concurrency, plan.prompt_tokens)
            prefill = await _phase(layer, at, _request(endpoint, long_prompt, 1), _prompt_tokens)
            calibration = Calibration(endpoint, prefill, chosen.chosen.decode, scope.id)
    return Sweep(endpoint, targets, tuple(points), chosen, calibration, scope.id)


async def _sweep_point(
    layer: ProviderLayer, concurrency: int, requests: int, build: Callable[[], ChatRequest]
) -> SweepPoint:
    tokens, failed = 0, []
    ttfts: list[float] = []
    gaps: list[float] = []
    pending = iter(range(requests))

    async def worker() -> None:
        nonlocal tokens
        for _ in pending:
            try:
                output = await _timed_stream(layer, build(), ttfts, gaps)
            except (EndpointError, NoEndpointAvailable) as exc:
                failed.append(exc)  # recorded in the ledger; the point goes on
                continue
            tokens += output

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if failed and len(failed) == requests:
        raise failed[-1]
    phase = PhaseResult(tokens, seconds, len(failed))
    return SweepPoint(concurrency, requests, phase, Percentiles.of(ttfts), Percentiles.of(gaps))


async def _timed_stream(
    layer: ProviderLayer, request: ChatRequest, ttfts: list[float], gaps: list[float]
) -> int:
    """One streamed request: its TTFT and token gaps (ms) appended; its output tokens."""
    started = time.perf_counter()
    last = None
    async with layer.stream(request) as chunks:
        async for chunk in chunks:
            if not any(c.delta.content for c in chunk.choices):
                continue
            now = time.perf_counter()
            if last is None:
                ttfts.append((now - started) * 1000)
            else:
                gaps.append((now - last) * 1000)
            last = now
    result = chunks.result
    return result.usage.output if result is not None else 0


__all__ = [
    "CALIBRATION_APP",
    "Calibration",
    "CalibrationPlan",
    "LatencyTargets",
    "OperatingPoint",
    "Percentiles",
    "PhaseResult",
    "Sweep",
    "SweepPoint",
    "calibrate",
    "choose",
    "sweep",
    "three_figures",
]
