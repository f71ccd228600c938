"""The PostgreSQL budget store against the machine's PostgreSQL: all-or-nothing holds,
no overshoot across real processes, expiry of a killed worker's holds, reconciliation
from the ledger, thresholds once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from budget_workers import contend, hold_and_hang, run_workers, tenant_month
from sqlalchemy import text

from spendgraph.providers.budgets import (
    Allowance,
    HoldRequest,
    InMemoryBudgetStore,
    Period,
    PeriodSpend,
    PostgresBudgetStore,
    PostgresStoreOptions,
    ScopeBudgetExceeded,
    ScopeKey,
    ScopeKind,
    period_start,
    reconcile_ledger,
)
from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    QueryRecord,
    new_sequential_id,
    utcnow,
)
from spendgraph.providers.usage import Usage

NOW = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
DAY = ScopeKey(ScopeKind.USER, "ana", Period.DAY, period_start(Period.DAY, NOW))
MONTH = ScopeKey(ScopeKind.TENANT, "acme", Period.MONTH, period_start(Period.MONTH, NOW))
B200 = EndpointInfo("b200", "sim-large", "B200", "nvfp4", "sim")


class Clock:
    """A clock the test moves by hand (expiry without waiting)."""

    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def request(attempt: str, *allowances: Allowance, usd="0.1", tokens=10, ttl_s=60) -> HoldRequest:
    amount = None if usd is None else Decimal(usd)
    return HoldRequest(attempt, allowances, amount, tokens, NOW + timedelta(seconds=ttl_s))


@pytest.fixture
async def make_store(pg_ledger):
    stores: list[PostgresBudgetStore] = []

    def build(**kwargs) -> PostgresBudgetStore:
        kwargs.setdefault("clock", Clock())
        store = PostgresBudgetStore.for_engine(pg_ledger.engine, **kwargs)
        stores.append(store)
        return store

    yield build
    for store in stores:
        await store.aclose()


def hold_states(ledger, attempt_id: str) -> list[str]:
    """The state of each hold row an attempt has (a settled hold has none left)."""
    stmt = text("SELECT state FROM budget_hold WHERE attempt_id = :a ORDER BY account")
    with ledger.engine.connect() as conn:
        return list(conn.execute(stmt, {"a": attempt_id}).scalars())


async def test_a_hold_is_all_or_nothing_across_its_scopes(make_store):
    store = make_store()
    day = Allowance(DAY, usd=Decimal("1"))
    month = Allowance(MONTH, usd=Decimal("0.15"))
    await store.reserve(request("a1", day, month))
    with pytest.raises(ScopeBudgetExceeded) as refused:
        await store.reserve(request("a2", day, month))
    assert refused.value.key == MONTH and "tenant 'acme' month 2026-12" in str(refused.value)
    assert "$0.050000 left" in str(refused.value)
    # The day allowance, which had room, holds nothing for the refused request.
    assert store.held(DAY) == PeriodSpend(Decimal("0.1"), 10)
    assert store.held(MONTH) == PeriodSpend(Decimal("0.1"), 10)


async def test_settle_is_idempotent_by_attempt_id_and_release_gives_back(make_store, pg_ledger):
    store = make_store()
    day = Allowance(DAY, usd=Decimal("1"), tokens=1000)
    first = await store.reserve(request("a1", day))
    second = await store.reserve(request("a2", day))
    await store.settle(first, usd=Decimal("0.04"), tokens=7)
    assert hold_states(pg_ledger, "a1") == []
    await store.settle(first, usd=Decimal("0.04"), tokens=7)  # a retried settle: no effect
    await store.release(second)
    await store.release(second)
    assert store.spent(DAY) == PeriodSpend(Decimal("0.04"), 7)
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)
    # An unknown cost counts the hold's bound.
    third = await store.reserve(request("a3", day))
    await store.settle(third, usd=None, tokens=3)
    assert store.spent(DAY) == PeriodSpend(Decimal("0.14"), 10)


@pytest.mark.parametrize("shared", [True, False])
async def test_a_closed_querys_account_is_forgotten_once_nothing_is_held(make_store, shared):
    store = make_store() if shared else InMemoryBudgetStore(clock=Clock())
    query = ScopeKey(ScopeKind.QUERY, "q1", Period.QUERY, period_start(Period.QUERY, NOW))
    own = Allowance(query, usd=Decimal("1"))
    held = await store.reserve(request("a1", own))
    assert not await store.forget(query)  # a hold still counts against it
    await store.settle(held, usd=Decimal("0.2"), tokens=3)
    assert await store.forget(query) and store.spent(query) is None
    assert not await store.forget(query)


async def test_unknown_price_is_refused_by_a_usd_limit_only(make_store):
    store = make_store()
    with pytest.raises(ScopeBudgetExceeded, match="price is unknown"):
        await store.reserve(request("a1", Allowance(DAY, usd=Decimal(1)), usd=None))
    await store.reserve(request("a2", Allowance(MONTH, tokens=100), usd=None))
    assert store.held(MONTH) == PeriodSpend(Decimal(0), 10)


async def test_a_keys_spend_starts_from_the_ledger(make_store, pg_ledger):
    spent_before = PeriodSpend(Decimal("0.85"), 400)

    async def loader(key: ScopeKey) -> PeriodSpend:
        return spent_before if key == MONTH else PeriodSpend()

    store = make_store(loader=loader)
    month = Allowance(MONTH, usd=Decimal("1"))
    hold = await store.reserve(request("a1", month, usd="0.1"))
    assert store.spent(MONTH) == spent_before
    # 80% was passed before this store saw the key: only 95% is news.
    crossed = await store.settle(hold, usd=Decimal("0.1"), tokens=10)
    assert [c.threshold for c in crossed] == [Decimal("0.95")]
    with pytest.raises(ScopeBudgetExceeded):
        await store.reserve(request("a2", month, usd="0.1"))


async def test_an_expired_hold_stops_counting(make_store, pg_ledger):
    clock = Clock()
    store = make_store(clock=clock)
    day = Allowance(DAY, usd=Decimal("0.15"))
    stray = await store.reserve(request("crashed", day, ttl_s=60))  # never settled
    with pytest.raises(ScopeBudgetExceeded):
        await store.reserve(request("a2", day))
    clock.now = NOW + timedelta(seconds=60)
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)  # expired: no longer counts
    fresh = await store.reserve(request("a3", day, ttl_s=600))
    # No call row for the stray attempt: the refusal that met it released it.
    assert hold_states(pg_ledger, "crashed") == ["released"]
    # The stray attempt did finish after all: its cost counts, its hold is not freed twice.
    assert await store.settle(stray, usd=Decimal("0.01"), tokens=1) == ()
    assert store.held(DAY) == PeriodSpend(Decimal("0.1"), 10)
    await store.release(fresh)
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)
    assert store.spent(DAY) == PeriodSpend(Decimal("0.01"), 1)


async def test_reserves_reconcile_the_whole_store_now_and_then(make_store, pg_ledger):
    clock = Clock()
    every_time = PostgresStoreOptions(reconcile_every_s=0)
    store = make_store(clock=clock, options=every_time)
    await store.reserve(request("stray", Allowance(DAY, usd=Decimal(1)), ttl_s=60))
    clock.now = NOW + timedelta(seconds=61)
    await store.reserve(request("other", Allowance(MONTH, usd=Decimal(1))))  # another key
    assert hold_states(pg_ledger, "stray") == ["released"]


async def test_reconciliation_settles_a_stray_hold_from_its_call_row(make_store, pg_ledger):
    store = make_store()
    month = Allowance(MONTH, usd=Decimal("1"))
    attempt_id = new_sequential_id()
    stray = await store.reserve(request(attempt_id, month, usd="0.2", ttl_s=60))
    # The worker wrote the attempt's row (its id is the attempt id), then was killed.
    query = QueryRecord(app="shop", tenant="acme", started_at=NOW)
    pg_ledger.submit_open_query(query)
    pg_ledger.submit_call(
        CallRecord(
            endpoint=B200,
            status=CallStatus.OK,
            usage=Usage(input_uncached=100, input_cached=20, output=30),
            cost_usd=Decimal("0.0123"),
            price_version="p1",
            query_id=query.id,
            started_at=NOW,
            id=attempt_id,
        )
    )
    pg_ledger.flush()
    assert reconcile_ledger(pg_ledger, now=NOW + timedelta(seconds=30)).settled == 0  # live
    done = reconcile_ledger(pg_ledger, now=NOW + timedelta(seconds=61))
    assert (done.settled, done.released) == (1, 0)
    assert hold_states(pg_ledger, attempt_id) == []  # settled: nothing held any more
    assert store.spent(MONTH) == PeriodSpend(Decimal("0.0123"), 150)
    assert store.held(MONTH) == PeriodSpend(Decimal(0), 0)
    # The worker's own settle, had it come late, changes nothing.
    await store.settle(stray, usd=Decimal("0.0123"), tokens=150)
    assert store.spent(MONTH) == PeriodSpend(Decimal("0.0123"), 150)


async def test_concurrent_reserves_from_processes_never_overshoot(pg_url, make_store, spawn):
    # 4 processes x 25 concurrent reserves of $0.03 against one $1.00 tenant month.
    reports = run_workers(spawn, contend, lambda i: (pg_url, "1.00", 25, "0.03", "0.03"), 4)
    granted = sum(count for count, _ in reports)
    assert granted == 33  # floor(1.00 / 0.03): never more (overshoot 0), never fewer
    store = make_store(clock=utcnow)
    key = tenant_month()
    assert store.spent(key) == PeriodSpend(Decimal("0.99"), 33 * 5)
    assert store.held(key) == PeriodSpend(Decimal(0), 0)
    # $0.99 of $1.00 crossed 80% and 95%: each reported once, by whichever process crossed it.
    crossed = sorted(c for _, found in reports for c in found)
    assert crossed == [("0.8", "usd"), ("0.95", "usd")]


async def test_a_killed_workers_holds_expire(pg_url, make_store, spawn):
    held, ttl_s = spawn.Event(), 3.0
    worker = spawn.Process(target=hold_and_hang, args=(pg_url, "1.00", "1.00", ttl_s, held))
    worker.start()
    try:
        assert held.wait(120), "the worker never took its hold"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
    assert worker.exitcode == -signal.SIGKILL
    store = make_store(clock=utcnow)
    allowance = Allowance(tenant_month(), usd=Decimal("1.00"))
    deadline = time.monotonic() + ttl_s + 30
    refusals = 0
    while True:
        expires = utcnow() + timedelta(minutes=5)
        attempt = HoldRequest(new_sequential_id(), (allowance,), Decimal("0.5"), 10, expires)
        try:
            await store.reserve(attempt)
            break
        except ScopeBudgetExceeded:
            refusals += 1
            assert time.monotonic() < deadline, "the killed worker's hold never expired"
            await asyncio.sleep(0.2)
    assert refusals >= 1  # the dead worker's hold counted until it expired, then not
    assert store.held(tenant_month()) == PeriodSpend(Decimal("0.5"), 10)


async def test_a_reserve_cancelled_while_waiting_gives_its_hold_back(make_store, pg_ledger):
    store = make_store()
    day = Allowance(DAY, usd=Decimal("1"))
    await store.release(await store.reserve(request("warm", day)))  # the account exists
    with pg_ledger.engine.connect() as blocker:
        # Another transaction holds the account's row: the reserve waits in its thread.
        blocker.execute(text("SELECT 1 FROM budget_account FOR UPDATE"))
        waiting = asyncio.ensure_future(store.reserve(request("cancelled", day)))
        await asyncio.sleep(0.5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        blocker.rollback()
    await store.aclose()  # waits for the give-back
    assert hold_states(pg_ledger, "cancelled") == ["released"]
    assert store.held(DAY) == PeriodSpend(Decimal(0), 0)
