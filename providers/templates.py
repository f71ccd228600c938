"""The chat templates of the model families self-hosters run, rendered in Python.

Counting a prompt exactly means rendering what the server tokenizes: the
template's framing per message, the generation prompt, and what the template
inserts by itself (a default system prompt, a knowledge-cutoff date, tool
instructions). Each renderer follows the family's published template line by
line, as vLLM applies it to an OpenAI request:

- **Llama 3** (``llama3``): Meta-Llama-3-Instruct's template -- ``<|begin_of_text|>``,
  then ``<|start_header_id|>ROLE<|end_header_id|>\\n\\n`` + trimmed content +
  ``<|eot_id|>`` per message. No system message is added, tools are ignored.
- **Llama 3.1 / 3.3** (``llama3.1``) and **3.2** (``llama3.2``): a system message
  is always rendered first, with ``Cutting Knowledge Date: December 2023`` and
  ``Today Date:`` lines ("26 Jul 2024" fixed in 3.1/3.3; today, ``%d %b %Y``, in
  3.2); the request's system message follows them. With tools: ``Environment:
  ipython``, and the tools as indented JSON in the first user message; a tool
  call as ``{"name": ..., "parameters": ...}``; a tool result under the
  ``ipython`` role, JSON-quoted (the template's ``is iterable`` test is true for
  a string).
- **Qwen2.5** (``qwen2.5``): ChatML (``<|im_start|>ROLE\\n ... <|im_end|>\\n``) with
  the default system prompt "You are Qwen, created by Alibaba Cloud. You are a
  helpful assistant." when the first message is not a system message; tools in
  a ``<tools>`` block of the system message; tool calls in ``<tool_call>`` and
  results in ``<tool_response>`` blocks of a user turn.
- **Qwen3** (``qwen3``): the same ChatML without a default system prompt;
  earlier turns' ``<think>`` blocks are dropped, assistant turns after the last
  user query keep ``reasoning_content``.

vLLM passes tool-call arguments to templates as parsed JSON (re-serialized by
``tojson``: ``json.dumps(..., ensure_ascii=False)``) and tools in its own shape
(``type``, ``function`` with ``name``, ``description``, ``parameters``; an
absent field is ``null``); both are reproduced here. Content given as parts
contributes its text parts joined by newlines, as vLLM flattens them.
**Approximate**: image or audio parts (what an encoder makes of them is not
text); a tool whose schema carries fields vLLM's request model drops; Llama
3.1's built-in tools (``builtin_tools``) and template kwargs a request may set
(``enable_thinking``, ``tools_in_user_message``, ``date_string``).

gpt-oss renders with harmony, not a Jinja template: :mod:`.harmony`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from spendgraph.providers.count_cache import CountCache
from spendgraph.providers.tokens import FAMILY_ENCODINGS, PromptCount, count_rendered

Messages = Sequence[Mapping[str, Any]]
Tools = Sequence[Mapping[str, Any]] | None

QWEN25_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
LLAMA31_DATE = "26 Jul 2024"
_LLAMA_HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"
_LLAMA_TOOLS_PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call "
    "with its proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument '
    "name and its value}.Do not use variables.\n\n"
)
_QWEN_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_QWEN_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def tojson(value: Any, indent: int | None = None) -> str:
    """Jinja's ``tojson`` as Hugging Face templates define it."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def text_of(content: Any) -> str:
    """A message's content as vLLM hands it to a string template."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return str(content)


def renders_fully(messages: Messages) -> bool:
    """Whether every part of every message is text (media parts are not counted)."""
    return all(_text_only(message.get("content")) for message in messages)


def _text_only(content: Any) -> bool:
    if not isinstance(content, list | tuple):
        return True
    return all(isinstance(p, Mapping) and p.get("type", "text") == "text" for p in content)


def vllm_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A tool as vLLM's request model dumps it for a template."""
    function = tool.get("function") or {}
    return {
        "type": tool.get("type", "function"),
        "function": {
            "name": function.get("name"),
            "description": function.get("description"),
            "parameters": function.get("parameters"),
        },
    }


