"""Token deltas of a durable query, out of band: Redis pub/sub, one channel per query.

The model calls of a durable query run on whichever worker Temporal picks, so
their token deltas cannot come back through the caller's event stream. A
worker started with a Redis URL publishes each delta of a streamed call to
``spendgraph:query:<id>:tokens``, and the graph driver publishes ``done``
when the run ends; the caller subscribes *before* it starts the workflow
(pub/sub keeps no history). Every delta names its call (``key``) and
delivery: after a worker died mid-stream, the retry streams the call again
from its start, and a consumer drops what the dead delivery had sent
(:func:`answer_texts` keeps the last delivery of each call).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis

DONE = "done"
DELTA = "delta"


def channel(query_id: str) -> str:
    return f"spendgraph:query:{query_id}:tokens"


class DeltaPublisher:
    """Publishes a query's deltas (one Redis connection pool per worker)."""

    def __init__(self, url: str):
        self.url = url
        self._redis = aioredis.Redis.from_url(url)

    async def publish(self, query_id: str, event: dict[str, Any]) -> None:
        await self._redis.publish(channel(query_id), json.dumps(event))

    async def aclose(self) -> None:
        await self._redis.aclose()


class DeltaSubscription:
    """A subscription to one query's deltas, open before the query starts."""

    def __init__(self, url: str, query_id: str):
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._channel = channel(query_id)

    async def __aenter__(self) -> DeltaSubscription:
        await self._pubsub.subscribe(self._channel)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pubsub.unsubscribe(self._channel)
        await self._pubsub.aclose()
        await self._redis.aclose()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The query's events as they arrive, until its ``done``."""
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            event = json.loads(message["data"])
            yield event
            if event.get("type") == DONE:
                return


def answer_texts(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Each call's streamed text (by key), from its last delivery only."""
    last: dict[str, int] = {}
    texts: dict[str, list[str]] = {}
    for event in events:
        if event.get("type") != DELTA:
            continue
        key, delivery = event["key"], event["delivery"]
        if delivery > last.get(key, 0):  # a retry: what the dead delivery sent is void
            last[key] = delivery
            texts[key] = []
        texts[key].append(event["text"])
    return {key: "".join(parts) for key, parts in texts.items()}
