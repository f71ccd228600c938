"""The configuration file: the shipped example, finding the file, ${VAR} expansion, lookups."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
from config_samples import ENDPOINT, SECOND, write

from spendgraph.providers.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    EndpointConfig,
    SpendgraphConfig,
    TierConfig,
    example_config_path,
    expand_env,
    find_config_path,
    load_config,
    parse_config,
)
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim.server import run_simulator

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


# -- lookups -------------------------------------------------------------------


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
