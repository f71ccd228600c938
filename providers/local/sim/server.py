"""Running the simulator: in-process (tests, benchmarks) or in the foreground (CLI).

``run_simulator`` starts uvicorn on a free loopback port in a background
thread with its own event loop, waits until it accepts connections, and stops
it cleanly on exit::

    with run_simulator(time_scale=0.0, seed=0) as sim:
        client = openai.OpenAI(base_url=sim.replica_url("h100-fp8-0"), api_key="x")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from spendgraph.providers.local.sim.app import create_app
from spendgraph.providers.local.sim.fleet import Fleet, load_fleet
from spendgraph.providers.local.sim.state import SimOptions, SimState

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8900
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 15.0
# In-flight requests (e.g. a delay fault) get this long to finish when stopping.
_GRACEFUL_SHUTDOWN_S = 2
_KEEP_ALIVE_S = 75


class _CutResponseFilter(logging.Filter):
    """Drops uvicorn's error line for responses a cut fault ends on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


# Stateless, so sharing one instance is safe; addFilter ignores repeats.
_CUT_FILTER = _CutResponseFilter()


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving on ``base_url`` (``http://HOST:PORT``, no trailing slash)."""

    host: str
    port: int
    state: SimState

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def v1_url(self) -> str:
        """The fleet-wide OpenAI base URL (dispatches to the least-loaded replica)."""
        return f"{self.base_url}/v1"

    @property
    def fleet(self) -> Fleet:
        return self.state.fleet

    def replica_url(self, name: str) -> str:
        """The OpenAI base URL of one replica: ``http://HOST:PORT/r/<name>/v1``."""
        return f"{self.base_url}/r/{name}/v1"


def _resolve_fleet(fleet: Fleet | str | Path | None) -> Fleet:
    return fleet if isinstance(fleet, Fleet) else load_fleet(fleet)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP, and without it every response waits ~40 ms
    # for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(
    app: object, host: str, port: int, log_level: str, log_config: dict | None = None
) -> uvicorn.Config:
    """uvicorn settings; ``log_config=None`` leaves the host program's logging alone."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        lifespan="off",
        log_level=log_level,
        log_config=log_config,
        # Access lines only in the foreground server, where someone is watching.
        access_log=log_config is not None,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        # uvicorn's default of 5 s closes idle pooled connections under clients
        # that pause between bursts, and a client reusing one at that moment sees
        # a reset; inference servers behind load balancers keep them longer.
        timeout_keep_alive=_KEEP_ALIVE_S,
    )


@contextmanager
def run_simulator(
    fleet: Fleet | str | Path | None = None,
    *,
    time_scale: float = 0.0,
    seed: int = 0,
    host: str = DEFAULT_HOST,
    port: int = 0,
) -> Iterator[RunningSimulator]:
    """Serve the simulator in a background thread for the ``with`` block.

    ``fleet`` is a :class:`Fleet`, a fleet file path, or None for the shipped
    fleet. ``port=0`` picks a free port. Raises ``ConfigError`` for a bad fleet.
    """
    options = SimOptions(time_scale=time_scale, seed=seed)
    app = create_app(_resolve_fleet(fleet), options)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    server = uvicorn.Server(_uvicorn_config(app, host, bound_port, "warning"))
    logging.getLogger("uvicorn.error").addFilter(_CUT_FILTER)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"spendgraph-sim-{bound_port}",
        daemon=True,
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield RunningSimulator(host=bound_host, port=bound_port, state=app.state.sim)  # type: ignore[attr-defined]
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        sock.close()
        if thread.is_alive():  # pragma: no cover - a stuck shutdown
            server.force_exit = True
            thread.join(_STOP_TIMEOUT_S)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the fleet simulator failed to start")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fleet simulator did not start within {_START_TIMEOUT_S}s")
        time.sleep(0.005)


@asynccontextmanager
async def run_simulator_async(
    fleet: Fleet | str | Path | None = None,
    *,
    time_scale: float = 0.0,
    seed: int = 0,
    host: str = DEFAULT_HOST,
    port: int = 0,
) -> AsyncIterator[RunningSimulator]:
    """``run_simulator`` for async code: starts and stops without blocking the event loop.

    The server keeps its own thread and loop, so it behaves like a separate
    process would and the caller's loop only runs the client.
    """
    manager = run_simulator(fleet, time_scale=time_scale, seed=seed, host=host, port=port)
    sim = await asyncio.to_thread(manager.__enter__)
    try:
        yield sim
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def serve_forever(
    fleet: Fleet | str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    time_scale: float = 1.0,
    seed: int = 0,
    log_level: str = "info",
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (the ``spendgraph serve sim`` command)."""
    app = create_app(_resolve_fleet(fleet), SimOptions(time_scale=time_scale, seed=seed))
    # A terminal wants uvicorn's usual log lines.
    config = _uvicorn_config(app, host, port, log_level, uvicorn.config.LOGGING_CONFIG)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_CUT_FILTER)
    # uvicorn re-raises Ctrl-C after its graceful shutdown; by then all is
    # closed, so a Ctrl-C stop is a normal exit (status 0, no traceback).
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
