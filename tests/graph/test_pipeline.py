"""pipeline: fixed order, each agent sees the outputs before it, one query per run."""

from __future__ import annotations

from spendgraph.agents import Agent, AgentStarted
from spendgraph.graph import (
    BudgetExhausted,
    RunFinished,
    RunOptions,
    pipeline,
    run_graph,
    stream_graph,
)
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

REQUEST = "Patient reports a sore throat and mild fever for three days."


def lookup_code(term: str) -> str:
    """Look up the ICD-10 code for a diagnosis term."""
    return "J02.9"


async def collect(graph, layer, text=REQUEST, **options):
    events = [
        event
        async for event in stream_graph(graph, layer, text, options=RunOptions(app="t", **options))
    ]
    assert isinstance(events[-1], RunFinished)
    return events, events[-1].result


async def test_agents_run_in_order_and_see_earlier_outputs(layer, agents, ledger_rows):
    scribe, coder, reviewer = agents("p", 3)
    coder = coder.replace(tools=[lookup_code])
    events, result = await collect(pipeline([scribe, coder, reviewer]), layer, store_text=True)
    assert [e.agent for e in events if isinstance(e, AgentStarted)] == ["p0", "p1", "p2"]
    assert [o.agent for o in result.outputs] == ["p0", "p1", "p2"]
    assert result.answer == result.outputs[-1].content and result.status is QueryStatus.OK
    assert result.steps == 3 and result.stop_reason == "done"
    rows = ledger_rows(result)
    assert [r.agent_path for r in rows] == ["p0", "p1", "p1", "p2"]  # p1 used its tool
    assert all(r.status is CallStatus.OK for r in rows)
    # each later agent's prompt holds the earlier outputs
    assert result.outputs[0].content in rows[1].prompt_text
    assert result.outputs[1].content in rows[3].prompt_text
    assert result.state["messages"][-1] == {"role": "assistant", "content": result.answer}


async def test_budget_refusal_mid_pipeline_keeps_the_best_answer(layer, agents, ledger_rows):
    first = Agent("first", "Answer briefly.", max_tokens=10)
    expensive = Agent("second", "Answer at length.", max_tokens=4000)
    never = Agent("third", "Polish.", max_tokens=10)
    events, result = await collect(pipeline([first, expensive, never]), layer, budget_tokens=300)
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    assert result.answer == result.outputs[0].content and result.answer
    (refusal,) = [e for e in events if isinstance(e, BudgetExhausted)]
    assert refusal.agent == "second"
    rows = ledger_rows(result)
    assert [(r.agent_path, r.status) for r in rows] == [
        ("first", CallStatus.OK),
        ("second", CallStatus.BUDGET_DENIED),
    ]
    assert sum(r.usage.total_tokens for r in rows) <= 300


async def test_run_graph_ends_a_refused_pipeline_as_the_streamed_run_does(
    layer, agents, ledger_rows
):
    # run_graph streams no events; the stages route themselves to finish all the same.
    first = Agent("first", "Answer briefly.", max_tokens=10)
    expensive = Agent("second", "Answer at length.", max_tokens=4000)
    graph = pipeline([first, expensive, Agent("third", "Polish.", max_tokens=10)])
    options = RunOptions(app="t", budget_tokens=300)
    quiet = await run_graph(graph, layer, REQUEST, options=options)
    _, streamed = await collect(graph, layer, budget_tokens=300)
    for result in (quiet, streamed):
        assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
        assert [o.agent for o in result.outputs] == ["first"] and result.steps == 1
        assert result.answer == result.outputs[0].content and result.answer
        assert [r.agent_path for r in ledger_rows(result)] == ["first", "second"]
    assert quiet.state["messages"][-1] == {"role": "assistant", "content": quiet.answer}
