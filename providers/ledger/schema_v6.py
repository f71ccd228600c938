"""Schema version 6, frozen once released: the budget store's tables.

* ``budget_limit``: limits set at run time (``spendgraph budgets set``), one
  per (scope, scope id, period); ``scope_id`` '' binds every id of the scope.
* ``budget_account``: one row per scope key (a tenant's month, a user's day):
  what the key has spent (seeded from the ledger when first seen) and what live
  holds hold against it, the thresholds already reported, and the row every
  worker locks to reserve against the key.
* ``budget_hold``: one row per (attempt, account) a call holds, with its expiry;
  a settle deletes it (a second settle finds nothing: idempotent by attempt id),
  a release marks it ``released`` (kept a day: a late settle still counts). A
  killed worker's holds are found and reconciled from the ledger (its
  ``query_id`` frees them early: the query's lease runs out when its worker dies).

Every ledger gets the tables (SQLite too: the limits work there); only the
PostgreSQL budget store writes accounts and holds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, Table

from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, UTCDateTime


def add_budget_store(conn: Connection) -> None:
    """The ``budget_limit``, ``budget_account`` and ``budget_hold`` tables."""
    meta = MetaData()
    Table(
        "budget_limit",
        meta,
        Column("scope", AutoString(length=16), primary_key=True),
        Column("scope_id", AutoString(), primary_key=True),
        Column("period", AutoString(length=16), primary_key=True),
        Column("usd", ExactDecimal(), nullable=True),
        Column("tokens", BigInteger(), nullable=True),
        Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    )
    account = Table(
        "budget_account",
        meta,
        Column("key", AutoString(), primary_key=True),
        Column("scope", AutoString(length=16), nullable=False),
        Column("scope_id", AutoString(), nullable=False),
        Column("period", AutoString(length=16), nullable=False),
        Column("period_start", UTCDateTime(timezone=True), nullable=False),
        Column("spent_usd", ExactDecimal(), nullable=False),
        Column("spent_tokens", BigInteger(), nullable=False),
        Column("held_usd", ExactDecimal(), nullable=False),
        Column("held_tokens", BigInteger(), nullable=False),
        Column("fired", AutoString(), nullable=False),
        Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    Index(
        "ix_budget_account_scope",
        account.c.scope,
        account.c.period,
        account.c.period_start,
        account.c.scope_id,
    )
    hold = Table(
        "budget_hold",
        meta,
        Column("attempt_id", AutoString(length=64), primary_key=True),
        Column("account", AutoString(), primary_key=True),
        Column("query_id", AutoString(length=64), nullable=True),
        Column("usd", ExactDecimal(), nullable=True),
        Column("tokens", BigInteger(), nullable=False),
        Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        Column("state", AutoString(length=16), nullable=False),
        Column("created_at", UTCDateTime(timezone=True), nullable=False),
        Column("released_at", UTCDateTime(timezone=True), nullable=True),
    )
    # Expired holds are looked for by fate and expiry (reconciliation), and per
    # account (a refused reserve checks whether expired holds stood in its way).
    Index("ix_budget_hold_expiry", hold.c.state, hold.c.expires_at)
    Index("ix_budget_hold_account", hold.c.account, hold.c.state, hold.c.expires_at)
    meta.create_all(conn)
