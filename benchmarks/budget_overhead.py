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

Part 3 (with PostgreSQL reachable at ``--postgres``, default
``$SPENDGRAPH_TEST_POSTGRES_URL`` or the local server's ``test`` database)
times the same reserve/settle pair against a tenant month and a user day
held in the shared ``PostgresBudgetStore`` (in a throw-away schema), as a
ratio to the in-memory store, with the SQL statements each pair sends.

    python benchmarks/budget_overhead.py --pairs 20000 --calls 300 --pg-pairs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy import event

from spendgraph.providers import BudgetLimit, ChatRequest, InMemoryBudgetStore, simulated_layer
from spendgraph.providers.budget import Budget, BudgetLimits
from spendgraph.providers.budgets import PostgresBudgetStore, QueryBudget, ScopeIds
from spendgraph.providers.ledger import Ledger

USD = Decimal("0.00001")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
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


class _StatementCount:
    """Counts the SQL statements an engine sends (each one round trip, in autocommit)."""

    def __init__(self) -> None:
        self.statements = 0

    def count(self, *_args: object) -> None:
        self.statements += 1


@contextmanager
def _scratch_schema(server: str) -> Iterator[str]:
    """A ledger URL on a schema of its own, dropped afterwards."""
    schema = f"spendgraph_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def part_three(server: str, pairs: int) -> list[tuple[str, float, float]]:
    """reserve/settle pairs per second (and statements per pair): in memory vs PostgreSQL."""
    huge = BudgetLimits(usd=Decimal(10**9), tokens=10**12)
    ids = ScopeIds(query="q", user="ada", app="bench", tenant="acme")
    limits = (
        BudgetLimit("tenant", "month", usd=Decimal(10**9)),
        BudgetLimit("user", "day", usd=Decimal(10**9)),
    )
    counter = iter(range(10**12))

    async def rate(budget: QueryBudget, count: int) -> float:
        async def pair() -> None:
            hold = await budget.reserve(f"a{next(counter)}", usd=USD, tokens=100)
            await budget.settle(hold, usd=USD, tokens=100)

        for _ in range(min(50, count)):  # warm: accounts created, statements prepared
            await pair()
        return await _pairs_per_s(pair, count)

    memory = await rate(QueryBudget(huge, limits, ids, InMemoryBudgetStore()), pairs * 20)
    rows = [("in memory (one process)", memory, 0.0)]
    with _scratch_schema(server) as url, Ledger.open(url) as ledger:
        store = PostgresBudgetStore.for_engine(ledger.engine)
        sent = _StatementCount()
        event.listen(store.engine, "before_cursor_execute", sent.count)
        shared = QueryBudget(huge, limits, ids, store)
        await rate(shared, 50)
        sent.statements = 0
        per_s = await rate(shared, pairs)
        rows.append(("PostgresBudgetStore (shared)", per_s, sent.statements / (pairs + 50)))
        await store.aclose()
    return rows


def _shared_table(rows: list[tuple[str, float, float]]) -> Table:
    table = Table(title="reserve + settle, tenant month + user day: shared store vs in memory")
    for column in ("store", "pairs/s", "ratio to in memory", "us per pair", "SQL per pair"):
        table.add_column(column, justify="right")
    base = rows[0][1]
    for name, rate, statements in rows:
        shown = f"{statements:.2f}" if statements else "-"
        table.add_row(name, f"{rate:,.0f}", f"{base / rate:.1f}x", f"{1e6 / rate:,.1f}", shown)
    return table


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
    parser.add_argument("--pg-pairs", type=int, default=1000, help="pairs on PostgreSQL")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SPENDGRAPH_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL server for part 3 ('' skips it)",
    )
    args = parser.parse_args()
    console = Console()
    pairs = asyncio.run(part_one(args.pairs))
    console.print(_table("reserve + settle", "pairs/s", pairs))
    calls = asyncio.run(part_two(args.calls))
    console.print(_table("whole calls, concurrency 1", "calls/s", calls))
    if args.postgres:
        shared = asyncio.run(part_three(args.postgres, args.pg_pairs))
        console.print(_shared_table(shared))


if __name__ == "__main__":
    main()
