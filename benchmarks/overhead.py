"""Provider-layer overhead: raw AsyncOpenAI vs spendgraph's ProviderLayer, same endpoint.

Starts the fleet simulator in a separate process, then runs the same chat
calls through (a) the raw ``openai.AsyncOpenAI`` client and (b) the provider
layer with routing, accounting and a SQLite ledger (each call returns only
after its row is committed). Rounds alternate between the two so machine
noise hits both alike. Time scale 0 is the worst case: the server answers at
once, so the client side is all there is; 0.1 gives calls of tens of
milliseconds, still far shorter than real model calls.

    python benchmarks/overhead.py --calls 400 --rounds 5 --time-scales 0,0.1

Reports median per-call latency at concurrency 1 and throughput at
concurrency 64, with ratios. Targets: overhead <= 10% at concurrency 1, and
>= 90% of the raw client's throughput at concurrency 64.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
from rich.console import Console
from rich.table import Table

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

REPLICA = "b200-nvfp4-0"
MODEL = "sim-large"
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant for a benchmark."},
    {"role": "user", "content": "Summarise why per-query cost accounting matters, briefly."},
]
MAX_TOKENS = 32


def start_simulator(port: int, time_scale: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "spendgraph.cli.main", "serve", "sim", "--port", str(port)]
    command += ["--time-scale", str(time_scale)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("simulator did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def timed_calls(call, total: int, concurrency: int) -> tuple[list[float], float]:
    """Run ``total`` calls with ``concurrency`` workers; per-call latencies and wall time."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker():
        for _ in remaining:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def raw_call(client: openai.AsyncOpenAI, stream: bool):
    async def call():
        if not stream:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS
            )
            return
        chunks = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in chunks:
            pass

    return call


def layer_call(layer: ProviderLayer, stream: bool):
    request = ChatRequest(messages=MESSAGES, model=MODEL, max_tokens=MAX_TOKENS)

    async def call():
        if not stream:
            await layer.chat(request)
            return
        async with layer.stream(request) as chunks:
            async for _ in chunks:
                pass

    return call


CONFIG = """
[[endpoints]]
name = "bench"
base_url = "{url}/r/{replica}/v1"
model = "{model}"
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = {{ input = 0.02, cached_input = 0.005, output = 0.08 }}
"""


async def measure(url: str, calls: int, rounds: int, ledger_path: Path) -> list[tuple]:
    # The SDK's default retries, as a plain client would run (the layer retries too).
    client = openai.AsyncOpenAI(base_url=f"{url}/r/{REPLICA}/v1", api_key="x")
    config = parse_config(CONFIG.format(url=url, replica=REPLICA, model=MODEL), source="bench")
    layer = ProviderLayer(config, Ledger.open(f"sqlite:///{ledger_path}"))
    rows = []
    for stream in (False, True):
        for concurrency in (1, 64):
            raw_runs, layer_runs = [], []
            for _ in range(rounds):
                raw_runs.append(await timed_calls(raw_call(client, stream), calls, concurrency))
                layer_runs.append(await timed_calls(layer_call(layer, stream), calls, concurrency))
            rows.append((stream, concurrency, raw_runs, layer_runs))
    await client.close()
    await layer.aclose()
    return rows


def report(results: dict[float, list[tuple]], calls: int) -> None:
    """One row per (time scale, plain/stream, concurrency): medians and their ratios."""
    table = Table(title="Provider layer vs raw AsyncOpenAI on the same simulator endpoint")
    columns = (
        "time scale",
        "mode",
        "conc.",
        "raw median ms",
        "layer median ms",
        "latency ratio",
        "raw calls/s",
        "layer calls/s",
        "throughput ratio",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for time_scale, rows in results.items():
        for stream, concurrency, raw_runs, layer_runs in rows:
            raw_median = statistics.median(lat for run in raw_runs for lat in run[0]) * 1000
            layer_median = statistics.median(lat for run in layer_runs for lat in run[0]) * 1000
            raw_rate = statistics.median(calls / run[1] for run in raw_runs)
            layer_rate = statistics.median(calls / run[1] for run in layer_runs)
            table.add_row(
                f"{time_scale:g}",
                "stream" if stream else "plain",
                str(concurrency),
                f"{raw_median:.2f}",
                f"{layer_median:.2f}",
                f"{layer_median / raw_median:.3f}",
                f"{raw_rate:.0f}",
                f"{layer_rate:.0f}",
                f"{layer_rate / raw_rate:.3f}",
            )
    Console(width=150).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per cell")
    parser.add_argument("--time-scales", default="0,0.1", help="simulator time scales, a,b,...")
    args = parser.parse_args()
    results = {}
    for time_scale in (float(value) for value in args.time_scales.split(",")):
        port = free_port()
        simulator = start_simulator(port, time_scale)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                url, ledger = f"http://127.0.0.1:{port}", Path(tmp) / "bench.db"
                results[time_scale] = asyncio.run(measure(url, args.calls, args.rounds, ledger))
        finally:
            simulator.terminate()
            simulator.wait(10)
    report(results, args.calls)


if __name__ == "__main__":
    main()