def call_arguments(call: Mapping[str, Any]) -> tuple[str, Any]:
    """A tool call's name and arguments as vLLM passes them (JSON parsed; empty: {})."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not arguments:
        return str(function.get("name", "")), {}
    if isinstance(arguments, str):
        # Not JSON: the template gets the string (vLLM would refuse the request).
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return str(function.get("name", "")), arguments


# -- Llama 3 -------------------------------------------------------------------


def render_llama3(messages: Messages, tools: Tools = None) -> str:
    """Meta-Llama-3-Instruct's template (3.0): no system message added, no tools."""
    parts = ["<|begin_of_text|>"]
    for message in messages:
        role = str(message.get("role", ""))
        parts.append(_LLAMA_HEADER.format(role) + text_of(message.get("content")).strip())
        parts.append("<|eot_id|>")
    parts.append(_LLAMA_HEADER.format("assistant"))
    return "".join(parts)


def render_llama31(messages: Messages, tools: Tools = None, *, today: str = LLAMA31_DATE) -> str:
    """Llama 3.1's (and 3.3's) template; 3.2's differs only in ``today``."""
    messages, system = list(messages), ""
    if messages and messages[0].get("role") == "system":
        system, messages = text_of(messages[0].get("content")).strip(), messages[1:]
    parts = ["<|begin_of_text|>", _LLAMA_HEADER.format("system")]
    if tools:
        parts.append("Environment: ipython\n")
    parts.append(f"Cutting Knowledge Date: December 2023\nToday Date: {today}\n\n")
    parts.append(system + "<|eot_id|>")
    if tools:
        first = text_of(messages[0].get("content")).strip() if messages else ""
        messages = messages[1:]
        schemas = "".join(tojson(vllm_tool(t), indent=4) + "\n\n" for t in tools)
        parts.append(_LLAMA_HEADER.format("user") + _LLAMA_TOOLS_PREAMBLE + schemas)
        parts.append(first + "<|eot_id|>")
    for message in messages:
        parts.append(_llama31_message(message))
    parts.append(_LLAMA_HEADER.format("assistant"))
    return "".join(parts)


