"""Usage buckets and Decimal cost arithmetic; unknown stays unknown."""

from decimal import Decimal

from spendgraph.providers.usage import Price, Usage, UsageSource, cost_of

PRICE = Price(Decimal("0.20"), Decimal("0.05"), Decimal("0.80"), version="v1")


def test_buckets_are_exclusive_from_openai_usage():
    usage = Usage.from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 600},
            "completion_tokens_details": {"reasoning_tokens": 120},
        }
    )
    assert (usage.input_uncached, usage.input_cached, usage.output, usage.reasoning) == (
        400,
        600,
        300,
        120,
    )
    assert usage.prompt_tokens == 1000 and usage.total_tokens == 1300
    assert usage.source is UsageSource.REPORTED


def test_cost_is_exact_decimal():
    usage = Usage(input_uncached=400, input_cached=600, output=300)
    # 400*0.20 + 600*0.05 + 300*0.80 = 80 + 30 + 240 = 350 per million
    assert cost_of(usage, PRICE) == Decimal("0.00035")


def test_unknown_rate_makes_cost_unknown_only_when_needed():
    partly = Price(Decimal("0.2"), None, Decimal("0.8"))
    assert cost_of(Usage(input_uncached=10, output=5), partly) == Decimal("0.000006")
    assert cost_of(Usage(input_cached=10), partly) is None
    assert cost_of(Usage(output=1), None) is None
