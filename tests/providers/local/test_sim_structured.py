"""Structured output: JSON Schema conformance and tool calls, via the real openai client."""

from __future__ import annotations

import datetime
import enum
import json
import random
from typing import Literal

import jsonschema
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from pydantic import BaseModel, Field

from spendgraph.providers.local.sim.schemagen import generate_instance
from spendgraph.providers.local.sim.server import run_simulator
from spendgraph.providers.tokens import count_chat, count_text

ASK = [{"role": "user", "content": "Summarise the visit and suggest billing codes."}]


class Severity(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Code(BaseModel):
    system: Literal["ICD-10", "CPT"]
    code: str = Field(pattern=r"^[A-Z]\d{2}(\.\d{1,4})?$")
    confidence: float = Field(ge=0, le=1)


class Finding(BaseModel):
    label: str = Field(min_length=3, max_length=20)
    severity: Severity
    codes: list[Code] = Field(min_length=1, max_length=3)
    note: str | None = None


class Section(BaseModel):
    title: str
    children: list[Section] = []


class Visit(BaseModel):
    patient_age: int = Field(ge=0, le=120)
    seen_at: datetime.datetime
    findings: list[Finding]
    primary: Finding
    outline: Section
    tags: set[str] = set()


SCHEMAS = {
    "object-enum-nested": {
        "type": "object",
        "properties": {
            "mood": {"enum": ["calm", "tense", "curious"]},
            "kind": {"const": "scene"},
            "place": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "floor": {"type": "integer"}},
                "required": ["name"],
                "additionalProperties": False,
            },
            "extra": {"type": "boolean"},
        },
        "required": ["mood", "kind", "place"],
        "additionalProperties": False,
    },
    "arrays": {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "ids": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 5},
                "minItems": 3,
                "uniqueItems": True,
            },
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]},
        },
        "required": ["steps", "ids", "pair"],
    },
    "unions-and-nullable": {
        "type": "object",
        "properties": {
            "answer": {"anyOf": [{"type": "string", "minLength": 5}, {"type": "null"}]},
            "score": {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}]},
            "maybe": {"type": ["integer", "null"], "multipleOf": 5},
        },
        "required": ["answer", "score", "maybe"],
    },
    "strings": {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "short": {"type": "string", "minLength": 2, "maxLength": 4},
            "long": {"type": "string", "minLength": 60},
        },
        "required": ["email", "when", "day", "id", "code", "short", "long"],
    },
    "numbers": {
        "type": "object",
        "properties": {
            "price": {"type": "number", "minimum": 0.5, "maximum": 0.6},
            "count": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
            "step": {"type": "number", "multipleOf": 0.1, "minimum": 1, "maximum": 2},
            "negative": {"type": "integer", "maximum": -50},
        },
        "required": ["price", "count", "step", "negative"],
    },
    "pydantic-visit": Visit.model_json_schema(),
    "top-level-array": {
        "type": "array",
        "items": {"$ref": "#/$defs/x"},
        "$defs": {"x": {"type": "integer"}},
    },
}
_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _assert_valid(instance, schema):
    validator = jsonschema.validators.validator_for(schema)
    validator(schema, format_checker=_FORMATS).validate(instance)


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("seed", range(25))
def test_generated_instances_validate(name, seed):
    _assert_valid(generate_instance(SCHEMAS[name], random.Random(seed)), SCHEMAS[name])


def _json_schema_format(name: str) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": name.replace("-", "_"), "schema": SCHEMAS[name]},
    }


