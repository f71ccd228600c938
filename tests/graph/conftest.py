"""Fixtures for graph tests: the fleet simulator and a provider layer on a tmp SQLite ledger.

tests/agents/conftest.py has the same fixtures (candidates for tests/conftest.py).
"""

from __future__ import annotations

import pytest

from spendgraph.agents import Agent
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.server import run_simulator
from spendgraph.providers.usage import CostTotal


@pytest.fixture(scope="module")
def sim():
    """The shipped fleet at time scale 0, shared by a test module."""
    with run_simulator(time_scale=0.0, seed=0) as running:
        yield running


# A small fleet: every endpoint costs an openai client (and its SSL context) to set up.
FLEET_TOML = """
[[endpoints]]
name = "b200-nvfp4-0"
base_url = "{sim}/r/b200-nvfp4-0/v1"
model = "sim-large"
serves = ["large", "default"]
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = { input = 0.04, cached_input = 0.01, output = 0.08 }

[[endpoints]]
name = "h100-fp8-0"
base_url = "{sim}/r/h100-fp8-0/v1"
model = "sim-large"
serves = ["large", "default"]
hardware = "H100"
precision = "fp8"
engine = "sim"
price = { input = 0.16, cached_input = 0.04, output = 0.32 }

[[endpoints]]
name = "b200-nvfp4-0-small"
base_url = "{sim}/r/b200-nvfp4-0/v1"
model = "sim-small"
serves = ["fast", "small"]
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = { input = 0.01, cached_input = 0.0025, output = 0.05 }

[tiers.fast]
policy = "cheapest_within_slo"
latency_target_ms = 400
fallbacks = ["large"]
"""


@pytest.fixture
def fleet_toml():
    """``fleet_toml(sim_url)``: the TOML text of the test fleet on a simulator."""
    return lambda sim_url: FLEET_TOML.replace("{sim}", sim_url)


@pytest.fixture
def fleet_config(fleet_toml):
    """``fleet_config(sim_url)``: three simulator endpoints -- two for the large/default
    tiers, one for the fast tier."""
    return lambda sim_url: parse_config(fleet_toml(sim_url), source="test.toml", env={})


@pytest.fixture
def config(sim, fleet_config):
    return fleet_config(sim.base_url)


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


@pytest.fixture
async def layer(config, ledger):
    opened = ProviderLayer(config, ledger, env={})
    yield opened
    await opened.aclose(close_ledger=False)


@pytest.fixture
def ledger_rows(ledger):
    """``ledger_rows(result)``: the query's call rows, after checking the ledger adds up.

    Checks: every row belongs to the query; the Query's totals (derived by the
    ledger) equal the sum of its rows; the run's spend (read from the provider
    layer's accounting) equals them too; the Query row's status is the run's.
    """

    def check(result):
        ledger.flush()
        rows = ledger.calls_for_query(result.query_id)
        summary = ledger.query_summary(result.query_id)
        assert {row.query_id for row in rows} <= {result.query_id}
        assert summary.calls == len(rows) == result.spend.calls
        assert summary.cost == CostTotal.of(row.cost_usd for row in rows) == result.spend.cost
        for bucket in ("input_uncached", "input_cached", "output", "reasoning"):
            total = sum(getattr(row.usage, bucket) for row in rows)
            assert getattr(summary.tokens, bucket) == total == getattr(result.spend, bucket)
        assert summary.query.status == result.status
        assert summary.query.thread_id == result.thread_id
        return rows

    return check


def make_agents(prefix: str, count: int, **options):
    """``count`` plain agents named ``<prefix>0``.. with short answers."""
    return [
        Agent(
            f"{prefix}{i}",
            f"Specialist {i}: answer your part briefly.",
            **{"max_tokens": 24, **options},
        )
        for i in range(count)
    ]


@pytest.fixture
def agents():
    """``agents(prefix, count, **options)``: plain agents with short answers."""
    return make_agents
