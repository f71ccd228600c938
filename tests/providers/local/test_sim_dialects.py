"""The simulator's engine dialects, seen with a raw HTTP / openai client."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from dialect_fleet import DIALECTS, dialect_fleet_toml

from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim import parse_fleet
from spendgraph.providers.local.sim.server import run_simulator

HELLO = [{"role": "user", "content": "Say hello to the dialects."}]


@pytest.fixture(scope="module")
def dsim():
    with run_simulator(parse_fleet(dialect_fleet_toml()), time_scale=0.0) as running:
        yield running


def _chunks(sim, dialect: str, **options) -> list:
    client = openai.OpenAI(base_url=sim.replica_url(dialect), api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="sim-large", messages=HELLO, stream=True, max_tokens=20, **options
    )
    chunks = list(stream)
    client.close()
    return chunks


@pytest.mark.parametrize(
    ("dialect", "options", "usage_chunks"),
    [
        ("vllm", {"stream_options": {}}, 1),  # include_usage defaults to true once sent
        ("sglang", {"stream_options": {}}, 0),  # ... and to false here
        ("trtllm", {"stream_options": {}}, 1),
        ("llama-cpp-python", {"stream_options": {"include_usage": True}}, 0),  # never
        ("ollama", {"stream_options": {"include_usage": True}}, 1),
        ("openai", {}, 0),
    ],
)
def test_when_a_stream_carries_usage(dsim, dialect, options, usage_chunks):
    chunks = _chunks(dsim, dialect, **options)
    assert sum(1 for c in chunks if c.usage is not None and not c.choices) == usage_chunks


@pytest.mark.parametrize(
    ("dialect", "cached_per_chunk"), [("vllm", False), ("sglang", False), ("trtllm", True)]
)
def test_continuous_usage_is_cumulative_on_every_chunk(dsim, dialect, cached_per_chunk):
    options = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    chunks = _chunks(dsim, dialect, **options)
    content = [c for c in chunks if c.choices]
    assert all(c.usage is not None for c in content)
    counts = [c.usage.completion_tokens for c in content]
    assert counts == sorted(counts) and counts[-1] == chunks[-1].usage.completion_tokens
    assert (content[0].usage.prompt_tokens_details is not None) is cached_per_chunk


def test_llama_server_puts_timings_on_the_last_chunk_unasked(dsim):
    chunks = _chunks(dsim, "llama-server")
    timings = chunks[-1].model_extra["timings"]
    assert all(c.usage is None for c in chunks)
    assert timings["predicted_n"] > 0 and timings["prompt_n"] + timings["cache_n"] > 0


def test_sglang_reports_reasoning_at_the_top_level_and_cached_only_when_nonzero(dsim):
    body = {"model": "sim-think", "messages": HELLO, "max_tokens": 30}
    usage = httpx.post(f"{dsim.replica_url('sglang')}/chat/completions", json=body).json()["usage"]
    assert usage["reasoning_tokens"] == 12 and "completion_tokens_details" not in usage
    assert "prompt_tokens_details" not in usage  # a fresh prompt: nothing cached


@pytest.mark.parametrize("dialect", DIALECTS)
def test_metrics_are_at_the_dialects_path_only(dsim, dialect):
    paths = {"/metrics", "/prometheus/metrics", "/v1/metrics"}
    expected = {
        "vllm": "/metrics",
        "sglang": "/metrics",
        "dynamo": "/metrics",
        "llama-server": "/metrics",
        "trtllm": "/prometheus/metrics",
        "nim": "/v1/metrics",
    }.get(dialect)
    for path in paths:
        response = httpx.get(f"{dsim.base_url}/r/{dialect}{path}")
        assert response.status_code == (200 if path == expected else 404), (dialect, path)
    assert httpx.get(f"{dsim.base_url}/metrics").status_code == 200  # fleet-wide, vLLM names


def test_tokenizer_endpoints_in_each_engines_shape(dsim):
    root = dsim.base_url + "/r"
    text = {"model": "sim-large", "prompt": "one two three"}
    sglang = httpx.post(f"{root}/sglang/v1/tokenize", json=text).json()
    trtllm = httpx.post(f"{root}/trtllm/_internal/tokenize", json=text).json()
    assert sglang["count"] == trtllm["count"] == len(trtllm["tokens"]) > 0
    rendered = httpx.post(f"{root}/llama-server/apply-template", json={"messages": HELLO}).json()
    assert rendered["prompt"].endswith("<|im_start|>assistant\n")
    tokens = httpx.post(f"{root}/llama-server/tokenize", json={"content": "one two three"}).json()
    assert len(tokens["tokens"]) == sglang["count"]
    count = httpx.post(f"{root}/llama-cpp-python/extras/tokenize/count", json={"input": "hi"})
    assert count.json() == {"count": 1}
    assert httpx.post(f"{root}/ollama/tokenize", json=text).status_code == 404
    assert httpx.post(f"{root}/vllm/v1/tokenize", json=text).status_code == 404


def test_an_unknown_dialect_in_a_fleet_file_names_the_key():
    text = '[models.m]\n[[replicas]]\nname = "x"\nprofile = "H100-FP8"\ndialect = "tgi"\n'
    with pytest.raises(ConfigError, match=r"replicas\[0\]\.dialect"):
        parse_fleet(text, source="fleet.toml")


def test_serve_sim_refuses_an_unknown_dialect():
    script = Path(sys.executable).with_name("spendgraph")  # the venv's console script
    command = [str(script), "serve", "sim", "--dialect", "tgi", "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tgi" in result.stderr and "llama-server" in result.stderr


def test_serve_sim_dialect_switches_every_replica():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).with_name("spendgraph")
    command = [str(script), "serve", "sim", "--dialect", "trtllm", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/r/h100-fp8-0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                metrics = httpx.get(f"{url}/prometheus/metrics")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert "trtllm_prompt_tokens_total" in metrics.text
        assert httpx.get(f"{url}/metrics").status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    assert "dialect trtllm" in output
