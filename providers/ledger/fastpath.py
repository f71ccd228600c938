"""The SQLite writer's hot path: precompiled statements on one held DBAPI connection.

A batch through SQLAlchemy's Core execution costs ~250 us of Python per
transaction, on the writer thread -- which holds the GIL the application's
event loop needs, so at one or two rows per batch (calls finishing one by
one) it shows up as latency in the application. The same inserts through a
held ``sqlite3`` connection, with the statements and bind processors compiled
once by SQLAlchemy (so values are converted exactly as the Core path does:
Decimal as exact text, datetimes as UTC), cost ~90 us. Any error rolls back
and hands the batch to the Core path, which isolates bad rows.

Inserts go as multi-row ``INSERT ... VALUES (...), (...)`` statements rather
than ``executemany``: the sqlite3 module releases and re-takes the GIL around
every statement step, so ``executemany`` hands the GIL back and forth with the
event loop once per row (~14 futex calls per row under 64 concurrent calls).
Chunks are powers of two so the driver's statement cache stays small.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

# 256 rows x 27 columns stays far below SQLite's 32,766 bound parameters.
MAX_ROWS_PER_INSERT = 256


class _Statement:
    """One statement compiled for SQLite: its SQL and how to turn params into a row."""

    def __init__(self, engine: Engine, statement: ClauseElement):
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.is_insert = bool(compiled.isinsert)
        values = self.sql.rfind("VALUES ") + len("VALUES ")
        self._head, self._group = self.sql[:values], self.sql[values:]  # inserts only
        self._multi_row: dict[int, str] = {}
        self._names: Sequence[str] = tuple(compiled.positiontup or ())
        processors: Mapping[str, Callable[[Any], Any]] = compiled._bind_processors
        self._steps = tuple((name, processors.get(name)) for name in self._names)

    def row(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            step(params.get(name)) if step else params.get(name) for name, step in self._steps
        )

    def insert_many(self, cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` with one statement per power-of-two chunk."""
        start = 0
        while start < len(rows):
            size = min(MAX_ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
            values = [value for params in rows[start : start + size] for value in self.row(params)]
            cursor.execute(self._insert_sql(size), values)
            start += size

    def _insert_sql(self, rows: int) -> str:
        sql = self._multi_row.get(rows)
        if sql is None:
            sql = self._multi_row[rows] = self._head + ", ".join([self._group] * rows)
        return sql


class SqliteFastPath:
    """Writes batches of ledger rows on a connection held by the writer thread."""

    def __init__(self, engine: Engine, statements: Mapping[str, ClauseElement]):
        self._engine = engine
        self._statements = {key: _Statement(engine, stmt) for key, stmt in statements.items()}
        self._connection: Any = None

    def write(self, batches: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, list[int]]:
        """Run every statement over its rows in one transaction; per statement, the
        rowcount of each row. Raises ``sqlite3.Error`` (after rolling back)."""
        connection = self._connect()
        cursor = connection.cursor()
        counts: dict[str, list[int]] = {}
        try:
            cursor.execute("BEGIN IMMEDIATE")
            for key, rows in batches.items():
                statement = self._statements[key]
                if statement.is_insert:
                    statement.insert_many(cursor, rows)
                    counts[key] = [1] * len(rows)
                else:  # updates: each row's own rowcount matters
                    counts[key] = []
                    for params in rows:
                        cursor.execute(statement.sql, statement.row(params))
                        counts[key].append(cursor.rowcount)
            cursor.execute("COMMIT")
        except sqlite3.Error:
            self._discard()
            raise
        finally:
            cursor.close()
        return counts

    def _connect(self) -> Any:
        if self._connection is None:
            # Through the engine's pool, so its connect hooks (WAL, busy timeout,
            # foreign keys, the exact-decimal SUM) configure this connection too.
            self._connection = self._engine.raw_connection()
        return self._connection.driver_connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.driver_connection.rollback()
            connection.invalidate()

    def close(self) -> None:
        """Give the held connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
