"""Re-pricing: recorded token buckets x another price, summed exactly (``audit reprice``,
the audit web app's what-if).

Each call's buckets (uncached input, cached input, output) are priced with
the same :func:`cost_of` the provider layer uses when it records a call, so a
re-price on the price a call actually ran at gives back its recorded cost.
Unknown stays unknown: a call without a recorded cost makes its query's
actual total unknown; the "comparable" figures cover exactly the calls whose
actual and re-priced costs are both known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from spendgraph.providers.ledger import CallRecord, Ledger, LedgerFilter
from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import Price, cost_of

# Ratios are a division: shown to 6 decimal places in JSON.
_RATIO_QUANTUM = Decimal("1e-6")


@dataclass
class Tally:
    """Actual and re-priced spend of a set of calls (one query, or all of them).

    ``actual`` is the calls as recorded; ``repriced`` the same calls' tokens at
    the target's price. ``comparable_actual`` / ``comparable_repriced`` cover
    only the calls whose costs are known on both sides: the like-for-like part.
    ``free`` / ``free_repriced`` are the calls recorded at a known $0 that cost
    something at the target (an endpoint at $0/hour, like the embedded CPU
    model): they are in the totals, but no ratio counts them, since nothing
    divided by $0 says how much dearer the target is.
    """

    query_id: str | None
    first_call_at: datetime | None = None
    actual: Spend = field(default_factory=Spend)
    repriced: Spend = field(default_factory=Spend)
    comparable_actual: Spend = field(default_factory=Spend)
    comparable_repriced: Spend = field(default_factory=Spend)
    free: Spend = field(default_factory=Spend)
    free_repriced: Spend = field(default_factory=Spend)

    def add(self, call: CallRecord, repriced_cost: Decimal | None) -> None:
        if self.first_call_at is None:
            self.first_call_at = call.started_at
        actual = Spend.of_call(call)
        # A row `audit compact` folded stands for `folded` calls, re-priced as many.
        repriced = Spend.of_usage(call.usage, repriced_cost, calls=call.folded)
        self.actual += actual
        self.repriced += repriced
        if actual.cost is None or repriced.cost is None:
            return
        if actual.cost == 0 and repriced.cost > 0:
            self.free += actual
            self.free_repriced += repriced
        else:
            self.comparable_actual += actual
            self.comparable_repriced += repriced

    @property
    def difference(self) -> Decimal | None:
        """Re-priced minus actual (negative: the target is cheaper); None if either is unknown."""
        if self.actual.cost is None or self.repriced.cost is None:
            return None
        return self.repriced.cost - self.actual.cost

    @property
    def ratio(self) -> Decimal | None:
        """Re-priced / actual of all the calls, free ones left out; None if any is unknown."""
        repriced = self.repriced.cost
        if repriced is not None:
            repriced -= self.free_repriced.known_cost
        return ratio(repriced, self.actual.cost)

    @property
    def comparable_ratio(self) -> Decimal | None:
        return ratio(self.comparable_repriced.cost, self.comparable_actual.cost)


def ratio(repriced: Decimal | None, actual: Decimal | None) -> Decimal | None:
    """``repriced / actual`` (0.25 = a quarter of the cost); None when unknown or actual is 0."""
    if repriced is None or actual is None or actual == 0:
        return None
    return (repriced / actual).quantize(_RATIO_QUANTUM)


def reprice(ledger: Ledger, filters: LedgerFilter, price: Price) -> tuple[list[Tally], Tally]:
    """Per-query tallies (newest first) and the overall tally of the calls matching ``filters``."""
    return reprice_many(ledger, filters, [price])[0]


def reprice_many(
    ledger: Ledger, filters: LedgerFilter, prices: Sequence[Price]
) -> list[tuple[list[Tally], Tally]]:
    """:func:`reprice` at each of ``prices``, in one pass over the calls (one result per price)."""
    per_query: list[dict[str | None, Tally]] = [{} for _ in prices]
    totals = [Tally(query_id=None) for _ in prices]
    for call in ledger.iter_calls(filters):
        for price, tallies, total in zip(prices, per_query, totals, strict=True):
            repriced = cost_of(call.usage, price)
            tally = tallies.get(call.query_id)
            if tally is None:
                tally = tallies[call.query_id] = Tally(query_id=call.query_id)
            tally.add(call, repriced)
            total.add(call, repriced)
    # iter_calls yields in start order, so dict order is by first call: reverse it.
    return [
        (list(reversed(tallies.values())), total)
        for tallies, total in zip(per_query, totals, strict=True)
    ]
