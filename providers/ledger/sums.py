"""Call totals as SQL aggregates: exact cost sums without per-row Python.

Why integers: on SQLite ``cost_usd`` is decimal text, which only a Python
aggregate (``decimal_sum``) adds exactly -- about 1 us of Python per row, so
an audit of 1M calls spent seconds summing. Since schema version 7 each row
also carries ``cost_femto``, its cost as an integer number of 10^-15 USD
(when that is exact; see ``schema_v7.py``). The database sums it as two
64-bit parts, ``femto / 10^9`` and ``femto % 10^9`` (each part's SUM stays
far below 2^63 for billions of rows, so SQLite never overflows), and Python
joins them: ``hi * 10^9 + lo`` femto-dollars, an exact integer. The few rows
whose cost has no exact femto value are summed from ``cost_usd`` as before,
filtered so the Python aggregate only ever sees them. One code path serves
PostgreSQL too (its integer sums are exact and cheaper than NUMERIC sums).

Scans stay the source of truth: the audit rollup (``rollup.py``) stores these
same aggregates per sealed hour and adds them up, so a scan and a rollup read
give the same exact numbers; the scan is what reads the rows a rollup does not
cover (the window's partial hours, hours not sealed yet, filters on a query).

``folded`` weighs each row: a row ``audit compact`` made stands for that many
calls, so counts are sums of ``folded``, never ``count(*)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Float, Table, case, func

from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.ledger.sqltypes import FEMTO_EXPONENT, SUM_CONTEXT, exact_sum
from spendgraph.providers.spend import Spend

_SPLIT = 10**9
_FAILED = (CallStatus.ERROR.value, CallStatus.CANCELLED.value)


def call_totals(call: Table) -> list[ColumnElement[Any]]:
    """The labelled aggregates :func:`spend_of` reads, over ``call`` rows (maybe outer-joined)."""
    c = call.c
    weight = c.folded  # NULL on the all-NULL row of an outer join: SUM skips it
    return [
        func.coalesce(func.sum(weight), 0).label("calls"),
        func.coalesce(func.sum(case((c.status.in_(_FAILED), weight), else_=0)), 0).label("failed"),
        func.coalesce(
            func.sum(case((c.status == CallStatus.BUDGET_DENIED.value, weight), else_=0)), 0
        ).label("refused"),
        *(
            func.coalesce(func.sum(column), 0).label(column.name)
            for column in (c.input_uncached, c.input_cached, c.output, c.reasoning)
        ),
        func.sum(c.cost_femto // _SPLIT).label("femto_hi"),
        func.sum(c.cost_femto % _SPLIT).label("femto_lo"),
        exact_sum(c.cost_usd)
        .filter(c.cost_femto.is_(None), c.cost_usd.is_not(None))
        .label("cost_rest"),
        func.coalesce(func.sum(case((c.cost_usd.is_(None), weight), else_=0)), 0).label(
            "cost_unknown"
        ),
    ]


def sortable_cost(call: Table) -> ColumnElement[Any]:
    """A float sum of the calls' known cost, in femto-dollars: good to sort by, never to report."""
    c = call.c
    each = func.coalesce(c.cost_femto, func.cast(c.cost_usd, Float()) * 10**-FEMTO_EXPONENT)
    return func.coalesce(func.sum(func.cast(each, Float())), 0)


def known_cost(row: Mapping[str, Any]) -> Decimal:
    """The exact known cost of an aggregated row of :func:`call_totals`."""
    hi, lo, rest = row["femto_hi"], row["femto_lo"], row["cost_rest"]
    total = Decimal(0) if rest is None else Decimal(rest)
    if hi is None:
        return total
    return SUM_CONTEXT.add(total, _tidy(int(hi) * _SPLIT + int(lo), FEMTO_EXPONENT))


def spend_of(row: Mapping[str, Any]) -> Spend:
    """The :class:`Spend` of an aggregated row of :func:`call_totals`."""
    return Spend(
        calls=int(row["calls"]),
        failed=int(row["failed"]),
        refused=int(row["refused"]),
        input_uncached=int(row["input_uncached"]),
        input_cached=int(row["input_cached"]),
        output=int(row["output"]),
        reasoning=int(row["reasoning"]),
        known_cost=known_cost(row),
        unpriced=int(row["cost_unknown"]),
    )


def _tidy(units: int, exponent: int) -> Decimal:
    """``units * 10**exponent`` without trailing zeros, exactly (no context rounding)."""
    while units and units % 10 == 0 and exponent < 0:
        units //= 10
        exponent += 1
    # From text: Decimal arithmetic would round to the context's 28 digits.
    return Decimal(f"{units}E{exponent}") if units else Decimal(0)
