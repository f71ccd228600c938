"""Calibration against the simulator: both phases measured, every request a ledger row."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from spendgraph.providers.calibrate import (
    CALIBRATION_APP,
    CalibrationPlan,
    calibrate,
    three_figures,
)
from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import NoEndpointAvailable
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.usage import PER_MILLION

PLAN = CalibrationPlan(requests=6, concurrency=3, prompt_tokens=400, output_tokens=48)


async def test_both_phases_are_measured_from_recorded_usage(layer, ledger):
    result = await calibrate(layer, "h100-fp8-0", PLAN)

    rows = ledger.calls_for_query(result.query_id)
    assert len(rows) == 2 * PLAN.requests
    assert {(r.endpoint.name, r.status) for r in rows} == {("h100-fp8-0", CallStatus.OK)}
    prefill = [r for r in rows if r.usage.output <= 1]
    decode = [r for r in rows if r.usage.output > 1]
    assert len(prefill) == len(decode) == PLAN.requests
    # A fresh nonce opens every prompt: no prefix cache makes prefill look free.
    assert all(r.usage.input_cached == 0 and r.usage.input_uncached >= 300 for r in prefill)
    assert result.prefill.tokens == sum(r.usage.input_uncached for r in prefill)
    assert result.decode.tokens == sum(r.usage.output for r in decode)
    assert result.prefill.failed == result.decode.failed == 0
    summary = ledger.query_summary(result.query_id)
    assert summary.query.app == CALIBRATION_APP


async def test_the_price_follows_the_gpu_rate_like_the_config_does(layer):
    result = await calibrate(layer, "b200-nvfp4-0", PLAN)
    price = result.price(Decimal("3.6"))
    for rate, derived in (
        (result.prefill.tokens_per_s, price.input_uncached),
        (result.decode.tokens_per_s, price.output),
    ):
        measured = Decimal(repr(three_figures(rate)))
        assert derived == Decimal("3.6") * PER_MILLION / (measured * 3600)
    assert price.input_cached == price.input_uncached * Decimal("0.25")
    assert result.price(None).input_uncached is None  # no GPU rate: unknown, not $0
    assert result.price(Decimal(0)).output == 0  # a machine already paid for: a known 0


async def test_an_unknown_endpoint_name_is_refused_before_any_call(layer, ledger):
    with pytest.raises(NoEndpointAvailable, match=r"'h100-fp8-O'.*did you mean 'h100-fp8-0'"):
        await calibrate(layer, "h100-fp8-O", PLAN)
    assert ledger.list_queries() == []


async def test_an_endpoint_that_refuses_everything_raises_with_every_attempt_recorded(ledger):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = parse_config(
        f"""
        [routing]
        max_retries = 0

        [[endpoints]]
        name = "down"
        base_url = "http://127.0.0.1:{port}/v1"
        model = "m"
        """,
        source="down.toml",
        env={},
    )
    layer = ProviderLayer(config, ledger, env={})
    try:
        with pytest.raises(NoEndpointAvailable, match="endpoint 'down' failed after retries"):
            await calibrate(layer, "down", CalibrationPlan(requests=3, concurrency=3))
    finally:
        await layer.aclose(close_ledger=False)
    [query] = ledger.list_queries()
    rows = ledger.calls_for_query(query.query.id)
    assert len(rows) == 3 and all(r.status is CallStatus.ERROR for r in rows)
