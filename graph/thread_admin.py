"""Which conversation threads are stored, and purging them: what ``spendgraph threads`` runs.

LangGraph's savers have no call for "which threads exist, and since when", so
that is read from their tables (SQLite ``checkpoints``/``writes``, PostgreSQL
``checkpoints``/``checkpoint_blobs``/``checkpoint_writes``); deleting goes
through the saver's own ``adelete_thread``. None of it needs the threads' key:
a thread's last activity is the time inside its newest checkpoint id (a
time-ordered UUID v6), and whether it is encrypted shows in the serialized
types (``msgpack+aes``) and, on PostgreSQL, in strings kept inline.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from spendgraph.graph.persist import (
    CheckpointBackend,
    ThreadsLocation,
    open_saver,
    pg_cursor,
    threads_location,
    threads_serializer,
)
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.store import describe_db_error, scrub

# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000

_SQLITE_CHECKPOINTS = """
    SELECT thread_id, COUNT(*) AS n, MAX(checkpoint_id) AS newest,
           SUM(CASE WHEN type LIKE '%+%' THEN 1 ELSE 0 END) AS sealed
    FROM checkpoints GROUP BY thread_id
"""
_SQLITE_WRITES = """
    SELECT thread_id, COUNT(*) AS n, SUM(CASE WHEN type LIKE '%+%' THEN 1 ELSE 0 END) AS sealed
    FROM writes GROUP BY thread_id
"""
# A checkpoint "holds plain text" when a string sits inline in its channel_values.
_PG_CHECKPOINTS = """
    SELECT thread_id, COUNT(*) AS n, MAX(checkpoint_id) AS newest, 0 AS sealed,
           COUNT(*) - COUNT(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM jsonb_each(checkpoint -> 'channel_values') AS e
               WHERE jsonb_typeof(e.value) = 'string')) AS n_clean
    FROM checkpoints GROUP BY thread_id
"""
_PG_TYPED = """
    SELECT thread_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE type LIKE '%+%') AS sealed
    FROM {table} WHERE type <> 'empty' GROUP BY thread_id
"""


class Encryption(StrEnum):
    YES = "yes"  # everything that can hold text is encrypted
    NO = "no"
    PARTLY = "partly"  # checkpoints from before a key was configured are still plain


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One stored thread: how many checkpoints, when it was last written, encrypted or not."""

    thread_id: str
    checkpoints: int
    last_active: datetime | None  # None: its checkpoint ids carry no time
    encrypted: Encryption


def checkpoint_time(checkpoint_id: str | None) -> datetime | None:
    """The time inside a LangGraph checkpoint id (UUID v6), ``None`` for any other id."""
    try:
        parsed = uuid.UUID(str(checkpoint_id))
    except ValueError:
        return None
    if parsed.version != 6:
        return None
    ticks = (parsed.time_low << 28) | (parsed.time_mid << 12) | (parsed.time_hi_version & 0x0FFF)
    return datetime.fromtimestamp((ticks - _UUID_EPOCH_OFFSET) / 10_000_000, tz=UTC)


def select_threads(
    threads: Iterable[ThreadInfo],
    *,
    older_than: datetime | None = None,
    thread_ids: Collection[str] = (),
) -> list[ThreadInfo]:
    """The threads both criteria pick (a criterion not given picks every thread).

    ``older_than``: last active before that time; a thread whose age is
    unknown is never picked by age.
    """
    wanted = set(thread_ids)
    return [
        thread
        for thread in threads
        if (not wanted or thread.thread_id in wanted)
        and (
            older_than is None
            or (thread.last_active is not None and thread.last_active < older_than)
        )
    ]


