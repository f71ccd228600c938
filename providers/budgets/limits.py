"""What a budget limits: a scope (query, user, app, thread) over a period, in USD and/or tokens.

A limit is declared once (``[[budgets]]`` in the config, or ``budgets=`` on
``layer.query``) and resolved per query into :class:`ScopeKey` s: the user
scope of a query by ``alice`` on 2026-03-01 counts against
``ScopeKey(user, "alice", day, 2026-03-01)``. Periods are UTC calendar days and
months, so every worker and every restart agrees on where a period starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum


class ScopeKind(StrEnum):
    QUERY = "query"
    TENANT = "tenant"
    USER = "user"
    APP = "app"
    THREAD = "thread"


class Period(StrEnum):
    QUERY = "query"  # the lifetime of one query (only for the query scope)
    DAY = "day"
    MONTH = "month"


# The first instant of every period that is not calendar-based.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """At most ``usd`` and/or ``tokens`` per ``period`` in ``scope``; ``id`` narrows it to one
    user/app/thread (``None``: every one of them, each with its own allowance)."""

    scope: ScopeKind
    period: Period
    usd: Decimal | None = None
    tokens: int | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        # Accept plain strings and numbers from code; keep the fields typed.
        object.__setattr__(self, "scope", ScopeKind(self.scope))
        object.__setattr__(self, "period", Period(self.period))
        if self.usd is not None:
            object.__setattr__(self, "usd", Decimal(str(self.usd)))
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    def describe(self) -> str:
        amounts = [f"${self.usd}" if self.usd is not None else "", _tokens(self.tokens)]
        what = " and ".join(a for a in amounts if a)
        who = self.scope.value if self.id is None else f"{self.scope.value} {self.id!r}"
        return f"{what} per {self.period.value} for {who}"


def _tokens(tokens: int | None) -> str:
    return "" if tokens is None else f"{tokens} tokens"


def _problem(limit: BudgetLimit) -> str | None:
    if limit.usd is None and limit.tokens is None:
        return "a budget needs usd and/or tokens"
    if any(amount is not None and amount <= 0 for amount in (limit.usd, limit.tokens)):
        return "a budget's usd and tokens must be > 0"
    is_query = limit.scope is ScopeKind.QUERY
    if is_query != (limit.period is Period.QUERY):
        return "period 'query' goes with scope 'query' only (other scopes: 'day' or 'month')"
    if is_query and limit.id is not None:
        return "a query budget applies to every query: it takes no id"
    return None


@dataclass(frozen=True, slots=True, order=True)
class ScopeKey:
    """One allowance's identity: e.g. user ``alice``'s day starting 2026-03-01T00:00Z."""

    kind: ScopeKind
    id: str
    period: Period
    period_start: datetime

    def period_end(self) -> datetime | None:
        """The first instant after the period (``None`` for a query, which has no calendar)."""
        start = self.period_start
        if self.period is Period.DAY:
            return datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
        if self.period is Period.MONTH:
            year, month = divmod(start.month, 12)
            return start.replace(year=start.year + year, month=month + 1)
        return None

    def __str__(self) -> str:
        if self.period is Period.QUERY:
            return f"query {self.id}"
        when = self.period_start.strftime("%Y-%m-%d" if self.period is Period.DAY else "%Y-%m")
        return f"{self.kind.value} {self.id!r} {self.period.value} {when}"


def period_start(period: Period, now: datetime) -> datetime:
    """The UTC start of the calendar ``period`` holding ``now``."""
    now = now.astimezone(UTC)
    if period is Period.DAY:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.MONTH:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return _EPOCH


@dataclass(frozen=True, slots=True)
class ScopeIds:
    """Who a query is: the ids its user/app/thread scopes are keyed by (empty: not known)."""

    query: str
    user: str = ""
    app: str = ""
    thread: str = ""
    tenant: str = ""

    def of(self, kind: ScopeKind) -> str:
        return getattr(self, kind.value)


def applicable(limits: tuple[BudgetLimit, ...], ids: ScopeIds) -> tuple[BudgetLimit, ...]:
    """The limits that bind a query with ``ids``: a scope it has an id for, a matching ``id``."""
    found = []
    for limit in limits:
        who = ids.of(limit.scope)
        if who and (limit.id is None or limit.id == who):
            found.append(limit)
    return tuple(found)


def key_for(limit: BudgetLimit, ids: ScopeIds, now: datetime) -> ScopeKey:
    return ScopeKey(limit.scope, ids.of(limit.scope), limit.period, period_start(limit.period, now))
