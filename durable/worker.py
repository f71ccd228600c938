"""A worker: the query workflow and its activities, on one task queue of a Temporal server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.worker import Worker

from spendgraph.durable.activities import QueryActivities
from spendgraph.durable.names import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE
from spendgraph.durable.workflow import QueryWorkflow
from spendgraph.providers.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TemporalTarget:
    """Where the Temporal server is, and which task queue the app's queries go to."""

    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE


async def connect(target: TemporalTarget) -> Client:
    """A client of the server; a server that cannot be reached is a clear error."""
    try:
        return await Client.connect(target.address, namespace=target.namespace)
    except RuntimeError as exc:  # the SDK's core reports connection failures so
        raise ConfigError(
            f"cannot reach the Temporal server at {target.address} (--address): {_reason(exc)}"
        ) from exc


def _reason(exc: RuntimeError) -> str:
    """The gist of the core's connection error (its text is a nested Rust debug dump)."""
    text = str(exc)
    match = re.search(r'(?:message|error): "([^"]+)"', text)
    if match:
        return match.group(1).lower()
    return text if len(text) <= 80 else text[:77] + "..."


async def run_worker(
    client: Client,
    activities: QueryActivities,
    target: TemporalTarget,
    stop: asyncio.Event,
    *,
    max_concurrent_activities: int = 64,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve the workflow and the activities until ``stop`` is set (``ready``: once polling)."""
    worker = Worker(
        client,
        task_queue=target.task_queue,
        workflows=[QueryWorkflow],
        activities=activities.all(),
        max_concurrent_activities=max_concurrent_activities,
    )
    try:
        async with worker:
            if ready is not None:
                ready()
            await stop.wait()
    finally:
        await activities.aclose()
