"""gpt-oss prompts in the harmony format, counted token by token.

gpt-oss is served through OpenAI's ``openai-harmony`` renderer, not a Jinja
template: vLLM turns an OpenAI chat request into harmony messages
(``vllm/entrypoints/harmony_utils.py``) and harmony renders them
(``src/encoding.rs``, v0.0.8). Both are followed here:

- a **system** message is always first: model identity, ``Knowledge cutoff:
  2024-06``, ``Current date:`` (today), ``Reasoning: medium``, and the valid
  channels -- ``analysis, final`` without tools, ``analysis, commentary, final``
  plus "Calls to these tools must go to the commentary channel: 'functions'." with;
- with tools, a **developer** message renders them as a TypeScript namespace
  (``# Tools`` / ``## functions`` / ``namespace functions {`` ...);
- each request message (vLLM's ``parse_chat_inputs_to_harmony_messages``):
  ``<|start|>ROLE<|message|>CONTENT<|end|>`` for user and system (a request's own
  system message stays a second system message); an assistant answer on the
  ``final`` channel (its ``reasoning`` on ``analysis``, dropped before the last
  final answer); an assistant tool call as
  ``<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>ARGS<|call|>``
  (text beside it on ``commentary``); a tool result as
  ``<|start|>functions.NAME to=assistant<|channel|>commentary<|message|>...<|end|>``,
  NAME found from its ``tool_call_id``;
- the generation prompt is ``<|start|>assistant``.

Earlier vLLM releases (harmony_utils' ``parse_chat_input``, 2025) sent assistant
answers without a channel and named tool results by the message's ``name``:
against those, multi-turn prompts count a few tokens high.

Harmony encodes each text piece on its own (``encode_ordinary``) between its
formatting tokens, so counting piece by piece is exact; tool schemas are
rendered as harmony's ``json_schema_to_typescript`` renders them (``oneOf``,
enums, defaults, titles, examples, nullable). **Approximate**: a request's
``reasoning_effort`` other than the default (``medium``), and media content parts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from spendgraph.providers.count_cache import CountCache, process_counts
from spendgraph.providers.templates import renders_fully
from spendgraph.providers.tokens import PromptCount, count_piece

ENCODING = "o200k_harmony"
MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
KNOWLEDGE_CUTOFF = "2024-06"


class Special(str):
    """A harmony formatting token: one token, never text (a message may contain its spelling)."""

    __slots__ = ()


START, END, MESSAGE = Special("<|start|>"), Special("<|end|>"), Special("<|message|>")
CHANNEL, CALL = Special("<|channel|>"), Special("<|call|>")

# A rendered prompt: formatting tokens and text pieces, each text piece encoded alone.
Pieces = list[str]


def system_text(has_tools: bool, today: str | None = None) -> str:
    """The system message harmony renders for vLLM's chat requests."""
    today = today or date.today().strftime("%Y-%m-%d")
    channels = "analysis, commentary, final" if has_tools else "analysis, final"
    header = f"# Valid channels: {channels}. Channel must be included for every message."
    if has_tools:
        header += "\nCalls to these tools must go to the commentary channel: 'functions'."
    top = f"{MODEL_IDENTITY}\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}\nCurrent date: {today}"
    return "\n\n".join((top, "Reasoning: medium", header))


def tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The developer message's tool section: the ``functions`` namespace."""
    lines = ["## functions\n", "namespace functions {\n"]
    for tool in tools:
        function = tool.get("function") or {}
        lines.extend(f"// {line}" for line in str(function.get("description") or "").splitlines())
        name, parameters = function.get("name", ""), function.get("parameters")
        if parameters is not None:
            lines.append(f"type {name} = (_: {typescript(parameters, '')}) => any;\n")
        else:
            lines.append(f"type {name} = () => any;\n")
    lines.append("} // namespace functions")
    return "# Tools\n\n" + "\n".join(lines)


