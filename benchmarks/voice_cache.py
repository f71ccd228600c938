"""voice_support: what prefix affinity does for the prefix cache and time to first token.

Replays a scripted 20-turn support call (``call_script.txt``: a ~1.1k-token
system prompt with the knowledge base, then a growing history) through the
voice_support app -- fast responder + strong verifier -- on a pool of four
identical replicas of the fleet simulator, once per routing mode:

* ``affinity``  -- prefix affinity ON: rendezvous hashing of the call's thread
  and the agent keeps each agent of the call on one replica, turn after turn.
* ``spread``    -- affinity OFF, as a plain load balancer does it: each
  request goes to a replica picked at random (fresh affinity key per request).
* ``cheapest``  -- affinity OFF, the router's own ``cheapest`` policy: with
  identical replicas it always picks the first one, so a single call stays
  put by accident (and every call piles onto that replica).

A routing-only placement check follows (no model call): the replica of each of
ten different calls' first turns, and of every turn of one call, keyed by the
thread (as inside ``run_graph``) and by the conversation's opening (the key of a
call made outside a threaded query).

Every figure is read back from the ledger rows: cache fraction = sum of
``input_cached`` / sum of prompt tokens; TTFT = the responder's ``ttft_ms``
(the caller hears nothing before it). The simulator runs in its own process
with a fresh prefix cache per mode, at ``--time-scale`` (default 1.0: real
time, so TTFTs are real milliseconds; at another scale the TTFTs shown are
divided by it, which also scales up the client's own overhead).

    python benchmarks/voice_cache.py                     # B200 NVFP4, small responder
    python benchmarks/voice_cache.py --pool h100 --draft-model sim-large
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console
from rich.table import Table

from spendgraph.examples.voice_support import APP, SupportOptions, build_graph
from spendgraph.examples.voice_support.agents import responder
from spendgraph.examples.voice_support.knowledge import KnowledgeBase
from spendgraph.examples.voice_support.replay import (
    Pool,
    SpreadingLayer,
    TurnStats,
    cache_fraction,
    caller_turns,
    pool_config,
    replay_call,
    total_spend,
)
from spendgraph.graph import with_checkpointer
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.router import RouteRequest

TARGET_MS = 400.0
MODES = ("affinity", "spread", "cheapest")
POOLS = {
    "b200": Pool(),
    "h100": Pool(
        name="hopper-h100-fp8",
        replicas=tuple(f"h100-fp8-{i}" for i in range(4)),
        hardware="H100",
        precision="fp8",
        large_price=("0.16", "0.04", "0.32"),
        small_price=("0.04", "0.01", "0.08"),
    ),
}
# The shipped fleet has only two H100s: this one has the four the pool needs.
H100_FLEET = """
[models.sim-large]
time_factor = 1.0
price_factor = 1.0
max_model_len = 131072

[models.sim-small]
time_factor = 0.25
price_factor = 0.25
max_model_len = 32768

[[replicas]]
name = "h100-fp8"
count = 4
profile = "H100-FP8"
"""


@contextmanager
def simulator(time_scale: float, seed: int, fleet: Path | None):
    """The fleet simulator in its own process (so its work does not slow the client)."""
    port = _free_port()
    command = [sys.executable, "-m", "spendgraph.cli.main", "serve", "sim", "--port", str(port)]
    command += ["--time-scale", str(time_scale), "--seed", str(seed)]
    command += ["--fleet", str(fleet)] if fleet else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the simulator did not start")


async def warm_up(layer: ProviderLayer, base_url: str, pool: Pool) -> None:
    """One unrelated one-line request per replica and model, outside any query, so
    first-use costs (connections, tokenizer loading) are not counted as a turn's TTFT.
    Its prompt shares no block with the call's, so it warms no cache the call uses."""
    message = [{"role": "user", "content": "warm-up"}]
    async with httpx.AsyncClient(timeout=30) as client:
        for replica in pool.replicas:
            for model in {pool.small_model, pool.large_model}:
                body = {"model": model, "messages": message, "max_tokens": 1}
                await client.post(f"{base_url}/r/{replica}/v1/chat/completions", json=body)
    for tier in ("fast", "large"):
        await layer.chat(ChatRequest(messages=message, model=tier, max_tokens=1))


def open_layer(mode: str, base_url: str, pool: Pool, ledger: Ledger) -> ProviderLayer:
    if mode == "affinity":
        return ProviderLayer(pool_config(base_url, pool), ledger, env={})
    if mode == "spread":
        return SpreadingLayer(pool_config(base_url, pool), ledger, env={})
    return ProviderLayer(pool_config(base_url, pool, prefix_affinity=False), ledger, env={})


async def run_mode(mode: str, args: argparse.Namespace, fleet: Path | None) -> list[TurnStats]:
    """One replay of the call in ``mode``, on a fresh simulator and a fresh ledger."""
    pool = POOLS[args.pool]
    pool = Pool(**{**_fields(pool), "small_model": args.draft_model})
    options = SupportOptions(escalate_after=None)  # a scripted caller is never handed over
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator(args.time_scale, args.seed, fleet) as url,
        Ledger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}") as ledger,
    ):
        layer = open_layer(mode, url, pool, ledger)
        try:
            await warm_up(layer, url, pool)
            graph = with_checkpointer(build_graph(options=options), InMemorySaver())
            turns = caller_turns()[: args.turns]
            return await replay_call(
                graph, layer, turns, thread_id=f"call-{mode}", options=APP.run_options()
            )
        finally:
            await layer.aclose(close_ledger=False)


def _fields(pool: Pool) -> dict:
    return {name: getattr(pool, name) for name in pool.__dataclass_fields__}


