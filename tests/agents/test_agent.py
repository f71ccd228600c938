"""The Agent definition: validated at construction, turned into chat requests."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from spendgraph.agents import Agent, AgentDefinitionError, OutputSchema, Tool


class Note(BaseModel):
    summary: str


def lookup(code: str) -> str:
    """Look up a code."""
    return code


def test_functions_become_tools_and_models_become_schemas():
    agent = Agent("coder", "Suggest codes.", tools=[lookup], output=Note)
    assert isinstance(agent.tools, tuple) and isinstance(agent.tools[0], Tool)
    assert agent.schema == OutputSchema.of(Note)
    assert hash(agent) == hash(Agent("coder", "Suggest codes.", tools=[lookup], output=Note))


def test_request_carries_the_agent_settings():
    agent = Agent(
        "voice",
        "Answer fast.",
        model="fast",
        tools=[lookup],
        output=Note,
        max_tokens=50,
        temperature=0.2,
        latency_target_ms=400,
    )
    request = agent.request([{"role": "user", "content": "hi"}])
    assert request.model == "fast" and request.max_tokens == 50 and request.temperature == 0.2
    assert request.latency_target_ms == 400
    assert request.tools[0]["function"]["name"] == "lookup" and request.tool_choice == "auto"
    assert request.response_format["json_schema"]["name"] == "Note"
    assert request.response_format["json_schema"]["strict"] is True
    bare = agent.request([], allow_tools=False)
    assert bare.tools is None and bare.tool_choice is None


def test_replace_validates_again():
    agent = Agent("a", "x")
    assert agent.replace(output=Note).schema.model is Note
    with pytest.raises(AgentDefinitionError, match="max_steps"):
        agent.replace(max_steps=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "has space"}, "must be 1-64 letters"),
        ({"name": "a/b"}, "must be 1-64 letters"),
        ({"name": ""}, "must be 1-64 letters"),
        ({"instructions": None}, "instructions must be a string"),
        ({"model": ""}, "model"),
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"temperature": 3}, "temperature must be between 0 and 2"),
        ({"latency_target_ms": 0}, "latency_target_ms must be positive"),
        ({"max_steps": 0}, "max_steps must be at least 1"),
        ({"output": "json please"}, "pydantic model class or a JSON schema"),
        ({"output": {"type": "array"}}, "must describe an object"),
        ({"tools": [lookup, lookup]}, "two tools are named 'lookup'"),
    ],
)
def test_bad_definitions_fail_at_construction(kwargs, message):
    fields = {"name": "agent", "instructions": "Do things.", **kwargs}
    with pytest.raises(AgentDefinitionError, match=message):
        Agent(**fields)
