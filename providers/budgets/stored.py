"""Budget limits set at run time, kept in the ledger's ``budget_limit`` table.

``spendgraph budgets set --scope tenant --id acme --period month --usd 100``
writes one; every worker's provider layer reads them through
:class:`StoredLimits` (cached a few seconds, so a query seldom pays a round
trip) and holds queries to them together with the config's ``[[budgets]]`` and
``layer.query(budgets=...)``. Works on SQLite (one process) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from spendgraph.providers.budgets.limits import BudgetLimit, Period, ScopeKind
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.records import utcnow
from spendgraph.providers.ledger.store import WRITE_OPTION, describe_db_error
from spendgraph.providers.ledger.tables import BUDGET_LIMIT

# How long a worker may go on with limits it read: a limit set or removed
# takes effect everywhere within this.
LIMITS_TTL_S = 5.0


def set_limit(engine: Engine, limit: BudgetLimit) -> None:
    """Store ``limit``, replacing the one on the same scope, id and period."""
    where = _where(limit.scope, limit.id, limit.period)
    values = {
        "scope": limit.scope.value,
        "scope_id": limit.id or "",
        "period": limit.period.value,
        "usd": limit.usd,
        "tokens": limit.tokens,
        "updated_at": utcnow(),
    }
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            conn.execute(delete(BUDGET_LIMIT).where(*where))
            conn.execute(insert(BUDGET_LIMIT).values(values))
    except SQLAlchemyError as exc:
        raise LedgerError(f"storing the budget limit failed: {describe_db_error(exc)}") from exc


def remove_limit(
    engine: Engine, scope: ScopeKind | str, scope_id: str | None, period: Period | str
) -> bool:
    """Drop the stored limit on ``scope``/``scope_id``/``period``; whether there was one."""
    where = _where(ScopeKind(scope), scope_id, Period(period))
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            return conn.execute(delete(BUDGET_LIMIT).where(*where)).rowcount > 0
    except SQLAlchemyError as exc:
        raise LedgerError(f"removing the budget limit failed: {describe_db_error(exc)}") from exc


def read_limits(engine: Engine) -> tuple[BudgetLimit, ...]:
    """Every stored limit, in (scope, id, period) order."""
    t = BUDGET_LIMIT.c
    stmt = select(BUDGET_LIMIT).order_by(t.scope, t.scope_id, t.period)
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
    except SQLAlchemyError as exc:
        raise LedgerError(f"reading the budget limits failed: {describe_db_error(exc)}") from exc
    return tuple(_limit(row) for row in rows)


def _limit(row) -> BudgetLimit:
    try:
        return BudgetLimit(
            row["scope"], row["period"], row["usd"], row["tokens"], row["scope_id"] or None
        )
    except ValueError as exc:
        what = f"scope={row['scope']!r} id={row['scope_id']!r} period={row['period']!r}"
        raise LedgerError(f"the stored budget limit {what} is not valid: {exc}") from exc


def _where(scope: ScopeKind, scope_id: str | None, period: Period) -> list:
    t = BUDGET_LIMIT.c
    return [t.scope == scope.value, t.scope_id == (scope_id or ""), t.period == period.value]


@dataclass(slots=True)
class _Cached:
    limits: tuple[BudgetLimit, ...] = ()
    read_at: float = float("-inf")


class StoredLimits:
    """The stored limits as one worker sees them: re-read at most every ``ttl_s`` seconds."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float = LIMITS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached = _Cached()
        self._refreshing: asyncio.Future[tuple[BudgetLimit, ...]] | None = None
        self._refreshing_loop: asyncio.AbstractEventLoop | None = None

    async def current(self) -> tuple[BudgetLimit, ...]:
        """The limits, from the cache while it is fresh; concurrent callers share one read."""
        if self._clock() - self._cached.read_at < self._ttl_s:
            return self._cached.limits
        loop = asyncio.get_running_loop()
        if self._refreshing is None or self._refreshing.done() or self._refreshing_loop is not loop:
            self._refreshing = loop.create_task(self._refresh())
            self._refreshing_loop = loop
        return await asyncio.shield(self._refreshing)

    def invalidate(self) -> None:
        """Read again on the next :meth:`current` (after this process changed them)."""
        self._cached = _Cached(self._cached.limits)

    async def _refresh(self) -> tuple[BudgetLimit, ...]:
        started = self._clock()
        limits = await asyncio.to_thread(read_limits, self._engine)
        self._cached = _Cached(limits, started)
        return limits
