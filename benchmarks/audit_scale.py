"""Audits at scale: ``audit summary --by ...`` and ``audit queries`` over 1M (or 10M) call rows.

    python benchmarks/audit_scale.py --calls 1000000 --scan
    python benchmarks/audit_scale.py --calls 10000000 --postgres postgresql://postgres@127.0.0.1/test

Rows are generated straight into a fresh ledger (a new SQLite file; a new
PostgreSQL schema, dropped afterwards) with bulk inserts, not through the
writer: ten calls per query, eight agents, six endpoints, thirty days, 1% of
calls unpriced, 3% failed (``--keep FILE`` keeps the SQLite ledger to measure
again without regenerating it). The audit rollup is emptied, then (``--scan``)
each audit is timed over the rows alone, then the rollup is sealed (timed: a
one-time cost, like an index build) and refreshed again with nothing new
(what each audit pays), and each audit is timed again. Each audit runs through
the ledger's read API (what the CLI runs, minus start-up: see cli_startup.py)
``--repeat`` times; the table shows the best time and its ratio to the
baseline, a plain scan ``SELECT sum(output) FROM call`` of the same database.
Targets: under 1 s at 1M calls, under 5 s at 10M. Not a test.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

# A fresh PostgreSQL schema, dropped afterwards: the same as the throughput benchmark's.
from ledger_throughput import fresh_postgres
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select

from spendgraph.cli.audit import summary
from spendgraph.providers.ledger import (
    GroupBy,
    Ledger,
    LedgerFilter,
    QuerySort,
    resolve_ledger_url,
)
from spendgraph.providers.ledger.sqltypes import femto_of
from spendgraph.providers.ledger.tables import (
    CALL,
    QUERY,
    ROLLUP_HOUR,
    ROLLUP_SEALED,
    ROLLUP_SPAN,
)
from spendgraph.serve.audit.timeline import timeline

AGENTS = [f"supervisor/specialist-{i}" for i in range(7)] + ["supervisor"]
ENDPOINTS = [
    ("b200-nvfp4-0", "big-moe", "B200", "nvfp4", "trtllm", ("0.05", "0.0125", "0.10")),
    ("b200-nvfp4-1", "big-moe", "B200", "nvfp4", "trtllm", ("0.05", "0.0125", "0.10")),
    ("gb200-fp8-0", "big-moe", "GB200", "fp8", "dynamo", ("0.10", "0.025", "0.20")),
    ("h100-fp8-0", "big-moe", "H100", "fp8", "vllm", ("0.20", "0.05", "0.40")),
    ("h200-bf16-0", "small", "H200", "bf16", "sglang", ("0.0731", "0.018275", "0.1462")),
    ("hosted-x", "other", "other", "", "hosted", None),
]
APPS = ("research_chat", "dungeon", "voice_support", "clinical_scribe")
CALLS_PER_QUERY = 10
T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 30
MILLION = Decimal(1_000_000)


def _cost(tokens: tuple[int, int, int], prices: tuple[str, ...] | None) -> Decimal | None:
    if prices is None:
        return None
    return sum((n * Decimal(p) for n, p in zip(tokens, prices, strict=True)), Decimal(0)) / MILLION


def generate(calls: int, seed: int = 7) -> Iterator[tuple[list[dict], list[dict]]]:
    """(query rows, call rows) in chunks of 10,000 queries, as column dicts."""
    rng = random.Random(seed)
    queries = max(1, calls // CALLS_PER_QUERY)
    span = DAYS * 86_400 / queries
    for first in range(0, queries, 10_000):
        query_rows, call_rows = [], []
        for q in range(first, min(queries, first + 10_000)):
            started = T0 + timedelta(seconds=q * span)
            qid = f"q{q:012d}"
            query_rows.append(
                {
                    "id": qid,
                    "app": APPS[q % 4],
                    "thread_id": f"t{q % 5000}",
                    "user": f"user-{q % 500}",
                    "tenant": f"tenant-{q % 10}",
                    "started_at": started,
                    "finished_at": started + timedelta(seconds=3),
                    "status": "ok",
                    "store_text": False,
                }
            )
            for c in range(CALLS_PER_QUERY):
                call_rows.append(_call(rng, qid, q, c, started + timedelta(milliseconds=90 * c)))
        yield query_rows, call_rows


def _call(rng: random.Random, qid: str, q: int, c: int, started: datetime) -> dict:
    name, model, hardware, precision, engine, prices = ENDPOINTS[rng.randrange(len(ENDPOINTS))]
    status = "ok" if rng.random() > 0.03 else rng.choice(("error", "cancelled", "budget_denied"))
    tokens = (rng.randrange(0, 4000), rng.randrange(0, 2000), rng.randrange(1, 800))
    if status == "budget_denied":
        tokens, prices = (0, 0, 0), (prices or ("0", "0", "0"))
    elif rng.random() < 0.01:
        prices = None  # an unpriced call
    cost = _cost(tokens, prices)
    return {
        "id": f"{qid}-{c}",
        "query_id": qid,
        "request_id": f"{qid}-r{c}",
        "attempt": 1,
        "agent_path": AGENTS[c % len(AGENTS)],
        "node": "n",
        "endpoint": name,
        "model": model,
        "hardware": hardware,
        "precision": precision,
        "engine": engine,
        "stream": True,
        "started_at": started,
        "ttft_ms": 40.0 + c,
        "latency_ms": 800.0,
        "input_uncached": tokens[0],
        "input_cached": tokens[1],
        "output": tokens[2],
        "reasoning": 0,
        "usage_source": "reported",
        "status": status,
        "price_version": "bench",
        "cost_usd": cost,
        "cost_femto": femto_of(cost),
        "folded": 1,
    }


def fill(url: str, calls: int) -> float:
    """Create the ledger at ``url`` and bulk-insert ``calls`` rows; returns seconds taken."""
    Ledger.open(url).close()
    engine = create_engine(resolve_ledger_url(url, {}))
    started = time.perf_counter()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
        for query_rows, call_rows in generate(calls):
            conn.execute(QUERY.insert(), query_rows)
            conn.execute(CALL.insert(), call_rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def plan(ledger: Ledger) -> list[tuple[str, Callable[[], object]]]:
    def scan() -> object:
        with ledger.engine.connect() as conn:
            return conn.execute(select(func.sum(CALL.c.output))).scalar()

    steps: list[tuple[str, Callable[[], object]]] = [
        ("SELECT sum(output) FROM call (baseline)", scan)
    ]
    steps += [
        (f"audit summary --by {group}", lambda g=group: _summary(ledger, g)) for group in GroupBy
    ]
    steps += [
        ("audit summary --by agent --app dungeon", lambda: _filtered(ledger)),
        ("audit serve: spend page (4 timelines)", lambda: _spend_page(ledger)),
        ("audit queries", lambda: ledger.list_queries(limit=51)),
        ("audit queries --sort cost", lambda: ledger.list_queries(sort=QuerySort.COST, limit=51)),
    ]
    return steps


def _summary(ledger: Ledger, group: GroupBy, filters: LedgerFilter | None = None) -> object:
    """The reads `audit summary` makes: the groups, and the total's distinct queries."""
    groups = ledger.summary_by(group, filters)
    if group in (GroupBy.APP, GroupBy.USER, GroupBy.TENANT):
        return groups, None
    return groups, ledger.queries_with_calls(filters)