def _llama31_message(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", ""))
    if message.get("tool_calls"):
        name, arguments = call_arguments(message["tool_calls"][0])  # one call per turn
        body = '{"name": "' + name + '", "parameters": ' + tojson(arguments) + "}"
        return _LLAMA_HEADER.format("assistant") + body + "<|eot_id|>"
    if role in ("tool", "ipython"):
        # The template's `is mapping or is iterable` holds for a string too.
        content = message.get("content")
        body = tojson(text_of(content) if isinstance(content, list | tuple) else content)
        return _LLAMA_HEADER.format("ipython") + body + "<|eot_id|>"
    return _LLAMA_HEADER.format(role) + text_of(message.get("content")).strip() + "<|eot_id|>"


def render_llama32(messages: Messages, tools: Tools = None) -> str:
    """Llama 3.2's template: 3.1's with today's date (``strftime_now("%d %b %Y")``)."""
    return render_llama31(messages, tools, today=date.today().strftime("%d %b %Y"))


# -- Qwen ------------------------------------------------------------------------


def _qwen_system(messages: Messages, tools: Tools, default: str | None) -> str:
    first_is_system = bool(messages) and messages[0].get("role") == "system"
    system = text_of(messages[0].get("content")) if first_is_system else default
    if tools:
        schemas = "".join("\n" + tojson(vllm_tool(t)) for t in tools)
        head = system + "\n\n" if system is not None else ""  # Qwen3 may have none
        return "<|im_start|>system\n" + head + _QWEN_TOOLS_HEAD + schemas + _QWEN_TOOLS_TAIL
    if system is None:
        return ""
    return f"<|im_start|>system\n{system}<|im_end|>\n"


def _qwen_tool_calls(message: Mapping[str, Any], content: str, *, qwen3: bool) -> str:
    out = []
    for index, call in enumerate(message.get("tool_calls") or ()):
        name, arguments = call_arguments(call)
        if not qwen3 or index or content:
            out.append("\n")
        rendered = arguments if qwen3 and isinstance(arguments, str) else tojson(arguments)
        out.append(
            '<tool_call>\n{"name": "' + name + '", "arguments": ' + rendered + "}\n</tool_call>"
        )
    return "".join(out)


def _qwen_tool_result(messages: Messages, index: int) -> str:
    before = index == 0 or messages[index - 1].get("role") != "tool"
    after = index == len(messages) - 1 or messages[index + 1].get("role") != "tool"
    body = "\n<tool_response>\n" + text_of(messages[index].get("content")) + "\n</tool_response>"
    return ("<|im_start|>user" if before else "") + body + ("<|im_end|>\n" if after else "")


def render_qwen25(messages: Messages, tools: Tools = None) -> str:
    """Qwen2.5-Instruct's template."""
    parts = [_qwen_system(messages, tools, QWEN25_SYSTEM_PROMPT)]
    for index, message in enumerate(messages):
        role, content = str(message.get("role", "")), text_of(message.get("content"))
        calls = message.get("tool_calls")
        if role == "user" or (role == "system" and index) or (role == "assistant" and not calls):
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        elif role == "assistant":
            head = "<|im_start|>assistant" + ("\n" + content if content else "")
            parts.append(head + _qwen_tool_calls(message, content, qwen3=False) + "<|im_end|>\n")
        elif role == "tool":
            parts.append(_qwen_tool_result(messages, index))
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _last_query(messages: Messages) -> int:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        content = text_of(message.get("content"))
        is_result = content.startswith("<tool_response>") and content.endswith("</tool_response>")
        if message.get("role") == "user" and not is_result:
            return index
    return len(messages) - 1


def _qwen3_assistant(message: Mapping[str, Any], content: str, *, thinks: bool, last: bool) -> str:
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = ""
        if "</think>" in content:
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
    if thinks and (last or reasoning):
        think = "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n"
        head = "<|im_start|>assistant\n" + think + content.lstrip("\n")
    else:
        head = "<|im_start|>assistant\n" + content
    return head + _qwen_tool_calls(message, content, qwen3=True) + "<|im_end|>\n"


def render_qwen3(messages: Messages, tools: Tools = None) -> str:
    """Qwen3's template (thinking enabled, its default)."""
    parts = [_qwen_system(messages, tools, None)]
    last_query = _last_query(messages)
    for index, message in enumerate(messages):
        role, content = str(message.get("role", "")), text_of(message.get("content"))
        if role == "user" or (role == "system" and index):
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        elif role == "assistant":
            last = index == len(messages) - 1
            parts.append(_qwen3_assistant(message, content, thinks=index > last_query, last=last))
        elif role == "tool":
            parts.append(_qwen_tool_result(messages, index))
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


RENDERERS: dict[str, Callable[[Messages, Tools], str]] = {
    "llama3": render_llama3,
    "llama3.1": render_llama31,
    "llama3.2": render_llama32,
    "qwen2.5": render_qwen25,
    "qwen3": render_qwen3,
}


def render(family: str, messages: Messages, tools: Tools = None) -> str:
    """The prompt text ``family``'s template makes of ``messages`` (generation prompt included)."""
    if family == "gpt-oss":
        from spendgraph.providers.harmony import render as render_harmony

        return render_harmony(list(messages), list(tools) if tools else None)
    return RENDERERS[family](list(messages), list(tools) if tools else None)


def count_family(
    family: str, messages: Messages, tools: Tools = None, *, counts: CountCache | None = None
) -> PromptCount:
    """The exact prompt tokens of ``messages`` for a model of ``family``.

    The text between special tokens is counted piece by piece, each piece's count
    remembered in ``counts`` (default: the process's; see :mod:`.count_cache`).
    """
    if family == "gpt-oss":
        from spendgraph.providers.harmony import count_harmony

        return count_harmony(messages, tools, counts=counts)
    tokens = count_rendered(render(family, messages, tools), FAMILY_ENCODINGS[family], counts)
    return PromptCount(tokens, exact=renders_fully(messages))
