"""Bad builder inputs fail at build time with clear GraphBuildErrors; good ones compile."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from spendgraph.agents import Agent
from spendgraph.graph import (
    DraftVerifyOptions,
    FanoutOptions,
    GraphBuildError,
    GraphOptions,
    SupervisorOptions,
    draft_and_verify,
    fanout,
    pipeline,
    supervisor,
    with_checkpointer,
)
from spendgraph.providers.errors import SpendgraphError


class Out(BaseModel):
    x: int


A, B, C = (Agent(name, f"Agent {name}.") for name in ("a", "b", "c"))
BOSS = Agent("boss", "Coordinate.")

BAD = {
    "pipeline-empty": (lambda: pipeline([]), "pipeline: agents is empty"),
    "pipeline-not-a-list": (lambda: pipeline(A), "agents must be a list of Agents, got Agent"),
    "pipeline-string": (lambda: pipeline("ab"), "agents must be a list of Agents, got str"),
    "pipeline-not-an-agent": (lambda: pipeline([A, "b"]), r"agents\[1\] must be an Agent, got str"),
    "pipeline-duplicate": (lambda: pipeline([A, B, A]), "'a' appear more than once"),
    "pipeline-reserved-state-key": (
        lambda: pipeline([Agent("messages", "x")]),
        "'messages' are reserved",
    ),
    "pipeline-reserved-finish": (lambda: pipeline([Agent("finish", "x")]), "'finish' are reserved"),
    "pipeline-history": (
        lambda: pipeline([A], options=GraphOptions(history_limit=-1)),
        "history_limit must be 0 or more",
    ),
    "pipeline-recursion": (
        lambda: pipeline([A], options=GraphOptions(recursion_limit=0)),
        "recursion_limit must be at least 1",
    ),
    "checkpointer-not-a-saver": (
        lambda: with_checkpointer(pipeline([A]), "threads.db"),
        "checkpointer must be a LangGraph checkpoint saver, got str",
    ),
    "supervisor-empty": (lambda: supervisor(BOSS, []), "supervisor: specialists is empty"),
    "supervisor-not-an-agent": (
        lambda: supervisor("boss", [A]),
        "the supervisor agent must be an Agent",
    ),
    "supervisor-duplicate": (
        lambda: supervisor(BOSS, [A, Agent("boss", "y")]),
        "'boss' appear more than once",
    ),
    "supervisor-reserved-route": (
        lambda: supervisor(BOSS, [Agent("route", "x")]),
        "'route' are reserved",
    ),
    "fanout-reserved-plan": (lambda: fanout(BOSS, [Agent("plan", "x")], C), "'plan' are reserved"),
    "dv-reserved-verdict": (
        lambda: draft_and_verify(Agent("verdict", "x"), B, 400),
        "'verdict' are reserved",
    ),
    "supervisor-FINISH": (
        lambda: supervisor(BOSS, [Agent("FINISH", "x")]),
        "'FINISH' are reserved",
    ),
    "supervisor-has-output": (
        lambda: supervisor(BOSS.replace(output=Out), [A]),
        "supervisor agent 'boss' must not have an output schema",
    ),
    "supervisor-unknown-route": (
        lambda: supervisor(BOSS, [A, B], options=SupervisorOptions(first="ghost")),
        "first='ghost' is not a known route \\(known: 'a', 'b'\\)",
    ),
    "supervisor-route-to-itself": (
        lambda: supervisor(BOSS, [A], options=SupervisorOptions(first="boss")),
        "first='boss' is not a known route",
    ),
    "supervisor-steps": (
        lambda: supervisor(BOSS, [A], options=SupervisorOptions(max_steps=0)),
        "max_steps must be at least 1",
    ),
    "supervisor-retries": (
        lambda: supervisor(BOSS, [A], options=SupervisorOptions(retries=-1)),
        "retries must be 0 or more",
    ),
    "fanout-empty": (lambda: fanout(BOSS, [], C), "fanout: specialists is empty"),
    "fanout-synth-duplicate": (lambda: fanout(BOSS, [A, B], B), "'b' appear more than once"),
    "fanout-planner-output": (
        lambda: fanout(BOSS.replace(output=Out), [A], C),
        "planner 'boss' must not have an output schema",
    ),
    "fanout-bounds": (
        lambda: fanout(BOSS, [A, B], C, options=FanoutOptions(min_tasks=3, max_tasks=2)),
        "need 1 <= min_tasks <= max_tasks, got min_tasks=3, max_tasks=2",
    ),
    "fanout-zero-tasks": (
        lambda: fanout(BOSS, [A], C, options=FanoutOptions(min_tasks=0)),
        "need 1 <= min_tasks",
    ),
    "fanout-synth-missing": (lambda: fanout(BOSS, [A], None), "the synthesizer must be an Agent"),
    "dv-latency-zero": (lambda: draft_and_verify(A, B, 0), "latency_target_ms must be a positive"),
    "dv-latency-text": (lambda: draft_and_verify(A, B, "fast"), "latency_target_ms must be"),
    "dv-same-name": (lambda: draft_and_verify(A, A, 400), "'a' appear more than once"),
    "dv-strong-output": (
        lambda: draft_and_verify(A, B.replace(output=Out), 400),
        "strong agent 'b' must not have an output schema",
    ),
    "dv-not-an-agent": (lambda: draft_and_verify(A, "b", 400), "the strong agent must be an Agent"),
    "dv-name-clash": (
        lambda: draft_and_verify(Agent("b_correct", "x"), B, 400),
        "may not be named 'b_correct'",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_inputs_raise_clear_errors(case):
    build, message = BAD[case]
    with pytest.raises(GraphBuildError, match=message) as caught:
        build()
    assert isinstance(caught.value, SpendgraphError) and isinstance(caught.value, ValueError)


GOOD = {
    "pipeline": (lambda: pipeline([A, B]), {"a", "b", "finish"}),
    "supervisor": (lambda: supervisor(BOSS, [A, B]), {"boss", "a", "b", "finish"}),
    "fanout": (lambda: fanout(BOSS, [A, B], C), {"boss", "a", "b", "c", "finish"}),
    "draft_and_verify": (
        lambda: draft_and_verify(A, B, 400, options=DraftVerifyOptions(correct=False)),
        {"a", "b", "b_correct", "finish"},
    ),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_builders_compile_with_an_explicit_recursion_limit(name):
    build, nodes = GOOD[name]
    graph = build()
    assert set(graph.nodes) - {"__start__"} == nodes
    assert isinstance(graph.config["recursion_limit"], int)
    assert graph.name == name


def test_recursion_limit_option_wins():
    graph = pipeline([A], options=GraphOptions(recursion_limit=42))
    assert graph.config["recursion_limit"] == 42


def test_supervisor_recursion_limit_covers_its_step_limit():
    small = supervisor(BOSS, [A], options=SupervisorOptions(max_steps=2))
    big = supervisor(BOSS, [A], options=SupervisorOptions(max_steps=20))
    assert small.config["recursion_limit"] < big.config["recursion_limit"]
    assert big.config["recursion_limit"] >= 2 * 20 + 2


def test_a_builders_own_state_keys_are_free_names_elsewhere():
    """``route`` is the supervisor's state key, not the pipeline's: an agent may be called so."""
    graph = pipeline([Agent("route", "Plan the route."), Agent("plan", "Write the plan.")])
    assert {"route", "plan"} <= set(graph.nodes)
