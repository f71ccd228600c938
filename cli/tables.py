"""Tables that fit the terminal by leaving out their least important columns.

Rich squeezes a table that is too wide by wrapping or cutting cells, which
can cut an amount (``$0.00053…``) or fold a name into one-letter lines. A
:func:`fitted_table` instead drops whole optional columns, least important
first, until it fits; amounts and ids are never dropped, wrapped or cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table

# Measure a table's natural width with room to spare.
_UNBOUNDED = 10_000


@dataclass(frozen=True)
class Col:
    """One column: ``drop`` 0 is always shown; 1, 2... are left out in that order when narrow."""

    header: str
    drop: int = 0
    number: bool = False  # right-aligned and never wrapped
    footer: RenderableType = ""


def fitted_table(
    console: Console,
    title: str | None,
    columns: Sequence[Col],
    rows: Sequence[Sequence[RenderableType]],
    *,
    footer: bool = False,
) -> Table:
    """A table of ``rows`` with as many of ``columns`` as fit ``console``'s width."""
    ranks = sorted({column.drop for column in columns if column.drop})
    hidden: set[int] = set()
    while True:
        table = _table(title, columns, rows, hidden, footer)
        if not ranks or _natural_width(console, table) <= console.width:
            return table
        rank = ranks.pop(0)
        hidden |= {index for index, column in enumerate(columns) if column.drop == rank}


def new_table(title: str | None = None, *, footer: bool = False) -> Table:
    """The look every spendgraph table shares: compact, left title, no outer edge."""
    return Table(
        title=title, title_justify="left", show_footer=footer, box=box.SIMPLE, show_edge=False
    )


def _table(
    title: str | None,
    columns: Sequence[Col],
    rows: Sequence[Sequence[RenderableType]],
    hidden: set[int],
    footer: bool,
) -> Table:
    table = new_table(title, footer=footer)
    shown = [index for index in range(len(columns)) if index not in hidden]
    for index in shown:
        column = columns[index]
        table.add_column(
            column.header,
            footer=column.footer,
            justify="right" if column.number else "left",
            no_wrap=column.number,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[index] for index in shown))
    return table


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
