"""Where the ledger lives: URL resolution, engine creation and SQLite settings.

The ledger is a SQLite file by default (WAL mode, one file, several processes
may share it) or a PostgreSQL database given by URL (several workers on
several machines). Messages never show a password: every URL in an error goes
through :func:`redact_url`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.sqltypes import register_sqlite_functions

LEDGER_ENV_VAR = "SPENDGRAPH_LEDGER"
DEFAULT_LEDGER_FILE = "spendgraph.db"
# A writer waits this long for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10
# Execution option marking a transaction that will write: on SQLite it starts
# with BEGIN IMMEDIATE, so it queues for the write lock up front instead of
# failing when a read transaction tries to upgrade.
WRITE_OPTION = "spendgraph_write"

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def resolve_ledger_url(explicit: str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The ledger's SQLAlchemy URL: ``explicit`` (``--ledger``), else ``$SPENDGRAPH_LEDGER``,
    else ``spendgraph.db`` in the working directory.

    A value without ``://`` is a file path (a SQLite ledger). SQLite paths are
    made absolute; ``postgresql://`` and ``postgres://`` use the psycopg 3
    driver. Raises :class:`LedgerError` for anything else.
    """
    raw = (explicit or "").strip() or (env.get(LEDGER_ENV_VAR) or "").strip()
    if not raw:
        return _sqlite_url(Path.cwd() / DEFAULT_LEDGER_FILE)
    if "://" not in raw:
        return _sqlite_url(Path(raw).expanduser())
    return _normalize_url(raw)


def redact_url(url: str | URL) -> str:
    """``url`` fit for a message: the password (in the userinfo or the query) replaced by ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def scrub(message: str, url: str | URL) -> str:
    """``message`` with any password that ``url`` carries replaced by ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return message
    secrets = [parsed.password, parsed.query.get("password")]
    for secret in secrets:
        if isinstance(secret, str) and secret:
            message = message.replace(secret, "***")
    return message


def describe_db_error(exc: BaseException) -> str:
    """The driver's own message, first line: short, and without the SQL statement."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"


def create_ledger_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for a URL from :func:`resolve_ledger_url`, configured for the ledger.

    SQLite: WAL journal, ``synchronous=NORMAL``, a busy timeout, foreign keys
    on, explicit BEGIN (so DDL is transactional too). With ``create=False`` a
    missing SQLite file is an error instead of a new empty ledger.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create=create)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    # pre_ping replaces connections a restarted server has dropped.
    return create_engine(
        parsed, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
    )


def _sqlite_url(path: Path) -> str:
    return URL.create("sqlite", database=str(path.absolute())).render_as_string()


def _normalize_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # Not `from exc`: SQLAlchemy's message repeats the URL, password included.
        raise LedgerError(f"not a valid ledger URL: {redact_url(raw)}") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise LedgerError(
                f"the ledger needs a file, not an in-memory database: {redact_url(raw)}"
            )
        path = Path(url.database).expanduser().absolute()
        return url.set(database=str(path)).render_as_string(hide_password=False)
    raise LedgerError(
        f"unsupported ledger database {backend!r} in {redact_url(raw)}: "
        "use a SQLite file path or a postgresql:// URL"
    )


def _sqlite_engine(url: URL, *, create: bool) -> Engine:
    path = Path(url.database or "")
    if not path.exists():
        if not create:
            raise LedgerError(f"no ledger at {path}")
        if not path.parent.is_dir():
            raise LedgerError(
                f"cannot create the ledger at {path}: directory {path.parent} does not exist"
            )
    engine = create_engine(
        url,
        # Error messages must never echo row values (they may be prompt text).
        hide_parameters=True,
        # The writer thread and readers share the pool; each connection is
        # only ever used by one thread at a time.
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Turn off pysqlite's own transaction handling; _begin_sqlite issues BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _use_wal(cursor)
        # In WAL mode NORMAL still survives an application crash; only an OS
        # crash or power loss can drop the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()
    register_sqlite_functions(dbapi_connection)


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (a lasting property of the file), unless it already is.

    The switch needs the file to itself and SQLite does not wait for that (no
    busy handler), so when several processes create a ledger at once, retry.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            try:
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
        if mode.lower() == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked: cannot switch it to WAL mode")
        time.sleep(0.01)


def _begin_sqlite(connection: Any) -> None:
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
