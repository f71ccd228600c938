"""What one query of an app costs on each pool of a config: run its samples per pool.

For every pool that serves the app's tiers, the config is narrowed to that
pool's endpoints (endpoints serving other tiers stay) and each sample input
runs once into the given ledger. On real endpoints these are real, billed
calls. ``spendgraph costs APP`` prints the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.graph.app import App
from spendgraph.graph.run import RunResult, run_graph
from spendgraph.providers.config import SpendgraphConfig
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.usage import CostTotal


@dataclass(frozen=True, slots=True)
class PoolCost:
    """Means per query of the sample runs on one pool."""

    pool: str
    hardware: str
    queries: int
    calls: float
    input_tokens: float
    cached_tokens: float
    output_tokens: float
    cost: CostTotal  # of all the runs; per query is cost / queries

    @property
    def cost_per_query(self) -> Decimal | None:
        amount = self.cost.amount
        return None if amount is None else amount / self.queries


def pools(config: SpendgraphConfig, tiers: Sequence[str]) -> list[str]:
    """The pools (in config order) of endpoints that serve any of ``tiers``."""
    found = [e.pool or e.name for e in config.endpoints if set(e.names()) & set(tiers)]
    return list(dict.fromkeys(found))


def only_pool(config: SpendgraphConfig, pool: str, tiers: Sequence[str]) -> SpendgraphConfig:
    """``config`` where ``tiers`` are served by ``pool`` alone."""
    data = config.model_dump(exclude_none=True)
    data["endpoints"] = [
        e
        for e in data["endpoints"]
        if (e["pool"] or e["name"]) == pool or not ({e["model"], *e["serves"]} & set(tiers))
    ]
    return SpendgraphConfig.model_validate(data, context={"env": {}})


async def measure(
    app: App, config: SpendgraphConfig, inputs: Sequence[str], ledger: Ledger
) -> list[PoolCost]:
    """Run every input once per pool, with the app's default run options."""
    results = []
    for pool in pools(config, app.tiers):
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
    count = len(runs)
    spend = [run.spend for run in runs]
    total = CostTotal()
    for one in spend:
        total = CostTotal(
            total.known + one.cost.known, total.unknown_calls + one.cost.unknown_calls
        )
    return PoolCost(
        pool=pool,
        hardware=hardware,
        queries=count,
        calls=sum(s.calls for s in spend) / count,
        input_tokens=sum(s.input_uncached + s.input_cached for s in spend) / count,
        cached_tokens=sum(s.input_cached for s in spend) / count,
        output_tokens=sum(s.output for s in spend) / count,
        cost=total,
    )
