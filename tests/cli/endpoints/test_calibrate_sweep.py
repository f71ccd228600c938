"""`endpoints calibrate --sweep`: the curve, the operating point under latency targets, its price.

Runs against the fleet simulator at a fiftieth of real time, so latencies are
real measurements (queueing included) and a sweep takes seconds.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from spendgraph.providers.calibrate import (
    CalibrationPlan,
    LatencyTargets,
    Percentiles,
    PhaseResult,
    SweepPoint,
    choose,
    sweep,
)
from spendgraph.providers.config import example_config_path, parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.usage import PER_MILLION

EXAMPLE = str(example_config_path())
SMALL = ("--requests", "4", "--prompt-tokens", "200", "--output-tokens", "16")


@pytest.fixture(scope="module")
def timed_sim():
    from spendgraph.providers.local.sim.server import run_simulator

    with run_simulator(time_scale=0.02, seed=0) as running:
        yield running


def _sweep(cli, sim, *args: str):
    env = {"SPENDGRAPH_SIM_URL": sim.base_url}
    return cli(
        "endpoints", "calibrate", "h100-fp8-0", *args, "--config", EXAMPLE, "--ledger", "cal.db",
        "--gpu-hour-usd", "2.5", *SMALL, env=env,
    )  # fmt: skip


def _price(gpu_hour: str, tokens_per_s: float) -> Decimal:
    return Decimal(gpu_hour) * PER_MILLION / (Decimal(repr(tokens_per_s)) * 3600)


def test_the_price_is_the_gpu_rate_over_the_chosen_points_tokens_per_hour(cli, timed_sim):
    result = _sweep(cli, timed_sim, "--sweep", "1,4,8", "--ttft-ms", "60000", "--json")
    assert result.exit_code == 0, result.output
    (endpoint,) = json.loads(result.stdout)["endpoints"]
    swept = endpoint["sweep"]
    points = {p["concurrency"]: p for p in swept["points"]}
    assert sorted(points) == [1, 4, 8] and swept["targets"]["ttft_p95_ms"] == 60000
    chosen = points[swept["chosen_concurrency"]]
    meeting = [p for p in points.values() if p["meets_targets"]]
    assert chosen["meets_targets"] and chosen["ttft_ms"]["p95"] <= 60000
    assert chosen["output_tokens_per_s"] == max(p["output_tokens_per_s"] for p in meeting)
    expected = _price("2.5", chosen["output_tokens_per_s"])
    assert Decimal(endpoint["price_per_million"]["output"]) == expected
    assert Decimal(chosen["output_price_per_million"]) == expected
    assert endpoint["decode"]["tokens_per_s"] == chosen["output_tokens_per_s"]
    for point in points.values():
        assert point["requests"] == max(4, point["concurrency"]) and point["failed"] == 0
        assert 0 < point["ttft_ms"]["p50"] <= point["ttft_ms"]["p95"]
        per_dollar = Decimal(repr(point["output_tokens_per_s"])) * 3600 / Decimal("2.5")
        assert Decimal(point["tokens_per_gpu_dollar"]) == per_dollar
    # Every sweep request and the prefill at the chosen point are ledger rows of one query.
    audit = cli("audit", "queries", "--ledger", "cal.db", "--app", "spendgraph-calibrate", "--json")
    (query,) = json.loads(audit.stdout)["queries"]
    assert query["id"] == endpoint["query_id"] and query["calls"] == 4 + 4 + 8 + 4


def test_the_table_and_plot_say_which_point_was_chosen_and_why(cli, timed_sim):
    result = _sweep(cli, timed_sim, "--sweep", "1,2")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "TTFT p95 ms" in text and "ITL p95 ms" in text and "<- chosen" in text
    assert "tokens per GPU-dollar (bar) and TTFT p95 by requests in flight" in text
    assert "h100-fp8-0: priced at" in text and "meeting no latency target" in text
    line = next(row for row in result.stdout.splitlines() if row.startswith("price = {"))
    assert "gpu_hour_usd = 2.5" in line


def test_when_no_point_meets_the_target_there_is_no_price_and_exit_code_1(cli, timed_sim):
    result = _sweep(cli, timed_sim, "--sweep", "1,2", "--itl-ms", "0", "--json")
    assert result.exit_code == 1
    (endpoint,) = json.loads(result.stdout)["endpoints"]
    assert endpoint["sweep"]["chosen_concurrency"] is None
    assert endpoint["price_per_million"] is None and endpoint["decode"] is None
    assert all(not p["meets_targets"] for p in endpoint["sweep"]["points"])
    message = " ".join(result.stderr.split())
    assert "h100-fp8-0: no price: no concurrency met ITL p95 <= 0 ms" in message
    table = _sweep(cli, timed_sim, "--sweep", "1", "--ttft-ms", "0")
    assert table.exit_code == 1 and "price = {" not in table.stdout
    assert "TTFT p95" in table.stdout  # the curve is still shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sweep", "1,x"), "--sweep '1,x': expected whole numbers >= 1"),
        (("--sweep", "0"), "--sweep '0': expected whole numbers >= 1"),
        (("--ttft-ms", "100"), "--ttft-ms and --itl-ms choose among the points of a sweep"),
    ],
)
def test_bad_sweep_options_are_refused(cli, timed_sim, args, message):
    result = _sweep(cli, timed_sim, *args)
    assert result.exit_code == 1 and message in " ".join(result.stderr.split())


async def test_choosing_on_measured_points_obeys_a_target_between_them(timed_sim, ledger):
    config = parse_config(
        example_config_path().read_text(), env={"SPENDGRAPH_SIM_URL": timed_sim.base_url}
    )
    layer = ProviderLayer(config, ledger, env={})
    try:
        measured = await sweep(layer, "b200-nvfp4-0", CalibrationPlan(4, 1, 200, 16), [1, 2, 8])
    finally:
        await layer.aclose(close_ledger=False)
    for point in measured.points:
        target = LatencyTargets(ttft_ms=point.ttft_ms.p95)
        chosen = choose(measured.points, target).chosen
        assert chosen is not None and chosen.ttft_ms.p95 <= point.ttft_ms.p95
        meeting = [p for p in measured.points if p.ttft_ms.p95 <= point.ttft_ms.p95]
        assert chosen.tokens_per_s == max(p.tokens_per_s for p in meeting)


def _point(concurrency: int, tokens: int, ttft_p95: float, *, failed: int = 0) -> SweepPoint:
    phase = PhaseResult(tokens=tokens, seconds=1.0, failed=failed)
    return SweepPoint(
        concurrency, 8, phase, Percentiles(ttft_p95 / 2, ttft_p95), Percentiles(5.0, 9.0)
    )


def test_the_fastest_point_meeting_the_targets_wins_and_failures_never_do():
    points = [
        _point(1, 100, 50.0),
        _point(4, 380, 90.0),
        _point(16, 1200, 300.0),
        _point(64, 2000, 80.0, failed=1),
    ]
    chosen = choose(points, LatencyTargets(ttft_ms=100, itl_ms=10))
    assert chosen.chosen is points[1]
    assert "16 in flight is faster but TTFT p95 300.0 ms > 100 ms" in chosen.reason
    assert choose(points, LatencyTargets()).chosen is points[2]
    none = choose(points, LatencyTargets(itl_ms=1))
    assert none.chosen is None
    assert none.reason == (
        "no concurrency met ITL p95 <= 1 ms: even 1 in flight had ITL p95 9.0 ms > 1 ms"
    )
    assert points[1].output_price(Decimal("3.6")) == Decimal("3.6") * PER_MILLION / (
        Decimal(380) * 3600
    )
