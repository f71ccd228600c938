"""The front door served for tests: in a thread of this process, or as a real CLI process.

``front_door_thread`` runs exactly what a ``spendgraph serve app`` worker runs
(``worker``'s backend: provider layer, ledger, checkpointer, compiled apps)
under uvicorn in a background thread, on a free loopback port.
``serve_process`` starts ``spendgraph serve app`` itself (for workers and
signals) and waits until ``/health`` answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from loopback_server import serve_in_thread

from spendgraph.cli.serve_app import ServeSpec, open_backend
from spendgraph.serve import FrontDoorOptions, front_door


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def front_door_thread(spec: ServeSpec) -> Iterator[str]:
    """Serve ``spec`` in this process; yields the base URL (``.../v1`` is the API)."""
    options = FrontDoorOptions(require_keys=spec.require_keys)
    app = front_door(lambda: open_backend(spec), options)
    with serve_in_thread(lambda _url: app, lifespan="on") as url:
        yield url


@dataclass(frozen=True)
class Streamed:
    """What a streamed completion delivered: each delta's text, the finish reason, the
    usage chunk and the ``spendgraph`` extension (the last seen of each)."""

    pieces: list[str]
    finish: str | None
    usage: object | None
    extension: dict | None


async def read_stream(stream) -> Streamed:
    """Read an ``openai`` streamed completion to its end."""
    pieces, finish, usage, extension = [], None, None, None
    async for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
        extension = (chunk.model_extra or {}).get("spendgraph") or extension
    return Streamed(pieces, finish, usage, extension)


@dataclass
class ServeProcess:
    process: subprocess.Popen
    base_url: str
    log_path: str

    def log(self) -> str:
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (to the whole process group) and wait for the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        return self.process.wait(timeout=timeout)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGRAPH_")}
    return {**env, "NO_COLOR": "1", "COLUMNS": "120", **extra}


@contextmanager
def serve_process(
    args: Sequence[str], log_path: str, *, env: dict[str, str] | None = None, wait_s: float = 90
) -> Iterator[ServeProcess]:
    """``spendgraph serve app ARGS --port P`` as a process (group) of its own."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "spendgraph.cli.main",
        "serve",
        "app",
        *args,
        "--port",
        str(port),
    ]
    with Path(log_path).open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or cli_env(),
            start_new_session=True,
        )
    served = ServeProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_healthy(served, wait_s)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_healthy(served: ServeProcess, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"serve exited with {served.process.returncode}:\n{served.log()}")
        try:
            if httpx.get(served.base_url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"serve did not become healthy in {wait_s} s:\n{served.log()}")
