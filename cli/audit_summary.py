"""``spendgraph audit summary --by ...``: grouped totals, share of spend, a bar chart.

Unpriced calls (unknown cost) are counted in their own column and never
added as $0: a group with some is shown as ``>= $known``, a group with only
unpriced calls as ``unknown``. Shares are shares of the *priced* spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.bar import Bar
from rich.console import Console, RenderableType
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit_ledger import note_nothing_found
from spendgraph.cli.console import Output
from spendgraph.cli.options import filter_json
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.ledger import GroupBy, GroupTotal, Ledger, LedgerFilter, TokenTotals
from spendgraph.providers.usage import CostTotal

_BAR_WIDTH = 16
# Per-query costs shown to 8 decimals (JSON keeps 12).
_PER_QUERY_PLACES = 8
# Per-query costs are a division: rounded to a trillionth of a dollar.
_PER_QUERY_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True)
class Overall:
    """Totals over every group (groups partition the calls, so sums are exact)."""

    queries: int
    calls: int
    tokens: TokenTotals
    cost: CostTotal


def run(out: Output, ledger: Ledger, filters: LedgerFilter, by: GroupBy) -> None:
    groups = ledger.summary_by(by, filters)
    if not groups:
        note_nothing_found(out, ledger, "calls")
    overall = _overall(ledger, filters, by, groups)
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "filters": filter_json(filters),
                "by": str(by),
                "groups": [group_json(group, overall) for group in groups],
                "total": group_json(_as_group(overall), overall),
            }
        )
        return
    if groups:
        out.print(summary_table(out.console, by, groups, overall))
        out.print(_footnote(overall), highlight=False)


def _overall(
    ledger: Ledger, filters: LedgerFilter, by: GroupBy, groups: list[GroupTotal]
) -> Overall:
    # A query's calls can fall into several groups (agents, endpoints, days),
    # so distinct queries cannot be summed across them -- except per app or
    # user, which are properties of the query. Ask for that grouping if needed.
    per_query = groups if by in (GroupBy.APP, GroupBy.USER) else ledger.summary_by("app", filters)
    tokens = TokenTotals(
        input_uncached=sum(group.tokens.input_uncached for group in groups),
        input_cached=sum(group.tokens.input_cached for group in groups),
        output=sum(group.tokens.output for group in groups),
        reasoning=sum(group.tokens.reasoning for group in groups),
    )
    cost = CostTotal(
        known=sum((group.cost.known for group in groups), Decimal(0)),
        unknown_calls=sum(group.cost.unknown_calls for group in groups),
    )
    return Overall(
        queries=sum(group.queries for group in per_query),
        calls=sum(group.calls for group in groups),
        tokens=tokens,
        cost=cost,
    )


def _as_group(overall: Overall) -> GroupTotal:
    return GroupTotal(
        key="total",
        calls=overall.calls,
        queries=overall.queries,
        tokens=overall.tokens,
        cost=overall.cost,
    )


def share(group: GroupTotal, overall: Overall) -> Decimal | None:
    """The group's part of the priced spend (0..1); None when nothing is priced."""
    if overall.cost.known == 0:
        return None
    return group.cost.known / overall.cost.known


def per_query(group: GroupTotal) -> Decimal | None:
    """Known cost per query; None for calls made outside any query."""
    if group.queries == 0:
        return None
    return (group.cost.known / group.queries).quantize(_PER_QUERY_QUANTUM).normalize()


def group_json(group: GroupTotal, overall: Overall) -> dict[str, Any]:
    part = share(group, overall)
    known_per_query = per_query(group)
    return {
        "key": group.key,
        "queries": group.queries,
        "calls": group.calls,
        "tokens": fmt.tokens_json(group.tokens),
        **fmt.cost_json(group.cost),
        "share_of_priced_spend": None if part is None else round(float(part), 6),
        # Exact only when every call is priced; the known part is a lower bound.
        "cost_per_query_usd": None
        if group.cost.unknown_calls
        else fmt.decimal_json(known_per_query),
        "cost_known_per_query_usd": fmt.decimal_json(known_per_query),
    }


def _key_label(by: GroupBy, key: str | None) -> str:
    if key is None:
        return "(outside any query)"
    if not key:
        return "(no agent)" if by is GroupBy.AGENT else "(none)"
    return fmt.label(key)


def summary_table(
    console: Console, by: GroupBy, groups: list[GroupTotal], overall: Overall
) -> Table:
    # drop: which columns go first when the terminal is narrow (amounts never do).
    columns = [
        Col(str(by), footer="total"),
        Col("queries", number=True, drop=1, footer=str(overall.queries)),
        Col("calls", number=True, drop=2, footer=str(overall.calls)),
        Col("tokens", number=True, drop=3, footer=fmt.tokens(overall.tokens.total)),
        Col("cost", number=True, footer=fmt.cost_cell(overall.cost)),
        Col("unpriced", number=True, footer=str(overall.cost.unknown_calls)),
        Col("share", number=True, footer="100%" if overall.cost.known else ""),
        Col("", drop=4),  # the bar chart
        Col("per query", number=True, drop=5),
    ]
    top = max((group.cost.known for group in groups), default=Decimal(0))
    rows = [_summary_row(by, group, overall, top) for group in groups]
    return fitted_table(console, f"Spend by {by}", columns, rows, footer=True)


def _summary_row(
    by: GroupBy, group: GroupTotal, overall: Overall, top: Decimal
) -> tuple[RenderableType, ...]:
    part = share(group, overall)
    known_per_query = per_query(group)
    return (
        _key_label(by, group.key),
        str(group.queries),
        str(group.calls),
        fmt.tokens(group.tokens.total),
        fmt.cost_cell(group.cost),
        str(group.cost.unknown_calls),
        fmt.NONE_SHOWN if part is None else f"{part:.1%}",
        # Scaled to the largest group, so the biggest spender fills the bar.
        Bar(float(top) or 1.0, 0, float(group.cost.known), width=_BAR_WIDTH),
        fmt.NONE_SHOWN
        if known_per_query is None
        else fmt.bounded(known_per_query, group.cost, max_places=_PER_QUERY_PLACES),
    )


def _footnote(overall: Overall) -> str:
    text = "share = part of the priced spend; per query = cost / queries with calls in the group"
    if overall.cost.unknown_calls:
        text += "\n" + fmt.LOWER_BOUND_NOTE
    return text
