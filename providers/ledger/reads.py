"""Reads for the audit CLI and spend summaries: SQL aggregation, frozen results.

Every total is a SUM over ``call`` rows computed by the database, read back
as a :class:`~spendgraph.providers.spend.Spend` (exactly: see ``sums.py``).
Unknown costs stay unknown: ``cost_usd`` NULLs are counted
(``Spend.unpriced``) and never summed as 0.

At scale (millions of calls): a summary over time bounds only adds up the
audit rollup's sealed hours and scans the rest (``rollup_reads.py``); a
summary joins ``query`` only when it groups or filters by a query's column;
a list of queries picks its page of query rows first and totals only their
calls (through ``ix_call_query_started``).
These functions raise SQLAlchemy errors; the
:class:`~spendgraph.providers.ledger.ledger.Ledger` facade maps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    distinct,
    func,
    select,
)

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import rollup_reads
from spendgraph.providers.ledger.dimensions import (
    CALLS_WITH_QUERY,
    GROUP_KEYS,
    TOTAL,
    is_constant,
    of_query,
)
from spendgraph.providers.ledger.records import BudgetEventRecord, CallRecord, QueryStatus
from spendgraph.providers.ledger.rollup import in_intervals
from spendgraph.providers.ledger.rows import call_from_row
from spendgraph.providers.ledger.sqltypes import exact_sum
from spendgraph.providers.ledger.sums import call_totals, sortable_cost, spend_of
from spendgraph.providers.ledger.tables import BUDGET_EVENT, CALL, QUERY
from spendgraph.providers.ledger.views import (
    GroupBy,
    GroupTotal,
    LedgerFilter,
    QueryRow,
    QuerySort,
    QuerySummary,
    TimeBuckets,
)

_Choice = TypeVar("_Choice", GroupBy, QuerySort)


def query_summary(engine: Engine, query_id: str) -> QuerySummary:
    """The query ``query_id`` with its calls' totals; :class:`LedgerError` if there is none."""
    stmt = _summaries().where(QUERY.c.id == query_id)
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise LedgerError(f"no query {query_id!r} in the ledger")
    return _summary(row)


