"""What the HTTP front door costs, and how it scales with worker processes.

Part 1 runs the same app query two ways, interleaved in rounds on one
simulator at time scale 0 (so the client side is all there is): the graph
in-process (``run_graph`` on a provider layer, what ``spendgraph run`` does)
and the real ``openai`` client against ``spendgraph serve app`` in a process
of its own (one worker, SQLite ledger), both on the example config. It
prints per-query latency at c=1 and throughput at c=64 as ratios to in-process.

Part 2 starts ``spendgraph serve app --workers N`` (N = 1, 2, 4) on a
PostgreSQL ledger (a fresh schema; one simulator started by the CLI) and
measures queries/s with 64 concurrent clients; on this 2-core machine the
simulator, the client and the workers share the cores.

    python benchmarks/front_door.py --queries 200 --rounds 3
    python benchmarks/front_door.py --part 2 --queries 400
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from front_door import cli_env, serve_process
from pg_schema import fresh_schema_url

from spendgraph.cli.apps import load_app
from spendgraph.graph import open_checkpointer, run_graph, with_checkpointer
from spendgraph.providers.config import example_config_path
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.keys import create_key
from spendgraph.providers.local.sim.layer import simulator_config
from spendgraph.providers.local.sim.server import run_simulator

APP = "dungeon"
MESSAGES = [{"role": "user", "content": "look around"}]


async def _timed(make_one, queries: int, concurrency: int) -> tuple[float, float]:
    """(median latency in ms, queries per second) of ``queries`` at ``concurrency``."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            start = time.perf_counter()
            await make_one()
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(queries)))
    return statistics.median(latencies), queries / (time.perf_counter() - start)


async def part_one(queries: int, rounds: int) -> list[tuple[str, str, float, float]]:
    app = load_app(APP)
    options = app.run_options(stream_tokens=False)
    with tempfile.TemporaryDirectory() as folder, run_simulator(time_scale=0.0) as sim:
        # Each path has its own ledger and threads file, both with the same saver kind.
        served_ledger, direct_ledger = (str(Path(folder) / n) for n in ("served.db", "direct.db"))
        layer = ProviderLayer(simulator_config(sim), Ledger.open(direct_ledger))
        # The front door in a process of its own, as users run it, on the same simulator.
        args = [APP, "--config", str(example_config_path()), "--no-keys", "--ledger", served_ledger]
        env = cli_env(SPENDGRAPH_SIM_URL=sim.base_url)
        with serve_process(args, str(Path(folder) / "serve.log"), env=env) as served:
            async with open_checkpointer(direct_ledger) as saver:
                graph = with_checkpointer(app.build(), saver)
                rows = await _interleaved(served.base_url, graph, layer, options, queries, rounds)
            served.terminate()
        await layer.aclose()
    return _ratios(rows)


async def _interleaved(base, graph, layer, options, queries, rounds):
    """The two paths in alternating rounds, at c=1 then c=64: {(path, c): [(ms, q/s)]}."""
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    api = openai.AsyncOpenAI(base_url=base + "/v1", api_key="-", max_retries=0)

    async def direct() -> None:
        await run_graph(graph, layer, "look around", options=options)

    async def served() -> None:
        await api.chat.completions.create(model=APP, messages=MESSAGES)

    for _ in range(rounds):
        for concurrency in (1, 64):
            count = queries // 4 if concurrency == 1 else queries
            for name, make in (("in-process", direct), ("front door", served)):
                timing = await _timed(make, count, concurrency)
                rows.setdefault((name, concurrency), []).append(timing)
    await api.close()
    return rows


def _ratios(rows) -> list[tuple[str, str, float, float]]:
    best = {key: (min(v[0] for v in vals), max(v[1] for v in vals)) for key, vals in rows.items()}
    out = []
    for (name, concurrency), (latency, qps) in sorted(best.items(), key=lambda kv: kv[0][1]):
        base_latency, base_qps = best[("in-process", concurrency)]
        out.append((f"c={concurrency}", name, latency, qps, latency / base_latency, qps / base_qps))
    return out


async def _load(base: str, key: str, queries: int) -> float:
    api = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

    async def one() -> None:
        await api.chat.completions.create(model=APP, messages=MESSAGES)

    await _timed(one, 32, 32)  # warm every worker's connections
    _, qps = await _timed(one, queries, 64)
    await api.close()
    return qps


def part_two(queries: int) -> list[tuple[int, float]]:
    results = []
    for workers in (1, 2, 4):
        with fresh_schema_url("spendgraph_bench") as url, tempfile.TemporaryDirectory() as folder:
            with Ledger.open(url) as ledger:
                key, _ = create_key(ledger.engine, tenant="bench")
            args = [
                APP,
                "--sim",
                "--sim-time-scale",
                "0",
                "--workers",
                str(workers),
                "--ledger",
                url,
            ]
            log = str(Path(folder) / "serve.log")
            with serve_process(args, log, env=cli_env()) as served:
                results.append((workers, asyncio.run(_load(served.base_url, key, queries))))
                served.terminate()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=int, choices=(1, 2), default=None)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    if args.part in (None, 1):
        table = Table(title=f"front door vs in-process, {APP}, best of {args.rounds} rounds")
        for column in ("load", "path", "median ms", "queries/s", "latency x", "throughput x"):
            table.add_column(column, justify="right")
        for load, name, latency, qps, lat_x, qps_x in asyncio.run(
            part_one(args.queries, args.rounds)
        ):
            table.add_row(
                load, name, f"{latency:.1f}", f"{qps:.0f}", f"{lat_x:.2f}", f"{qps_x:.2f}"
            )
        console.print(table)
    if args.part in (None, 2):
        table = Table(title=f"serve app {APP} --workers N, PostgreSQL ledger, 64 clients")
        for column in ("workers", "queries/s", "vs 1 worker"):
            table.add_column(column, justify="right")
        results = part_two(args.queries)
        for workers, qps in results:
            table.add_row(str(workers), f"{qps:.0f}", f"{qps / results[0][1]:.2f}")
        console.print(table)


if __name__ == "__main__":
    main()
