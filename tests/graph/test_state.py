"""State reducers: per-query keys reset with each input, parallel writes merge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendgraph.graph.state import (
    BUDGET_EXHAUSTED,
    DONE,
    RUNNING,
    AgentOutput,
    append_messages,
    collect_outputs,
    count_steps,
    latest_spend,
    query_input,
    spend_from_snapshot,
    spend_snapshot,
    sticky_status,
)
from spendgraph.providers.context import SpendSummary
from spendgraph.providers.usage import CostTotal


def test_history_grows_and_outputs_reset():
    assert append_messages([{"role": "user"}], [{"role": "assistant"}]) == [
        {"role": "user"},
        {"role": "assistant"},
    ]
    assert collect_outputs([{"agent": "a"}], [{"agent": "b"}]) == [{"agent": "a"}, {"agent": "b"}]
    assert collect_outputs([{"agent": "a"}], None) == []


@pytest.mark.parametrize(("old", "new", "expected"), [(3, 1, 4), (3, None, 0), (0, 2, 2)])
def test_steps_accumulate_and_reset(old, new, expected):
    assert count_steps(old, new) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (RUNNING, DONE, DONE),
        (RUNNING, BUDGET_EXHAUSTED, BUDGET_EXHAUSTED),
        (BUDGET_EXHAUSTED, DONE, BUDGET_EXHAUSTED),
        (BUDGET_EXHAUSTED, None, BUDGET_EXHAUSTED),
        (BUDGET_EXHAUSTED, RUNNING, RUNNING),  # the next query starts clean
        (DONE, None, DONE),
    ],
)
def test_budget_exhaustion_sticks_until_the_next_query(old, new, expected):
    assert sticky_status(old, new) == expected


def test_spend_keeps_the_newest_snapshot_of_the_current_query():
    small = {"query_id": "q1", "calls": 1}
    big = {"query_id": "q1", "calls": 3}
    assert latest_spend(small, big) == big
    assert latest_spend(big, small) == big  # a slower parallel branch reports late
    assert latest_spend(big, {"query_id": "q2", "calls": 0}) == {"query_id": "q2", "calls": 0}
    assert latest_spend(big, None) == big


def test_spend_snapshots_round_trip():
    spend = SpendSummary(
        calls=3,
        failed_calls=1,
        input_uncached=10,
        input_cached=5,
        output=7,
        reasoning=2,
        cost=CostTotal(Decimal("0.000123"), 1),
    )
    snapshot = spend_snapshot("q", spend)
    assert snapshot["cost_known_usd"] == "0.000123"
    assert spend_from_snapshot(snapshot) == spend


def test_query_input_resets_every_per_query_key():
    data = query_input("hello", "q1")
    assert data["messages"] == [{"role": "user", "content": "hello"}]
    assert data["outputs"] is None and data["steps"] is None and data["status"] == RUNNING
    assert data["spend"]["query_id"] == "q1" and data["spend"]["calls"] == 0


def test_agent_outputs_round_trip():
    output = AgentOutput("coder", "sup/coder", "text", {"a": 1}, "task")
    assert AgentOutput.from_state(output.to_state()) == output
