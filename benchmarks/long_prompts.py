"""Long prompts: raw AsyncOpenAI vs the provider layer when the layer must count the prompt.

The layer counts a prompt's tokens only when something needs the number: the
router ranking priced endpoints by cost, or a query budget reserving the
call's bound. With a long conversation that counting is the layer's cost per
call, so this runs the same calls as benchmarks/overhead.py (simulator in its
own process, one replica, time scale 0: the client side is all there is) with
prompts of ``--tokens`` tokens, in three cases:

- ``no counting``: one endpoint, no budget (the control: nothing is counted);
- ``2 priced endpoints``: two endpoints on the replica, priced differently, so
  the router ranks them by the call's cost;
- ``query budget``: one endpoint, each call in a query with a USD budget (the
  layer then streams the call, so it can be cut at the budget);
- ``query, no budget``: the same query without a budget (the control for the
  query's own cost: its row opened and closed).

Raw calls run twice per round: plain, and streamed (``raw streamed``), the
like-for-like baseline of ``query budget``, whose calls the layer streams.

Each call re-sends one long conversation (a system prompt, a document of N
tokens in the first user turn, an answer) with a new question at the end, as a
thread does turn after turn. Rounds alternate raw and layer calls. The table
gives median latency at concurrency 1 and ``--concurrency`` (default 8), the
ratio to raw and the milliseconds the layer adds. The simulator counts every
prompt too (the server's cost), which both columns pay. ``--uncached`` counts
every prompt afresh in the layer's process (its count cache stores nothing:
how the layer counted before :mod:`spendgraph.providers.count_cache`), for a
before/after in one command -- and the cost of a conversation's first turn,
which no cache helps. The router counts nothing when the prompt's byte bounds
rank the endpoints alike (``2 priced endpoints``); a budget still counts (from
the count cache when the conversation's history was counted before).

    python benchmarks/long_prompts.py --tokens 10000,100000 --calls 40 --rounds 3
    python benchmarks/long_prompts.py --tokens 10000,100000 --calls 40 --rounds 3 --uncached
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path

import openai
from overhead import free_port, start_simulator, timed_calls
from rich.console import Console
from rich.table import Table

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.count_cache import process_counts
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.tokens import encoding

REPLICA = "b200-nvfp4-0"
MODEL = "sim-large"
MAX_TOKENS = 16
BUDGET_USD = "1000000"
WORDS = (
    "ledger", "replica", "budget", "token", "prefill", "decode", "tenant", "query", "agent",
    "the", "of", "and", "cost", "GPU", "cache", "throughput", "latency", "price", "hour",
    "2026", "B200", "H100", "router", "thread", "graph", "café", "naïve", "Zürich", "—",
)  # fmt: skip

ENDPOINT = """
[[endpoints]]
name = "{name}"
base_url = "{url}/r/{replica}/v1"
model = "{model}"
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = {{ input = {price}, cached_input = 0.005, output = 0.08 }}
"""
# case -> (endpoint prices, query arguments; None: no query)
CASES = {
    "no counting": ((0.02,), None),
    "2 priced endpoints": ((0.02, 0.03), None),
    "query budget": ((0.02,), {"budget_usd": BUDGET_USD}),
    "query, no budget": ((0.02,), {}),
}
STREAMED_CASES = ("query budget",)


def document(tokens: int, seed: int = 0) -> str:
    """Text of about ``tokens`` o200k tokens (counted with tiktoken directly, not spendgraph's
    counting, so nothing is warm before the timed calls)."""
    rng, enc = random.Random(seed), encoding("o200k_base")
    words: list[str] = []
    while True:
        words += [rng.choice(WORDS) for _ in range(max(64, (tokens - len(words)) // 2))]
        text = " ".join(words)
        if len(enc.encode_ordinary(text)) >= tokens:
            return text


def conversation(tokens: int) -> list[dict]:
    """The history every call of one size re-sends; each call appends its own question."""
    return [
        {"role": "system", "content": "You answer questions about the attached report."},
        {"role": "user", "content": "The report:\n\n" + document(tokens)},
        {"role": "assistant", "content": "I have read the report. What would you like to know?"},
    ]


class Questions:
    """A new last message per call, so no whole prompt repeats (a thread's next turn)."""

    def __init__(self, history: list[dict]):
        self.history, self.asked = history, 0

    def next(self) -> list[dict]:
        self.asked += 1
        question = f"Question {self.asked}: what does the report say about cost?"
        return [*self.history, {"role": "user", "content": question}]


def raw_call(client: openai.AsyncOpenAI, questions: Questions, *, stream: bool = False):
    async def call():
        answer = await client.chat.completions.create(
            model=MODEL, messages=questions.next(), max_tokens=MAX_TOKENS, stream=stream
        )
        if stream:
            async for _ in answer:
                pass

    return call


def layer_call(layer: ProviderLayer, questions: Questions, query: dict | None):
    def scope() -> AbstractAsyncContextManager:
        return nullcontext() if query is None else layer.query(app="bench", **query)

    async def call():
        request = ChatRequest(messages=questions.next(), model=MODEL, max_tokens=MAX_TOKENS)
        async with scope():
            await layer.chat(request)

    return call


def case_config(url: str, prices: tuple[float, ...]):
    text = "".join(
        ENDPOINT.format(name=f"bench{i}", url=url, replica=REPLICA, model=MODEL, price=price)
        for i, price in enumerate(prices)
    )
    return parse_config(text, source="bench")


async def measure(url: str, sizes: list[int], args, ledger_path: Path) -> list[tuple]:
    client = openai.AsyncOpenAI(base_url=f"{url}/r/{REPLICA}/v1", api_key="x")
    ledger = Ledger.open(f"sqlite:///{ledger_path}")
    layers = {
        name: ProviderLayer(case_config(url, prices), ledger, env={})
        for name, (prices, _) in CASES.items()
    }
    rows = []
    for tokens in sizes:
        history = conversation(tokens)
        for concurrency in (1, args.concurrency):
            calls = args.calls if concurrency == 1 else args.calls * 2
            raw_runs, streamed_runs, layer_runs = [], [], {name: [] for name in layers}
            for _ in range(args.rounds):
                raw = raw_call(client, Questions(history))
                raw_runs.append(await timed_calls(raw, calls, concurrency))
                streamed = raw_call(client, Questions(history), stream=True)
                streamed_runs.append(await timed_calls(streamed, calls, concurrency))
                for name, layer in layers.items():
                    call = layer_call(layer, Questions(history), CASES[name][1])
                    layer_runs[name].append(await timed_calls(call, calls, concurrency))
            rows.append((tokens, concurrency, raw_runs, streamed_runs, layer_runs))
    await client.close()
    for layer in layers.values():
        await layer.aclose(close_ledger=False)
    ledger.close()
    return rows


def _median_ms(runs) -> float:
    return statistics.median(lat for run in runs for lat in run[0]) * 1000


def report(rows: list[tuple], uncached: bool) -> None:
    how = "counted afresh every call (--uncached)" if uncached else "count cache on"
    table = Table(title=f"Long prompts: provider layer vs raw AsyncOpenAI, one replica; {how}")
    columns = ("prompt tokens", "conc.", "case", "raw median ms", "layer median ms", "ratio")
    for column in (*columns, "layer adds ms", "raw streamed ms", "ratio to streamed"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for tokens, concurrency, raw_runs, streamed_runs, layer_runs in rows:
        raw, streamed = _median_ms(raw_runs), _median_ms(streamed_runs)
        for name in CASES:
            layer = _median_ms(layer_runs[name])
            # A budget's calls are streamed (so they can be cut at the hold): the
            # streamed raw call is the like-for-like baseline for them.
            like = name in STREAMED_CASES
            table.add_row(
                f"{tokens:,}",
                str(concurrency),
                name,
                f"{raw:.2f}",
                f"{layer:.2f}",
                f"{layer / raw:.3f}",
                f"{layer - raw:+.2f}",
                f"{streamed:.2f}" if like else "",
                f"{layer / streamed:.3f}" if like else "",
            )
        table.add_section()
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="10000,100000", help="prompt sizes, a,b,...")
    parser.add_argument("--calls", type=int, default=40, help="calls per run at concurrency 1")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell")
    parser.add_argument("--concurrency", type=int, default=8, help="the concurrent case")
    parser.add_argument("--uncached", action="store_true", help="no count cache in the layer")
    args = parser.parse_args()
    if args.uncached:
        process_counts().max_entries = 0  # this process only: the simulator keeps its own
    sizes = [int(value) for value in args.tokens.split(",")]
    port = free_port()
    simulator = start_simulator(port, 0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"http://127.0.0.1:{port}"
            rows = asyncio.run(measure(url, sizes, args, Path(tmp) / "bench.db"))
    finally:
        simulator.terminate()
        simulator.wait(10)
    report(rows, args.uncached)


if __name__ == "__main__":
    main()