def _json(value: Any) -> str:
    # serde_json's Display: compact, non-ASCII kept.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _default_comment(schema: Mapping[str, Any]) -> str:
    default = schema["default"]
    if isinstance(default, str):
        return f'default: "{default}"' if not schema.get("enum") else f"default: {default}"
    return f"default: {_json(default)}"


def _nullable(schema: Mapping[str, Any], rendered: str) -> str:
    if schema.get("nullable") is True and "null" not in rendered:
        return rendered + " | null"
    return rendered


def typescript(schema: Mapping[str, Any], indent: str) -> str:
    """harmony's ``json_schema_to_typescript`` for a tool's parameters."""
    if isinstance(schema.get("oneOf"), list):
        return _one_of(schema["oneOf"], indent)
    kind = schema.get("type")
    if isinstance(kind, list):
        names = ["number" if k == "integer" else k for k in kind if isinstance(k, str)]
        if names:
            return " | ".join(names)
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        values = [v for v in schema.get("enum") or () if isinstance(v, str)]
        return " | ".join(f'"{v}"' for v in values) if values else "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        items = schema.get("items")
        return typescript(items, indent) + "[]" if items is not None else "Array<any>"
    return "any"


def _one_of(variants: list[Any], indent: str) -> str:
    out = []
    for variant in variants:
        out.append(f"\n{indent} | " + _nullable(variant, typescript(variant, indent + "   ")))
        comments = [variant["description"]] if isinstance(variant.get("description"), str) else []
        if "default" in variant:
            comments.append(_default_comment(variant))
        if comments:
            out.append(" // " + " ".join(comments))
    return "".join(out)


def _object(schema: Mapping[str, Any], indent: str) -> str:
    out = (
        f"{indent}// {schema['description']}\n"
        if isinstance(schema.get("description"), str)
        else ""
    )
    out += "{\n"
    required = set(schema.get("required") or ())
    for key, value in (schema.get("properties") or {}).items():
        if isinstance(value.get("title"), str):
            out += f"{indent}// {value['title']}\n{indent}//\n"
        if "oneOf" not in value and isinstance(value.get("description"), str):
            out += f"{indent}// {value['description']}\n"
        examples = [e for e in value.get("examples") or () if isinstance(e, str)]
        if examples:
            out += f"{indent}// Examples:\n" + "".join(f'{indent}// - "{e}"\n' for e in examples)
        optional = "" if key in required else "?"
        if isinstance(value.get("oneOf"), list):
            out += _property_variants(key + optional, value, indent)
            continue
        rendered = _nullable(value, typescript(value, indent + "    "))
        default = f" // {_default_comment(value)}" if "default" in value else ""
        out += f"{indent}{key}{optional}: {rendered},{default}\n"
    return out + f"{indent}}}"


def _property_variants(name: str, schema: Mapping[str, Any], indent: str) -> str:
    """A property whose schema is a ``oneOf``: its comments, then one ``|`` line per variant."""
    variants = schema["oneOf"]
    described = schema.get("description") if isinstance(schema.get("description"), str) else None
    first = variants[0].get("description") if variants else None
    above = described is not None and described != first
    out = f"{indent}// {described}\n" if above else ""
    if "default" in schema:
        out += f"{indent}// {_default_comment(schema)}\n"
    out += f"{indent}{name}:\n"
    for index, variant in enumerate(variants):
        out += f"{indent} | " + _nullable(variant, typescript(variant, indent + "   "))
        comments = []
        own = variant.get("description")
        if not (index == 0 and above) and isinstance(own, str) and own != described:
            comments.append(own)
        if "default" in variant:
            comments.append(_default_comment(variant))
        out += (" // " + " ".join(comments) if comments else "") + "\n"
    return out + f"{indent},\n"


@dataclass(frozen=True, slots=True)
class Turn:
    """One harmony message: who wrote it, its header, and its text contents."""

    author: str  # a role, or a tool's name for tool output
    contents: tuple[str, ...]
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None

    def pieces(self) -> Pieces:
        """As harmony renders a message: header, ``<|message|>``, contents, end token."""
        pieces: Pieces = [START, self.author]
        if self.recipient is not None and self.recipient != "all":
            pieces.append(f" to={self.recipient}")
        if self.channel is not None:
            pieces += [CHANNEL, self.channel]
        if self.content_type is not None:
            pieces.append(f" {self.content_type}")
        ends_in_call = self.author == "assistant" and self.recipient is not None
        return [*pieces, MESSAGE, *self.contents, CALL if ends_in_call else END]


