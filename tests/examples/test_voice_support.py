"""voice_support end to end on the simulator: draft and verify, escalation, the prefix cache."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from spendgraph.agents import TokenDelta
from spendgraph.cli.apps import load_app
from spendgraph.examples import voice_support
from spendgraph.examples.voice_support import APP, SupportOptions, build_graph
from spendgraph.examples.voice_support.graph import TRANSFER, UNANSWERED, WAITING
from spendgraph.examples.voice_support.replay import (
    SpreadingLayer,
    cache_fraction,
    caller_turns,
    pool_config,
    replay_call,
)
from spendgraph.graph import (
    DraftReady,
    RunFinished,
    VerdictReady,
    run_graph,
    stream_graph,
    with_checkpointer,
)
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallStatus, QueryStatus
from spendgraph.providers.local.sim.server import run_simulator

OPTIONS = APP.run_options()


def checkpointed(options: SupportOptions | None = None):
    """The app's graph with an in-memory checkpointer: turns of a thread build on each other."""
    return with_checkpointer(build_graph(options=options), InMemorySaver())


async def test_a_turn_is_drafted_fast_verified_and_answered(layer, ledger):
    events = []
    async for event in stream_graph(
        APP.build(), layer, APP.samples[0], thread_id="call-1", options=OPTIONS
    ):
        events.append(event)
    result = events[-1].result
    assert isinstance(events[-1], RunFinished) and result.status is QueryStatus.OK
    (draft,) = [e for e in events if isinstance(e, DraftReady)]
    (verdict,) = [e for e in events if isinstance(e, VerdictReady)]
    assert events.index(draft) < events.index(verdict)  # the draft is out before the check
    assert draft.agent == "responder" and draft.latency_target_ms == 400.0
    drafted = result.state["draft"]
    assert draft.text == drafted and draft.ttft_ms is not None
    # The draft-and-verify subgraph's own events reach the stream: the draft's tokens.
    spoken = "".join(e.text for e in events if isinstance(e, TokenDelta) and e.agent == "responder")
    assert spoken == drafted
    assert result.state["verdict"]["accepted"] is verdict.accepted
    expected = drafted if verdict.accepted else result.outputs[-1].content
    assert result.answer == expected
    assert result.stop_reason == "done"
    assert result.state["support"] == {
        "rejections": 0 if verdict.accepted else 1,
        "escalated": False,
        "ticket": None,
        "reason": "",
    }
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert all(row.status is CallStatus.OK for row in rows)
    first = rows[0]
    assert (first.agent_path, first.endpoint.model, first.stream) == (
        "responder",
        "sim-small",
        True,
    )
    assert first.ttft_ms is not None
    # The verifier looks the draft up in the knowledge base, then gives its verdict.
    assert [r.agent_path for r in rows[1:3]] == ["verifier", "verifier"]
    assert {r.endpoint.model for r in rows[1:]} == {"sim-large"}
    assert any(o.agent == "verifier" for o in result.outputs)


async def test_two_rejected_drafts_in_a_call_bring_in_a_human(layer, ledger):
    graph = checkpointed()
    rejections, results = 0, []
    for text in caller_turns():
        result = await run_graph(graph, layer, text, thread_id="call-2", options=OPTIONS)
        results.append(result)
        if (result.state["verdict"] or {}).get("accepted") is False:
            rejections += 1
        if rejections == 2:
            break
    assert rejections == 2, "the simulator's verifier should reject twice in 20 turns"
    escalated = results[-1]
    support = escalated.state["support"]
    assert support["escalated"] is True and support["rejections"] == 2
    assert support["ticket"] == "HUM-" + escalated.query_id[:8].upper()
    assert support["reason"].startswith("2 drafts rejected in this call; last: ")
    assert escalated.stop_reason == "escalated" and escalated.status is QueryStatus.OK
    assert escalated.answer.endswith(TRANSFER.format(ticket=support["ticket"]))
    assert all(r.stop_reason == "done" for r in results[:-1])

    # From now on a person has the call: no model is asked, nothing is spent.
    later = await run_graph(graph, layer, "Hello? Are you still there?", thread_id="call-2")
    assert later.answer == WAITING.format(ticket=support["ticket"])
    assert later.stop_reason == "escalated" and later.spend.calls == 0
    assert later.state["support"] == support
    history = later.state["messages"]
    assert history[-2:] == [
        {"role": "user", "content": "Hello? Are you still there?"},
        {"role": "assistant", "content": later.answer},
    ]
    assert len(history) == 2 * (len(results) + 1)


