"""Plain Python functions exposed to models as OpenAI function tools.

A tool is a sync or async function with type hints and a docstring. Its JSON
schema comes from pydantic (a model created from the signature), never from
hand-written schema code; the docstring's first paragraph is the description
and a Google-style ``Args:`` section describes the parameters.

Running a tool never raises for the tool's own failures: unknown tools, bad
JSON, arguments that fail validation and exceptions inside the tool all come
back as a :class:`ToolOutcome` with ``ok=False`` and a message meant for the
model. Only cancellation and :class:`BudgetExceeded` (a tool that itself calls
a model and hits the query's budget) propagate.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict
from pydantic import Field as _Field

from spendgraph.agents.errors import AgentError, ToolDefinitionError
from spendgraph.providers.errors import BudgetExceeded

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A tool's answer is cut to this many characters before it goes back to the model.
MAX_RESULT_CHARS = 20_000
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$"
)


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its name, description, argument model and callable."""

    name: str
    description: str
    arguments: type[BaseModel] = field(compare=False)  # derived from ``function``
    function: Callable[..., Any]

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None) -> Tool:
        """Describe ``function`` as a tool; raises :class:`ToolDefinitionError` if it cannot be."""
        tool_name = name or getattr(function, "__name__", "")
        if not NAME_PATTERN.match(tool_name):
            raise ToolDefinitionError(
                f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        doc = inspect.getdoc(function)
        if not doc:
            raise ToolDefinitionError(
                f"tool {tool_name!r} needs a docstring: "
                "the model reads it to decide when to call the tool"
            )
        description, param_docs = _parse_docstring(doc)
        model = _arguments_model(function, tool_name, param_docs)
        return cls(name=tool_name, description=description, arguments=model, function=function)

    def openai_schema(self) -> dict[str, Any]:
        """The tool as an entry of the ``tools`` list of a chat completion request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": json.loads(_parameters_json(self.arguments)),
            },
        }

    async def invoke(self, arguments: str | None) -> str:
        """Validate ``arguments`` (JSON text), call the function, return its result as text.

        Raises :class:`ToolArgumentsError` for invalid arguments; anything the
        function raises propagates.
        """
        try:
            parsed = self.arguments.model_validate_json(arguments or "{}")
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(_describe_validation(exc)) from None
        kwargs = {field: getattr(parsed, field) for field in type(parsed).model_fields}
        if inspect.iscoroutinefunction(self.function):
            value = await self.function(**kwargs)
        else:
            value = await asyncio.to_thread(self.function, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        return result_text(value)


class ToolArgumentsError(AgentError, ValueError):
    """A tool call's arguments are not valid JSON or fail the tool's argument model."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for: its id, the tool's name and the raw JSON arguments."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call gave back; ``content`` is what the model sees."""

    call: ToolCall
    ok: bool
    content: str

    def message(self) -> dict[str, Any]:
        """The ``tool`` message that answers the call."""
        return {"role": "tool", "tool_call_id": self.call.id, "content": self.content}


def as_tools(items: Sequence[Tool | Callable[..., Any]]) -> tuple[Tool, ...]:
    """Tools from tools or plain functions; raises on a duplicate name."""
    tools = tuple(item if isinstance(item, Tool) else Tool.from_function(item) for item in items)
    seen: set[str] = set()
    for item in tools:
        if item.name in seen:
            raise ToolDefinitionError(f"two tools are named {item.name!r}")
        seen.add(item.name)
    return tools


async def run_tool_calls(
    tools: Sequence[Tool],
    calls: Sequence[ToolCall],
    *,
    on_start: Callable[[ToolCall], None] | None = None,
    on_finish: Callable[[ToolOutcome], None] | None = None,
    traced: Callable[[ToolCall], AbstractContextManager[Any]] | None = None,
) -> list[ToolOutcome]:
    """Run ``calls`` concurrently and return their outcomes in call order.

    Every call runs to completion even if a sibling fails; a
    :class:`BudgetExceeded` from any of them is re-raised after all finished.
    ``traced(call)`` is entered around each call (its span, current while the tool
    runs) and is told the outcome with ``finish(ok, content)``.
    """
    by_name = {tool.name: tool for tool in tools}

    async def one(call: ToolCall) -> ToolOutcome:
        if on_start is not None:
            on_start(call)
        if traced is None:
            outcome = await _run_one(by_name, call)
        else:
            with traced(call) as span:
                outcome = await _run_one(by_name, call)
                span.finish(outcome.ok, outcome.content)
        if on_finish is not None:
            on_finish(outcome)
        return outcome

    results = await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return typing.cast(list[ToolOutcome], results)


async def _run_one(by_name: Mapping[str, Tool], call: ToolCall) -> ToolOutcome:
    tool = by_name.get(call.name)
    if tool is None:
        available = ", ".join(sorted(by_name)) or "none"
        return ToolOutcome(
            call, False, f"error: there is no tool named {call.name!r} (available: {available})"
        )
    try:
        content = await tool.invoke(call.arguments)
    except ToolArgumentsError as exc:
        return ToolOutcome(call, False, f"error: invalid arguments for {call.name!r}: {exc}")
    except BudgetExceeded:
        raise
    except Exception as exc:
        return ToolOutcome(call, False, f"error: {call.name!r} failed: {type(exc).__name__}: {exc}")
    return ToolOutcome(call, True, content)


def result_text(value: Any) -> str:
    """A tool's return value as the text the model reads (JSON for anything but str)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        try:
            text = pydantic_core.to_json(value).decode()
        except pydantic_core.PydanticSerializationError:
            text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [cut at {MAX_RESULT_CHARS} characters]"
    return text


def _arguments_model(
    function: Callable[..., Any], tool_name: str, param_docs: Mapping[str, str]
) -> type[BaseModel]:
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot read its signature: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {tool_name!r}: *args/**kwargs cannot be described to a model; "
                "name every parameter"
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {param.name!r} needs a type hint"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            hints[param.name],
            _Field(default, description=param_docs.get(param.name)),
        )
    model_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name)) + "Arguments"
    try:
        return pydantic.create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
    except (TypeError, pydantic.PydanticSchemaGenerationError) as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: unsupported parameter type: {exc}") from exc


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before any section) and the ``Args:`` entries of a docstring."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1), None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            entry = _ARG_LINE.match(line)
            if entry and not line.startswith((" " * 8, "\t\t")):
                current = entry.group(1).lstrip("*")
                params[current] = entry.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    text = "\n".join(description).strip()
    return text.split("\n\n")[0].strip() if text else "", params


def _describe_validation(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def parse_tool_calls(raw_calls: Sequence[Any] | None) -> list[ToolCall]:
    """``ToolCall``s from an openai message's ``tool_calls`` (objects or dicts)."""
    calls = []
    for raw in raw_calls or ():
        data = raw if isinstance(raw, Mapping) else raw.model_dump()
        function = data.get("function") or {}
        calls.append(
            ToolCall(
                id=str(data.get("id") or ""),
                name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or ""),
            )
        )
    return calls


def tool_calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The ``tool_calls`` field of the assistant message that asked for ``calls``."""
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


__all__ = [
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolOutcome",
    "as_tools",
    "parse_tool_calls",
    "result_text",
    "run_tool_calls",
    "tool_calls_json",
]


@functools.lru_cache(maxsize=512)
def _parameters_json(arguments: type[BaseModel]) -> str:
    # pydantic builds a model's JSON schema in about a millisecond, on every request
    # of a voice turn otherwise; the text is cached and each request gets its own
    # copy (json.loads), so nothing downstream can alter the cached schema.
    parameters = arguments.model_json_schema()
    parameters.pop("title", None)
    return json.dumps(parameters)
