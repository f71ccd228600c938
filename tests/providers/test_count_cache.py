"""The count cache: cached counts equal fresh ones, edits are seen, the cache stays bounded."""

from __future__ import annotations

import copy
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from chat_conversations import TOOLS, conversation

from spendgraph.providers.count_cache import MAX_CHARS, MAX_ENTRIES, CountCache, process_counts
from spendgraph.providers.tokens import (
    FAMILIES,
    TEMPLATE_TOKENS,
    TEMPLATE_TOKENS_PER_MESSAGE,
    count_chat,
    count_prompt,
    message_text,
    prompt_token_ceiling,
)

TOKENIZERS = ("o200k_base", "cl100k_base", "o200k_harmony", *FAMILIES)
REPORT = "Quarterly GPU spend in Zürich — café naïve 日本語 🚀 cafe\u0301. " * 12  # > 256 chars


def fresh(messages, tokenizer, tools=None):
    """The count with nothing remembered."""
    return count_prompt(messages, tokenizer, tools=tools, counts=CountCache(max_entries=0))


def lengthened(messages: list[dict], rng: random.Random) -> list[dict]:
    """Some string contents made long enough for the default cache threshold."""
    out = copy.deepcopy(messages)
    for message in out:
        if isinstance(message.get("content"), str) and rng.random() < 0.5:
            message["content"] = message["content"] + REPORT * rng.randint(1, 3)
    return out


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_cached_counts_equal_fresh_counts_turn_after_turn(tokenizer):
    """Random conversations counted as a thread grows (every prefix, twice), with a cache
    keeping every piece and with the default threshold: always the fresh count."""
    every_piece, default = CountCache(min_chars=1), CountCache()
    rng = random.Random(tokenizer)
    for seed in range(25):
        messages, tools = conversation(seed)
        messages = lengthened(messages, rng)
        for end in range(1, len(messages) + 1):
            turn = messages[:end]
            expected = fresh(turn, tokenizer, tools)
            for counts in (every_piece, default, every_piece):
                assert count_prompt(turn, tokenizer, tools=tools, counts=counts) == expected
    assert every_piece.hits > 0 and default.hits > 0


@pytest.mark.parametrize("tokenizer", ["o200k_base", "qwen2.5", "llama3.1", "gpt-oss"])
def test_a_threads_next_turn_counts_only_its_new_messages(tokenizer):
    counts = CountCache()
    history = [
        {"role": "system", "content": "You read reports. " + REPORT},
        {"role": "user", "content": "The report: " + REPORT * 3},
        {"role": "assistant", "content": "Read it. " + REPORT},
    ]
    first = count_prompt(history, tokenizer, counts=counts)
    stored, hits = len(counts), counts.hits
    # As loaded from a checkpoint: new dicts and new strings with the same text.
    reloaded = [{k: v[:1] + v[1:] for k, v in message.items()} for message in history]
    assert reloaded[1]["content"] is not history[1]["content"]
    turn = [*reloaded, {"role": "user", "content": "And now? " + REPORT * 2}]
    second = count_prompt(turn, tokenizer, counts=counts)
    # Keyed on content, not identity: the history is three hits.
    assert counts.hits - hits == 3 and len(counts) == stored + 1
    assert second == fresh(turn, tokenizer) and first == fresh(history, tokenizer)


@pytest.mark.parametrize("tokenizer", ["o200k_base", "llama3.1", "qwen3", "gpt-oss"])
def test_a_message_edited_in_place_is_counted_again(tokenizer):
    counts = CountCache(min_chars=1)
    messages, tools = conversation(3)
    messages = copy.deepcopy(messages)
    tools = copy.deepcopy(TOOLS)
    before = count_prompt(messages, tokenizer, tools=tools, counts=counts)
    messages[-1]["content"] = REPORT  # the same dict, new text
    assert count_prompt(messages, tokenizer, tools=tools, counts=counts) == fresh(
        messages, tokenizer, tools
    )
    messages.insert(0, {"role": "user", "content": [{"type": "text", "text": "a"}]})
    count_prompt(messages, tokenizer, tools=tools, counts=counts)
    messages[0]["content"][0]["text"] = REPORT  # a content part edited in place
    tools[0]["function"]["description"] = REPORT  # so is a tool schema
    edited = count_prompt(messages, tokenizer, tools=tools, counts=counts)
    assert edited == fresh(messages, tokenizer, tools) != before


