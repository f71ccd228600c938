"""The fleet simulator behind a counter of the chat requests it received (signal tests).

The simulator's own metrics count tokens and finished requests; a test that
kills its client mid-flight needs the requests the server *accepted*, to
compare with the ledger's rows one for one.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loopback_server import serve_in_thread

from spendgraph.providers.local.sim.app import create_app
from spendgraph.providers.local.sim.fleet import load_fleet
from spendgraph.providers.local.sim.state import SimOptions, SimState


class _CountingApp:
    """ASGI wrapper: counts ``.../chat/completions`` requests, then serves them."""

    def __init__(self, app: Any):
        self.app = app
        self.chat_requests = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            with self._lock:
                self.chat_requests += 1
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class CountingSimulator:
    base_url: str
    state: SimState
    _app: _CountingApp

    @property
    def chat_requests(self) -> int:
        """Chat completion requests received so far (every attempt the server saw)."""
        return self._app.chat_requests

    def requests_running(self) -> int:
        """Requests being served right now (its vLLM-style gauge, all replicas)."""
        lines = self.state.metrics.render().decode().splitlines()
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in lines
            if line.startswith("vllm:num_requests_running{")
        )

    def wait_running(
        self, at_least: int, client: subprocess.Popen | None = None, timeout: float = 60.0
    ) -> int:
        """Block until ``at_least`` requests are running (failing early if ``client``
        exits first); how many are."""
        deadline = time.monotonic() + timeout
        while (running := self.requests_running()) < at_least:
            if client is not None and client.poll() is not None:
                _, err = client.communicate()
                raise RuntimeError(f"the client exited {client.returncode} first: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{running} requests running after {timeout}s")
            time.sleep(0.01)
        return running


@contextmanager
def counting_simulator(time_scale: float = 1.0) -> Iterator[CountingSimulator]:
    """The shipped fleet on a free loopback port, counting its chat requests."""
    app = _CountingApp(create_app(load_fleet(), SimOptions(time_scale=time_scale)))
    with serve_in_thread(lambda _url: app, timeout_graceful_shutdown=1) as url:
        yield CountingSimulator(url, app.app.state.sim, app)
