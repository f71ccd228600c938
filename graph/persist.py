"""Where conversation threads are checkpointed: SQLite by default, PostgreSQL with a PG ledger.

``open_checkpointer()`` picks the saver from the ledger's URL: a SQLite
ledger gets an ``AsyncSqliteSaver`` on a file next to it
(``spendgraph.threads.db`` beside ``spendgraph.db``), a PostgreSQL ledger the
``AsyncPostgresSaver`` in the same database. A thread checkpointed there
survives a restart: a fresh graph on a fresh saver continues its history.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import make_url

from spendgraph.graph.errors import GraphBuildError
from spendgraph.providers.errors import ConfigError, LedgerError
from spendgraph.providers.ledger.store import redact_url, resolve_ledger_url, scrub

THREADS_SUFFIX = ".threads.db"


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


@asynccontextmanager
async def open_checkpointer(
    ledger_url: str | None = None,
    *,
    path: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> AsyncIterator[BaseCheckpointSaver]:
    """Open the checkpoint saver for the ledger at ``ledger_url`` for the ``async with`` block.

    ``path`` forces a SQLite file. ``ledger_url`` is resolved like the
    ledger's (``$SPENDGRAPH_LEDGER``, else ``./spendgraph.db``).
    """
    if path is not None:
        async with _sqlite(Path(path)) as saver:
            yield saver
        return
    url = resolve_ledger_url(ledger_url, env)
    if checkpoint_backend(url) is CheckpointBackend.POSTGRES:
        async with _postgres(url) as saver:
            yield saver
    else:
        async with _sqlite(default_checkpoint_path(url)) as saver:
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


@asynccontextmanager
async def _sqlite(path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if not path.parent.is_dir():
        raise ConfigError(f"cannot keep threads in {path}: directory {path.parent} does not exist")
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.setup()
        yield saver


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[BaseCheckpointSaver]:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "the ledger is on PostgreSQL, so threads are checkpointed there too: "
            "install spendgraph[postgres] (langgraph-checkpoint-postgres, psycopg)"
        ) from exc
    async with AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(
                AsyncPostgresSaver.from_conn_string(postgres_conninfo(url))
            )
            await saver.setup()
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", url)
            raise LedgerError(
                f"cannot open the thread checkpoints in {redact_url(url)}: {reason}"
            ) from None
        yield saver
