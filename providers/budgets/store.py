"""The budget store: holds against scoped allowances, shared by every query that counts there.

One interface, for a store shared by several workers (the PostgreSQL store,
:mod:`.postgres`) as for this one in memory: every hold names its attempt and carries an expiry,
so a worker that dies holding money frees it when the hold expires, and every
limit travels with the request, so workers need not share config to agree.

* ``reserve`` holds ``usd``/``tokens`` against all of a request's scopes, all
  or nothing, or raises :class:`ScopeBudgetExceeded` naming the scope.
* ``settle`` replaces a hold by the real cost and reports the thresholds
  (80%, 95% of a limit) the settled spend crossed, each once per scope key.
* ``release`` drops a hold that will not be settled.

A key's spend starts from the ledger the first time the store sees it (the
``loader``): a restarted process continues its day instead of starting at 0.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from spendgraph.providers.budgets.limits import ScopeKey
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import utcnow

THRESHOLDS = (Decimal("0.8"), Decimal("0.95"))


@dataclass(frozen=True, slots=True)
class Allowance:
    """A scope key and the limits it is held to (``None``: no limit of that kind)."""

    key: ScopeKey
    usd: Decimal | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """One attempt's upper bound, to hold against every allowance it counts in.

    ``usd=None`` means the price is unknown: refused by any USD limit. ``query_id``
    (when known) lets a shared store free the hold early once the query's lease
    shows its worker died.
    """

    attempt_id: str
    allowances: tuple[Allowance, ...]
    usd: Decimal | None
    tokens: int
    expires_at: datetime
    query_id: str = ""


@dataclass(frozen=True, slots=True)
class Hold:
    """What a granted request holds until it is settled, released or expires."""

    request: HoldRequest

    @property
    def usd(self) -> Decimal:
        return self.request.usd or Decimal(0)

    @property
    def tokens(self) -> int:
        return self.request.tokens


@dataclass(frozen=True, slots=True)
class PeriodSpend:
    """What a scope has spent in a period, as the ledger knows it."""

    usd: Decimal = Decimal(0)
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """A key's settled spend reached ``threshold`` of its limit (``unit``: usd or tokens)."""

    key: ScopeKey
    threshold: Decimal
    unit: str
    spent: Decimal
    limit: Decimal


class ScopeBudgetExceeded(BudgetExceeded):
    """A user/app/thread allowance refused a hold; ``key`` names it."""

    def __init__(self, message: str, *, key: ScopeKey, limit: str, spent: Decimal):
        super().__init__(message, limit=limit)
        self.key = key
        self.spent = spent


SpendLoader = Callable[[ScopeKey], Awaitable[PeriodSpend]]


class BudgetStore(Protocol):
    """Where scoped allowances are held and settled (in memory, or shared)."""

    async def reserve(self, request: HoldRequest) -> Hold: ...

    async def settle(
        self, hold: Hold, *, usd: Decimal | None, tokens: int
    ) -> tuple[ThresholdCrossed, ...]: ...

    async def release(self, hold: Hold) -> None: ...

    async def forget(self, key: ScopeKey) -> bool:
        """Drop ``key``'s account once its scope is over (a closed query), unless a hold
        still counts against it; whether it was dropped."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds open (connections); holds stay where they are."""


@dataclass(slots=True)
class _Account:
    spent_usd: Decimal
    spent_tokens: int
    held_usd: Decimal = Decimal(0)
    held_tokens: int = 0
    fired: set[Decimal] = field(default_factory=set)


async def _nothing_spent(key: ScopeKey) -> PeriodSpend:
    return PeriodSpend()


