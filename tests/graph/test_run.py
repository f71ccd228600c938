"""The entry point: one graph run = one ledger Query, streamed as events, budget-guarded."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from spendgraph.agents import Agent, AgentFinished, AgentStarted, CallSpent, TokenDelta
from spendgraph.graph import (
    FINISH_NODE,
    BudgetThreshold,
    GraphBuildError,
    GraphState,
    PerQuery,
    RunContext,
    RunFinished,
    RunOptions,
    RunStarted,
    finish_node,
    guarded,
    output_of,
    pipeline,
    prompt,
    run_graph,
    stream_graph,
    take_turn,
    with_checkpointer,
)
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config.model import BudgetConfig
from spendgraph.providers.context import current_query
from spendgraph.providers.errors import NoEndpointAvailable, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import QueryStatus
from spendgraph.providers.spend import Spend

TEXT = "Summarize the visit."


@pytest.mark.parametrize("stream_tokens", [True, False], ids=["tokens", "no-tokens"])
async def test_a_run_is_one_query_streamed_as_events(layer, agents, ledger_rows, stream_tokens):
    graph = pipeline(agents("a", 2))
    options = RunOptions(app="scribe", user="dr-who", stream_tokens=stream_tokens)
    events = [e async for e in stream_graph(graph, layer, TEXT, thread_id="t-1", options=options)]
    started, finished = events[0], events[-1]
    assert isinstance(started, RunStarted) and isinstance(finished, RunFinished)
    result = finished.result
    assert started.query_id == result.query_id and started.thread_id == result.thread_id == "t-1"
    rows = ledger_rows(result)
    spent = [e for e in events if isinstance(e, CallSpent)]
    assert [e.record.id for e in spent] == [r.id for r in rows]
    assert Spend.of_calls(e.record for e in spent) == result.spend
    assert result.state["query_id"] == result.query_id
    deltas = [e for e in events if isinstance(e, TokenDelta)]
    finals = [e for e in events if isinstance(e, AgentFinished)]
    assert bool(deltas) is stream_tokens and all(r.stream is stream_tokens for r in rows)
    if stream_tokens:
        assert "".join(d.text for d in deltas) == "".join(f.content for f in finals)
    assert current_query() is None  # the query's context never leaks to the caller


class OuterState(TypedDict, total=False):
    """An outer graph's own state: a few keys of GraphState, no history or outputs."""

    query_id: str
    input: str
    answer: str


def nested(inner, how: str):
    """``inner`` inside an outer graph: added as a node, or invoked by a node's code;
    an ``after`` node then settles the outer graph's own answer."""

    async def run_inner(state: OuterState, runtime: Runtime[RunContext]) -> dict:
        final = await inner.ainvoke(dict(state), context=runtime.context)
        return {"answer": final["answer"]}

    async def after(state: OuterState) -> dict:
        return {"answer": f"outer: {state['answer']}"}

    graph = StateGraph(OuterState, context_schema=RunContext)
    graph.add_node("inner", inner if how == "node" else run_inner)
    graph.add_node("after", after)
    graph.add_edge(START, "inner")
    graph.add_edge("inner", "after")
    graph.add_edge("after", END)
    return graph.compile()


@pytest.mark.parametrize("how", ["node", "called"])
async def test_a_subgraphs_events_reach_the_stream(layer, agents, ledger_rows, how):
    graph = nested(pipeline(agents("a", 2)), how)
    events = [e async for e in stream_graph(graph, layer, TEXT, thread_id="t-sub")]
    result = events[-1].result
    assert [(e.agent, e.path) for e in events if isinstance(e, AgentStarted)] == [
        ("a0", "a0"),
        ("a1", "a1"),
    ]
    finals = [e for e in events if isinstance(e, AgentFinished)]
    deltas = "".join(e.text for e in events if isinstance(e, TokenDelta))
    assert [f.agent for f in finals] == ["a0", "a1"]
    assert deltas == "".join(f.content for f in finals)
    rows = ledger_rows(result)
    assert [e.record.id for e in events if isinstance(e, CallSpent)] == [r.id for r in rows]
    # The run's state is the outer graph's, not the last one a subgraph streamed.
    assert result.answer == f"outer: {finals[-1].content}"
    assert "outputs" not in result.state


async def test_stopping_the_stream_cancels_the_query(layer, agents, ledger):
    stream = stream_graph(pipeline(agents("a", 3)), layer, TEXT)
    started = await anext(stream)
    await stream.aclose()
    ledger.flush()
    assert ledger.query_summary(started.query_id).query.status is QueryStatus.CANCELLED


async def test_an_error_ends_the_query_as_error_and_reaches_the_caller(layer, ledger):
    broken = Agent("broken", "x", model="no-such-tier")
    events = []
    with pytest.raises(NoEndpointAvailable):
        async for event in stream_graph(pipeline([broken]), layer, TEXT):
            events.append(event)
    ledger.flush()
    summary = ledger.query_summary(events[0].query_id)
    assert (
        summary.query.status is QueryStatus.ERROR and "NoEndpointAvailable" in summary.query.error
    )


