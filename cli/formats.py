"""How amounts, tokens, times and costs look: in tables (text) and in ``--json`` (exact).

Two rules hold everywhere:

* an unknown cost is shown as ``unknown`` (``null`` in JSON), never as $0;
* JSON carries Decimal amounts as exact strings (``"0.000053"``), never as
  floats; tables round only for display, and say so with ``~``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.markup import escape

from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import Price, Usage

UNKNOWN = "unknown"
NONE_SHOWN = "–"
# Tables show at least 6 decimals of a dollar (a millionth: one token at $1/M)
# and at most 10; anything finer is rounded and marked with "~".
_MIN_PLACES = 6
_MAX_PLACES = 10


def usd(amount: Decimal | None, *, max_places: int = _MAX_PLACES) -> str:
    """``$0.000053`` for display; ``unknown`` for None; ``~`` when rounding hid digits."""
    if amount is None:
        return UNKNOWN
    if amount == 0:
        return "$0"
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    exponent = magnitude.normalize().as_tuple().exponent
    digits = -exponent if isinstance(exponent, int) else _MIN_PLACES
    places = max(_MIN_PLACES, min(max_places, digits))
    shown = magnitude.quantize(Decimal(1).scaleb(-places))
    approx = "~" if shown != magnitude else ""
    return f"{approx}{sign}${shown:,f}"


def rate(value: Decimal | None, *, dollar: str = "$") -> str:
    """A price per million tokens for display: ``$0.04``, or ``unknown``."""
    if value is None:
        return UNKNOWN
    exponent = value.normalize().as_tuple().exponent
    digits = -exponent if isinstance(exponent, int) else 0
    places = max(2, min(_MAX_PLACES, digits))
    shown = value.quantize(Decimal(1).scaleb(-places))
    return f"{'~' if shown != value else ''}{dollar}{shown:f}"


def price_text(price: Price, *, dollar: str = "$") -> str:
    """``$0.16 / $0.04 / $0.32`` (uncached input / cached input / output, per 1M tokens)."""
    rates = (price.input_uncached, price.input_cached, price.output)
    return " / ".join(rate(value, dollar=dollar) for value in rates)


def cost_cell(spend: Spend) -> str:
    """A summed cost for a table cell: exact, ``>= $x`` when some calls are unpriced, or
    ``unknown`` when all are (see :data:`LOWER_BOUND_NOTE`)."""
    return bounded(spend.known_cost, spend)


def bounded(amount: Decimal, spend: Spend, *, max_places: int = _MAX_PLACES) -> str:
    """``amount`` (a part of ``spend``'s known cost) marked as a lower bound when
    ``spend`` has unpriced calls: they cost something >= 0, just not known."""
    if not spend.unpriced:
        return usd(amount, max_places=max_places)
    if spend.known_cost == 0:
        return UNKNOWN
    return f">= {usd(amount, max_places=max_places)}"


LOWER_BOUND_NOTE = (
    "'>=' marks a lower bound: some calls have no known price; they are counted as"
    " unpriced, never as $0"
)


def tokens(count: int) -> str:
    return f"{count:,}"


def calls(spend: Spend) -> str:
    """``3``, or ``3 (1 failed, 2 refused)``: budget refusals are not failures."""
    notes = [
        f"{count} {what}"
        for count, what in ((spend.failed, "failed"), (spend.refused, "refused"))
        if count
    ]
    return f"{spend.calls} ({', '.join(notes)})" if notes else str(spend.calls)


def buckets(totals: Spend | Usage) -> str:
    """``1,000 / 200 / 100`` in the ledger's exclusive buckets: uncached / cached / output."""
    return " / ".join(
        tokens(value) for value in (totals.input_uncached, totals.input_cached, totals.output)
    )


def millis(value: float | None) -> str:
    """``1,234 ms``, or a dash when there is no value."""
    return NONE_SHOWN if value is None else f"{value:,.0f} ms"


def when(value: datetime | None, *, seconds: bool = True) -> str:
    """A timestamp in UTC: ``2025-03-01 12:00:00`` (or without the seconds)."""
    if value is None:
        return NONE_SHOWN
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def label(value: str | None) -> str:
    """A name from the ledger or config for a table cell: markup-escaped, a dash when empty.

    Escaped because rich reads ``[...]`` as markup, and these strings are data.
    """
    return escape(value) if value else NONE_SHOWN


def short_id(value: str | None, length: int = 8) -> str:
    """The first ``length`` characters of an id (``audit show`` accepts any unique prefix)."""
    return "(none)" if value is None else value[:length]


# -- JSON ---------------------------------------------------------------------


def decimal_json(value: Decimal | None) -> str | None:
    """An exact decimal string (``"0.000053"``: no exponent, no trailing zeros) or None."""
    if value is None:
        return None
    # Trailing zeros are stripped as text: Decimal.normalize() would round to 28 digits.
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def time_json(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def cost_json(spend: Spend) -> dict[str, Any]:
    """``cost_usd`` (None when any call is unpriced), the known part, and the unpriced count."""
    return {
        "cost_usd": decimal_json(spend.cost),
        "cost_known_usd": decimal_json(spend.known_cost),
        "unpriced_calls": spend.unpriced,
    }


def calls_json(spend: Spend) -> dict[str, int]:
    """Every attempt, and how many of them failed or were refused by the budget."""
    return {"calls": spend.calls, "failed_calls": spend.failed, "refused_calls": spend.refused}


def tokens_json(totals: Spend | Usage) -> dict[str, int]:
    return {
        "input_uncached": totals.input_uncached,
        "input_cached": totals.input_cached,
        "output": totals.output,
        "reasoning": totals.reasoning,
        "total": totals.input_uncached + totals.input_cached + totals.output,
    }


def price_json(price: Price) -> dict[str, str | None]:
    """USD per million tokens, exact strings; None for an unknown rate."""
    return {
        "input_uncached": decimal_json(price.input_uncached),
        "input_cached": decimal_json(price.input_cached),
        "output": decimal_json(price.output),
        "version": price.version or None,
    }
