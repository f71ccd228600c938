"""One endpoint's settings: defaults, normalisation, tokenizers, API keys, ${VAR} URLs."""

from __future__ import annotations

import pytest
from config_samples import ENDPOINT

from spendgraph.providers.config import (
    TOKENIZER_ENCODINGS,
    EndpointConfig,
    expand_env,
    parse_config,
)
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.tokens import count_text
from spendgraph.providers.usage import Price

# -- normalisation ------------------------------------------------


def test_endpoint_defaults_and_normalisation():
    text = ENDPOINT + "hardware = 'gb200'\nprecision = 'NVFP4'\nengine = 'TensorRT-LLM'\n"
    endpoint = parse_config(text, env={}).endpoints[0]
    assert (endpoint.hardware, endpoint.precision, endpoint.engine) == ("GB200", "nvfp4", "trtllm")
    assert endpoint.pool == "a"  # a lone endpoint is its own pool
    assert (endpoint.timeout_s, endpoint.tokenizer, endpoint.tokenize_api) == (
        20.0,
        "o200k_base",
        "none",
    )
    assert endpoint.stream_timeout_s is None and endpoint.stream_cap_s() == 300.0
    assert endpoint.price is None and endpoint.resolved_price() == Price.unknown()


@pytest.mark.parametrize("name", TOKENIZER_ENCODINGS)
def test_every_accepted_tokenizer_can_count(name: str):
    text = ENDPOINT + f"tokenizer = '{name}'\n"
    endpoint = parse_config(text, env={}).endpoints[0]
    assert count_text("hello world", endpoint.tokenizer) > 0


# -- api keys -----------------------------------------------------------------


def test_api_key_reads_the_named_variable():
    endpoint = EndpointConfig(
        name="x", base_url="http://127.0.0.1:1/v1", model="m", api_key_env="MY_KEY"
    )
    assert endpoint.api_key({"MY_KEY": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="MY_KEY is not set") as info:
        endpoint.api_key({})
    assert "s3cret" not in str(info.value)
    keyless = EndpointConfig(name="y", base_url="http://127.0.0.1:1/v1", model="m")
    assert keyless.api_key({}) == "not-needed"


def test_api_key_variable_is_checked_at_load_time_against_the_given_env():
    text = ENDPOINT + "api_key_env = 'MY_KEY'\n"
    config = parse_config(text, env={"MY_KEY": "s3cret"})
    assert config.endpoints[0].api_key({"MY_KEY": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="MY_KEY is not set"):
        parse_config(text, env={"MY_KEY": ""})


# -- ${VAR} expansion ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${HOST}/v1", {"HOST": "http://h:1"}, "http://h:1/v1"),
        ("${HOST:-http://d:2}/v1", {}, "http://d:2/v1"),
        ("${HOST:-http://d:2}/v1", {"HOST": ""}, "http://d:2/v1"),
        ("${HOST:-http://d:2}/v1", {"HOST": "http://h:1"}, "http://h:1/v1"),
        ("http://h/$notavar", {}, "http://h/$notavar"),
    ],
)
def test_expand_env(text, env, expected):
    assert expand_env(text, env) == expected


def test_base_url_is_expanded_from_the_given_env():
    text = ENDPOINT.replace("http://127.0.0.1:8000", "${SIM:-http://127.0.0.1:1}")
    assert parse_config(text, env={}).endpoints[0].base_url == "http://127.0.0.1:1/v1"
    config = parse_config(text, env={"SIM": "https://10.0.0.1:443"})
    assert config.endpoints[0].base_url == "https://10.0.0.1:443/v1"
