"""Which budget store a provider layer holds scoped budgets in, chosen by its ledger.

A PostgreSQL ledger means workers may share it: their holds must be shared
too, so the store is :class:`PostgresBudgetStore` on the same database. A
SQLite ledger is one process's: the in-memory store.
"""

from __future__ import annotations

from spendgraph.providers.budgets.postgres import PostgresBudgetStore
from spendgraph.providers.budgets.store import BudgetStore, InMemoryBudgetStore, SpendLoader
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger


def is_shared(ledger: Ledger) -> bool:
    """Whether ``ledger``'s database can hold a budget store shared by workers."""
    return ledger.engine.dialect.name == "postgresql"


def budget_store_for(
    ledger: Ledger, loader: SpendLoader, *, shared: bool | None = None
) -> BudgetStore:
    """The store for ``ledger``: shared in PostgreSQL (the default on a PostgreSQL ledger)
    or in this process's memory. ``loader`` seeds a key's spend from the ledger."""
    shared = is_shared(ledger) if shared is None else shared
    if not shared:
        return InMemoryBudgetStore(loader)
    if not is_shared(ledger):
        raise LedgerError(
            f"a budget store shared by workers needs a PostgreSQL ledger, not {ledger.url}"
        )
    return PostgresBudgetStore.for_engine(ledger.engine, loader)