def ttft(stat: TurnStats, scale: float) -> float:
    """The responder's TTFT in real-time milliseconds."""
    return (stat.ttft_ms or 0.0) / (scale or 1.0)


def turn_table(runs: dict[str, list[TurnStats]], scale: float) -> Table:
    table = Table(
        title=f"Per turn, the responder's call: replica · cached/prompt tokens · TTFT "
        f"(target {TARGET_MS:.0f} ms, misses in red)"
    )
    table.add_column("turn", justify="right")
    for mode in runs:
        table.add_column(mode, justify="right")
    for index in range(len(next(iter(runs.values())))):
        cells = [str(index + 1)]
        for stats in runs.values():
            stat = stats[index]
            ms = ttft(stat, scale)
            timing = f"[red]{ms:.0f} ms[/red]" if ms > TARGET_MS else f"{ms:.0f} ms"
            cells.append(
                f"{_short(stat.replica)} · {stat.draft_cached}/{stat.draft_prompt} · {timing}"
            )
        table.add_row(*cells)
    return table


def summary_table(runs: dict[str, list[TurnStats]], scale: float) -> Table:
    table = Table(title="Summary, from the ledger rows (TTFT: the responder's)")
    table.add_column("mode")
    table.add_column("replicas", justify="right")
    table.add_column("cached:\nresponder", justify="right")
    table.add_column("cached:\nall calls", justify="right")
    for column in ("TTFT\np50", "TTFT\np95", "TTFT\nmax", f"over\n{TARGET_MS:.0f} ms", "cost"):
        table.add_column(column, justify="right")
    for mode, stats in runs.items():
        times = sorted(ttft(s, scale) for s in stats)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        table.add_row(
            mode,
            str(len({s.replica for s in stats})),
            f"{cache_fraction(stats):.1%}",
            f"{cache_fraction(stats, responder_only=False):.1%}",
            f"{statistics.median(times):.0f}",
            f"{p95:.0f}",
            f"{times[-1]:.0f}",
            f"{sum(t > TARGET_MS for t in times)}/{len(times)}",
            total_spend(stats).describe(),
        )
    return table


def placement(calls: Sequence[Sequence[str]], pool: Pool, ledger: Ledger) -> dict[str, list]:
    """The responder's replica for every turn of each call in ``calls`` (the caller's
    lines), routing only: no model call. Keyed two ways: ``thread`` (one key per
    call, as ``run_graph`` keys a call by its thread, or as an explicit
    ``ChatRequest.affinity_key`` would) and ``opening`` (``ChatRequest.opening_key()``:
    the hash of the system prompt and the first user message, the key of a call
    made outside a threaded query)."""
    agent = responder(KnowledgeBase.load())
    layer = ProviderLayer(pool_config("http://127.0.0.1:9", pool), ledger, env={})
    try:
        placed: dict[str, list] = {"thread": [], "opening": []}
        for number, lines in enumerate(calls, start=1):
            messages = [agent.system_message()]
            turns: dict[str, list[str]] = {"thread": [], "opening": []}
            for line in lines:
                messages.append({"role": "user", "content": line})
                request = agent.request(messages)
                # The keys the provider layer routes by: the call's thread (inside
                # run_graph, with the agent's path; or given as an explicit
                # affinity_key), else the hash of the conversation's opening.
                for how, key in (("thread", f"call-{number}"), ("opening", request.opening_key())):
                    route = RouteRequest(
                        model=request.model, prompt_tokens=lambda: 0, affinity_key=key
                    )
                    turns[how].append(_short(layer.router.plan(route)[0].name))
                messages.append({"role": "assistant", "content": "(the answer)"})
            for how in placed:
                placed[how].append(turns[how])
        return placed
    finally:
        asyncio.run(layer.aclose(close_ledger=False))


def _short(name: str) -> str:
    return "r" + name.removesuffix("-small").rsplit("-", 1)[-1]


def placement_lines(placed: dict[str, list]) -> list[str]:
    lines = []
    for how, calls in placed.items():
        firsts = [turns[0] for turns in calls]
        longest = max(calls, key=len)
        lines.append(
            f"{how} key: first turns of {len(calls)} different calls on "
            f"{len(set(firsts))} of the pool's replicas -- {' '.join(firsts)}; "
            f"the {len(longest)} turns of one call on {len(set(longest))} replica(s) -- "
            f"{' '.join(sorted(set(longest)))}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--pool", choices=sorted(POOLS), default="b200")
    parser.add_argument("--draft-model", choices=["sim-small", "sim-large"], default="sim-small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))
    with tempfile.TemporaryDirectory() as tmp:
        fleet = None
        if args.pool == "h100":
            fleet = Path(tmp) / "h100.toml"
            fleet.write_text(H100_FLEET)
        runs = {mode: asyncio.run(run_mode(mode, args, fleet)) for mode in MODES}
        with Ledger.open(f"sqlite:///{Path(tmp) / 'unused.db'}") as ledger:
            # Ten different calls: the scripted one (every turn), then one-line calls.
            calls = [caller_turns(), *([line] for line in [*APP.samples, *caller_turns()[4::4]])]
            placed = placement(calls, POOLS[args.pool], ledger)
    console.print(
        f"pool {POOLS[args.pool].name} x{len(POOLS[args.pool].replicas)}, responder "
        f"{args.draft_model}, verifier sim-large, {args.turns} turns, time scale {args.time_scale}"
    )
    console.print(turn_table(runs, args.time_scale))
    console.print(summary_table(runs, args.time_scale))
    for line in placement_lines(placed):
        console.print(line)


if __name__ == "__main__":
    main()
