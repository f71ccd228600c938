"""`spendgraph endpoints calibrate`: throughput on the simulator, a price to paste, ledger rows."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal

from spendgraph.providers.config import PriceConfig, example_config_path

EXAMPLE = str(example_config_path())
SMALL = ("--requests", "4", "--concurrency", "2", "--prompt-tokens", "300", "--output-tokens", "32")


def _calibrate(cli, sim, *args: str):
    env = {"SPENDGRAPH_SIM_URL": sim.base_url}
    return cli(
        "endpoints", "calibrate", *args, "--config", EXAMPLE, "--ledger", "cal.db", *SMALL, env=env
    )


def test_json_measures_each_named_endpoint_and_prices_it(cli, sim):
    result = _calibrate(cli, sim, "b200-nvfp4-0", "h100-fp8-0", "--gpu-hour-usd", "2.5", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["plan"] == {
        "requests": 4,
        "concurrency": 2,
        "prompt_tokens": 300,
        "output_tokens": 32,
    }
    names = [endpoint["name"] for endpoint in payload["endpoints"]]
    assert names == ["b200-nvfp4-0", "h100-fp8-0"]
    for endpoint in payload["endpoints"]:
        assert endpoint["gpu_hour_usd"] == "2.5"
        assert endpoint["prefill"]["failed"] == endpoint["decode"]["failed"] == 0
        assert endpoint["prefill"]["tokens_per_s"] > 0 and endpoint["decode"]["tokens_per_s"] > 0
        rates = PriceConfig(
            gpu_hour_usd=Decimal("2.5"),
            input_tokens_per_s=endpoint["prefill"]["tokens_per_s"],
            output_tokens_per_s=endpoint["decode"]["tokens_per_s"],
        ).to_price()
        # Compared as numbers: the JSON drops trailing zeros (…29330 is written …2933).
        assert Decimal(endpoint["price_per_million"]["output"]) == rates.output
        assert endpoint["configured_price_per_million"]["output"] is not None
    # Every request is in the ledger, under one calibration query per endpoint.
    audit = cli("audit", "queries", "--ledger", "cal.db", "--app", "spendgraph-calibrate", "--json")
    queries = json.loads(audit.stdout)["queries"]
    assert sorted(q["id"] for q in queries) == sorted(e["query_id"] for e in payload["endpoints"])
    assert all(q["calls"] == 8 and q["status"] == "ok" for q in queries)


def test_the_table_prints_a_price_line_that_parses_as_config(cli, sim):
    result = _calibrate(cli, sim, "b200-fp8-0", "--gpu-hour-usd", "3")
    assert result.exit_code == 0, result.output
    assert "prefill tok/s" in result.stdout and "b200-fp8-0" in result.stdout
    line = next(row for row in result.stdout.splitlines() if row.startswith("price = {"))
    price = PriceConfig.model_validate(tomllib.loads(line)["price"])
    assert price.gpu_hour_usd == 3 and price.input_tokens_per_s and price.output_tokens_per_s


def test_without_a_gpu_rate_the_price_is_unknown_and_the_output_says_how(cli, sim):
    result = _calibrate(cli, sim, "h200-fp8-0")
    assert result.exit_code == 0, result.output
    assert "not set" in result.stdout and "unknown" in result.stdout
    assert "--gpu-hour-usd" in " ".join(result.stdout.split())
    as_json = _calibrate(cli, sim, "h200-fp8-0", "--json")
    [endpoint] = json.loads(as_json.stdout)["endpoints"]
    assert endpoint["gpu_hour_usd"] is None
    assert endpoint["price_per_million"]["output"] is None


def test_an_unknown_endpoint_is_an_error_naming_the_config(cli, sim):
    result = _calibrate(cli, sim, "b200-nvfp4-9")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "no endpoint named 'b200-nvfp4-9'" in message and "example_config.toml" in message
    assert "Traceback" not in result.output


def test_calibrate_with_sim_needs_no_config(cli):
    result = cli(
        "endpoints", "calibrate", "b200-nvfp4-0", "--sim", "--ledger", "cal.db",
        "--gpu-hour-usd", "5.40", "--json", *SMALL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (measured,) = json.loads(result.stdout)["endpoints"]
    assert measured["name"] == "b200-nvfp4-0"
    assert measured["prefill"]["tokens_per_s"] and measured["decode"]["tokens_per_s"]


async def test_measuring_reports_each_endpoint_before_it_starts(sim, ledger):
    from spendgraph.cli.endpoints.calibrate import measure_all, selected
    from spendgraph.providers.calibrate import CalibrationPlan
    from spendgraph.providers.config import parse_config
    from spendgraph.providers.gateway import ProviderLayer

    text = example_config_path().read_text()
    config = parse_config(text, source=EXAMPLE, env={"SPENDGRAPH_SIM_URL": sim.base_url})
    chosen = selected(config, ["b200-nvfp4-0", "h100-fp8-0"])
    layer = ProviderLayer(config, ledger, env={})
    told: list[tuple[str, int, int]] = []
    try:
        plan = CalibrationPlan(2, 2, 100, 8)
        measured = await measure_all(layer, chosen, plan, None, lambda *a: told.append(a))
    finally:
        await layer.aclose(close_ledger=False)
    assert told == [("b200-nvfp4-0", 1, 2), ("h100-fp8-0", 2, 2)]
    assert [item.endpoint.name for item in measured] == ["b200-nvfp4-0", "h100-fp8-0"]
