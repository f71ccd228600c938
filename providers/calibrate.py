"""Measure an endpoint's throughput, to price it from what its GPUs cost per hour.

A self-hosted endpoint has no price list: it has a GPU bill. ``calibrate``
sends two short loads to one endpoint through the provider layer (so every
request is a ledger row, under one query) and measures

* prefill throughput: distinct long prompts with ``max_tokens=1``, uncached
  prompt tokens per second of wall time;
* decode throughput: short prompts generating ``output_tokens`` each, output
  tokens per second of wall time.

Both are aggregate rates at the plan's concurrency, the way a busy server
works. :meth:`Calibration.price` turns them into USD per million tokens with
the same rule as ``price = { gpu_hour_usd, input_tokens_per_s,
output_tokens_per_s }`` in the config, which is what the CLI prints to paste.
Prompts start with a fresh nonce so no prefix cache can make prefill look free.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import PriceConfig
from spendgraph.providers.errors import EndpointError, NoEndpointAvailable, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.tokens import count_text
from spendgraph.providers.usage import Price, Usage

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


__all__ = [
    "CALIBRATION_APP",
    "Calibration",
    "CalibrationPlan",
    "PhaseResult",
    "calibrate",
    "three_figures",
]
