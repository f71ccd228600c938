"""Tools: schemas derived from signatures, and calls that never crash the agent."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, BaseModel

from spendgraph.agents.errors import ToolDefinitionError
from spendgraph.agents.tools import (
    MAX_RESULT_CHARS,
    Tool,
    ToolCall,
    as_tools,
    parse_tool_calls,
    result_text,
    run_tool_calls,
)
from spendgraph.providers.errors import BudgetExceeded


class Address(BaseModel):
    city: str
    zip_code: str | None = None


def lookup_code(code: str, system: Literal["icd10", "cpt"] = "icd10", limit: int = 3) -> str:
    """Look up a billing code in the local table.

    Longer explanation that is not part of the description.

    Args:
        code: The code to look up,
            e.g. J06.9.
        system: Which code system.
        limit: How many matches at most.

    Returns:
        The matching entries.
    """
    return f"{system}:{code}:{limit}"


async def ship(address: Address, items: list[str]) -> dict:
    """Ship items to an address."""
    return {"to": address.city, "count": len(items)}


def test_schema_comes_from_the_signature_and_docstring():
    spec = Tool.from_function(lookup_code).openai_schema()
    function = spec["function"]
    assert spec["type"] == "function" and function["name"] == "lookup_code"
    assert function["description"] == "Look up a billing code in the local table."
    params = function["parameters"]
    assert params["required"] == ["code"]
    assert params["additionalProperties"] is False
    assert params["properties"]["system"]["enum"] == ["icd10", "cpt"]
    assert params["properties"]["limit"]["default"] == 3
    assert params["properties"]["code"]["description"] == "The code to look up, e.g. J06.9."


def test_nested_models_become_defs():
    params = Tool.from_function(ship).openai_schema()["function"]["parameters"]
    assert params["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert "Address" in params["$defs"]


async def test_sync_and_async_tools_are_called_with_validated_arguments():
    outcomes = await run_tool_calls(
        as_tools([lookup_code, ship]),
        [
            ToolCall("1", "lookup_code", '{"code": "J06.9", "limit": 1}'),
            ToolCall("2", "ship", '{"address": {"city": "Oslo"}, "items": ["a", "b"]}'),
        ],
    )
    assert [o.ok for o in outcomes] == [True, True]
    assert outcomes[0].content == "icd10:J06.9:1"
    assert json.loads(outcomes[1].content) == {"to": "Oslo", "count": 2}
    assert outcomes[1].message() == {
        "role": "tool",
        "tool_call_id": "2",
        "content": outcomes[1].content,
    }


def _negative(value: int) -> int:
    if value >= 0:
        raise ValueError("must be negative")
    return value


def _bad_arguments_tool(count: Annotated[int, AfterValidator(_negative)]) -> int:
    """A tool whose validator rejects what its JSON schema allows."""
    return count


def boom(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"broken: {reason}")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (ToolCall("1", "nope", "{}"), "no tool named 'nope' (available: boom, lookup_code)"),
        (ToolCall("1", "lookup_code", "{not json"), "invalid arguments for 'lookup_code'"),
        (ToolCall("1", "lookup_code", '{"limit": 2}'), "code: Field required"),
        (ToolCall("1", "lookup_code", '{"code": "x", "extra": 1}'), "extra: Extra inputs"),
        (ToolCall("1", "lookup_code", '{"code": "x", "system": "abc"}'), "system: Input should be"),
        (ToolCall("1", "boom", '{"reason": "disk"}'), "'boom' failed: RuntimeError: broken: disk"),
    ],
    ids=["unknown", "bad-json", "missing", "extra", "enum", "raises"],
)
async def test_failures_come_back_as_messages(call, expected):
    (outcome,) = await run_tool_calls(as_tools([lookup_code, boom]), [call])
    assert not outcome.ok
    assert outcome.content.startswith("error: ")
    assert expected in outcome.content


async def test_calls_run_concurrently_and_keep_their_order():
    """Each tool waits for the other: only concurrent execution can finish."""
    first, second = asyncio.Event(), asyncio.Event()

    async def ping(n: int) -> str:
        """Set one event, wait for the other."""
        (first if n == 1 else second).set()
        await asyncio.wait_for((second if n == 1 else first).wait(), timeout=5)
        return f"pong {n}"

    started, finished = [], []
    outcomes = await run_tool_calls(
        as_tools([ping]),
        [ToolCall("a", "ping", '{"n": 1}'), ToolCall("b", "ping", '{"n": 2}')],
        on_start=lambda call: started.append(call.id),
        on_finish=lambda outcome: finished.append(outcome.call.id),
    )
    assert [o.content for o in outcomes] == ["pong 1", "pong 2"]
    assert started == ["a", "b"] and sorted(finished) == ["a", "b"]


async def test_a_failing_call_does_not_stop_its_siblings():
    outcomes = await run_tool_calls(
        as_tools([lookup_code, boom]),
        [ToolCall("1", "boom", '{"reason": "x"}'), ToolCall("2", "lookup_code", '{"code": "A"}')],
    )
    assert [o.ok for o in outcomes] == [False, True]


async def test_budget_refusal_inside_a_tool_propagates_after_siblings_finish():
    done = []

    async def spend(n: int) -> str:
        """A tool that itself calls a model."""
        if n == 1:
            raise BudgetExceeded("no budget left")
        await asyncio.sleep(0)
        done.append(n)
        return "ok"

    with pytest.raises(BudgetExceeded):
        await run_tool_calls(
            as_tools([spend]),
            [ToolCall("1", "spend", '{"n": 1}'), ToolCall("2", "spend", '{"n": 2}')],
        )
    assert done == [2]


async def test_arguments_failing_a_validator_are_reported():
    tool = Tool.from_function(_bad_arguments_tool, name="count_up")
    (outcome,) = await run_tool_calls([tool], [ToolCall("1", "count_up", '{"count": 5}')])
    assert not outcome.ok
    assert (
        outcome.content
        == "error: invalid arguments for 'count_up': count: Value error, must be negative"
    )


def _no_doc(x: int) -> int:
    return x


def _no_hint(x) -> int:
    """Doc."""
    return x


def _varargs(*values: int) -> int:
    """Doc."""
    return 0


@pytest.mark.parametrize(
    ("function", "name", "message"),
    [
        (_no_doc, None, "needs a docstring"),
        (_no_hint, None, "parameter 'x' needs a type hint"),
        (_varargs, None, "*args/**kwargs"),
        (lookup_code, "bad name!", "must be 1-64 letters"),
        (lambda: 1, None, "must be 1-64 letters"),
    ],
    ids=["no-doc", "no-hint", "varargs", "bad-name", "lambda"],
)
def test_functions_that_cannot_be_tools_are_refused(function, name, message):
    with pytest.raises(ToolDefinitionError, match=message.replace("*", r"\*")):
        Tool.from_function(function, name=name)


def test_duplicate_tool_names_are_refused():
    with pytest.raises(ToolDefinitionError, match="two tools are named 'lookup_code'"):
        as_tools([lookup_code, Tool.from_function(lookup_code)])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ({"a": 1}, '{"a":1}'),
        (Address(city="X"), '{"city":"X","zip_code":null}'),
        ([1, 2], "[1,2]"),
        (None, "null"),
    ],
)
def test_results_become_text(value, text):
    assert result_text(value) == text


def test_long_results_are_cut():
    assert len(result_text("x" * (MAX_RESULT_CHARS * 2))) < MAX_RESULT_CHARS + 100


def test_tool_calls_are_read_from_dicts():
    raw = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert parse_tool_calls(raw) == [ToolCall("c1", "f", "{}")]
