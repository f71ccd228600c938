"""Reservations bound the real cost against servers that count more or ignore max_tokens.

Each case runs 50 concurrent calls in one budgeted query against a stub server
on loopback (tests/support/misbehaving_server.py).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from budget_runs import BUDGET_USD, MAX_TOKENS, endpoint_toml, run_query
from misbehaving_server import Misbehaviour, misbehaving_server

from spendgraph.providers import BudgetLimit, ChatRequest, ProviderLayer, parse_config
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.usage import Price, bound_cost


@pytest.mark.parametrize("stream", [False, True])
async def test_a_server_counting_1_5x_is_bounded_by_its_own_tokenizer(ledger, stream):
    with misbehaving_server(Misbehaviour(scale=1.5)) as url:
        spend = await run_query(endpoint_toml(url, tokenize_api="vllm"), ledger, stream=stream)
    assert spend.spent <= spend.budget
    assert all(row.overrun_usd is None for row in spend.rows)
    assert spend.status == "ok"


async def test_a_stream_ignoring_max_tokens_is_cut_at_its_hold(ledger):
    with misbehaving_server(Misbehaviour(overgen=4)) as url:
        spend = await run_query(endpoint_toml(url), ledger, stream=True)
    assert spend.spent <= spend.budget
    cut = [row for row in spend.rows if row.status is CallStatus.CUT_AT_BUDGET]
    assert cut and all(row.usage.output == MAX_TOKENS for row in cut)
    assert {row.status for row in spend.rows} == {
        CallStatus.CUT_AT_BUDGET,
        CallStatus.BUDGET_DENIED,
    }


async def test_a_stream_cut_counts_with_the_servers_scale(ledger):
    # Counting 1.5x and ignoring max_tokens: the meter scales tiktoken by the ratio
    # the tokenizer endpoint showed on the prompt.
    with misbehaving_server(Misbehaviour(scale=1.5, overgen=4)) as url:
        spend = await run_query(endpoint_toml(url, tokenize_api="vllm"), ledger, stream=True)
    assert spend.spent <= spend.budget
    assert any(row.status is CallStatus.CUT_AT_BUDGET for row in spend.rows)


async def test_a_non_streamed_call_under_a_budget_is_streamed_and_cut_at_its_hold(ledger):
    # layer.chat under a budget goes out as a stream, so a server ignoring
    # max_tokens is stopped at the hold instead of overrunning (50 calls in flight
    # together would all overrun before the first one settled).
    with misbehaving_server(Misbehaviour(overgen=4)) as url:
        spend = await run_query(endpoint_toml(url), ledger, stream=False)
    assert spend.overshoot == 0 and spend.spent <= spend.budget
    cut = [row for row in spend.rows if row.status is CallStatus.CUT_AT_BUDGET]
    assert cut and all(row.stream and row.usage.output <= MAX_TOKENS for row in cut)
    assert all(row.overrun_usd is None for row in spend.rows)


@pytest.mark.parametrize("stream", [False, True])
async def test_after_one_overrun_no_later_call_starts(ledger, stream):
    # No tokenizer endpoint and a server counting 1.5x: the first call's prompt
    # costs more than its hold. It is flagged, and the 49 after it are refused.
    with misbehaving_server(Misbehaviour(scale=1.5)) as url:
        spend = await run_query(endpoint_toml(url), ledger, stream=stream, waves=(1, 49))
    statuses = [row.status for row in spend.rows]
    assert statuses.count(CallStatus.OK) == 1 and len(statuses) == 50
    assert statuses.count(CallStatus.BUDGET_DENIED) == 49
    assert sum(row.overrun_usd is not None for row in spend.rows) == 1
    assert spend.status == "budget_exhausted"


async def test_the_loop_server_without_a_tokenizer_is_flagged_not_hidden(ledger):
    # No tokenize endpoint, and 1.5x exceeds the default 10% margin: the overrun
    # shows on the rows (it cannot be prevented without the server's count).
    with misbehaving_server(Misbehaviour(scale=1.5)) as url:
        spend = await run_query(endpoint_toml(url), ledger, stream=True)
    assert all(row.overrun_usd is not None for row in spend.rows if row.status is CallStatus.OK)


async def test_a_wider_margin_covers_a_server_without_a_tokenizer(ledger):
    with misbehaving_server(Misbehaviour(scale=1.5)) as url:
        toml = endpoint_toml(url).replace('tokenize_api = "none"', "prompt_margin = 0.6")
        spend = await run_query(toml, ledger, stream=False)
    assert spend.spent <= BUDGET_USD
    assert all(row.overrun_usd is None for row in spend.rows)


def test_the_prompt_is_reserved_at_the_dearer_input_rate():
    cheap_cached = Price(Decimal(1), Decimal("0.1"), Decimal(4))
    dear_cached = Price(Decimal(1), Decimal(37), Decimal(4))
    assert bound_cost(1_000_000, 0, cheap_cached) == Decimal(1)
    assert bound_cost(1_000_000, 0, dear_cached) == Decimal(37)
    assert bound_cost(10, 5, Price(None, Decimal(1), Decimal(1))) is None


async def test_a_user_budget_alone_also_streams_plain_calls_so_they_are_cut(ledger):
    # No per-query limit: the user's day budget is what holds the calls, and it
    # must be just as unable to overrun as a query budget.
    with misbehaving_server(Misbehaviour(overgen=4)) as url:
        config = parse_config(endpoint_toml(url), source="budget.toml", env={})
        layer = ProviderLayer(config, ledger, env={})
        limit = BudgetLimit("user", "day", usd=BUDGET_USD)
        request = ChatRequest(messages=[{"role": "user", "content": "a story"}], max_tokens=16)
        try:
            async with layer.query(user="ada", budgets=[limit]) as scope:
                results = await asyncio.gather(
                    *(layer.chat(request) for _ in range(50)), return_exceptions=True
                )
        finally:
            await layer.aclose(close_ledger=False)
    assert all(not isinstance(r, Exception) or isinstance(r, BudgetExceeded) for r in results)
    rows = ledger.calls_for_query(scope.id)
    spent = sum((row.cost_usd or Decimal(0) for row in rows), Decimal(0))
    assert spent <= BUDGET_USD
    cut = [row for row in rows if row.status is CallStatus.CUT_AT_BUDGET]
    assert cut and all(row.stream for row in cut)
