"""Fixed chat conversations for counting tests and benchmarks: system prompts or not,
several turns, tool calls and results, content parts, ``<think>`` blocks and
gpt-oss ``reasoning``. :func:`conversation` ``(seed)`` is the same for a seed
in every run.
"""

from __future__ import annotations

import json
import random

WORDS = (
    "the", "ledger", "GPU", "token", "café", "cafe\u0301", "naïve", "日本語", "🚀", "  spaced  ",
    "don't", "3.14159", "1234567", "<b>", "\n", "\t", "Zürich", "x" * 40, "new\nline", "—",
)  # fmt: skip
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city.\nUse metric units.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                    "days": {"type": "integer", "default": 3},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "when": {"type": ["string", "null"]},
                    "opts": {
                        "type": "object",
                        "description": "Options",
                        "properties": {"hourly": {"type": "boolean"}},
                    },
                },
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "now", "description": "The time."}},
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the notes.",
            "parameters": {
                "type": "object",
                "properties": {
                    "q": {"type": "string", "title": "Query", "examples": ["gpu", "ledger"]},
                    "limit": {"type": "number", "nullable": True},
                    "filter": {
                        "description": "A tag or a date range",
                        "oneOf": [
                            {"type": "string", "description": "A tag"},
                            {
                                "type": "object",
                                "properties": {"after": {"type": "string"}},
                                "nullable": True,
                            },
                        ],
                        "default": "all",
                    },
                    "hits": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"id": {"type": "integer"}},
                            "required": ["id"],
                        },
                    },
                    "exact": {"type": "boolean", "default": False},
                },
                "required": ["q"],
            },
        },
    },
]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def _tool_turn(rng: random.Random, index: int) -> list[dict]:
    arguments = json.dumps({"city": _text(rng), "days": rng.randint(1, 9)}, ensure_ascii=False)
    call = {"id": f"c{index}", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": arguments}
    content = rng.choice([None, "", "Let me look."])
    results = [
        {"role": "tool", "tool_call_id": f"c{index}", "name": "get_weather", "content": _text(rng)}
        for _ in range(rng.randint(1, 2))
    ]
    return [{"role": "assistant", "content": content, "tool_calls": [call]}, *results]


def conversation(seed: int) -> tuple[list[dict], list[dict] | None]:
    """A fixed conversation: system prompt or not, several turns, tools or not."""
    rng = random.Random(seed)
    messages: list[dict] = []
    if rng.random() < 0.6:
        messages.append({"role": "system", "content": " " + _text(rng) + " "})
    tools = TOOLS if rng.random() < 0.5 else None
    for turn in range(rng.randint(1, 4)):
        if rng.random() < 0.2:
            parts = [{"type": "text", "text": _text(rng)}, {"type": "text", "text": _text(rng)}]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": _text(rng)})
        if tools and rng.random() < 0.5:
            messages.extend(_tool_turn(rng, turn))
        if rng.random() < 0.8:
            answer = _text(rng)
            if rng.random() < 0.2:
                answer = "<think>\n" + _text(rng) + "\n</think>\n\n" + answer
            reply = {"role": "assistant", "content": answer}
            if rng.random() < 0.3:  # what gpt-oss thought (vLLM takes it back as `reasoning`)
                reply["reasoning"] = _text(rng)
            messages.append(reply)
            messages.append({"role": "user", "content": _text(rng)})
    if tools and rng.random() < 0.5:  # an open tool loop: turns after the last user query
        loop = _tool_turn(rng, 9)
        if rng.random() < 0.5:
            loop[0]["content"] = "<think>\n" + _text(rng) + "\n</think>\n\nLet me look."
        messages.extend(loop)
    return messages, tools
