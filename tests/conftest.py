"""Suite-wide guards: no test may reach beyond this machine."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NonLoopbackConnection(AssertionError):
    """A test tried to open a connection to an address outside this machine."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX socket path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NonLoopbackConnection(f"test tried to connect to non-loopback address {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NonLoopbackConnection(f"test tried to connect to non-loopback address {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    # A name lookup for an outside host would itself send a DNS query.
    if host is not None and not _is_loopback(
        (host.decode() if isinstance(host, bytes) else host, 0)
    ):
        raise NonLoopbackConnection(f"test tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Fail any connection to a non-loopback address, for the whole session."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.getaddrinfo = _real_getaddrinfo
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def sim():
    """The fleet simulator with its shipped fleet at time scale 0, shared by a test module."""
    from spendgraph.providers.local.sim.server import run_simulator

    with run_simulator(time_scale=0.0, seed=0) as running:
        yield running
