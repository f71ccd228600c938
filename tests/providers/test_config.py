"""The configuration layer: loading, precedence, validation messages, price derivation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest

from spendgraph.providers.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    TOKENIZER_ENCODINGS,
    EndpointConfig,
    PriceConfig,
    SpendgraphConfig,
    TierConfig,
    example_config_path,
    expand_env,
    find_config_path,
    load_config,
    parse_config,
)
from spendgraph.providers.config_errors import InvalidConfig
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim.server import run_simulator
from spendgraph.providers.tokens import count_text
from spendgraph.providers.usage import Price, Usage, cost_of

ENDPOINT = """\
[[endpoints]]
name = "a"
base_url = "http://127.0.0.1:8000/v1"
model = "m"
"""
SECOND = ENDPOINT.replace('"a"', '"b"')


def write(directory: Path, text: str, name: str = DEFAULT_CONFIG_NAME) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """Load ``text`` from a file; return the one ConfigError's message and the file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return str(info.value), path


# -- the shipped example ------------------------------------------------------


def test_example_config_validates():
    config = load_config(example_config_path(), env={})
    assert config is not None
    assert config.source == str(example_config_path())
    pools = {endpoint.pool for endpoint in config.endpoints}
    assert {"blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"} <= pools
    assert {endpoint.engine for endpoint in config.endpoints} == {"sim"}
    assert all(endpoint.price is not None for endpoint in config.endpoints)
    assert config.endpoints_for("default") and config.endpoints_for("fast")
    fast = config.tier("fast")
    assert (fast.policy, fast.latency_target_ms, fast.prefix_affinity) == (
        "cheapest_within_slo",
        400,
        True,
    )
    assert config.policy_for("default") == "cheapest"


@pytest.mark.parametrize(
    ("endpoint", "blended"),
    [("b200-nvfp4-0", "0.05"), ("b200-fp8-0", "0.10"), ("h100-fp8-0", "0.20")],
)
def test_example_prices_blend_back_to_the_seed_figures(endpoint: str, blended: str):
    """The file's comments promise (3 x input + output) / 4 gives the seed figure."""
    price = load_config(example_config_path(), env={}).endpoint(endpoint).resolved_price()
    assert (3 * price.input_uncached + price.output) / 4 == Decimal(blended)
    assert price.input_cached == price.input_uncached / 4


def test_example_points_at_the_simulator_url_from_the_environment():
    config = load_config(example_config_path(), env={"SPENDGRAPH_SIM_URL": "http://127.0.0.1:9123"})
    assert config.endpoint("h200-fp8-1").base_url == "http://127.0.0.1:9123/r/h200-fp8-1/v1"
    default = load_config(example_config_path(), env={})
    assert default.endpoint("h200-fp8-1").base_url == "http://127.0.0.1:8900/r/h200-fp8-1/v1"


def test_example_endpoints_exist_on_the_simulators_default_fleet():
    """Every base_url/model pair in the example is served by `spendgraph serve sim`'s fleet."""
    with run_simulator(time_scale=0.0, seed=0) as sim:
        config = load_config(example_config_path(), env={"SPENDGRAPH_SIM_URL": sim.base_url})
        for endpoint in config.endpoints:
            with openai.OpenAI(
                base_url=endpoint.base_url, api_key=endpoint.api_key({}), max_retries=0
            ) as client:
                served = {model.id for model in client.models.list()}
            assert endpoint.model in served, endpoint.name


# -- finding the file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "in_env", "in_cwd", "expected"),
    [
        (True, True, True, "explicit.toml"),
        (False, True, True, "from-env.toml"),
        (False, False, True, DEFAULT_CONFIG_NAME),
        (False, False, False, None),
    ],
)
def test_config_precedence(tmp_path: Path, explicit, in_env, in_cwd, expected):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("explicit.toml", "from-env.toml"):
        write(elsewhere, ENDPOINT, name)
    if in_cwd:
        write(tmp_path, ENDPOINT)
    env = {CONFIG_ENV: str(elsewhere / "from-env.toml")} if in_env else {}
    path = elsewhere / "explicit.toml" if explicit else None

    found = find_config_path(path, env=env, cwd=tmp_path)
    assert (found.name if found else None) == expected
    config = load_config(path, env=env, cwd=tmp_path)
    assert (Path(config.source).name if config else None) == expected


