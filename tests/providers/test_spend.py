"""``Spend``: sums of calls that add with ``+`` and ``sum()``; unknown cost stays unknown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendgraph.providers.ledger import CallRecord, CallStatus, EndpointInfo
from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import Usage

B200 = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")


def _call(status: CallStatus = CallStatus.OK, cost: Decimal | None = Decimal("0.001"), **usage):
    buckets = {"input_uncached": 100, "input_cached": 20, "output": 50, "reasoning": 10} | usage
    return CallRecord(
        endpoint=B200, status=status, usage=Usage(**buckets), cost_usd=cost, price_version="p1"
    )


def test_addition_sums_every_field():
    one = Spend(1, 1, 0, 10, 20, 30, 4, Decimal("0.25"), 0)
    two = Spend(2, 0, 1, 1, 2, 3, 1, Decimal("0.5"), 1)
    assert one + two == Spend(3, 1, 1, 11, 22, 33, 5, Decimal("0.75"), 1)
    assert one + Spend() == one == Spend() + one


def test_sum_starts_from_nothing():
    parts = [Spend.of_usage(Usage(i, 0, i), Decimal(i)) for i in range(1, 4)]
    total = sum(parts)
    assert total == parts[0] + parts[1] + parts[2]
    assert (total.calls, total.input_uncached, total.output, total.cost) == (3, 6, 6, Decimal(6))
    assert sum([], Spend()) == Spend()


def test_unknown_cost_stays_unknown_through_addition_and_sum():
    priced = Spend.of_usage(Usage(10, 0, 5), Decimal("0.002"))
    unpriced = Spend.of_usage(Usage(10, 0, 5), None)
    assert unpriced.cost is None and unpriced.unpriced == 1
    assert (priced + unpriced).cost is None
    assert (unpriced + priced).cost is None
    total = sum([priced, unpriced, priced])
    assert total.cost is None
    # The priced part is kept for display, but never passed off as the total.
    assert (total.known_cost, total.unpriced, total.calls) == (Decimal("0.004"), 1, 3)
    assert sum([priced, priced]).cost == Decimal("0.004")


def test_an_empty_spend_costs_zero_not_unknown():
    assert Spend().cost == 0 and Spend().describe() == "$0.000000"


@pytest.mark.parametrize(
    ("status", "failed", "refused"),
    [
        (CallStatus.OK, 0, 0),
        (CallStatus.ERROR, 1, 0),
        (CallStatus.CANCELLED, 1, 0),
        (CallStatus.BUDGET_DENIED, 0, 1),
    ],
)
def test_of_call_counts_each_status(status, failed, refused):
    spend = Spend.of_call(_call(status))
    assert (spend.calls, spend.failed, spend.refused) == (1, failed, refused)
    assert (spend.input_uncached, spend.input_cached, spend.output, spend.reasoning) == (
        100,
        20,
        50,
        10,
    )
    assert spend.cost == Decimal("0.001") and spend.unpriced == 0
    assert spend.sent == 1 - refused


def test_refused_is_not_failed():
    calls = [_call(CallStatus.BUDGET_DENIED, Decimal(0), input_uncached=0, output=0)] * 2
    spend = Spend.of_calls([*calls, _call(CallStatus.ERROR)])
    assert (spend.calls, spend.failed, spend.refused, spend.sent) == (3, 1, 2, 1)


def test_of_call_with_unknown_cost_is_unpriced():
    spend = Spend.of_call(_call(cost=None))
    assert spend.cost is None and (spend.known_cost, spend.unpriced) == (0, 1)


def test_of_calls_is_the_sum_of_of_call():
    records = [_call(), _call(CallStatus.ERROR, None), _call(CallStatus.BUDGET_DENIED, Decimal(0))]
    assert Spend.of_calls(records) == sum(Spend.of_call(r) for r in records)
    assert Spend.of_calls([]) == Spend()


def test_token_views_and_usage():
    spend = Spend.of_usage(Usage(400, 600, 300, 120), Decimal("0.00035"))
    assert (spend.input_tokens, spend.total_tokens) == (1000, 1300)
    assert spend.usage() == Usage(400, 600, 300, 120)


def test_describe():
    assert Spend.of_usage(Usage(1), Decimal("0.1")).describe() == "$0.100000"
    partly = Spend.of_usage(Usage(1), Decimal("0.1")) + Spend.of_usage(Usage(1), None)
    assert partly.describe() == "unknown ($0.100000 known, 1 call(s) unpriced)"
