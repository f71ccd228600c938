"""Budgets beyond one query: per user, app and thread over UTC days and months.

:class:`BudgetLimit` declares a limit; a :class:`BudgetStore`
(:class:`InMemoryBudgetStore` in one process) holds and settles attempts
against the keys (:class:`ScopeKey`) a query's limits resolve to;
:class:`QueryBudget` is what a query's calls reserve against.
"""

from spendgraph.providers.budget import Budget, BudgetLimits, Reservation
from spendgraph.providers.budgets.limits import (
    BudgetLimit,
    Period,
    ScopeIds,
    ScopeKey,
    ScopeKind,
    applicable,
    period_start,
)
from spendgraph.providers.budgets.query import HOLD_TTL, QueryBudget, QueryHold, event_record
from spendgraph.providers.budgets.store import (
    THRESHOLDS,
    Allowance,
    BudgetStore,
    Hold,
    HoldRequest,
    InMemoryBudgetStore,
    PeriodSpend,
    ScopeBudgetExceeded,
    ThresholdCrossed,
)

__all__ = [
    "HOLD_TTL",
    "THRESHOLDS",
    "Allowance",
    "Budget",
    "BudgetLimit",
    "BudgetLimits",
    "BudgetStore",
    "Hold",
    "HoldRequest",
    "InMemoryBudgetStore",
    "Period",
    "PeriodSpend",
    "QueryBudget",
    "QueryHold",
    "Reservation",
    "ScopeBudgetExceeded",
    "ScopeIds",
    "ScopeKey",
    "ScopeKind",
    "ThresholdCrossed",
    "applicable",
    "event_record",
    "period_start",
]
