"""The whole-file model: lookups by model, tier and name; building a config in code."""

from __future__ import annotations

import pytest
from config_samples import ENDPOINT, SECOND

from spendgraph.providers.config import (
    EndpointConfig,
    SpendgraphConfig,
    TierConfig,
    parse_config,
)
from spendgraph.providers.errors import ConfigError

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