def test_tool_calls_edited_in_place_are_counted_again():
    counts = CountCache(min_chars=1)
    messages, _ = conversation(1)
    messages = copy.deepcopy(messages)
    calls = [m for m in messages if m.get("tool_calls")]
    assert calls
    for tokenizer in ("o200k_base", "qwen2.5", "gpt-oss"):
        count_prompt(messages, tokenizer, tools=TOOLS, counts=counts)
    calls[0]["tool_calls"][0]["function"]["arguments"] = '{"city": "' + REPORT + '"}'
    for tokenizer in ("o200k_base", "qwen2.5", "gpt-oss"):
        counted = count_prompt(messages, tokenizer, tools=TOOLS, counts=counts)
        assert counted == fresh(messages, tokenizer, TOOLS)


def test_the_cache_stays_bounded_and_keeps_the_recently_used():
    counts = CountCache(max_entries=8, max_chars=5_000, min_chars=1)
    rng = random.Random(7)
    texts = [f"{i} " + REPORT[: rng.randint(200, 900)] for i in range(100)]
    keep = [{"role": "user", "content": texts[0]}]
    for text in texts:
        message = [{"role": "user", "content": text}]
        assert count_chat(message, counts=counts) == count_chat(
            message, counts=CountCache(max_entries=0)
        )
        count_chat(keep, counts=counts)  # used after every other: never the oldest
        assert len(counts) <= 8 and counts.chars <= 5_000
    hits = counts.hits
    count_chat(keep, counts=counts)
    assert counts.hits == hits + 1
    huge = [{"role": "user", "content": REPORT * 20}]  # above max_chars: counted, not kept
    stored = len(counts)
    assert count_chat(huge, counts=counts) == count_chat(huge, counts=CountCache(max_entries=0))
    assert len(counts) <= stored and counts.chars <= 5_000


def test_counting_from_many_threads_agrees_with_fresh_counts():
    counts = CountCache(max_entries=64, max_chars=20_000, min_chars=1)  # evicting all along
    rng = random.Random(11)
    work = [
        (lengthened(conversation(seed)[0], rng), conversation(seed)[1], rng.choice(TOKENIZERS))
        for seed in range(40)
    ]
    expected = [fresh(m, t, tools) for m, tools, t in work]

    def count(item):
        messages, tools, tokenizer = item
        return count_prompt(messages, tokenizer, tools=tools, counts=counts)

    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(count, work)) == expected
    assert len(counts) <= 64 and counts.chars <= 20_000


def test_the_process_cache_is_made_once_with_its_bounds_and_used_by_default():
    counts = process_counts()
    assert counts is process_counts()
    assert (counts.max_entries, counts.max_chars) == (MAX_ENTRIES, MAX_CHARS)
    message = [{"role": "user", "content": "A process-wide check. " + REPORT}]
    first = count_chat(message)
    hits = counts.hits
    assert count_chat(copy.deepcopy(message)) == first and counts.hits == hits + 1


def test_the_prompt_ceiling_is_the_utf8_size_also_when_remembered():
    messages = [{"role": "user", "content": REPORT * 4}, {"role": "assistant", "content": "ok"}]

    def expected():
        size = sum(len(message_text(m).encode()) for m in messages)
        return TEMPLATE_TOKENS + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + size

    assert prompt_token_ceiling(messages) == expected() == prompt_token_ceiling(messages)
    messages[0]["content"] = "ascii only " * 100
    assert prompt_token_ceiling(messages) == expected()
