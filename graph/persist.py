"""Where conversation threads are checkpointed: SQLite by default, PostgreSQL with a PG ledger.

``open_checkpointer()`` picks the saver from the ledger's URL: a SQLite
ledger gets an ``AsyncSqliteSaver`` on a file next to it
(``spendgraph.threads.db`` beside ``spendgraph.db``), a PostgreSQL ledger the
``AsyncPostgresSaver`` in the same database. A thread checkpointed there
survives a restart: a fresh graph on a fresh saver continues its history.

A thread holds the conversation's text (it is what the next turn continues
from), so ``[threads] encryption_key_env`` encrypts every checkpoint at rest
with LangGraph's ``EncryptedSerializer`` (AES, pycryptodome). On PostgreSQL
the saver would keep plain strings (the user's input, the answer) inline in
the ``checkpoints`` JSONB column, outside the serializer; with a key they go
to ``checkpoint_blobs`` instead, encrypted like everything else. Listing and
purging threads (:mod:`spendgraph.graph.thread_admin`) needs no key.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import CipherProtocol, SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import make_url

from spendgraph.graph.errors import GraphBuildError
from spendgraph.providers.config import ThreadsConfig
from spendgraph.providers.errors import ConfigError, LedgerError
from spendgraph.providers.ledger.store import redact_url, resolve_ledger_url, scrub

THREADS_SUFFIX = ".threads.db"
# Checkpoint connections per process: enough for a served worker's concurrent queries.
PG_POOL_SIZE = 8
_PG_SETUP_LOCK = 0x5350454E4443  # "SPENDC": checkpoint tables' setup
KEY_SETTING = "[threads] encryption_key_env"


class CheckpointBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


def checkpoint_backend(ledger_url: str) -> CheckpointBackend:
    """Which saver goes with a (resolved) ledger URL."""
    backend = make_url(ledger_url).get_backend_name()
    return CheckpointBackend.POSTGRES if backend == "postgresql" else CheckpointBackend.SQLITE


def default_checkpoint_path(ledger_url: str) -> Path:
    """The SQLite checkpoint file next to a SQLite ledger (``x.db`` -> ``x.threads.db``)."""
    database = Path(make_url(ledger_url).database or "spendgraph.db")
    return database.with_name(database.stem + THREADS_SUFFIX)


def postgres_conninfo(ledger_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as the plain ``postgresql://`` psycopg conninfo."""
    url = make_url(ledger_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class ThreadsLocation:
    """Where a ledger's threads are: a SQLite file, or the PostgreSQL database itself."""

    backend: CheckpointBackend
    target: str  # the SQLite file, or the ledger's PostgreSQL URL

    def __str__(self) -> str:
        return self.target if self.backend is CheckpointBackend.SQLITE else redact_url(self.target)


def threads_location(
    ledger_url: str | None = None,
    *,
    path: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> ThreadsLocation:
    """Where :func:`open_checkpointer` keeps the threads of the ledger at ``ledger_url``."""
    if path is not None:
        return ThreadsLocation(CheckpointBackend.SQLITE, str(Path(path)))
    url = resolve_ledger_url(ledger_url, env)
    if checkpoint_backend(url) is CheckpointBackend.POSTGRES:
        return ThreadsLocation(CheckpointBackend.POSTGRES, url)
    return ThreadsLocation(CheckpointBackend.SQLITE, str(default_checkpoint_path(url)))


@asynccontextmanager
async def open_checkpointer(
    ledger_url: str | None = None,
    *,
    path: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
    threads: ThreadsConfig | None = None,
) -> AsyncIterator[BaseCheckpointSaver]:
    """Open the checkpoint saver for the ledger at ``ledger_url`` for the ``async with`` block.

    ``path`` forces a SQLite file. ``ledger_url`` is resolved like the
    ledger's (``$SPENDGRAPH_LEDGER``, else ``./spendgraph.db``). With
    ``threads.encryption_key_env`` set, checkpoints are encrypted with the key
    that variable holds (read from ``env``). A missing or wrong key for
    checkpoints that are encrypted is a ``ConfigError`` saying so, raised here
    (the newest checkpoint is read once) or by the read that meets one.
    """
    location = threads_location(ledger_url, path=path, env=env)
    key = (threads or ThreadsConfig()).encryption_key(env)
    name = threads.encryption_key_env if threads is not None else None
    serde = threads_serializer(key, key_env=name, where=str(location))
    async with open_saver(location, serde=serde, sealed=key is not None) as saver:
        await _read_newest(saver)
        yield saver


def threads_serializer(
    key: bytes | None, *, key_env: str | None = None, where: str = "the threads database"
) -> SerializerProtocol:
    """LangGraph's AES ``EncryptedSerializer`` for ``key``; without one, the plain serializer.

    Either way, a checkpoint that cannot be read for want of the right key is a
    ``ConfigError`` naming ``where`` and the setting, not a cipher traceback.
    """
    plain = _Serializer(where)
    if key is None:
        return plain
    aes = EncryptedSerializer.from_pycryptodome_aes(plain, key=key)
    return EncryptedSerializer(_ExplainedCipher(aes.cipher, where, key_env), plain)


@asynccontextmanager
async def open_saver(
    location: ThreadsLocation,
    *,
    serde: SerializerProtocol | None = None,
    sealed: bool = False,
    create: bool = True,
) -> AsyncIterator[BaseCheckpointSaver]:
    """The saver at ``location``, set up; ``create=False``: a missing database is an error.

    ``sealed`` (PostgreSQL): plain strings go to the serialized blobs, not inline.
    """
    if location.backend is CheckpointBackend.POSTGRES:
        async with _postgres(location.target, serde, sealed=sealed, create=create) as saver:
            yield saver
    else:
        async with _sqlite(Path(location.target), serde, create=create) as saver:
            yield saver


def with_checkpointer(
    graph: CompiledStateGraph, checkpointer: BaseCheckpointSaver | Literal[False] | None
) -> CompiledStateGraph:
    """A copy of a compiled graph that checkpoints its threads to ``checkpointer``.

    The one way to give a graph a saver: builders and ``App.build()`` return
    graphs without one. ``None`` drops it; ``False`` keeps a graph run inside
    another graph's node from checkpointing at all (by default it would use
    the outer run's saver).
    """
    unset = checkpointer is None or checkpointer is False
    if not unset and not isinstance(checkpointer, BaseCheckpointSaver):
        raise GraphBuildError(
            f"checkpointer must be a LangGraph checkpoint saver, got {type(checkpointer).__name__}"
        )
    return graph.copy(update={"checkpointer": checkpointer})


# -- serialization ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sealed:
    """A string channel value on its way to the (encrypted) blobs instead of inline JSONB."""

    value: str


class _Serializer(JsonPlusSerializer):
    """LangGraph's serializer, refusing encrypted data with a message instead of a traceback."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, _Sealed):
            obj = obj.value
        return super().dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if "+" in data[0]:  # EncryptedSerializer's "msgpack+aes": only it can read that
            raise ConfigError(
                f"the threads in {self.where} are encrypted and no key is configured: "
                f"set {KEY_SETTING} to the environment variable holding their key"
            )
        return super().loads_typed(data)


class _ExplainedCipher(CipherProtocol):
    """The AES cipher LangGraph builds, with a failed decryption explained."""

    def __init__(self, cipher: CipherProtocol, where: str, key_env: str | None) -> None:
        self.cipher = cipher
        self.where = where
        self.key_env = key_env

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return self.cipher.encrypt(plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        try:
            return self.cipher.decrypt(ciphername, ciphertext)
        except (ValueError, AssertionError):  # "MAC check failed", or another cipher's name
            held_in = f"${self.key_env}" if self.key_env else "the configured key"
            raise ConfigError(
                f"cannot decrypt the threads in {self.where}: the key in {held_in} "
                f"({KEY_SETTING}) is not the key they were encrypted with"
            ) from None


async def _read_newest(saver: BaseCheckpointSaver) -> None:
    """Deserialize the newest checkpoint: a wrong or missing key fails before any query."""
    # Closed here, not when the generator is collected: by then the saver's
    # connection may be closed ("Cannot operate on a closed database").
    async with aclosing(saver.alist(None, limit=1)) as newest:
        async for _ in newest:
            break


# -- savers -------------------------------------------------------------------


@asynccontextmanager
async def _sqlite(
    path: Path, serde: SerializerProtocol | None, *, create: bool
) -> AsyncIterator[BaseCheckpointSaver]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    _check_sqlite_path(path, create=create)
    async with aiosqlite.connect(str(path)) as conn:
        saver = AsyncSqliteSaver(conn, serde=serde)
        try:
            await saver.setup()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the threads database {path}: {exc}") from None
        yield saver


def _check_sqlite_path(path: Path, *, create: bool) -> None:
    if not create and not path.is_file():
        raise LedgerError(f"no threads database at {path}: no conversation was checkpointed there")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot keep threads in {path}: directory {path.parent} does not exist")


@asynccontextmanager
async def _postgres(
    url: str, serde: SerializerProtocol | None, *, sealed: bool, create: bool
) -> AsyncIterator[BaseCheckpointSaver]:
    saver_class = _postgres_saver_class(sealed)
    async with AsyncExitStack() as stack:
        try:
            pool = await stack.enter_async_context(_connection_pool(url))
            saver = saver_class(conn=pool, serde=serde)
            if not create and not await _has_postgres_checkpoints(saver):
                raise LedgerError(f"no thread checkpoints in {redact_url(url)}")
            await _setup_once(saver, pool)
        except LedgerError:
            raise
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", url)
            raise LedgerError(
                f"cannot open the thread checkpoints in {redact_url(url)}: {reason}"
            ) from None
        yield saver


async def _setup_once(saver: Any, pool: Any) -> None:
    """The saver's ``setup()`` (its own migrations), one process at a time: workers
    starting together would otherwise insert the same migration row and fail."""
    async with pool.connection() as lock:
        # Polled, not waited for: a statement blocked on the lock would hold a snapshot,
        # and the setup's CREATE INDEX CONCURRENTLY waits for every such snapshot.
        while True:
            cursor = await lock.execute("SELECT pg_try_advisory_lock(%s) AS got", (_PG_SETUP_LOCK,))
            if (await cursor.fetchone())["got"]:
                break
            await asyncio.sleep(0.05)
        try:
            await saver.setup()
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", (_PG_SETUP_LOCK,))


@asynccontextmanager
async def _connection_pool(url: str) -> AsyncIterator[Any]:
    """A pool rather than the saver's default single connection: concurrent queries of a
    served worker would otherwise queue behind one connection's lock."""
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        postgres_conninfo(url),
        min_size=1,
        max_size=PG_POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def pg_cursor(saver: Any) -> AsyncIterator[Any]:
    """A dict-row cursor on a PostgreSQL saver's pool (or single connection)."""
    conn = saver.conn
    if hasattr(conn, "connection"):  # a pool
        async with conn.connection() as pooled, pooled.cursor() as cur:
            yield cur
    else:
        async with conn.cursor() as cur:
            yield cur


async def _has_postgres_checkpoints(saver: Any) -> bool:
    async with pg_cursor(saver) as cur:
        await cur.execute("SELECT to_regclass('checkpoints') IS NOT NULL AS present")
        row = await cur.fetchone()
    return bool(row and row["present"])


@functools.cache
def _postgres_saver_class(sealed: bool) -> type:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "the ledger is on PostgreSQL, so threads are checkpointed there too: "
            "install spendgraph[postgres] (langgraph-checkpoint-postgres, psycopg)"
        ) from exc
    if not sealed:
        return AsyncPostgresSaver

    class SealedPostgresSaver(AsyncPostgresSaver):
        """Keeps string channel values out of the plain ``checkpoints`` JSONB.

        The saver stores ``None``/str/int/float/bool values inline, unserialized;
        wrapped, a string is stored like any other value: serialized (so
        encrypted) in ``checkpoint_blobs``. Each string channel's blob is
        (re)written at its current version -- an upsert that keeps an existing
        row -- so a thread begun unencrypted, whose unchanged strings were
        inline, still finds them.
        """

        async def aput(self, config, checkpoint, metadata, new_versions):  # type: ignore[override]
            values = checkpoint["channel_values"]
            strings = {k: _Sealed(v) for k, v in values.items() if isinstance(v, str)}
            if strings:
                current = checkpoint["channel_versions"]
                checkpoint = {**checkpoint, "channel_values": {**values, **strings}}
                new_versions = {
                    **{k: current[k] for k in strings if k in current},
                    **new_versions,
                }
            return await super().aput(config, checkpoint, metadata, new_versions)

    return SealedPostgresSaver
