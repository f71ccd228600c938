"""The provider layer end to end: real simulator, real openai client, real SQLite ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.context import agent_scope
from spendgraph.providers.ledger.records import CallRecord, CallStatus, QueryStatus
from spendgraph.providers.local.sim.server import run_simulator_async
from spendgraph.providers.tokens import count_chat, count_text
from spendgraph.providers.usage import UsageSource

PRICE_IN, PRICE_CACHED, PRICE_OUT = Decimal("0.04"), Decimal("0.01"), Decimal("0.16")
MESSAGES = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "Explain prefix caching in two sentences."},
]


def expected_cost(uncached: int, cached: int, output: int) -> Decimal:
    return (uncached * PRICE_IN + cached * PRICE_CACHED + output * PRICE_OUT) / Decimal(1_000_000)


@pytest.fixture
def layer(make_layer, endpoint_toml):
    return make_layer(endpoint_toml("nvfp4-0", "b200-nvfp4-0"))


def calls(ledger, query_id):
    ledger.flush()
    return ledger.calls_for_query(query_id)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_usage_and_cost_are_recorded_exactly(layer, ledger, stream):
    request = ChatRequest(messages=MESSAGES, model="default", max_tokens=40)
    async with layer.query(app="test") as scope:
        if stream:
            async with layer.stream(request) as chunks:
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            result = chunks.result
            assert result.content == text
        else:
            result = await layer.chat(request)
    (row,) = calls(ledger, scope.id)
    prompt = count_chat(MESSAGES)
    assert row.usage.input_uncached + row.usage.input_cached == prompt
    assert row.usage.output == count_text(result.content) > 0
    assert row.usage.source is UsageSource.REPORTED
    assert row.status is CallStatus.OK and row.stream is stream
    assert row.cost_usd == expected_cost(
        row.usage.input_uncached, row.usage.input_cached, row.usage.output
    )
    assert result.cost_usd == row.cost_usd
    summary = ledger.query_summary(scope.id)
    assert summary.query.status == QueryStatus.OK
    assert summary.spend.cost == row.cost_usd


async def test_cached_tokens_are_priced_at_the_cached_rate(layer, ledger):
    long_system = {"role": "system", "content": "Policy text. " * 400}
    first = [long_system, {"role": "user", "content": "First question?"}]
    second = [long_system, {"role": "user", "content": "A different second question?"}]
    async with layer.query() as scope:
        await layer.chat(ChatRequest(messages=first, max_tokens=8))
        result = await layer.chat(ChatRequest(messages=second, max_tokens=8))
    usage = result.usage
    assert usage.input_cached > 400
    assert usage.input_uncached + usage.input_cached == count_chat(second)
    assert result.cost_usd == expected_cost(usage.input_uncached, usage.input_cached, usage.output)
    rows = calls(ledger, scope.id)
    assert [r.usage.input_cached > 0 for r in rows] == [False, True]


async def test_cut_stream_is_recorded_with_counted_usage(make_layer, endpoint_toml, ledger):
    layer = make_layer(endpoint_toml("vllm-like", "b200-nvfp4-1", extra='tokenize_api = "vllm"'))
    request = ChatRequest(
        messages=MESSAGES, max_tokens=60, extra_headers={"x-sim-fault": "cut_after=5"}
    )
    received = []
    async with layer.query() as scope:
        with pytest.raises(Exception, match=r"ended early|stream"):
            async with layer.stream(request) as chunks:
                async for chunk in chunks:
                    received.extend(c.delta.content or "" for c in chunk.choices)
    (row,) = calls(ledger, scope.id)
    assert row.status is CallStatus.ERROR and row.error_kind == "stream_cut"
    assert row.usage.source is UsageSource.COUNTED
    assert row.usage.input_uncached == count_chat(MESSAGES)
    assert row.usage.output == count_text("".join(received)) > 0
    assert row.cost_usd == expected_cost(row.usage.input_uncached, 0, row.usage.output)


async def test_cancelled_mid_stream_still_writes_a_row(layer, ledger):
    request = ChatRequest(messages=MESSAGES, max_tokens=200)
    got_first = asyncio.Event()

    async def consume():
        async with layer.stream(request) as chunks:
            async for _ in chunks:
                got_first.set()
                await asyncio.sleep(3600)  # the caller goes away mid-stream

    async with layer.query() as scope:
        task = asyncio.create_task(consume())
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (row,) = calls(ledger, scope.id)
    assert row.status is CallStatus.CANCELLED
    assert row.usage.source is UsageSource.ESTIMATED
    assert row.usage.input_uncached == count_chat(MESSAGES)
    assert row.usage.output >= 1


async def test_unknown_price_stays_unknown(make_layer, ledger):
    layer = make_layer(
        """
        [[endpoints]]
        name = "unpriced"
        base_url = "{sim}/r/h100-fp8-0/v1"
        model = "sim-large"
        """
    )
    async with layer.query() as scope:
        result = await layer.chat(ChatRequest(messages=MESSAGES, model="sim-large", max_tokens=8))
    assert result.cost_usd is None
    assert scope.spend.cost is None
    assert "unknown" in scope.spend.describe()
    summary = ledger.query_summary(scope.id)
    assert summary.spend.cost is None and summary.spend.unpriced == 1


async def test_calls_are_attributed_to_query_and_agent_path(layer, ledger):
    request = ChatRequest(messages=MESSAGES, max_tokens=8)
    async with layer.query(app="attribution") as scope:
        with agent_scope("supervisor"):
            await layer.chat(request)
            with agent_scope("coder"):
                await asyncio.gather(layer.chat(request), layer.chat(request))
    outside = await layer.chat(request)
    rows = calls(ledger, scope.id)
    assert sorted(r.agent_path for r in rows) == [
        "supervisor",
        "supervisor/coder",
        "supervisor/coder",
    ]
    assert outside.call.query_id is None
    assert scope.spend.calls == 3
    assert ledger.query_summary(scope.id).spend.cost == sum(r.cost_usd for r in rows)


async def test_prompt_text_is_stored_only_when_the_query_opts_in(layer, ledger):
    request = ChatRequest(messages=MESSAGES, max_tokens=8)
    async with layer.query() as private:
        await layer.chat(request)
    async with layer.query(store_text=True) as kept:
        await layer.chat(request)
    (private_row,) = calls(ledger, private.id)
    (kept_row,) = calls(ledger, kept.id)
    assert private_row.prompt_text is None and private_row.completion_text is None
    assert "prefix caching" in kept_row.prompt_text and kept_row.completion_text


@pytest.mark.parametrize(
    ("mode", "tokenize_api", "source"),
    [
        ("cumulative", "none", UsageSource.REPORTED),
        ("never", "vllm", UsageSource.COUNTED),
        ("never", "none", UsageSource.ESTIMATED),
    ],
)
async def test_streams_with_cumulative_or_missing_usage(
    make_layer, ledger, tmp_path, mode, tokenize_api, source
):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'stream_usage = "{mode}"\n[models.sim-large]\n'
        '[[replicas]]\nname = "b"\ncount = 1\nprofile = "B200-NVFP4"\n'
    )
    request = ChatRequest(messages=MESSAGES, max_tokens=30)
    async with run_simulator_async(fleet) as odd:
        layer = make_layer(
            f"""
            [[endpoints]]
            name = "odd"
            base_url = "{{sim}}/r/b-0/v1"
            model = "sim-large"
            serves = ["default"]
            tokenize_api = "{tokenize_api}"
            price = {{ input = 0.04, cached_input = 0.01, output = 0.16 }}
            """,
            sim_url=odd.base_url,
        )
        async with layer.query() as scope, layer.stream(request) as chunks:
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    (row,) = calls(ledger, scope.id)
    assert row.usage.source is source
    # Cumulative reports are not added up; counted/estimated match the server's own count.
    assert row.usage.prompt_tokens == count_chat(MESSAGES)
    assert row.usage.output == count_text(text)


async def test_a_call_row_that_cannot_be_written_fails_the_query_loudly(layer, ledger):
    from sqlalchemy import text

    from spendgraph.providers.errors import LedgerError

    with ledger.engine.begin() as conn:  # the database loses the call table
        conn.execute(text("DROP TABLE call"))
    with pytest.raises(LedgerError, match=r"could not be written|writing call failed"):
        async with layer.query() as scope:
            result = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=8))
    assert result.content  # the caller got its answer; the query close reports the loss
    lost_calls = [r for r in ledger.unwritten() if isinstance(r, CallRecord)]
    assert [r.id for r in lost_calls] == [result.call.id]  # kept for inspection, not dropped
    assert scope.spend.calls == 1
