"""The writer's hot path: precompiled statements on one held DBAPI connection.

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
Chunks are powers of two so the driver's statement cache stays small. On
PostgreSQL a batch of calls is one ``COPY call (...) FROM STDIN``: psycopg
formats COPY rows in C, where binding arrays to ``INSERT ... SELECT * FROM
unnest(...)`` dumps every value in Python (64 rows: ~2.8 ms against ~5 ms
with the commit; a long multi-row VALUES statement is re-parsed on every
execution, ~8 ms). COPY has no ``ON CONFLICT``: a call whose id is already
written (a re-delivered durable activity) fails the batch, which rolls back
and goes to the Core path, whose insert skips that row.

Timestamps skip SQLAlchemy's processor chain (TypeDecorator, then the SQLite
DATETIME formatter: ~3 us a row, the costliest column) for
:func:`utc_text`, which writes the same text (a test compares the two).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from spendgraph.providers.ledger.sqltypes import UTCDateTime

# 256 rows x 27 columns stays far below SQLite's 32,766 bound parameters.
MAX_ROWS_PER_INSERT = 256


class FastPathFailed(Exception):
    """The batch failed and was rolled back: the Core path retries it (and isolates bad rows)."""


class _Statement:
    """One statement compiled for the driver: its SQL and how to turn params into a row."""

    def __init__(self, dialect: Dialect, statement: ClauseElement):
        # Every column of an insert, not only those its values() names.
        keys = [c.key for c in statement.table.columns] if isinstance(statement, Insert) else None
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        self.is_insert = bool(compiled.isinsert)
        if self.is_insert:  # head VALUES (group) tail: the group repeats per row
            start = self.sql.index("VALUES ") + len("VALUES ")
            end = _group_end(self.sql, start)
            self._head, self._group, self._tail = (
                self.sql[:start],
                self.sql[start:end],
                self.sql[end:],
            )
        self._multi_row: dict[int, str] = {}
        self._names: Sequence[str] = tuple(compiled.positiontup or ())
        self._copy = _copy_sql(dialect, statement, self._names) if keys else None
        processors: Mapping[str, Callable[[Any], Any]] = compiled._bind_processors
        timestamps = {
            name for name, bind in compiled.binds.items() if isinstance(bind.type, UTCDateTime)
        }
        fast_text = dialect.name == "sqlite"
        # Each value: the row's, else the one fixed in the statement itself (a
        # PostgreSQL query's owner, its lease's length).
        self._steps = tuple(
            (
                name,
                utc_text if fast_text and name in timestamps else processors.get(name),
                compiled.binds[name].value,
            )
            for name in self._names
        )

    def row(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        get = params.get
        return tuple(
            step(get(name, fixed)) if step else get(name, fixed)
            for name, step, fixed in self._steps
        )

    def insert_many(self, cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` with one statement per power-of-two chunk (PostgreSQL: one COPY)."""
        if self._copy is not None:
            with cursor.copy(self._copy) as copy:
                for params in rows:
                    copy.write_row(self.row(params))
            return
        start = 0
        while start < len(rows):
            size = min(MAX_ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
            values = [value for params in rows[start : start + size] for value in self.row(params)]
            cursor.execute(self._insert_sql(size), values)
            start += size

    def _insert_sql(self, rows: int) -> str:
        sql = self._multi_row.get(rows)
        if sql is None:
            groups = ", ".join([self._group] * rows)
            sql = self._multi_row[rows] = self._head + groups + self._tail
        return sql


def _copy_sql(dialect: Dialect, statement: Insert, names: Sequence[str]) -> str | None:
    """``COPY table (columns) FROM STDIN`` for a PostgreSQL insert of plain column
    values (None if it has SQL expressions: a query's lease)."""
    columns = statement.table.columns
    if dialect.name != "postgresql" or any(name not in columns for name in names):
        return None
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(name) for name in names)
    return f"COPY {quote(statement.table.name)} ({listed}) FROM STDIN"


def _group_end(sql: str, start: int) -> int:
    """Where the parenthesised group opening at ``sql[start]`` closes (one past it)."""
    depth = 0
    for index in range(start, len(sql)):
        if sql[index] == "(":
            depth += 1
        elif sql[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    raise ValueError(f"unbalanced VALUES group in {sql!r}")


def utc_text(value: datetime | None) -> str | None:
    """What SQLAlchemy stores in SQLite for a :class:`UTCDateTime`: naive UTC text."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


class FastPath:
    """Writes batches of ledger rows on a connection held by the writer thread."""

    def __init__(self, engine: Engine, statements: Mapping[str, ClauseElement]):
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        dialect = engine.dialect if self._sqlite else _positional(engine.dialect)
        self._statements = {key: _Statement(dialect, stmt) for key, stmt in statements.items()}
        self._errors = _driver_errors(engine.dialect)
        self._connection: Any = None

    def write(self, batches: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, list[int]]:
        """Run every statement over its rows in one transaction; per statement, the
        rowcount of each row. Raises :class:`FastPathFailed` (after rolling back)."""
        connection = self._connect()
        cursor = connection.cursor()
        counts: dict[str, list[int]] = {}
        try:
            if self._sqlite:  # pysqlite's own transactions are off (see store.py)
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
            if self._sqlite:
                cursor.execute("COMMIT")
            else:
                connection.commit()
        except self._errors as exc:
            with contextlib.suppress(*self._errors):
                cursor.close()
            self._discard()
            raise FastPathFailed(str(exc)) from exc
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
            with contextlib.suppress(*self._errors):
                connection.driver_connection.rollback()
            connection.invalidate()

    def close(self) -> None:
        """Give the held connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _positional(dialect: Dialect) -> Dialect:
    """A dialect like ``dialect`` that compiles ``%s`` placeholders (rows are tuples)."""
    positional = type(dialect)(paramstyle="format")
    positional.server_version_info = dialect.server_version_info
    return positional


def _driver_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
    if dialect.name == "sqlite":
        return (sqlite3.Error,)
    return (dialect.loaded_dbapi.Error,)