@pytest.mark.parametrize("name", SCHEMAS)
def test_json_schema_response_validates(client, name):
    response = client.chat.completions.create(
        model="sim-large", messages=ASK, response_format=_json_schema_format(name)
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    _assert_valid(json.loads(choice.message.content), SCHEMAS[name])
    assert response.usage.completion_tokens == count_text(choice.message.content)


def test_pydantic_model_parses_streamed_json(client):
    stream = client.chat.completions.create(
        model="sim-large",
        messages=ASK,
        response_format=_json_schema_format("pydantic-visit"),
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    visit = Visit.model_validate_json(text)
    assert visit.findings is not None and 0 <= visit.patient_age <= 120


def test_json_object_mode_returns_an_object(client):
    response = client.chat.completions.create(
        model="sim-small", messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_truncated_json_reports_length(client):
    response = client.chat.completions.create(
        model="sim-large",
        messages=ASK,
        response_format=_json_schema_format("pydantic-visit"),
        max_tokens=5,
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_code",
        "parameters": Code.model_json_schema(),
    },
}
NO_PARAMS = {"type": "function", "function": {"name": "ping"}}
TOOLS = [WEATHER, LOOKUP, NO_PARAMS]
_PARAMS = {tool["function"]["name"]: tool["function"].get("parameters", {}) for tool in TOOLS}


def _check_call(name: str, arguments: str) -> None:
    _assert_valid(json.loads(arguments), _PARAMS[name])


NAMED = {"type": "function", "function": {"name": "lookup_code"}}


def _expected_calls(tools: list) -> range:
    """How many calls "required"/"auto" make (parallel_tool_calls not false): one with
    one tool, else min(len(tools), 2 + r) with r 0 or 1 -- see the simulator's README."""
    return range(1, 2) if len(tools) < 2 else range(2, min(len(tools), 3) + 1)


def _assert_calls(calls, tools: list = TOOLS) -> None:
    """Distinct ``call_`` ids, distinct offered functions, arguments valid for each."""
    names = [call.function.name for call in calls]
    ids = [call.id for call in calls]
    assert len(set(names)) == len(names) and set(names) <= {t["function"]["name"] for t in tools}
    assert len(set(ids)) == len(ids) and all(i.startswith("call_") for i in ids)
    assert all(call.type == "function" for call in calls)
    for call in calls:
        _check_call(call.function.name, call.function.arguments)


def _summary(response) -> list[tuple[str, str, str]]:
    return [
        (c.id, c.function.name, c.function.arguments)
        for c in response.choices[0].message.tool_calls
    ]


def _tokens_of(calls) -> int:
    return sum(count_text(c.function.name + c.function.arguments) for c in calls)


def test_required_makes_parallel_calls_of_distinct_tools(client):
    response = client.chat.completions.create(
        model="sim-large", messages=ASK, tools=TOOLS, tool_choice="required"
    )
    result = response.choices[0]
    assert result.finish_reason == "tool_calls" and result.message.content is None
    calls = result.message.tool_calls
    assert len(calls) in _expected_calls(TOOLS)
    _assert_calls(calls)
    usage = response.usage
    assert usage.prompt_tokens == count_chat(ASK, tools=TOOLS)
    assert usage.completion_tokens == _tokens_of(calls)


@pytest.mark.parametrize("parallel", [None, True, False], ids=["default", "true", "false"])
def test_named_tool_choice_makes_exactly_one_call(client, parallel):
    extra = {} if parallel is None else {"parallel_tool_calls": parallel}
    response = client.chat.completions.create(
        model="sim-large", messages=ASK, tools=TOOLS, tool_choice=NAMED, **extra
    )
    result = response.choices[0]
    assert result.finish_reason == "tool_calls" and result.message.content is None
    (call,) = result.message.tool_calls
    assert call.function.name == "lookup_code"
    _assert_calls([call])
    assert response.usage.completion_tokens == _tokens_of([call])


def _streamed(client, **kwargs):
    """(chunks, the completion openai's own accumulator builds from them)."""
    state = ChatCompletionStreamState()
    chunks = list(
        client.chat.completions.create(
            model="sim-large",
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs,
        )
    )
    for chunk in chunks:
        state.handle_chunk(chunk)
    return chunks, state.get_final_completion()


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool["function"]["name"])
def test_tool_call_streamed_in_openai_chunk_format(client, tool):
    name = tool["function"]["name"]
    chunks, final = _streamed(
        client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": name}}
    )
    head = chunks[0].choices[0].delta
    assert head.role == "assistant" and len(head.tool_calls) == 1
    assert head.tool_calls[0].id.startswith("call_")
    assert head.tool_calls[0].function.name == name and head.tool_calls[0].index == 0
    fragments = [
        chunk.choices[0].delta.tool_calls[0]
        for chunk in chunks[1:]
        if chunk.choices and chunk.choices[0].delta.tool_calls
    ]
    assert all(f.index == 0 and f.id is None for f in fragments)
    arguments = "".join(f.function.arguments for f in fragments)
    _check_call(name, arguments)
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage.completion_tokens == count_text(name + arguments)
    (call,) = final.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == (name, arguments)


def test_parallel_calls_stream_one_index_per_call(client):
    chunks, final = _streamed(client, tools=TOOLS, tool_choice="required")
    fragments = [
        fragment
        for chunk in chunks
        if chunk.choices
        for fragment in chunk.choices[0].delta.tool_calls or ()
    ]
    assert all(
        len(chunk.choices[0].delta.tool_calls or ()) <= 1 for chunk in chunks if chunk.choices
    )
    # OpenAI's shape: calls one after another, each opened by a fragment with its
    # index, id, type, name and empty arguments; then argument text under that index.
    openings = [i for i, f in enumerate(fragments) if f.id is not None]
    indices = [fragments[i].index for i in openings]
    assert indices == list(range(len(openings))) and len(openings) in _expected_calls(TOOLS)
    for position, f in enumerate(fragments):
        current = max(i for i in openings if i <= position)
        assert f.index == fragments[current].index
        if position == current:
            assert f.type == "function" and f.function.name and f.function.arguments == ""
        else:
            assert f.function.name is None and f.function.arguments
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    calls = final.choices[0].message.tool_calls
    _assert_calls(calls)
    assert chunks[-1].usage.completion_tokens == _tokens_of(calls)
    # The same answer as the non-streamed request (delivery never changes the content).
    whole = client.chat.completions.create(
        model="sim-large", messages=ASK, tools=TOOLS, tool_choice="required"
    )
    assert _summary(whole) == _summary(final)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("choice", ["required", "auto"])
def test_parallel_tool_calls_false_makes_one_call(client, choice, stream):
    kwargs = {"tools": TOOLS, "tool_choice": choice, "parallel_tool_calls": False}
    if stream:
        chunks, response = _streamed(client, **kwargs)
        assert {
            f.index for c in chunks if c.choices for f in c.choices[0].delta.tool_calls or ()
        } == {0}
    else:
        response = client.chat.completions.create(model="sim-large", messages=ASK, **kwargs)
    result = response.choices[0]
    assert result.finish_reason == "tool_calls"
    (call,) = result.message.tool_calls
    _assert_calls([call])
    assert response.usage.completion_tokens == _tokens_of([call])


def test_number_of_calls_follows_the_rule(client):
    """1 tool: one call; 2 tools: two; 3 tools: two or three (both occur), per request."""
    seen: dict[int, set[int]] = {1: set(), 2: set(), 3: set()}
    for index in range(8):
        messages = [{"role": "user", "content": f"Visit {index}: code the findings."}]
        for offered in (1, 2, 3):
            tools = TOOLS[:offered]
            reply = client.chat.completions.create(
                model="sim-small", messages=messages, tools=tools, tool_choice="required"
            )
            calls = reply.choices[0].message.tool_calls
            _assert_calls(calls, tools)
            seen[offered].add(len(calls))
    assert seen == {1: {1}, 2: {2}, 3: {2, 3}}


def test_tool_calls_are_deterministic(client, make_client):
    kwargs = {"model": "sim-large", "messages": ASK, "tools": TOOLS}
    first = _summary(client.chat.completions.create(**kwargs))
    assert len(first) in _expected_calls(TOOLS)
    # Same request and seed: same calls (ids included) on any replica, every time.
    assert _summary(client.chat.completions.create(**kwargs)) == first
    assert _summary(make_client("b200-nvfp4-1").chat.completions.create(**kwargs)) == first
    assert _summary(make_client(None).chat.completions.create(**kwargs)) == first  # fleet URL
    with run_simulator(time_scale=0.0, seed=1) as other:  # the server seed changes them
        reseeded = make_client(server=other).chat.completions.create(**kwargs)
    assert _summary(reseeded) != first
    _assert_calls(reseeded.choices[0].message.tool_calls)


def test_auto_makes_parallel_calls_then_answers_in_text(client):
    messages = list(ASK)
    replies = []
    for _ in range(3):  # an agent loop: it must end with a text answer
        reply = client.chat.completions.create(model="sim-large", messages=messages, tools=TOOLS)
        replies.append(reply)
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    calling, answering = replies  # one round of tool calls, then the answer
    calls = calling.choices[0].message.tool_calls
    assert calling.choices[0].finish_reason == "tool_calls"
    assert len(calls) in _expected_calls(TOOLS)
    _assert_calls(calls)
    assert len(messages) == 2 + len(calls)  # user, assistant, one tool message per call
    assert answering.choices[0].finish_reason == "stop"
    assert answering.choices[0].message.content and not answering.choices[0].message.tool_calls


def test_max_tokens_caps_all_calls_together(client):
    cut_in_a_later_call = False
    for limit in range(8, 40, 2):
        response = client.chat.completions.create(
            model="sim-large", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=limit
        )
        result = response.choices[0]
        calls = result.message.tool_calls
        assert response.usage.completion_tokens == _tokens_of(calls) <= limit
        assert result.finish_reason in ("length", "tool_calls")
        complete = calls if result.finish_reason == "tool_calls" else calls[:-1]
        _assert_calls(complete)  # every call but a cut last one is whole
        if result.finish_reason == "tool_calls":
            assert len(calls) in _expected_calls(TOOLS)
        cut_in_a_later_call |= result.finish_reason == "length" and len(calls) > 1
    assert cut_in_a_later_call


@pytest.mark.parametrize("stream", [False, True])
def test_auto_after_tool_result_and_none_answer_in_text(client, stream):
    after_tool = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "ping", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "pong"},
    ]
    for messages, choice in ((after_tool, "auto"), (ASK, "none")):
        result = client.chat.completions.create(
            model="sim-large", messages=messages, tools=TOOLS, tool_choice=choice, stream=stream
        )
        if stream:
            chunks = list(result)
            assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason == "stop"
        else:
            assert result.choices[0].message.tool_calls is None
            assert result.choices[0].message.content
