"""voice_support: time from the caller's input to the first HTTP request reaching a server.

Every turn before the first byte goes out is silence on the phone: the query
row, the graph, the agent, routing, the budget hold. A recording proxy in its
own process sits between the client and the fleet simulator (time scale 0);
armed before each sample, it notes the ``time.monotonic_ns()`` (one clock for
every process on the machine) of the first request bytes it receives, and
that request's line. Each sample is a caller's first turn on a new thread,
through the voice_support graph on a provider layer with its SQLite ledger.
The baseline is a bare ``openai.AsyncOpenAI`` streamed call through the same
proxy: its time is the SDK's own request building and sending.

    python benchmarks/voice_first_request.py --samples 200

Target (issue 17): the app's median under 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import openai
from langgraph.checkpoint.memory import InMemorySaver
from overhead import MAX_TOKENS, MESSAGES, free_port, running_simulator
from rich.console import Console
from rich.table import Table

from spendgraph.examples.voice_support import APP, SupportOptions, build_graph
from spendgraph.examples.voice_support.replay import Pool, caller_turns, pool_config
from spendgraph.graph import run_graph, with_checkpointer
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

REPLICA = "b200-nvfp4-0"


# -- the recording proxy (its own process) ----------------------------------------


async def _pipe(reader, writer, on_data=None) -> None:
    try:
        while data := await reader.read(65536):
            if on_data is not None:
                on_data(data)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve_proxy(listen: int, target: int) -> None:
    """Forward loopback connections to ``target``; report the first bytes after each arm."""
    armed = False

    def seen(data: bytes) -> None:
        nonlocal armed
        if armed:
            armed = False
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            sys.stdout.write(f"{time.monotonic_ns()} {line}\n")
            sys.stdout.flush()

    def command() -> None:
        nonlocal armed
        if sys.stdin.readline().strip() == "arm":
            armed = True
            sys.stdout.write("armed\n")
            sys.stdout.flush()

    async def connected(reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(_pipe(reader, up_writer, seen), _pipe(up_reader, writer))

    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), command)
    server = await asyncio.start_server(connected, "127.0.0.1", listen)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


class Proxy:
    """The proxy process, driven over its stdin/stdout."""

    def __init__(self, target: int):
        self.port = free_port()
        command = [sys.executable, __file__, "--proxy", str(self.port), str(target)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        if self._process.stdout.readline().strip() != "ready":
            raise SystemExit("the recording proxy did not start")

    def arm(self) -> None:
        self._process.stdin.write("arm\n")
        self._process.stdin.flush()
        assert self._process.stdout.readline().strip() == "armed"

    def first_request(self) -> tuple[int, str]:
        """When (monotonic ns) the first request after the arm arrived, and its line."""
        stamp, line = self._process.stdout.readline().strip().split(" ", 1)
        return int(stamp), line

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)


# -- measuring ----------------------------------------------------------------------


async def sample(proxy: Proxy, run: Callable[[], Awaitable[None]]) -> tuple[float, str]:
    """ms from calling ``run`` to the proxy receiving its first request; that request."""
    proxy.arm()
    started = time.monotonic_ns()
    await run()
    stamp, line = proxy.first_request()
    return (stamp - started) / 1e6, line


async def measure(proxy: Proxy, samples: int, ledger_path: Path) -> tuple[dict[str, list], str]:
    """Samples of each path, and the layer's HTTP client."""
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    raw = openai.AsyncOpenAI(base_url=f"{proxy_url}/r/{REPLICA}/v1", api_key="x")
    config = pool_config(proxy_url, Pool(replicas=(REPLICA,)))
    ledger = Ledger.open(f"sqlite:///{ledger_path}")
    layer = ProviderLayer(config, ledger, env={})
    graph = with_checkpointer(build_graph(options=SupportOptions()), InMemorySaver())
    turns, options = caller_turns(), APP.run_options()
    numbers = iter(range(10**9))

    async def bare() -> None:
        chunks = await raw.chat.completions.create(
            model="sim-small", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
        )
        async for _ in chunks:
            pass

    async def app() -> None:
        number = next(numbers)
        text = turns[number % len(turns)]
        await run_graph(graph, layer, text, thread_id=f"call-{number}", options=options)

    results: dict[str, list] = {"bare openai call": [], "voice_support turn": []}
    try:
        for _ in range(3):  # warm-up: connections, tokenizers, imports
            await bare()
            await app()
        for _ in range(samples):  # interleaved, so noise hits both alike
            results["bare openai call"].append(await sample(proxy, bare))
            results["voice_support turn"].append(await sample(proxy, app))
    finally:
        await raw.close()
        await layer.aclose()
    return results, layer.transport


def report(results: dict[str, list], transport: str) -> None:
    table = Table(title=f"Input to first HTTP request (layer transport: {transport})")
    for column in ("path", "median ms", "p95 ms", "ratio (median)", "first request"):
        table.add_column(column, justify="left" if column in ("path", "first request") else "right")
    base = statistics.median(ms for ms, _ in results["bare openai call"])
    for name, runs in results.items():
        times = sorted(ms for ms, _ in runs)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        lines = sorted({line for _, line in runs})
        median = statistics.median(times)
        table.add_row(name, f"{median:.2f}", f"{p95:.2f}", f"{median / base:.2f}", ", ".join(lines))
    Console(width=180).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per path")
    parser.add_argument("--proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        asyncio.run(_serve_proxy(*args.proxy))
        return
    with running_simulator(0.0) as sim_url, tempfile.TemporaryDirectory() as tmp:
        proxy = Proxy(int(sim_url.rsplit(":", 1)[1]))
        try:
            results, transport = asyncio.run(measure(proxy, args.samples, Path(tmp) / "v.db"))
        finally:
            proxy.close()
    report(results, transport)


if __name__ == "__main__":
    main()
