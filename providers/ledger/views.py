"""What ledger reads return: plain frozen dataclasses, never ORM objects.

Calls read back as the same :class:`CallRecord` the provider layer wrote
(``CallRow`` is that class), so an audit sees exactly what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from spendgraph.providers.ledger.records import CallRecord, QueryStatus

if TYPE_CHECKING:
    from spendgraph.providers.spend import Spend

CallRow = CallRecord


class GroupBy(StrEnum):
    """Dimensions :meth:`Ledger.summary_by` can group calls by."""

    AGENT = "agent"
    ENDPOINT = "endpoint"
    MODEL = "model"
    HARDWARE = "hardware"
    APP = "app"
    USER = "user"
    TENANT = "tenant"
    DAY = "day"  # UTC date, YYYY-MM-DD


@dataclass(frozen=True, slots=True)
class TimeBuckets:
    """``count`` buckets of ``width_s`` seconds from ``start`` (a whole second, aware), for
    :meth:`Ledger.summary_over_time`; the first and the last are open-ended."""

    start: datetime
    width_s: int
    count: int

    def __post_init__(self) -> None:
        if self.width_s < 1 or self.count < 1 or self.start.microsecond or not self.start.tzinfo:
            raise ValueError(f"not whole-second buckets: {self!r}")


class QuerySort(StrEnum):
    """Orders for :meth:`Ledger.list_queries`, each largest / newest first."""

    TIME = "time"
    COST = "cost"
    TOKENS = "tokens"


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Which rows a read covers. ``since`` is inclusive, ``until`` exclusive.

    Time bounds apply to call start times (to query start times in
    :meth:`Ledger.list_queries`); naive datetimes are UTC. ``app``, ``user``
    and ``thread_id`` (a conversation, a game) match the query a call belongs
    to, so they leave out calls made outside any query.
    """

    since: datetime | None = None
    until: datetime | None = None
    app: str | None = None
    user: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueryRow:
    """A ``query`` row as stored."""

    id: str
    app: str
    thread_id: str
    user: str
    tenant: str
    started_at: datetime
    finished_at: datetime | None
    status: QueryStatus
    budget_usd: Decimal | None
    budget_tokens: int | None
    store_text: bool
    input_preview: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class QuerySummary:
    """One query and the :class:`Spend` of its calls, all derived from ``call`` rows.

    ``first_token_ms`` is the time to first token of the earliest call that
    produced one; ``wall_ms`` is the query's own duration (None while running).
    """

    query: QueryRow
    spend: Spend
    first_token_ms: float | None

    @property
    def wall_ms(self) -> float | None:
        if self.query.finished_at is None:
            return None
        return (self.query.finished_at - self.query.started_at).total_seconds() * 1000


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """The :class:`Spend` of the calls sharing one value of a :class:`GroupBy` dimension.

    ``key`` is None for calls that have no value for it (``app``/``user`` of
    calls made outside any query). ``queries`` counts distinct queries.
    """

    key: str | None
    queries: int
    spend: Spend
