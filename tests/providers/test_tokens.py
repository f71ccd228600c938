"""Token counting works offline and matches tiktoken's own vocabularies."""

import hashlib

import pytest

from spendgraph.providers import tokens


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
