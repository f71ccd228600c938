"""Prices: explicit rates, GPU $/hour derivation, unknown vs known zero, versions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from config_samples import PRICE, load_error

from spendgraph.providers.config import (
    EndpointConfig,
    PriceConfig,
    parse_config,
)
from spendgraph.providers.usage import Price, Usage, cost_of

# -- prices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        # 3.60 $/h at 10 000 prefill tok/s: 3.60 / 36 000 000 tok * 1e6 = 0.1 $/M.
        (
            {"gpu_hour_usd": "3.60", "input_tokens_per_s": 10_000, "output_tokens_per_s": 1_000},
            ("0.1", "0.025", "1"),
        ),
        # Not a terminating decimal: exactly 1e6 / 10 800 000 at Decimal's precision.
        (
            {"gpu_hour_usd": 1, "input_tokens_per_s": 3_000, "output_tokens_per_s": 3_000},
            (
                Decimal(1_000_000) / Decimal(10_800_000),
                Decimal(1_000_000) / Decimal(10_800_000) * Decimal("0.25"),
                Decimal(1_000_000) / Decimal(10_800_000),
            ),
        ),
        # An explicit rate wins; the other is derived; cached follows the ratio.
        (
            {
                "gpu_hour_usd": "7.20",
                "output_tokens_per_s": 2_000,
                "input": "0.3",
                "cached_input_ratio": "0.1",
            },
            ("0.3", "0.03", "1"),
        ),
        # Only decode throughput measured: input (and so cached) stays unknown.
        ({"gpu_hour_usd": "7.20", "output_tokens_per_s": 2_000}, (None, None, "1")),
        # A known price of zero, however fast.
        ({"gpu_hour_usd": 0}, ("0", "0", "0")),
        ({"input": "0.5", "output": "1.5"}, ("0.5", "0.125", "1.5")),
        ({"input": "0.5", "cached_input": "0.5", "output": "1.5"}, ("0.5", "0.5", "1.5")),
        ({"output": "2"}, (None, None, "2")),
    ],
)
def test_price_resolution(price: dict, expected: tuple):
    def decimal(value):
        return value if value is None else Decimal(value)

    config = PriceConfig.model_validate(
        {k: Decimal(v) if isinstance(v, str) else v for k, v in price.items()}
    )
    resolved = config.to_price()
    assert (resolved.input_uncached, resolved.input_cached, resolved.output) == tuple(
        decimal(v) for v in expected
    )


def test_price_from_toml_is_exact():
    text = PRICE + "gpu_hour_usd = 2.88\ninput_tokens_per_s = 8000.0\noutput_tokens_per_s = 800\n"
    price = parse_config(text, env={}).endpoints[0].resolved_price()
    # 2.88 $/h / (8000 tok/s * 3600 s/h) * 1e6 = 0.1; at 800 tok/s, 1.
    assert (price.input_uncached, price.input_cached, price.output) == (
        Decimal("0.1"),
        Decimal("0.025"),
        Decimal("1"),
    )
    assert cost_of(Usage(input_uncached=1_000_000, output=1_000_000), price) == Decimal("1.1")


def test_gpu_hour_zero_is_a_known_zero_price():
    price = PriceConfig(gpu_hour_usd=0).to_price()
    assert price.known
    assert cost_of(Usage(input_uncached=10, input_cached=5, output=7), price) == 0


@pytest.mark.parametrize("config", [None, PriceConfig()])
def test_no_price_information_is_unknown(config: PriceConfig | None):
    endpoint = EndpointConfig(name="x", base_url="http://127.0.0.1:1/v1", model="m", price=config)
    assert endpoint.resolved_price() == Price.unknown()
    assert cost_of(Usage(input_uncached=10), endpoint.resolved_price()) is None


def test_price_version():
    assert PriceConfig(input=1, output=2, version="2025-q4").to_price().version == "2025-q4"
    auto = PriceConfig(input=Decimal("0.10"), output=2).to_price().version
    assert auto.startswith("auto-")
    assert PriceConfig(input=Decimal("0.1"), output=Decimal("2.0")).to_price().version == auto
    assert PriceConfig(input=Decimal("0.11"), output=2).to_price().version != auto


# -- prices that would make a budget bound impossible ---------------------------------


@pytest.mark.parametrize(
    ("rates", "key", "expected"),
    [
        ("input = 1.0\ncached_input = 2.0\n", "price.cached_input", "cached_input <="),
        ("input = 1e308\noutput = 1.0\n", "price.input", "<= 1000000"),
        ("input = 1.0\noutput = 1e308\n", "price.output", "<= 1000000"),
        ("input = nan\noutput = 1.0\n", "price.input", "finite"),
        ("input = 1.0\noutput = -0.5\n", "price.output", ">= 0"),
        ("input = 1.0\ncached_input = -1.0\noutput = 1.0\n", "price.cached_input", ">= 0"),
        ("gpu_hour_usd = 2.0\ninput_tokens_per_s = 1e-9\n", "price'", "derived input rate"),
        (
            "gpu_hour_usd = 3.6\ninput_tokens_per_s = 1000.0\ncached_input = 5.0\n",
            "price'",
            "above the derived input rate",
        ),
    ],
)
def test_prices_that_break_a_budget_bound_are_refused(tmp_path, rates, key, expected):
    message, path = load_error(tmp_path, PRICE + rates)
    assert str(path) in message
    assert f"(a).{key}" in message
    assert expected in message
