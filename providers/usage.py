"""Token usage buckets, prices and cost: the arithmetic every ledger row uses.

Buckets are exclusive: ``input_uncached + input_cached`` is the prompt, and
``output`` includes reasoning tokens (``reasoning`` is kept separately for
reporting, never added again). Cost is ``Decimal`` USD; an unknown price makes
the cost ``None`` -- never 0. Sums of calls are a
:class:`~spendgraph.providers.spend.Spend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

PER_MILLION = Decimal(1_000_000)


class UsageSource(StrEnum):
    """Where a row's token counts came from."""

    REPORTED = "reported"  # the server's own usage object
    COUNTED = "counted"  # the endpoint's tokenizer endpoint counted exactly
    ESTIMATED = "estimated"  # counted locally with tiktoken


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used, in exclusive buckets."""

    input_uncached: int = 0
    input_cached: int = 0
    output: int = 0
    reasoning: int = 0
    source: UsageSource = UsageSource.REPORTED

    @property
    def prompt_tokens(self) -> int:
        return self.input_uncached + self.input_cached

    @property
    def total_tokens(self) -> int:
        return self.input_uncached + self.input_cached + self.output

    @classmethod
    def from_openai(cls, usage: object) -> Usage:
        """Build from an ``openai`` ``CompletionUsage`` (or a dict of the same shape)."""
        prompt = int(_field(usage, "prompt_tokens") or 0)
        cached = _field(_field(usage, "prompt_tokens_details"), "cached_tokens") or 0
        cached = min(int(cached), prompt)
        reasoning = _field(_field(usage, "completion_tokens_details"), "reasoning_tokens") or 0
        return cls(
            input_uncached=prompt - cached,
            input_cached=cached,
            output=int(_field(usage, "completion_tokens") or 0),
            reasoning=int(reasoning),
            source=UsageSource.REPORTED,
        )


def _field(value: object, name: str) -> object:
    """``value.name`` or ``value[name]``; None when missing. Attribute access on the
    SDK's objects avoids a per-call ``model_dump``."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. ``None`` in any field means that rate is unknown."""

    input_uncached: Decimal | None
    input_cached: Decimal | None
    output: Decimal | None
    version: str = ""

    @property
    def known(self) -> bool:
        return None not in (self.input_uncached, self.input_cached, self.output)

    @classmethod
    def unknown(cls) -> Price:
        return cls(None, None, None, version="unknown")


def cost_of(usage: Usage, price: Price | None) -> Decimal | None:
    """Exact cost in USD of ``usage`` at ``price``; ``None`` when a needed rate is unknown."""
    if price is None:
        return None
    parts = (
        (usage.input_uncached, price.input_uncached),
        (usage.input_cached, price.input_cached),
        (usage.output, price.output),
    )
    total = Decimal(0)
    for tokens, rate in parts:
        if tokens == 0:
            continue
        if rate is None:
            return None
        total += Decimal(tokens) * rate
    return total / PER_MILLION


def bound_cost(prompt_tokens: int, output_tokens: int, price: Price) -> Decimal | None:
    """The most ``prompt_tokens`` + ``output_tokens`` can cost at ``price``.

    The prompt is priced at the dearer of the two input rates: whether the
    server's prefix cache hits is not known before the call, and a price built
    in code may rate cached input above uncached.
    """
    rates = (price.input_uncached, price.input_cached)
    if prompt_tokens and None in rates:
        return None
    dearest = Price(max(rates), max(rates), price.output) if prompt_tokens else price
    return cost_of(Usage(input_uncached=prompt_tokens, output=output_tokens), dearest)
