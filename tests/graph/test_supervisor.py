"""supervisor: the model routes between specialists until FINISH, a step limit or the budget."""

from __future__ import annotations

import pytest

from spendgraph.agents import Agent, AgentOutputError, AgentStarted, OutputSchema
from spendgraph.graph import (
    FINISH,
    Routed,
    RunFinished,
    RunOptions,
    SupervisorOptions,
    stream_graph,
    supervisor,
)
from spendgraph.graph.supervisor import route_model
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

# Inputs for which the simulated supervisor routes to at least one specialist.
ROUTED_INPUTS = ["How do I fix my router?", "what is two plus two"]
BOSS = Agent("boss", "You coordinate specialists.", max_tokens=60)


async def collect(graph, layer, text, **options):
    events = [e async for e in stream_graph(graph, layer, text, options=RunOptions(**options))]
    assert isinstance(events[-1], RunFinished)
    return events, events[-1].result


@pytest.mark.parametrize("text", ROUTED_INPUTS)
async def test_specialists_run_as_the_supervisor_routes(layer, agents, ledger_rows, text):
    team = agents("s", 3)
    events, result = await collect(supervisor(BOSS, team), layer, text)
    started = [e.path for e in events if isinstance(e, AgentStarted)]
    routes = [e for e in events if isinstance(e, Routed)]
    # boss, chosen specialist, boss, chosen specialist, ..., boss (FINISH)
    assert started[0::2] == ["boss"] * len(routes)
    assert started[1::2] == [f"boss/{r.to[0]}" for r in routes if r.to]
    assert routes[-1].to == () and result.stop_reason == "finish"
    assert len(routes) >= 2, "this input should route to a specialist at least once"
    assert [o.agent for o in result.outputs] == [r.to[0] for r in routes if r.to]
    assert [o.task for o in result.outputs] == [r.instruction for r in routes if r.to]
    assert result.answer == result.outputs[-1].content
    assert result.steps == len(started) and result.status is QueryStatus.OK
    rows = ledger_rows(result)
    assert [r.agent_path for r in rows] == started
    assert {r.node for r in rows} <= {"boss", "s0", "s1", "s2"}


@pytest.mark.parametrize("text", ROUTED_INPUTS)
async def test_the_step_limit_ends_the_run(layer, agents, ledger_rows, text):
    team = agents("s", 3)
    _, free = await collect(supervisor(BOSS, team), layer, text)
    turns = len(free.outputs)  # what the supervisor does when not limited
    limited = supervisor(BOSS, team, options=SupervisorOptions(max_steps=turns))
    _, result = await collect(limited, layer, text)
    assert result.stop_reason == "step_limit" and free.stop_reason == "finish"
    assert [o.agent for o in result.outputs] == [o.agent for o in free.outputs]
    paths = [r.agent_path for r in ledger_rows(result)]
    assert paths.count("boss") == turns  # the final FINISH decision is never asked for
    assert paths[-1].startswith("boss/")


async def test_first_runs_a_specialist_before_any_decision(layer, agents, ledger_rows):
    options = SupervisorOptions(max_steps=1, first="s1")
    _, result = await collect(supervisor(BOSS, agents("s", 2), options=options), layer, "Hi")
    assert [r.agent_path for r in ledger_rows(result)] == ["boss/s1"]
    assert result.stop_reason == "step_limit" and result.answer == result.outputs[0].content


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_an_unusable_decision_is_asked_again_then_the_run_finishes(
    layer, agents, ledger_rows, retries
):
    # max_tokens=3 cuts the decision's JSON short: it cannot be parsed.
    boss = BOSS.replace(max_tokens=3)
    graph = supervisor(boss, agents("s", 2), options=SupervisorOptions(retries=retries))
    events, result = await collect(graph, layer, "Fix my router")
    assert result.status is QueryStatus.OK and result.stop_reason == "invalid_route"
    assert not result.outputs and result.answer == ""
    rows = ledger_rows(result)
    assert [r.agent_path for r in rows] == ["boss"] * (retries + 1)
    assert all(r.status is CallStatus.OK for r in rows)
    assert not [e for e in events if isinstance(e, Routed)]


def test_unknown_specialist_names_do_not_parse():
    schema = OutputSchema.of(route_model(["coder", "scribe"]))
    assert schema.schema["properties"]["next"]["enum"] == ["coder", "scribe", FINISH]
    assert schema.parse('{"next": "coder", "instruction": "go"}', agent="boss").next == "coder"
    with pytest.raises(AgentOutputError, match="next: Input should be 'coder', 'scribe' or"):
        schema.parse('{"next": "astrologer", "instruction": "go"}', agent="boss")


async def test_budget_ends_the_loop_with_the_best_answer(layer, agents, ledger_rows):
    team = agents("s", 2)
    options = SupervisorOptions(first="s0")
    _, result = await collect(
        supervisor(BOSS.replace(max_tokens=2000), team, options=options),
        layer,
        "Fix my router",
        budget_tokens=600,
    )
    assert result.status is QueryStatus.BUDGET_EXHAUSTED
    assert result.answer == result.outputs[0].content
    rows = ledger_rows(result)
    assert [(r.agent_path, r.status) for r in rows] == [
        ("boss/s0", CallStatus.OK),
        ("boss", CallStatus.BUDGET_DENIED),
    ]
