"""Retention: fold old ``call`` rows into fewer rows that keep every audit total exact.

``compact(engine, before)`` replaces the calls started before ``before``
(of finished queries, and calls outside any query) by one row per group of
calls that every audit tells apart: the same query, agent path, node,
endpoint, model, hardware, precision, engine, UTC day, status, usage source,
price version and kind of cost (unknown, zero, positive). The new row holds
the group's summed token buckets and exact summed cost, ``folded`` = how many
calls it stands for, and starts when the group's first call started. So
``audit summary`` (any ``--by``, any filter with day bounds), ``audit
queries``, ``show``'s totals and ``reprice`` (prices are linear in tokens)
print what they printed before. The query's first token time survives: the
row holding the query's earliest timed call keeps that call's time to first
token, the other folded rows have none. What is dropped: per-call timings,
request ids, attempts, error details and any stored prompt/completion text.

Each batch of queries is folded in one transaction (deletes and inserts
together, and the audit rollup's sealed hours before ``before`` dropped), so a
crash mid-way leaves every query either folded or untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, or_, select

from spendgraph.providers.ledger.records import QueryStatus
from spendgraph.providers.ledger.rollup import drop_before
from spendgraph.providers.ledger.sqltypes import SUM_CONTEXT, femto_of
from spendgraph.providers.ledger.store import WRITE_OPTION
from spendgraph.providers.ledger.tables import CALL, QUERY

# Queries folded per transaction: bounded memory, short write locks.
_QUERIES_PER_BATCH = 2_000
_KEY = (
    "query_id", "agent_path", "node", "endpoint", "model", "hardware", "precision", "engine",
    "status", "usage_source", "price_version",
)  # fmt: skip
_SUMMED = ("input_uncached", "input_cached", "output", "reasoning", "folded")


@dataclass(frozen=True, slots=True)
class Compaction:
    """What :func:`compact` did: ``calls`` rows (standing for ``folded`` calls) became ``rows``."""

    before: datetime
    calls: int
    rows: int
    queries: int


def compact(engine: Engine, before: datetime) -> Compaction:
    """Fold the calls started before ``before`` (see the module docstring)."""
    writer = engine.execution_options(**{WRITE_OPTION: True})
    calls = rows = queries = 0
    for batch in _batches(engine, before):
        with writer.begin() as conn:
            old = _calls_of(conn, batch, before)
            new = fold(old)
            if len(new) >= len(old):
                continue  # nothing to gain: every call is alone in its group
            ids = [row.id for row in old]
            # The rollup's hours before `before` no longer hold these rows: resealed later.
            drop_before(conn, before)
            for start in range(0, len(ids), 500):
                conn.execute(delete(CALL).where(CALL.c.id.in_(ids[start : start + 500])))
            conn.execute(insert(CALL), new)
        calls, rows, queries = calls + len(old), rows + len(new), queries + len(batch)
    return Compaction(before=before, calls=calls, rows=rows, queries=queries)


def _batches(engine: Engine, before: datetime) -> Iterator[list[str | None]]:
    """Query ids with calls to fold (None: calls outside any query), in batches."""
    c = CALL.c
    stmt = (
        select(c.query_id)
        .select_from(CALL.outerjoin(QUERY, c.query_id == QUERY.c.id))
        .where(c.started_at < before, _finished())
        .group_by(c.query_id)
        .order_by(c.query_id)
    )
    with engine.connect() as conn:
        ids = list(conn.execute(stmt).scalars())
    for start in range(0, len(ids), _QUERIES_PER_BATCH):
        yield ids[start : start + _QUERIES_PER_BATCH]


def _finished() -> Any:
    # A running query may still be adding calls and reading its own totals.
    return or_(CALL.c.query_id.is_(None), QUERY.c.status != QueryStatus.RUNNING.value)


def _calls_of(conn: Connection, batch: Sequence[str | None], before: datetime) -> list[Row]:
    c = CALL.c
    ids = [query_id for query_id in batch if query_id is not None]
    which = [c.query_id.in_(ids)] if ids else []
    if None in batch:
        which.append(c.query_id.is_(None))
    stmt = (
        select(CALL)
        .select_from(CALL.outerjoin(QUERY, c.query_id == QUERY.c.id))
        .where(c.started_at < before, _finished(), or_(*which))
        .order_by(c.query_id, c.started_at, c.id)
    )
    return list(conn.execute(stmt))


def fold(calls: Sequence[Row]) -> list[dict[str, Any]]:
    """The folded rows (column dicts) for ``calls``, given in (query, start, id) order."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for call in calls:
        groups.setdefault(_group_key(call), []).append(call)
    # Per query, the earliest call with a time to first token (the order reads use).
    timed: dict[Any, Row] = {}
    for call in calls:
        if call.ttft_ms is not None:
            timed.setdefault(call.query_id, call)
    carriers = {id(call) for call in timed.values()}
    return [_folded_row(members, carriers) for members in groups.values()]


def _group_key(call: Row) -> tuple[Any, ...]:
    cost = call.cost_usd
    kind = "unknown" if cost is None else ("zero" if cost == 0 else "priced")
    return (*(getattr(call, name) for name in _KEY), call.started_at.date(), kind)


def _folded_row(members: list[Row], carriers: set[int]) -> dict[str, Any]:
    first = members[0]
    carrier = next((call for call in members if id(call) in carriers), None)
    row: dict[str, Any] = {name: getattr(first, name) for name in _KEY}
    row.update({name: sum(getattr(call, name) for call in members) for name in _SUMMED})
    cost = _exact_sum(call.cost_usd for call in members)
    row.update(
        id=f"fold-{uuid.uuid4().hex}",
        request_id="",
        attempt=1,
        stream=first.stream,
        started_at=first.started_at,
        ttft_ms=None if carrier is None else carrier.ttft_ms,
        latency_ms=None,
        error_kind=first.error_kind if len(members) == 1 else None,
        http_status=first.http_status if len(members) == 1 else None,
        cost_usd=cost,
        cost_femto=femto_of(cost),
        prompt_text=None,
        completion_text=None,
        overrun_usd=_exact_sum(call.overrun_usd for call in members),
        overrun_tokens=_int_sum(call.overrun_tokens for call in members),
    )
    return row


def _exact_sum(values: Iterator[Decimal | None]) -> Decimal | None:
    total: Decimal | None = None
    for value in values:
        if value is not None:
            total = value if total is None else SUM_CONTEXT.add(total, value)
    return total


def _int_sum(values: Iterator[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None
