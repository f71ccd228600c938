"""The conftest guard refuses connections outside loopback and allows loopback."""

import socket

import pytest


def test_non_loopback_connection_fails():
    with socket.socket() as sock, pytest.raises(AssertionError, match="non-loopback"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routable


def test_loopback_connection_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())


def test_outside_name_lookup_fails():
    with pytest.raises(AssertionError, match="non-loopback"):
        socket.getaddrinfo("example.com", 443)
