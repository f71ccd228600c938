"""Token deltas of a durable query, out of band: Redis pub/sub, one channel per query.

The model calls of a durable query run on whichever worker Temporal picks, so
their token deltas cannot come back through the caller's event stream. A
worker started with a Redis URL publishes each delta of a streamed call to
``spendgraph:query:<id>:tokens``, and the graph driver publishes ``done``
when the run ends; the caller subscribes *before* it starts the workflow
(pub/sub keeps no history). Every delta names its call (``key``) and
delivery: after a worker died mid-stream, the retry streams the call again
from its start, and a consumer drops what the dead delivery had sent
(:func:`answer_texts` keeps the last delivery of each call). The graph driver
also publishes the run's other events a caller shows (agents starting and
finishing, routing, tool calls, budget refusals: :func:`event_message`), which
:func:`run_event` turns back into the in-process engine's event types.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from spendgraph.graph.events import (
    AgentFinished,
    AgentStarted,
    BudgetExhausted,
    DraftReady,
    Routed,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
    VerdictReady,
)

log = logging.getLogger("spendgraph.durable")

DONE = "done"
DELTA = "delta"
EVENT = "event"
# The driver's events that travel: plain values only. Token deltas come from the
# model-call activities instead (the driver sees each streamed answer as one piece).
_FORWARDED = {
    kind.__name__: kind
    for kind in (
        AgentStarted,
        AgentFinished,
        Routed,
        ToolCallStarted,
        ToolCallFinished,
        BudgetExhausted,
        DraftReady,
        VerdictReady,
    )
}


def channel(query_id: str) -> str:
    return f"spendgraph:query:{query_id}:tokens"


class DeltaPublisher:
    """Publishes a query's deltas (one Redis connection pool per worker).

    Best effort: streaming is a view of the call, not the call. Redis down drops the
    deltas (the answer still arrives whole, when the query ends) and never fails the
    call -- which Temporal would then run, and pay for, again."""

    def __init__(self, url: str):
        self.url = url
        self._redis = aioredis.Redis.from_url(url)
        self.dropped = 0  # messages Redis did not take

    async def publish(self, query_id: str, event: dict[str, Any]) -> None:
        try:
            await self._redis.publish(channel(query_id), json.dumps(event))
        except (RedisError, OSError) as exc:
            if not self.dropped:
                log.warning("token deltas not streamed: Redis at %s failed (%s)", self.url, exc)
            self.dropped += 1

    async def aclose(self) -> None:
        await self._redis.aclose()


class DeltaSubscription:
    """A subscription to one query's deltas, open before the query starts."""

    def __init__(self, url: str, query_id: str):
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._channel = channel(query_id)

    async def __aenter__(self) -> DeltaSubscription:
        try:
            await self._pubsub.subscribe(self._channel)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._pubsub.unsubscribe(self._channel)
        finally:
            await self._close()

    async def _close(self) -> None:
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


def event_message(event: object) -> dict[str, Any] | None:
    """The message a driver publishes for one of its run's events (None: not forwarded)."""
    kind = type(event).__name__
    if _FORWARDED.get(kind) is not type(event):
        return None
    data = dataclasses.asdict(event)  # type: ignore[call-overload]
    data.pop("parsed", None)  # an agent's parsed output may not be JSON
    if isinstance(event, Routed):
        data["to"] = list(event.to)
    return {"type": EVENT, "kind": kind, "data": data}


def run_event(message: dict[str, Any]) -> object | None:
    """A published message as a run event: a :class:`TokenDelta` for a delta, the
    driver's event for an ``event`` message (None for anything else)."""
    if message.get("type") == DELTA:
        path = message.get("agent_path") or ""
        return TokenDelta(path.rsplit("/", 1)[-1], path, message["text"])
    if message.get("type") == EVENT and message.get("kind") in _FORWARDED:
        data = dict(message["data"])
        if message["kind"] == Routed.__name__:
            data["to"] = tuple(data["to"])
        return _FORWARDED[message["kind"]](**data)
    return None
