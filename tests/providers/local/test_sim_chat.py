"""Chat completions through the real openai client: usage, streaming, determinism, routing."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from spendgraph.providers.local.sim.server import run_simulator, run_simulator_async
from spendgraph.providers.tokens import count_chat, count_text

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Explain how glaciers carve valleys in the Alps."},
]


def _stream(client: openai.OpenAI, **kwargs):
    return list(
        client.chat.completions.create(model="sim-large", messages=MESSAGES, stream=True, **kwargs)
    )


def _content(chunks) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def test_health_and_models(sim, make_client):
    assert httpx.get(f"{sim.base_url}/health").json() == {"status": "ok"}
    fleet_models = {m.id for m in make_client(replica=None).models.list()}
    assert fleet_models == {"sim-large", "sim-small"}
    cards = make_client("b200-nvfp4-2").models.list().data
    assert {card.id for card in cards} == {"sim-large", "sim-small"}
    large = next(card for card in cards if card.id == "sim-large")
    assert large.sim["hardware"] == "B200" and large.sim["precision"] == "nvfp4"
    assert large.sim["price_per_million"]["input"] == "0.05"


def test_non_streamed_usage_matches_token_counts(client):
    response = client.chat.completions.create(model="sim-large", messages=MESSAGES)
    choice = response.choices[0]
    usage = response.usage
    assert response.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert usage.prompt_tokens == count_chat(MESSAGES)
    assert usage.completion_tokens == count_text(choice.message.content)
    assert 20 <= usage.completion_tokens <= 140
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_text_reads_like_text_and_echoes_the_question(client):
    content = client.chat.completions.create(model="sim-large", messages=MESSAGES).choices[0]
    text = content.message.content
    assert text.endswith(".") and text.isascii()
    assert any(word in text for word in ("glaciers", "carve", "valleys", "Alps"))


def test_stream_chunks_have_openai_shape(client):
    chunks = _stream(client, stream_options={"include_usage": True})
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert usage_chunk.usage.prompt_tokens == count_chat(MESSAGES)
    assert usage_chunk.usage.completion_tokens == count_text(_content(chunks))


def test_stream_without_include_usage_sends_no_usage(client):
    chunks = _stream(client)
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


def test_stream_raw_sse_ends_with_done(sim):
    body = {"model": "sim-small", "messages": MESSAGES, "stream": True}
    response = httpx.post(f"{sim.base_url}/r/h200-fp8-0/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    assert all(event.startswith("data: ") for event in response.text.strip().split("\n\n"))


@pytest.mark.parametrize(
    ("mode", "usage_on_every_chunk", "final_usage"),
    [("cumulative", True, True), ("never", False, False), ("final", False, True)],
)
def test_stream_usage_modes(make_client, mode, usage_on_every_chunk, final_usage):
    client = make_client(default_headers={"x-sim-stream-usage": mode})
    chunks = _stream(client, stream_options={"include_usage": True})
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    assert (len(with_usage) == len(chunks)) is usage_on_every_chunk
    assert (chunks[-1].choices == []) is final_usage
    if mode == "cumulative":
        counts = [chunk.usage.completion_tokens for chunk in with_usage]
        assert counts == sorted(counts) and counts[-1] == count_text(_content(chunks))


def test_stream_usage_mode_from_fleet_file(fleet_file):
    path = fleet_file(
        """
        stream_usage = "never"
        [models.m]
        [[replicas]]
        name = "llama-cpp"
        profile = "H100-FP8"
        """
    )
    with (
        run_simulator(path) as server,
        openai.OpenAI(
            base_url=server.replica_url("llama-cpp"), api_key="x", max_retries=0
        ) as client,
    ):
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert all(chunk.usage is None for chunk in stream)


def test_streamed_and_whole_answers_are_identical(client):
    whole = client.chat.completions.create(model="sim-large", messages=MESSAGES)
    assert _content(_stream(client)) == whole.choices[0].message.content


def test_same_request_same_answer_other_seed_other_answer(client, make_client):
    def ask(c: openai.OpenAI) -> str:
        return (
            c.chat.completions.create(model="sim-large", messages=MESSAGES)
            .choices[0]
            .message.content
        )

    first = ask(client)
    assert ask(client) == first
    assert ask(make_client("b200-fp8-1")) == first  # the answer does not depend on the replica
    with (
        run_simulator(seed=7) as other,
        openai.OpenAI(
            base_url=other.replica_url("h100-fp8-0"), api_key="x", max_retries=0
        ) as other_client,
    ):
        assert ask(other_client) != first


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_truncates_with_finish_reason_length(client, field, stream):
    kwargs = {field: 7, "stream": stream}
    if stream:
        kwargs["stream_options"] = {"include_usage": True}
    result = client.chat.completions.create(model="sim-large", messages=MESSAGES, **kwargs)
    if stream:
        chunks = list(result)
        finish, usage, text = (
            chunks[-2].choices[0].finish_reason,
            chunks[-1].usage,
            _content(chunks),
        )
    else:
        choice = result.choices[0]
        finish, usage, text = choice.finish_reason, result.usage, choice.message.content
    assert finish == "length"
    assert usage.completion_tokens == 7 == count_text(text)


def test_generous_max_tokens_finishes_with_stop(client):
    response = client.chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=500)
    assert response.choices[0].finish_reason == "stop"


def test_every_response_names_its_replica(client, make_client):
    raw = client.chat.completions.with_raw_response.create(model="sim-small", messages=MESSAGES)
    assert raw.headers["x-sim-replica"] == "h100-fp8-0"
    fleet = make_client(replica=None)
    raw = fleet.chat.completions.with_raw_response.create(model="sim-small", messages=MESSAGES)
    assert raw.headers["x-sim-replica"] == "b200-fp8-0"  # all idle: the first name wins


def test_fleet_dispatch_spreads_concurrent_requests(tiny_sim, make_client):
    server = tiny_sim(time_scale=1.0, base_ms=300, itl_ms=0)
    client = make_client(replica=None, server=server)
    seen: list[str] = []

    def call() -> None:
        raw = client.chat.completions.with_raw_response.create(model="tiny", messages=MESSAGES)
        seen.append(raw.headers["x-sim-replica"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == ["r-0", "r-1"]


def test_api_key_is_enforced_when_the_fleet_sets_one(fleet_file):
    path = fleet_file(
        """
        api_key = "s3cret"
        [models.m]
        [[replicas]]
        name = "one"
        profile = "B200-FP8"
        """
    )
    with run_simulator(path) as server:
        url = server.replica_url("one")
        with openai.OpenAI(base_url=url, api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as caught:
                bad.chat.completions.create(model="m", messages=MESSAGES)
            assert caught.value.code == "invalid_api_key"
        with openai.OpenAI(base_url=url, api_key="s3cret", max_retries=0) as good:
            assert good.chat.completions.create(model="m", messages=MESSAGES).choices
        assert httpx.get(f"{server.base_url}/health").status_code == 200


async def test_async_client_and_async_runner():
    async with (
        run_simulator_async() as server,
        openai.AsyncOpenAI(
            base_url=server.replica_url("b200-nvfp4-0"), api_key="x", max_retries=0
        ) as client,
    ):
        stream = await client.chat.completions.create(
            model="sim-large",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage.prompt_tokens == count_chat(MESSAGES)


def test_stopping_leaves_no_threads():
    with run_simulator() as server:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert f"spendgraph-sim-{server.port}" not in {t.name for t in threading.enumerate()}
