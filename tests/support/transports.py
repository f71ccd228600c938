"""Running a test module over both HTTP clients a provider layer can send through.

A module overrides ``make_layer``'s ``http_transport`` fixture with::

    http_transport = both_transports()
"""

from __future__ import annotations

import pytest

from spendgraph.providers.transport import AIOHTTP, HTTPX, aiohttp_installed

TRANSPORTS = (AIOHTTP, HTTPX)


def both_transports():
    """An ``http_transport`` fixture parametrized over aiohttp and httpx (aiohttp skips
    when the ``fast`` extra is not installed)."""

    @pytest.fixture(params=TRANSPORTS)
    def http_transport(request: pytest.FixtureRequest) -> str:
        if request.param == AIOHTTP and not aiohttp_installed():
            pytest.skip("aiohttp is not installed (the `fast` extra)")
        return request.param

    return http_transport
