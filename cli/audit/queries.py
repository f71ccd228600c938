"""``spendgraph audit queries``: one line per end-user query."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.audit.ledger import note_nothing_found
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    LimitOption,
    filter_json,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.ledger import Ledger, LedgerFilter, QuerySort, QuerySummary

_ORDER = {QuerySort.TIME: "newest", QuerySort.COST: "costliest", QuerySort.TOKENS: "largest"}


@audit_command()
def command(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    limit: LimitOption = 50,
    sort: Annotated[
        QuerySort, typer.Option("--sort", help="Order: newest, costliest or largest first.")
    ] = QuerySort.TIME,
) -> None:
    """One line per query: time, id, app, status, calls, tokens, cost, latency."""
    run(out, ledger, filters, sort, limit)


def run(out: Output, ledger: Ledger, filters: LedgerFilter, sort: QuerySort, limit: int) -> None:
    """List the queries matching ``filters``; ``limit`` 0 means all of them."""
    # One row more than asked tells whether the list was cut, without a COUNT.
    fetched = ledger.list_queries(filters, sort=sort, limit=limit + 1 if limit else None)
    truncated = bool(limit) and len(fetched) > limit
    summaries = fetched[:limit] if limit else fetched
    if not summaries:
        note_nothing_found(out, ledger, "queries")
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "filters": filter_json(filters),
                "sort": str(sort),
                "limit": limit or None,
                "truncated": truncated,
                "queries": [summary_json(summary) for summary in summaries],
            }
        )
        return
    if summaries:
        out.print(queries_table(out.console, summaries, sort))
        if any(summary.spend.unpriced for summary in summaries):
            out.print(fmt.LOWER_BOUND_NOTE, highlight=False)
    if truncated:
        out.print(f"showing the first {limit} queries; raise --limit (0 for all) to see more")


def summary_json(summary: QuerySummary) -> dict[str, Any]:
    """One query and its totals, every field the table shows and more."""
    query = summary.query
    return {
        "id": query.id,
        "started_at": fmt.time_json(query.started_at),
        "finished_at": fmt.time_json(query.finished_at),
        "app": query.app,
        "user": query.user,
        "thread_id": query.thread_id,
        "status": str(query.status),
        "error": query.error,
        **fmt.calls_json(summary.spend),
        "tokens": fmt.tokens_json(summary.spend),
        **fmt.cost_json(summary.spend),
        "budget_usd": fmt.decimal_json(query.budget_usd),
        "budget_tokens": query.budget_tokens,
        "first_token_ms": summary.first_token_ms,
        "latency_ms": summary.wall_ms,
    }


def queries_table(console: Console, summaries: list[QuerySummary], sort: QuerySort) -> Table:
    # drop: which columns go first when the terminal is narrow (amounts never do).
    columns = [
        Col("started (UTC)"),
        Col("id"),
        Col("app"),
        Col("user", drop=2),
        Col("status"),
        Col("calls", number=True, drop=3),
        Col("tokens", number=True),
        Col("cost", number=True),
        Col("TTFT", number=True, drop=1),
        Col("latency", number=True, drop=4),
    ]
    rows = [
        (
            fmt.when(summary.query.started_at),
            fmt.short_id(summary.query.id),
            fmt.label(summary.query.app),
            fmt.label(summary.query.user),
            str(summary.query.status),
            fmt.calls(summary.spend),
            fmt.tokens(summary.spend.total_tokens),
            fmt.cost_cell(summary.spend),
            fmt.millis(summary.first_token_ms),
            fmt.millis(summary.wall_ms),
        )
        for summary in summaries
    ]
    return fitted_table(console, f"Queries, {_ORDER[sort]} first", columns, rows)
