"""Engine names in the config, what each profile sends and reads, and measured-count caching."""

from __future__ import annotations

import httpx
import pytest
from config_samples import ENDPOINT
from dialect_fleet import dialect_fleet_toml

from spendgraph.providers.config import EndpointConfig, load_config, parse_config
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.engines import ENGINES, PROFILES, profile_for
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim import parse_fleet
from spendgraph.providers.local.sim.server import run_simulator
from spendgraph.providers.tokens import chatml_prompt_text, encoding
from spendgraph.providers.usage import ImplausibleUsage


@pytest.mark.parametrize(
    ("written", "stored", "profile"),
    [
        ("vLLM", "vllm", "vllm"),
        ("TensorRT-LLM", "trtllm", "trtllm"),
        ("llama.cpp", "llama-server", "llama-server"),
        ("llama-cpp-python", "llama-cpp-python", "llama-cpp-python"),
        ("llamacpp", "llamacpp", "llama-cpp-python"),  # the embedded endpoint's old name
        ("sim", "sim", "sim"),
        ("hosted", "hosted", "openai"),
        ("", "", "openai"),
    ],
)
def test_engine_names_and_their_profiles(written, stored, profile):
    endpoint = parse_config(ENDPOINT + f"engine = '{written}'\n", env={}).endpoints[0]
    assert endpoint.engine == stored
    assert profile_for(endpoint.engine).name == profile


def test_an_unknown_engine_names_file_key_value_and_the_allowed_names(tmp_path):
    path = tmp_path / "spendgraph.toml"
    path.write_text(ENDPOINT + "engine = 'tgi'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "endpoints[0] (a).engine" in message and '"tgi"' in message
    assert all(name in message for name in ENGINES)


def test_only_trtllm_forbids_unknown_fields_and_every_profile_sends_include_usage():
    for profile in PROFILES.values():
        extras = profile.request_extras(stream=True)
        assert extras["stream_options"]["include_usage"] is True
        assert profile.request_extras(stream=False) == {}
    assert [p.name for p in PROFILES.values() if p.forbids_unknown_fields] == ["trtllm"]
    continuous = {p.name for p in PROFILES.values() if p.continuous_usage}
    assert continuous == {"vllm", "sglang", "trtllm"}


def test_usage_readers_per_engine():
    sglang = {"prompt_tokens": 20, "completion_tokens": 9, "reasoning_tokens": 4}
    assert profile_for("sglang").read_usage(sglang).reasoning == 4
    assert profile_for("vllm").read_usage(sglang).reasoning == 0  # not where vLLM puts it
    timings = {"prompt_n": 5, "cache_n": 15, "predicted_n": 9}
    llama = profile_for("llama-server")
    assert llama.read_usage(None, timings).input_cached == 15
    from_usage = llama.read_usage({"prompt_tokens": 20, "completion_tokens": 9}, timings)
    assert (from_usage.input_uncached, from_usage.input_cached) == (5, 15)
    with pytest.raises(ImplausibleUsage):
        profile_for("openai").read_usage(None, timings)  # only llama-server has timings
    with pytest.raises(ImplausibleUsage):
        profile_for("sglang").read_usage({**sglang, "reasoning_tokens": 10})


def test_tokenize_api_defaults_to_the_engines_and_none_turns_it_off():
    def tokenizer(extra: str):
        config = parse_config(ENDPOINT + extra, env={}).endpoints[0]
        return Endpoint(config, env={}).tokenizer

    assert tokenizer("engine = 'vllm'\n").path == "/tokenize"
    assert tokenizer("engine = 'trtllm'\n").path == "/_internal/tokenize"
    assert tokenizer("engine = 'vllm'\ntokenize_api = 'none'\n") is None
    assert tokenizer("engine = 'ollama'\n") is None
    assert tokenizer("tokenize_api = 'llama-cpp-python'\n").path == "/extras/tokenize/count"


@pytest.fixture(scope="module")
def counting_sim():
    fleet = parse_fleet(dialect_fleet_toml(["vllm", "llama-cpp-python"]))
    with run_simulator(fleet, time_scale=0.0) as running:
        yield running


async def _endpoint(sim, dialect: str, seen: list[str]) -> Endpoint:
    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    client = httpx.AsyncClient(event_hooks={"request": [record]})
    config = EndpointConfig(
        name=dialect, base_url=sim.replica_url(dialect), model="sim-large", engine=dialect
    )
    return Endpoint(config, env={}, http_client=client)


async def test_a_threads_history_is_counted_by_the_server_once(counting_sim):
    seen: list[str] = []
    endpoint = await _endpoint(counting_sim, "llama-cpp-python", seen)
    turn = [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Two days in Porto?"},
    ]
    longer = [
        *turn,
        {"role": "assistant", "content": "Day one: the Ribeira."},
        {"role": "user", "content": "And day two?"},
    ]
    enc = encoding("o200k_base")
    for messages in (turn, longer):
        expected = len(enc.encode(chatml_prompt_text(messages), disallowed_special=()))
        assert await endpoint.count_prompt(messages, None) == expected
    # First turn: the overhead probe and three segments; the next turn only its two new ones.
    assert len(seen) == 1 + 3 + 2
    assert await endpoint.count_prompt(longer, None) is not None and len(seen) == 6
    await endpoint.client.close()


async def test_whole_prompt_counts_are_cached_where_the_server_renders_the_template(
    counting_sim,
):
    seen: list[str] = []
    endpoint = await _endpoint(counting_sim, "vllm", seen)
    messages = [{"role": "user", "content": "How far is Braga?"}]
    first = await endpoint.count_prompt(messages, None)
    assert first is not None and endpoint.context_window == 131072
    assert await endpoint.count_prompt(messages, None) == first
    assert seen == ["/r/vllm/tokenize"]  # asked once
    await endpoint.client.close()
