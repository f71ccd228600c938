"""An ASGI app served by uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_in_thread(
    build: Callable[[str], Any], *, lifespan: str = "off", **config: Any
) -> Iterator[str]:
    """Serve ``build(base_url)`` until the block ends; yields the base URL.

    ``build`` gets the URL first, for apps that must know where they are served.
    ``config`` goes to ``uvicorn.Config`` (e.g. ``timeout_graceful_shutdown``).
    """
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(build(base_url), log_level="warning", lifespan=lifespan, **config)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the server at {base_url} did not start")
        time.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
