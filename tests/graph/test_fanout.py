"""fanout: planner -> parallel specialists (Send) -> synthesizer; budgets stop runaway fan-out."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from spendgraph.agents import Agent, AgentFinished, AgentStarted
from spendgraph.graph import (
    BudgetExhausted,
    FanoutOptions,
    Routed,
    RunFinished,
    RunOptions,
    fanout,
    run_graph,
    stream_graph,
)
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

PLANNER = Agent("planner", "Split research questions.", max_tokens=400)
SYNTH = Agent("synth", "Combine the answers.", max_tokens=40)
QUESTION = "Compare the cost of serving a large MoE model on Hopper and Blackwell."


async def collect(graph, layer, **options):
    stream = stream_graph(graph, layer, QUESTION, options=RunOptions(**options))
    events = [event async for event in stream]
    assert isinstance(events[-1], RunFinished)
    return events, events[-1].result


async def test_specialists_run_in_parallel_then_the_synthesizer(layer, agents, ledger_rows):
    team = agents("s", 4)
    options = FanoutOptions(min_tasks=3, max_tasks=4)
    events, result = await collect(fanout(PLANNER, team, SYNTH, options=options), layer)
    (routed,) = [e for e in events if isinstance(e, Routed)]
    assert routed.by == "planner" and 3 <= len(routed.to) <= 4
    plan = result.state["plan"]
    assert [task["specialist"] for task in plan] == list(routed.to)
    started = [e.path for e in events if isinstance(e, AgentStarted)]
    assert started[0] == "planner" and started[-1] == "synth"
    branch = started[1:-1]
    assert Counter(branch) == Counter(f"planner/{name}" for name in routed.to)
    # every branch started before any branch finished: they ran concurrently
    kinds = [
        type(e)
        for e in events
        if isinstance(e, AgentStarted | AgentFinished) and e.path.startswith("planner/")
    ]
    assert kinds == [AgentStarted] * len(branch) + [AgentFinished] * len(branch)
    # each specialist answered its own sub-question
    assert sorted(o.task for o in result.outputs if o.agent != "synth") == sorted(
        task["question"] for task in plan
    )
    assert result.answer == result.outputs[-1].content and result.outputs[-1].agent == "synth"
    assert result.status is QueryStatus.OK and result.steps == len(branch) + 2
    rows = ledger_rows(result)
    assert rows[0].agent_path == "planner" and rows[-1].agent_path == "synth"
    assert Counter(r.agent_path for r in rows[1:-1]) == Counter(branch)


async def test_a_tight_budget_ends_a_fanout_of_eight_gracefully(layer, agents, ledger_rows):
    team = agents("s", 8, max_tokens=60)
    graph = fanout(PLANNER, team, SYNTH, options=FanoutOptions(min_tasks=8, max_tasks=8))
    full = await run_graph(graph, layer, QUESTION)
    assert full.status is QueryStatus.OK and full.spend.calls == 10
    budget = full.spend.cost / 2
    events, result = await collect(graph, layer, budget_usd=budget)
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    rows = ledger_rows(result)
    assert result.spend.cost <= budget
    assert [r.status for r in rows if r.agent_path == "planner"] == [CallStatus.OK]
    answered = [
        r for r in rows if r.agent_path.startswith("planner/") and r.status is CallStatus.OK
    ]
    denied = [r for r in rows if r.status is CallStatus.BUDGET_DENIED]
    assert answered and denied and len(answered) + len(denied) == 8
    assert not [r for r in rows if r.agent_path == "synth"]  # no new turn after the refusal
    assert len([e for e in events if isinstance(e, BudgetExhausted)]) == len(denied)
    # the best answer so far: the specialists' answers, joined
    assert result.answer == "\n\n".join(f"[{o.agent}] {o.content}" for o in result.outputs)
    assert len(result.outputs) == len(answered)
    assert result.state["messages"][-1]["content"] == result.answer
    assert isinstance(budget, Decimal)


async def test_an_unreadable_plan_asks_every_specialist(layer, agents, ledger_rows):
    team = agents("s", 3)
    planner = PLANNER.replace(max_tokens=4)  # the plan's JSON is cut short
    events, result = await collect(fanout(planner, team, SYNTH), layer)
    (routed,) = [e for e in events if isinstance(e, Routed)]
    assert routed.to == ("s0", "s1", "s2")
    assert {o.task for o in result.outputs if o.agent != "synth"} == {QUESTION}
    rows = ledger_rows(result)
    assert len(rows) == 5 and result.status is QueryStatus.OK