async def test_a_refusal_outside_the_agent_nodes_is_still_graceful(layer, ledger_rows):
    async def greedy(state: GraphState, runtime: Runtime[RunContext]) -> dict:
        request = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=5000)
        await runtime.context.layer.chat(request)
        return {"answer": "unreachable"}

    graph = StateGraph(GraphState, context_schema=RunContext)
    graph.add_node("greedy", greedy)
    graph.add_edge(START, "greedy")
    graph.add_edge("greedy", END)
    result = await run_graph(graph.compile(), layer, TEXT, options=RunOptions(budget_tokens=100))
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.answer == ""
    assert len(ledger_rows(result)) == 1


async def test_the_recursion_limit_can_be_overridden(layer, agents):
    with pytest.raises(GraphRecursionError):
        await run_graph(
            pipeline(agents("a", 3)), layer, TEXT, options=RunOptions(recursion_limit=2)
        )


USER_DAY_TOKENS = 600


async def test_a_user_budget_ends_the_run_gracefully_with_threshold_events(
    config, ledger, agents, ledger_rows
):
    budgets = [BudgetConfig(scope="user", period="day", tokens=USER_DAY_TOKENS)]
    layer = ProviderLayer(config.model_copy(update={"budgets": budgets}), ledger, env={})
    try:
        options = RunOptions(user="dr-who")
        graph = pipeline(agents("a", 12))
        events = [e async for e in stream_graph(graph, layer, TEXT, options=options)]
    finally:
        await layer.aclose(close_ledger=False)
    result = events[-1].result
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    ledger_rows(result)
    crossed = [e.record for e in events if isinstance(e, BudgetThreshold)]
    assert crossed == ledger.budget_events(result.query_id)
    # Each threshold the user's spend reached, once (the run is refused before 100%).
    spent = sum(row.usage.total_tokens for row in ledger.calls_for_query(result.query_id))
    reached = [t for t in (Decimal("0.8"), Decimal("0.95")) if spent >= t * USER_DAY_TOKENS]
    assert reached and [(r.scope_id, r.threshold) for r in crossed] == [
        ("dr-who", t) for t in reached
    ]


async def test_budget_in_usd_is_recorded_on_the_query(layer, agents, ledger):
    result = await run_graph(
        pipeline(agents("a", 1)), layer, TEXT, options=RunOptions(budget_usd="0.01")
    )
    ledger.flush()
    assert ledger.query_summary(result.query_id).query.budget_usd == Decimal("0.01")
    assert result.status is QueryStatus.OK


async def test_a_graph_run_without_the_layer_says_how_to_run_it(agents):
    with pytest.raises(SpendgraphError, match="run_graph/stream_graph, or pass context=RunContext"):
        await pipeline(agents("a", 1)).ainvoke({"input": "hi", "messages": []})


class NotesState(GraphState, total=False):
    """A user's state: ``notes`` belongs to the thread, ``seen`` and ``calls`` to one query."""

    notes: list[str]
    seen: Annotated[list[str], PerQuery(reset=[])]
    calls: Annotated[int, PerQuery(0)]


def notes_graph(agent: Agent):
    """One node: an agent turn, then the query's spend so far as the node sees it."""

    async def note(state: NotesState, runtime: Runtime[RunContext]) -> dict:
        turn = await take_turn(runtime, agent, prompt(state, history_limit=4))
        return {
            "outputs": [output_of(turn)],
            "steps": 1,
            "notes": [*state.get("notes", []), state["input"]],
            "seen": [*state["seen"], state["input"]],
            "calls": current_query().spend.calls,
        }

    graph = StateGraph(NotesState, context_schema=RunContext)
    graph.add_node("note", guarded(agent, note))
    graph.add_node(FINISH_NODE, finish_node())
    graph.add_edge(START, "note")
    graph.add_edge("note", FINISH_NODE)
    graph.add_edge(FINISH_NODE, END)
    return graph.compile()


async def test_a_thread_keeps_unmarked_keys_and_resets_the_marked_ones(layer, agents, ledger_rows):
    graph = with_checkpointer(notes_graph(agents("n", 1)[0]), InMemorySaver())
    first = await run_graph(graph, layer, "first", thread_id="notes")
    second = await run_graph(graph, layer, "second", thread_id="notes")
    assert first.state["notes"] == ["first"] and second.state["notes"] == ["first", "second"]
    assert first.state["seen"] == ["first"] and second.state["seen"] == ["second"]
    # Per-query keys of the core state too: only this query's outputs and steps.
    assert [o.content for o in second.outputs] == [second.answer] and second.steps == 1
    assert [m["content"] for m in second.state["messages"]] == [
        "first",
        first.answer,
        "second",
        second.answer,
    ]
    # Inside a node, the query's spend is the provider layer's running total.
    assert second.state["calls"] == second.spend.calls == len(ledger_rows(second)) == 1


async def test_a_state_whose_reset_would_lose_a_reducer_fails_before_any_query(layer, ledger):
    class Broken(GraphState, total=False):
        tally: Annotated[int, count, PerQuery(0)]

    async def noop(state: Broken) -> dict:
        return {}

    graph = StateGraph(Broken)
    graph.add_node("noop", noop)
    graph.add_edge(START, "noop")
    graph.add_edge("noop", END)
    with pytest.raises(GraphBuildError, match=r"Broken\.tally: put the reducer last"):
        await run_graph(graph.compile(), layer, TEXT)
    ledger.flush()
    assert ledger.list_queries() == []


def count(old: int, new: int | None) -> int:
    return 0 if new is None else (old or 0) + new
