"""CLI start-up: wall time of ``spendgraph --help``, ``audit queries`` and ``audit summary``.

    python benchmarks/cli_startup.py --runs 10

Each command runs as its own process (as a user runs it) against a small
ledger written through the real :class:`Ledger`, interleaved with the
baseline ``python -c pass`` so load from other processes hits all alike.
Prints the median per command and its ratio to the baseline; the target is
under 0.5 s for each. Also prints the slowest imports of
``spendgraph.cli.main`` (``python -X importtime``) with ``--imports``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    Ledger,
    QueryRecord,
    QueryStatus,
)
from spendgraph.providers.usage import Usage, UsageSource

ENDPOINT = EndpointInfo("b200-nvfp4", "gpt-oss-120b", "B200", "nvfp4", "trtllm")


def small_ledger(path: Path, queries: int = 5) -> str:
    """A ledger of ``queries`` queries with two calls each."""
    url = f"sqlite:///{path}"
    with Ledger.open(url) as ledger:
        for index in range(queries):
            query = QueryRecord(app="bench", user=f"u{index % 2}")
            ledger.submit_open_query(query)
            for agent in ("supervisor", "supervisor/researcher"):
                usage = Usage(1000, 200, 100, 0, UsageSource.REPORTED)
                ledger.submit_call(
                    CallRecord(
                        endpoint=ENDPOINT,
                        status=CallStatus.OK,
                        usage=usage,
                        cost_usd=Decimal("0.0000481"),
                        price_version="bench",
                        query_id=query.id,
                        agent_path=agent,
                    )
                )
            ledger.submit_close_query(query.id, QueryStatus.OK)
        ledger.flush()
    return url


def commands(ledger: str) -> list[tuple[str, list[str]]]:
    cli = [sys.executable, "-m", "spendgraph.cli.main"]
    return [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
        ("spendgraph --help", [*cli, "--help"]),
        ("spendgraph audit queries", [*cli, "audit", "queries", "--ledger", ledger]),
        ("spendgraph audit summary", [*cli, "audit", "summary", "--ledger", ledger]),
        (
            "spendgraph audit summary --by hardware",
            [*cli, "audit", "summary", "--by", "hardware", "--ledger", ledger],
        ),
    ]


def timed(argv: list[str]) -> float:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def measure(plan: list[tuple[str, list[str]]], runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name, _ in plan}
    for argv in (argv for _, argv in plan):  # warm the OS caches once
        timed(argv)
    for _ in range(runs):  # interleaved rounds
        for name, argv in plan:
            timings[name].append(timed(argv))
    return timings


def render(timings: dict[str, list[float]]) -> Table:
    baseline = statistics.median(next(iter(timings.values())))
    table = Table(title="CLI start-up (median wall time per process)")
    for column in ("command", "median s", "x baseline", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for index, (name, values) in enumerate(timings.items()):
        median = statistics.median(values)
        verdict = "" if index == 0 else ("ok" if median < 0.5 else "over 0.5 s")
        table.add_row(name, f"{median:.3f}", f"{median / baseline:.1f}", verdict)
    return table


def slowest_imports(count: int = 15) -> Table:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import spendgraph.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines()[1:]:
        _, own, cumulative, name = (part.strip() for part in line.replace(":", "|", 1).split("|"))
        rows.append((int(cumulative), int(own), name))
    table = Table(title="slowest imports of spendgraph.cli.main (cumulative us)")
    for column in ("module", "cumulative us", "own us"):
        table.add_column(column, justify="left" if column == "module" else "right")
    for cumulative, own, name in sorted(rows, reverse=True)[:count]:
        table.add_row(name, f"{cumulative:,}", f"{own:,}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--imports", action="store_true", help="also show the slowest imports")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="spendgraph-startup-") as tmp:
        ledger = small_ledger(Path(tmp) / "small.db")
        console.print(render(measure(commands(ledger), args.runs)))
    if args.imports:
        console.print(slowest_imports())


if __name__ == "__main__":
    main()
