"""What one query of this app costs on each pool of a config: run the samples, print a table.

    python -m spendgraph.examples.clinical_scribe.costs                 # example config, simulator
    python -m spendgraph.examples.clinical_scribe.costs --config spendgraph.toml   # your endpoints

For every pool that serves the app's tiers, the config is narrowed to that
pool's endpoints (endpoints serving other tiers stay) and each sample input
runs once, into a throw-away ledger. With ``--config`` these are real calls
to your endpoints, billed as usual. The same file sits in each example that
reports costs; it only needs the package's ``APP``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from spendgraph.graph import RunResult, run_graph
from spendgraph.graph.app import App
from spendgraph.providers.config import (
    SpendgraphConfig,
    example_config_path,
    load_config,
    parse_config,
)
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger


@dataclass(frozen=True, slots=True)
class PoolCost:
    """Averages per query of the sample runs on one pool."""

    pool: str
    hardware: str
    queries: int
    calls: float
    input_tokens: float
    cached_tokens: float
    output_tokens: float
    cost_usd: Decimal


def pools(config: SpendgraphConfig, tiers: Sequence[str]) -> list[str]:
    """The pools (config order) of endpoints that serve any of ``tiers``."""
    found = [e.pool or e.name for e in config.endpoints if set(e.serves) & set(tiers)]
    return list(dict.fromkeys(found))


def only_pool(config: SpendgraphConfig, pool: str, tiers: Sequence[str]) -> SpendgraphConfig:
    """``config`` where ``tiers`` are served by ``pool`` alone."""
    data = config.model_dump(exclude_none=True)
    data["endpoints"] = [
        e
        for e in data["endpoints"]
        if (e["pool"] or e["name"]) == pool or not set(e["serves"]) & set(tiers)
    ]
    return SpendgraphConfig.model_validate(data, context={"env": {}})


async def measure(app: App, config: SpendgraphConfig, inputs: Sequence[str]) -> list[PoolCost]:
    """Run every input once per pool; one :class:`PoolCost` per pool."""
    results = []
    with tempfile.TemporaryDirectory() as folder, Ledger.open(f"sqlite:///{folder}/c.db") as ledger:
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
            results.append(_average(pool, f"{endpoint.hardware} {endpoint.precision}", runs))
    return results


def _average(pool: str, hardware: str, runs: Sequence[RunResult]) -> PoolCost:
    count = len(runs)
    spend = [run.spend for run in runs]
    return PoolCost(
        pool=pool,
        hardware=hardware.strip(),
        queries=count,
        calls=sum(s.calls for s in spend) / count,
        input_tokens=sum(s.input_uncached + s.input_cached for s in spend) / count,
        cached_tokens=sum(s.input_cached for s in spend) / count,
        output_tokens=sum(s.output for s in spend) / count,
        cost_usd=sum((s.cost.known for s in spend), Decimal(0)) / count,
    )


def table(rows: Sequence[PoolCost]) -> str:
    """A Markdown table of ``rows``."""
    lines = [
        "| pool | hardware | calls/query | input tokens (cached) | output tokens "
        "| USD/query | USD per 1,000 queries |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.pool} | {r.hardware} | {r.calls:.1f} | {r.input_tokens:,.0f} "
            f"({r.cached_tokens:,.0f}) | {r.output_tokens:,.0f} | {r.cost_usd:.6f} "
            f"| {r.cost_usd * 1000:.3f} |"
        )
    return "\n".join(lines)


def main(app: App, argv: Sequence[str] | None = None) -> None:
    """Command line: the example config on an in-process simulator, or ``--config FILE``."""
    parser = argparse.ArgumentParser(description=f"Cost per query of {app.name}, per pool.")
    parser.add_argument("--config", type=Path, help="your spendgraph.toml (real endpoints)")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if args.config:
            config = load_config(args.config)
        else:
            from spendgraph.providers.local.sim.server import run_simulator

            sim = stack.enter_context(run_simulator(time_scale=0.0, seed=0))
            text = example_config_path().read_text()
            config = parse_config(text, env={"SPENDGRAPH_SIM_URL": sim.base_url})
        rows = asyncio.run(measure(app, config, app.samples))
    print(f"{app.name}: mean of {len(app.samples)} sample queries per pool, one run each\n")
    print(table(rows))


if __name__ == "__main__":
    from . import APP

    main(APP)
