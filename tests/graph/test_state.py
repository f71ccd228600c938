"""State reducers and the per-query marker: marked keys reset with each input, the rest persist."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from spendgraph.graph import (
    PER_QUERY,
    DraftVerifyState,
    FanoutState,
    GraphBuildError,
    GraphState,
    PerQuery,
    SupervisorState,
)
from spendgraph.graph.state import (
    AgentOutput,
    append_messages,
    collect_outputs,
    count_steps,
    per_query_resets,
    query_input,
    state_keys,
    sticky_status,
)
from spendgraph.providers.ledger.records import QueryStatus

RUNNING = QueryStatus.RUNNING.value
OK = QueryStatus.OK.value
EXHAUSTED = QueryStatus.BUDGET_EXHAUSTED.value


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
        (RUNNING, OK, OK),
        (RUNNING, EXHAUSTED, EXHAUSTED),
        (EXHAUSTED, OK, EXHAUSTED),
        (EXHAUSTED, None, EXHAUSTED),
        (EXHAUSTED, RUNNING, RUNNING),  # the next query starts clean
        (OK, None, OK),
    ],
)
def test_budget_exhaustion_sticks_until_the_next_query(old, new, expected):
    assert sticky_status(old, new) == expected


def test_query_input_resets_every_per_query_key_of_the_core_state():
    data = query_input("hello", "q1")
    assert data == {
        "messages": [{"role": "user", "content": "hello"}],
        "query_id": "q1",
        "input": "hello",
        "steps": None,
        "outputs": None,
        "answer": "",
        "status": QueryStatus.RUNNING,
        "stop_reason": "",
    }
    assert type(data["status"]) is str  # checkpointers store plain data


@pytest.mark.parametrize(
    ("schema", "own"),
    [
        (SupervisorState, {"route": None}),
        (FanoutState, {"plan": None}),
        (DraftVerifyState, {"draft": "", "verdict": None}),
    ],
)
def test_each_builder_resets_its_own_keys_and_the_core_only_the_core(schema, own):
    core = per_query_resets(GraphState)
    assert per_query_resets(schema) == {**core, **own}
    assert not state_keys(GraphState) & set(own)


class GameState(GraphState, total=False):
    world: dict[str, Any]  # kept for the whole thread
    clues: Annotated[list[str], PerQuery(reset=[])]


def test_a_users_state_marks_its_own_keys_and_keeps_the_rest():
    resets = per_query_resets(GameState)
    assert resets["clues"] == [] and "world" not in resets
    resets["clues"].append("x")
    assert per_query_resets(GameState)["clues"] == []  # every run gets a fresh copy


def add(old: int, new: int | None) -> int:
    """A reducer of a per-query key gets the reset value too: here ``None`` restarts at 0."""
    return 0 if new is None else (old or 0) + new


class Counters(GraphState, total=False):
    per_query: Annotated[int, PER_QUERY, add]
    forever: Annotated[int, add]


async def test_a_marked_key_keeps_its_reducer_and_is_reset_by_the_input():
    """LangGraph ignores the marker (not callable): the reducer still applies, and the
    marker's reset comes in through the input like any other write."""

    async def count(state: Counters) -> dict:
        return {"per_query": 1, "forever": 1}

    graph = StateGraph(Counters)
    graph.add_node("count", count)
    graph.add_edge(START, "count")
    graph.add_edge("count", END)
    compiled = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    for query in ("q1", "q2"):
        state = await compiled.ainvoke(query_input("hi", query, Counters), config)
    assert state["per_query"] == 1 and state["forever"] == 2
    assert type(compiled.builder.channels["per_query"]).__name__ == "BinaryOperatorAggregate"


def test_a_marker_after_the_reducer_is_refused():
    class Misordered(GraphState, total=False):
        count: Annotated[int, add, PER_QUERY]  # LangGraph would silently drop `add`

    with pytest.raises(GraphBuildError, match=r"Misordered\.count: put the reducer last"):
        per_query_resets(Misordered)


def test_agent_outputs_round_trip():
    output = AgentOutput("coder", "sup/coder", "text", {"a": 1}, "task")
    assert AgentOutput.from_state(output.to_state()) == output
