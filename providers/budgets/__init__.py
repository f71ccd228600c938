"""Budgets beyond one query: per tenant, user, app and thread over UTC days and months.

:class:`BudgetLimit` declares a limit (in config, on ``layer.query``, or stored
at run time: :func:`set_limit`, read through :class:`StoredLimits`); a
:class:`BudgetStore` (:class:`InMemoryBudgetStore` in one process,
:class:`PostgresBudgetStore` shared by every worker on a PostgreSQL ledger,
chosen by :func:`budget_store_for`) holds and settles attempts against the
keys (:class:`ScopeKey`) a query's limits resolve to; :class:`QueryBudget` is
what a query's calls reserve against.

Names load on first use: the config parser needs only :mod:`.limits`, and
importing it must not import the PostgreSQL store and the ledger (~0.2 s of a
CLI command's start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spendgraph.providers.lazy_exports import lazy_exports

# name -> the module that defines it (relative to spendgraph.providers)
_EXPORTS = {
    "Budget": "budget",
    "BudgetLimits": "budget",
    "Reservation": "budget",
    "budget_store_for": "budgets.factory",
    "BudgetLimit": "budgets.limits",
    "Period": "budgets.limits",
    "ScopeIds": "budgets.limits",
    "ScopeKey": "budgets.limits",
    "ScopeKind": "budgets.limits",
    "applicable": "budgets.limits",
    "period_start": "budgets.limits",
    "PostgresBudgetStore": "budgets.postgres",
    "PostgresStoreOptions": "budgets.postgres",
    "HOLD_TTL": "budgets.query",
    "QueryBudget": "budgets.query",
    "QueryHold": "budgets.query",
    "event_record": "budgets.query",
    "Reconciled": "budgets.reconcile",
    "reconcile_ledger": "budgets.reconcile",
    "THRESHOLDS": "budgets.store",
    "Allowance": "budgets.store",
    "BudgetStore": "budgets.store",
    "Hold": "budgets.store",
    "HoldRequest": "budgets.store",
    "InMemoryBudgetStore": "budgets.store",
    "PeriodSpend": "budgets.store",
    "ScopeBudgetExceeded": "budgets.store",
    "ThresholdCrossed": "budgets.store",
    "StoredLimits": "budgets.stored",
    "read_limits": "budgets.stored",
    "remove_limit": "budgets.stored",
    "set_limit": "budgets.stored",
}

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


__getattr__, __dir__ = lazy_exports("spendgraph.providers", _EXPORTS, globals(), __all__)

if TYPE_CHECKING:  # what type checkers and IDEs see
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
    from spendgraph.providers.budgets.stored import (
        StoredLimits,
        read_limits,
        remove_limit,
        set_limit,
    )
