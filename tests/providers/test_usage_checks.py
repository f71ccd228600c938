"""A server's usage report is believed only when it could be true.

A lying report (negative counts, 10^15 tokens, more cached than prompt tokens...)
is replaced by a count of what was sent and what arrived, the row is flagged
``usage_rejected``, and a budget is never refunded by it. Each case runs against
a stub server on loopback (tests/support/misbehaving_server.py), streamed and not.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from budget_runs import endpoint_toml
from misbehaving_server import CONTEXT_WINDOW, USAGE_LIES, WORD, Misbehaviour, misbehaving_server

from spendgraph.providers import ChatRequest, ProviderLayer, parse_config
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.tokens import count_chat, count_text, prompt_token_ceiling
from spendgraph.providers.usage import (
    USAGE_REJECTED,
    ImplausibleUsage,
    Usage,
    UsageBounds,
    UsageSource,
    check_usage,
    cost_of,
)

MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]
MAX_TOKENS = 16
LIES = sorted(set(USAGE_LIES) - {"honest"})


async def _run(ledger, how: Misbehaviour, *, stream: bool, calls: int = 1, **options):
    """``calls`` calls in one query against a server misbehaving ``how``: (rows, texts, scope)."""
    tokenize_api = options.pop("tokenize_api", "none")
    max_tokens = options.pop("max_tokens", MAX_TOKENS)
    with misbehaving_server(how) as url:
        config = parse_config(endpoint_toml(url, tokenize_api=tokenize_api), source="t", env={})
        layer = ProviderLayer(config, ledger, env={})
        request = ChatRequest(messages=MESSAGES, max_tokens=max_tokens)
        texts = []
        try:
            async with layer.query(**options) as scope:
                for _ in range(calls):
                    if stream:
                        async with layer.stream(request) as chunks:
                            parts = [
                                c.choices[0].delta.content or "" async for c in chunks if c.choices
                            ]
                        texts.append("".join(parts))
                    else:
                        texts.append((await layer.chat(request)).content)
            price = layer.router.endpoints["stub"].price
        finally:
            await layer.aclose(close_ledger=False)
    return ledger.calls_for_query(scope.id), texts, scope, price


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("lie", LIES)
async def test_an_impossible_report_is_counted_instead_and_flagged(ledger, caplog, lie, stream):
    with caplog.at_level(logging.WARNING, logger="spendgraph.providers.attempt"):
        (row,), (text,), _, price = await _run(ledger, Misbehaviour(usage=lie), stream=stream)
    assert text == WORD * MAX_TOKENS  # the answer itself is delivered
    assert row.status is CallStatus.OK and row.error_kind == USAGE_REJECTED
    assert row.usage.source is UsageSource.ESTIMATED
    assert row.usage.prompt_tokens == count_chat(MESSAGES)
    assert (row.usage.input_cached, row.usage.output) == (0, count_text(text))
    assert row.cost_usd == cost_of(row.usage, price) and row.cost_usd > 0
    assert any("impossible usage" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_honest_report_is_believed_even_from_a_tokenizer_counting_more(ledger, stream):
    (row,), _, _, _ = await _run(ledger, Misbehaviour(scale=1.5), stream=stream)
    assert row.usage.source is UsageSource.REPORTED and row.error_kind is None
    assert row.usage.prompt_tokens == -(-count_chat(MESSAGES) * 3 // 2)  # ceil(1.5x)


async def test_a_server_ignoring_max_tokens_is_booked_what_arrived(ledger):
    # It reports 64 tokens for max_tokens=16 -- and really sent them: counting
    # what arrived books the same 64, but the row says the report was not believed.
    (row,), (text,), _, _ = await _run(ledger, Misbehaviour(overgen=4), stream=False)
    assert row.error_kind == USAGE_REJECTED
    assert row.usage.output == count_text(text) == 4 * MAX_TOKENS


async def test_rejected_usage_is_counted_by_the_servers_tokenizer_where_it_has_one(ledger):
    how = Misbehaviour(usage="huge")
    (row,), _, _, _ = await _run(ledger, how, stream=False, tokenize_api="vllm")
    assert row.usage.source is UsageSource.COUNTED and row.error_kind == USAGE_REJECTED
    assert row.usage.prompt_tokens == count_chat(MESSAGES) and row.usage.output == MAX_TOKENS


@pytest.mark.parametrize("lie", ["negative", "huge"])
async def test_a_lying_server_never_refunds_nor_blows_a_budget(ledger, lie):
    # Under a budget the call streams; it settles what was counted, never the lie.
    how = Misbehaviour(usage=lie)
    rows, _, scope, _ = await _run(ledger, how, stream=False, calls=3, budget_usd="0.01")
    assert [row.status for row in rows] == [CallStatus.OK] * 3
    assert all(row.error_kind == USAGE_REJECTED and row.cost_usd > 0 for row in rows)
    spent = scope.budget.query
    assert spent.spent_usd == sum(row.cost_usd for row in rows) <= Decimal("0.01")
    assert spent.spent_tokens == sum(row.usage.total_tokens for row in rows) > 0


async def test_a_report_beyond_the_context_window_the_server_named_is_rejected(ledger, caplog):
    # Under a budget the prompt is counted by the server's tokenizer endpoint,
    # which says the context window; the report then claims more than fits in it.
    with caplog.at_level(logging.WARNING, logger="spendgraph.providers.attempt"):
        how = Misbehaviour(usage="over_context_window")
        (row,), _, _, _ = await _run(
            ledger, how, stream=True, tokenize_api="vllm", budget_usd="0.01"
        )
    assert row.status is CallStatus.OK and row.error_kind == USAGE_REJECTED
    assert row.usage.source is UsageSource.COUNTED and row.usage.output == MAX_TOKENS
    assert any(f"context window ({CONTEXT_WINDOW})" in r.getMessage() for r in caplog.records)


async def test_cumulative_usage_per_chunk_keeps_the_last_report(ledger):
    (row,), (text,), _, _ = await _run(ledger, Misbehaviour(cumulative=True), stream=True)
    assert row.usage.source is UsageSource.REPORTED and row.error_kind is None
    assert row.usage.output == count_text(text) == MAX_TOKENS  # not added up


@pytest.mark.parametrize(
    "how",
    [Misbehaviour(cumulative=True, usage="negative"), Misbehaviour(cumulative_down=True)],
    ids=["final-report-negative", "count-goes-down"],
)
async def test_an_impossible_cumulative_report_is_counted_instead(ledger, how):
    (row,), (text,), _, _ = await _run(ledger, how, stream=True)
    assert row.error_kind == USAGE_REJECTED and row.usage.source is UsageSource.ESTIMATED
    assert row.usage.output == count_text(text)


async def test_a_budgeted_stream_with_lying_cumulative_usage_is_still_cut_at_its_hold(ledger):
    # Reports of 0 completion tokens on every chunk cannot hold the meter back.
    how = Misbehaviour(overgen=4, cumulative=True, usage="zero_completion")
    rows, _, _, _ = await _run(ledger, how, stream=True, budget_usd="0.01")
    (row,) = rows
    assert row.status is CallStatus.CUT_AT_BUDGET and row.usage.output <= MAX_TOKENS


# -- the checks themselves ------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ({"prompt_tokens": -100, "completion_tokens": -50}, "negative"),
        ({"prompt_tokens": 10.5, "completion_tokens": 1}, "whole number"),
        ({"prompt_tokens": True, "completion_tokens": 1}, "whole number"),
        ({"prompt_tokens": 10}, "no completion_tokens"),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 11},
            },
            "cached_tokens 11 > prompt_tokens 10",
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
            "reasoning_tokens 2 > completion_tokens 1",
        ),
    ],
)
def test_reports_no_server_can_make_are_refused(report, reason):
    with pytest.raises(ImplausibleUsage, match=reason):
        Usage.from_openai(report)


def test_a_whole_number_written_as_a_float_is_a_count():
    assert Usage.from_openai({"prompt_tokens": 12.0, "completion_tokens": 3.0}).output == 3


@pytest.mark.parametrize(
    ("usage", "bounds", "reason"),
    [
        (Usage(output=5), UsageBounds(prompt=100), "prompt_tokens 0"),
        (Usage(10), UsageBounds(prompt=100, answered=True), "completion_tokens 0 for an answer"),
        (Usage(input_uncached=101), UsageBounds(prompt=100), "the most the prompt sent can make"),
        (Usage(10, output=49), UsageBounds(prompt=100, max_tokens=16), "far above max_tokens 16"),
        (Usage(90, output=20), UsageBounds(100, context_window=100), "context window"),
        (Usage(10, output=10_000_000), UsageBounds(prompt=100), "any model's context"),
    ],
)
def test_reports_beyond_what_the_request_allows_are_refused(usage, bounds, reason):
    with pytest.raises(ImplausibleUsage, match=reason):
        check_usage(usage, bounds)


def test_reports_within_bounds_pass():
    check_usage(Usage(10, 80, output=48, reasoning=40), UsageBounds(100, 16, context_window=200))


def test_the_prompt_ceiling_allows_tokenizers_that_count_every_byte_and_images():
    text = [{"role": "user", "content": "é" * 1000}]  # 2,000 UTF-8 bytes
    assert prompt_token_ceiling(text) >= 2000 + count_chat(text)
    image = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {}}]
    with_image = prompt_token_ceiling([{"role": "user", "content": image}])
    assert with_image - prompt_token_ceiling([{"role": "user", "content": "what is this?"}]) >= (
        16_384
    )
