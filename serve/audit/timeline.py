"""Spend over time: the filtered calls cut into time buckets, each one an ``audit summary``.

The buckets partition the calls exactly: the first is open at its start (or
starts at ``since``), the last open at its end (or ends at ``until``), so the
buckets' totals add up to the summary of the whole window. A bucket is what
``audit summary --by BY --since START --until END --json`` prints, rendered by
the same view from :meth:`Ledger.summary_over_time` (per bucket, an index range
scan of its calls, on one connection; see there why not one grouped statement).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from spendgraph.providers.ledger import (
    GroupBy,
    GroupTotal,
    Ledger,
    LedgerFilter,
    QuerySort,
    TimeBuckets,
    utcnow,
)

MAX_BUCKETS = 48
# Bucket widths in seconds, smallest first: round numbers on a clock or a calendar.
_WIDTHS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400,
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (bucket filters, by, its groups, its distinct queries) -> `audit summary --json`
Render = Callable[[LedgerFilter, GroupBy, list[GroupTotal], int], dict[str, Any]]


def window(ledger: Ledger, filters: LedgerFilter) -> tuple[datetime, datetime] | None:
    """From the first matching call (or ``since``) to the newest query's end (or ``until``);
    None when no call matches."""
    calls = ledger.iter_calls(filters, batch=1)
    try:
        first = next(calls, None)
    finally:
        calls.close()  # releases the connection the generator holds
    if first is None:
        return None
    start = filters.since or first.started_at
    end = filters.until
    if end is None:
        newest = ledger.list_queries(filters, sort=QuerySort.TIME, limit=1)
        ends = [first.started_at] + [q.query.finished_at or utcnow() for q in newest]
        end = max(_aware(moment) for moment in ends)
    return _aware(start), _aware(end)


def bucket_width(start: datetime, end: datetime) -> int:
    """The smallest round width (seconds) that covers ``start..end`` in MAX_BUCKETS buckets."""
    seconds = (end - start).total_seconds()
    for width in _WIDTHS:
        if seconds / width < MAX_BUCKETS - 1:
            return width
    return _WIDTHS[-1]


def timeline(render: Render, ledger: Ledger, filters: LedgerFilter, by: GroupBy) -> dict[str, Any]:
    """``{"by", "width_s", "buckets": [{"start", "end", "summary"}]}``: spend per bucket."""
    span = window(ledger, filters)
    if span is None:
        return {"by": str(by), "width_s": None, "buckets": []}
    start, end = span
    width = bucket_width(start, end)
    first = _EPOCH + timedelta(seconds=(start - _EPOCH).total_seconds() // width * width)
    edges = [first]
    while edges[-1] <= end and len(edges) <= MAX_BUCKETS:
        edges.append(edges[-1] + timedelta(seconds=width))
    cuts = TimeBuckets(start=first, width_s=width, count=len(edges) - 1)
    per_bucket = ledger.summary_over_time(by, filters, cuts)
    buckets = []
    for index, (lower, upper) in enumerate(itertools.pairwise(edges)):
        last = index == len(edges) - 2
        bounds = dataclasses.replace(
            filters,
            since=filters.since if index == 0 else lower,
            until=filters.until if last else upper,
        )
        groups, queries = per_bucket[index]
        summary = render(bounds, by, groups, queries)
        buckets.append({"start": lower.isoformat(), "end": upper.isoformat(), "summary": summary})
    return {"by": str(by), "width_s": width, "buckets": buckets}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
