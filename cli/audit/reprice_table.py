"""The terminal view of ``audit reprice``: per query and total, actual beside re-priced."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.reprice_target import RepriceTarget
from spendgraph.cli.console import Output
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.reprice import Tally


def render(
    out: Output, target: RepriceTarget, shown: list[Tally], total: Tally, *, hidden: int
) -> None:
    """Print the table (when there is anything to show) and what the totals mean."""
    price = target.price
    out.print(f"Re-priced on {fmt.label(target.describe())}", highlight=False)
    out.print(
        f"at {fmt.rate(price.input_uncached)} uncached / {fmt.rate(price.input_cached)} cached"
        f" / {fmt.rate(price.output)} output per 1M tokens",
        highlight=False,
    )
    if not total.actual.calls:
        return
    out.print(_table(out.console, target, shown, total))
    for line in _notes(target, total, hidden):
        out.print(line, highlight=False)


def _table(console: Console, target: RepriceTarget, shown: list[Tally], total: Tally) -> Table:
    # drop: which columns go first when the terminal is narrow (amounts never do).
    columns = [
        Col("started (UTC)", drop=2),
        Col("query", footer="total"),
        Col("calls", number=True, drop=3, footer=str(total.actual.calls)),
        Col("tokens\nunc / cached / out", number=True, drop=1, footer=fmt.buckets(total.actual)),
        Col("actual", number=True, footer=fmt.cost_cell(total.actual)),
        Col(f"on {fmt.label(target.name)}", number=True, footer=fmt.cost_cell(total.repriced)),
        Col("difference", number=True, drop=4, footer=_signed(total.difference)),
        Col("ratio", number=True, footer=_ratio(total.ratio)),
    ]
    rows = [
        (
            fmt.when(tally.first_call_at, seconds=False),
            fmt.short_id(tally.query_id),
            str(tally.actual.calls),
            fmt.buckets(tally.actual),
            fmt.cost_cell(tally.actual),
            fmt.cost_cell(tally.repriced),
            _signed(tally.difference),
            _ratio(tally.ratio),
        )
        for tally in shown
    ]
    return fitted_table(console, None, columns, rows, footer=True)


def _signed(amount: Decimal | None) -> str:
    if amount is None:
        return "n/a"
    return f"+{fmt.usd(amount)}" if amount > 0 else fmt.usd(amount)


def _ratio(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _notes(target: RepriceTarget, total: Tally, hidden: int) -> list[str]:
    """What the numbers mean: the headline ratio, and why some figures are unknown."""
    name = fmt.label(target.name)
    actual, repriced = total.actual, total.repriced
    both = total.comparable_actual.calls
    notes = []
    free = total.free.calls
    if total.ratio is not None:
        over = f" over the {actual.calls - free} that cost something" if free else ""
        notes.append(
            f"All {actual.calls} call(s): {fmt.usd(actual.cost)} actual, "
            f"{fmt.usd(repriced.cost)} on {name} ({_change(total.ratio)}{over})."
        )
    if free:
        notes.append(
            f"{free} call(s) ran at a known $0 (an endpoint at $0/hour, like the embedded CPU "
            f"model): {fmt.usd(total.free_repriced.known_cost)} on {name}, counted in the "
            "totals but in no ratio."
        )
    if actual.unpriced:
        notes.append(
            f"{actual.unpriced} call(s) have no recorded cost: their actual cost is "
            "unknown (not $0), so totals that include them are a lower bound ('>=') "
            "and have no ratio."
        )
    if repriced.unpriced:
        notes.append(
            f"{repriced.unpriced} call(s) use a token bucket {name} has no rate for: "
            "their re-priced cost is unknown."
        )
    if both + free < actual.calls and total.comparable_ratio is not None:
        notes.append(
            f"Calls priced on both sides ({both} of {actual.calls}): "
            f"{fmt.usd(total.comparable_actual.cost)} actual, "
            f"{fmt.usd(total.comparable_repriced.cost)} "
            f"on {name} ({_change(total.comparable_ratio)})."
        )
    if hidden:
        notes.append(
            f"{hidden} more quer{'y' if hidden == 1 else 'ies'} not shown (raise --limit, "
            "0 for all); the total covers them."
        )
    return notes


def _change(ratio: Decimal) -> str:
    """``ratio 0.25x, 75.0% cheaper``."""
    if ratio == 1:
        return "ratio 1.00x, the same cost"
    direction = "cheaper" if ratio < 1 else "more expensive"
    return f"ratio {ratio:.2f}x, {abs(1 - ratio):.1%} {direction}"
