"""Output schemas: sent as response_format json_schema, parsed back into objects."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from spendgraph.agents import AgentOutputError, OutputSchema


class Finding(BaseModel):
    code: str
    confidence: float


class Report(BaseModel):
    findings: list[Finding]


def test_pydantic_models_parse_into_instances():
    schema = OutputSchema.of(Report)
    value = schema.parse('{"findings": [{"code": "J06.9", "confidence": 0.9}]}', agent="coder")
    assert value == Report(findings=[Finding(code="J06.9", confidence=0.9)])
    assert OutputSchema.to_json(value) == {"findings": [{"code": "J06.9", "confidence": 0.9}]}
    assert "$defs" in schema.response_format()["json_schema"]["schema"]


def test_json_schemas_parse_into_plain_values():
    schema = OutputSchema.of({"title": "My Thing!", "type": "object"})
    assert schema.name == "My_Thing_"
    assert schema.parse('{"a": 1}', agent="x") == {"a": 1}


@pytest.mark.parametrize(
    ("spec", "text", "message"),
    [
        (Report, '{"findings": [{"code": "x"}]}', "findings.0.confidence: Field required"),
        (Report, '{"findings": [', "output does not match Report"),
        ({"type": "object"}, "not json", "output is not JSON"),
    ],
)
def test_unparseable_output_raises_without_echoing_it(spec, text, message):
    with pytest.raises(AgentOutputError, match=message) as caught:
        OutputSchema.of(spec).parse(text, agent="coder")
    assert caught.value.agent == "coder" and caught.value.content == text
    assert text not in str(caught.value)
