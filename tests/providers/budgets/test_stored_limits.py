"""Limits stored in the ledger at run time, on SQLite and PostgreSQL, read through a short cache."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from spendgraph.providers.budgets import (
    BudgetLimit,
    StoredLimits,
    read_limits,
    remove_limit,
    set_limit,
)
from spendgraph.providers.errors import LedgerError


@pytest.fixture(params=["sqlite", "postgres"])
def any_ledger(request):
    return request.getfixturevalue("ledger" if request.param == "sqlite" else "pg_ledger")


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limits_are_stored_replaced_and_removed(any_ledger):
    engine = any_ledger.engine
    acme = BudgetLimit("tenant", "month", usd=Decimal("100"), id="acme")
    every_user = BudgetLimit("user", "day", tokens=5000)
    set_limit(engine, acme)
    set_limit(engine, every_user)
    assert read_limits(engine) == (acme, every_user)
    cheaper = BudgetLimit("tenant", "month", usd=Decimal("0.000001"), tokens=10, id="acme")
    set_limit(engine, cheaper)  # same scope, id and period: replaced, exactly
    assert read_limits(engine) == (cheaper, every_user)
    assert remove_limit(engine, "tenant", "acme", "month") is True
    assert remove_limit(engine, "tenant", "acme", "month") is False
    assert remove_limit(engine, "user", None, "day") is True
    assert read_limits(engine) == ()


def test_a_broken_stored_row_is_named(any_ledger):
    with any_ledger.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO budget_limit (scope, scope_id, period, usd, tokens, updated_at) "
                "VALUES ('user', 'ana', 'query', NULL, 5, CURRENT_TIMESTAMP)"
            )
        )
    with pytest.raises(LedgerError, match="scope='user' id='ana' period='query'"):
        read_limits(any_ledger.engine)


async def test_the_cache_reads_again_only_when_stale(ledger):
    ticks = Ticks()
    cached = StoredLimits(ledger.engine, ttl_s=5, clock=ticks)
    assert await cached.current() == ()
    acme = BudgetLimit("tenant", "month", usd=Decimal("1"), id="acme")
    set_limit(ledger.engine, acme)
    ticks.now = 4.9
    assert await cached.current() == ()  # still fresh: no read
    ticks.now = 5.0
    assert await cached.current() == (acme,)
    remove_limit(ledger.engine, "tenant", "acme", "month")
    cached.invalidate()
    assert await cached.current() == ()
