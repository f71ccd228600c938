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
