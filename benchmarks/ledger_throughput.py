"""Ledger write throughput: the Ledger's batched writer against two baselines, in one run.

    python benchmarks/ledger_throughput.py --rows 20000
    python benchmarks/ledger_throughput.py --postgres postgresql://postgres@127.0.0.1/test

Methods, each on a fresh, empty ledger (a new SQLite file, or a new
PostgreSQL schema that is dropped afterwards):

* ``Ledger.record_call x TASKS``: TASKS asyncio tasks each awaiting
  ``record_call`` (acknowledged = committed) for their share of the rows.
* ``Ledger.record_call x 1``: one task, one row at a time: every call waits for
  its own commit (the latency-bound worst case).
* ``ORM commit per row``: SQLModel ``session.add`` + ``commit`` per row, the
  naive way (fewer rows: it is slow).
* ``Core batches``: SQLAlchemy Core ``executemany`` inserts, BATCH rows per
  transaction, no queue and no futures: the ceiling the Ledger is measured against.

Target (issue 17): >= 30,000 rows/s for ``record_call x 64`` on SQLite, and
PostgreSQL within 2x of it (the last line prints that ratio).

Rows are built before timing starts; conversion to column values is timed for
every method. Each method runs ``--repeat`` times (best shown: load from other
processes only ever slows a run down). Prints rows/s and ratios; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, text
from sqlmodel import Session

from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    Ledger,
    resolve_ledger_url,
    utcnow,
)
from spendgraph.providers.ledger.orm import Call
from spendgraph.providers.ledger.rows import call_params
from spendgraph.providers.ledger.tables import CALL
from spendgraph.providers.usage import Usage, UsageSource


@dataclass(frozen=True)
class Result:
    method: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def make_records(count: int) -> list[CallRecord]:
    endpoint = EndpointInfo("b200-nvfp4", "gpt-oss-120b", "B200", "nvfp4", "trtllm")
    start = utcnow()
    return [
        CallRecord(
            endpoint=endpoint,
            status=CallStatus.OK,
            usage=Usage(1200 + i % 97, 800, 250, 40, UsageSource.REPORTED),
            cost_usd=Decimal("0.000000123") * (i % 1000 + 1),
            price_version="2025-03-01",
            agent_path="supervisor/researcher",
            node="research",
            request_id=f"req-{i // 2}",
            attempt=1 + i % 2,
            stream=True,
            started_at=start + timedelta(microseconds=i),
            ttft_ms=40.0 + i % 13,
            latency_ms=800.0 + i % 101,
        )
        for i in range(count)
    ]


async def _ledger_tasks(url: str, records: list[CallRecord], tasks: int) -> float:
    with Ledger.open(url) as ledger:

        async def worker(share: list[CallRecord]) -> None:
            for record in share:
                await ledger.record_call(record)

        started = time.perf_counter()
        await asyncio.gather(*(worker(records[i::tasks]) for i in range(tasks)))
        return time.perf_counter() - started


def bench_ledger(url: str, records: list[CallRecord], tasks: int) -> float:
    return asyncio.run(_ledger_tasks(url, records, tasks))


def bench_orm(url: str, records: list[CallRecord]) -> float:
    with Ledger.open(url) as ledger, Session(ledger.engine) as session:
        started = time.perf_counter()
        for record in records:
            session.add(Call(**call_params(record)))
            session.commit()
        return time.perf_counter() - started


def bench_core(url: str, records: list[CallRecord], batch: int) -> float:
    with Ledger.open(url) as ledger:
        engine = ledger.engine
        started = time.perf_counter()
        for offset in range(0, len(records), batch):
            with engine.begin() as conn:
                conn.execute(
                    insert(CALL), [call_params(r) for r in records[offset : offset + batch]]
                )
        return time.perf_counter() - started


@contextmanager
def fresh_sqlite(directory: Path) -> Iterator[str]:
    yield f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:8]}.db'}"


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    schema = f"spendgraph_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(resolve_ledger_url(server_url, {}), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


Fresh = Callable[[], AbstractContextManager[str]]


def run_all(fresh: Fresh, args: argparse.Namespace) -> list[Result]:
    records = make_records(args.rows)
    plan: list[tuple[str, int, Callable[[str], float]]] = [
        (
            f"Ledger.record_call x {args.tasks} tasks",
            args.rows,
            lambda url: bench_ledger(url, records, args.tasks),
        ),
        (
            "Ledger.record_call x 1 task",
            args.orm_rows,
            lambda url: bench_ledger(url, records[: args.orm_rows], 1),
        ),
        ("ORM commit per row", args.orm_rows, lambda url: bench_orm(url, records[: args.orm_rows])),
        (
            f"Core batches of {args.batch}",
            args.rows,
            lambda url: bench_core(url, records, args.batch),
        ),
    ]
    results = []
    for method, rows, bench in plan:
        # Best of N, each on a fresh ledger: other load on the machine only slows runs down.
        timings = []
        for _ in range(args.repeat):
            with fresh() as url:
                timings.append(bench(url))
        results.append(Result(method, rows, min(timings)))
    return results


def render(title: str, results: list[Result]) -> Table:
    orm = next(r for r in results if r.method.startswith("ORM"))
    core = next(r for r in results if r.method.startswith("Core"))
    table = Table(title=title)
    for column in ("method", "rows", "seconds", "rows/s", "x ORM", "x Core"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for r in results:
        table.add_row(
            r.method,
            f"{r.rows:,}",
            f"{r.seconds:.3f}",
            f"{r.rate:,.0f}",
            f"{r.rate / orm.rate:.1f}",
            f"{r.rate / core.rate:.2f}",
        )
    return table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per batched method")
    parser.add_argument("--orm-rows", type=int, default=2_000, help="rows for the slow methods")
    parser.add_argument("--tasks", type=int, default=64, help="concurrent record_call tasks")
    parser.add_argument("--batch", type=int, default=100, help="rows per Core transaction")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; best is shown")
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="spendgraph-bench-") as tmp:
        results = run_all(lambda: fresh_sqlite(Path(tmp)), args)
    console.print(render("Ledger write throughput: SQLite file (WAL, synchronous=NORMAL)", results))
    if args.postgres:
        on_postgres = run_all(lambda: fresh_postgres(args.postgres), args)
        console.print(render("Ledger write throughput: PostgreSQL", on_postgres))
        # The target: PostgreSQL within 2x of SQLite through the API, many writers.
        ratio = results[0].rate / on_postgres[0].rate
        console.print(f"{results[0].method}: SQLite / PostgreSQL = {ratio:.2f}x (target <= 2)")


if __name__ == "__main__":
    main()
