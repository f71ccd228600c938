"""Fixtures for agent tests: the fleet simulator and a provider layer on a tmp SQLite ledger.

tests/graph/conftest.py has the same fixtures (candidates for tests/conftest.py).
"""

from __future__ import annotations

import pytest

from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.server import run_simulator


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