def query_ids_with_prefix(engine: Engine, prefix: str, *, limit: int | None = 10) -> list[str]:
    """Ids of queries starting with ``prefix`` (case-sensitive), sorted: an exact match is first."""
    q = QUERY.c
    stmt = (
        select(q.id)
        # LIKE narrows (SQLite's LIKE ignores ASCII case); substr keeps it exact.
        .where(q.id.startswith(prefix, autoescape=True))
        .where(func.substr(q.id, 1, len(prefix)) == prefix)
        .order_by(func.length(q.id), q.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def list_queries(
    engine: Engine,
    filters: LedgerFilter | None = None,
    *,
    sort: QuerySort | str = QuerySort.TIME,
    limit: int | None = 50,
) -> list[QuerySummary]:
    """Queries matching ``filters`` (time bounds on the query's start), largest first."""
    q = QUERY.c
    order = _choice(QuerySort, sort)
    # The page's query ids first: a time sort reads them from the started_at
    # index; cost and token sorts total every matching query's calls once.
    if order is QuerySort.TIME:
        page = select(q.id).where(*_conditions(filters, q.started_at))
    else:
        page = (
            select(q.id)
            .select_from(QUERY.outerjoin(CALL, CALL.c.query_id == q.id))
            .where(*_conditions(filters, q.started_at))
            .group_by(q.id)
        )
    page = page.order_by(*_query_order(order))
    if limit is not None:
        page = page.limit(limit)
    stmt = _summaries().where(q.id.in_(page.scalar_subquery())).order_by(*_query_order(order))
    with engine.connect() as conn:
        return [_summary(row) for row in conn.execute(stmt).mappings()]


def _query_order(order: QuerySort) -> list[ColumnElement[Any]]:
    q = QUERY.c
    first = {
        QuerySort.TIME: [],
        QuerySort.COST: [sortable_cost(CALL).desc()],
        QuerySort.TOKENS: [func.coalesce(_sum_total_tokens(), 0).desc()],
    }[order]
    return [*first, q.started_at.desc(), q.id]


def calls_for_query(engine: Engine, query_id: str) -> list[CallRecord]:
    """The calls of one query as recorded, in start order."""
    c = CALL.c
    stmt = select(CALL).where(c.query_id == query_id).order_by(c.started_at, c.attempt, c.id)
    with engine.connect() as conn:
        return [call_from_row(row) for row in conn.execute(stmt).mappings()]


def summary_by(
    engine: Engine, group: GroupBy | str, filters: LedgerFilter | None = None
) -> list[GroupTotal]:
    """Call totals per value of ``group``: by known cost, highest first (``day``: by date)."""
    dimension = _choice(GroupBy, group)
    with _snapshot(engine) as conn:
        return _summary_rows(conn, dimension, filters)


def _summary_rows(
    conn: Connection, dimension: GroupBy, filters: LedgerFilter | None, checked: Any = None
) -> list[GroupTotal]:
    groups = _from_rollup(conn, dimension, filters, checked)
    if groups is not None:
        return _sorted_groups(dimension, groups)
    stmt = grouped_totals((GROUP_KEYS[dimension],), filters, conn.dialect.name)
    return _sorted_groups(dimension, [_group_total(row) for row in conn.execute(stmt).mappings()])


def _from_rollup(
    conn: Connection, dimension: GroupBy | str, filters: LedgerFilter | None, checked: Any = None
) -> list[GroupTotal] | None:
    """The groups from sealed hours plus a scan of the rest, when the rollup can answer
    (``checked``: the usable sealed ranges, if already read in this snapshot)."""
    if not rollup_reads.rollup_usable(filters):
        return None

    def scan(key: ColumnElement[Any], within: Sequence[Any]) -> Select[Any]:
        return grouped_totals((key,), filters, conn.dialect.name, within=within)

    return rollup_reads.group_totals(conn, dimension, filters, scan, checked)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements all read one snapshot: a read of the rollup and of
    the rows around it must agree (SQLite: its read transaction already does)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def _group_total(row: Mapping[str, Any]) -> GroupTotal:
    return GroupTotal(key=row["key_0"], queries=row["queries"], spend=spend_of(row))


def summary_over_time(
    engine: Engine, group: GroupBy | str, filters: LedgerFilter | None, buckets: TimeBuckets
) -> list[tuple[list[GroupTotal], int]]:
    """:func:`summary_by` and :func:`queries_with_calls` of each of ``buckets``. They
    partition the matching calls exactly, with the comparisons ``--since``/``--until``
    make: bucket ``i`` holds the calls started in ``[start + i*width, start + (i+1)*width)``,
    the first and the last open-ended.

    One summary per bucket, each a range scan of the ``started_at`` index, on one
    connection. One statement grouping every row by (bucket, key) was measured
    3-3.5x slower on both backends (SQLite at 1M calls, PostgreSQL at 200k): its
    sort or hash by (bucket, key) and the distinct queries per group dominate.
    Per app, user or tenant the bucket's queries are the groups' sum (a query has
    one app), so no distinct count is made."""
    dimension = _choice(GroupBy, group)
    per_query = dimension in (GroupBy.APP, GroupBy.USER, GroupBy.TENANT)
    out = []
    with _snapshot(engine) as conn:
        # The sealed hours are checked against the rows once for the whole window.
        usable = rollup_reads.rollup_usable(filters)
        checked = rollup_reads.usable_ranges(conn, filters) if usable else []
        for bounds in _bucket_filters(filters, buckets):
            groups = _summary_rows(conn, dimension, bounds, checked)
            if not per_query:
                out.append((groups, _distinct_queries(conn, bounds, checked)))
            else:
                out.append((groups, sum(g.queries for g in groups)))
    return out


def _bucket_filters(filters: LedgerFilter | None, buckets: TimeBuckets) -> list[LedgerFilter]:
    """``filters`` narrowed to each bucket (the first keeps its ``since``, the last its
    ``until``)."""
    base = filters or LedgerFilter()
    width = timedelta(seconds=buckets.width_s)
    out = []
    for index in range(buckets.count):
        lower, upper = buckets.start + index * width, buckets.start + (index + 1) * width
        since = base.since if index == 0 or (base.since and base.since > lower) else lower
        last = index == buckets.count - 1
        until = base.until if last or (base.until and base.until < upper) else upper
        out.append(dataclasses.replace(base, since=since, until=until))
    return out


def _sorted_groups(dimension: GroupBy, totals: list[GroupTotal]) -> list[GroupTotal]:
    # Sorted here, on exact costs: a handful of groups, and no float ordering in SQL.
    if dimension is GroupBy.DAY:
        totals.sort(key=lambda total: total.key or "")
    else:
        totals.sort(key=lambda total: (total.key is None, total.key or ""))
        totals.sort(key=lambda total: (total.spend.known_cost, total.spend.calls), reverse=True)
    return totals


def grouped_totals(
    keys: tuple[ColumnElement[Any], ...],
    filters: LedgerFilter | None,
    dialect: str,
    *,
    within: Sequence[tuple[datetime | None, datetime | None]] | None = None,
) -> Select[Any]:
    """One row per value of ``keys`` (labelled ``key_0``...): :func:`call_totals` and the
    number of distinct queries (``queries``), in one statement (so one snapshot).

    On PostgreSQL the distinct count is the number of (keys, query_id)
    groups, not ``count(DISTINCT query_id)``: it sorts inside a DISTINCT
    aggregate (never in parallel) where a GROUP BY hashes -- at 1M calls that
    was ~1.2 s of a 1.5 s summary. On SQLite it is the other way round (its
    DISTINCT aggregate is one b-tree per group; the pairs cost 2x).

    ``within`` limits the calls to those ``[start, end)`` intervals (the rollup's
    unsealed parts) instead of ``filters``' time bounds."""
    joins = any(of_query(key) for key in keys)
    source = CALLS_WITH_QUERY if joins or _filters_queries(filters) else CALL
    where = _conditions(filters, CALL.c.started_at)
    if within is not None:
        bounds = dataclasses.replace(filters or LedgerFilter(), since=None, until=None)
        where = [*_conditions(bounds, CALL.c.started_at), in_intervals(CALL.c.started_at, within)]
    labelled = [key.label(f"key_{n}") for n, key in enumerate(keys)]
    grouping = [key for key in keys if not is_constant(key)]
    sums = select(*labelled, *call_totals(CALL)).select_from(source).where(*where)
    if dialect != "postgresql":
        distinct_queries = func.count(distinct(CALL.c.query_id)).label("queries")
        return sums.add_columns(distinct_queries).group_by(*grouping)
    sums = sums.group_by(*grouping).subquery("sums")
    pairs = (
        select(*labelled)
        .select_from(source)
        .where(*where, CALL.c.query_id.is_not(None))
        .group_by(*grouping, CALL.c.query_id)
        .subquery("pairs")
    )
    names = [column.name for column in labelled]
    counted = select(*(pairs.c[name] for name in names), func.count().label("queries"))
    counted = counted.group_by(*(pairs.c[name] for name in names)).subquery("counted")
    joined = sums.outerjoin(
        counted, and_(*(sums.c[name].is_not_distinct_from(counted.c[name]) for name in names))
    )
    queries = func.coalesce(counted.c.queries, 0).label("queries")
    return select(*sums.c, queries).select_from(joined)


def queries_with_calls(engine: Engine, filters: LedgerFilter | None = None) -> int:
    """How many distinct queries the calls matching ``filters`` belong to (a summary's total)."""
    with _snapshot(engine) as conn:
        return _distinct_queries(conn, filters)


def _distinct_queries(conn: Connection, filters: LedgerFilter | None, checked: Any = None) -> int:
    total = _from_rollup(conn, TOTAL, filters, checked)
    if total is not None:
        return sum(group.queries for group in total)
    c = CALL.c
    source = CALLS_WITH_QUERY if _filters_queries(filters) else CALL
    where = _conditions(filters, c.started_at)
    if conn.dialect.name == "postgresql":  # groups, not a DISTINCT aggregate: see above
        ids = select(c.query_id).select_from(source).where(*where, c.query_id.is_not(None))
        stmt = select(func.count()).select_from(ids.group_by(c.query_id).subquery())
    else:
        stmt = select(func.count(distinct(c.query_id))).select_from(source).where(*where)
    return int(conn.execute(stmt).scalar() or 0)


def _filters_queries(filters: LedgerFilter | None) -> bool:
    """True when ``filters`` match on the query a call belongs to (so ``query`` is joined)."""
    if filters is None:
        return False
    return any(value is not None for value in (filters.app, filters.user, filters.thread_id))


def iter_calls(
    engine: Engine, filters: LedgerFilter | None = None, *, batch: int = 1000
) -> Iterator[CallRecord]:
    """Every call matching ``filters`` in start order, streamed ``batch`` rows at a time."""
    stmt = (
        select(CALL)
        .select_from(CALLS_WITH_QUERY)
        .where(*_conditions(filters, CALL.c.started_at))
        .order_by(CALL.c.started_at, CALL.c.id)
        .execution_options(yield_per=batch)
    )
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            yield call_from_row(row)


_SCOPE_COLUMNS: dict[str, ColumnElement[Any]] = {
    "user": QUERY.c.user,
    "tenant": QUERY.c.tenant,
    "app": QUERY.c.app,
    "thread": QUERY.c.thread_id,
}


def period_spend(
    engine: Engine, scope: str, scope_id: str, since: datetime, until: datetime
) -> tuple[Decimal, int]:
    """Known cost and tokens of the calls started in ``[since, until)`` by queries whose
    ``scope`` (user, app, thread) is ``scope_id``: where a scoped budget's period starts."""
    c = CALL.c
    stmt = (
        select(exact_sum(c.cost_usd), func.coalesce(_sum_total_tokens(), 0))
        .select_from(CALL.join(QUERY, c.query_id == QUERY.c.id))
        .where(_SCOPE_COLUMNS[scope] == scope_id, c.started_at >= since, c.started_at < until)
    )
    with engine.connect() as conn:
        usd, tokens = conn.execute(stmt).one()
    return (Decimal(0) if usd is None else usd), int(tokens)


def budget_events(engine: Engine, query_id: str | None = None) -> list[BudgetEventRecord]:
    """Threshold crossings recorded, oldest first (only ``query_id``'s, when given)."""
    e = BUDGET_EVENT.c
    stmt = select(BUDGET_EVENT).order_by(e.at, e.id)
    if query_id is not None:
        stmt = stmt.where(e.query_id == query_id)
    with engine.connect() as conn:
        return [BudgetEventRecord(**row) for row in conn.execute(stmt).mappings()]


def _summaries() -> Select[Any]:
    """Each query row with its call totals (one SQL statement, grouped by query)."""
    q = QUERY.c
    first = CALL.alias("first_call")
    first_token = (
        select(first.c.ttft_ms)
        .where(first.c.query_id == q.id, first.c.ttft_ms.is_not(None))
        .order_by(first.c.started_at, first.c.id)
        .limit(1)
        .correlate(QUERY)
        .scalar_subquery()
    )
    return (
        select(QUERY, *call_totals(CALL), first_token.label("first_token_ms"))
        .select_from(QUERY.outerjoin(CALL, CALL.c.query_id == q.id))
        .group_by(q.id)
    )


def _sum_total_tokens() -> ColumnElement[Any]:
    c = CALL.c
    return func.sum(c.input_uncached + c.input_cached + c.output)


def _conditions(filters: LedgerFilter | None, time_column: ColumnElement[Any]) -> list[Any]:
    conditions: list[Any] = []
    if filters is None:
        return conditions
    if filters.since is not None:
        conditions.append(time_column >= filters.since)
    if filters.until is not None:
        conditions.append(time_column < filters.until)
    if filters.app is not None:
        conditions.append(QUERY.c.app == filters.app)
    if filters.user is not None:
        conditions.append(QUERY.c.user == filters.user)
    if filters.thread_id is not None:
        conditions.append(QUERY.c.thread_id == filters.thread_id)
    return conditions


def _choice(kind: type[_Choice], value: _Choice | str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise LedgerError(f"unknown {kind.__name__} {value!r}; expected one of {allowed}") from None


def _summary(row: Mapping[str, Any]) -> QuerySummary:
    query = QueryRow(
        id=row["id"],
        app=row["app"],
        thread_id=row["thread_id"],
        user=row["user"],
        tenant=row["tenant"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=QueryStatus(row["status"]),
        budget_usd=row["budget_usd"],
        budget_tokens=row["budget_tokens"],
        store_text=bool(row["store_text"]),
        input_preview=row["input_preview"],
        error=row["error"],
    )
    return QuerySummary(query=query, spend=spend_of(row), first_token_ms=row["first_token_ms"])
