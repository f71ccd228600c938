"""The arithmetic of ``audit reprice``: recorded token buckets x another price, summed exactly.

Each call's buckets (uncached input, cached input, output) are priced with
the same :func:`cost_of` the provider layer uses when it records a call, so a
re-price on the price a call actually ran at gives back its recorded cost.
Unknown stays unknown: a call without a recorded cost makes its query's
actual total unknown; the "comparable" figures cover exactly the calls whose
actual and re-priced costs are both known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from spendgraph.providers.ledger import CallRecord, Ledger, LedgerFilter
from spendgraph.providers.usage import CostTotal, Price, cost_of

# Ratios are a division: shown to 6 decimal places in JSON.
_RATIO_QUANTUM = Decimal("1e-6")


@dataclass
class Tally:
    """Actual and re-priced cost of a set of calls (one query, or all of them)."""

    query_id: str | None
    first_call_at: datetime | None = None
    calls: int = 0
    input_uncached: int = 0
    input_cached: int = 0
    output: int = 0
    reasoning: int = 0
    actual: CostTotal = field(default_factory=CostTotal)
    repriced: CostTotal = field(default_factory=CostTotal)
    # Calls whose actual and re-priced costs are both known: the like-for-like part.
    comparable_calls: int = 0
    comparable_actual: Decimal = Decimal(0)
    comparable_repriced: Decimal = Decimal(0)

    def add(self, call: CallRecord, repriced: Decimal | None) -> None:
        if self.first_call_at is None:
            self.first_call_at = call.started_at
        self.calls += 1
        usage = call.usage
        self.input_uncached += usage.input_uncached
        self.input_cached += usage.input_cached
        self.output += usage.output
        self.reasoning += usage.reasoning
        self.actual = self.actual.add(call.cost_usd)
        self.repriced = self.repriced.add(repriced)
        if call.cost_usd is not None and repriced is not None:
            self.comparable_calls += 1
            self.comparable_actual += call.cost_usd
            self.comparable_repriced += repriced

    @property
    def difference(self) -> Decimal | None:
        """Re-priced minus actual (negative: the target is cheaper); None if either is unknown."""
        if self.actual.amount is None or self.repriced.amount is None:
            return None
        return self.repriced.amount - self.actual.amount

    @property
    def ratio(self) -> Decimal | None:
        return ratio(self.repriced.amount, self.actual.amount)

    @property
    def comparable_ratio(self) -> Decimal | None:
        return ratio(self.comparable_repriced, self.comparable_actual)


def ratio(repriced: Decimal | None, actual: Decimal | None) -> Decimal | None:
    """``repriced / actual`` (0.25 = a quarter of the cost); None when unknown or actual is 0."""
    if repriced is None or actual is None or actual == 0:
        return None
    return (repriced / actual).quantize(_RATIO_QUANTUM)


def reprice(ledger: Ledger, filters: LedgerFilter, price: Price) -> tuple[list[Tally], Tally]:
    """Per-query tallies (newest first) and the overall tally of the calls matching ``filters``."""
    per_query: dict[str | None, Tally] = {}
    total = Tally(query_id=None)
    for call in ledger.iter_calls(filters):
        repriced = cost_of(call.usage, price)
        tally = per_query.get(call.query_id)
        if tally is None:
            tally = per_query[call.query_id] = Tally(query_id=call.query_id)
        tally.add(call, repriced)
        total.add(call, repriced)
    # iter_calls yields in start order, so dict order is by first call: reverse it.
    return list(reversed(per_query.values())), total
