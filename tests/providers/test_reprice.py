"""Re-pricing recorded calls: several prices in one pass agree with one price at a time."""

from __future__ import annotations

from spendgraph.providers import ChatRequest
from spendgraph.providers.ledger import LedgerFilter
from spendgraph.providers.reprice import reprice, reprice_many

QUESTION = [{"role": "user", "content": "How much does a prefix cache save?"}]


async def test_reprice_many_is_reprice_at_each_price(layer, ledger):
    for _ in range(2):
        async with layer.query(app="reprice"):
            for _ in range(2):
                await layer.chat(ChatRequest(QUESTION, max_tokens=16))
    await ledger.aflush()
    prices = [endpoint.price for endpoint in layer.endpoints.values()]
    everything = LedgerFilter()
    together = reprice_many(ledger, everything, prices)
    assert len(together) == len(prices) == 3
    for price, (tallies, total) in zip(prices, together, strict=True):
        alone, alone_total = reprice(ledger, everything, price)
        assert [(t.query_id, t.repriced, t.actual) for t in tallies] == [
            (t.query_id, t.repriced, t.actual) for t in alone
        ]
        assert (total.repriced, total.actual, total.ratio) == (
            alone_total.repriced,
            alone_total.actual,
            alone_total.ratio,
        )
        assert len(tallies) == 2 and total.actual.calls == 4
