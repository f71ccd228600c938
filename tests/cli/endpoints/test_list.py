"""`spendgraph endpoints list`: the configured endpoints, as the config says."""

from __future__ import annotations

import json
from decimal import Decimal

from spendgraph.providers.config import example_config_path

EXAMPLE = str(example_config_path())


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


def test_list_the_example_config(cli):
    result = cli("endpoints", "list", "--config", EXAMPLE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    nvfp4 = _row(out, "b200-nvfp4-0")
    for cell in ("blackwell-nvfp4", "B200 nvfp4 (sim)", "sim-large", "0.04", "0.01", "0.08", "256"):
        assert cell in nvfp4
    hopper = _row(out, "h100-fp8-1")
    for cell in ("hopper-h100-fp8", "H100 fp8 (sim)", "0.16", "0.04", "0.32", "64"):
        assert cell in hopper
    # Derived from $5.40/GPU-hour and measured throughput: 0.01 / 0.0025 / 0.05.
    small = _row(out, "b200-nvfp4-0-small")
    assert "sim-small" in small and "0.0025" in small and "fast" in small
    assert "USD per 1M tokens" in out


def test_list_json(cli):
    result = cli("endpoints", "list", "--config", EXAMPLE, "--json")
    payload = json.loads(result.stdout)
    assert payload["config"] == EXAMPLE
    endpoints = {endpoint["name"]: endpoint for endpoint in payload["endpoints"]}
    assert len(endpoints) == 12
    h200 = endpoints["h200-fp8-0"]
    assert (h200["pool"], h200["hardware"], h200["precision"], h200["engine"]) == (
        "hopper-h200-fp8",
        "H200",
        "fp8",
        "sim",
    )
    assert h200["serves"] == ["large", "default"] and h200["max_concurrency"] == 96
    assert h200["price_per_million"]["input_uncached"] == "0.16"
    assert h200["price_per_million"]["output"] == "0.32"
    small = endpoints["b200-nvfp4-1-small"]["price_per_million"]
    assert (Decimal(small["input_uncached"]), Decimal(small["input_cached"])) == (
        Decimal("0.01"),
        Decimal("0.0025"),
    )
    assert h200["base_url"].endswith("/r/h200-fp8-0/v1")


def test_unknown_price_is_shown_as_unknown(cli, tmp_path):
    config = tmp_path / "one.toml"
    config.write_text(
        '[[endpoints]]\nname = "mystery"\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n'
    )
    table = cli("endpoints", "list", "--config", str(config))
    assert _row(table.stdout, "mystery").count("unknown") == 3  # three rates, none of them $0
    as_json = json.loads(cli("endpoints", "list", "--config", str(config), "--json").stdout)
    price = as_json["endpoints"][0]["price_per_million"]
    assert price["input_uncached"] is None and price["output"] is None
    assert as_json["endpoints"][0]["max_concurrency"] is None


def test_no_config_points_to_the_way_out(cli):
    for command in ("list", "check"):
        result = cli("endpoints", command)
        assert result.exit_code == 1
        message = " ".join(result.stderr.split())
        assert "no config found: pass --config FILE, set SPENDGRAPH_CONFIG" in message
        assert "spendgraph serve sim" in message and "example_config.toml" in message


def test_bad_config_is_one_clear_error(cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[endpoints]]\nname = "x"\nbase_url = "ftp://nope"\nmodel = "m"\n')
    result = cli("endpoints", "list", "--config", str(config))
    assert result.exit_code == 1
    assert "bad.toml" in result.stderr and "base_url" in result.stderr
    assert "Traceback" not in result.output


def test_list_with_sim_shows_the_example_config(cli):
    result = cli("endpoints", "list", "--sim", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"] == str(example_config_path())
    assert len(payload["endpoints"]) == 12


def test_sim_and_config_together_are_refused(cli):
    result = cli("endpoints", "list", "--sim", "--config", "x.toml")
    assert result.exit_code == 1
    assert "pass --sim or --config, not both" in result.stderr


def test_a_missing_config_file_says_how_to_create_one(cli):
    for command in ("list", "check", "calibrate"):
        result = cli("endpoints", command, "--config", "spendgraph.toml")
        assert result.exit_code == 1, command
        message = " ".join(result.stderr.split())
        assert "spendgraph.toml: no such config file" in message
        assert f"cp {example_config_path()} spendgraph.toml" in message
        assert "Traceback" not in result.output