class InMemoryBudgetStore:
    """The one-process store: thread-safe, every request checked and held under one lock."""

    def __init__(
        self,
        loader: SpendLoader = _nothing_spent,
        *,
        clock: Callable[[], datetime] = utcnow,
        thresholds: tuple[Decimal, ...] = THRESHOLDS,
    ):
        self._loader = loader
        self._clock = clock
        self._thresholds = thresholds
        self._lock = threading.Lock()
        self._accounts: dict[ScopeKey, _Account] = {}
        self._holds: dict[str, Hold] = {}
        self._expiries: list[tuple[datetime, str]] = []  # a heap: the next expiry first
        self._swept = None  # the UTC day ended periods were last dropped on

    async def reserve(self, request: HoldRequest) -> Hold:
        for allowance in request.allowances:
            if allowance.key not in self._accounts:
                await self._load(allowance)
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._sweep(now)
            for allowance in request.allowances:
                self._check(allowance, request)
            for allowance in request.allowances:
                account = self._accounts[allowance.key]
                account.held_usd += request.usd or Decimal(0)
                account.held_tokens += request.tokens
            hold = Hold(request)
            self._holds[request.attempt_id] = hold
            heapq.heappush(self._expiries, (request.expires_at, request.attempt_id))
            return hold

    async def settle(
        self, hold: Hold, *, usd: Decimal | None, tokens: int
    ) -> tuple[ThresholdCrossed, ...]:
        """Count the real cost (``usd=None``: unknown, the hold's bound is counted)."""
        spent = hold.usd if usd is None else usd
        crossed: list[ThresholdCrossed] = []
        with self._lock:
            live = self._unhold(hold)
            for allowance in hold.request.allowances:
                account = self._accounts.get(allowance.key)
                if account is None:
                    continue  # an expired hold of a period already forgotten (the ledger has it)
                account.spent_usd += spent
                account.spent_tokens += tokens
                if not live:
                    continue  # expired: its hold was already dropped
                crossed.extend(self._crossings(allowance, account))
        return tuple(crossed)

    async def release(self, hold: Hold) -> None:
        with self._lock:
            self._unhold(hold)

    async def forget(self, key: ScopeKey) -> bool:
        with self._lock:
            account = self._accounts.get(key)
            if account is None or account.held_usd or account.held_tokens:
                return False
            del self._accounts[key]
            return True

    async def aclose(self) -> None:
        """Nothing to close: the holds live and die with this process."""

    def spent(self, key: ScopeKey) -> PeriodSpend | None:
        """The settled spend of ``key`` (``None`` when the store has not seen it)."""
        with self._lock:
            account = self._accounts.get(key)
            return None if account is None else PeriodSpend(account.spent_usd, account.spent_tokens)

    def held(self, key: ScopeKey) -> PeriodSpend | None:
        """What live holds hold against ``key`` (expired ones are dropped first)."""
        with self._lock:
            self._expire(self._clock())
            account = self._accounts.get(key)
            return None if account is None else PeriodSpend(account.held_usd, account.held_tokens)

    async def _load(self, allowance: Allowance) -> None:
        # Racing first loads each read the ledger; the first to finish wins (the
        # others' sums can only include calls this store already counts).
        key = allowance.key
        spend = await self._loader(key)
        with self._lock:
            if key in self._accounts:
                return
            account = _Account(spend.usd, spend.tokens)
            # Thresholds the ledger's spend already passed fired before (another
            # process, or before a restart): not again.
            account.fired = passed(allowance, spend, self._thresholds)
            self._accounts[key] = account

    def _check(self, allowance: Allowance, request: HoldRequest) -> None:
        account = self._accounts[allowance.key]
        check_room(
            allowance,
            request,
            PeriodSpend(account.spent_usd, account.spent_tokens),
            PeriodSpend(account.held_usd, account.held_tokens),
        )

    def _unhold(self, hold: Hold) -> bool:
        """Drop ``hold`` if it is still live; whether it was."""
        if self._holds.pop(hold.request.attempt_id, None) is None:
            return False
        for allowance in hold.request.allowances:
            account = self._accounts[allowance.key]
            account.held_usd -= hold.usd
            account.held_tokens -= hold.tokens
        return True

    def _expire(self, now: datetime) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, attempt_id = heapq.heappop(self._expiries)
            hold = self._holds.get(attempt_id)
            if hold is not None and hold.request.expires_at <= now:
                self._unhold(hold)

    def _sweep(self, now: datetime) -> None:
        """Forget periods that ended (once a day): a long-running process must not keep
        every user's every day. A key seen again reloads from the ledger."""
        if self._swept == now.date():
            return
        self._swept = now.date()
        for key, account in list(self._accounts.items()):
            end = key.period_end()
            if end is not None and end <= now and not account.held_tokens and not account.held_usd:
                del self._accounts[key]

    def _crossings(self, allowance: Allowance, account: _Account) -> list[ThresholdCrossed]:
        spent = PeriodSpend(account.spent_usd, account.spent_tokens)
        found = crossings(allowance, spent, account.fired, self._thresholds)
        account.fired.update(crossed.threshold for crossed in found)
        return found


