"""Where each stored limit stands in its current period: spent, held, left.

Read for ``spendgraph budgets show``. On a PostgreSQL ledger the figures are
the shared store's accounts (what the workers enforce) and their live holds;
a key no worker has held against yet shows the ledger's spend. Held counts
live holds only (not expired ones, nor those of a dead worker's queries). On SQLite the
holds live in a running process's memory, so only the ledger's spend is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from spendgraph.providers.budgets import postgres_sql as sql
from spendgraph.providers.budgets.factory import is_shared
from spendgraph.providers.budgets.limits import BudgetLimit, ScopeKey, ScopeKind, period_start
from spendgraph.providers.budgets.postgres import account_key
from spendgraph.providers.budgets.store import PeriodSpend
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.store import describe_db_error
from spendgraph.providers.ledger.tables import BUDGET_ACCOUNT


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """One limit on one key in its current period (``key`` None: a per-query limit, or a
    limit on every id of a scope that no id has spent against yet)."""

    limit: BudgetLimit
    key: ScopeKey | None
    spent: PeriodSpend | None
    held: PeriodSpend | None  # None: not known here (holds in a process's memory)

    @property
    def left_usd(self) -> Decimal | None:
        if self.limit.usd is None or self.spent is None:
            return None
        held = self.held.usd if self.held is not None else Decimal(0)
        return self.limit.usd - self.spent.usd - held

    @property
    def left_tokens(self) -> int | None:
        if self.limit.tokens is None or self.spent is None:
            return None
        held = self.held.tokens if self.held is not None else 0
        return self.limit.tokens - self.spent.tokens - held


def limit_report(
    ledger: Ledger, limits: tuple[BudgetLimit, ...], now: datetime
) -> list[LimitStatus]:
    """Each limit's status in the period holding ``now`` (an id-less limit: one per id
    that the shared store has an account for)."""
    try:
        return [status for limit in limits for status in _statuses(ledger, limit, now)]
    except SQLAlchemyError as exc:
        raise LedgerError(f"reading the budget accounts failed: {describe_db_error(exc)}") from exc


def _statuses(ledger: Ledger, limit: BudgetLimit, now: datetime) -> list[LimitStatus]:
    if limit.scope is ScopeKind.QUERY:
        return [LimitStatus(limit, None, None, None)]
    start = period_start(limit.period, now)
    if limit.id is not None:
        ids = [limit.id]
    elif is_shared(ledger):
        ids = _account_ids(ledger, limit, start)
    else:
        ids = []
    if not ids:
        return [LimitStatus(limit, None, None, None)]
    keys = [ScopeKey(limit.scope, scope_id, limit.period, start) for scope_id in ids]
    return [_status(ledger, limit, key, now) for key in keys]


def _status(ledger: Ledger, limit: BudgetLimit, key: ScopeKey, now: datetime) -> LimitStatus:
    if is_shared(ledger):
        found = _account(ledger, key, now)
        if found is not None:
            spent, held = found
            return LimitStatus(limit, key, spent, held)
    end = key.period_end()
    usd, tokens = ledger.period_spend(key.kind.value, key.id, key.period_start, end)
    held = PeriodSpend() if is_shared(ledger) else None
    return LimitStatus(limit, key, PeriodSpend(usd, tokens), held)


def _account_ids(ledger: Ledger, limit: BudgetLimit, start: datetime) -> list[str]:
    a = BUDGET_ACCOUNT.c
    stmt = (
        select(a.scope_id)
        .where(a.scope == limit.scope.value, a.period == limit.period.value)
        .where(a.period_start == start)
        .order_by(a.scope_id)
    )
    with ledger.engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def _account(
    ledger: Ledger, key: ScopeKey, now: datetime
) -> tuple[PeriodSpend, PeriodSpend] | None:
    a = BUDGET_ACCOUNT.c
    name = account_key(key)
    with ledger.engine.connect() as conn:
        row = conn.execute(select(a.spent_usd, a.spent_tokens).where(a.key == name)).first()
        if row is None:
            return None
        usd, tokens = conn.execute(sql.LIVE_HELD, {"key": name, "now": now}).one()
    return PeriodSpend(row.spent_usd, row.spent_tokens), PeriodSpend(Decimal(usd), int(tokens))
