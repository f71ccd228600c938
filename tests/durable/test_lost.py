"""The row of a delivery that died with its worker: booked at its upper bound, written once."""

from __future__ import annotations

from datetime import UTC, datetime

from spendgraph.durable.lost import WORKER_LOST, delivery_request_id, lost_attempt, lost_row_id
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.context import QueryScope, agent_scope, query_context
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallStatus, QueryRecord
from spendgraph.providers.usage import UsageSource, cost_of


async def test_a_lost_delivery_is_one_row_at_its_upper_bound_however_often_written(
    pg_url, sim, config
):
    ledger = Ledger.open(pg_url)
    layer = ProviderLayer(config, ledger, env={})
    try:
        query = QueryRecord(app="t")
        await ledger.open_query(query)
        scope = QueryScope(query.id, budget=None, store_text=False)
        request = ChatRequest([{"role": "user", "content": "hello there"}], max_tokens=50)
        request_id = delivery_request_id("wf", "7", 2)
        assert request_id == delivery_request_id("wf", "7", 2) != delivery_request_id("wf", "7", 3)
        with query_context(scope), agent_scope("planner", node="plan"):
            record = lost_attempt(
                layer,
                request,
                request_id=request_id,
                attempt=1,
                started_at=datetime.now(UTC),
                stream=False,
            )
        for _ in range(2):  # the retry of a retry writes it again: still one row
            await ledger.record_call(record)
        rows = ledger.calls_for_query(query.id)
    finally:
        await layer.aclose()

    assert [r.id for r in rows] == [lost_row_id(request_id)]
    assert rows[0].request_id == request_id
    (row,) = rows
    assert row.status is CallStatus.CANCELLED and row.error_kind == WORKER_LOST
    assert (row.agent_path, row.node, row.attempt) == ("planner", "plan", 1)
    assert row.usage.source is UsageSource.UPPER_BOUND and row.usage.output == 50
    assert row.usage.input_uncached > 0
    endpoint = layer.endpoints[row.endpoint.name]
    assert row.cost_usd == cost_of(row.usage, endpoint.price) and row.cost_usd > 0
