"""`spendgraph costs APP`: an example's samples on each pool of the example config."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest


def test_costs_of_an_example_per_pool_as_json(cli):
    result = cli("costs", "clinical_scribe", "--sim", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    pools = [row["pool"] for row in payload["pools"]]
    assert pools == ["blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"]
    costs = [Decimal(row["cost_usd_per_query"]) for row in payload["pools"]]
    assert costs[0] < costs[1] < costs[2]
    assert all(row["calls_per_query"] == 3 for row in payload["pools"])  # scribe, coder, reviewer


def test_costs_table(cli):
    result = cli("costs", "chat", "--sim")
    assert result.exit_code == 0, result.output
    assert "blackwell-nvfp4" in result.stdout and "USD/query" in result.stdout


def test_costs_of_apps_with_a_second_tier(cli):
    # dungeon's small tier and voice_support's fast tier are served by the sim-small pool;
    # measuring the large pools one at a time must not drop it.
    for app, calls in (("dungeon", 1), ("voice_support", 2)):
        result = cli("costs", app, "--sim", "--json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["pools"]
        assert [row["pool"] for row in rows][:4] == [
            "blackwell-nvfp4",
            "blackwell-fp8",
            "hopper-h200-fp8",
            "hopper-h100-fp8",
        ]
        assert all(row["calls_per_query"] >= calls for row in rows)
        assert all(row["failed_calls"] == 0 for row in rows)
        for row in rows:
            parts = row["input_uncached_tokens_per_query"] + row["cached_tokens_per_query"]
            assert parts == pytest.approx(row["input_tokens_per_query"])


def test_costs_table_names_the_buckets_as_the_spend_panel_does(cli):
    result = cli("costs", "chat", "--sim", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "tokens uncached / cached / out" in result.stdout
    assert "input (cached)" not in result.stdout
