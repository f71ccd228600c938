"""``simulated_layer()``: a provider layer on the in-process simulator in one call."""

from __future__ import annotations

from pathlib import Path

from spendgraph.providers import ChatRequest, Ledger, agent_scope, simulated_layer

MESSAGES = [{"role": "user", "content": "Say something short about prefix caches."}]


async def test_a_temporary_ledger_records_the_call_and_is_removed_afterwards():
    async with simulated_layer() as layer:
        async with layer.query(app="notebook") as query:
            with agent_scope("writer"):
                result = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=16))
        assert result.content
        where = Path(layer.ledger.url.removeprefix("sqlite:///"))
        (row,) = layer.ledger.calls_for_query(query.id)
        assert row.agent_path == "writer" and row.cost_usd == result.cost_usd
        assert query.spend.cost == result.cost_usd and query.spend.calls == 1
    assert not where.exists()  # noqa: ASYNC240 - the block is over: nothing else runs


async def test_a_given_ledger_path_keeps_every_query(tmp_path):
    path = tmp_path / "kept.db"
    async with simulated_layer(ledger=path) as layer:
        for _ in range(2):
            request = ChatRequest(messages=MESSAGES, max_tokens=8)
            async with layer.query(app="mine"), layer.stream(request) as chunks:
                async for _chunk in chunks:
                    pass
    ledger = Ledger.open(str(path), create=False)
    try:
        queries = ledger.list_queries()
        assert len(queries) == 2 and {q.query.app for q in queries} == {"mine"}
    finally:
        ledger.close()
