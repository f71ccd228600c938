"""What the provider layer hands the ledger: plain frozen records.

The ledger turns these into rows; nothing above the ledger touches SQLModel
tables directly when writing.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from spendgraph.providers.usage import Usage


def new_id() -> str:
    """A fresh random 32-hex-digit identifier (queries: users type its prefix)."""
    return uuid.uuid4().hex


def new_sequential_id() -> str:
    """A fresh 32-hex-digit identifier that sorts by creation time (like UUIDv7).

    For call rows and request ids: random keys land on random pages of their
    indexes, so each commit rewrote pages all over the file (~19 WAL page
    writes per batch at 10,000 rows, more as the ledger grows); time-ordered
    keys append to the last page. The random half keeps ids unique across
    processes.
    """
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    BUDGET_DENIED = "budget_denied"
    # A stream closed by us when its output reached the reservation's bound.
    CUT_AT_BUDGET = "cut_at_budget"


class QueryStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    BUDGET_EXHAUSTED = "budget_exhausted"
    # Its process died while it ran (SIGKILL, OOM, lost host): marked by another
    # process once the query's lease expired (see ledger/leases.py).
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """The endpoint facts copied onto every call row (so audits survive config changes)."""

    name: str
    model: str
    hardware: str = ""
    precision: str = ""
    engine: str = ""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt to one endpoint, whatever its outcome."""

    endpoint: EndpointInfo
    status: CallStatus
    usage: Usage
    cost_usd: Decimal | None
    price_version: str
    query_id: str | None = None
    agent_path: str = ""
    node: str = ""
    request_id: str = ""  # groups the attempts (retries, fallbacks) of one logical call
    attempt: int = 1
    stream: bool = False
    started_at: datetime = field(default_factory=utcnow)
    ttft_ms: float | None = None
    latency_ms: float | None = None
    error_kind: str | None = None
    http_status: int | None = None
    prompt_text: str | None = None  # only when the query opted in to storing text
    completion_text: str | None = None
    overrun_usd: Decimal | None = None  # cost above the budget hold, when it overran
    overrun_tokens: int | None = None  # tokens above the hold, when they overran
    id: str = field(default_factory=new_sequential_id)
    # How many calls this row stands for: more than 1 only for a row `audit compact` folded.
    folded: int = 1


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """An end-user query as opened; closing sets its status and finish time."""

    app: str = ""
    thread_id: str = ""
    user: str = ""
    tenant: str = ""
    budget_usd: Decimal | None = None
    budget_tokens: int | None = None
    store_text: bool = False
    input_preview: str | None = None  # only stored when store_text is set
    started_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class BudgetEventRecord:
    """A scope's spend crossed a threshold of its budget (once per scope, period and threshold).

    ``unit`` is ``usd`` or ``tokens``: ``spent`` and ``limit`` are in that unit.
    ``query_id`` is the query whose call crossed it.
    """

    scope: str  # user, app, thread
    scope_id: str
    period: str  # day, month
    period_start: datetime
    threshold: Decimal
    unit: str
    spent: Decimal
    limit: Decimal
    query_id: str | None = None
    at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_sequential_id)
