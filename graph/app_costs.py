"""What one query of an app costs on each pool of a config: run its samples per pool.

For every pool that serves the app's tiers, the config is narrowed to that
pool's endpoints (endpoints serving other tiers stay) and each sample input
runs once into the given ledger. On real endpoints these are real, billed
calls. ``spendgraph costs APP`` prints the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.graph.app import App
from spendgraph.graph.run import RunResult, run_graph
from spendgraph.providers.config import SpendgraphConfig
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.spend import Spend


@dataclass(frozen=True, slots=True)
class PoolCost:
    """The sample runs on one pool: their summed spend, and its means per query."""

    pool: str
    hardware: str
    queries: int
    spend: Spend  # of all the runs

    @property
    def calls(self) -> float:
        return self.spend.calls / self.queries

    @property
    def input_tokens(self) -> float:
        """All input tokens, cached ones included."""
        return self.spend.input_tokens / self.queries

    @property
    def uncached_tokens(self) -> float:
        return self.spend.input_uncached / self.queries

    @property
    def cached_tokens(self) -> float:
        return self.spend.input_cached / self.queries

    @property
    def output_tokens(self) -> float:
        return self.spend.output / self.queries

    @property
    def cost_per_query(self) -> Decimal | None:
        cost = self.spend.cost
        return None if cost is None else cost / self.queries


def pools(config: SpendgraphConfig, tiers: Sequence[str]) -> list[str]:
    """The pools (in config order) of endpoints that serve any of ``tiers``."""
    found = [e.pool or e.name for e in config.endpoints if set(e.names()) & set(tiers)]
    return list(dict.fromkeys(found))


def only_pool(config: SpendgraphConfig, pool: str, tiers: Sequence[str]) -> SpendgraphConfig:
    """``config`` where the tiers of ``tiers`` that ``pool`` serves are served by it alone.

    The app's other tiers keep their endpoints (voice_support's ``fast`` tier stays on
    the small model while ``large`` is measured on each pool): an endpoint outside the
    pool only loses the names the pool takes over, and is dropped when none is left.
    """
    data = config.model_dump(exclude_none=True)
    wanted = set(tiers)

    def in_pool(endpoint: dict) -> bool:
        return (endpoint.get("pool") or endpoint["name"]) == pool

    def names(endpoint: dict) -> set[str]:
        return {endpoint["model"], *endpoint.get("serves", ())}

    taken = wanted & {n for e in data["endpoints"] if in_pool(e) for n in names(e)}
    kept = []
    for endpoint in data["endpoints"]:
        served = names(endpoint) & wanted
        if in_pool(endpoint) or not served & taken:
            kept.append(endpoint)
        elif served - taken:  # still needed for another of the app's tiers
            serves = [name for name in endpoint.get("serves", ()) if name not in taken]
            kept.append({**endpoint, "serves": serves})
    data["endpoints"] = kept
    return SpendgraphConfig.model_validate(data, context={"env": {}})


async def measure(
    app: App,
    config: SpendgraphConfig,
    inputs: Sequence[str],
    ledger: Ledger,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[PoolCost]:
    """Run every input once per pool, with the app's default run options;
    ``progress(pool, index, count)`` is told before each pool starts."""
    results = []
    measured = pools(config, app.tiers)
    for index, pool in enumerate(measured, start=1):
        if progress is not None:
            progress(pool, index, len(measured))
        layer = ProviderLayer(only_pool(config, pool, app.tiers), ledger, env={})
        try:
            runs = [
                await run_graph(app.build(), layer, text, options=app.run_options())
                for text in inputs
            ]
        finally:
            await layer.aclose(close_ledger=False)
        endpoint = next(e for e in layer.config.endpoints if (e.pool or e.name) == pool)
        results.append(_mean(pool, f"{endpoint.hardware} {endpoint.precision}".strip(), runs))
    return results


def _mean(pool: str, hardware: str, runs: Sequence[RunResult]) -> PoolCost:
    return PoolCost(pool, hardware, len(runs), sum((run.spend for run in runs), Spend()))
