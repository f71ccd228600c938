"""Schema version 4, frozen: who pays for a query, and the front door's API keys.

``query.tenant`` names the tenant an API key belongs to ('' for local runs);
``api_key`` stores each key's SHA-256 digest, never the key itself.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Index, MetaData, Table

from spendgraph.providers.ledger.sqltypes import AutoString, UTCDateTime


def add_tenants_and_api_keys(conn: Connection) -> None:
    """``query.tenant`` (old rows: '') and the ``api_key`` table."""
    # NOT NULL with a default so every existing query reads as a local run.
    conn.exec_driver_sql("ALTER TABLE query ADD COLUMN tenant VARCHAR DEFAULT '' NOT NULL")
    meta = MetaData()
    query = Table("query", meta, Column("tenant", AutoString()))
    Index("ix_query_tenant", query.c.tenant).create(conn)
    keys = Table(
        "api_key",
        meta,
        Column("id", AutoString(length=64), primary_key=True),
        Column("digest", AutoString(length=64), nullable=False, unique=True),
        Column("prefix", AutoString(), nullable=False),
        Column("tenant", AutoString(), nullable=False, index=True),
        Column("user", AutoString(), nullable=False),
        Column("name", AutoString(), nullable=False),
        Column("created_at", UTCDateTime(timezone=True), nullable=False),
        Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
    )
    keys.create(conn)
