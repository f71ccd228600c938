"""Schema version 1, frozen: the tables as they were first released.

A fresh ledger replays every migration from here, so this must never change;
later columns are added by the steps in ``migrations.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
)

from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, UTCDateTime


def _tables() -> tuple[MetaData, list[Table]]:
    meta = MetaData()

    def text_col(name: str, **kw) -> Column:
        return Column(name, AutoString(), nullable=False, **kw)

    query = Table(
        "query",
        meta,
        Column("id", AutoString(length=64), primary_key=True),
        text_col("app", index=True),
        text_col("thread_id"),
        text_col("user", index=True),
        Column("started_at", UTCDateTime(timezone=True), nullable=False, index=True),
        Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        text_col("status"),
        Column("budget_usd", ExactDecimal(), nullable=True),
        Column("budget_tokens", Integer(), nullable=True),
        Column("store_text", Boolean(), nullable=False),
        Column("input_preview", Text(), nullable=True),
        Column("error", Text(), nullable=True),
    )
    call = Table(
        "call",
        meta,
        Column("id", AutoString(length=64), primary_key=True),
        Column(
            "query_id", AutoString(length=64), ForeignKey("query.id"), nullable=True, index=True
        ),
        text_col("request_id", index=True),
        Column("attempt", Integer(), nullable=False),
        *(text_col(name) for name in ("agent_path", "node", "endpoint", "model")),
        *(text_col(name) for name in ("hardware", "precision", "engine")),
        Column("stream", Boolean(), nullable=False),
        Column("started_at", UTCDateTime(timezone=True), nullable=False, index=True),
        Column("ttft_ms", Float(), nullable=True),
        Column("latency_ms", Float(), nullable=True),
        *(Column(n, Integer(), nullable=False) for n in ("input_uncached", "input_cached")),
        *(Column(n, Integer(), nullable=False) for n in ("output", "reasoning")),
        text_col("usage_source"),
        text_col("status"),
        Column("error_kind", AutoString(), nullable=True),
        Column("http_status", Integer(), nullable=True),
        text_col("price_version"),
        Column("cost_usd", ExactDecimal(), nullable=True),
        Column("prompt_text", Text(), nullable=True),
        Column("completion_text", Text(), nullable=True),
    )
    ledger_meta = Table(
        "ledger_meta",
        meta,
        Column("key", AutoString(length=64), primary_key=True),
        Column("value", AutoString(), nullable=False),
    )
    return meta, [query, call, ledger_meta]


def create_schema_v1(conn: Connection) -> None:
    meta, tables = _tables()
    meta.create_all(conn, tables=tables)
