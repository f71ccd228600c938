"""``spendgraph audit summary --by ...``: grouped totals, share of spend, a bar chart.

Unpriced calls (unknown cost) are counted in their own column and never
added as $0: a group with some is shown as ``>= $known``, a group with only
unpriced calls as ``unknown``. Shares are shares of the *priced* spend.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.bar import Bar
from rich.console import Console, RenderableType
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.audit.ledger import note_nothing_found, seal_due_hours
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    filter_json,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.ledger import GroupBy, GroupTotal, Ledger, LedgerFilter
from spendgraph.providers.spend import Spend

_BAR_WIDTH = 16
# Per-query costs shown to 8 decimals (JSON keeps 12).
_PER_QUERY_PLACES = 8
# Per-query costs are a division: rounded to a trillionth of a dollar.
_PER_QUERY_QUANTUM = Decimal("1e-12")


@audit_command()
def command(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    by: Annotated[GroupBy, typer.Option("--by", help="What to group calls by.")] = GroupBy.AGENT,
) -> None:
    """Totals per group with share of spend, cost per query and a bar chart."""
    run(out, ledger, filters, by)


def run(out: Output, ledger: Ledger, filters: LedgerFilter, by: GroupBy) -> None:
    seal_due_hours(out, ledger)
    groups = ledger.summary_by(by, filters)
    if not groups:
        note_nothing_found(out, ledger, "calls")
    overall = _overall(ledger, filters, by, groups)
    if out.json_mode:
        out.emit_json(summary_json(ledger.url, filters, by, groups, overall))
        return
    if groups:
        out.print(summary_table(out.console, by, groups, overall))
        out.print(_footnote(overall, groups), highlight=False)


def summary_json(
    url: str, filters: LedgerFilter, by: GroupBy, groups: list[GroupTotal], overall: GroupTotal
) -> dict[str, Any]:
    """What ``audit summary --json`` prints for ``groups`` and their ``overall`` total."""
    return {
        "ledger": url,
        "filters": filter_json(filters),
        "by": str(by),
        "groups": [group_json(group, overall) for group in groups],
        "total": group_json(overall, overall),
    }


def _overall(
    ledger: Ledger, filters: LedgerFilter, by: GroupBy, groups: list[GroupTotal]
) -> GroupTotal:
    queries = None if by in _QUERY_PROPERTIES else ledger.queries_with_calls(filters)
    return overall_of(by, groups, queries)


# A query's calls can fall into several groups (agents, endpoints, days), so
# distinct queries cannot be summed across them -- except per app, user or
# tenant, which are properties of the query.
_QUERY_PROPERTIES = (GroupBy.APP, GroupBy.USER, GroupBy.TENANT)


def overall_of(by: GroupBy, groups: list[GroupTotal], queries: int | None) -> GroupTotal:
    """The ``total`` row: groups partition the calls, so their spends sum exactly.
    ``queries``: the distinct queries of all the groups (summed when None, per app,
    user or tenant)."""
    if by in _QUERY_PROPERTIES or queries is None:
        queries = sum(group.queries for group in groups)
    return GroupTotal(
        key="total", queries=queries, spend=sum((group.spend for group in groups), Spend())
    )


def share(group: GroupTotal, overall: GroupTotal) -> Decimal | None:
    """The group's part of the priced spend (0..1); None when nothing is priced."""
    if overall.spend.known_cost == 0:
        return None
    return group.spend.known_cost / overall.spend.known_cost


def per_query(group: GroupTotal) -> Decimal | None:
    """Known cost per query; None for calls made outside any query."""
    if group.queries == 0:
        return None
    return (group.spend.known_cost / group.queries).quantize(_PER_QUERY_QUANTUM).normalize()


def group_json(group: GroupTotal, overall: GroupTotal) -> dict[str, Any]:
    part = share(group, overall)
    known_per_query = per_query(group)
    return {
        "key": group.key,
        "queries": group.queries,
        **fmt.calls_json(group.spend),
        "tokens": fmt.tokens_json(group.spend),
        **fmt.cost_json(group.spend),
        "share_of_priced_spend": None if part is None else round(float(part), 6),
        # Exact only when every call is priced; the known part is a lower bound.
        "cost_per_query_usd": None if group.spend.unpriced else fmt.decimal_json(known_per_query),
        "cost_known_per_query_usd": fmt.decimal_json(known_per_query),
    }


def _key_label(by: GroupBy, key: str | None) -> str:
    if key is None:
        return "(outside any query)"
    if not key:
        return "(no agent)" if by is GroupBy.AGENT else "(none)"
    return fmt.label(key)


def summary_table(
    console: Console, by: GroupBy, groups: list[GroupTotal], overall: GroupTotal
) -> Table:
    total = overall.spend
    # drop: which columns go first when the terminal is narrow (amounts never do).
    columns = [
        Col(str(by), footer="total"),
        Col("queries", number=True, drop=1, footer=str(overall.queries)),
        Col("calls", number=True, drop=2, footer=fmt.calls(total)),
        Col("tokens", number=True, drop=3, footer=fmt.tokens(total.total_tokens)),
        Col("cost", number=True, footer=fmt.cost_cell(total)),
        Col("unpriced", number=True, footer=str(total.unpriced)),
        Col("share", number=True, footer="100%" if total.known_cost else ""),
        Col("", drop=4),  # the bar chart
        Col("per query", number=True, drop=5),
    ]
    top = max((group.spend.known_cost for group in groups), default=Decimal(0))
    rows = [_summary_row(by, group, overall, top) for group in groups]
    return fitted_table(console, f"Spend by {by}", columns, rows, footer=True)


def _summary_row(
    by: GroupBy, group: GroupTotal, overall: GroupTotal, top: Decimal
) -> tuple[RenderableType, ...]:
    part = share(group, overall)
    spend = group.spend
    return (
        _key_label(by, group.key),
        str(group.queries),
        fmt.calls(spend),
        fmt.tokens(spend.total_tokens),
        fmt.cost_cell(spend),
        str(spend.unpriced),
        fmt.NONE_SHOWN if part is None else f"{part:.1%}",
        # Scaled to the largest group, so the biggest spender fills the bar.
        Bar(float(top) or 1.0, 0, float(spend.known_cost), width=_BAR_WIDTH),
        _per_query_cell(group),
    )


def _per_query_cell(group: GroupTotal) -> str:
    known = per_query(group)
    if known is None:
        return fmt.NONE_SHOWN
    return fmt.bounded(known, group.spend, max_places=_PER_QUERY_PLACES)


def _footnote(overall: GroupTotal, groups: list[GroupTotal]) -> str:
    text = "share = part of the priced spend; per query = cost / queries with calls in the group"
    cells = [fmt.cost_cell(overall.spend)]
    cells += [
        cell for group in groups for cell in (fmt.cost_cell(group.spend), _per_query_cell(group))
    ]
    if any("~" in cell for cell in cells):
        text += f"\n{ROUNDED_NOTE}"
    if overall.spend.unpriced:
        text += "\n" + fmt.LOWER_BOUND_NOTE
    return text


ROUNDED_NOTE = "'~' marks an amount rounded for display (--json has it exact)"
