"""Worker processes for the shared budget store tests: real OS processes (spawn) on one
PostgreSQL ledger, started together at a barrier, reporting through a queue.

They live here, not in the test modules, because a spawned process must import
its target by module name (tests/support is on the path of every process).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

from spendgraph.providers.budgets import (
    Allowance,
    HoldRequest,
    Period,
    PostgresBudgetStore,
    ScopeBudgetExceeded,
    ScopeKey,
    ScopeKind,
    period_start,
)
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger, new_sequential_id, utcnow
from spendgraph.providers.ledger.leases import LeaseOptions

TENANT = "acme"
BARRIER_TIMEOUT_S = 120.0


def run_workers(spawn, target, args_for, count: int) -> list:
    """Start ``count`` processes of ``target(*args_for(i), barrier, results)`` that meet at
    one barrier; what each put on ``results``, once all have reported."""
    barrier, results = spawn.Barrier(count), spawn.Queue()
    procs = [
        spawn.Process(target=target, args=(*args_for(i), barrier, results)) for i in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=240) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def tenant_month(tenant: str = TENANT) -> ScopeKey:
    """This month's key of ``tenant``."""
    return ScopeKey(ScopeKind.TENANT, tenant, Period.MONTH, period_start(Period.MONTH, utcnow()))


def hold_request(allowance: Allowance, usd: str, *, ttl_s: float = 600.0) -> HoldRequest:
    expires = utcnow() + timedelta(seconds=ttl_s)
    return HoldRequest(new_sequential_id(), (allowance,), Decimal(usd), 10, expires)


def contend(url: str, limit_usd: str, count: int, usd: str, settle_usd: str, barrier, results):
    """``count`` concurrent reserves of ``usd`` against the tenant's month, each granted one
    settled at ``settle_usd``; puts (granted, [(threshold, unit)...]) on ``results``."""
    results.put(asyncio.run(_contend(url, limit_usd, count, usd, settle_usd, barrier)))


async def _contend(url, limit_usd, count, usd, settle_usd, barrier):
    with Ledger.open(url) as ledger:
        store = PostgresBudgetStore.for_engine(ledger.engine)
        allowance = Allowance(tenant_month(), usd=Decimal(limit_usd))
        barrier.wait(BARRIER_TIMEOUT_S)

        async def one():
            try:
                return await store.reserve(hold_request(allowance, usd))
            except ScopeBudgetExceeded:
                return None

        holds = [h for h in await asyncio.gather(*(one() for _ in range(count))) if h]
        crossed = []
        for hold in holds:
            found = await store.settle(hold, usd=Decimal(settle_usd), tokens=5)
            crossed.extend((str(c.threshold), c.unit) for c in found)
        await store.aclose()
    return len(holds), crossed


def hold_and_hang(url: str, limit_usd: str, usd: str, ttl_s: float, held) -> None:
    """Hold ``usd`` against the tenant's month for ``ttl_s``, set ``held``, then hang
    (until the test kills the process)."""
    asyncio.run(_hold(url, limit_usd, usd, ttl_s))
    held.set()
    while True:
        time.sleep(60)


async def _hold(url, limit_usd, usd, ttl_s):
    with Ledger.open(url) as ledger:
        store = PostgresBudgetStore.for_engine(ledger.engine)
        allowance = Allowance(tenant_month(), usd=Decimal(limit_usd))
        await store.reserve(hold_request(allowance, usd, ttl_s=ttl_s))
        await store.aclose()


ENDPOINT_TOML = """
[[endpoints]]
name = "b200"
base_url = "{sim}/r/b200-nvfp4-0/v1"
model = "sim-large"
serves = ["default"]
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = { input = 0.04, cached_input = 0.01, output = 0.16 }
"""
MESSAGES = [{"role": "user", "content": "Say something about shared budgets."}]


def tenant_queries(url: str, sim_url: str, queries: int, barrier, results) -> None:
    """``queries`` concurrent one-call queries of the tenant through a real provider layer
    on the simulator; puts (answered, refused) on ``results``."""
    results.put(asyncio.run(_tenant_queries(url, sim_url, queries, barrier)))


async def _tenant_queries(url, sim_url, queries, barrier):
    config = parse_config(ENDPOINT_TOML.replace("{sim}", sim_url), source="test.toml", env={})
    ledger = Ledger.open(url)
    layer = ProviderLayer(config, ledger, env={})
    request = ChatRequest(messages=MESSAGES, max_tokens=32)
    barrier.wait(BARRIER_TIMEOUT_S)

    async def one() -> bool:
        try:
            async with layer.query(tenant=TENANT, app="shop"):
                await layer.chat(request)
        except BudgetExceeded:
            return False
        return True

    try:
        outcomes = await asyncio.gather(*(one() for _ in range(queries)))
    finally:
        await layer.aclose()
    return sum(outcomes), queries - sum(outcomes)


def hold_in_query(url: str, sim_url: str, usd: str, lease_s: float, held) -> None:
    """Open a query of the tenant through a real provider layer (its ledger's lease
    ``lease_s``), hold ``usd`` for one attempt of it, set ``held``, then hang (until the test
    kills the process: the lease is no longer renewed)."""
    asyncio.run(_hold_in_query(url, sim_url, usd, lease_s, held))


async def _hold_in_query(url, sim_url, usd, lease_s, held):
    config = parse_config(ENDPOINT_TOML.replace("{sim}", sim_url), source="test.toml", env={})
    ledger = Ledger.open(url, lease=LeaseOptions(duration_s=lease_s))
    layer = ProviderLayer(config, ledger, env={})
    async with layer.query(tenant=TENANT, app="shop") as scope:
        await scope.budget.reserve(new_sequential_id(), usd=Decimal(usd), tokens=10)
        held.set()
        await asyncio.Event().wait()  # forever: the test kills this process
