"""``spendgraph serve app --engine temporal``: the front door starts each query as a workflow.

The front door's processes make no model calls: each request becomes a query
workflow on the workers of a task queue (``spendgraph worker --engine
temporal APP``), and, with ``--redis``, the tokens the workers publish are
streamed to the client as they come (:mod:`spendgraph.durable.stream`).
Without Redis a streamed request still works: its answer comes in one piece
when the query ends. Everything the HTTP side does (keys, usage, the
extension field, 402 and 502, threads per tenant) is the in-process one's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from spendgraph.cli.options import CommandError
from spendgraph.graph import RunOptions
from spendgraph.graph.app import App


@dataclass(frozen=True, slots=True)
class TemporalServe:
    """Where a front door's queries go: the Temporal server, the task queue, the Redis."""

    address: str
    namespace: str = "default"
    task_queue: str = "spendgraph"
    redis: str | None = None


def check_reachable(temporal: TemporalServe) -> None:
    """Fail in the parent, in one line, when the server or Redis cannot be reached."""
    asyncio.run(_check(temporal))


async def _check(temporal: TemporalServe) -> None:
    from spendgraph.durable.worker import TemporalTarget, connect

    await connect(TemporalTarget(temporal.address, temporal.namespace, temporal.task_queue))
    if temporal.redis:
        await _ping_redis(temporal.redis)


async def _ping_redis(url: str) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise CommandError(f"cannot reach Redis at {url} (--redis): {exc}") from None
    finally:
        await client.aclose()


async def open_engines(temporal: TemporalServe, apps: list[App]) -> dict:
    """One query engine per app (by name), on one Temporal client."""
    from spendgraph.durable.worker import TemporalTarget, connect

    target = TemporalTarget(temporal.address, temporal.namespace, temporal.task_queue)
    client = await connect(target)
    return {app.name: _engine(client, app, temporal) for app in apps}


def _engine(client, app: App, temporal: TemporalServe):
    from spendgraph.durable.client import query_events, query_spec

    def run(text: str, thread_id: str, options: RunOptions) -> AsyncIterator:
        spec = query_spec(app.name, text, options, thread_id=thread_id)
        return query_events(client, spec, temporal.task_queue, temporal.redis)

    return run
