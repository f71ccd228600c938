"""What a CLI run talks to: a provider layer on the configured endpoints, the
fleet simulator (``--sim``) or the embedded model, plus the ledger and the
thread checkpointer. One :class:`Session` owns them and closes them in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from spendgraph.cli.options import choose_ledger, ledger_origin
from spendgraph.graph import open_checkpointer
from spendgraph.graph.app import App
from spendgraph.providers.config import (
    SpendgraphConfig,
    config_from_mapping,
    load_config,
)
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import LeaseOptions, Ledger


@dataclass(frozen=True, slots=True)
class Target:
    """Which endpoints to use: ``--config``, ``--sim``, or (neither) the embedded model."""

    config: Path | None = None
    sim: bool = False
    sim_time_scale: float = 1.0
    ledger: str | None = None
    # With ``sim``: a simulator already running there (a front door's workers
    # share the one their parent started) instead of starting one.
    sim_url: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A running provider layer, its ledger URL and its thread checkpointer."""

    layer: ProviderLayer
    ledger_url: str
    checkpointer: BaseCheckpointSaver
    endpoints_label: str

    def checkpointer_for(self, app: App) -> BaseCheckpointSaver | None:
        """The thread checkpointer, unless the app keeps no threads."""
        return self.checkpointer if app.keep_threads else None


def _sim_config(stack: ExitStack, target: Target, env: Mapping[str, str]) -> SpendgraphConfig:
    from spendgraph.providers.local.sim.layer import simulator_config
    from spendgraph.providers.local.sim.server import run_simulator

    if target.sim_url:
        return simulator_config(target.sim_url, env=env)
    sim = stack.enter_context(run_simulator(time_scale=target.sim_time_scale))
    return simulator_config(sim, env=env)


# The embedded model's price: what this CPU costs per hour (default 0: a known
# zero), and the throughput that turns $/hour into $/token when it is not 0.
LOCAL_PRICE_ENV = {
    "gpu_hour_usd": "SPENDGRAPH_LOCAL_USD_PER_HOUR",
    "input_tokens_per_s": "SPENDGRAPH_LOCAL_INPUT_TOKENS_PER_S",
    "output_tokens_per_s": "SPENDGRAPH_LOCAL_OUTPUT_TOKENS_PER_S",
}


def _local_price(env: Mapping[str, str]) -> dict[str, object]:
    price: dict[str, object] = {}
    for key, name in LOCAL_PRICE_ENV.items():
        if env.get(name):
            try:
                price[key] = Decimal(env[name]) if key == "gpu_hour_usd" else float(env[name])
            except (InvalidOperation, ValueError):
                raise ConfigError(f"expected a number, got {env[name]!r}", source=name) from None
    return price


def _embedded_config(stack: ExitStack, env: Mapping[str, str]) -> SpendgraphConfig:
    from spendgraph.providers.local.embedded import (
        EmbeddedServer,
        embedded_endpoint_config,
        model_path,
    )

    model_path()  # raises EmbeddedModelUnavailable, with how to install, if it is missing
    price = _local_price(env)
    names = ", ".join(LOCAL_PRICE_ENV.values())
    config_from_mapping(  # a bad price fails before the server starts
        {"endpoints": [embedded_endpoint_config("http://127.0.0.1:1/v1", **price)]},
        source=f"embedded model ({names})",
    )
    server = stack.enter_context(EmbeddedServer())
    return config_from_mapping(
        {"endpoints": [server.endpoint_config(**price)]}, source=f"embedded model ({names})"
    )


def resolve_config(
    stack: ExitStack, target: Target, env: Mapping[str, str] = os.environ
) -> tuple[SpendgraphConfig, str]:
    """The config to run with, and a short label of where it came from.

    ``--sim`` wins; then ``--config``/``SPENDGRAPH_CONFIG``/./spendgraph.toml;
    with none of those, the embedded model is started (stopped with ``stack``).
    """
    if target.sim:
        return _sim_config(stack, target, env), "fleet simulator (example config)"
    config = load_config(target.config, env=env)
    if config is not None:
        return config, config.source
    return _embedded_config(stack, env), "embedded SmolLM2-135M (CPU, llama.cpp)"


async def open_session(
    sync_stack: ExitStack,
    async_stack: AsyncExitStack,
    target: Target,
    env: Mapping[str, str] = os.environ,
) -> Session:
    """Start everything a run needs; both stacks close it again (async first)."""
    config, label = resolve_config(sync_stack, target, env)
    choice = choose_ledger(target.ledger, config.ledger.url, config.source, env)
    url = choice.url
    with ledger_origin(choice.origin):
        ledger = Ledger.open(url, env=env, lease=LeaseOptions(config.ledger.lease_s))
    layer = ProviderLayer(config, ledger, env=env)
    async_stack.push_async_callback(layer.aclose)
    checkpointer = await async_stack.enter_async_context(
        open_checkpointer(url, env=env, threads=config.threads)
    )
    return Session(layer=layer, ledger_url=url, checkpointer=checkpointer, endpoints_label=label)


def require_tiers(config: SpendgraphConfig, tiers: tuple[str, ...], app: str) -> None:
    """Fail before the first call when the config serves none of an app's tiers."""
    missing = [tier for tier in tiers if not config.endpoints_for(tier)]
    if missing:
        raise ConfigError(
            f"app {app!r} asks for tier(s) {', '.join(missing)} but no endpoint serves them; "
            "add them to an endpoint's `serves` list",
            source=config.source,
        )
