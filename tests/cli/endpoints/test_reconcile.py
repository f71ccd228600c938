"""`spendgraph endpoints reconcile`: the ledger's token sums against each server's counters.

The simulator counts in its metrics (in each replica's engine's names), so
traffic through the provider layer between two readings balances to zero drift,
and traffic that bypasses the ledger shows up as drift.
"""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from dialect_fleet import dialect_config_toml, dialect_fleet_toml

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim import parse_fleet
from spendgraph.providers.local.sim.server import run_simulator

# Engines with token counters, and two without any metrics.
WITH_METRICS = ["vllm", "sglang", "trtllm", "dynamo", "nim", "llama-server"]
WITHOUT = ["ollama", "llama-cpp-python"]
SYSTEM = "You answer questions about trains in Portugal, briefly and precisely. " * 6


@pytest.fixture(scope="module")
def fleet_sim():
    fleet = parse_fleet(dialect_fleet_toml([*WITH_METRICS, *WITHOUT]))
    with run_simulator(fleet, time_scale=0.0) as running:
        yield running


@pytest.fixture
def setup(fleet_sim, tmp_path):
    config = tmp_path / "spendgraph.toml"
    ledger = tmp_path / "ledger.db"
    text = dialect_config_toml(fleet_sim.base_url, [*WITH_METRICS, *WITHOUT])
    config.write_text(f'[ledger]\nurl = "sqlite:///{ledger}"\n\n{text}')
    Ledger.open(f"sqlite:///{ledger}").close()  # an existing, empty ledger
    return config, ledger


def _traffic(config_path, ledger_path) -> None:
    """Two streamed and one whole call per endpoint, through the provider layer."""

    async def run() -> None:
        config = parse_config(config_path.read_text(), source=str(config_path), env={})
        with Ledger.open(f"sqlite:///{ledger_path}") as ledger:
            layer = ProviderLayer(config, ledger, env={})
            for endpoint in config.endpoints:
                for turn, stream in enumerate((True, True, False)):
                    messages = [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"turn {turn} on {endpoint.name}"},
                    ]
                    request = ChatRequest(messages=messages, endpoint=endpoint.name, max_tokens=40)
                    if stream:
                        await layer.stream(request).collect()
                    else:
                        await layer.chat(request)
            await layer.aclose(close_ledger=False)

    asyncio.run(run())


def _by_endpoint(payload) -> dict[str, dict]:
    return {", ".join(item["endpoints"]): item for item in payload["endpoints"]}


def test_traffic_through_the_layer_balances(cli, setup):
    config, ledger = setup
    snapshot = config.parent / "before.json"
    saved = cli("endpoints", "reconcile", "--config", str(config), "--save", str(snapshot))
    assert saved.exit_code == 0, saved.output
    _traffic(config, ledger)
    result = cli(
        "endpoints", "reconcile", "--config", str(config), "--from", str(snapshot), "--json"
    )
    assert result.exit_code == 0, result.output
    rows = _by_endpoint(json.loads(result.stdout))
    for name in WITH_METRICS:
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["buckets"]["prompt"]["server"] > 0 and row["buckets"]["generation"]["server"] > 0
        assert {bucket["drift"] for bucket in row["buckets"].values()} == {0}
    # The prefix cache hit, and the counters that count cached tokens agree on it.
    assert rows["vllm"]["buckets"]["cached"]["server"] > 0
    assert "cached" not in rows["llama-server"]["buckets"]  # it has no cached-token counter
    for name in WITHOUT:
        assert rows[name]["status"] == "no metrics" and rows[name]["buckets"] == {}


def test_traffic_that_bypasses_the_ledger_shows_as_drift(cli, setup, fleet_sim):
    config, _ = setup
    snapshot = config.parent / "before.json"
    assert (
        cli("endpoints", "reconcile", "--config", str(config), "--save", str(snapshot)).exit_code
        == 0
    )
    client = openai.OpenAI(base_url=fleet_sim.replica_url("sglang"), api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="sim-large", messages=[{"role": "user", "content": "nobody books this"}]
    )
    client.close()
    result = cli(
        "endpoints", "reconcile", "--config", str(config), "--from", str(snapshot), "--json"
    )
    assert result.exit_code == 1
    sglang = _by_endpoint(json.loads(result.stdout))["sglang"]
    assert sglang["status"] == "drift"
    prompt, generation = sglang["buckets"]["prompt"], sglang["buckets"]["generation"]
    assert (prompt["ledger"], prompt["server"]) == (0, reply.usage.prompt_tokens)
    assert prompt["drift"] == -reply.usage.prompt_tokens and prompt["drift_pct"] == "-100.00"
    assert generation["drift"] == -reply.usage.completion_tokens
    assert "drift from the ledger: sglang" in result.stderr


def test_a_window_with_no_traffic_is_a_table(cli, setup):
    config, _ = setup
    result = cli("endpoints", "reconcile", "--config", str(config), "--window", "0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    vllm = next(line for line in lines if line.strip().startswith("vllm"))
    assert "ok" in vllm and "0 / 0" in vllm
    ollama = next(line for line in lines if line.strip().startswith("ollama"))
    assert "no metrics" in ollama


def test_a_bad_snapshot_file_is_one_clear_error(cli, setup):
    config, _ = setup
    bad = config.parent / "bad.json"
    bad.write_text('{"taken": 1}')
    result = cli("endpoints", "reconcile", "--config", str(config), "--from", str(bad))
    assert result.exit_code == 1
    assert "bad.json" in result.stderr and "not a snapshot" in result.stderr
    assert "Traceback" not in result.output


def test_reconcile_sim_groups_the_endpoints_that_share_a_replica(cli, tmp_path):
    ledger = tmp_path / "sim.db"
    Ledger.open(f"sqlite:///{ledger}").close()
    result = cli(
        "endpoints", "reconcile", "--sim", "--window", "0", "--ledger", str(ledger), "--json"
    )
    assert result.exit_code == 0, result.output
    rows = _by_endpoint(json.loads(result.stdout))
    # Two configured names (two models) on one replica: one server, one comparison.
    assert rows["b200-nvfp4-0, b200-nvfp4-0-small"]["status"] == "ok"
    assert all(row["status"] == "ok" for row in rows.values())
