"""What the server spent is what the ledger books, whatever fault the fleet simulator injects.

Each case runs multi-turn conversations (a long shared system prompt, so the
prefix cache matters) through the provider layer against a simulator whose
replicas inject one fault kind, then compares the ledger's sums with the
simulator's own counters on ``/metrics`` (vLLM's names): prompt tokens
(``vllm:prompt_tokens_total``), prefix-cache hits (``vllm:prefix_cache_hits_total``)
and generated tokens (``vllm:generation_tokens_total``), within 1%.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sim_faults import fault

from spendgraph.providers import ChatRequest, ProviderLayer, parse_config
from spendgraph.providers.errors import EndpointError, NoEndpointAvailable
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.local.sim import parse_fleet, run_simulator_async
from spendgraph.providers.tokens import count_chat
from spendgraph.providers.usage import UsageSource

TOLERANCE = 0.01
REPLICAS = ("b200-nvfp4-0", "h100-fp8-0")
SYSTEM = "You are the harbor master's assistant; answer briefly and kindly. " * 25
CONVERSATIONS, TURNS, MAX_TOKENS = 12, 4, 64


@dataclass(frozen=True)
class Case:
    faults: str  # the [replicas.faults] lines
    stream: bool
    stream_usage: str = "final"
    timeout_s: float = 5.0


CASES = {
    "none": Case("", stream=False),
    "429": Case("rate_429 = 0.25\nretry_after = 0", stream=False),
    "429-stream": Case("rate_429 = 0.25\nretry_after = 0", stream=True),
    "500": Case("rate_500 = 0.25", stream=False),
    "500-stream": Case("rate_500 = 0.25", stream=True),
    "503": Case("rate_503 = 0.25", stream=False),
    "503-stream": Case("rate_503 = 0.25", stream=True),
    # Timeouts well apart from the delay: a loaded machine must not make the client
    # give up on a request the server then answers (booked 0, but spent).
    "delay": Case("rate_delay = 0.25\ndelay = 4.0", stream=False, timeout_s=1.0),
    "delay-stream": Case("rate_delay = 0.25\ndelay = 4.0", stream=True, timeout_s=1.0),
    "cut": Case("rate_cut = 0.25\ncut_after = 3", stream=False),
    "cut-stream": Case("rate_cut = 0.25\ncut_after = 3", stream=True),
    "cut-stream-cumulative": Case("rate_cut = 0.25\ncut_after = 3", True, "cumulative"),
}


def _fleet(case: Case):
    lines = [f'stream_usage = "{case.stream_usage}"', "[models.sim-large]"]
    for name in REPLICAS:
        profile = "B200-NVFP4" if name.startswith("b200") else "H100-FP8"
        lines += ["[[replicas]]", f'name = "{name}"', f'profile = "{profile}"']
        lines += ["[replicas.faults]", case.faults]
    return parse_fleet("\n".join(lines))


def _config(sim_url: str, timeout_s: float, max_retries: int = 3):
    text = f"""
[routing]
max_retries = {max_retries}
backoff_initial_s = 0
backoff_max_s = 0
breaker_min_attempts = 100000
[tiers.default]
prefix_affinity = true
"""
    for name in REPLICAS:
        text += f"""
