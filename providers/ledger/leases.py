"""Who runs a query, and for how long that holds: owners, leases and the stale sweep.

Every query a :class:`~spendgraph.providers.ledger.Ledger` opens is stamped
with the ledger's owner id (``host:pid:random``, :func:`new_owner_id`), a
heartbeat and a lease (``lease_expires_at``). While the process lives, a
:class:`LeaseRenewer` thread pushes the lease forward for all of that owner's
running queries with one UPDATE every ``duration_s / 3`` seconds, however many
there are. A process that dies unannounced (SIGKILL, out of memory, a lost
host) stops renewing; once its lease has run out, any process sharing the
ledger -- the next ``spendgraph run``, another worker of ``serve app``, an
``audit`` -- marks the query ``interrupted`` with
:func:`mark_stale_interrupted`.

Safe with several workers on one PostgreSQL ledger:

* the sweep is one conditional ``UPDATE ... WHERE status = 'running' AND
  lease_expires_at < now``: atomic on both databases, so a query is marked
  once, and a query closed meanwhile is left alone;
* a live owner's lease is renewed at a third of its duration, so it never
  looks expired (unless the owner cannot reach the database for two thirds of
  the lease: then it cannot record anything either);
* times are the database's clock on PostgreSQL (``now()``: hosts with skewed
  clocks agree), this machine's clock on SQLite (one file, one machine).

A closed query's lease is cleared (NULL), so the ``lease_expires_at`` index
holds running queries only and the sweep's range scan stays small. A process
that was only paused past its lease (SIGSTOP, a suspended VM) finds its
queries marked ``interrupted``; its close still records the real outcome.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Update,
    case,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from spendgraph.providers.ledger.records import QueryStatus, utcnow
from spendgraph.providers.ledger.store import WRITE_OPTION, describe_db_error
from spendgraph.providers.ledger.tables import QUERY

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
MIN_LEASE_S = 1.0
MAX_LEASE_S = 86_400.0
# After a failed renewal, try again this soon (a lease has a few of these).
_RETRY_S = 1.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every lease


@dataclass(frozen=True, slots=True)
class LeaseOptions:
    """How long a running query's lease lasts (``[ledger] lease_s``); renewed every third."""

    duration_s: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        value = self.duration_s
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"lease duration must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or not MIN_LEASE_S <= value <= MAX_LEASE_S:
            raise ValueError(
                f"lease duration must be between {MIN_LEASE_S:g} and {MAX_LEASE_S:g} s, "
                f"got {value!r}"
            )

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_s)

    @property
    def renew_every_s(self) -> float:
        return self.duration_s / 3


DEFAULT_LEASE = LeaseOptions()


def new_owner_id() -> str:
    """An id for one process's ledger: ``host:pid:random`` (the random part survives pid reuse)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _now(conn_or_engine: Connection | Engine) -> Any:
    """The current time as SQL: the server's clock on PostgreSQL, ours on SQLite."""
    if conn_or_engine.dialect.name == "postgresql":
        return func.now()
    return utcnow()


def lease_columns(conn_or_engine: Connection | Engine, owner: str, lease: LeaseOptions):
    """``owner``/``heartbeat_at``/``lease_expires_at`` of a query opened now.

    On PostgreSQL SQL expressions (put them in the INSERT's ``values()``), on
    SQLite plain values (bind parameters).
    """
    now = _now(conn_or_engine)
    return {"owner": owner, "heartbeat_at": now, "lease_expires_at": now + lease.duration}


def renew_statement(conn_or_engine: Connection | Engine, owner: str, lease: LeaseOptions) -> Update:
    """One UPDATE renewing the lease of every running query of ``owner``."""
    now = _now(conn_or_engine)
    return (
        update(QUERY)
        .where(
            # A range, not IS NOT NULL (which SQLite answers with a table scan):
            # the index holds running queries only.
            QUERY.c.lease_expires_at >= _EPOCH,
            QUERY.c.owner == owner,
            QUERY.c.status == QueryStatus.RUNNING.value,
        )
        .values(heartbeat_at=now, lease_expires_at=now + lease.duration)
    )


def _stale(when: Any) -> tuple[ColumnElement[bool], ...]:
    return (
        QUERY.c.lease_expires_at < when,
        QUERY.c.status == QueryStatus.RUNNING.value,
    )


