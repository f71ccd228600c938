"""Structured output: a pydantic model or JSON schema, sent as ``response_format``, parsed back."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import BaseModel

from spendgraph.agents.errors import AgentDefinitionError, AgentOutputError

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """What an agent's final message must be: ``model`` (pydantic) or a plain JSON ``schema``."""

    name: str
    schema: Mapping[str, Any] = field(hash=False)
    model: type[BaseModel] | None = None

    @classmethod
    def of(cls, spec: OutputSchema | type[BaseModel] | Mapping[str, Any]) -> OutputSchema:
        """Normalize a pydantic model class or a JSON schema dict."""
        if isinstance(spec, OutputSchema):
            return spec
        if isinstance(spec, type) and issubclass(spec, BaseModel):
            return cls(
                name=_schema_name(spec.__name__), schema=spec.model_json_schema(), model=spec
            )
        if isinstance(spec, Mapping):
            if spec.get("type") not in (None, "object") and "$ref" not in spec:
                raise AgentDefinitionError(
                    'an output JSON schema must describe an object ("type": "object")'
                )
            return cls(name=_schema_name(str(spec.get("title") or "output")), schema=dict(spec))
        raise AgentDefinitionError(
            "output must be a pydantic model class or a JSON schema dict, "
            f"not {type(spec).__name__}"
        )

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` of a request that must answer with this schema."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": True},
        }

    def parse(self, text: str, *, agent: str) -> Any:
        """The model instance (or JSON value) ``text`` holds; :class:`AgentOutputError` if none."""
        if self.model is not None:
            try:
                return self.model.model_validate_json(text)
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)
                )
                raise AgentOutputError(
                    f"output does not match {self.name}: {problems}", agent=agent, content=text
                ) from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise AgentOutputError(
                f"output is not JSON ({exc.msg} at position {exc.pos})", agent=agent, content=text
            ) from None

    @staticmethod
    def to_json(value: Any) -> Any:
        """A parsed value as plain JSON data (fit for graph state and checkpoints)."""
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value


def _schema_name(raw: str) -> str:
    return _NAME_CHARS.sub("_", raw)[:64] or "output"
