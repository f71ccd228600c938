"""Fixtures for provider-layer tests: a simulator, a SQLite ledger, a layer built from TOML."""

from __future__ import annotations

import pytest

from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.transport import TRANSPORT_ENV


@pytest.fixture
def http_transport() -> str | None:
    """The layers' HTTP client (``SPENDGRAPH_HTTP_CLIENT``); None: the default. A module
    that must pass on both transports overrides it with ``params=TRANSPORTS``."""
    return None


@pytest.fixture
async def make_layer(sim, ledger, http_transport):
    """Build a ProviderLayer from a TOML snippet; ``{sim}`` expands to the simulator's URL."""
    layers: list[ProviderLayer] = []

    def build(
        toml: str, *, env: dict[str, str] | None = None, sim_url: str | None = None
    ) -> ProviderLayer:
        text = toml.replace("{sim}", sim_url or sim.base_url)
        config = parse_config(text, source="test.toml", env=env or {})
        chosen = {TRANSPORT_ENV: http_transport} if http_transport else {}
        layer = ProviderLayer(config, ledger, env={**chosen, **(env or {})})
        layers.append(layer)
        return layer

    yield build
    for layer in layers:
        await layer.aclose(close_ledger=False)


@pytest.fixture
def endpoint_toml():
    """Makes one ``[[endpoints]]`` TOML entry on a simulator replica."""
    return _endpoint_toml


def _endpoint_toml(name: str, replica: str, *, model: str = "sim-large", extra: str = "") -> str:
    return f"""
    [[endpoints]]
    name = "{name}"
    base_url = "{{sim}}/r/{replica}/v1"
    model = "{model}"
    serves = ["default"]
    hardware = "B200"
    precision = "nvfp4"
    engine = "sim"
    price = {{ input = 0.04, cached_input = 0.01, output = 0.16 }}
    {extra}
    """