def _spend_page(ledger: Ledger) -> object:
    """What the audit app's spend page reads: a timeline per dimension it charts (the
    summaries it also fetches are the rows above)."""

    def render(filters: LedgerFilter, by: GroupBy, groups: list, queries: int) -> dict:
        overall = summary.overall_of(by, groups, queries)
        return summary.summary_json(ledger.url, filters, by, groups, overall)

    dimensions = (GroupBy.APP, GroupBy.AGENT, GroupBy.ENDPOINT, GroupBy.HARDWARE)
    return [timeline(render, ledger, LedgerFilter(), by) for by in dimensions]


def _filtered(ledger: Ledger) -> object:
    return _summary(ledger, GroupBy.AGENT, LedgerFilter(app="dungeon"))


def measure(url: str, repeat: int, scan: bool) -> list[tuple[str, float]]:
    """Each read's best time with the rollup sealed (after the seal's own time); with
    ``scan``, first each read over the rows alone (the rollup emptied)."""
    results = []
    with Ledger.open(url, create=False) as ledger:
        _empty_rollup(ledger)
        if scan:
            from_rows = _timed(ledger, repeat)
            results += [(f"{name} [rows only]", best) for name, best, _ in from_rows]
        started = time.perf_counter()
        sealed = ledger.refresh_rollup()
        results.append((f"audit rollup: seal {sealed.sealed_hours} hours (once)", _since(started)))
        started = time.perf_counter()
        ledger.refresh_rollup()
        results.append(("audit rollup: refresh, nothing new (each audit)", _since(started)))
        with_rollup = _timed(ledger, repeat)
        results += [(name, best) for name, best, _ in with_rollup]
    if scan:  # the rollup must answer exactly what the rows answer
        differ = [a[0] for a, b in zip(from_rows, with_rollup, strict=True) if a[2] != b[2]]
        if differ:
            raise SystemExit(f"the rollup's answers differ from the rows' for: {differ}")
    return results


