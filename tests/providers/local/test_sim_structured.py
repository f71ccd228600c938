"""Structured output: JSON Schema conformance and tool calls, via the real openai client."""

from __future__ import annotations

import datetime
import enum
import json
import random
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from spendgraph.providers.local.sim.schemagen import generate_instance
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


@pytest.mark.parametrize(
    "choice",
    ["required", {"type": "function", "function": {"name": "lookup_code"}}],
    ids=["required", "named"],
)
def test_tool_call_non_streamed(client, choice):
    response = client.chat.completions.create(
        model="sim-large", messages=ASK, tools=TOOLS, tool_choice=choice
    )
    result = response.choices[0]
    assert result.finish_reason == "tool_calls" and result.message.content is None
    (call,) = result.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    if isinstance(choice, dict):
        assert call.function.name == "lookup_code"
    _check_call(call.function.name, call.function.arguments)
    usage = response.usage
    assert usage.prompt_tokens == count_chat(ASK, tools=TOOLS)
    assert usage.completion_tokens == count_text(call.function.name + call.function.arguments)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool["function"]["name"])
def test_tool_call_streamed_in_openai_chunk_format(client, tool):
    name = tool["function"]["name"]
    chunks = list(
        client.chat.completions.create(
            model="sim-large",
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": name}},
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    head = chunks[0].choices[0].delta
    assert head.role == "assistant" and head.tool_calls[0].id.startswith("call_")
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


def test_auto_calls_a_tool_then_answers_in_text(client):
    messages = list(ASK)
    for _ in range(2):  # an agent loop: it must end with a text answer
        reply = client.chat.completions.create(model="sim-large", messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    assert len(messages) == 3, "auto should call exactly one tool, then answer"
    assert reply.choices[0].finish_reason == "stop" and message.content


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
