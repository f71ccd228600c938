"""Prices in ``spendgraph.toml``: explicit per-million-token rates, or GPU $/hour."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from spendgraph.providers.config.base import ConfigModel, NonEmptyStr, as_decimal
from spendgraph.providers.usage import PER_MILLION, Price

_SECONDS_PER_HOUR = Decimal(3600)
# $1 per token (or per GPU-second-ish hour): far above any real rate, low enough
# that a budget can still bound a call. A typo such as 1e308 would make every
# reservation absurd (or overflow the ledger's decimals), so it is refused.
MAX_RATE = 1_000_000  # an int: the error message shows it as written
Rate = Annotated[Decimal, BeforeValidator(as_decimal), Field(ge=0, le=MAX_RATE)]


class PriceConfig(ConfigModel):
    """USD per million tokens: explicit rates, or derived from GPU $/hour and throughput.

    Each rate is resolved on its own: an explicit ``input``/``output`` wins;
    otherwise it is derived as ``gpu_hour_usd / (tokens_per_s * 3600) * 1e6``
    from the matching measured throughput. This charges each phase as if it
    had the GPU to itself -- an upper bound when prefill and decode share it.
    ``cached_input`` defaults to ``input * cached_input_ratio`` (0.25: a prefix
    cache hit skips prefill compute; hosted providers bill cached input at
    1/10 to 1/2 of uncached). ``gpu_hour_usd = 0`` (a local CPU, a GPU already
    paid for) makes every rate a known 0. With no rates at all the price is
    :meth:`Price.unknown`, never 0.

    Setting ``gpu_hour_usd`` next to both explicit ``input`` and ``output`` is
    an error (it would be silently ignored), as is a throughput without
    ``gpu_hour_usd``.
    """

    input: Rate | None = None
    cached_input: Rate | None = None
    output: Rate | None = None
    cached_input_ratio: Annotated[Decimal, BeforeValidator(as_decimal), Field(ge=0, le=1)] = (
        Decimal("0.25")
    )
    gpu_hour_usd: Rate | None = None
    input_tokens_per_s: Annotated[float, Field(gt=0)] | None = None
    output_tokens_per_s: Annotated[float, Field(gt=0)] | None = None
    version: NonEmptyStr | None = None

    @field_validator("cached_input")
    @classmethod
    def _cached_not_above_input(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # Reservations price the prompt at one rate; a cached rate above the
        # uncached one is almost surely a swapped pair, and would break that bound.
        explicit = info.data.get("input")
        if value is not None and explicit is not None and value > explicit:
            raise ValueError(
                f"expected cached_input <= input ({explicit}), got {value}; "
                "a prefix-cache hit cannot cost more than uncached input"
            )
        return value

    @model_validator(mode="after")
    def _check_derivation(self) -> PriceConfig:
        has_throughput = self.input_tokens_per_s is not None or self.output_tokens_per_s is not None
        if self.gpu_hour_usd is None:
            if has_throughput:
                raise ValueError(
                    "input_tokens_per_s/output_tokens_per_s are only used with gpu_hour_usd; "
                    "set gpu_hour_usd or remove them"
                )
            return self
        if self.input is not None and self.output is not None:
            raise ValueError(
                "gpu_hour_usd would be ignored because input and output are both set; "
                "keep either the explicit rates or gpu_hour_usd with throughputs"
            )
        if self.gpu_hour_usd > 0 and not has_throughput:
            raise ValueError(
                "gpu_hour_usd needs a measured input_tokens_per_s and/or output_tokens_per_s "
                "to derive rates from"
            )
        return self._check_derived_rates()

    def _check_derived_rates(self) -> PriceConfig:
        price = self.to_price()
        for name, rate in (("input", price.input_uncached), ("output", price.output)):
            if rate is not None and rate > MAX_RATE:
                raise ValueError(
                    f"the derived {name} rate {rate:.6g} $/M tokens is above {MAX_RATE}; "
                    "check gpu_hour_usd and the measured throughputs"
                )
        cached, input_ = price.input_cached, price.input_uncached
        if cached is not None and input_ is not None and cached > input_:
            raise ValueError(
                f"cached_input {cached} is above the derived input rate {input_:.6g}; "
                "a prefix-cache hit cannot cost more than uncached input"
            )
        return self

    def _derived(self, tokens_per_s: float | None) -> Decimal | None:
        if self.gpu_hour_usd is None:
            return None
        if self.gpu_hour_usd == 0:
            return Decimal(0)  # free is free, however fast
        if tokens_per_s is None:
            return None
        # One division, last, so exact inputs give exact rates where possible.
        return self.gpu_hour_usd * PER_MILLION / (Decimal(repr(tokens_per_s)) * _SECONDS_PER_HOUR)

    def to_price(self) -> Price:
        """The resolved :class:`Price`; its version is ``version`` or a hash of the rates."""
        input_ = self.input if self.input is not None else self._derived(self.input_tokens_per_s)
        output = self.output if self.output is not None else self._derived(self.output_tokens_per_s)
        cached = self.cached_input
        if cached is None and input_ is not None:
            cached = input_ * self.cached_input_ratio
        if input_ is None and cached is None and output is None:
            return Price.unknown()
        return Price(
            input_, cached, output, version=self.version or rates_version(input_, cached, output)
        )


def rates_version(*rates: Decimal | None) -> str:
    """``auto-<hash>`` of the rates: equal rates (0.1 vs 0.10) give the same version."""
    text = "|".join("?" if rate is None else format(rate.normalize(), "f") for rate in rates)
    return "auto-" + hashlib.sha256(text.encode()).hexdigest()[:10]
