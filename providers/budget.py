"""Per-query budgets: reserve an upper bound before a call, settle to the real cost after.

Reservation and settlement happen without an ``await`` in between check and
update, under a lock, so concurrent calls of one query (parallel graph
branches, threads using the sync wrapper) can never overshoot together: the
sum of what is reserved and what is spent never exceeds the limit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.providers.errors import BudgetExceeded


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """A query's limits; ``None`` means no limit of that kind."""

    usd: Decimal | None = None
    tokens: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.usd is None and self.tokens is None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one call holds against the budget until it settles."""

    usd: Decimal
    tokens: int


class Budget:
    """Thread- and task-safe accounting of one query's spend against its limits."""

    def __init__(self, limits: BudgetLimits, *, query_id: str | None = None):
        self.limits = limits
        self.query_id = query_id
        self._lock = threading.Lock()
        self._reserved_usd = Decimal(0)
        self._reserved_tokens = 0
        self._spent_usd = Decimal(0)
        self._spent_tokens = 0
        self._denied = 0
        self._overrun: str | None = None  # why no further call may start, once one overran

    @property
    def spent_usd(self) -> Decimal:
        return self._spent_usd

    @property
    def spent_tokens(self) -> int:
        return self._spent_tokens

    @property
    def denied(self) -> int:
        """How many reservations were refused."""
        return self._denied

    @property
    def overrun(self) -> str | None:
        """What an overrunning call left behind (then every later reservation is refused)."""
        return self._overrun

    def remaining_usd(self) -> Decimal | None:
        if self.limits.usd is None:
            return None
        with self._lock:
            return self.limits.usd - self._spent_usd - self._reserved_usd

    def reserve(self, *, usd: Decimal | None, tokens: int) -> Reservation:
        """Hold ``usd``/``tokens`` for one call, or raise :class:`BudgetExceeded`.

        ``usd=None`` means the endpoint's price is unknown: under a USD limit that
        call cannot be bounded, so it is refused rather than counted as free.
        """
        with self._lock:
            problem = self._check(usd, tokens)
            if problem:
                self._denied += 1
                raise BudgetExceeded(problem, query_id=self.query_id, limit=self._limit_text())
            held = Reservation(usd=usd or Decimal(0), tokens=tokens)
            self._reserved_usd += held.usd
            self._reserved_tokens += held.tokens
            return held

    def _check(self, usd: Decimal | None, tokens: int) -> str | None:
        if self._overrun is not None:
            return self._overrun
        limits = self.limits
        if limits.usd is not None:
            if usd is None:
                return "the endpoint's price is unknown, so a USD budget cannot bound this call"
            committed = self._spent_usd + self._reserved_usd
            if committed + usd > limits.usd:
                return (
                    f"call needs up to ${usd:.6f} but only ${limits.usd - committed:.6f} "
                    f"of the ${limits.usd:f} budget is left"
                )
        if limits.tokens is not None:
            left = limits.tokens - self._spent_tokens - self._reserved_tokens
            if tokens > left:
                return (
                    f"call needs up to {tokens} tokens but only {left} "
                    f"of the {limits.tokens}-token budget is left"
                )
        return None

    def release(self, held: Reservation) -> None:
        """Drop a reservation whose call never ran (another budget refused it)."""
        with self._lock:
            self._reserved_usd -= held.usd
            self._reserved_tokens -= held.tokens

    def settle(self, held: Reservation, *, usd: Decimal | None, tokens: int) -> None:
        """Replace a reservation by what the call really cost (unknown cost keeps the hold).

        A call that cost more than it held (a non-streamed answer that ignored
        max_tokens cannot be stopped) closes the budget: the spend may already
        be past the limit, so no later call of the query may start.
        """
        with self._lock:
            self._reserved_usd -= held.usd
            self._reserved_tokens -= held.tokens
            self._spent_usd += held.usd if usd is None else usd
            self._spent_tokens += tokens
            over_usd = usd is not None and usd > held.usd
            if (over_usd or tokens > held.tokens) and self._overrun is None:
                self._overrun = (
                    f"an earlier call overran its reservation (${usd} spent of ${held.usd} held, "
                    f"{tokens} of {held.tokens} tokens); no further call of this query may start"
                )

    def _limit_text(self) -> str:
        parts = []
        if self.limits.usd is not None:
            parts.append(f"${self.limits.usd}")
        if self.limits.tokens is not None:
            parts.append(f"{self.limits.tokens} tokens")
        return " and ".join(parts)
