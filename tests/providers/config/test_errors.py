"""Bad configs: one ConfigError naming the file, the key or line, and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_samples import ENDPOINT, PRICE, SECOND, load_error, write

from spendgraph.providers.config import (
    DEFAULT_CONFIG_NAME,
    load_config,
    parse_config,
)
from spendgraph.providers.config.errors import InvalidConfig
from spendgraph.providers.errors import ConfigError

# -- bad configs: one ConfigError naming file, key or line, and expectation ----

TIER = ENDPOINT.replace('model = "m"', 'model = "m"\nserves = ["large"]')

BAD_CONFIGS = [
    pytest.param(
        ENDPOINT + "timeout_s = \n",
        {},
        ["line 5, column 13", "not valid TOML", "invalid value"],
        id="unparseable-toml",
    ),
    pytest.param(
        ENDPOINT + "[[endpoints]]\nname = 'b'\nname = 'c'\n",
        {},
        ["line 7", "not valid TOML"],
        id="toml-duplicate-key",
    ),
    pytest.param(
        "colour = 'blue'\n" + ENDPOINT,
        {},
        ["key 'colour'", "unknown key", "expected one of: endpoints, tiers, routing, ledger"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "source = 'x'\n" + ENDPOINT,
        {},
        ["key 'source'", "unknown key"],
        id="source-is-not-a-file-key",
    ),
    pytest.param(
        ENDPOINT + "timout_s = 5\n",
        {},
        ["key 'endpoints[0] (a).timout_s'", "unknown key", "did you mean 'timeout_s'"],
        id="unknown-endpoint-key",
    ),
    pytest.param(
        PRICE + "ouput = 1\n",
        {},
        ["key 'endpoints[0] (a).price.ouput'", "did you mean 'output'", "expected one of: input"],
        id="unknown-price-key",
    ),
    pytest.param(
        ENDPOINT + "timeout_s = 'fast'\n",
        {},
        ["key 'endpoints[0] (a).timeout_s'", 'expected a number, got a string "fast"'],
        id="wrong-type-string-for-number",
    ),
    pytest.param(
        ENDPOINT + "max_concurrency = 2.5\n",
        {},
        ["key 'endpoints[0] (a).max_concurrency'", "expected an integer, got a number 2.5"],
        id="wrong-type-float-for-int",
    ),
    pytest.param(
        ENDPOINT + "max_concurrency = true\n",
        {},
        ["expected an integer, got true"],
        id="wrong-type-bool-for-int",
    ),
    pytest.param(
        ENDPOINT + "[ledger]\nstore_text = 'yes'\n",
        {},
        ["key 'ledger.store_text'", 'expected true or false, got a string "yes"'],
        id="wrong-type-bool",
    ),
    pytest.param(
        ENDPOINT + "serves = 'fast'\n",
        {},
        ["key 'endpoints[0] (a).serves'", 'expected an array, got a string "fast"'],
        id="wrong-type-array",
    ),
    pytest.param(
        ENDPOINT + "price = 5\n",
        {},
        ["key 'endpoints[0] (a).price'", "expected a table, got an integer 5"],
        id="wrong-type-table",
    ),
    pytest.param(
        "[endpoints]\nname = 'a'\n",
        {},
        ["key 'endpoints'", "write [[endpoints]]"],
        id="single-brackets-for-endpoints",
    ),
    pytest.param(
        "[routing]\npolicy = 'cheapest'\n",
        {},
        ["key 'endpoints'", "required key is missing"],
        id="no-endpoints",
    ),
    pytest.param(
        "endpoints = []\n",
        {},
        ["key 'endpoints'", "expected at least 1 item"],
        id="empty-endpoints",
    ),
    pytest.param(
        ENDPOINT.replace('model = "m"\n', ""),
        {},
        ["key 'endpoints[0] (a).model'", "required key is missing"],
        id="missing-model",
    ),
    pytest.param(
        PRICE + "output = -1\n",
        {},
        ["key 'endpoints[0] (a).price.output'", "expected a number >= 0, got -1"],
        id="negative-price",
    ),
    pytest.param(
        PRICE + "input = nan\n",
        {},
        ["key 'endpoints[0] (a).price.input'", "expected a finite number"],
        id="nan-price",
    ),
    pytest.param(
        PRICE + "input = '0.05'\n",
        {},
        ["key 'endpoints[0] (a).price.input'", 'expected a number, got a string "0.05"'],
        id="quoted-price",
    ),
    pytest.param(
        PRICE + "input = 1\noutput = 2\ngpu_hour_usd = 3\noutput_tokens_per_s = 100\n",
        {},
        ["key 'endpoints[0] (a).price'", "gpu_hour_usd would be ignored"],
        id="rates-and-gpu-hour",
    ),
    pytest.param(
        PRICE + "output_tokens_per_s = 100\n",
        {},
        ["key 'endpoints[0] (a).price'", "only used with gpu_hour_usd"],
        id="throughput-without-gpu-hour",
    ),
    pytest.param(
        PRICE + "gpu_hour_usd = 2\n",
        {},
        ["key 'endpoints[0] (a).price'", "needs a measured input_tokens_per_s"],
        id="gpu-hour-without-throughput",
    ),
    pytest.param(
        ENDPOINT + SECOND.replace('"b"', '"a"'),
        {},
        ["key 'endpoints[1] (a).name'", "duplicate endpoint name 'a'", "endpoints[0]"],
        id="duplicate-endpoint-name",
    ),
    pytest.param(
        ENDPOINT + "api_key_env = 'MY_API_KEY'\n",
        {"OTHER": "x"},
        ["key 'endpoints[0] (a).api_key_env'", "MY_API_KEY", "is not set"],
        id="missing-api-key-variable",
    ),
    pytest.param(
        ENDPOINT + "api_key_env = 'sk-live-0123456789'\n",
        {},
        ["key 'endpoints[0] (a).api_key_env'", "NAME of an environment variable"],
        id="key-pasted-into-api-key-env",
    ),
    pytest.param(
        ENDPOINT + "api_key = 'sk-live-0123456789'\n",
        {},
        ["key 'endpoints[0] (a).api_key'", "unknown key", "api_key_env"],
        id="key-pasted-into-the-file",
    ),
    pytest.param(
        TIER + "[tiers.large]\nfallbacks = ['lareg']\n",
        {},
        ["key 'tiers.large.fallbacks[0]'", "got 'lareg'", "did you mean 'large'"],
        id="unknown-fallback",
    ),
    pytest.param(
        TIER + "[tiers.large]\nfallbacks = ['large']\n",
        {},
        ["key 'tiers.large.fallbacks[0]'", "cannot fall back to itself"],
        id="fallback-to-itself",
    ),
    pytest.param(
        TIER + "[tiers.lareg]\npolicy = 'fastest'\n",
        {},
        ["key 'tiers.lareg'", "no endpoint serves 'lareg'", "did you mean 'large'"],
        id="tier-nobody-serves",
    ),
    pytest.param(
        TIER + "[tiers.large]\npolicy = 'slowest'\n",
        {},
        ["key 'tiers.large.policy'", "expected one of 'cheapest', 'fastest'", '"slowest"'],
        id="bad-tier-policy",
    ),
    pytest.param(
        ENDPOINT + "tokenizer = 'gpt2'\n",
        {},
        [
            "key 'endpoints[0] (a).tokenizer'",
            "'o200k_base', 'o200k_harmony', 'cl100k_base', 'gpt-oss'",
        ],
        id="bad-encoding-name",
    ),
    pytest.param(
        ENDPOINT.replace("http://127.0.0.1:8000/v1", "localhost:8000/v1"),
        {},
        ["key 'endpoints[0] (a).base_url'", "expected an http:// or https:// URL"],
        id="bad-url",
    ),
    pytest.param(
        ENDPOINT.replace("http://127.0.0.1:8000", "${SIM_URL}"),
        {},
        ["key 'endpoints[0] (a).base_url'", "environment variable SIM_URL is not set"],
        id="unset-variable-in-url",
    ),
    pytest.param(
        ENDPOINT.replace("http://127.0.0.1:8000", "${SIM_URL"),
        {},
        ["key 'endpoints[0] (a).base_url'", "malformed ${...}"],
        id="malformed-variable-in-url",
    ),
    pytest.param(
        ENDPOINT + "hardware = 'B20'\n",
        {},
        ["key 'endpoints[0] (a).hardware'", "expected one of B200", "other (any case)"],
        id="unknown-hardware",
    ),
    pytest.param(
        ENDPOINT + "engine = 'tgi'\n",
        {},
        ["key 'endpoints[0] (a).engine'", "expected one of vllm"],
        id="unknown-engine",
    ),
    pytest.param(
        ENDPOINT.replace('"a"', '"has space"'),
        {},
        ["key 'endpoints[0] (has space).name'", "without spaces"],
        id="name-with-space",
    ),
    pytest.param(
        ENDPOINT + "[routing]\newma_alpha = 0\n",
        {},
        ["key 'routing.ewma_alpha'", "expected a number > 0, got 0"],
        id="ewma-alpha-zero",
    ),
    pytest.param(
        ENDPOINT + "[routing]\nmax_retries = -1\n",
        {},
        ["key 'routing.max_retries'", "expected an integer >= 0, got -1"],
        id="negative-retries",
    ),
    pytest.param(
        ENDPOINT + "[routing]\nbackoff_initial_s = 10.0\n",
        {},
        ["key 'routing'", "backoff_max_s (5.0) must be >= backoff_initial_s (10.0)"],
        id="backoff-max-below-initial",
    ),
    pytest.param(
        ENDPOINT + "[routing]\ncooldown_after_failures = 3\ncooldown_s = 30\n",
        {},
        [
            "key 'routing'",
            "cooldown_after_failures and cooldown_s were replaced by the circuit breaker",
            "breaker_failure_rate, breaker_min_attempts, breaker_window_s and breaker_open_s",
        ],
        id="old-cooldown-keys",
    ),
    pytest.param(
        ENDPOINT + "[routing]\non_limit = 'queue'\n",
        {},
        ["key 'routing.on_limit'", "expected one of 'overflow' or 'wait'"],
        id="bad-on-limit",
    ),
]


@pytest.mark.parametrize(("text", "env", "expected"), BAD_CONFIGS)
def test_bad_config_raises_one_clear_error(tmp_path: Path, text: str, env, expected: list[str]):
    message, path = load_error(tmp_path, text, env)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(
    "text",
    [
        ENDPOINT + "api_key_env = 'sk-live-0123456789'\n",
        ENDPOINT + "api_key = 'sk-live-0123456789'\n",
        ENDPOINT + "token = 'sk-live-0123456789'\n",
        ENDPOINT.replace("127.0.0.1:8000/v1", "user:sk-live-0123456789@127.0.0.1:x/v1"),
        "[[endpoints]]\nname = 'a'\nmodel = 'm'\nbase_url = 'ftp://user:sk-live-0123456789@h'\n",
    ],
)
def test_errors_never_echo_secrets(tmp_path: Path, text: str):
    message, _ = load_error(tmp_path, text)
    assert "sk-live-0123456789" not in message


def test_api_key_variable_value_is_never_echoed(tmp_path: Path):
    env = {"MY_API_KEY": "sk-live-0123456789"}
    text = ENDPOINT + "api_key_env = 'MY_API_KEY'\ntimeout_s = -1\n"
    message, _ = load_error(tmp_path, text, env)
    assert "sk-live-0123456789" not in message
    assert "timeout_s" in message


def test_several_problems_are_one_error_with_one_line_each(tmp_path: Path):
    text = ENDPOINT + "timeout_s = 0\nhardware = 'B20'\n[endpoints.price]\noutput = -1\n"
    path = write(tmp_path, text)
    with pytest.raises(InvalidConfig) as info:
        load_config(path, env={})
    error = info.value
    assert isinstance(error, ConfigError)
    assert [problem.key for problem in error.problems] == [
        "endpoints[0] (a).hardware",
        "endpoints[0] (a).price.output",
        "endpoints[0] (a).timeout_s",
    ]
    lines = str(error).splitlines()
    assert lines[0] == f"{path}: 3 problems:"
    assert len(lines) == 4 and all(
        line.startswith("  - key 'endpoints[0] (a).") for line in lines[1:]
    )


def test_error_is_chained_to_its_cause():
    with pytest.raises(ConfigError) as info:
        parse_config("a = ", source="x.toml")
    assert info.value.__cause__ is not None


def test_undecodable_file(tmp_path: Path):
    path = tmp_path / DEFAULT_CONFIG_NAME
    path.write_bytes(ENDPOINT.encode() + b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, env={})
