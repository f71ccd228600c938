"""Each engine profile against the simulator replica that answers like that engine.

Calls go through the real provider layer and openai client into a real SQLite
ledger; the ledger's rows are compared with what the simulated engine itself
counted (its per-replica token totals, which its metrics expose).
"""

from __future__ import annotations

import openai
import pytest
from dialect_fleet import DIALECTS, THINK_TOKENS, dialect_config_toml, dialect_fleet_toml

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.errors import StreamCut
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.local.sim import FAULT_HEADER, parse_fleet
from spendgraph.providers.local.sim.server import run_simulator

# Long enough to fill several 16-token prefix-cache blocks, so a second call hits.
SYSTEM = "You are a careful assistant for a travel company. " * 12
# Dialects whose usage reports say how much of the prompt was cached.
REPORTS_CACHED = {"vllm", "sglang", "trtllm", "dynamo", "nim", "llama-server", "openai"}
REPORTS_REASONING = {
    "vllm": "details",
    "sglang": "top_level",
    "openai": "details",
    "nim": "details",
}


@pytest.fixture(scope="module")
def dialect_sim():
    with run_simulator(parse_fleet(dialect_fleet_toml()), time_scale=0.0) as running:
        yield running


@pytest.fixture
def dialect_layer(dialect_sim, make_layer):
    """A layer with one endpoint per dialect (``dialect_config_toml`` options)."""

    def build(**options) -> ProviderLayer:
        return make_layer(dialect_config_toml("{sim}", **options), sim_url=dialect_sim.base_url)

    return build


def _totals(sim, replica: str, model: str = "sim-large") -> tuple[int, int, int]:
    totals = sim.state.replicas[replica].totals.of(model)
    return totals.prompt, totals.cached, totals.generation


def _since(sim, replica: str, before: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(_totals(sim, replica), before, strict=True))


