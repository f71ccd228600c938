"""Exact counts against independent references, over 50 fixed conversations per family.

References: the families' published Jinja chat templates (``data/chat_templates``)
rendered with jinja2 as ``transformers.apply_chat_template`` renders them, after
the request preprocessing vLLM does (content parts joined, tool-call arguments
parsed, tools dumped in its request model's shape); tokenized by quicktok's own
C++ tokenizer. For gpt-oss: OpenAI's ``openai-harmony`` renderer, fed the
messages vLLM builds. Neither reference shares code with spendgraph's renderers.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
import quicktok
from chat_conversations import conversation
from jinja2.sandbox import ImmutableSandboxedEnvironment

from spendgraph.providers import templates, tokens

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
CONVERSATIONS = 50


# -- the references --------------------------------------------------------------


def vllm_messages(messages: list[dict]) -> list[dict]:
    """What vLLM hands a string-content chat template."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content)
        converted = {"role": message["role"], "content": "" if content is None else content}
        if message.get("tool_calls"):
            converted["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": json.loads(arguments)}}
                for call in message["tool_calls"]
                for arguments in [call["function"]["arguments"]]
            ]
        out.append(converted)
    return out


def vllm_tools(tools: list[dict] | None) -> list[dict] | None:
    if tools is None:
        return None
    return [
        {
            "type": "function",
            "function": {
                "name": t["function"]["name"],
                "description": t["function"].get("description"),
                "parameters": t["function"].get("parameters"),
            },
        }
        for t in tools
    ]


def jinja_render(family: str, messages: list[dict], tools: list[dict] | None) -> str:
    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    template = env.from_string((TEMPLATES / f"{family}.jinja").read_text())
    return template.render(
        messages=vllm_messages(messages),
        tools=vllm_tools(tools),
        add_generation_prompt=True,
        bos_token="<|begin_of_text|>",
    )


QUICKTOK_NAMES = {"llama3.1": "llama3", "llama3.2": "llama3", "qwen2.5": "qwen3", "qwen3": "qwen3"}


@pytest.mark.parametrize("family", sorted(QUICKTOK_NAMES))
def test_counts_match_the_published_templates_over_50_conversations(family):
    reference_tokenizer = quicktok.get_encoding(QUICKTOK_NAMES[family])
    off = []
    for seed in range(CONVERSATIONS):
        messages, tools = conversation(seed)
        reference = jinja_render(family, messages, tools)
        assert templates.render(family, messages, tools) == reference, f"seed {seed}"
        expected = len(reference_tokenizer.encode(reference, allowed_special="all"))
        counted = tokens.count_prompt(messages, family, tools=tools)
        if counted.tokens != expected or not counted.exact:
            off.append((seed, counted, expected))
    assert off == []


def test_the_conversations_cover_tools_system_prompts_and_several_turns():
    made = [conversation(seed) for seed in range(CONVERSATIONS)]
    assert sum(tools is not None for _, tools in made) >= 15
    assert sum(m[0]["role"] == "system" for m, _ in made) >= 15
    assert sum(any(x.get("tool_calls") for x in m) for m, _ in made) >= 10
    assert sum(sum(x["role"] == "user" for x in m) >= 3 for m, _ in made) >= 15
    assert sum(m[-1]["role"] == "tool" for m, _ in made) >= 5
    assert sum("</think>" in str(m[-2].get("content")) for m, _ in made) >= 2
    assert sum(any("reasoning" in x for x in m) for m, _ in made) >= 10


# -- gpt-oss: OpenAI's harmony renderer --------------------------------------------


@pytest.fixture(scope="module")
def harmony_encoding(tmp_path_factory):
    """openai-harmony's encoding, its vocabulary read from the same offline copy."""
    harmony = pytest.importorskip("openai_harmony")
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "o200k_base.tiktoken").write_bytes(tokens._rebuild_tiktoken_file("o200k.vocab"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_ENCODINGS_BASE", str(folder))
        return harmony, harmony.load_harmony_encoding(harmony.HarmonyEncodingName.HARMONY_GPT_OSS)


def harmony_messages(h, messages: list[dict], tools: list[dict] | None) -> list:
    """The harmony messages vLLM's chat endpoint builds (get_system_message,
    get_developer_message, parse_chat_inputs_to_harmony_messages)."""
    system = h.SystemContent.new().with_conversation_start_date(date.today().strftime("%Y-%m-%d"))
    if tools is None:
        system = system.with_channel_config(h.ChannelConfig.require_channels(["analysis", "final"]))
    out = [h.Message.from_role_and_content(h.Role.SYSTEM, system)]
    if tools:
        described = [
            h.ToolDescription.new(
                t["function"]["name"], t["function"].get("description") or "",
                parameters=t["function"].get("parameters"),
            )
            for t in tools
        ]  # fmt: skip
        developer = h.DeveloperContent.new().with_function_tools(described)
        out.append(h.Message.from_role_and_content(h.Role.DEVELOPER, developer))
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or ()}
    turns = []
    for message in messages:
        role, content = message["role"], message.get("content")
        flat = "".join(p["text"] for p in content) if isinstance(content, list) else content or ""
        if role == "assistant" and message.get("tool_calls"):
            if flat:
                said = h.Message.from_role_and_content(h.Role.ASSISTANT, flat)
                turns.append(said.with_channel("commentary"))
            for call in message["tool_calls"]:
                reply = h.Message.from_role_and_content(
                    h.Role.ASSISTANT, call["function"]["arguments"]
                )
                reply = reply.with_channel("commentary").with_content_type("json")
                turns.append(reply.with_recipient(f"functions.{call['function']['name']}"))
        elif role == "tool":
            author = h.Author.new(h.Role.TOOL, f"functions.{names[message['tool_call_id']]}")
            result = h.Message.from_author_and_content(author, flat).with_channel("commentary")
            turns.append(result.with_recipient("assistant"))
        elif role == "assistant":
            if message.get("reasoning"):
                thought = h.Message.from_role_and_content(h.Role.ASSISTANT, message["reasoning"])
                turns.append(thought.with_channel("analysis"))
            if flat:
                answer = h.Message.from_role_and_content(h.Role.ASSISTANT, flat)
                turns.append(answer.with_channel("final"))
        elif isinstance(content, list):
            parts = [h.TextContent(text=part["text"]) for part in content]
            turns.append(h.Message.from_role_and_contents(h.Role(role), parts))
        else:
            turns.append(h.Message.from_role_and_content(h.Role(role), content))
    finals = [i for i, t in enumerate(turns) if t.channel == "final"]
    last = finals[-1] if finals else -1
    return out + [t for i, t in enumerate(turns) if not (i < last and t.channel == "analysis")]


def test_gpt_oss_counts_match_openai_harmony_over_50_conversations(harmony_encoding):
    h, encoding = harmony_encoding
    off = []
    for seed in range(CONVERSATIONS):
        messages, tools = conversation(seed)
        conversation_ = h.Conversation.from_messages(harmony_messages(h, messages, tools))
        ids = encoding.render_conversation_for_completion(conversation_, h.Role.ASSISTANT)
        counted = tokens.count_prompt(messages, "gpt-oss", tools=tools)
        if counted.tokens != len(ids):
            off.append((seed, counted.tokens, len(ids), encoding.decode_utf8(ids)))
    assert off == []
