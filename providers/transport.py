"""The HTTP client under every endpoint's ``AsyncOpenAI``: aiohttp when installed, else httpx.

The ``openai`` SDK sends through ``httpx2`` by default; its
``DefaultAioHttpClient`` keeps the same ``httpx2`` interface (requests,
responses, errors) over an aiohttp connection pool, which costs far less CPU
per request -- measured 1.2-1.5x the default client's throughput at 64
concurrent calls (``benchmarks/side_by_side.py``). aiohttp comes with the
``fast`` extra (``pip install 'spendgraph[fast]'``, the SDK's ``aiohttp``
extra). ``SPENDGRAPH_HTTP_CLIENT`` chooses: ``auto`` (the default: aiohttp if
installed), ``aiohttp`` (required: an error when it is missing) or ``httpx``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai

from spendgraph.providers.errors import ConfigError

TRANSPORT_ENV = "SPENDGRAPH_HTTP_CLIENT"
AIOHTTP, HTTPX, AUTO = "aiohttp", "httpx", "auto"
CHOICES = (AUTO, AIOHTTP, HTTPX)


@dataclass(frozen=True, slots=True)
class HttpClient:
    """A pooled HTTP client for ``AsyncOpenAI(http_client=...)`` and which transport it is."""

    client: Any  # an httpx2.AsyncClient (aiohttp's is a subclass with another transport)
    transport: str  # AIOHTTP or HTTPX

    async def aclose(self) -> None:
        """Close the pool (aiohttp's session with it: no "Unclosed client session")."""
        await self.client.aclose()


def transport_choice(env: Mapping[str, str]) -> str:
    """``SPENDGRAPH_HTTP_CLIENT`` from ``env`` (default ``auto``); a clear error for a typo."""
    value = env.get(TRANSPORT_ENV, "").strip().lower() or AUTO
    if value not in CHOICES:
        raise ConfigError(
            f"{TRANSPORT_ENV}={env[TRANSPORT_ENV]!r} is not one of {', '.join(CHOICES)}"
        )
    return value


def aiohttp_installed() -> bool:
    """Whether the SDK's aiohttp transport can be used (the ``fast`` extra is installed)."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def open_http_client(env: Mapping[str, str]) -> HttpClient:
    """The pool a provider layer shares among its endpoints, by ``SPENDGRAPH_HTTP_CLIENT``."""
    choice = transport_choice(env)
    if choice != HTTPX and aiohttp_installed():
        return HttpClient(openai.DefaultAioHttpClient(), AIOHTTP)
    if choice == AIOHTTP:
        raise ConfigError(
            f"{TRANSPORT_ENV}=aiohttp, but aiohttp is not installed: "
            "pip install 'spendgraph[fast]' (or unset it to fall back to httpx)"
        )
    return HttpClient(openai.DefaultAsyncHttpx2Client(), HTTPX)
