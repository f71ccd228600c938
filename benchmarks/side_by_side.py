"""Side by side on one simulator replica: raw AsyncOpenAI (default client and aiohttp),
spendgraph's provider layer (plain and streamed, ledger on), and LiteLLM's Router if installed.

The table of issue 17 in one command::

    python benchmarks/side_by_side.py --calls 400 --rounds 5

``--mode stream`` (or ``plain``) measures one mode alone, in half the time.

Rounds interleave every column, so machine noise hits all alike; the simulator
runs in its own process at time scale 0 (it answers at once, so what is left is
the client side). Each cell is a ratio against the raw ``openai.AsyncOpenAI``
with its default HTTP client in the same run, for the same mode: median
per-call latency at concurrency 1 (lower is better) and throughput at
concurrency 64 (higher is better). The layer writes every attempt to a SQLite
ledger; it runs on both of its HTTP clients (``SPENDGRAPH_HTTP_CLIENT``).
Targets (issue 17): the layer >= 1.2x throughput, <= 1.0x latency.

LiteLLM is never a dependency: its column appears only where ``litellm`` is
importable (``--no-litellm`` leaves it out).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import openai
from overhead import (
    CONFIG,
    MAX_TOKENS,
    MESSAGES,
    MODEL,
    REPLICA,
    layer_call,
    raw_call,
    running_simulator,
    timed_calls,
)
from rich.console import Console
from rich.table import Table

from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.transport import TRANSPORT_ENV, aiohttp_installed

Call = Callable[[], Awaitable[None]]
BASELINE = "raw openai (default client)"
MODES = {"both": (False, True), "plain": (False,), "stream": (True,)}  # --mode: stream or not


def litellm_call(router, stream: bool) -> Call:
    """One call through a LiteLLM Router to the same replica."""

    async def call():
        if not stream:
            await router.acompletion(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)
            return
        chunks = await router.acompletion(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
        )
        async for _ in chunks:
            pass

    return call


def litellm_router(base_url: str):
    """A LiteLLM Router with the replica as its one deployment, or None if not installed."""
    try:
        import litellm
    except ImportError:
        return None
    litellm.telemetry = False
    deployment = {
        "model_name": MODEL,
        "litellm_params": {"model": f"openai/{MODEL}", "api_base": base_url, "api_key": "x"},
    }
    return litellm.Router(model_list=[deployment], num_retries=0)


async def open_columns(url: str, ledger_path: Path, with_litellm: bool):
    """Each column's name -> (make_call(stream), its closer)."""
    base = f"{url}/r/{REPLICA}/v1"
    default = openai.AsyncOpenAI(base_url=base, api_key="x")
    columns: dict[str, tuple[Callable[[bool], Call], Callable[[], Awaitable[None]]]] = {
        BASELINE: (lambda stream: raw_call(default, stream), default.close),
    }
    if aiohttp_installed():
        fast = openai.AsyncOpenAI(
            base_url=base, api_key="x", http_client=openai.DefaultAioHttpClient()
        )
        columns["raw openai (aiohttp)"] = (lambda stream: raw_call(fast, stream), fast.close)
    config = parse_config(CONFIG.format(url=url, replica=REPLICA, model=MODEL), source="bench")
    ledger = Ledger.open(f"sqlite:///{ledger_path}")
    transports = ("aiohttp", "httpx") if aiohttp_installed() else ("httpx",)
    for transport in transports:
        layer = ProviderLayer(config, ledger, env={TRANSPORT_ENV: transport})
        columns[f"spendgraph ({transport})"] = (
            lambda stream, layer=layer: layer_call(layer, stream),
            partial(layer.aclose, close_ledger=False),
        )
    router = litellm_router(base) if with_litellm else None
    if router is not None:
        columns["LiteLLM Router"] = (lambda stream: litellm_call(router, stream), _nothing)
    return columns, ledger


async def _nothing() -> None:
    return None


async def measure(
    url: str,
    calls: int,
    rounds: int,
    ledger_path: Path,
    with_litellm: bool,
    modes: tuple[bool, ...],
):
    """{(stream, concurrency): {column: [(latencies, wall), ...]}} for each of ``modes``."""
    columns, ledger = await open_columns(url, ledger_path, with_litellm)
    results: dict[tuple[bool, int], dict[str, list]] = {}
    try:
        for stream in modes:
            for concurrency in (1, 64):
                cell = results[(stream, concurrency)] = {name: [] for name in columns}
                for make, _ in columns.values():  # warm each pool up, untimed
                    await timed_calls(make(stream), min(calls, concurrency * 2), concurrency)
                for _ in range(rounds):
                    for name, (make, _) in columns.items():
                        cell[name].append(await timed_calls(make(stream), calls, concurrency))
    finally:
        for _, close in columns.values():
            await close()
        await ledger.aclose()
    return results


def _latency(runs) -> float:
    return statistics.median(lat for run in runs for lat in run[0])


def _rate(runs, calls: int) -> float:
    return statistics.median(calls / run[1] for run in runs)


def report(results, calls: int, modes: tuple[bool, ...]) -> None:
    table = Table(title="Side by side: ratios vs raw AsyncOpenAI with its default client")
    for column in ("path", "mode", "c=1 latency", "c=64 throughput", "c=1 ms", "c=64 calls/s"):
        table.add_column(column, justify="left" if column in ("path", "mode") else "right")
    names = list(results[(modes[0], 1)])
    for name in names:
        for stream in modes:
            one, many = results[(stream, 1)], results[(stream, 64)]
            latency = _latency(one[name]) / _latency(one[BASELINE])
            rate = _rate(many[name], calls) / _rate(many[BASELINE], calls)
            table.add_row(
                name,
                "stream" if stream else "plain",
                f"{latency:.2f}",
                f"{rate:.2f}",
                f"{_latency(one[name]) * 1000:.2f}",
                f"{_rate(many[name], calls):.0f}",
            )
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per cell")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--mode", choices=MODES, default="both", help="which calls to measure")
    args = parser.parse_args()
    modes = MODES[args.mode]
    with running_simulator(0.0) as url, tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "bench.db"
        results = asyncio.run(
            measure(url, args.calls, args.rounds, ledger, not args.no_litellm, modes)
        )
    report(results, args.calls, modes)


if __name__ == "__main__":
    main()
