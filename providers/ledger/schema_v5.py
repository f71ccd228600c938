"""Schema version 5, frozen once released: running queries' owners and leases.

``query.owner`` names the process that runs a query (``host:pid:random``),
``query.heartbeat_at`` is when that process last said it was alive, and
``query.lease_expires_at`` how long that promise holds (NULL once the query is
closed, so its index holds only running queries). See ``leases.py``.

Queries already ``running`` when a ledger migrates have no owner: most were
left by a process that died (there was no way to tell before this version).
They get a lease of :data:`LEGACY_GRACE` from the migration, then the next
sweep marks them ``interrupted``; a process of the old version that is still
running one can still close it with its real outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Connection, Index, MetaData, Table, update

from spendgraph.providers.ledger.sqltypes import AutoString, UTCDateTime

LEGACY_GRACE = timedelta(minutes=15)


def _query_lease_columns() -> Table:
    return Table(
        "query",
        MetaData(),
        Column("status", AutoString()),
        Column("owner", AutoString(length=128), nullable=True),
        Column("heartbeat_at", UTCDateTime(timezone=True), nullable=True),
        Column("lease_expires_at", UTCDateTime(timezone=True), nullable=True),
    )


def add_query_leases(conn: Connection) -> None:
    """``query.owner``, ``query.heartbeat_at``, ``query.lease_expires_at`` (indexed)."""
    query = _query_lease_columns()
    preparer = conn.dialect.identifier_preparer
    for name in ("owner", "heartbeat_at", "lease_expires_at"):
        kind = query.c[name].type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE query ADD COLUMN {preparer.quote(name)} {kind}")
    Index("ix_query_lease_expires_at", query.c.lease_expires_at).create(conn)
    conn.execute(
        update(query)
        .where(query.c.status == "running")
        .values(lease_expires_at=datetime.now(UTC) + LEGACY_GRACE)
    )