def check_room(
    allowance: Allowance, request: HoldRequest, spent: PeriodSpend, held: PeriodSpend
) -> None:
    """Raise :class:`ScopeBudgetExceeded` unless ``allowance`` has room for ``request``."""
    if allowance.usd is not None:
        if request.usd is None:
            _refuse(allowance, spent, "the price is unknown, so it cannot be bounded")
        left = allowance.usd - spent.usd - held.usd
        if request.usd > left:
            _refuse(allowance, spent, f"it needs up to ${request.usd:.6f}, ${left:.6f} left")
    if allowance.tokens is not None:
        left_tokens = allowance.tokens - spent.tokens - held.tokens
        if request.tokens > left_tokens:
            why = f"it needs up to {request.tokens} tokens, {left_tokens} left"
            _refuse(allowance, spent, why)


def _refuse(allowance: Allowance, spent: PeriodSpend, why: str) -> None:
    limits = [f"${allowance.usd}" if allowance.usd is not None else ""]
    limits.append("" if allowance.tokens is None else f"{allowance.tokens} tokens")
    limit = " and ".join(part for part in limits if part)
    raise ScopeBudgetExceeded(
        f"the budget of {allowance.key} ({limit}) refused the call: {why}",
        key=allowance.key,
        limit=limit,
        spent=spent.usd,
    )


def threshold_levels(
    allowance: Allowance, spent: PeriodSpend, thresholds: tuple[Decimal, ...]
) -> Iterator[tuple[Decimal, str, Decimal, Decimal]]:
    """(threshold, unit, spent, limit) for each threshold and limit kind of ``allowance``."""
    for threshold in thresholds:
        if allowance.usd is not None:
            yield threshold, "usd", spent.usd, allowance.usd
        if allowance.tokens is not None:
            yield threshold, "tokens", Decimal(spent.tokens), Decimal(allowance.tokens)


def passed(
    allowance: Allowance, spent: PeriodSpend, thresholds: tuple[Decimal, ...]
) -> set[Decimal]:
    """The thresholds ``spent`` is already at or above (not to be reported again)."""
    levels = threshold_levels(allowance, spent, thresholds)
    return {threshold for threshold, _unit, amount, limit in levels if amount >= threshold * limit}


def crossings(
    allowance: Allowance,
    spent: PeriodSpend,
    fired: Collection[Decimal],
    thresholds: tuple[Decimal, ...],
) -> list[ThresholdCrossed]:
    """The thresholds ``spent`` reached that are not in ``fired`` (each once, first unit wins)."""
    found: list[ThresholdCrossed] = []
    seen = set(fired)
    for threshold, unit, amount, limit in threshold_levels(allowance, spent, thresholds):
        if threshold not in seen and amount >= threshold * limit:
            seen.add(threshold)
            found.append(ThresholdCrossed(allowance.key, threshold, unit, amount, limit))
    return found
