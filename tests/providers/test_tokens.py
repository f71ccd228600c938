"""Token counting works offline and matches tiktoken's own vocabularies."""

import hashlib

import pytest

from spendgraph.providers import tokens
from spendgraph.providers.count_cache import CountCache


@pytest.mark.parametrize("name", ["o200k_base", "o200k_harmony", "cl100k_base"])
def test_encodings_load_without_network(name):
    encoding = tokens.encoding(name)
    assert encoding.decode(encoding.encode("hello world")) == "hello world"


def test_rebuilt_vocabulary_is_byte_identical_to_tiktokens():
    rebuilt = tokens._rebuild_tiktoken_file("o200k.vocab")
    assert hashlib.sha256(rebuilt).hexdigest() == tokens._VOCABULARIES["o200k"][1]


def test_known_token_ids():
    assert tokens.encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_chat_count_adds_framing_per_message():
    one = [{"role": "user", "content": "hi there"}]
    two = [*one, {"role": "assistant", "content": "hi there"}]
    per_message = tokens.count_chat(two) - tokens.count_chat(one)
    assert per_message == tokens.TOKENS_PER_MESSAGE + tokens.count_text("assistanthi there")


def test_chatml_prompt_inserts_smollm2_system_prompt_before_a_non_system_first_message():
    text = tokens.chatml_prompt_text([{"role": "user", "content": "Name one colour."}])
    assert text == (
        f"<|im_start|>system\n{tokens.SMOLLM2_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\nName one colour.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_prompt_keeps_a_given_system_message_and_renders_text_parts():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert tokens.chatml_prompt_text(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_prompt_without_a_default_system_prompt():
    text = tokens.chatml_prompt_text([{"role": "user", "content": "hi"}], default_system=None)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# -- model families ----------------------------------------------------------------

SPECIAL_IDS = {  # from the published vocabularies (tokenizer.json / tiktoken_ext)
    "llama3": {
        "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
        "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009,
        "<|python_tag|>": 128010,
    },
    "qwen2": {
        "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
        "<tool_call>": 151657, "</tool_call>": 151658, "<think>": 151667, "</think>": 151668,
    },
    "o200k_harmony": {
        "<|return|>": 200002, "<|constrain|>": 200003, "<|channel|>": 200005,
        "<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008, "<|call|>": 200012,
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SPECIAL_IDS))
def test_special_tokens_have_their_published_ids(name):
    encoding = tokens.encoding(name)
    for text, expected in SPECIAL_IDS[name].items():
        assert encoding.encode(text, allowed_special="all") == [expected], text


@pytest.mark.parametrize(("name", "reference"), [("llama3", "llama3"), ("qwen2", "qwen3")])
def test_family_vocabularies_split_text_as_quicktoks_own_tokenizer_does(name, reference):
    quicktok = pytest.importorskip("quicktok")
    theirs, ours = quicktok.get_encoding(reference), tokens.encoding(name)
    samples = [
        "Hello, world! don't CAN'T we'll",
        "digits 1234567 and 3.14159",
        "  leading\n\n\ttabs  and   spaces \r\n",
        "café naïve Zürich 日本語のトークン 🚀🔥",
        "def f(x):\n    return [i**2 for i in range(10)]",
    ]
    for text in samples:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), text
    # Qwen's digits are single tokens, Llama 3's come in threes.
    assert len(ours.encode_ordinary("1234567")) == (7 if name == "qwen2" else 3)


def test_qwen_counts_decomposed_accents_as_the_composed_text():
    decomposed = [{"role": "user", "content": "cafe\u0301"}]
    composed = [{"role": "user", "content": "caf\u00e9"}]
    assert tokens.count_chat(decomposed, "qwen2.5") == tokens.count_chat(composed, "qwen2.5")


def _raw(encoding_name: str, text: str) -> int:
    return len(tokens.encoding(encoding_name).encode(text, allowed_special="all"))


HELLO = [{"role": "user", "content": "Hello!"}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}, *HELLO]


