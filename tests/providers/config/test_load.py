"""Loading the configuration file: the shipped example, finding the file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
from config_samples import ENDPOINT, write

from spendgraph.providers.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    example_config_path,
    find_config_path,
    load_config,
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
