"""A fresh PostgreSQL schema per test, on the machine's server (or $SPENDGRAPH_TEST_POSTGRES_URL).

The URL selects the schema with ``options=-csearch_path=...``, so the ledger,
the checkpoints and the budget store of one test share it, and parallel runs
never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

POSTGRES_ENV = "SPENDGRAPH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_server() -> str:
    """The server URL; raises with how to start it when it is not reachable."""
    url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    try:
        with psycopg.connect(url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        raise RuntimeError(
            f"this test needs PostgreSQL ({exc}); start it or set {POSTGRES_ENV}"
        ) from None
    return url


@contextmanager
def fresh_schema_url(prefix: str = "spendgraph_test") -> Iterator[str]:
    """A URL on an empty schema of its own, dropped afterwards."""
    server = postgres_server()
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