[[endpoints]]
name = "{name}"
base_url = "{sim_url}/r/{name}/v1"
model = "sim-large"
serves = ["default"]
pool = "harbor"
engine = "sim"
timeout_s = {timeout_s}
price = {{ input = 0.04, cached_input = 0.01, output = 0.16 }}
"""
    return parse_config(text, source="faults.toml", env={})


async def _ask(layer: ProviderLayer, request: ChatRequest, stream: bool) -> str:
    if not stream:
        return (await layer.chat(request)).content
    async with layer.stream(request) as chunks:
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def _warm_up(layer: ProviderLayer, stream: bool) -> None:
    """The system prompt to each replica, one call at a time, twice, without faults.

    Of two prompts racing to a cold replica, which one the server computes first
    (and which one then hits the other's prefix) is not knowable by the client;
    and the second call shows the endpoint caches (the estimator books no cache
    hit for an endpoint that never reported one).
    """
    for name, greeting in itertools.product(REPLICAS, ("Morning!", "Hello again!")):
        opening = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": greeting}]
        no_faults = {"x-sim-fault": "none"}
        request = ChatRequest(
            opening, max_tokens=MAX_TOKENS, endpoint=name, extra_headers=no_faults
        )
        await _ask(layer, request, stream)


async def _conversation(layer: ProviderLayer, index: int, stream: bool) -> None:
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(TURNS):
        question = f"Conversation {index}, question {turn}: is pier {turn} open today?"
        messages.append({"role": "user", "content": question})
        request = ChatRequest(list(messages), max_tokens=MAX_TOKENS, affinity_key=f"c{index}")
        try:
            answer = await _ask(layer, request, stream)
        except (NoEndpointAvailable, EndpointError):
            answer = "(the answer broke off)"  # the conversation goes on, as a user's would
        messages.append({"role": "assistant", "content": answer})


async def _server_counters(base_url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base_url}/metrics")).text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return {
        "prompt": sums["vllm:prompt_tokens_total"],
        "cached": sums["vllm:prefix_cache_hits_total"],
        "output": sums["vllm:generation_tokens_total"],
    }


@pytest.mark.parametrize("kind", list(CASES))
async def test_the_ledger_books_what_the_server_counted(ledger, kind):
    case = CASES[kind]
    async with run_simulator_async(_fleet(case), seed=3) as sim:
        layer = ProviderLayer(_config(sim.base_url, case.timeout_s), ledger, env={})
        try:
            async with layer.query(app="faults") as scope:
                await _warm_up(layer, case.stream)
                await asyncio.gather(
                    *(_conversation(layer, i, case.stream) for i in range(CONVERSATIONS))
                )
        finally:
            await layer.aclose(close_ledger=False)
        server = await _server_counters(sim.base_url)
    rows = ledger.calls_for_query(scope.id)
    booked = {
        "prompt": sum(row.usage.prompt_tokens for row in rows),
        "cached": sum(row.usage.input_cached for row in rows),
        "output": sum(row.usage.output for row in rows),
    }
    if kind != "none":  # the fault really fired
        assert any(row.status is not CallStatus.OK for row in rows)
    assert server["cached"] > server["prompt"] / 2  # the cache matters in this workload
    for bucket, counted in server.items():
        assert abs(booked[bucket] - counted) <= TOLERANCE * counted, (bucket, booked, server)


# -- a non-streamed answer cut mid-body -------------------------------------------


async def _one_cut_call(ledger, sim_url: str, spec: str, *, max_retries: int):
    layer = ProviderLayer(_config(sim_url, 5.0, max_retries), ledger, env={})
    request = ChatRequest(
        [{"role": "user", "content": "Is the harbor open?"}],
        max_tokens=MAX_TOKENS,
        endpoint=REPLICAS[0],
        extra_headers=fault(spec),
    )
    try:
        async with layer.query() as scope:
            try:
                result = await layer.chat(request)
            except NoEndpointAvailable:
                result = None
    finally:
        await layer.aclose(close_ledger=False)
    return result, ledger.calls_for_query(scope.id)


async def test_a_body_cut_books_the_output_its_retry_got(ledger, sim):
    result, rows = await _one_cut_call(ledger, sim.base_url, "cut_after=0;times=1", max_retries=2)
    cut, answered = rows
    assert (cut.status, cut.error_kind) == (CallStatus.ERROR, "stream_cut")
    prompt = count_chat([{"role": "user", "content": "Is the harbor open?"}])
    assert cut.usage.prompt_tokens == prompt and cut.usage.source is UsageSource.ESTIMATED
    assert cut.usage.output == answered.usage.output > 0  # the same request, answered again
    assert cut.cost_usd > 0
    assert [a.usage for a in result.attempts] == [cut.usage, answered.usage]


async def test_a_body_cut_no_attempt_answered_books_max_tokens_as_an_upper_bound(ledger, sim):
    result, rows = await _one_cut_call(ledger, sim.base_url, "cut_after=0", max_retries=1)
    assert result is None and len(rows) == 2
    for row in rows:
        assert (row.status, row.error_kind) == (CallStatus.ERROR, "stream_cut")
        assert row.usage.source is UsageSource.UPPER_BOUND and row.usage.output == MAX_TOKENS
        assert row.usage.prompt_tokens > 0 and row.cost_usd > 0
