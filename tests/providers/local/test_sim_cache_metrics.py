"""Prefix cache, timing, queueing, /metrics and /tokenize."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from spendgraph.providers.local.sim.prefix_cache import PrefixCache, prompt_token_ids
from spendgraph.providers.tokens import count_chat, count_text

# ~2,400 tokens of shared system prompt: a conversation prefix worth caching.
SYSTEM = {
    "role": "system",
    "content": " ".join(f"Rule {i}: answer the customer politely and briefly." for i in range(240)),
}


def _conversation(question: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": question}]


def test_shared_prefix_reports_cached_tokens(make_client):
    client = make_client("b200-fp8-0")
    first = client.chat.completions.create(
        model="sim-large", messages=_conversation("Where is my parcel?")
    )
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    second = client.chat.completions.create(
        model="sim-large", messages=_conversation("Can I get a refund?")
    )
    cached = second.usage.prompt_tokens_details.cached_tokens
    system_tokens = count_chat([SYSTEM]) - 3  # without the reply primer
    assert cached % 16 == 0
    assert system_tokens - 16 <= cached < second.usage.prompt_tokens
    # The cache belongs to the replica: another replica has not seen the prefix.
    other = make_client("b200-fp8-1").chat.completions.create(
        model="sim-large", messages=_conversation("Can I get a refund?")
    )
    assert other.usage.prompt_tokens_details.cached_tokens == 0


def test_repeated_prompt_leaves_one_token_to_compute(make_client):
    client = make_client("h200-fp8-1")
    messages = _conversation("Identical question twice.")
    client.chat.completions.create(model="sim-small", messages=messages)
    again = client.chat.completions.create(
        model="sim-small", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    usage = list(again)[-1].usage
    assert (
        usage.prompt_tokens - 16 <= usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens
    )


def _time_to_first_content(client: openai.OpenAI, messages: list[dict]) -> float:
    started = time.monotonic()
    for chunk in client.chat.completions.create(model="tiny", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            return time.monotonic() - started
    raise AssertionError("no content")


def test_cached_prefix_shortens_time_to_first_token(tiny_sim, make_client):
    server = tiny_sim(time_scale=1.0, prefill=6_000, base_ms=5, itl_ms=0)
    client = make_client("r-0", server=server)
    cold = _time_to_first_content(client, _conversation("First question?"))
    warm = _time_to_first_content(client, _conversation("Second question?"))
    expected_cold = 0.005 + count_chat(_conversation("First question?")) / 6_000
    assert cold >= expected_cold * 0.9
    assert warm < cold / 3


def test_inter_token_latency_paces_the_stream(tiny_sim, make_client):
    server = tiny_sim(time_scale=0.5, base_ms=0, itl_ms=40)
    client = make_client("r-1", server=server)
    started = time.monotonic()
    response = client.chat.completions.create(
        model="tiny", messages=_conversation("Hi"), max_tokens=10
    )
    elapsed = time.monotonic() - started
    assert response.usage.completion_tokens == 10
    assert elapsed >= 10 * 0.040 * 0.5 * 0.9


async def test_requests_beyond_max_seqs_wait_in_a_fifo_queue(tiny_sim, metrics):
    server = await asyncio.to_thread(tiny_sim, time_scale=1.0, max_seqs=1, base_ms=200, itl_ms=0)
    async with openai.AsyncOpenAI(
        base_url=server.replica_url("r-0"), api_key="x", max_retries=0
    ) as client:

        async def call(i: int) -> float:
            await client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=3
            )
            return time.monotonic()

        started = time.monotonic()
        tasks = [asyncio.create_task(call(i)) for i in range(3)]
        peak_waiting = 0.0
        while not all(task.done() for task in tasks):
            sample = await asyncio.to_thread(metrics, server)
            peak_waiting = max(peak_waiting, sample.sum("vllm:num_requests_waiting", replica="r-0"))
            assert sample.sum("vllm:num_requests_running", replica="r-0") <= 1
            await asyncio.sleep(0.02)
        finished = sorted(await asyncio.gather(*tasks))
    assert peak_waiting == 2
    assert finished[-1] - started >= 3 * 0.2 * 0.9
    assert finished[1] - finished[0] >= 0.2 * 0.8  # served one after another
    after = await asyncio.to_thread(metrics, server)
    assert after.sum("vllm:num_requests_waiting") == after.sum("vllm:num_requests_running") == 0


def test_metrics_totals_match_usage_received(tiny_sim, make_client, metrics):
    server = tiny_sim()
    received: dict[str, list] = {"r-0": [], "r-1": []}
    for replica in received:
        client = make_client(replica, server=server)
        for question in ("Where?", "When?", "Why?"):
            response = client.chat.completions.create(
                model="tiny", messages=_conversation(question)
            )
            received[replica].append(response.usage)
        stream = client.chat.completions.create(
            model="tiny",
            messages=_conversation("How?"),
            max_tokens=9,
            stream=True,
            stream_options={"include_usage": True},
        )
        received[replica].append(list(stream)[-1].usage)
    sample = metrics(server)
    for replica, usages in received.items():
        prompt = sum(u.prompt_tokens for u in usages)
        assert sample.sum("vllm:prompt_tokens_total", replica=replica) == prompt
        assert sample.sum("vllm:prefix_cache_queries_total", replica=replica) == prompt
        assert sample.sum("vllm:generation_tokens_total", replica=replica) == sum(
            u.completion_tokens for u in usages
        )
        assert sample.sum("vllm:prefix_cache_hits_total", replica=replica) == sum(
            u.prompt_tokens_details.cached_tokens for u in usages
        )
        assert sample.sum("vllm:request_success_total", replica=replica) == len(usages)
        assert (
            sample.sum("vllm:request_success_total", replica=replica, finished_reason="length") == 1
        )


def test_metrics_are_prometheus_text_with_vllm_names(sim, metrics):
    response = httpx.get(f"{sim.base_url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {name for name, _, _ in metrics(sim).samples}
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
    ):
        assert name in names
    labels = {
        tuple(sorted(lbl))
        for name, lbl, _ in metrics(sim).samples
        if name == "vllm:prompt_tokens_total"
    }
    assert labels == {("model_name", "replica")}


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("path", ["/tokenize", "/r/h100-fp8-1/tokenize"])
@pytest.mark.parametrize("tools", [None, TOOLS])
def test_tokenize_messages_equals_count_chat(sim, path, tools):
    messages = _conversation("Count me, please.")
    body = {"model": "sim-large", "messages": messages, **({"tools": tools} if tools else {})}
    result = httpx.post(sim.base_url + path, json=body).json()
    assert result["count"] == count_chat(messages, tools=tools) == len(result["tokens"])
    assert result["max_model_len"] == 131_072


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "sim-large"}, 400),
        ({"model": "nope", "prompt": "x"}, 404),
        ({"prompt": "x"}, 200),
    ],
)
def test_tokenize_errors_and_default_model(sim, body, status):
    assert httpx.post(f"{sim.base_url}/r/h100-fp8-0/tokenize", json=body).status_code == status


def test_tokenize_prompt_equals_count_text(sim):
    result = httpx.post(
        f"{sim.base_url}/r/b200-nvfp4-3/tokenize",
        json={"model": "sim-small", "prompt": "Hello there, world!"},
    ).json()
    assert result["count"] == count_text("Hello there, world!")
    assert result["max_model_len"] == 32_768


def test_prompt_token_ids_have_count_chat_length():
    messages = [*_conversation("hi"), {"role": "assistant", "content": None, "tool_calls": []}]
    assert len(prompt_token_ids(messages, "o200k_base", TOOLS)) == count_chat(messages, tools=TOOLS)


def test_prefix_cache_chains_blocks_and_evicts_least_recent():
    cache = PrefixCache(capacity_blocks=4, block_size=4)
    a = list(range(100, 112))  # three full blocks
    assert cache.lookup_and_insert(a) == 0
    assert cache.lookup_and_insert([*a, 1]) == 12
    assert cache.lookup_and_insert([9, *a[1:]]) == 0  # same later blocks, other first block
    assert len(cache) == 4  # bounded
    # Under pressure a prompt's tail goes first: `a` keeps only its first block.
    assert cache.lookup_and_insert(a) == 4


def test_abandoned_requests_leave_the_queue(tiny_sim, make_client, metrics):
    server = tiny_sim(time_scale=1.0, max_seqs=1, base_ms=300, itl_ms=0)
    impatient = make_client("r-0", server=server, timeout=0.15)

    def give_up(i: int) -> None:  # one runs, two queue; all time out
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": f"{i}"}]
            )

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(give_up, range(3)))
    deadline = time.monotonic() + 5
    while (sample := metrics(server)).sum("vllm:num_requests_running") or sample.sum(
        "vllm:num_requests_waiting"
    ):
        assert time.monotonic() < deadline, "abandoned requests still hold the replica"
        time.sleep(0.02)
    started = time.monotonic()
    patient = make_client("r-0", server=server)
    assert patient.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "x"}]
    )
    assert time.monotonic() - started < 0.3 * 3  # not stuck behind the abandoned ones
