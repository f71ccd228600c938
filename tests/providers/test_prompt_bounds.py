"""Long prompts without counting on the critical path: the router ranks by byte bounds.

A prompt's tokens lie between bounds known without encoding it (a token is at
least one UTF-8 byte); when the priced endpoints rank alike at both bounds, the
router ranks by a bound and counts nothing. The order must never change.
"""

from __future__ import annotations

import random

import pytest

from spendgraph.providers.count_cache import CountCache
from spendgraph.providers.router import RouteRequest
from spendgraph.providers.tokens import FAMILIES, count_chat, recipe_bounds

TEXTS = (
    "plain ascii words, numbers 12345 and punctuation!",
    "café naïve Zürich — 東京 🚀🚀🚀 ",
    "<|endoftext|><|im_start|> special strings count as text",
    "    \n\n\t  whitespace runs   \n",
    "a" * 3000,
)


def long_conversation(words: int, question: str = "What does it say?") -> list[dict]:
    rng = random.Random(words)
    vocabulary = ("ledger", "budget", "café", "Zürich", "—", "2026", "token", "the", "GPU")
    report = " ".join(rng.choice(vocabulary) for _ in range(words))
    return [
        {"role": "system", "content": "You answer questions about the report."},
        {"role": "user", "content": "The report:\n\n" + report},
        {"role": "assistant", "content": "Read it. Ask away."},
        {"role": "user", "content": question},
    ]


# -- the bounds ------------------------------------------------------------------


@pytest.mark.parametrize("encoding_name", ["o200k_base", "cl100k_base", "o200k_harmony"])
def test_recipe_bounds_bracket_the_count(encoding_name):
    tools = [{"type": "function", "function": {"name": "look_up", "parameters": {}}}]
    for text in TEXTS:
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
        for with_tools in (None, tools):
            low, high = recipe_bounds(messages, encoding_name, with_tools)
            counted = count_chat(
                messages, encoding_name, tools=with_tools, counts=CountCache(max_entries=0)
            )
            assert low <= counted <= high


def test_families_have_no_recipe_bound():
    messages = [{"role": "user", "content": "hello"}]
    assert all(recipe_bounds(messages, family) is None for family in FAMILIES)


# -- routing ---------------------------------------------------------------------


def priced(name: str, replica: str, price_in: str, price_out: str) -> str:
    return f"""
    [[endpoints]]
    name = "{name}"
    base_url = "{{sim}}/r/{replica}/v1"
    model = "sim-large"
    serves = ["default"]
    price = {{ input = {price_in}, cached_input = 0.01, output = {price_out} }}
    """


def route(layer, messages, bounds) -> tuple[list[str], int]:
    counted = []

    def prompt_tokens() -> int:
        counted.append(1)
        return count_chat(messages)

    request = RouteRequest(
        model="default", prompt_tokens=prompt_tokens, max_tokens=16, prompt_bounds=bounds
    )
    return [e.name for e in layer.router.plan(request)], len(counted)


async def test_ranking_needs_no_count_when_the_bounds_rank_alike(make_layer):
    layer = make_layer(
        priced("dear", "h100-fp8-0", "0.5", "0.2") + priced("cheap", "b200-nvfp4-0", "0.02", "0.2")
    )
    messages = long_conversation(4000)
    with_bounds, counts = route(layer, messages, lambda: recipe_bounds(messages))
    assert counts == 0
    assert with_bounds == route(layer, messages, None)[0] == ["cheap", "dear"]


async def test_ranking_counts_when_the_order_depends_on_the_prompt(make_layer):
    # Cheap input, dear output against the reverse: which is cheaper turns on the
    # prompt's length, and the bounds straddle the point where they cross.
    layer = make_layer(
        priced("cheap_in", "h100-fp8-0", "0.01", "10")
        + priced("cheap_out", "b200-nvfp4-0", "1", "0.01")
    )
    crossing = (160 - 0.16) / 0.99  # tokens where 0.01 P + 10 x 16 == 1 P + 0.01 x 16
    straddled = []
    for words in (10, 200, 4000):
        messages = long_conversation(words)
        low, high = recipe_bounds(messages)
        with_bounds, counts = route(layer, messages, lambda m=messages: recipe_bounds(m))
        assert with_bounds == route(layer, messages, None)[0]
        straddled.append(low < crossing < high)
        assert (counts > 0) == straddled[-1]
    assert True in straddled and False in straddled
