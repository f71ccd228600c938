"""``Spend``: the one shape of "what some calls spent", from one attempt to a whole ledger.

A query's running total, a run's result, a CLI panel row, an audit group, a
re-priced tally and a game's bill are all a :class:`Spend`: call counts,
tokens in the ledger's exclusive buckets, and a cost that stays honest about
unknowns. Spends add with ``+`` and ``sum()``; an unpriced call anywhere in
the sum makes :attr:`Spend.cost` ``None`` (never a smaller number), while
:attr:`Spend.known_cost` keeps the priced part for display.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from spendgraph.providers.usage import Usage

if TYPE_CHECKING:
    from spendgraph.providers.ledger.records import CallRecord

_ZERO = Decimal(0)
# CallStatus values, compared by value (a StrEnum equals its value): the ledger
# package builds Spends from its SQL rows, so this module must not import it.
_FAILED = ("error", "cancelled")
_REFUSED = "budget_denied"


@dataclass(frozen=True, slots=True)
class Spend:
    """Calls, tokens by bucket and cost of a set of model calls (every attempt counts).

    ``failed`` counts attempts that errored, were cut or were cancelled;
    ``refused`` counts calls the budget refused before sending (they cost
    nothing and are not failures). ``output`` includes ``reasoning``.
    ``unpriced`` counts calls whose cost is unknown.
    """

    calls: int = 0
    failed: int = 0
    refused: int = 0
    input_uncached: int = 0
    input_cached: int = 0
    output: int = 0
    reasoning: int = 0
    known_cost: Decimal = _ZERO
    unpriced: int = 0

    # -- building ---------------------------------------------------------

    @classmethod
    def of_usage(cls, usage: Usage, cost: Decimal | None, *, calls: int = 1) -> Spend:
        """``calls`` call(s) that used ``usage`` at ``cost`` (``None``: unknown price)."""
        return cls(
            calls=calls,
            input_uncached=usage.input_uncached,
            input_cached=usage.input_cached,
            output=usage.output,
            reasoning=usage.reasoning,
            known_cost=_ZERO if cost is None else cost,
            unpriced=calls if cost is None else 0,
        )

    @classmethod
    def of_call(cls, record: CallRecord) -> Spend:
        """One ledger call row, as recorded (a row ``audit compact`` folded counts its calls)."""
        usage, amount, status, calls = record.usage, record.cost_usd, record.status, record.folded
        return cls(
            calls=calls,
            failed=calls if status in _FAILED else 0,
            refused=calls if status == _REFUSED else 0,
            input_uncached=usage.input_uncached,
            input_cached=usage.input_cached,
            output=usage.output,
            reasoning=usage.reasoning,
            known_cost=_ZERO if amount is None else amount,
            unpriced=calls if amount is None else 0,
        )

    @classmethod
    def of_calls(cls, records: Iterable[CallRecord]) -> Spend:
        """The sum over ledger call rows."""
        return sum((cls.of_call(r) for r in records), cls())

    # -- arithmetic -------------------------------------------------------

    def __add__(self, other: object) -> Spend:
        if not isinstance(other, Spend):
            return NotImplemented
        return Spend(
            calls=self.calls + other.calls,
            failed=self.failed + other.failed,
            refused=self.refused + other.refused,
            input_uncached=self.input_uncached + other.input_uncached,
            input_cached=self.input_cached + other.input_cached,
            output=self.output + other.output,
            reasoning=self.reasoning + other.reasoning,
            known_cost=self.known_cost + other.known_cost,
            unpriced=self.unpriced + other.unpriced,
        )

    def __radd__(self, other: object) -> Spend:
        # sum() starts from the int 0.
        if other == 0:
            return self
        return NotImplemented

    # -- reading ----------------------------------------------------------

    @property
    def cost(self) -> Decimal | None:
        """Total USD, or ``None`` when any call's cost is unknown."""
        return None if self.unpriced else self.known_cost

    @property
    def input_tokens(self) -> int:
        """Prompt tokens, cached or not."""
        return self.usage().prompt_tokens

    @property
    def total_tokens(self) -> int:
        return self.usage().total_tokens

    @property
    def sent(self) -> int:
        """Calls that went out over HTTP (refused ones never did)."""
        return self.calls - self.refused

    def usage(self) -> Usage:
        """The token buckets as a :class:`Usage` (to re-price them, say)."""
        return Usage(
            input_uncached=self.input_uncached,
            input_cached=self.input_cached,
            output=self.output,
            reasoning=self.reasoning,
        )

    def describe(self) -> str:
        """``$0.000123``, or ``unknown`` (with the priced part) when any call is unpriced."""
        if not self.unpriced:
            return f"${self.known_cost:.6f}"
        return f"unknown (${self.known_cost:.6f} known, {self.unpriced} call(s) unpriced)"