class ThreadAdmin:
    """The stored threads of one threads database; see :func:`open_thread_admin`."""

    def __init__(self, saver: BaseCheckpointSaver, location: ThreadsLocation) -> None:
        self.saver = saver
        self.location = location

    async def threads(self) -> list[ThreadInfo]:
        """Every stored thread, most recently active first."""
        if self.location.backend is CheckpointBackend.POSTGRES:
            checkpoints = await self._pg_rows(_PG_CHECKPOINTS)
            typed = [
                *await self._pg_rows(_PG_TYPED.format(table="checkpoint_blobs")),
                *await self._pg_rows(_PG_TYPED.format(table="checkpoint_writes")),
            ]
        else:
            checkpoints = await self._sqlite_rows(_SQLITE_CHECKPOINTS)
            typed = await self._sqlite_rows(_SQLITE_WRITES)
        found = _combine(checkpoints, typed)
        newest_first = sorted(found, key=lambda t: t.last_active or _NEVER, reverse=True)
        return newest_first

    async def purge(self, threads: Sequence[ThreadInfo]) -> None:
        """Delete ``threads`` (every checkpoint, blob and pending write of each).

        On SQLite the file is vacuumed afterwards, so the deleted text does not
        linger in free pages or the write-ahead log.
        """
        with self._db_errors("purge"):
            for thread in threads:
                await self.saver.adelete_thread(thread.thread_id)
            if threads and self.location.backend is CheckpointBackend.SQLITE:
                conn: Any = self.saver.conn  # type: ignore[attr-defined]
                async with self.saver.lock:  # type: ignore[attr-defined]
                    await conn.execute("VACUUM")
                    await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _sqlite_rows(self, query: str) -> list[dict[str, Any]]:
        conn: Any = self.saver.conn  # type: ignore[attr-defined]
        with self._db_errors("read"):
            async with self.saver.lock, conn.execute(query) as cur:  # type: ignore[attr-defined]
                names = [column[0] for column in cur.description]
                return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def _pg_rows(self, query: str) -> list[dict[str, Any]]:
        with self._db_errors("read"):
            async with pg_cursor(self.saver) as cur:
                await cur.execute(query)
                return list(await cur.fetchall())  # the saver's connection yields dict rows

    @contextmanager
    def _db_errors(self, doing: str) -> Iterator[None]:
        """The driver's errors as a :class:`LedgerError` naming the threads database."""
        try:
            yield
        except (sqlite3.Error, *_postgres_errors()) as exc:
            reason = scrub(describe_db_error(exc), self.location.target)
            raise LedgerError(f"cannot {doing} the threads in {self.location}: {reason}") from None


_NEVER = datetime.min.replace(tzinfo=UTC)


def _postgres_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installed extras
        return ()
    return (psycopg.Error,)


def _combine(checkpoints: list[dict[str, Any]], typed: list[dict[str, Any]]) -> list[ThreadInfo]:
    """One :class:`ThreadInfo` per thread from the per-table counts."""
    sealed: dict[str, int] = {}
    plain: dict[str, int] = {}
    for row in [*checkpoints, *typed]:
        tid, n, n_sealed = row["thread_id"], int(row["n"]), int(row["sealed"] or 0)
        # PostgreSQL checkpoints are not serialized: only inline strings make them plain.
        clean = int(row["n_clean"]) if "n_clean" in row else n_sealed
        sealed[tid] = sealed.get(tid, 0) + n_sealed
        plain[tid] = plain.get(tid, 0) + n - clean
    info = []
    for row in checkpoints:
        tid = row["thread_id"]
        if not sealed[tid]:
            encrypted = Encryption.NO
        else:
            encrypted = Encryption.PARTLY if plain[tid] else Encryption.YES
        info.append(ThreadInfo(tid, int(row["n"]), checkpoint_time(row["newest"]), encrypted))
    return info


@asynccontextmanager
async def open_thread_admin(
    ledger_url: str | None = None,
    *,
    path: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> AsyncIterator[ThreadAdmin]:
    """The threads kept for the ledger at ``ledger_url`` (as :func:`open_checkpointer`
    finds them), without creating a database that is not there and without a key."""
    location = threads_location(ledger_url, path=path, env=env)
    serde = threads_serializer(None, where=str(location))
    async with open_saver(location, serde=serde, create=False) as saver:
        yield ThreadAdmin(saver, location)
