"""Token usage buckets, prices and cost: the arithmetic every ledger row uses.

Buckets are exclusive: ``input_uncached + input_cached`` is the prompt, and
``output`` includes reasoning tokens (``reasoning`` is kept separately for
reporting, never added again). Cost is ``Decimal`` USD; an unknown price makes
the cost ``None`` -- never 0. Sums of calls are a
:class:`~spendgraph.providers.spend.Spend`.

A server's usage report is believed only when it could be true
(:meth:`Usage.from_openai`, :func:`check_usage`): a negative count would refund
a budget, 10^15 tokens would bill millions of dollars for one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from spendgraph.providers.errors import SpendgraphError

PER_MILLION = Decimal(1_000_000)
# No model has a longer context: the bound of a report when the window is unknown.
LONGEST_CONTEXT = 10_000_000
# The error kind of a row whose call succeeded but whose usage report was impossible
# (its tokens were counted instead).
USAGE_REJECTED = "usage_rejected"


class UsageSource(StrEnum):
    """Where a row's token counts came from."""

    REPORTED = "reported"  # the server's own usage object
    # Counted exactly: by the endpoint's tokenizer endpoint, or locally with the
    # model family's own chat template and vocabulary (providers/templates.py).
    COUNTED = "counted"
    ESTIMATED = "estimated"  # counted locally with OpenAI's recipe, or inferred
    # The output is the request's max_tokens: the most the server can have made,
    # booked when it did the work but what it made never arrived.
    UPPER_BOUND = "upper_bound"


class ImplausibleUsage(SpendgraphError):
    """A server's usage report that cannot be true; the message says why.

    Never reaches a caller: the attempt counts the tokens instead and flags its row.
    """


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
        """Build from an ``openai`` ``CompletionUsage`` (or a dict of the same shape).

        Raises :class:`ImplausibleUsage` for a report no server can truly make: a
        missing, negative or fractional count, more cached than prompt tokens, more
        reasoning than completion tokens.
        """
        prompt = _count(usage, "prompt_tokens", required=True)
        output = _count(usage, "completion_tokens", required=True)
        cached = _count(_field(usage, "prompt_tokens_details"), "cached_tokens")
        reasoning = _count(_field(usage, "completion_tokens_details"), "reasoning_tokens")
        if cached > prompt:
            raise ImplausibleUsage(f"cached_tokens {cached} > prompt_tokens {prompt}")
        if reasoning > output:
            raise ImplausibleUsage(f"reasoning_tokens {reasoning} > completion_tokens {output}")
        return cls(
            input_uncached=prompt - cached,
            input_cached=cached,
            output=output,
            reasoning=reasoning,
            source=UsageSource.REPORTED,
        )


@dataclass(frozen=True, slots=True)
class UsageBounds:
    """The most one call can truly have used; a report beyond them is rejected.

    ``prompt``: tokens the prompt sent can make at most (see
    :func:`~spendgraph.providers.tokens.prompt_token_ceiling`). ``max_tokens``:
    what the request allowed (None: no limit sent). ``context_window``: the
    model's, when the server said it. ``answered``: whether generated text arrived.
    """

    prompt: int
    max_tokens: int | None = None
    context_window: int | None = None
    answered: bool = False

    def output_ceiling(self) -> int | None:
        """Completion tokens far enough above ``max_tokens`` to be no server's miscount."""
        return None if self.max_tokens is None else 2 * self.max_tokens + 16


def check_usage(usage: Usage, bounds: UsageBounds) -> None:
    """Raise :class:`ImplausibleUsage` when ``usage`` cannot be what the call used."""
    prompt, output = usage.prompt_tokens, usage.output
    if prompt == 0:
        raise ImplausibleUsage("prompt_tokens 0 for a prompt that was sent")
    if output == 0 and bounds.answered:
        raise ImplausibleUsage("completion_tokens 0 for an answer that arrived")
    if prompt > bounds.prompt:
        raise ImplausibleUsage(
            f"prompt_tokens {prompt} > {bounds.prompt}, the most the prompt sent can make"
        )
    window = bounds.context_window or LONGEST_CONTEXT
    if prompt + output > window:
        what = f"the context window ({window})" if bounds.context_window else "any model's context"
        raise ImplausibleUsage(f"{prompt} prompt + {output} completion tokens exceed {what}")
    ceiling = bounds.output_ceiling()
    if ceiling is not None and output > ceiling:
        raise ImplausibleUsage(
            f"completion_tokens {output} far above max_tokens {bounds.max_tokens}"
        )


def _count(value: object, name: str, *, required: bool = False) -> int:
    """A token count from a report: a non-negative integer (0 when absent and optional)."""
    raw = _field(value, name)
    if raw is None:
        if required:
            raise ImplausibleUsage(f"no {name}")
        return 0
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)  # 12.0 from a JSON encoder that writes every number as a float
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ImplausibleUsage(f"{name} {raw!r} is not a whole number")
    if raw < 0:
        raise ImplausibleUsage(f"{name} {raw} is negative")
    return raw


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
