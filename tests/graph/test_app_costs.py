"""Cost per query of an app on each pool: the example config narrowed one pool at a time."""

from __future__ import annotations

import pytest

from spendgraph.agents import Agent
from spendgraph.graph import pipeline
from spendgraph.graph.app import App
from spendgraph.graph.app_costs import measure, only_pool, pools
from spendgraph.providers.config import example_config_path, parse_config

POOLS = ["blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"]
APP = App(
    "two_step",
    "draft then edit",
    build=lambda: pipeline([Agent("drafter", "Draft.", max_tokens=40), Agent("editor", "Edit.")]),
    samples=("Why does NVFP4 cut cost?", "What is a prefix cache?"),
)


@pytest.fixture
def example(sim):
    path = example_config_path()
    return parse_config(
        path.read_text(), source=str(path), env={"SPENDGRAPH_SIM_URL": sim.base_url}
    )


def test_pools_serving_the_apps_tiers(example):
    assert pools(example, ("default",)) == POOLS
    narrowed = only_pool(example, "hopper-h100-fp8", ("default",))
    assert {e.name for e in narrowed.endpoints_for("default")} == {"h100-fp8-0", "h100-fp8-1"}
    assert narrowed.endpoints_for("fast")  # endpoints that serve other tiers stay


async def test_measure_runs_every_sample_on_every_pool(example, ledger):
    rows = await measure(APP, example, APP.samples, ledger)
    assert [r.pool for r in rows] == POOLS
    assert all(r.queries == 2 and r.calls == 2 for r in rows)  # two agents, one call each
    per_query = [r.cost_per_query for r in rows]
    assert per_query[0] < per_query[1] < per_query[2]  # NVFP4 < Blackwell FP8 < Hopper
    ledger.flush()
    queries = ledger.list_queries(limit=100)
    assert len(queries) == 8  # 2 samples x 4 pools, each one ledger query
    assert sum(q.spend for q in queries) == sum(r.spend for r in rows)


def test_narrowing_keeps_the_apps_other_tiers_served(example):
    # dungeon asks for large, default and small; voice_support for fast and large. Narrowing
    # large/default to one pool must leave small/fast on the sim-small endpoints.
    for tiers in (("large", "default", "small"), ("fast", "large")):
        for pool in pools(example, tiers):
            narrowed = only_pool(example, pool, tiers)
            for tier in (*tiers, "fast"):
                assert narrowed.endpoints_for(tier), (pool, tier)
    narrowed = only_pool(example, "blackwell-fp8", ("large", "default", "small"))
    assert {e.pool for e in narrowed.endpoints_for("large")} == {"blackwell-fp8"}
    assert {e.pool for e in narrowed.endpoints_for("small")} == {"blackwell-nvfp4-small"}
    narrowed = only_pool(example, "blackwell-nvfp4-small", ("large", "default", "small"))
    assert {e.pool for e in narrowed.endpoints_for("small")} == {"blackwell-nvfp4-small"}
    assert len(narrowed.endpoints_for("large")) == 10  # every sim-large replica stays


async def test_measure_reports_each_pool_before_it_runs(example, ledger):
    told: list[tuple[str, int, int]] = []
    rows = await measure(APP, example, APP.samples[:1], ledger, progress=lambda *a: told.append(a))
    assert told == [(pool, i, len(POOLS)) for i, pool in enumerate(POOLS, start=1)]
    assert [r.pool for r in rows] == POOLS