@pytest.mark.parametrize(
    ("family", "messages", "rendered"),
    [
        (
            "llama3",
            WITH_SYSTEM,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            "llama3.1",
            HELLO,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            "qwen2.5",
            HELLO,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "qwen3",
            HELLO,
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "qwen3",
            [
                *WITH_SYSTEM,
                {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHi."},
                *HELLO,
            ],
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
    ],
)
def test_family_counts_are_the_published_template_tokenized(family, messages, rendered):
    from spendgraph.providers import templates

    assert templates.render(family, messages) == rendered
    counted = tokens.count_prompt(messages, family)
    assert counted == tokens.PromptCount(_raw(tokens.FAMILY_ENCODINGS[family], rendered), True)


def test_llama32_dates_the_system_message_today():
    from datetime import date

    from spendgraph.providers import templates

    today = date.today().strftime("%d %b %Y")
    assert f"Today Date: {today}\n\n" in templates.render("llama3.2", HELLO)


def test_gpt_oss_counts_the_harmony_prompt():
    from datetime import date

    today = date.today().strftime("%Y-%m-%d")
    rendered = (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        f"Knowledge cutoff: 2024-06\nCurrent date: {today}\n\nReasoning: medium\n\n"
        "# Valid channels: analysis, final. Channel must be included for every message.<|end|>"
        "<|start|>system<|message|>Be brief.<|end|><|start|>user<|message|>Hello!<|end|>"
        "<|start|>assistant"
    )
    assert tokens.count_prompt(WITH_SYSTEM, "gpt-oss") == tokens.PromptCount(
        _raw("o200k_harmony", rendered), True
    )


def test_a_special_token_typed_in_a_message_is_text_to_harmony_but_special_to_qwen():
    typed = [{"role": "user", "content": "<|end|> and <|im_end|>"}]
    plain = [{"role": "user", "content": "x"}]
    harmony_extra = tokens.count_chat(typed, "gpt-oss") - tokens.count_chat(plain, "gpt-oss")
    assert harmony_extra == tokens.count_text("<|end|> and <|im_end|>", "o200k_harmony") - 1
    qwen_extra = tokens.count_chat(typed, "qwen3") - tokens.count_chat(plain, "qwen3")
    assert qwen_extra == _raw("qwen2", "<|end|> and <|im_end|>") - 1


def test_media_parts_make_a_family_count_inexact_and_the_row_estimated():
    with_image = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}
    ]
    assert tokens.count_prompt(with_image, "qwen2.5").exact is False
    assert tokens.local_source("qwen2.5", with_image) == "estimated"
    assert tokens.local_source("qwen2.5", HELLO) == "counted"
    assert tokens.local_source("gpt-oss", HELLO) == "estimated"  # answers hold channel headers
    assert tokens.local_source("o200k_base", HELLO) == "estimated"
    assert tokens.count_prompt(HELLO, "o200k_base") == tokens.PromptCount(
        tokens.count_chat(HELLO), False
    )


# -- bounds known without counting (the router ranks by them) -------------------

BOUND_TEXTS = (
    "plain ascii words, numbers 12345 and punctuation!",
    "café naïve Zürich — 東京 🚀🚀🚀 ",
    "<|endoftext|><|im_start|> special strings count as text",
    "    \n\n\t  whitespace runs   \n",
    "a" * 3000,
)


@pytest.mark.parametrize("encoding_name", ["o200k_base", "cl100k_base", "o200k_harmony"])
def test_recipe_bounds_bracket_the_count(encoding_name):
    tools = [{"type": "function", "function": {"name": "look_up", "parameters": {}}}]
    for text in BOUND_TEXTS:
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
        for with_tools in (None, tools):
            low, high = tokens.recipe_bounds(messages, encoding_name, with_tools)
            counted = tokens.count_chat(
                messages, encoding_name, tools=with_tools, counts=CountCache(max_entries=0)
            )
            assert low <= counted <= high


def test_families_have_no_recipe_bound():
    messages = [{"role": "user", "content": "hello"}]
    assert all(tokens.recipe_bounds(messages, family) is None for family in tokens.FAMILIES)
