"""Chat completion requests: validated into a frozen value, or a 400 naming the field."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from spendgraph.providers.local.sim.apierror import bad_request

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Fields that change how a response is delivered, not what it says: a streamed
# and a non-streamed request with the same content get the same answer.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options"})


@dataclass(frozen=True)
class ToolSpec:
    """One function tool offered to the model."""

    name: str
    parameters: Any


@dataclass(frozen=True)
class ChatRequest:
    """A validated ``/chat/completions`` request."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    request_hash: str
    stream: bool = False
    include_usage: bool = False
    # As sent (None: absent); a dialect decides what its keys mean.
    stream_options: Mapping[str, Any] | None = None
    max_tokens: int | None = None
    format_kind: str = "text"  # "text" | "json_object" | "json_schema"
    schema: Any = None
    tools: tuple[ToolSpec, ...] = ()
    raw_tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str = "auto"  # "none" | "auto" | "required" | "function"
    tool_name: str | None = None
    parallel_tool_calls: bool = True

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (for echoing topic words)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    return " ".join(
                        str(p.get("text", "")) for p in content if isinstance(p, Mapping)
                    )
                return str(content or "")
        return ""


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)"
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def request_hash(body: Mapping[str, Any]) -> str:
    """A stable hash of the request's content (delivery options excluded)."""
    canonical = {k: v for k, v in body.items() if k not in _DELIVERY_FIELDS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """Validate a chat completion body; raise :class:`ApiError` (400) on the first problem."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", param="model")
    messages = validate_messages(body.get("messages"))
    stream = _stream(body)
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        raise bad_request("Only n=1 is supported by the simulator.", param="n")
    format_kind, schema = _response_format(body.get("response_format"))
    tools, raw_tools = _tools(body.get("tools"))
    tool_choice, tool_name = _tool_choice(body.get("tool_choice"), tools)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be a boolean.", param="parallel_tool_calls")
    raw_options = body.get("stream_options")
    options = raw_options or {}
    return ChatRequest(
        model=model,
        messages=messages,
        request_hash=request_hash(body),
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        stream_options=raw_options,
        max_tokens=_max_tokens(body),
        format_kind=format_kind,
        schema=schema,
        tools=tools,
        raw_tools=raw_tools,
        tool_choice=tool_choice,
        tool_name=tool_name,
        parallel_tool_calls=parallel is not False,
    )


def validate_messages(messages: Any) -> tuple[Mapping[str, Any], ...]:
    """The messages of a request, checked for shape; a 400 naming the first bad one."""
    if messages is None:
        raise bad_request("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list):
        raise bad_request("'messages' must be an array of message objects.", param="messages")
    if not messages:
        raise bad_request("'messages' must contain at least one message.", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object.", param=where)
        role = message.get("role")
        if role is None:
            raise bad_request(f"Missing required parameter: '{where}.role'.", param=f"{where}.role")
        if role not in _ROLES:
            raise bad_request(
                f"Invalid value: {role!r}. Supported values are: {sorted(_ROLES)}.",
                param=f"{where}.role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad_request(
                f"{where}.content must be a string or an array.", param=f"{where}.content"
            )
        if content is None and role != "assistant":
            raise bad_request(
                f"Missing required parameter: '{where}.content'.", param=f"{where}.content"
            )
    return tuple(messages)


def _stream(body: Mapping[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise bad_request("'stream_options' must be an object.", param="stream_options")
    return bool(stream)


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {value!r} instead.",
                param=name,
                code="integer_below_min_value",
            )
        return value
    return None


def check_schema(schema: Any, param: str) -> None:
    """400 unless ``schema`` is a valid JSON Schema (checked against its meta-schema)."""
    if not isinstance(schema, (dict, bool)):
        raise bad_request("The schema must be a JSON object.", param=param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise bad_request(
            f"Invalid schema: {exc.message}", param=param, code="invalid_schema"
        ) from None


def _response_format(value: Any) -> tuple[str, Any]:
    if value is None:
        return "text", None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return kind, None
    if kind != "json_schema":
        raise bad_request(
            "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="response_format",
        )
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or "schema" not in spec:
        raise bad_request(
            "Missing required parameter: 'response_format.json_schema.schema'.",
            param="response_format.json_schema",
        )
    check_schema(spec["schema"], "response_format.json_schema.schema")
    return kind, spec["schema"]


def _tools(value: Any) -> tuple[tuple[ToolSpec, ...], tuple[Mapping[str, Any], ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, list):
        raise bad_request("'tools' must be an array.", param="tools")
    specs = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise bad_request(
                f"{where} must be {{'type': 'function', 'function': {{...}}}}.", param=where
            )
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise bad_request(
                f"Invalid '{where}.function.name': must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                param=f"{where}.function.name",
            )
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        check_schema(parameters, f"{where}.function.parameters")
        specs.append(ToolSpec(name=name, parameters=parameters))
    return tuple(specs), tuple(value)


def _tool_choice(value: Any, tools: tuple[ToolSpec, ...]) -> tuple[str, str | None]:
    if value is None:
        return ("auto" if tools else "none"), None
    if value in ("none", "auto", "required"):
        if value == "required" and not tools:
            raise bad_request(
                "tool_choice 'required' needs at least one tool.", param="tool_choice"
            )
        return value, None
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise bad_request(
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}.",
            param="tool_choice",
        )
    if name not in {tool.name for tool in tools}:
        raise bad_request(
            f"Tool choice {name!r} is not one of the tools offered.", param="tool_choice"
        )
    return "function", name