def _sweep_statement(conn: Connection, now: datetime | None) -> Update:
    when = _now(conn) if now is None else now
    reason = (
        literal("interrupted: its process (")
        + func.coalesce(QUERY.c.owner, "unknown, before leases")
        + ") stopped renewing its lease; it died or was killed"
    )
    return (
        update(QUERY)
        .where(*_stale(when))
        .values(
            status=QueryStatus.INTERRUPTED.value,
            # When it was last known alive (legacy rows: when the lease ran out).
            finished_at=func.coalesce(QUERY.c.heartbeat_at, QUERY.c.lease_expires_at),
            error=reason,
            lease_expires_at=null(),
        )
        .returning(QUERY.c.id)
    )


def mark_stale_interrupted(target: Engine | Connection, now: datetime | None = None) -> list[str]:
    """Mark every running query whose lease expired before ``now`` as ``interrupted``.

    ``now`` defaults to the database's clock (PostgreSQL) or this machine's
    (SQLite). Returns the ids marked. Atomic: safe while other processes
    renew, close or sweep. Raises SQLAlchemy errors (the caller maps them).
    """
    if isinstance(target, Connection):
        return list(target.execute(_sweep_statement(target, now)).scalars())
    # Look first, without the write lock: usually nothing is stale, and an audit
    # must not queue behind a busy writer for nothing.
    with target.connect() as conn:
        stale = conn.execute(
            select(QUERY.c.id).where(*_stale(_now(conn) if now is None else now)).limit(1)
        ).first()
    if stale is None:
        return []
    with target.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        return list(conn.execute(_sweep_statement(conn, now)).scalars())


def adopt_statement(
    conn_or_engine: Connection | Engine, query_id: str, owner: str, lease: LeaseOptions
) -> Update:
    """One UPDATE making ``owner`` the live owner of a query another process began.

    A durable query moves between workers: the one that opened it may die while
    the query goes on elsewhere. The process now driving it takes the lease over,
    so the query (and the budget holds it keeps) is not swept as abandoned; a query
    a sweep already marked ``interrupted`` is running again. A closed query is
    left as it is (the UPDATE matches nothing).
    """
    now = _now(conn_or_engine)
    interrupted = QUERY.c.status == QueryStatus.INTERRUPTED.value
    return (
        update(QUERY)
        .where(
            QUERY.c.id == query_id,
            QUERY.c.status.in_([QueryStatus.RUNNING.value, QueryStatus.INTERRUPTED.value]),
        )
        .values(
            owner=owner,
            status=QueryStatus.RUNNING.value,
            heartbeat_at=now,
            lease_expires_at=now + lease.duration,
            # What the sweep wrote is no longer true once the query runs again.
            finished_at=case((interrupted, null()), else_=QUERY.c.finished_at),
            error=case((interrupted, null()), else_=QUERY.c.error),
        )
    )


class LeaseRenewer:
    """Renews one owner's leases in a daemon thread, and sweeps stale queries as it goes.

    Each tick is one short transaction: the owner's renewal, then the sweep.
    The first tick runs as soon as :meth:`start` is called (a new process
    clears what a dead one left). Nothing here raises into the application: a
    failed tick is logged and retried within a second.
    """

    def __init__(self, engine: Engine, owner: str, lease: LeaseOptions, *, where: str):
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._owner = owner
        self._lease = lease
        self._where = where
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent; not again after :meth:`stop`)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="spendgraph-ledger-leases", daemon=True
            )
            self._thread.start()

    def tick(self) -> tuple[int, list[str]]:
        """Renew now and sweep: (leases renewed, ids marked interrupted). Raises on failure."""
        with self._engine.begin() as conn:
            renewed = conn.execute(renew_statement(conn, self._owner, self._lease)).rowcount
            marked = mark_stale_interrupted(conn)
        if marked:  # news for the operator's log, not an error of this process
            logger.info(
                "%s: marked %d stale running quer%s interrupted (%s)",
                self._where,
                len(marked),
                "y" if len(marked) == 1 else "ies",
                ", ".join(marked[:5]),
            )
        return renewed, marked

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop renewing (idempotent). Queries still running then expire after their lease."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                self.tick()
            except SQLAlchemyError as exc:
                logger.warning(
                    "%s: renewing query leases failed (%s); retrying",
                    self._where,
                    describe_db_error(exc),
                )
                wait = min(_RETRY_S, self._lease.renew_every_s)
            except Exception:  # a bug must not stop the renewals of a live process
                logger.exception("%s: renewing query leases failed", self._where)
                wait = min(_RETRY_S, self._lease.renew_every_s)
            else:
                wait = self._lease.renew_every_s
