"""Reads for the audit CLI and spend summaries: SQL aggregation, frozen results.

Every total is a SUM over ``call`` rows computed by the database, read back
as a :class:`~spendgraph.providers.spend.Spend`. Unknown costs stay unknown:
``cost_usd`` NULLs are counted (``Spend.unpriced``) and never summed as 0.
These functions raise SQLAlchemy errors; the
:class:`~spendgraph.providers.ledger.ledger.Ledger` facade maps them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, and_, case, distinct, func, select

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.records import (
    BudgetEventRecord,
    CallRecord,
    CallStatus,
    QueryStatus,
)
from spendgraph.providers.ledger.rows import call_from_row
from spendgraph.providers.ledger.sqltypes import approx_sum, exact_sum, utc_day
from spendgraph.providers.ledger.tables import BUDGET_EVENT, CALL, QUERY
from spendgraph.providers.ledger.views import (
    GroupBy,
    GroupTotal,
    LedgerFilter,
    QueryRow,
    QuerySort,
    QuerySummary,
)
from spendgraph.providers.spend import Spend

_Choice = TypeVar("_Choice", GroupBy, QuerySort)

_CALLS_WITH_QUERY = CALL.outerjoin(QUERY, CALL.c.query_id == QUERY.c.id)

_GROUP_KEYS: dict[GroupBy, ColumnElement[Any]] = {
    GroupBy.AGENT: CALL.c.agent_path,
    GroupBy.ENDPOINT: CALL.c.endpoint,
    GroupBy.MODEL: CALL.c.model,
    GroupBy.HARDWARE: CALL.c.hardware,
    GroupBy.APP: QUERY.c.app,
    GroupBy.USER: QUERY.c.user,
    GroupBy.TENANT: QUERY.c.tenant,
    GroupBy.DAY: utc_day(CALL.c.started_at),
}


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
    conditions = _conditions(filters, q.started_at)
    sort_key = {
        QuerySort.TIME: q.started_at.desc(),
        QuerySort.COST: approx_sum(CALL.c.cost_usd).desc(),
        QuerySort.TOKENS: func.coalesce(_sum_total_tokens(), 0).desc(),
    }[_choice(QuerySort, sort)]
    stmt = _summaries().where(*conditions).order_by(sort_key, q.started_at.desc(), q.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_summary(row) for row in conn.execute(stmt).mappings()]


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
    key = _GROUP_KEYS[dimension].label("group_key")
    stmt = (
        select(key, *_totals(), func.count(distinct(CALL.c.query_id)).label("queries"))
        .select_from(_CALLS_WITH_QUERY)
        .where(*_conditions(filters, CALL.c.started_at))
        .group_by(_GROUP_KEYS[dimension])
    )
    if dimension is GroupBy.DAY:
        stmt = stmt.order_by(key)
    else:
        stmt = stmt.order_by(
            approx_sum(CALL.c.cost_usd).desc(), func.count(CALL.c.id).desc(), key.nulls_last()
        )
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        GroupTotal(key=row["group_key"], queries=row["queries"], spend=_spend(row)) for row in rows
    ]


def iter_calls(
    engine: Engine, filters: LedgerFilter | None = None, *, batch: int = 1000
) -> Iterator[CallRecord]:
    """Every call matching ``filters`` in start order, streamed ``batch`` rows at a time."""
    stmt = (
        select(CALL)
        .select_from(_CALLS_WITH_QUERY)
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
        select(QUERY, *_totals(), first_token.label("first_token_ms"))
        .select_from(QUERY.outerjoin(CALL, CALL.c.query_id == q.id))
        .group_by(q.id)
    )


def _totals() -> list[ColumnElement[Any]]:
    c = CALL.c
    # c.id IS NOT NULL: a query with no calls joins one all-NULL row; it is not an unpriced call.
    unpriced = case((and_(c.id.is_not(None), c.cost_usd.is_(None)), 1), else_=0)
    failed = case((c.status.in_([CallStatus.ERROR.value, CallStatus.CANCELLED.value]), 1), else_=0)
    refused = case((c.status == CallStatus.BUDGET_DENIED.value, 1), else_=0)
    return [
        func.count(c.id).label("calls"),
        func.coalesce(func.sum(failed), 0).label("failed"),
        func.coalesce(func.sum(refused), 0).label("refused"),
        func.coalesce(func.sum(c.input_uncached), 0).label("input_uncached"),
        func.coalesce(func.sum(c.input_cached), 0).label("input_cached"),
        func.coalesce(func.sum(c.output), 0).label("output"),
        func.coalesce(func.sum(c.reasoning), 0).label("reasoning"),
        exact_sum(c.cost_usd).label("cost_known"),
        func.coalesce(func.sum(unpriced), 0).label("cost_unknown"),
    ]


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


def _spend(row: Mapping[str, Any]) -> Spend:
    known = row["cost_known"]
    return Spend(
        calls=int(row["calls"]),
        failed=int(row["failed"]),
        refused=int(row["refused"]),
        input_uncached=int(row["input_uncached"]),
        input_cached=int(row["input_cached"]),
        output=int(row["output"]),
        reasoning=int(row["reasoning"]),
        known_cost=Decimal(0) if known is None else known,
        unpriced=int(row["cost_unknown"]),
    )


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
    return QuerySummary(query=query, spend=_spend(row), first_token_ms=row["first_token_ms"])