def test_relative_paths_resolve_against_cwd(tmp_path: Path):
    write(tmp_path, ENDPOINT, "mine.toml")
    assert find_config_path("mine.toml", env={}, cwd=tmp_path) == tmp_path / "mine.toml"
    assert find_config_path(None, env={CONFIG_ENV: "mine.toml"}, cwd=tmp_path) == (
        tmp_path / "mine.toml"
    )


@pytest.mark.parametrize(
    ("explicit", "env", "says"),
    [
        ("missing.toml", {}, "given explicitly"),
        (None, {CONFIG_ENV: "missing.toml"}, f"named by {CONFIG_ENV}"),
    ],
)
def test_named_config_that_does_not_exist_is_an_error(tmp_path: Path, explicit, env, says):
    write(tmp_path, ENDPOINT)  # a ./spendgraph.toml must not be used instead
    with pytest.raises(ConfigError) as info:
        find_config_path(explicit, env=env, cwd=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "missing.toml") in message
    assert "does not exist" in message and says in message


def test_config_path_that_is_a_directory_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a directory"):
        find_config_path(tmp_path, env={}, cwd=tmp_path)


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


# -- bad configs: one ConfigError naming file, key or line, and expectation ----

PRICE = ENDPOINT + "[endpoints.price]\n"
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
        ["key 'endpoints[0] (a).tokenizer'", "'o200k_base', 'o200k_harmony' or 'cl100k_base'"],
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


# -- normalisation and lookups ------------------------------------------------


def test_endpoint_defaults_and_normalisation():
    text = ENDPOINT + "hardware = 'gb200'\nprecision = 'NVFP4'\nengine = 'TensorRT-LLM'\n"
    endpoint = parse_config(text, env={}).endpoints[0]
    assert (endpoint.hardware, endpoint.precision, endpoint.engine) == ("GB200", "nvfp4", "trtllm")
    assert endpoint.pool == "a"  # a lone endpoint is its own pool
    assert (endpoint.timeout_s, endpoint.tokenizer, endpoint.tokenize_api) == (
        60.0,
        "o200k_base",
        "none",
    )
    assert endpoint.price is None and endpoint.resolved_price() == Price.unknown()


@pytest.mark.parametrize("name", TOKENIZER_ENCODINGS)
def test_every_accepted_tokenizer_can_count(name: str):
    text = ENDPOINT + f"tokenizer = '{name}'\n"
    endpoint = parse_config(text, env={}).endpoints[0]
    assert count_text("hello world", endpoint.tokenizer) > 0


def test_lookups_by_model_tier_and_name():
    text = (
        ENDPOINT.replace('model = "m"', 'model = "m"\nserves = ["fast"]')
        + SECOND
        + "[tiers.fast]\npolicy = 'fastest'\nfallbacks = ['m']\n"
    )
    config = parse_config(text, env={})
    assert [e.name for e in config.endpoints_for("m")] == ["a", "b"]
    assert [e.name for e in config.endpoints_for("fast")] == ["a"]
    assert config.endpoints_for("nobody") == []
    assert config.endpoint("b").name == "b"
    assert config.tier("fast").fallbacks == ["m"]
    assert config.tier("m") == TierConfig()
    assert (config.policy_for("fast"), config.policy_for("m")) == ("fastest", "cheapest")
    assert config.endpoint("a").names() == frozenset({"m", "fast"})
    with pytest.raises(ConfigError, match="no endpoint named 'c'"):
        config.endpoint("c")


def test_config_can_be_built_in_code():
    config = SpendgraphConfig(
        endpoints=[EndpointConfig(name="x", base_url="http://127.0.0.1:1/v1", model="m")]
    )
    assert config.source == "<memory>" and config.endpoints_for("m")[0].name == "x"
    with pytest.raises(ConfigError, match="duplicate endpoint name"):
        SpendgraphConfig(endpoints=[config.endpoints[0], config.endpoints[0]])


