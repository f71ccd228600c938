"""The entry point: one graph run = one ledger Query, streamed as events, budget-guarded."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

import pytest
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from spendgraph.agents import Agent, AgentFinished, AgentStarted, CallSpent, TokenDelta
from spendgraph.graph import (
    GraphState,
    RunContext,
    RunFinished,
    RunOptions,
    RunStarted,
    pipeline,
    run_graph,
    stream_graph,
)
from spendgraph.graph.state import spend_from_snapshot
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.context import current_query
from spendgraph.providers.errors import NoEndpointAvailable, SpendgraphError
from spendgraph.providers.ledger.records import QueryStatus
from spendgraph.providers.usage import CostTotal

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
    assert CostTotal.of(e.cost_usd for e in spent) == result.spend.cost
    # the state's spend is the provider layer's own accounting, snapshotted
    assert spend_from_snapshot(result.state["spend"]) == result.spend
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
