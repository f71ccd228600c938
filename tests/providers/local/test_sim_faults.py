"""Fault injection by header and by fleet file, as the openai client experiences it."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Is the harbor open today?"}]


def _ask(
    client: openai.OpenAI,
    fault: str | None = None,
    content: str | None = None,
    model: str = "sim-large",
    **kwargs,
):
    headers = {"x-sim-fault": fault} if fault else None
    messages = [{"role": "user", "content": content}] if content else MESSAGES
    return client.chat.completions.create(
        model=model, messages=messages, extra_headers=headers, **kwargs
    )


def _outcome(client: openai.OpenAI, content: str) -> int:
    try:
        _ask(client, content=content, model="tiny")
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


@pytest.mark.parametrize("stream", [False, True])
def test_429_carries_retry_after(client, stream):
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, "status=429;retry_after=2", stream=stream)
    error = caught.value
    assert error.response.headers["retry-after"] == "2"
    assert error.response.headers["x-sim-replica"] == "h100-fp8-0"
    assert error.body["code"] == "rate_limit_exceeded" and error.body["message"]
    assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(client, status):
    with pytest.raises(openai.InternalServerError) as caught:
        _ask(client, f"status={status}")
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "server_error"


def test_delay_trips_the_client_timeout(make_client):
    client = make_client(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _ask(client, "delay=5")
    assert time.monotonic() - started < 3
    assert _ask(client).choices  # the server is not stuck on the abandoned request


def test_cut_stream_ends_without_usage(client):
    stream = _ask(client, "cut_after=5", stream=True, stream_options={"include_usage": True})
    chunks = []
    with pytest.raises((httpx.TransportError, openai.APIError)):
        for chunk in stream:
            chunks.append(chunk)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 5
    assert all(chunk.usage is None for chunk in chunks)
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_cut_non_streamed_response_is_a_connection_error(client):
    with pytest.raises(openai.APIConnectionError):
        _ask(client, "cut_after=0")


def test_times_and_key_fail_first_requests_then_pass(client):
    key = uuid.uuid4().hex
    fault = f"status=503;times=2;key={key}"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            _ask(client, fault)
    assert _ask(client, fault).choices
    other = f"status=503;times=1;key={uuid.uuid4().hex}"  # another key counts on its own
    with pytest.raises(openai.InternalServerError):
        _ask(client, other)


def test_fault_can_target_one_replica(make_client):
    header = "status=500;replica=h100-fp8-1"
    assert _ask(make_client("h100-fp8-0"), header).choices
    with pytest.raises(openai.InternalServerError):
        _ask(make_client("h100-fp8-1"), header)


@pytest.mark.parametrize(
    "header", ["status=abc", "bogus=1", "status=200", "rate=2;status=500", "times=2"]
)
def test_malformed_fault_header_is_a_400(client, header):
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(client, header)
    assert caught.value.body["param"] == "x-sim-fault"


FAULTY = """
[[replicas]]
name = "flaky"
profile = "TEST"
[replicas.faults]
rate_429 = 0.2
rate_500 = 0.2
rate_503 = 0.1
retry_after = 3
"""


def _pattern(server, make_client, requests: int = 24) -> list[int]:
    client = make_client("flaky", server=server)
    return [_outcome(client, f"question number {i}") for i in range(requests)]


def test_fleet_file_fault_rates_are_deterministic_per_seed(tiny_sim, make_client):
    first = _pattern(tiny_sim(seed=1, extra=FAULTY), make_client)
    again = _pattern(tiny_sim(seed=1, extra=FAULTY), make_client)
    other = _pattern(tiny_sim(seed=2, extra=FAULTY), make_client)
    assert first == again
    assert first != other
    assert {200, 429, 500, 503} <= set(first + other)
    assert 200 in first and len(set(first)) > 1


def test_header_rate_is_deterministic_per_seed(tiny_sim, make_client):
    def pattern(seed: int) -> list[int]:
        client = make_client("r-0", server=tiny_sim(seed=seed))
        outcomes = []
        for i in range(16):
            try:
                _ask(client, "status=500;rate=0.5", content=f"q{i}", model="tiny")
                outcomes.append(200)
            except openai.InternalServerError:
                outcomes.append(500)
        return outcomes

    first = pattern(5)
    assert first == pattern(5) and set(first) == {200, 500}
    assert first != pattern(6)


def test_a_retried_request_gets_a_fresh_draw(tiny_sim, make_client):
    client = make_client("flaky", server=tiny_sim(seed=3, extra=FAULTY))
    outcomes = {_outcome(client, "the same question") for _ in range(20)}
    assert 200 in outcomes and len(outcomes) > 1


def test_header_none_switches_fleet_faults_off(tiny_sim, make_client, metrics):
    extra = """
        [[replicas]]
        name = "broken"
        profile = "TEST"
        [replicas.faults]
        rate_500 = 1.0
        """
    server = tiny_sim(extra=extra)
    client = make_client("broken", server=server)
    with pytest.raises(openai.InternalServerError):
        _ask(client, model="tiny")
    assert _ask(client, "none", model="tiny").choices
    assert metrics(server).sum("sim:faults_injected_total", replica="broken", kind="500") == 1


def test_fleet_file_cut_rate_cuts_streams(tiny_sim, make_client):
    extra = """
        [[replicas]]
        name = "cutter"
        profile = "TEST"
        [replicas.faults]
        rate_cut = 1.0
        cut_after = 2
        """
    client = make_client("cutter", server=tiny_sim(extra=extra))
    received = []
    with pytest.raises((httpx.TransportError, openai.APIError)):
        for chunk in _ask(
            client, model="tiny", stream=True, stream_options={"include_usage": True}
        ):
            received.append(chunk)
    assert sum(1 for c in received if c.choices and c.choices[0].delta.content) == 2
