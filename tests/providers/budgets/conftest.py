"""Shared budget store fixtures: a PostgreSQL ledger in a schema of its own, spawned workers."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
from pg_schema import fresh_schema_url, postgres_server

from spendgraph.providers.ledger import Ledger


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A ledger URL on a fresh schema (migrated by the first open), dropped afterwards."""
    try:
        postgres_server()
    except RuntimeError as exc:  # not reachable: say how to start it
        pytest.fail(str(exc), pytrace=False)
    with fresh_schema_url("spendgraph_budgets") as url:
        Ledger.open(url).close()
        yield url


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    with Ledger.open(pg_url) as opened:
        yield opened


@pytest.fixture
def spawn():
    """The spawn context: workers start as fresh interpreters, as `serve --workers` does."""
    return multiprocessing.get_context("spawn")
