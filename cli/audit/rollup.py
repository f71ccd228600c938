"""``spendgraph audit rollup``: seal the hours that have ended, so audits add them up.

Audits of millions of calls read the rollup's sealed hours instead of their
rows (see :mod:`spendgraph.providers.ledger.rollup`). ``audit summary`` and
``audit serve`` seal as they go, for about a second each time; this command
seals everything that is due at once -- after an import, on a large ledger
seen for the first time, or from cron. Totals never depend on it: an unsealed
hour is read from its rows, and so is any sealed hour whose rows changed (a
count check, and triggers on updates and deletes); ``--rebuild`` reseals
everything from scratch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError
from spendgraph.providers.ledger import Ledger, LedgerFilter

RebuildOption = Annotated[
    bool,
    typer.Option(
        "--rebuild",
        help="Drop every sealed hour and seal them all again (the ledger's triggers already "
        "forget hours whose call rows change; this starts from scratch).",
    ),
]


@audit_command()
def command(
    out: Output, ledger: Ledger, filters: LedgerFilter, rebuild: RebuildOption = False
) -> None:
    """Seal every hour that has ended into the audit rollup; audits then add up sealed hours."""
    if filters != LedgerFilter():
        raise CommandError("audit rollup takes no filters: it seals every hour that has ended")
    result = ledger.refresh_rollup(rebuild=rebuild)
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "sealed_hours": result.sealed_hours,
                "calls": result.rows,
                "dropped": result.dropped,
                "until": fmt.time_json(result.until),
            }
        )
        return
    dropped = f"; {result.dropped:,} sealed ranges dropped and resealed" * bool(result.dropped)
    out.print(
        f"sealed {result.sealed_hours:,} hours ({result.rows:,} call rows) of {ledger.url} "
        f"into the audit rollup, up to {fmt.when(result.until)}{dropped}",
        highlight=False,
    )
