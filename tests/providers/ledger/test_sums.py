"""Exact cost sums at scale: integer femto-dollars where exact, decimal text where not."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest

from spendgraph.providers.ledger import GroupBy, Ledger, LedgerFilter
from spendgraph.providers.ledger.sqltypes import femto_of
from spendgraph.providers.spend import Spend


@pytest.mark.parametrize(
    ("cost", "femto"),
    [
        ("0", 0),
        ("0.000000123", 123_000_000),
        ("6.15E-7", 615_000_000),
        ("0.000152344704", 152_344_704_000),
        ("1E+2", 10**17),
        ("-0.5", -(5 * 10**14)),
        ("0.0000000000000001", None),  # finer than a femto-dollar
        ("4611.686018427387904", None),  # 2^62 femto-dollars: too large for the integer sum
        ("4611.686018427387", 4_611_686_018_427_387_000),
    ],
)
def test_femto_of_is_exact_or_none(cost, femto):
    assert femto_of(Decimal(cost)) == femto
    if femto is not None:
        assert Decimal(femto).scaleb(-15) == Decimal(cost)


async def test_sums_mix_integer_and_decimal_costs_exactly(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    costs = [
        Decimal("0.000152344704"),
        Decimal("1E-30"),  # summed from its decimal text
        Decimal("4000.123456789012345"),  # large and precise: both parts
        Decimal("0.05787037037037037037037037037"),  # a calibrated price's 28 digits
        None,
        Decimal(0),
    ] * 3
    records = [kit.call(query_id=query.id, cost_usd=cost) for cost in costs]
    for record in records:
        await ledger.record_call(record)

    with localcontext() as exact:
        exact.prec = 100  # the default 28 digits would round the expected sum
        expected = Spend.of_calls(records)
    (group,) = ledger.summary_by(GroupBy.MODEL)
    assert group.spend == expected
    assert group.spend.known_cost == Decimal("12000.544438512260146111111111111113")
    assert ledger.query_summary(query.id).spend == expected
    assert ledger.queries_with_calls() == 1
    assert ledger.queries_with_calls(LedgerFilter(app="no such app")) == 0
