"""``spendgraph audit compact --before WHEN``: fold old calls, keeping every total exact.

Retention for large ledgers: the calls started before ``WHEN`` (of finished
queries) become one row per group an audit tells apart -- see
:mod:`spendgraph.providers.ledger.compact` -- so ``audit summary``,
``queries``, ``show`` and ``reprice`` print the same totals afterwards, while
per-call details (timings, request ids, stored text) of those calls are gone.
It is the one audit command that writes; it takes no filters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, parse_since
from spendgraph.providers.ledger import Ledger, LedgerFilter

BeforeOption = Annotated[
    datetime,
    typer.Option(
        "--before",
        parser=parse_since,
        metavar="WHEN",
        help="Fold the calls started before this (a bare date: that day's start, UTC; "
        "or an age like 90d).",
    ),
]


@audit_command()
def command(out: Output, ledger: Ledger, filters: LedgerFilter, before: BeforeOption) -> None:
    """Fold calls started before WHEN into per-query groups; every audit total stays the same."""
    if filters != LedgerFilter():
        raise CommandError(
            "audit compact takes no filters: it folds every finished query's "
            "calls started before --before"
        )
    result = ledger.compact(before)
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "before": fmt.time_json(result.before),
                "calls": result.calls,
                "rows": result.rows,
                "queries": result.queries,
            }
        )
        return
    if not result.calls:
        out.print(f"nothing to fold before {fmt.when(result.before)} in {ledger.url}")
        return
    out.print(
        f"folded {result.calls:,} call rows of {result.queries:,} queries into "
        f"{result.rows:,} rows (before {fmt.when(result.before)}); totals unchanged",
        highlight=False,
    )