async def test_without_escalation_every_turn_is_answered_by_the_models(layer):
    graph = checkpointed(SupportOptions(escalate_after=None))
    for text in caller_turns()[:4]:
        result = await run_graph(graph, layer, text, thread_id="call-3", options=OPTIONS)
        assert result.stop_reason == "done" and result.spend.calls >= 3
        assert result.state["support"]["escalated"] is False


async def test_a_spent_budget_still_says_something(layer, ledger):
    options = APP.run_options(budget_usd=Decimal("0.0000001"))
    result = await run_graph(APP.build(), layer, APP.samples[1], thread_id="poor", options=options)
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    assert result.answer == UNANSWERED
    assert result.state["messages"][-1] == {"role": "assistant", "content": UNANSWERED}
    ledger.flush()
    assert [r.status for r in ledger.calls_for_query(result.query_id)] == [CallStatus.BUDGET_DENIED]


async def test_prefix_affinity_keeps_the_call_in_one_replicas_cache(ledger):
    """Affinity ON vs OFF (a load balancer spreading requests over the pool), each on a
    fresh simulator (empty prefix caches), same scripted call; figures from the ledger."""
    script = caller_turns()[:8]
    graph_options = SupportOptions(escalate_after=None)
    runs = {}
    for mode, layer_class in (("on", ProviderLayer), ("off", SpreadingLayer)):
        with run_simulator(time_scale=0.0, seed=0) as sim:
            layer = layer_class(pool_config(sim.base_url), ledger, env={})
            try:
                runs[mode] = await replay_call(
                    checkpointed(graph_options), layer, script, thread_id=f"cache-{mode}"
                )
            finally:
                await layer.aclose(close_ledger=False)
    on, off = runs["on"], runs["off"]
    # The same conversation both times: same prompts, same token counts.
    assert [s.draft_prompt for s in on] == [s.draft_prompt for s in off]
    assert len({s.replica for s in on}) == 1
    assert len({s.replica for s in off}) >= 3
    assert cache_fraction(on) > 0.8
    assert cache_fraction(on) > cache_fraction(off) + 0.2
    assert cache_fraction(on, responder_only=False) > cache_fraction(off, responder_only=False)
    # With affinity every turn after the first finds the whole call so far cached.
    assert all(s.draft_cached >= s.draft_prompt - 200 for s in on[1:])


async def test_a_copied_folder_runs_on_its_own_knowledge_base(tmp_path, layer, ledger):
    """Users build apps by copying an example: the copy answers from its own articles."""
    copy = tmp_path / "my_support"
    source = Path(voice_support.__file__).parent
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "articles.md").write_text("## KB-1 | Opening hours\nWe are open 9 to 5.\n")
    app = load_app(str(copy))
    original = await run_graph(APP.build(), layer, "When are you open?")
    mine = await run_graph(app.build(), layer, "When are you open?", options=app.run_options())
    assert mine.status is QueryStatus.OK
    ledger.flush()
    prompts = [ledger.calls_for_query(r.query_id)[0] for r in (original, mine)]
    assert [p.agent_path for p in prompts] == ["responder", "responder"]
    # The copy's responder carries one article in its prompt instead of fourteen.
    assert prompts[1].usage.input_uncached + prompts[1].usage.input_cached < 400
    assert prompts[0].usage.input_uncached + prompts[0].usage.input_cached > 1000