def _flat(content: Any) -> str:
    if isinstance(content, list | tuple):  # vLLM's flatten_chat_text_content
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return "" if content is None else str(content)


def _parts(content: Any) -> tuple[str, ...]:
    if isinstance(content, list | tuple):  # one TextContent per part, each encoded alone
        return tuple(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return (str(content or ""),)


def _turns(message: Mapping[str, Any], tool_names: Mapping[str, str]) -> list[Turn]:
    """vLLM's ``parse_chat_input_to_harmony_message`` for one chat message."""
    role, reasoning = str(message.get("role", "user")), message.get("reasoning")
    turns = []
    if role == "assistant" and message.get("tool_calls"):
        if content := _flat(message.get("content")):
            turns.append(Turn("assistant", (content,), channel="commentary"))
        if reasoning:
            turns.append(Turn("assistant", (str(reasoning),), channel="analysis"))
        for call in message["tool_calls"]:
            function = call.get("function") or {}
            name, arguments = str(function.get("name") or "").strip(), function.get("arguments")
            recipient = f"functions.{name}"
            turns.append(
                Turn("assistant", (str(arguments or ""),), "commentary", recipient, "json")
            )
        return turns
    if role == "tool":
        name = tool_names.get(str(message.get("tool_call_id", "")), "")
        contents = (_flat(message.get("content")),)
        return [Turn(f"functions.{name}", contents, channel="commentary", recipient="assistant")]
    if role == "assistant" and reasoning:
        turns.append(Turn("assistant", (str(reasoning),), channel="analysis"))
    contents = _parts(message.get("content"))
    if role != "assistant":
        turns.append(Turn(role, contents))
    elif contents and contents[0]:
        turns.append(Turn("assistant", contents, channel="final"))
    return turns


def conversation_turns(messages: Sequence[Mapping[str, Any]]) -> list[Turn]:
    """vLLM's ``parse_chat_inputs_to_harmony_messages``: every message, and analysis turns
    before the last final answer dropped."""
    tool_names = {
        str(call.get("id")): str((call.get("function") or {}).get("name") or "").strip()
        for message in messages
        for call in message.get("tool_calls") or ()
    }
    turns = [turn for message in messages for turn in _turns(message, tool_names)]
    finals = [i for i, t in enumerate(turns) if t.author == "assistant" and t.channel == "final"]
    last_final = finals[-1] if finals else -1
    return [t for i, t in enumerate(turns) if not (i < last_final and t.channel == "analysis")]


def render_pieces(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    today: str | None = None,
) -> Pieces:
    """The harmony prompt of a chat request, as formatting tokens and text pieces."""
    pieces: Pieces = [START, "system", MESSAGE, system_text(bool(tools), today), END]
    if tools:
        pieces += [START, "developer", MESSAGE, tools_text(tools), END]
    for turn in conversation_turns(messages):
        pieces += turn.pieces()
    return [*pieces, START, "assistant"]


def render(messages: Sequence[Mapping[str, Any]], tools=None, *, today: str | None = None) -> str:
    """The harmony prompt as one string (for reading; count with :func:`count_harmony`)."""
    return "".join(render_pieces(messages, tools, today=today))


def count_harmony(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    counts: CountCache | None = None,
) -> PromptCount:
    """The exact prompt tokens of a chat request to gpt-oss (text pieces' counts remembered
    in ``counts``, default the process's)."""
    counts = process_counts() if counts is None else counts
    total = sum(
        1 if isinstance(piece, Special) else count_piece(piece, ENCODING, counts)
        for piece in render_pieces(messages, tools)
    )
    return PromptCount(total, exact=renders_fully(messages))
