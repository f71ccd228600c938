"""One agent turn against the fleet simulator: the tool loop, attribution, streaming, output."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel

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
from spendgraph.providers.errors import BudgetExceeded
from spendgraph.providers.ledger.records import CallStatus

QUESTION = [{"role": "user", "content": "What is the code for a common cold?"}]


def lookup_code(term: str) -> str:
    """Look up the ICD-10 code for a diagnosis term."""
    return f"J06.9 ({term})"


def broken_lookup(term: str) -> str:
    """Look up a code (the table is unavailable)."""
    raise ConnectionError("code table offline")


def must_be_known(term: str) -> str:
    raise ValueError(f"unknown term {term!r}")


def strict_lookup(term: Annotated[str, AfterValidator(must_be_known)]) -> str:
    """Look up a code for a known term (a validator the JSON schema cannot express)."""
    return term


class Codes(BaseModel):
    codes: list[str]
    rationale: str


def rows_of(ledger, query_id):
    ledger.flush()
    return ledger.calls_for_query(query_id)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_tool_loop_runs_the_tool_and_answers(layer, ledger, stream):
    agent = Agent("coder", "Suggest billing codes.", tools=[lookup_code], max_tokens=40)
    events = []
    async with layer.query(app="test") as scope:
        with agent_scope("supervisor"):
            result = await run_turn(
                layer, agent, QUESTION, TurnOptions(stream=stream, sink=events.append)
            )
    assert result.model_calls == 2 and result.path == "supervisor/coder"
    assistant_call, tool_message, answer = result.messages
    assert assistant_call["tool_calls"][0]["function"]["name"] == "lookup_code"
    assert tool_message["role"] == "tool" and tool_message["content"].startswith("J06.9")
    assert tool_message["tool_call_id"] == assistant_call["tool_calls"][0]["id"]
    assert answer == {"role": "assistant", "content": result.content} and result.content
    rows = rows_of(ledger, scope.id)
    assert [r.agent_path for r in rows] == ["supervisor/coder"] * 2
    assert all(r.status is CallStatus.OK and r.stream is stream for r in rows)
    assert [r.id for r in rows] == [r.id for r in result.calls]
    kinds = [type(e) for e in events if not isinstance(e, TokenDelta)]
    assert kinds == [
        AgentStarted,
        CallSpent,
        ToolCallStarted,
        ToolCallFinished,
        CallSpent,
        AgentFinished,
    ]
    deltas = "".join(e.text for e in events if isinstance(e, TokenDelta))
    assert deltas == (result.content if stream else "")


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        (broken_lookup, "error: 'broken_lookup' failed: ConnectionError: code table offline"),
        (strict_lookup, "error: invalid arguments for 'strict_lookup': term: Value error"),
    ],
    ids=["tool-raises", "invalid-arguments"],
)
async def test_tool_failures_go_back_to_the_model(layer, ledger, tool, expected):
    agent = Agent("coder", "Suggest codes.", tools=[tool], max_tokens=30)
    async with layer.query(store_text=True) as scope:
        result = await run_turn(layer, agent, QUESTION)
    (outcome,) = result.tool_outcomes
    assert not outcome.ok and outcome.content.startswith(expected)
    assert result.model_calls == 2 and result.content
    second = rows_of(ledger, scope.id)[1]
    assert expected in second.prompt_text  # the model saw the error


async def test_structured_output_is_parsed_into_the_model(layer):
    agent = Agent("coder", "Answer with codes.", output=Codes, max_tokens=120)
    async with layer.query():
        result = await run_turn(layer, agent, QUESTION)
    assert isinstance(result.parsed, Codes)
    assert result.parsed == Codes.model_validate_json(result.content)


async def test_tools_and_structured_output_together(layer):
    agent = Agent("coder", "Answer with codes.", tools=[lookup_code], output=Codes, max_tokens=120)
    async with layer.query():
        result = await run_turn(layer, agent, QUESTION)
    assert result.model_calls == 2 and isinstance(result.parsed, Codes)


async def test_the_last_allowed_step_offers_no_tools(layer, ledger):
    agent = Agent("coder", "Suggest codes.", tools=[lookup_code], max_steps=1, max_tokens=20)
    async with layer.query() as scope:
        result = await run_turn(layer, agent, QUESTION)
    assert result.model_calls == 1 and not result.tool_outcomes and result.content
    assert len(rows_of(ledger, scope.id)) == 1


async def test_a_budget_refusal_propagates_and_is_recorded(layer, ledger):
    agent = Agent("coder", "Suggest codes.", max_tokens=500)
    async with layer.query(budget_tokens=100) as scope:
        with pytest.raises(BudgetExceeded):
            await run_turn(layer, agent, QUESTION)
        scope.status = None  # the exception was handled here
    (row,) = rows_of(ledger, scope.id)
    assert row.status is CallStatus.BUDGET_DENIED and row.agent_path == "coder"
