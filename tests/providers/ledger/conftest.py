"""Ledger fixtures: a real SQLite file in tmp_path and a real PostgreSQL schema per test.

PostgreSQL is required (this machine kind runs it on 127.0.0.1:5432); point
SPENDGRAPH_TEST_POSTGRES_URL elsewhere if needed. Each test gets its own
schema (selected through the URL's ``options=-csearch_path=...``), so parallel
runs never share tables; it is dropped afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    Ledger,
    QueryRecord,
    redact_url,
)
from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import Usage

POSTGRES_ENV = "SPENDGRAPH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

B200 = EndpointInfo("b200-nvfp4", "gpt-oss-120b", "B200", "nvfp4", "trtllm")
H100 = EndpointInfo("h100-fp8", "gpt-oss-120b", "H100", "fp8", "vllm")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL; fails the test clearly when it is not reachable."""
    url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    try:
        with psycopg.connect(url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        pytest.fail(
            f"the ledger tests need PostgreSQL at {redact_url(url)}: {exc}. Start it "
            f"(pg_ctlcluster <version> main start) or set {POSTGRES_ENV}.",
            pytrace=False,
        )
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A ledger URL pointing at a fresh, empty schema of its own."""
    schema = f"spendgraph_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """The same test against a SQLite file and against PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as opened:
        yield opened


def make_call(**overrides: Any) -> CallRecord:
    """A priced, successful call on the B200 endpoint, with ``overrides``."""
    fields: dict[str, Any] = {
        "endpoint": B200,
        "status": CallStatus.OK,
        "usage": Usage(input_uncached=100, input_cached=20, output=50, reasoning=10),
        "cost_usd": Decimal("0.000012"),
        "price_version": "p1",
        "started_at": T0,
    }
    fields.update(overrides)
    return CallRecord(**fields)


def make_query(**overrides: Any) -> QueryRecord:
    fields: dict[str, Any] = {"app": "research_chat", "user": "ana", "started_at": T0}
    fields.update(overrides)
    return QueryRecord(**fields)


def at(minutes: float) -> datetime:
    """T0 plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Hold a lock that stalls the ledger's inserts into ``call`` (another connection)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("COMMIT")
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute("LOCK TABLE call IN EXCLUSIVE MODE")
        yield
        pg.commit()


def execute_raw(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run one SQL statement on its own connection, outside the ledger; return its rows."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None)
        try:
            return conn.execute(statement).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(statement)
        return cursor.fetchall() if cursor.description else []


# What each audit dimension reads off a call record (and its query, if any).
GROUP_KEYS = {
    "agent": lambda r, q: r.agent_path,
    "endpoint": lambda r, q: r.endpoint.name,
    "model": lambda r, q: r.endpoint.model,
    "hardware": lambda r, q: r.endpoint.hardware,
    "app": lambda r, q: q.app if q else None,
    "user": lambda r, q: q.user if q else None,
    "tenant": lambda r, q: q.tenant if q else None,
    "day": lambda r, q: r.started_at.date().isoformat(),
}


def expected_groups(records, queries_by_id, group: str) -> dict:
    """``{key: (distinct queries, Spend)}`` per value of ``group``, from the records alone."""
    key_of = GROUP_KEYS[str(group)]
    groups: dict[Any, list] = defaultdict(list)
    for record in records:
        groups[key_of(record, queries_by_id.get(record.query_id))].append(record)
    return {
        key: (len({r.query_id for r in rs if r.query_id}), Spend.of_calls(rs))
        for key, rs in groups.items()
    }


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(
        call=make_call,
        query=make_query,
        at=at,
        T0=T0,
        B200=B200,
        H100=H100,
        write_lock=write_lock,
        execute_raw=execute_raw,
        expected_groups=expected_groups,
    )
