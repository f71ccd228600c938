"""research_chat end to end on the simulator: one question, many calls, one query, a budget."""

from __future__ import annotations

import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

from spendgraph.agents import ToolCallFinished
from spendgraph.cli.apps import load_app
from spendgraph.examples.research_chat import APP
from spendgraph.examples.research_chat.agents import PLANNER_MAX_TOKENS
from spendgraph.examples.research_chat.graph import FANOUT
from spendgraph.graph import RunFinished, run_graph, stream_graph
from spendgraph.providers.ledger.records import CallStatus, QueryStatus
from spendgraph.providers.usage import Usage, cost_of

QUESTION = APP.samples[0]


async def test_one_question_fans_out_to_a_dozen_calls_in_one_query(layer, ledger):
    events = [
        e async for e in stream_graph(APP.build(), layer, QUESTION, options=APP.run_options())
    ]
    result = events[-1].result
    assert isinstance(events[-1], RunFinished)
    assert result.status is QueryStatus.OK and result.answer
    plan = result.state["plan"]
    assert FANOUT.min_tasks <= len(plan) <= FANOUT.max_tasks
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert len(rows) >= 12 and result.spend.calls == len(rows)
    assert {row.query_id for row in rows} == {result.query_id}
    assert rows[0].agent_path == "planner" and rows[-1].agent_path == "synthesizer"
    branches = Counter(row.agent_path for row in rows[1:-1])
    assert set(branches) == {f"planner/{task['specialist']}" for task in plan}
    # Tool loops add calls: more calls than agent turns, and the tools really ran.
    assert len(rows) > len(plan) + 2
    assert any(isinstance(e, ToolCallFinished) for e in events)
    assert all(row.status is CallStatus.OK for row in rows)
    summary = ledger.query_summary(result.query_id)
    assert summary.spend.calls == len(rows) and summary.spend.cost == result.spend.cost
    assert summary.query.app == "research_chat"
    assert result.spend.cost <= APP.defaults.budget_usd


def planner_worst_case(layer, ledger, result) -> Decimal:
    """What the budget reserves for the planner's call: its prompt plus max_tokens, uncached."""
    ledger.flush()
    row = ledger.calls_for_query(result.query_id)[0]
    assert row.agent_path == "planner"
    bound = Usage(row.usage.input_uncached + row.usage.input_cached, 0, PLANNER_MAX_TOKENS)
    return cost_of(bound, layer.endpoints[row.endpoint.name].price)


async def test_a_small_budget_stops_the_fanout_with_a_partial_answer(layer, ledger):
    full = await run_graph(APP.build(), layer, QUESTION, options=APP.run_options())
    # Twice the planner's worst case: the planner runs, then a few specialists'
    # reservations fit and the rest are refused (reservations ignore caching, so
    # this does not depend on how warm the simulator's prefix caches are).
    budget = 2 * planner_worst_case(layer, ledger, full)
    result = await run_graph(
        APP.build(), layer, QUESTION, options=APP.run_options(budget_usd=budget)
    )
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    assert result.answer.strip()  # the specialists' answers so far, labelled
    answered = [o for o in result.outputs if o.agent != "synthesizer"]
    assert answered and all(f"[{o.agent}]" in result.answer for o in answered)
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    summary = ledger.query_summary(result.query_id)
    assert summary.query.status is QueryStatus.BUDGET_EXHAUSTED
    assert summary.spend.cost <= budget and result.spend.cost == summary.spend.cost
    denied = [row for row in rows if row.status is CallStatus.BUDGET_DENIED]
    assert denied and all(row.cost_usd == 0 for row in denied)
    assert not [r for r in rows if r.agent_path == "synthesizer" and r.status is CallStatus.OK]


async def test_every_sample_runs_within_the_default_budget(layer):
    graph = APP.build()
    for sample in APP.samples:
        result = await run_graph(graph, layer, sample, options=APP.run_options())
        assert result.status is QueryStatus.OK
        assert result.spend.calls >= 12
        assert result.spend.cost <= APP.defaults.budget_usd


def test_the_app_has_a_planner_twelve_specialists_and_a_synthesizer(config):
    graph = APP.build()
    nodes = set(graph.get_graph().nodes) - {"__start__", "__end__", "finish"}
    assert len(nodes) == 14 and {"planner", "synthesizer", "fact_finder", "calculator"} <= nodes
    assert APP.name == "research_chat" and len(APP.samples) >= 3
    assert Decimal(APP.defaults.budget_usd) > 0
    assert set(APP.tiers) <= config.served_names()


async def test_a_copied_folder_runs_as_a_users_app(tmp_path, layer):
    source = Path(APP.build.__code__.co_filename).parent
    copy = tmp_path / "my_research"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "corpus.md").write_text("## only: The only document\n\nNVFP4 is a 4-bit format.\n")
    app = load_app(str(copy))
    result = await run_graph(app.build(), layer, "What is NVFP4?", options=app.run_options())
    assert result.status is QueryStatus.OK and result.spend.calls >= 12
