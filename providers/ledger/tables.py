"""The ledger's tables: query, call, budget_event, api_key, the budget store, ledger_meta.

Totals are never the record: a query's tokens and cost are the SUM of its
``call`` rows (``cost_femto`` is the same cost as an integer, for fast exact
sums; a row folded by ``audit compact`` stands for ``folded`` calls). The
audit rollup (``rollup_*``, schema version 8) only caches such sums for
sealed hours, checked against the rows it came from at every read. The
tables live in their own :data:`METADATA`, so an app that defines tables of
its own never creates ledger tables by accident (or the other way round).

They are SQLAlchemy Core tables, not SQLModel classes: every read and write
of the ledger is Core SQL, and defining them as models imported SQLModel,
pydantic models and the ORM (~0.15 s) into every ``spendgraph audit`` run.
The DDL is what the SQLModel classes of schema version 7 emitted (VARCHAR
strings, NOT NULL unless optional, ``ix_<table>_<column>`` indexes); for ORM
use, :mod:`.orm` maps classes onto these tables.

Changing a table means adding a migration step (see ``migrations.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

from spendgraph.providers.ledger.schema_v8 import rollup_tables
from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, UTCDateTime

METADATA = MetaData()


def _text(name: str, default: str = "", **kwargs: object) -> Column:
    """A NOT NULL string column with a Python-side default ('' unless given)."""
    return Column(name, AutoString(), nullable=False, default=default, **kwargs)


# One end-user query: who asked, in which app, how it ended, its budget.
QUERY = Table(
    "query",
    METADATA,
    Column("id", AutoString(length=64), primary_key=True, nullable=False),
    _text("app", index=True),
    _text("thread_id"),
    _text("user", index=True),
    # Who pays: the tenant an API key of the front door belongs to ('' locally).
    _text("tenant", index=True),
    Column("started_at", UTCDateTime(), nullable=False, index=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    _text("status", "running"),
    Column("budget_usd", ExactDecimal(), nullable=True),
    Column("budget_tokens", Integer(), nullable=True),
    Column("store_text", Boolean(), nullable=False, default=False),
    Column("input_preview", Text(), nullable=True),
    Column("error", Text(), nullable=True),
    # The process running it, when it last renewed its lease and until when the
    # lease holds (NULL once closed); see leases.py. NULL owner: before version 5.
    Column("owner", AutoString(length=128), nullable=True),
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True, index=True),
)

# One HTTP attempt to one endpoint, failed and cancelled ones included.
CALL = Table(
    "call",
    METADATA,
    Column("id", AutoString(length=64), primary_key=True, nullable=False),
    # Calls made outside any query are recorded with no query.
    Column("query_id", AutoString(length=64), ForeignKey("query.id"), nullable=True, index=True),
    _text("request_id", index=True),
    Column("attempt", Integer(), nullable=False, default=1),
    _text("agent_path"),
    _text("node"),
    _text("endpoint"),
    _text("model"),
    _text("hardware"),
    _text("precision"),
    _text("engine"),
    Column("stream", Boolean(), nullable=False, default=False),
    Column("started_at", UTCDateTime(), nullable=False, index=True),
    Column("ttft_ms", Float(), nullable=True),
    Column("latency_ms", Float(), nullable=True),
    Column("input_uncached", Integer(), nullable=False, default=0),
    Column("input_cached", Integer(), nullable=False, default=0),
    Column("output", Integer(), nullable=False, default=0),
    Column("reasoning", Integer(), nullable=False, default=0),
    _text("usage_source", "reported"),
    _text("status", "ok"),
    Column("error_kind", AutoString(), nullable=True),
    Column("http_status", Integer(), nullable=True),
    _text("price_version"),
    # NULL means the price was unknown: never 0, never summed as 0.
    Column("cost_usd", ExactDecimal(), nullable=True),
    Column("prompt_text", Text(), nullable=True),
    Column("completion_text", Text(), nullable=True),
    # Set when a call cost more than its budget reservation (a server that
    # ignored max_tokens, a prompt the server counted higher): by how much.
    Column("overrun_usd", ExactDecimal(), nullable=True),
    Column("overrun_tokens", Integer(), nullable=True),
    # cost_usd in 10^-15 USD when that is an exact 62-bit integer, else NULL: what
    # audits sum (exactly, in SQL); cost_usd stays the record (schema version 7).
    Column("cost_femto", BigInteger(), nullable=True),
    # How many calls this row stands for: more than 1 once `audit compact` folded them.
    Column("folded", Integer(), nullable=False, default=1, server_default="1"),
    Index("ix_call_query_started", "query_id", "started_at"),
)

# A scope's settled spend crossed a threshold (80%, 95%) of one of its budgets.
BUDGET_EVENT = Table(
    "budget_event",
    METADATA,
    Column("id", AutoString(length=64), primary_key=True, nullable=False),
    Column("at", UTCDateTime(), nullable=False, index=True),
    _text("scope"),
    _text("scope_id"),
    _text("period"),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("threshold", ExactDecimal(), nullable=False),
    _text("unit", "usd"),
    Column("spent", ExactDecimal(), nullable=False),
    Column("limit", ExactDecimal(), nullable=False),
    # No foreign key: events are written in a transaction of their own, and an
    # event is worth keeping even for a query whose row failed to write.
    Column("query_id", AutoString(length=64), nullable=True, index=True),
)

# A front-door API key: only its SHA-256 digest is stored, never the key.
API_KEY = Table(
    "api_key",
    METADATA,
    Column("id", AutoString(length=64), primary_key=True, nullable=False),
    Column("digest", AutoString(length=64), nullable=False, unique=True),
    _text("prefix"),  # the first characters, so a user can tell keys apart
    Column("tenant", AutoString(), nullable=False, index=True),
    _text("user"),
    _text("name"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

# Key/value facts about the ledger itself, such as ``schema_version``.
META = Table(
    "ledger_meta",
    METADATA,
    Column("key", AutoString(length=64), primary_key=True, nullable=False),
    Column("value", AutoString(), nullable=False),
)


# -- the budget store (schema version 6) ------------------------------------

# A limit set at run time (``spendgraph budgets set``); ``scope_id`` '' binds every id.
BUDGET_LIMIT = Table(
    "budget_limit",
    METADATA,
    Column("scope", AutoString(length=16), primary_key=True, nullable=False),
    Column("scope_id", AutoString(), primary_key=True, nullable=False, default=""),
    Column("period", AutoString(length=16), primary_key=True, nullable=False),
    Column("usd", ExactDecimal(), nullable=True),
    Column("tokens", BigInteger(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One scope key's spend and live holds: the row workers lock to reserve against it.
BUDGET_ACCOUNT = Table(
    "budget_account",
    METADATA,
    Column("key", AutoString(), primary_key=True, nullable=False),
    Column("scope", AutoString(length=16), nullable=False),
    Column("scope_id", AutoString(), nullable=False),
    Column("period", AutoString(length=16), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("spent_usd", ExactDecimal(), nullable=False),
    Column("spent_tokens", BigInteger(), nullable=False),
    Column("held_usd", ExactDecimal(), nullable=False),
    Column("held_tokens", BigInteger(), nullable=False),
    _text("fired"),  # thresholds already reported, e.g. "0.8,0.95"
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_budget_account_scope", "scope", "period", "period_start", "scope_id"),
)

# What one attempt holds against one account until settled, released or expired.
BUDGET_HOLD = Table(
    "budget_hold",
    METADATA,
    Column("attempt_id", AutoString(length=64), primary_key=True, nullable=False),  # call id
    Column("account", AutoString(), primary_key=True, nullable=False),
    # The query the attempt runs in: its lease running out frees the hold early.
    Column("query_id", AutoString(length=64), nullable=True),
    Column("usd", ExactDecimal(), nullable=True),
    Column("tokens", BigInteger(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # held, or released (given back unsettled; kept a while). A settle deletes the row.
    Column("state", AutoString(length=16), nullable=False, default="held"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("released_at", UTCDateTime(), nullable=True),
    Index("ix_budget_hold_expiry", "state", "expires_at"),
    Index("ix_budget_hold_account", "account", "state", "expires_at"),
)


# -- the audit rollup (schema version 8; see rollup.py) -----------------------
ROLLUP_HOUR, ROLLUP_SEALED, ROLLUP_SPAN = rollup_tables(METADATA)
