"""Server-measured prompt counts over a growing thread: remembered vs asked every turn.

    python benchmarks/measured_counts.py --turns 40 --time-scale 0

Under a budget every call first asks the endpoint's tokenizer endpoint how
long its prompt is, and a thread re-sends its whole history each turn. The
endpoint remembers measured counts (whole prompts for vLLM's ``/tokenize``;
each message's ChatML segment for llama-cpp-python's ``/extras/tokenize/count``),
so turn N costs one round trip (vLLM: the prompt is new, its recount is free) or
two (llama-cpp-python: the new messages) instead of one per message. Each turn
is counted twice, as a budgeted call whose answer carried no usage is. The
baseline is a fresh endpoint per count (no memory), in the same run, against the
same simulated servers. The table shows
round trips and wall time for the whole thread and their ratio to the baseline.
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
from dialect_fleet import dialect_fleet_toml

from spendgraph.providers.config import EndpointConfig
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.local.sim import parse_fleet
from spendgraph.providers.local.sim.server import run_simulator

DIALECTS = ("vllm", "llama-cpp-python")


def _thread(turns: int) -> list[list[dict[str, str]]]:
    messages = [{"role": "system", "content": "You plan rail trips across Europe. " * 20}]
    prompts = []
    for turn in range(turns):
        messages = [*messages, {"role": "user", "content": f"Question {turn}: and then where?"}]
        prompts.append(messages)
        messages = [*messages, {"role": "assistant", "content": f"Answer {turn}: " + "go on " * 30}]
    return prompts


async def _run(url: str, dialect: str, prompts, *, remember: bool) -> tuple[int, float]:
    requests = 0

    async def hook(_: httpx.Request) -> None:
        nonlocal requests
        requests += 1

    config = EndpointConfig(name=dialect, base_url=url, model="sim-large", engine=dialect)
    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        endpoint = Endpoint(config, env={}, http_client=client)
        started = time.perf_counter()
        for messages in prompts:
            # Reserved before the call, counted again after an answer without usage.
            for _ in range(2):
                if not remember:
                    endpoint = Endpoint(config, env={}, http_client=client)
                await endpoint.count_prompt(messages, None)
        return requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.0)
    args = parser.parse_args()
    prompts = _thread(args.turns)
    table = Table(title=f"Measured prompt counts over a {args.turns}-turn thread")
    for column in ("engine", "round trips", "baseline", "ratio", "ms", "baseline ms", "ratio"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    fleet = parse_fleet(dialect_fleet_toml(DIALECTS))
    with run_simulator(fleet, time_scale=args.time_scale) as sim:
        for dialect in DIALECTS:
            url = sim.replica_url(dialect)
            trips, seconds = asyncio.run(_run(url, dialect, prompts, remember=True))
            base_trips, base_seconds = asyncio.run(_run(url, dialect, prompts, remember=False))
            table.add_row(
                dialect,
                str(trips),
                str(base_trips),
                f"{trips / base_trips:.2f}",
                f"{seconds * 1000:.1f}",
                f"{base_seconds * 1000:.1f}",
                f"{seconds / base_seconds:.2f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
