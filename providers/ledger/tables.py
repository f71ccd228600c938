"""The ledger's SQLModel tables: query, call, budget_event, api_key, the budget store, ledger_meta.

Totals are never stored: a query's tokens and cost are the SUM of its
``call`` rows. The tables live in their own SQLAlchemy registry, so an app
that defines SQLModel tables of its own never creates ledger tables by
accident (or the other way round).

Changing a table means adding a migration step (see ``migrations.py``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from spendgraph.providers.ledger.sqltypes import ExactDecimal, UTCDateTime


class LedgerModel(SQLModel, registry=registry()):
    """Base of the ledger tables; ``LedgerModel.metadata`` holds exactly them."""


class Query(LedgerModel, table=True):
    """One end-user query: who asked, in which app, how it ended, its budget."""

    __tablename__ = "query"

    id: str = Field(primary_key=True, max_length=64)
    app: str = Field(default="", index=True)
    thread_id: str = ""
    user: str = Field(default="", index=True)
    # Who pays: the tenant an API key of the front door belongs to ('' locally).
    tenant: str = Field(default="", index=True)
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = "running"
    budget_usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    budget_tokens: int | None = None
    store_text: bool = False
    input_preview: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    # The process running it, when it last renewed its lease and until when the
    # lease holds (NULL once closed); see leases.py. NULL owner: before version 5.
    owner: str | None = Field(default=None, max_length=128)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class Call(LedgerModel, table=True):
    """One HTTP attempt to one endpoint, failed and cancelled ones included."""

    __tablename__ = "call"

    id: str = Field(primary_key=True, max_length=64)
    # Calls made outside any query are recorded with no query.
    query_id: str | None = Field(default=None, foreign_key="query.id", index=True, max_length=64)
    request_id: str = Field(default="", index=True)
    attempt: int = 1
    agent_path: str = ""
    node: str = ""
    endpoint: str = ""
    model: str = ""
    hardware: str = ""
    precision: str = ""
    engine: str = ""
    stream: bool = False
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ttft_ms: float | None = None
    latency_ms: float | None = None
    input_uncached: int = 0
    input_cached: int = 0
    output: int = 0
    reasoning: int = 0
    usage_source: str = "reported"
    status: str = "ok"
    error_kind: str | None = None
    http_status: int | None = None
    price_version: str = ""
    # NULL means the price was unknown: never 0, never summed as 0.
    cost_usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    prompt_text: str | None = Field(default=None, sa_type=Text)
    completion_text: str | None = Field(default=None, sa_type=Text)
    # Set when a call cost more than its budget reservation (a server that
    # ignored max_tokens, a prompt the server counted higher): by how much.
    overrun_usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    overrun_tokens: int | None = None


class BudgetEvent(LedgerModel, table=True):
    """A scope's settled spend crossed a threshold (80%, 95%) of one of its budgets."""

    __tablename__ = "budget_event"

    id: str = Field(primary_key=True, max_length=64)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    scope: str = ""
    scope_id: str = ""
    period: str = ""
    period_start: datetime = Field(sa_type=UTCDateTime)
    threshold: Decimal = Field(sa_type=ExactDecimal)
    unit: str = "usd"
    spent: Decimal = Field(sa_type=ExactDecimal)
    limit: Decimal = Field(sa_type=ExactDecimal)
    # No foreign key: events are written in a transaction of their own, and an
    # event is worth keeping even for a query whose row failed to write.
    query_id: str | None = Field(default=None, index=True, max_length=64)


class ApiKey(LedgerModel, table=True):
    """A front-door API key: only its SHA-256 digest is stored, never the key."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=64)
    digest: str = Field(unique=True, max_length=64)
    prefix: str = ""  # the first characters, so a user can tell keys apart
    tenant: str = Field(index=True)
    user: str = ""
    name: str = ""
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LedgerMeta(LedgerModel, table=True):
    """Key/value facts about the ledger itself, such as ``schema_version``."""

    __tablename__ = "ledger_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str


QUERY = Query.__table__
CALL = Call.__table__
META = LedgerMeta.__table__
BUDGET_EVENT = BudgetEvent.__table__
API_KEY = ApiKey.__table__


# -- the budget store (schema version 6) ------------------------------------


class BudgetLimitRow(LedgerModel, table=True):
    """A limit set at run time (``spendgraph budgets set``); ``scope_id`` '' binds every id."""

    __tablename__ = "budget_limit"

    scope: str = Field(primary_key=True, max_length=16)
    scope_id: str = Field(default="", primary_key=True)
    period: str = Field(primary_key=True, max_length=16)
    usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    tokens: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BudgetAccount(LedgerModel, table=True):
    """One scope key's spend and live holds: the row workers lock to reserve against it."""

    __tablename__ = "budget_account"
    __table_args__ = (
        Index("ix_budget_account_scope", "scope", "period", "period_start", "scope_id"),
    )

    key: str = Field(primary_key=True)
    scope: str = Field(max_length=16)
    scope_id: str
    period: str = Field(max_length=16)
    period_start: datetime = Field(sa_type=UTCDateTime)
    spent_usd: Decimal = Field(sa_type=ExactDecimal)
    spent_tokens: int = Field(sa_type=BigInteger)
    held_usd: Decimal = Field(sa_type=ExactDecimal)
    held_tokens: int = Field(sa_type=BigInteger)
    fired: str = ""  # thresholds already reported, e.g. "0.8,0.95"
    created_at: datetime = Field(sa_type=UTCDateTime)


class BudgetHoldRow(LedgerModel, table=True):
    """What one attempt holds against one account until settled, released or expired."""

    __tablename__ = "budget_hold"
    __table_args__ = (
        Index("ix_budget_hold_expiry", "state", "expires_at"),
        Index("ix_budget_hold_account", "account", "state", "expires_at"),
    )

    attempt_id: str = Field(primary_key=True, max_length=64)  # the call row's id
    account: str = Field(primary_key=True)
    # The query the attempt runs in: its lease running out frees the hold early.
    query_id: str | None = Field(default=None, max_length=64)
    usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    tokens: int = Field(sa_type=BigInteger)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # held, or released (given back unsettled; kept a while). A settle deletes the row.
    state: str = Field(default="held", max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


BUDGET_LIMIT = BudgetLimitRow.__table__
BUDGET_ACCOUNT = BudgetAccount.__table__
BUDGET_HOLD = BudgetHoldRow.__table__
