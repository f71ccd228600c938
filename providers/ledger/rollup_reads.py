"""Audit totals from the rollup's sealed hours plus the rows around them, exactly.

A summary over ``[since, until)`` splits into *sealed runs* (sealed ranges lying
wholly inside the window whose row counts still match; see ``rollup.py``) and
the rest, which is scanned row by row as before (the window's partial first
and last hours, hours not sealed yet). Sums add. Distinct queries per group
``v`` are, exactly::

    sum of single_queries(v) over the sealed runs      (queries wholly inside one sealed hour)
  + distinct queries of v among the scanned rows
  + spanning queries with a v-call in the sealed runs and none in the scanned rows

since a query is either single (all its calls in one hour: counted in that
hour, which is either sealed or scanned) or listed in ``rollup_span`` (counted
from its call rows here, once).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select

from spendgraph.providers.ledger.dimensions import CALLS_WITH_QUERY, dimension_key, of_query
from spendgraph.providers.ledger.rollup import (
    HOUR,
    in_intervals,
    runs_of,
    sealed_ranges,
    stale_ranges,
)
from spendgraph.providers.ledger.sqltypes import SUM_CONTEXT, exact_sum
from spendgraph.providers.ledger.sums import spend_of
from spendgraph.providers.ledger.tables import CALL, ROLLUP_HOUR, ROLLUP_SPAN
from spendgraph.providers.ledger.views import GroupBy, GroupTotal, LedgerFilter
from spendgraph.providers.spend import Spend

_SUMMED = (
    "calls", "failed", "refused", "input_uncached", "input_cached", "output", "reasoning",
    "cost_unknown", "single_queries", "femto_hi", "femto_lo",
)  # fmt: skip
Interval = tuple[datetime | None, datetime | None]
Sealed = tuple[datetime, datetime, int]  # a sealed range: start, end, call rows
# Builds the row-level grouped statement for given time intervals (reads.grouped_totals).
ScanStatement = Callable[[ColumnElement[Any], Sequence[Interval]], Select[Any]]


def rollup_usable(filters: LedgerFilter | None) -> bool:
    """The rollup answers time bounds only: a filter on the query's app, user or thread
    needs the rows."""
    if filters is None:
        return True
    return all(value is None for value in (filters.app, filters.user, filters.thread_id))


def usable_ranges(conn: Connection, filters: LedgerFilter | None) -> list[Sealed]:
    """The sealed ranges lying wholly in ``filters``' time bounds, checked against the
    rows: none at all if any no longer matches (a call recorded late, rows deleted --
    the counts of the queries involved no longer split by hour, so the rows are read
    until a refresh has resealed it)."""
    since, until = _bounds(filters)
    ranges = sealed_ranges(conn, _ceil_hour(since), until)
    return [] if stale_ranges(conn, ranges) else ranges


def group_totals(
    conn: Connection,
    dimension: GroupBy | str,
    filters: LedgerFilter | None,
    scan: ScanStatement,
    checked: Sequence[Sealed] | None = None,
) -> list[GroupTotal] | None:
    """One :class:`GroupTotal` per value of ``dimension`` (:data:`TOTAL`: one group) over
    ``filters``' time bounds, or None when no usable sealed hour lies in them (scan
    instead). ``checked``: :func:`usable_ranges` of a window holding this one, read in
    the same snapshot (a timeline checks its window once, not each bucket)."""
    since, until = _bounds(filters)
    if checked is None:
        ranges = usable_ranges(conn, filters)
    else:
        low = _ceil_hour(since)
        ranges = [
            r for r in checked if (low is None or r[0] >= low) and (until is None or r[1] <= until)
        ]
    if not ranges:
        return None
    runs = runs_of(ranges)
    key = dimension_key(dimension)
    rest = _complement(runs, since, until)
    spend: dict[str | None, Spend] = defaultdict(Spend)
    queries: dict[str | None, int] = defaultdict(int)
    for row in conn.execute(_sealed_sums(dimension, runs)).mappings():
        value = None if row["value_null"] else row["value"]
        spend[value] = _add(spend[value], spend_of(row))
        queries[value] += int(row["single_queries"])
    if rest:
        for row in conn.execute(scan(key, rest)).mappings():
            spend[row["key_0"]] = _add(spend[row["key_0"]], spend_of(row))
            queries[row["key_0"]] += int(row["queries"])
    for value, extra in _spanning_queries(conn, key, runs, rest).items():
        queries[value] += extra
    return [GroupTotal(key=value, queries=queries[value], spend=spend[value]) for value in spend]


def _sealed_sums(dimension: GroupBy | str, runs: Sequence[Interval]) -> Select[Any]:
    h = ROLLUP_HOUR.c
    sums = [func.sum(h[name]).label(name) for name in _SUMMED]
    return (
        select(h.value, h.value_null, *sums, exact_sum(h.cost_rest).label("cost_rest"))
        .where(h.dim == str(dimension), in_intervals(h.hour, runs))
        .group_by(h.value, h.value_null)
    )


def _spanning_queries(
    conn: Connection, key: ColumnElement[Any], runs: Sequence[Interval], rest: Sequence[Interval]
) -> dict[str | None, int]:
    """Per group value, the spanning queries with a call of it in ``runs`` and none in
    ``rest`` (the scan counted those)."""
    p, c = ROLLUP_SPAN.c, CALL.c
    low, high = runs[0][0], runs[-1][1]
    touching = select(p.query_id).where(
        p.first_hour < high, or_(p.last_hour.is_(None), p.last_hour >= low)
    )
    window = in_intervals(c.started_at, [*runs, *rest])
    stmt = (
        select(c.query_id, c.started_at, key.label("value"))
        .select_from(CALLS_WITH_QUERY if of_query(key) else CALL)
        .where(c.query_id.in_(touching), window)
    )
    starts = [start for start, _ in runs]
    sealed: set[tuple[str, Any]] = set()
    scanned: set[tuple[str, Any]] = set()
    for query_id, started_at, value in conn.execute(stmt):
        index = bisect.bisect_right(starts, started_at) - 1
        in_runs = index >= 0 and started_at < runs[index][1]
        (sealed if in_runs else scanned).add((query_id, value))
    out: dict[str | None, int] = defaultdict(int)
    for _, value in sealed - scanned:
        out[value] += 1
    return out


def _complement(
    runs: Sequence[tuple[datetime, datetime]], since: datetime | None, until: datetime | None
) -> list[Interval]:
    """The parts of ``[since, until)`` outside ``runs`` (which lie inside it, in order)."""
    out: list[Interval] = []
    cursor: datetime | None = since
    for start, end in runs:
        if cursor is None or cursor < start:
            out.append((cursor, start))
        cursor = end
    if until is None or cursor < until:
        out.append((cursor, until))
    return out


def _bounds(filters: LedgerFilter | None) -> tuple[datetime | None, datetime | None]:
    if filters is None:
        return None, None
    return _utc(filters.since), _utc(filters.until)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return None if moment is None else moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC)  # naive filter times are UTC


def _ceil_hour(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


def _add(a: Spend, b: Spend) -> Spend:
    # Spend's + adds costs in the default 28-digit context; sums of many costs need more.
    return dataclasses.replace(a + b, known_cost=SUM_CONTEXT.add(a.known_cost, b.known_cost))
