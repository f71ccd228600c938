"""The ledger's SQLModel tables: ``query``, ``call``, ``budget_event`` and ``ledger_meta``.

Totals are never stored: a query's tokens and cost are the SUM of its
``call`` rows. The tables live in their own SQLAlchemy registry, so an app
that defines SQLModel tables of its own never creates ledger tables by
accident (or the other way round).

Changing a table means adding a migration step (see ``migrations.py``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Text
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
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = "running"
    budget_usd: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    budget_tokens: int | None = None
    store_text: bool = False
    input_preview: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)


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


class LedgerMeta(LedgerModel, table=True):
    """Key/value facts about the ledger itself, such as ``schema_version``."""

    __tablename__ = "ledger_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str


QUERY = Query.__table__
CALL = Call.__table__
META = LedgerMeta.__table__
BUDGET_EVENT = BudgetEvent.__table__
