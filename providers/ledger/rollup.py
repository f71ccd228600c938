"""The audit rollup: sealed UTC hours of call totals, so audits over millions of calls stay fast.

Why a rollup: a summary of 1M calls scans 1M rows however narrow its columns
(about 1.5 s on SQLite here; grouping by agent with distinct queries 2.7 s),
so 10M calls cannot be audited in seconds by any scan. So once an hour is
over (plus :data:`GRACE` for calls recorded late), its calls' totals per value
of every audit dimension are stored -- *sealed* -- and audits add up sealed
hours instead of their rows. Nothing is on the write path: calls are
recorded as before; hours are sealed by whoever audits (``Ledger.refresh_rollup``,
``spendgraph audit rollup``), in batches of hours per transaction.

What keeps it exact:

- Sums are the same integer sums as a scan (``sums.call_totals``): adding
  hours adds exactly.
- Distinct queries do not add across hours, so each sealed hour counts only
  its *single* queries (all of whose calls lie in it); the queries that cross
  an hour boundary -- or were still running when the hour was sealed --
  are listed in ``rollup_span`` and counted from their call rows at read time
  (``rollup_reads.py``). Those are few: a query lasts seconds, an hour is long.
- Each sealed range records how many call rows it held. A read compares that
  with a count of the rows (one index range count) and, if any range no longer
  matches -- a call recorded after its hour was sealed, rows deleted --
  reads the rows instead; the next refresh drops and reseals it.
  ``audit compact`` drops the hours it folds.
- Dropping a sealed hour drops every sealed hour holding a call of a query
  that has calls in it (its single or spanning count only holds together).
- Rows changed in place keep their count, so triggers in the database (schema
  version 8) forget sealed hours on any UPDATE of a call row (all of them) or
  DELETE (the deleted rows' hours), whoever the writer is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    text,
)

from spendgraph.providers.ledger.dimensions import (
    CALLS_WITH_QUERY,
    TOTAL,
    dimension_key,
    is_constant,
    of_query,
)
from spendgraph.providers.ledger.records import QueryStatus
from spendgraph.providers.ledger.sqltypes import parse_utc_hour, utc_hour
from spendgraph.providers.ledger.store import WRITE_OPTION
from spendgraph.providers.ledger.sums import call_totals
from spendgraph.providers.ledger.tables import CALL, QUERY, ROLLUP_HOUR, ROLLUP_SEALED, ROLLUP_SPAN
from spendgraph.providers.ledger.views import GroupBy

HOUR = timedelta(hours=1)
# An hour is sealed this long after it ends: a call is recorded when it ends.
GRACE = timedelta(minutes=15)
# Every dimension an audit groups by, and the total.
DIMENSIONS: tuple[str, ...] = (*(member.value for member in GroupBy), TOTAL)
# Sealed per transaction: short write locks, progress kept if interrupted.
_ROWS_PER_BATCH = 50_000
_HOURS_PER_BATCH = 24


@dataclass(frozen=True, slots=True)
class RollupRefresh:
    """What :func:`refresh_rollup` did: hours sealed (``rows`` call rows), ranges dropped,
    and whether every hour up to ``until`` is sealed now (``complete``)."""

    sealed_hours: int
    rows: int
    dropped: int
    until: datetime
    complete: bool


def floor_hour(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC hour (naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def refresh_rollup(
    engine: Engine,
    *,
    now: datetime | None = None,
    time_budget_s: float | None = None,
    rebuild: bool = False,
) -> RollupRefresh:
    """Seal every unsealed hour that ended :data:`GRACE` before ``now``, after dropping
    sealed ranges whose rows changed (``rebuild``: every sealed range, for rows edited
    in place outside spendgraph, which no row count can tell). ``time_budget_s`` stops
    after the batch that exceeds it (the rest is sealed next time; reads scan it)."""
    until = floor_hour((now or datetime.now(UTC)) - GRACE)
    deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
    writer = engine.execution_options(**{WRITE_OPTION: True})
    hours = rows = 0
    # Checked first without the write lock: the usual refresh finds nothing to drop or
    # seal, and an index count of millions of rows must not stall the ledger's writers.
    with engine.connect() as conn:
        stale = rebuild or bool(stale_ranges(conn, sealed_ranges(conn)))
        due = _due(conn, until)
    dropped = 0
    if stale or due:
        with writer.begin() as conn:
            _lock(conn)
            dropped = _drop_all(conn) if rebuild else drop_stale(conn)
            _close_open_spans(conn)
    while due or dropped:
        with writer.begin() as conn:
            _lock(conn)
            batch_hours, batch_rows, done = _seal_batch(conn, until)
        hours, rows = hours + batch_hours, rows + batch_rows
        if done:
            return RollupRefresh(hours, rows, dropped, until, complete=True)
        if deadline is not None and time.monotonic() > deadline:
            return RollupRefresh(hours, rows, dropped, until, complete=False)
    return RollupRefresh(hours, rows, dropped, until, complete=True)


def _due(conn: Connection, until: datetime) -> bool:
    """Whether an hour before ``until`` is still to seal (with calls, or an empty gap)."""
    position = _first_call_hour(conn)
    return position is not None and _skip_sealed(position, runs_of(sealed_ranges(conn))) < until


def drop_before(conn: Connection, before: datetime) -> int:
    """Drop the sealed ranges that start before ``before`` (``audit compact`` folds them)."""
    stmt = select(ROLLUP_SEALED.c.start, ROLLUP_SEALED.c.end).where(ROLLUP_SEALED.c.start < before)
    return drop_ranges(conn, [(row.start, row.end) for row in conn.execute(stmt)])


def _drop_all(conn: Connection) -> int:
    dropped = len(sealed_ranges(conn))
    for table in (ROLLUP_HOUR, ROLLUP_SEALED, ROLLUP_SPAN):
        conn.execute(delete(table))
    return dropped


def drop_stale(conn: Connection) -> int:
    """Drop the sealed ranges whose call rows no longer number what they did when sealed."""
    return drop_ranges(conn, stale_ranges(conn, sealed_ranges(conn)))


def sealed_ranges(
    conn: Connection, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[datetime, datetime, int]]:
    """``(start, end, rows)`` of the sealed ranges lying wholly in ``[since, until)``, in order."""
    s = ROLLUP_SEALED.c
    stmt = select(s.start, s.end, s.rows).order_by(s.start)
    if since is not None:
        stmt = stmt.where(s.start >= since)
    if until is not None:
        stmt = stmt.where(s.end <= until)
    return [(row.start, row.end, int(row.rows)) for row in conn.execute(stmt)]


def stale_ranges(
    conn: Connection, ranges: Sequence[tuple[datetime, datetime, int]]
) -> list[tuple[datetime, datetime]]:
    """The ones of ``ranges`` whose call rows changed since sealing: one index count for
    all when nothing changed (the usual case), then one per range to find which."""
    if not ranges or count_rows(conn, runs_of(ranges)) == sum(r[2] for r in ranges):
        return []
    return [(a, b) for a, b, rows in ranges if count_rows(conn, [(a, b)]) != rows]


def runs_of(ranges: Iterable[tuple[datetime, datetime, int]]) -> list[tuple[datetime, datetime]]:
    """Adjacent ranges merged: the fewest ``[start, end)`` intervals covering them."""
    runs: list[tuple[datetime, datetime]] = []
    for start, end, _ in ranges:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def in_intervals(column: Any, intervals: Sequence[tuple[datetime | None, datetime | None]]) -> Any:
    """SQL: ``column`` lies in one of the ``[start, end)`` intervals (None: unbounded)."""
    parts = []
    for start, end in intervals:
        bounds = []
        if start is not None:
            bounds.append(column >= start)
        if end is not None:
            bounds.append(column < end)
        parts.append(and_(*bounds) if bounds else and_(True))
    return or_(*parts) if parts else and_(False)


def count_rows(conn: Connection, runs: Sequence[tuple[datetime, datetime]]) -> int:
    """How many call rows started in ``runs`` (an index range count each)."""
    total = 0
    for start, end in runs:
        stmt = select(func.count()).where(CALL.c.started_at >= start, CALL.c.started_at < end)
        total += int(conn.execute(stmt.select_from(CALL)).scalar() or 0)
    return total


def drop_ranges(conn: Connection, ranges: Sequence[tuple[datetime, datetime]]) -> int:
    """Drop the sealed ranges overlapping ``ranges`` and, transitively, every sealed range
    holding a call of a query that has calls in a dropped one (its single or spanning
    count only holds together); return how many sealed ranges were dropped."""
    if not ranges:
        return 0
    sealed = {(a, b) for a, b, _ in sealed_ranges(conn)}
    doomed = {(a, b) for a, b in sealed if _overlaps(a, b, ranges)}
    while doomed:
        extents = [_extent_of_queries(conn, a, b) for a, b in runs_of(_zero(doomed))]
        more = {(a, b) for a, b in sealed - doomed if _overlaps(a, b, extents)}
        if not more:
            break
        doomed |= more
    h, s, p = ROLLUP_HOUR.c, ROLLUP_SEALED.c, ROLLUP_SPAN.c
    for start, end in doomed:
        conn.execute(delete(ROLLUP_HOUR).where(h.hour >= start, h.hour < end))
        conn.execute(delete(ROLLUP_SEALED).where(s.start == start))
        touching = and_(p.first_hour < end, or_(p.last_hour.is_(None), p.last_hour >= start))
        conn.execute(delete(ROLLUP_SPAN).where(touching))
    return len(doomed)


def _zero(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime, int]]:
    return [(a, b, 0) for a, b in sorted(ranges)]


def _overlaps(start: datetime, end: datetime, intervals: Iterable[tuple[Any, Any]]) -> bool:
    return any((b is None or start < b) and (a is None or a < end) for a, b in intervals)


def _extent_of_queries(
    conn: Connection, start: datetime, end: datetime
) -> tuple[datetime | None, datetime | None]:
    """``[first hour, last hour + 1h)`` of every call of the queries with calls in
    ``[start, end)`` (the range itself when there are none)."""
    c = CALL.c
    here = select(c.query_id).where(c.started_at >= start, c.started_at < end)
    every = CALL.alias("every_call")
    stmt = select(func.min(every.c.started_at), func.max(every.c.started_at)).where(
        every.c.query_id.in_(here.where(c.query_id.is_not(None)).distinct())
    )
    first, last = conn.execute(stmt).one()
    if first is None:
        return start, end
    return min(start, floor_hour(first)), max(end, floor_hour(last) + HOUR)


def _lock(conn: Connection) -> None:
    # SQLite serialises writers already (BEGIN IMMEDIATE). On PostgreSQL a lock on
    # the ledger's own table (not an advisory lock: those span every schema of the
    # database) keeps two refreshers from sealing the same hour; plain reads pass.
    if conn.dialect.name == "postgresql":
        table = conn.dialect.identifier_preparer.format_table(ROLLUP_SEALED)
        conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))


def _close_open_spans(conn: Connection) -> None:
    """Give open spans of queries that have finished their last hour (the hours they were
    excluded from all hold their calls, so none lies past it)."""
    p, c, q = ROLLUP_SPAN.c, CALL.c, QUERY.c
    stmt = (
        select(p.query_id, func.max(c.started_at).label("last"))
        .select_from(ROLLUP_SPAN.join(QUERY, q.id == p.query_id).join(CALL, c.query_id == q.id))
        .where(p.last_hour.is_(None), q.status != QueryStatus.RUNNING.value)
        .group_by(p.query_id)
    )
    for row in conn.execute(stmt).all():
        conn.execute(
            ROLLUP_SPAN.update()
            .where(p.query_id == row.query_id)
            .values(last_hour=floor_hour(row.last))
        )


def _seal_batch(conn: Connection, until: datetime) -> tuple[int, int, bool]:
    """Seal the next unsealed hours before ``until``; return (hours, rows, nothing left)."""
    sealed = runs_of(sealed_ranges(conn))
    position = _first_call_hour(conn)
    hours = rows = 0
    while position is not None and position < until:
        position = _skip_sealed(position, sealed)
        if position >= until:
            break
        next_sealed = next((a for a, _ in sealed if a > position), until)
        next_call = _first_call_hour(conn, since=position)
        stop = min(until, next_sealed, next_call or until)
        if stop > position:  # no calls here: one empty sealed range
            conn.execute(insert(ROLLUP_SEALED).values(start=position, end=stop, rows=0))
            sealed = runs_of([*((a, b, 0) for a, b in sealed), (position, stop, 0)])
            position = stop
            continue
        stop = _batch_end(
            conn, position, min(until, next_sealed, position + _HOURS_PER_BATCH * HOUR)
        )
        rows += _seal_hours(conn, position, stop)
        hours += (stop - position) // HOUR
        position = stop
        if rows >= _ROWS_PER_BATCH or hours >= _HOURS_PER_BATCH:
            return hours, rows, False
    return hours, rows, True


def _batch_end(conn: Connection, start: datetime, end: datetime) -> datetime:
    """``end``, or earlier (whole hours, at least one) so that the batch holds about
    :data:`_ROWS_PER_BATCH` rows at most: the write lock is held for one batch."""
    while end - start > HOUR and count_rows(conn, [(start, end)]) > _ROWS_PER_BATCH:
        end = start + max(HOUR, ((end - start) // HOUR // 2) * HOUR)
    return end


def _skip_sealed(position: datetime, runs: Sequence[tuple[datetime, datetime]]) -> datetime:
    for start, end in runs:
        if start <= position < end:
            return end
    return position


def _first_call_hour(conn: Connection, since: datetime | None = None) -> datetime | None:
    stmt = select(func.min(CALL.c.started_at))
    if since is not None:
        stmt = stmt.where(CALL.c.started_at >= since)
    first = conn.execute(stmt).scalar()
    return None if first is None else floor_hour(first)


def _seal_hours(conn: Connection, start: datetime, end: datetime) -> int:
    """Seal each hour of ``[start, end)`` (unsealed, whole hours): its totals per value
    of every dimension, grouped by hour in one statement per dimension. Returns the
    call rows sealed."""
    c = CALL.c
    in_batch = and_(c.started_at >= start, c.started_at < end)
    hour = utc_hour(c.started_at)
    counts = conn.execute(select(hour, func.count()).where(in_batch).group_by(hour)).all()
    rows_per_hour = {parse_utc_hour(text): int(n) for text, n in counts}
    _record_spans(conn, in_batch)
    p = ROLLUP_SPAN.c
    # A spanning query's span covers every hour it has calls in: out of all their counts.
    spanning = select(p.query_id).where(
        p.first_hour < end, or_(p.last_hour.is_(None), p.last_hour >= start)
    )
    single = case((and_(c.query_id.is_not(None), c.query_id.not_in(spanning)), c.query_id))
    # An hour forgotten by a trigger (its rows changed) left its old sums behind.
    h = ROLLUP_HOUR.c
    conn.execute(delete(ROLLUP_HOUR).where(h.hour >= start, h.hour < end))
    values = []
    for dim in DIMENSIONS:
        key = dimension_key(dim)
        grouping = [hour] if is_constant(key) else [hour, key]
        stmt = (
            select(hour.label("hour"), key.label("value"), *call_totals(CALL))
            .add_columns(func.count(distinct(single)).label("single_queries"))
            .select_from(CALLS_WITH_QUERY if of_query(key) else CALL)
            .where(in_batch)
            .group_by(*grouping)
        )
        values += [_hour_row(dim, row) for row in conn.execute(stmt).mappings()]
    if values:
        conn.execute(insert(ROLLUP_HOUR), values)
    each = [start + n * HOUR for n in range((end - start) // HOUR)]
    conn.execute(
        insert(ROLLUP_SEALED),
        [{"start": h, "end": h + HOUR, "rows": rows_per_hour.get(h, 0)} for h in each],
    )
    return sum(rows_per_hour.values())


def _hour_row(dim: str, row: Any) -> dict[str, Any]:
    out = dict(row)
    value = out.pop("value")
    out.update(dim=dim, hour=parse_utc_hour(out["hour"]), value="" if value is None else str(value))
    out["value_null"] = value is None
    return out


def _record_spans(conn: Connection, in_batch: Any) -> None:
    """Add the queries with calls in the batch that also have calls in another hour, or
    are running, to ``rollup_span`` (merged with what is there)."""
    c, q, p = CALL.c, QUERY.c, ROLLUP_SPAN.c
    here = select(c.query_id).where(in_batch, c.query_id.is_not(None)).distinct()
    every = CALL.alias("every_call")
    stmt = (
        select(q.id, q.status, func.min(every.c.started_at), func.max(every.c.started_at))
        .select_from(QUERY.join(every, every.c.query_id == q.id))
        .where(q.id.in_(here))
        .group_by(q.id, q.status)
    )
    found: dict[str, tuple[datetime, datetime | None]] = {}
    for query_id, status, first, last in conn.execute(stmt):
        first, last = floor_hour(first), floor_hour(last)
        running = status == QueryStatus.RUNNING.value
        if running or first != last:
            found[query_id] = (first, None if running else last)
    if not found:
        return
    ids = list(found)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in conn.execute(select(ROLLUP_SPAN).where(p.query_id.in_(chunk))):
            first, last = found[row.query_id]
            wider = None if last is None or row.last_hour is None else max(last, row.last_hour)
            found[row.query_id] = (min(first, row.first_hour), wider)
        conn.execute(delete(ROLLUP_SPAN).where(p.query_id.in_(chunk)))
    conn.execute(
        insert(ROLLUP_SPAN),
        [{"query_id": k, "first_hour": a, "last_hour": b} for k, (a, b) in found.items()],
    )