def _messages(topic: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": topic}]


async def _call(layer, name: str, topic: str, *, stream: bool, model: str = "", **extra):
    request = ChatRequest(messages=_messages(topic), endpoint=name, max_tokens=60, **extra)
    if stream:
        async with layer.stream(request) as chunks:
            async for _ in chunks:
                pass
        return chunks.result
    return await layer.chat(request)


async def _rows(layer, name: str, topics: list[str], *, stream: bool):
    async with layer.query(app="dialects") as scope:
        for topic in topics:
            await _call(layer, name, topic, stream=stream)
    layer.ledger.flush()
    return layer.ledger.calls_for_query(scope.id)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("name", DIALECTS)
async def test_ledger_rows_match_what_the_engine_counted(dialect_sim, dialect_layer, name, stream):
    layer = dialect_layer()
    before = _totals(dialect_sim, name)
    # Two turns on one system prompt: the second one hits the replica's prefix cache.
    topics = [f"hotels in Lisbon {name} {stream}", f"trains to Porto {name} {stream}"]
    rows = await _rows(layer, name, topics, stream=stream)
    prompt, cached, generated = (
        a - b for a, b in zip(_totals(dialect_sim, name), before, strict=True)
    )
    assert [row.status.value for row in rows] == ["ok", "ok"]
    assert sum(row.usage.prompt_tokens for row in rows) == prompt
    assert sum(row.usage.output for row in rows) == generated
    if name in REPORTS_CACHED:
        assert cached > 0  # the test really exercises the cache
        assert sum(row.usage.input_cached for row in rows) == cached
    # llama-cpp-python streams carry no usage: its tokenizer endpoint counts the call.
    expected = "counted" if (name == "llama-cpp-python" and stream) else "reported"
    assert {row.usage.source.value for row in rows} == {expected}
    assert all(row.cost_usd is not None and row.cost_usd > 0 for row in rows)


@pytest.mark.parametrize("name", ["vllm", "sglang", "openai", "trtllm", "llama-server"])
async def test_reasoning_tokens_are_read_where_the_engine_puts_them(
    dialect_sim, dialect_layer, name
):
    layer = dialect_layer(model="sim-think")
    before = _totals(dialect_sim, name, "sim-think")
    result = await _call(layer, name, f"why is the sky blue {name}", stream=True)
    generated = _totals(dialect_sim, name, "sim-think")[2] - before[2]
    row = result.call
    assert row.usage.output == generated  # reasoning is part of the output either way
    expected = THINK_TOKENS if name in REPORTS_REASONING else 0
    assert row.usage.reasoning == expected


@pytest.mark.parametrize("name", ["vllm", "sglang", "trtllm"])
async def test_a_cut_stream_on_a_continuous_usage_engine_keeps_the_server_count(
    dialect_sim, dialect_layer, name
):
    layer = dialect_layer()
    before = _totals(dialect_sim, name)
    request = ChatRequest(
        messages=[{"role": "user", "content": f"a fresh question about cut streams {name}"}],
        endpoint=name,
        max_tokens=60,
        extra_headers={FAULT_HEADER: "cut_after=5"},
    )
    async with layer.query(app="cut") as scope:
        with pytest.raises(StreamCut):
            async with layer.stream(request) as chunks:
                async for _ in chunks:
                    pass
    layer.ledger.flush()
    prompt, _, generated = _since(dialect_sim, name, before)
    [row] = layer.ledger.calls_for_query(scope.id)
    assert row.status.value == "error" and row.error_kind is not None
    assert row.usage.source.value == "reported"  # the server's own count, not an estimate
    assert (row.usage.prompt_tokens, row.usage.output) == (prompt, generated)
    assert 0 < generated < 60  # cut: fewer tokens than the answer had


async def test_trtllm_gets_no_field_it_does_not_declare(dialect_sim, dialect_layer):
    # The engine refuses unknown fields: a raw client sending one gets a 400 ...
    client = openai.OpenAI(base_url=dialect_sim.replica_url("trtllm"), api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="sim-large",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"cache_report": True},
        )
    client.close()
    assert "cache_report" in str(refused.value.body)
    assert "Extra inputs are not permitted" in str(refused.value.body)
    # ... while every call shape the layer makes (tools, schema, streams) goes through.
    layer = dialect_layer()
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    for stream in (False, True):
        await _call(layer, "trtllm", "use the tool", stream=stream, tools=[tool])
        await _call(layer, "trtllm", "answer in json", stream=stream, response_format=schema)


async def test_a_profile_mismatch_is_estimated_and_an_unknown_price_stays_unknown(
    dialect_sim, dialect_layer
):
    # Plain OpenAI behaviour against a server whose streams never carry usage.
    layer = dialect_layer(dialects=["llama-cpp-python"], engine="openai", priced=False)
    result = await _call(layer, "llama-cpp-python", "mismatched profile", stream=True)
    row = result.call
    assert row.usage.source.value == "estimated"
    assert row.usage.prompt_tokens > 0 and row.usage.output > 0
    assert row.cost_usd is None  # unknown, never $0


async def test_a_cut_vllm_stream_estimates_the_cache_hit_its_chunks_leave_out(
    dialect_sim, dialect_layer
):
    # vLLM's per-chunk usage has no prompt_tokens_details: the hit is estimated from
    # what the endpoint was sent before, rather than booked as 0.
    layer = dialect_layer()
    await _call(layer, "vllm", "warm the cache", stream=True)
    before = _totals(dialect_sim, "vllm")
    request = ChatRequest(
        messages=_messages("now cut this one"),
        endpoint="vllm",
        max_tokens=60,
        extra_headers={FAULT_HEADER: "cut_after=5"},
    )
    async with layer.query(app="cut") as scope:
        with pytest.raises(StreamCut):
            await layer.stream(request).collect()
    prompt, cached, _ = _since(dialect_sim, "vllm", before)
    [row] = layer.ledger.calls_for_query(scope.id)
    assert row.usage.prompt_tokens == prompt and cached > 0
    assert 0 < row.usage.input_cached <= prompt
