"""Schema version 7, frozen once released: integer costs for fast exact sums, folded calls.

``call.cost_femto`` is ``cost_usd`` in units of 10^-15 USD when that is an
exact integer of at most 62 bits (every cost of a price with up to nine
decimals per million tokens, up to about $4,600 per call), else NULL.
Audits sum it with integer SQL (see ``sums.py``): exact, and no per-row
Python on SQLite, where ``cost_usd`` is decimal text that only a Python
aggregate can add exactly. Rows whose cost does not fit keep being summed
from ``cost_usd``, so nothing is rounded; ``cost_usd`` stays the record.

``call.folded`` is how many calls a row stands for: 1 for a recorded call,
more for a row that ``spendgraph audit compact`` folded old calls into.

Existing rows are backfilled here, in the migration's transaction.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    bindparam,
    select,
    update,
)

from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, femto_of

_BATCH = 10_000


def _call_columns() -> Table:
    return Table(
        "call",
        MetaData(),
        Column("id", AutoString(length=64), primary_key=True),
        Column("cost_usd", ExactDecimal(), nullable=True),
        Column("cost_femto", BigInteger(), nullable=True),
        Column("folded", Integer(), nullable=False, server_default="1"),
        Column("query_id", AutoString(length=64), nullable=True),
        Column("started_at", AutoString(), nullable=False),
        Column("ttft_ms", Integer(), nullable=True),
    )


def add_integer_costs_and_folds(conn: Connection) -> None:
    """``call.cost_femto`` (backfilled), ``call.folded`` (1), and an index for first tokens."""
    call = _call_columns()
    preparer = conn.dialect.identifier_preparer
    femto = call.c.cost_femto.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE call ADD COLUMN {preparer.quote('cost_femto')} {femto}")
    conn.exec_driver_sql(
        f"ALTER TABLE call ADD COLUMN {preparer.quote('folded')} INTEGER NOT NULL DEFAULT 1"
    )
    # A query's calls in start order: its first token, and its calls for `audit show`.
    Index("ix_call_query_started", call.c.query_id, call.c.started_at).create(conn)
    _backfill(conn, call)


def _backfill(conn: Connection, call: Table) -> None:
    rows = conn.execute(
        select(call.c.id, call.c.cost_usd).where(call.c.cost_usd.is_not(None))
    ).all()
    set_femto = (
        update(call).where(call.c.id == bindparam("b_id")).values(cost_femto=bindparam("b_femto"))
    )
    params = [
        {"b_id": row.id, "b_femto": femto}
        for row in rows
        if (femto := femto_of(Decimal(row.cost_usd))) is not None
    ]
    for start in range(0, len(params), _BATCH):
        conn.execute(set_femto, params[start : start + _BATCH])
