"""Parallel tool calls end to end: one model response asks for two tools, the turn runs
them concurrently, sends both results back and gets a text answer.

The simulator answers a request offering two tools ("auto", last message from the
user, parallel_tool_calls not false) with exactly two calls, one per tool.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from spendgraph.agents import (
    Agent,
    AgentFinished,
    AgentStarted,
    CallSpent,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnOptions,
    run_turn,
)
from spendgraph.providers.context import agent_scope
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.tokens import count_text

QUESTION = [{"role": "user", "content": "Code the visit: chart first, then the ICD-10 code."}]
# How long one tool waits for the other to start before it gives up (it never
# should: both run at once). Sequential execution would fail, not hang.
RENDEZVOUS_TIMEOUT_S = 5.0


def rendezvous_tools() -> tuple[list, list[str]]:
    """Two tools that each finish only once the other has started, and their timeline."""
    timeline: list[str] = []
    chart_started, code_started = asyncio.Event(), asyncio.Event()

    async def meet(name: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        timeline.append(f"start {name}")
        mine.set()
        await asyncio.wait_for(theirs.wait(), RENDEZVOUS_TIMEOUT_S)
        timeline.append(f"end {name}")

    async def fetch_chart(patient: str) -> str:
        """Fetch the chart of a patient.

        Args:
            patient: The patient's name or id.
        """
        await meet("fetch_chart", chart_started, code_started)
        return "chart: cough and sore throat for 3 days"

    async def lookup_code(term: str) -> str:
        """Look up the ICD-10 code for a diagnosis term.

        Args:
            term: The diagnosis, in words.
        """
        await meet("lookup_code", code_started, chart_started)
        return "J06.9"

    return [fetch_chart, lookup_code], timeline


def rows_of(ledger, query_id):
    ledger.flush()
    return ledger.calls_for_query(query_id)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_one_response_with_two_tool_calls_runs_them_concurrently(layer, ledger, stream):
    tools, timeline = rendezvous_tools()
    agent = Agent("coder", "Code the visit.", tools=tools)
    events = []
    async with layer.query(app="test") as scope:
        with agent_scope("supervisor"):
            result = await run_turn(
                layer, agent, QUESTION, TurnOptions(stream=stream, sink=events.append)
            )

    # One model response asked for both tools...
    assert result.model_calls == 2 and result.path == "supervisor/coder"
    asked, *tool_messages, answer = result.messages
    calls = asked["tool_calls"]
    assert sorted(c["function"]["name"] for c in calls) == ["fetch_chart", "lookup_code"]
    assert len({c["id"] for c in calls}) == 2 and asked["content"] is None
    assert all(isinstance(json.loads(c["function"]["arguments"]), dict) for c in calls)

    # ...both ran at once: each started before either ended (else a 5 s timeout error)...
    assert sorted(timeline[:2]) == ["start fetch_chart", "start lookup_code"]
    assert sorted(timeline[2:]) == ["end fetch_chart", "end lookup_code"]
    outcomes = {o.call.name: o for o in result.tool_outcomes}
    assert [o.call.id for o in result.tool_outcomes] == [c["id"] for c in calls]
    assert all(o.ok for o in result.tool_outcomes)
    assert outcomes["lookup_code"].content == "J06.9"
    assert outcomes["fetch_chart"].content.startswith("chart: cough")

    # ...their results went back as two tool messages, in call order, and the model answered.
    assert tool_messages == [
        {"role": "tool", "tool_call_id": o.call.id, "content": o.content}
        for o in result.tool_outcomes
    ]
    assert answer == {"role": "assistant", "content": result.content} and result.content
    assert result.finish_reason == "stop"

    # The ledger: two model calls, both under the agent's path; the first paid for both calls.
    rows = rows_of(ledger, scope.id)
    assert [r.agent_path for r in rows] == ["supervisor/coder"] * 2
    assert all(r.status is CallStatus.OK and r.stream is stream for r in rows)
    assert [r.id for r in rows] == [r.id for r in result.calls]
    first_call_tokens = sum(
        count_text(c["function"]["name"] + c["function"]["arguments"]) for c in calls
    )
    assert rows[0].usage.output == first_call_tokens
    assert rows[1].usage.prompt_tokens > rows[0].usage.prompt_tokens  # it saw both results

    kinds = [type(e) for e in events if not isinstance(e, TokenDelta)]
    assert kinds == [
        AgentStarted,
        CallSpent,
        ToolCallStarted,
        ToolCallStarted,
        ToolCallFinished,
        ToolCallFinished,
        CallSpent,
        AgentFinished,
    ]


async def test_sequential_tools_would_not_meet():
    """The rendezvous really needs concurrency: run one after the other, the first times out."""
    (fetch_chart, _), timeline = rendezvous_tools()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fetch_chart("Ann"), 0.05)
    assert timeline == ["start fetch_chart"]
