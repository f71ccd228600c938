"""What budgets cost per call: reserve + settle alone, and whole calls through the layer.

Part 1 times reserve/settle pairs in one process, as ratios to the
per-query ``Budget`` (the only mechanism before scoped budgets): the same
per-query limit through ``QueryBudget``, and a query limit plus a user day
and an app month limit held in the ``InMemoryBudgetStore``.

Part 2 runs whole calls through the provider layer on the simulator (time
scale 0: the client side is all there is; the example config has no
tokenizer endpoints, so no counting round trip) without a budget, streamed
without a budget, with a query budget (the plain call then goes out as a
stream so it can be cut) and with query + user budgets, as throughput
ratios to the plain unbudgeted calls in the same run.

    python benchmarks/budget_overhead.py --pairs 20000 --calls 300
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spendgraph.providers import BudgetLimit, ChatRequest, InMemoryBudgetStore, simulated_layer
from spendgraph.providers.budget import Budget, BudgetLimits
from spendgraph.providers.budgets import QueryBudget, ScopeIds

USD = Decimal("0.00001")
MESSAGES = [{"role": "user", "content": "Summarise why per-query budgets matter, briefly."}]


async def _pairs_per_s(reserve_settle, pairs: int) -> float:
    start = time.perf_counter()
    for _ in range(pairs):
        await reserve_settle()
    return pairs / (time.perf_counter() - start)


async def part_one(pairs: int) -> list[tuple[str, float]]:
    """reserve/settle pairs per second for each budget shape."""
    huge = BudgetLimits(usd=Decimal(10**9), tokens=10**12)
    plain = Budget(huge, query_id="q")

    async def old() -> None:
        held = plain.reserve(usd=USD, tokens=100)
        plain.settle(held, usd=USD, tokens=100)

    ids = ScopeIds(query="q", user="ada", app="bench", thread="t")
    query_only = QueryBudget(huge, (), ids, InMemoryBudgetStore())
    scoped_limits = (
        BudgetLimit("user", "day", usd=Decimal(10**9)),
        BudgetLimit("app", "month", usd=Decimal(10**9)),
    )
    scoped = QueryBudget(huge, scoped_limits, ids, InMemoryBudgetStore())

    def through(budget: QueryBudget):
        counter = iter(range(10**12))

        async def pair() -> None:
            hold = await budget.reserve(f"a{next(counter)}", usd=USD, tokens=100)
            await budget.settle(hold, usd=USD, tokens=100)

        return pair

    rows = [("Budget (per query, before)", await _pairs_per_s(old, pairs))]
    rows.append(("QueryBudget, query limit only", await _pairs_per_s(through(query_only), pairs)))
    rows.append(("QueryBudget + user day + app month", await _pairs_per_s(through(scoped), pairs)))
    return rows


async def part_two(calls: int) -> list[tuple[str, float]]:
    """Calls per second through the layer (concurrency 1) without and with budgets."""
    request = ChatRequest(messages=MESSAGES, max_tokens=32)
    cases = {
        "no budget": {},
        "no budget, layer.stream": {"_stream": True},
        "query budget": {"budget_usd": "1000"},
        "query + user day budget": {
            "budget_usd": "1000",
            "user": "ada",
            "budgets": [BudgetLimit("user", "day", usd=Decimal(1000))],
        },
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as folder:
        async with simulated_layer(ledger=Path(folder) / "bench.db") as layer:
            for _round in range(3):  # interleaved, so noise hits every case alike
                for name, query_args in cases.items():
                    start = time.perf_counter()
                    args = dict(query_args)
                    streamed = args.pop("_stream", False)
                    for _ in range(calls // 3):
                        async with layer.query(app="bench", **args):
                            if streamed:
                                await layer.stream(request).collect()
                            else:
                                await layer.chat(request)
                    rates[name].append((calls // 3) / (time.perf_counter() - start))
    return [(name, sorted(values)[1]) for name, values in rates.items()]


def _table(title: str, unit: str, rows: list[tuple[str, float]]) -> Table:
    table = Table(title=title)
    for column in ("case", unit, "ratio to the first row", "us per unit"):
        table.add_column(column, justify="right")
    base = rows[0][1]
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / base:.3f}", f"{1e6 / rate:,.1f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000, help="reserve/settle pairs per case")
    parser.add_argument("--calls", type=int, default=300, help="layer calls per case")
    args = parser.parse_args()
    console = Console()
    pairs = asyncio.run(part_one(args.pairs))
    console.print(_table("reserve + settle", "pairs/s", pairs))
    calls = asyncio.run(part_two(args.calls))
    console.print(_table("whole calls, concurrency 1", "calls/s", calls))


if __name__ == "__main__":
    main()
