"""``spendgraph audit``: what each query cost, where, and what it would cost elsewhere.

Every subcommand reads the ledger (``--ledger URL``, else ``$SPENDGRAPH_LEDGER``,
else ./spendgraph.db) without ever creating one, takes the ``--since``,
``--until``, ``--app``, ``--user`` and ``--thread`` filters, and prints rich tables or, with
``--json``, the same fields as JSON (Decimal amounts as exact strings, unknown
costs as null). Each command here only parses options; the work is in one
module per subcommand (``audit_queries``, ``audit_show``...).

Time filters apply to query start times in ``audit queries`` (a query is
listed whole or not at all) and to call start times everywhere else (so a
day's spend is the calls made that day, as the ledger's ``summary_by`` counts it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spendgraph.cli import (
    audit_export,
    audit_queries,
    audit_reprice,
    audit_show,
    audit_summary,
)
from spendgraph.cli.audit_ledger import audit_ledger
from spendgraph.cli.audit_reprice_target import resolve_target
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    AppOption,
    ConfigOption,
    JsonOption,
    LedgerOption,
    SinceOption,
    ThreadFilterOption,
    UntilOption,
    UserOption,
    handled_errors,
    ledger_filter,
)
from spendgraph.providers.config import load_config
from spendgraph.providers.ledger import GroupBy, QuerySort

app = typer.Typer(
    help="Audit spend: per query, per agent/endpoint/hardware, re-priced, exported.",
    no_args_is_help=True,
)

LimitOption = Annotated[
    int, typer.Option("--limit", min=0, help="Show at most N queries (0: all of them).")
]


@app.command("queries")
def queries(
    limit: LimitOption = 50,
    sort: Annotated[
        QuerySort, typer.Option("--sort", help="Order: newest, costliest or largest first.")
    ] = QuerySort.TIME,
    ledger: LedgerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    app_name: AppOption = None,
    user: UserOption = None,
    thread: ThreadFilterOption = None,
    as_json: JsonOption = False,
) -> None:
    """One line per query: time, id, app, status, calls, tokens, cost, latency."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        filters = ledger_filter(since, until, app_name, user, thread)
        with audit_ledger(ledger) as opened:
            audit_queries.run(out, opened, filters, sort, limit)


@app.command("show")
def show(
    query_id: Annotated[str, typer.Argument(help="A query id, or a unique prefix of one.")],
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """One query as a tree: agents, their calls (endpoint, hardware, tokens, cost), totals."""
    out = Output(json_mode=as_json)
    with handled_errors(out), audit_ledger(ledger) as opened:
        audit_show.run(out, opened, query_id)


@app.command("summary")
def summary(
    by: Annotated[GroupBy, typer.Option("--by", help="What to group calls by.")] = GroupBy.AGENT,
    ledger: LedgerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    app_name: AppOption = None,
    user: UserOption = None,
    thread: ThreadFilterOption = None,
    as_json: JsonOption = False,
) -> None:
    """Totals per group with share of spend, cost per query and a bar chart."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        filters = ledger_filter(since, until, app_name, user, thread)
        with audit_ledger(ledger) as opened:
            audit_summary.run(out, opened, filters, by)


@app.command("reprice")
def reprice(
    on: Annotated[
        str,
        typer.Option(
            "--on",
            metavar="NAME",
            help="An endpoint or pool of the config, or a simulator hardware profile "
            "(H100-FP8, H200-FP8, B200-FP8, B200-NVFP4, GB200-NVFP4).",
        ),
    ],
    config: ConfigOption = None,
    limit: LimitOption = 50,
    ledger: LedgerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    app_name: AppOption = None,
    user: UserOption = None,
    thread: ThreadFilterOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the selected queries would have cost at another endpoint's prices, with the ratio.

    Uses each call's recorded token buckets (uncached input, cached input,
    output) times the target's per-million-token prices, exactly.
    """
    out = Output(json_mode=as_json)
    with handled_errors(out):
        filters = ledger_filter(since, until, app_name, user, thread)
        target = resolve_target(on, load_config(config))
        with audit_ledger(ledger) as opened:
            audit_reprice.run(out, opened, filters, target, limit)


@app.command("export")
def export(
    form: Annotated[
        audit_export.ExportFormat,
        typer.Option("--format", help="csv, json (one array), jsonl, or parquet (needs pyarrow)."),
    ] = audit_export.ExportFormat.CSV,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout."),
    ] = None,
    ledger: LedgerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    app_name: AppOption = None,
    user: UserOption = None,
    thread: ThreadFilterOption = None,
) -> None:
    """Every matching call, one row each with all its columns; costs as exact decimals."""
    out = Output()
    with handled_errors(out):
        filters = ledger_filter(since, until, app_name, user, thread)
        with audit_ledger(ledger) as opened:
            audit_export.run(out, opened, filters, form, output)
