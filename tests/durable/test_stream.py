"""Token deltas of a durable query reach the caller out of band, over Redis pub/sub."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from spendgraph.durable.activities import QueryActivities
from spendgraph.durable.client import query_spec, run_query_streaming
from spendgraph.durable.stream import DELTA, DONE, DeltaPublisher, answer_texts
from spendgraph.durable.worker import TemporalTarget, run_worker
from spendgraph.graph import open_checkpointer
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

from .test_workflow import APP


async def test_a_durable_query_streams_its_token_deltas_over_redis(
    temporal_server, pg_url, sim, config, redis_url
):
    ledger = Ledger.open(pg_url)
    layer = ProviderLayer(config, ledger, env={})
    publisher = DeltaPublisher(redis_url)
    target = TemporalTarget(address=temporal_server, task_queue=f"s-{uuid.uuid4().hex[:8]}")
    events: list[dict] = []
    try:
        async with open_checkpointer(pg_url) as checkpointer:
            client = await Client.connect(temporal_server)
            stop = asyncio.Event()
            activities = QueryActivities(layer, APP, checkpointer, publisher)
            worker = asyncio.create_task(run_worker(client, activities, target, stop))
            try:
                spec = query_spec(APP.name, "What is a prefix cache?", APP.run_options())
                result = await run_query_streaming(
                    client, spec, target.task_queue, redis_url, events.append
                )
            finally:
                stop.set()
                await worker
    finally:
        await publisher.aclose()
        await layer.aclose()

    deltas = [e for e in events if e["type"] == DELTA]
    assert len(deltas) > 3 and events[-1] == {"type": DONE}
    assert {e["agent_path"] for e in deltas} == {"outline", "draft", "edit"}
    texts = answer_texts(events)
    assert list(texts.values()) == [o.content for o in result.outputs]
    assert result.answer == result.outputs[-1].content


def test_a_retried_delivery_replaces_what_the_dead_one_streamed():
    events = [
        {"type": DELTA, "key": "a#0", "delivery": 1, "text": "Hel"},
        {"type": DELTA, "key": "b#0", "delivery": 1, "text": "Other"},
        {"type": DELTA, "key": "a#0", "delivery": 2, "text": "Hello"},
        {"type": DELTA, "key": "a#0", "delivery": 2, "text": " world"},
        {"type": DONE},
    ]
    assert answer_texts(events) == {"a#0": "Hello world", "b#0": "Other"}


async def test_a_redis_that_is_down_drops_the_deltas_and_never_fails_the_call():
    publisher = DeltaPublisher("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        await publisher.publish("q1", {"type": DELTA, "key": "a#0", "delivery": 1, "text": "x"})
        await publisher.publish("q1", {"type": DONE})
    finally:
        await publisher.aclose()
    assert publisher.dropped == 2
