"""Budgets beyond one query: per tenant, user, app and thread over UTC days and months.

:class:`BudgetLimit` declares a limit (in config, on ``layer.query``, or stored
at run time: :func:`set_limit`, read through :class:`StoredLimits`); a
:class:`BudgetStore` (:class:`InMemoryBudgetStore` in one process,
:class:`PostgresBudgetStore` shared by every worker on a PostgreSQL ledger,
chosen by :func:`budget_store_for`) holds and settles attempts against the
keys (:class:`ScopeKey`) a query's limits resolve to; :class:`QueryBudget` is
what a query's calls reserve against.
"""

from spendgraph.providers.budget import Budget, BudgetLimits, Reservation
from spendgraph.providers.budgets.factory import budget_store_for
from spendgraph.providers.budgets.limits import (
    BudgetLimit,
    Period,
    ScopeIds,
    ScopeKey,
    ScopeKind,
    applicable,
    period_start,
)
from spendgraph.providers.budgets.postgres import PostgresBudgetStore, PostgresStoreOptions
from spendgraph.providers.budgets.query import HOLD_TTL, QueryBudget, QueryHold, event_record
from spendgraph.providers.budgets.reconcile import Reconciled, reconcile_ledger
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
from spendgraph.providers.budgets.stored import StoredLimits, read_limits, remove_limit, set_limit

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
    "PostgresBudgetStore",
    "PostgresStoreOptions",
    "QueryBudget",
    "QueryHold",
    "Reconciled",
    "Reservation",
    "ScopeBudgetExceeded",
    "ScopeIds",
    "ScopeKey",
    "ScopeKind",
    "StoredLimits",
    "ThresholdCrossed",
    "applicable",
    "budget_store_for",
    "event_record",
    "period_start",
    "read_limits",
    "reconcile_ledger",
    "remove_limit",
    "set_limit",
]
