"""`spendgraph costs APP`: an example's samples on each pool of the example config."""

from __future__ import annotations

import json
from decimal import Decimal


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
