"""Rows a server sent no usage for: counted exactly for a model family, estimated otherwise."""

from __future__ import annotations

import pytest

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.local.sim.server import run_simulator_async
from spendgraph.providers.tokens import count_chat, count_text
from spendgraph.providers.usage import UsageSource

MESSAGES = [
    {"role": "system", "content": "You answer in one line."},
    {"role": "user", "content": "Why does prefix caching cut the cost of a long chat?"},
]


@pytest.mark.parametrize(
    ("tokenizer", "source"),
    [
        ("qwen2.5", UsageSource.COUNTED),
        ("llama3.1", UsageSource.COUNTED),
        ("gpt-oss", UsageSource.ESTIMATED),  # its answers hold channel headers the text lacks
        ("o200k_base", UsageSource.ESTIMATED),
    ],
)
async def test_a_stream_without_usage_is_booked_with_the_familys_count(
    make_layer, endpoint_toml, ledger, tmp_path, tokenizer, source
):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        'stream_usage = "never"\n[models.sim-large]\n'
        '[[replicas]]\nname = "b"\ncount = 1\nprofile = "B200-NVFP4"\n'
    )
    async with run_simulator_async(fleet) as sim:
        toml = endpoint_toml("silent", "b-0", extra=f'tokenizer = "{tokenizer}"')
        layer = make_layer(toml, sim_url=sim.base_url)
        request = ChatRequest(messages=MESSAGES, max_tokens=20)
        async with layer.query() as scope, layer.stream(request) as chunks:
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    ledger.flush()
    (row,) = ledger.calls_for_query(scope.id)
    assert row.usage.source is source
    assert row.usage.prompt_tokens == count_chat(MESSAGES, tokenizer)
    assert row.usage.output == count_text(text, tokenizer) > 0
