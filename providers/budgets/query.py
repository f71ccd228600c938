"""One query's budgets: its own limit (in process) and the scoped ones (in the budget store).

The query's own limit stays a :class:`~spendgraph.providers.budget.Budget`
(a query runs in one process; it also remembers an overrun). User, app and
thread limits are held in the shared :class:`BudgetStore`, keyed by the
period the call starts in. A call is granted only if every budget grants it:
the query's hold is taken first (no I/O), then the store's, and given back if
the store refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from spendgraph.providers.budget import Budget, BudgetLimits, Reservation
from spendgraph.providers.budgets.limits import (
    BudgetLimit,
    Period,
    ScopeIds,
    ScopeKind,
    applicable,
    key_for,
)
from spendgraph.providers.budgets.store import (
    Allowance,
    BudgetStore,
    Hold,
    HoldRequest,
    ThresholdCrossed,
)
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import BudgetEventRecord, utcnow

# How long a hold counts if its attempt never settles it (a crashed worker).
# Longer than any attempt should run: a hold that expires while its call is
# still running stops bounding it.
HOLD_TTL = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class QueryHold:
    """One attempt's holds: the query's own and the store's (``None``: no scoped budget)."""

    query: Reservation
    scoped: Hold | None


class QueryBudget:
    """The budgets one query's calls are held to."""

    def __init__(
        self,
        limits: BudgetLimits,
        scoped: tuple[BudgetLimit, ...],
        ids: ScopeIds,
        store: BudgetStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.query = Budget(limits, query_id=ids.query)
        self.scoped = scoped
        self.ids = ids
        self._store = store
        self._clock = clock

    @property
    def limits(self) -> BudgetLimits:
        """The query's own limits (the scoped ones are in :attr:`scoped`)."""
        return self.query.limits

    @property
    def unlimited(self) -> bool:
        return self.query.limits.unlimited and not self.scoped

    @property
    def overrun(self) -> str | None:
        return self.query.overrun

    async def reserve(self, attempt_id: str, *, usd: Decimal | None, tokens: int) -> QueryHold:
        """Hold one attempt's bound against every budget, or raise :class:`BudgetExceeded`."""
        held = self.query.reserve(usd=usd, tokens=tokens)
        if not self.scoped:
            return QueryHold(held, None)
        now = self._clock()
        allowances = tuple(
            Allowance(key_for(limit, self.ids, now), limit.usd, limit.tokens)
            for limit in self.scoped
        )
        expires = now + HOLD_TTL
        request = HoldRequest(attempt_id, allowances, usd, tokens, expires, self.ids.query)
        try:
            scoped = await self._store.reserve(request)
        except BaseException as exc:  # refused, or cancelled while the store loaded
            self.query.release(held)
            if isinstance(exc, BudgetExceeded):
                exc.query_id = self.ids.query
            raise
        return QueryHold(held, scoped)

    async def settle(
        self, hold: QueryHold, *, usd: Decimal | None, tokens: int
    ) -> tuple[ThresholdCrossed, ...]:
        """Count what the attempt cost everywhere; the scoped thresholds it crossed."""
        self.query.settle(hold.query, usd=usd, tokens=tokens)
        if hold.scoped is None:
            return ()
        return await self._store.settle(hold.scoped, usd=usd, tokens=tokens)


def event_record(crossed: ThresholdCrossed, query_id: str | None) -> BudgetEventRecord:
    """The ``budget_event`` row of a threshold crossing."""
    key = crossed.key
    return BudgetEventRecord(
        scope=key.kind.value,
        scope_id=key.id,
        period=key.period.value,
        period_start=key.period_start,
        threshold=crossed.threshold,
        unit=crossed.unit,
        spent=crossed.spent,
        limit=crossed.limit,
        query_id=query_id,
    )


def split_limits(
    declared: tuple[BudgetLimit, ...],
    ids: ScopeIds,
    usd: Decimal | float | str | None,
    tokens: int | None,
) -> tuple[BudgetLimits, tuple[BudgetLimit, ...]]:
    """A query's own limits (the tightest of ``usd``/``tokens`` and the declared query
    budgets) and the declared user/app/thread budgets that bind it."""
    query_usd = None if usd is None else Decimal(str(usd))
    query_tokens = tokens
    scoped = []
    for limit in declared:
        if limit.scope is not ScopeKind.QUERY:
            scoped.append(limit)
            continue
        query_usd = _tightest(query_usd, limit.usd)
        query_tokens = _tightest(query_tokens, limit.tokens)
    return BudgetLimits(query_usd, query_tokens), _merged(applicable(tuple(scoped), ids))


def _merged(limits: tuple[BudgetLimit, ...]) -> tuple[BudgetLimit, ...]:
    """One limit per (scope, period), the tightest of each kind: two limits on one key
    (a config's and a query's) must not hold the same call twice against it."""
    merged: dict[tuple[ScopeKind, Period], BudgetLimit] = {}
    for limit in limits:
        key = (limit.scope, limit.period)
        seen = merged.get(key)
        if seen is not None:
            usd, tokens = _tightest(seen.usd, limit.usd), _tightest(seen.tokens, limit.tokens)
            limit = BudgetLimit(limit.scope, limit.period, usd, tokens)
        merged[key] = limit
    return tuple(merged.values())


def _tightest(a, b):
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)
