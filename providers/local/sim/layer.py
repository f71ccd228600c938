"""A provider layer on the fleet simulator in one call: for tests, notebooks and ``--sim``.

>>> from spendgraph.providers import ChatRequest, simulated_layer
>>> async def main():
...     async with simulated_layer() as layer:
...         result = await layer.chat(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
...         return result.content

The simulator runs in a background thread of this process (its own event
loop, so it behaves like a separate server) with the shipped fleet, and the
layer uses the shipped example config (``providers/example_config.toml``:
pools of B200/H200/H100 replicas, tiers ``default``/``fast``/``strong``/...)
pointed at it, exactly what ``spendgraph run --sim`` uses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from spendgraph.providers.config import SpendgraphConfig, example_config_path, parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.fleet import Fleet
from spendgraph.providers.local.sim.server import RunningSimulator, run_simulator_async

# The example config's base URLs start with ${SPENDGRAPH_SIM_URL:-...}.
SIM_URL_ENV = "SPENDGRAPH_SIM_URL"


def simulator_config(
    sim: RunningSimulator | str, *, env: Mapping[str, str] = os.environ
) -> SpendgraphConfig:
    """The shipped example config, its endpoints pointed at the running simulator ``sim``
    (or at the simulator already serving on base URL ``sim``)."""
    path = example_config_path()
    url = sim if isinstance(sim, str) else sim.base_url
    return parse_config(path.read_text(), source=str(path), env={**env, SIM_URL_ENV: url})


@asynccontextmanager
async def simulated_layer(
    *,
    ledger: str | Path | None = None,
    time_scale: float = 0.0,
    seed: int = 0,
    fleet: Fleet | str | Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> AsyncIterator[ProviderLayer]:
    """Start the simulator and yield a :class:`ProviderLayer` on it for the ``async with`` block.

    ``ledger`` is a ledger URL or SQLite path; ``None`` keeps the ledger in a
    temporary file that is deleted afterwards (read it inside the block, e.g.
    ``layer.ledger.list_queries()``). ``time_scale=0`` answers at once; 1 is
    the simulated hardware's real speed. ``fleet`` replaces the shipped fleet
    (a fleet file path or a :class:`Fleet`); the example config's endpoint
    names must then still exist in it.
    """
    async with AsyncExitStack() as stack:
        if ledger is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="spendgraph-sim-"))
            ledger = Path(folder) / "ledger.db"
        sim = await stack.enter_async_context(
            run_simulator_async(fleet, time_scale=time_scale, seed=seed)
        )
        opened = Ledger.open(str(ledger), env=env)
        layer = ProviderLayer(simulator_config(sim, env=env), opened, env=env)
        stack.push_async_callback(layer.aclose)
        yield layer