# -- prices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        # 3.60 $/h at 10 000 prefill tok/s: 3.60 / 36 000 000 tok * 1e6 = 0.1 $/M.
        (
            {"gpu_hour_usd": "3.60", "input_tokens_per_s": 10_000, "output_tokens_per_s": 1_000},
            ("0.1", "0.025", "1"),
        ),
        # Not a terminating decimal: exactly 1e6 / 10 800 000 at Decimal's precision.
        (
            {"gpu_hour_usd": 1, "input_tokens_per_s": 3_000, "output_tokens_per_s": 3_000},
            (
                Decimal(1_000_000) / Decimal(10_800_000),
                Decimal(1_000_000) / Decimal(10_800_000) * Decimal("0.25"),
                Decimal(1_000_000) / Decimal(10_800_000),
            ),
        ),
        # An explicit rate wins; the other is derived; cached follows the ratio.
        (
            {
                "gpu_hour_usd": "7.20",
                "output_tokens_per_s": 2_000,
                "input": "0.3",
                "cached_input_ratio": "0.1",
            },
            ("0.3", "0.03", "1"),
        ),
        # Only decode throughput measured: input (and so cached) stays unknown.
        ({"gpu_hour_usd": "7.20", "output_tokens_per_s": 2_000}, (None, None, "1")),
        # A known price of zero, however fast.
        ({"gpu_hour_usd": 0}, ("0", "0", "0")),
        ({"input": "0.5", "output": "1.5"}, ("0.5", "0.125", "1.5")),
        ({"input": "0.5", "cached_input": "0.5", "output": "1.5"}, ("0.5", "0.5", "1.5")),
        ({"output": "2"}, (None, None, "2")),
    ],
)
def test_price_resolution(price: dict, expected: tuple):
    def decimal(value):
        return value if value is None else Decimal(value)

    config = PriceConfig.model_validate(
        {k: Decimal(v) if isinstance(v, str) else v for k, v in price.items()}
    )
    resolved = config.to_price()
    assert (resolved.input_uncached, resolved.input_cached, resolved.output) == tuple(
        decimal(v) for v in expected
    )


def test_price_from_toml_is_exact():
    text = PRICE + "gpu_hour_usd = 2.88\ninput_tokens_per_s = 8000.0\noutput_tokens_per_s = 800\n"
    price = parse_config(text, env={}).endpoints[0].resolved_price()
    # 2.88 $/h / (8000 tok/s * 3600 s/h) * 1e6 = 0.1; at 800 tok/s, 1.
    assert (price.input_uncached, price.input_cached, price.output) == (
        Decimal("0.1"),
        Decimal("0.025"),
        Decimal("1"),
    )
    assert cost_of(Usage(input_uncached=1_000_000, output=1_000_000), price) == Decimal("1.1")


def test_gpu_hour_zero_is_a_known_zero_price():
    price = PriceConfig(gpu_hour_usd=0).to_price()
    assert price.known
    assert cost_of(Usage(input_uncached=10, input_cached=5, output=7), price) == 0


@pytest.mark.parametrize("config", [None, PriceConfig()])
def test_no_price_information_is_unknown(config: PriceConfig | None):
    endpoint = EndpointConfig(name="x", base_url="http://127.0.0.1:1/v1", model="m", price=config)
    assert endpoint.resolved_price() == Price.unknown()
    assert cost_of(Usage(input_uncached=10), endpoint.resolved_price()) is None


def test_price_version():
    assert PriceConfig(input=1, output=2, version="2025-q4").to_price().version == "2025-q4"
    auto = PriceConfig(input=Decimal("0.10"), output=2).to_price().version
    assert auto.startswith("auto-")
    assert PriceConfig(input=Decimal("0.1"), output=Decimal("2.0")).to_price().version == auto
    assert PriceConfig(input=Decimal("0.11"), output=2).to_price().version != auto


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