def _since(started: float) -> float:
    return time.perf_counter() - started


def _timed(ledger: Ledger, repeat: int) -> list[tuple[str, float, object]]:
    """(read, best seconds, what it returned) for each read of :func:`plan`."""
    results = []
    for name, step in plan(ledger):
        best, answer = float("inf"), None
        for _ in range(repeat):
            started = time.perf_counter()
            answer = step()
            best = min(best, _since(started))
        results.append((name, best, answer))
    return results


def _empty_rollup(ledger: Ledger) -> None:
    """Start from no sealed hours (a kept ledger may hold an earlier run's)."""
    with ledger.engine.begin() as conn:
        for table in (ROLLUP_HOUR, ROLLUP_SEALED, ROLLUP_SPAN):
            conn.execute(table.delete())


def render(title: str, results: list[tuple[str, float]], target: float) -> Table:
    baseline = next(seconds for name, seconds in results if name.startswith("SELECT"))
    table = Table(title=title)
    for column in ("read", "best s", "x scan", f"under {target:g} s"):
        table.add_column(column, justify="left" if column == "read" else "right")
    for name, seconds in results:
        verdict = "yes" if seconds < target else "NO"
        table.add_row(name, f"{seconds:.3f}", f"{seconds / baseline:.1f}", verdict)
    return table


@contextmanager
def fresh_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="spendgraph-audit-scale-") as tmp:
        yield str(Path(tmp) / "ledger.db")


def run(console: Console, title: str, fresh: Callable, args: argparse.Namespace) -> None:
    target = 1.0 if args.calls <= 1_000_000 else 5.0
    with fresh() as url:
        if title == "SQLite" and args.keep is not None and args.keep.exists():
            console.print(f"{title}: measuring the kept {args.keep} (not regenerated)")
        else:
            seconds = fill(url, args.calls)
            console.print(f"{title}: {args.calls:,} calls generated in {seconds:.1f} s")
        results = measure(url, args.repeat, args.scan)
    console.print(render(f"{title}, {args.calls:,} calls", results, target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="call rows (10M: 10000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per read; best is shown")
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL")
    parser.add_argument(
        "--scan", action="store_true", help="also time each read over the rows alone (slow)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="FILE",
        help="SQLite ledger file to keep: generated if missing, else measured as it is",
    )
    args = parser.parse_args()
    console = Console()
    if not args.no_sqlite:
        kept = args.keep
        fresh = fresh_sqlite if kept is None else lambda: nullcontext(str(kept))
        run(console, "SQLite", fresh, args)
    if args.postgres:
        run(console, "PostgreSQL", lambda: fresh_postgres(args.postgres), args)


if __name__ == "__main__":
    main()
