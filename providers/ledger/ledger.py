"""The :class:`Ledger` facade: open a ledger, record queries and calls, read totals.

Durability guarantee -- acknowledged means committed:

* ``await ledger.record_call(record)`` (and ``open_query``/``close_query``)
  returns only after the transaction holding the row has committed. A crash
  after that loses nothing that was acknowledged. (SQLite runs WAL with
  ``synchronous=NORMAL``: commits survive a process crash; only an OS crash or
  power loss may roll back the last few. Use PostgreSQL where that matters.)
* The row is queued synchronously, before the first ``await``. A task
  cancelled while it waits still gets its row written: the wait is shielded,
  only the waiting stops. ``submit_call`` is the same enqueue for sync code and
  ``finally`` blocks; its future resolves on commit.
* Writes never block the event loop: a background thread writes queued rows
  in batches, one transaction per batch (see ``writer.py``).
* A failed write is never silent: the caller's future (and so the awaiting
  ``record_call``) raises :class:`LedgerError`, and :meth:`Ledger.unwritten`
  keeps the record.
* ``close()`` (also run at interpreter exit) writes everything still queued.

Running queries carry this ledger's owner id and a lease that a background
thread renews (see ``leases.py``): a query whose process died is marked
``interrupted`` by the next process once its lease runs out, never left
``running`` forever.

Reads are synchronous and return frozen dataclasses; call them from async code
through ``asyncio.to_thread`` if the ledger may be large.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import reads
from spendgraph.providers.ledger.compact import Compaction, compact
from spendgraph.providers.ledger.leases import (
    DEFAULT_LEASE,
    LeaseOptions,
    LeaseRenewer,
    adopt_statement,
    mark_stale_interrupted,
    new_owner_id,
)
from spendgraph.providers.ledger.migrations import MIGRATIONS, Migration, migrate
from spendgraph.providers.ledger.records import (
    BudgetEventRecord,
    CallRecord,
    QueryRecord,
    QueryStatus,
    utcnow,
)
from spendgraph.providers.ledger.rollup import RollupRefresh, refresh_rollup
from spendgraph.providers.ledger.store import (
    WRITE_OPTION,
    create_ledger_engine,
    describe_db_error,
    redact_url,
    resolve_ledger_url,
    scrub,
)
from spendgraph.providers.ledger.views import (
    GroupBy,
    GroupTotal,
    LedgerFilter,
    QuerySort,
    QuerySummary,
    TimeBuckets,
)
from spendgraph.providers.ledger.writer import DEFAULT_WRITER, LedgerWriter, Op, WriterOptions


class Ledger:
    """One open ledger: a database engine plus its background writer.

    Open with :meth:`Ledger.open`; use as ``with Ledger.open(url) as ledger:``
    or ``async with``. Safe to share between threads and tasks; several
    ledgers (processes) may share one SQLite file or PostgreSQL database.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        url: str,
        schema_version: int,
        writer: WriterOptions = DEFAULT_WRITER,
        lease: LeaseOptions = DEFAULT_LEASE,
    ):
        """Wrap a migrated engine; ``url`` is its redacted URL. Prefer :meth:`open`."""
        self._engine = engine
        self._url = url
        self._where = f"ledger {url}"
        self._schema_version = schema_version
        self._owner = new_owner_id()
        self._lease = lease
        self._writer = LedgerWriter(
            engine, where=self._where, options=writer, owner=self._owner, lease=lease
        )
        # Started by the first query opened: a ledger only read holds no thread.
        self._leases = LeaseRenewer(engine, self._owner, lease, where=self._where)
        self._rollup_current_at: float | None = None

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        create: bool = True,
        migrations: Sequence[Migration] = MIGRATIONS,
        writer: WriterOptions = DEFAULT_WRITER,
        lease: LeaseOptions = DEFAULT_LEASE,
    ) -> Ledger:
        """Open (and create or migrate) the ledger at ``url``, resolved by
        :func:`resolve_ledger_url` (``--ledger``, ``$SPENDGRAPH_LEDGER``, ``./spendgraph.db``).

        ``create=False`` refuses to create a new ledger (for audits).
        ``migrations`` replaces the built-in steps (tests); ``writer`` tunes
        batching (see :mod:`spendgraph.providers.ledger.writer`); ``lease`` how
        long a running query's lease lasts (see :mod:`.leases`). Raises
        :class:`LedgerError`, with any password in the URL redacted.
        """
        resolved = resolve_ledger_url(url, env)
        shown = redact_url(resolved)
        where = f"ledger {shown}"
        try:
            engine = create_ledger_engine(resolved, create=create)
        except (SQLAlchemyError, ImportError) as exc:  # unknown dialect, driver not installed
            raise LedgerError(f"cannot open {where}: {describe_db_error(exc)}") from exc
        try:
            version = migrate(engine, migrations, create=create, where=where)
        except SQLAlchemyError as exc:
            engine.dispose()
            reason = scrub(describe_db_error(exc), resolved)
            raise LedgerError(f"cannot open {where}: {reason}") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url=shown, schema_version=version, writer=writer, lease=lease)

    @property
    def url(self) -> str:
        """Where this ledger lives, password redacted."""
        return self._url

    @property
    def schema_version(self) -> int:
        return self._schema_version

    @property
    def owner(self) -> str:
        """The owner id stamped on every query this ledger opens (``host:pid:random``)."""
        return self._owner

    @property
    def lease(self) -> LeaseOptions:
        return self._lease

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools such as the benchmark; writes go through the queue)."""
        return self._engine

    # -- writing ----------------------------------------------------------

    def submit_call(self, record: CallRecord) -> Future[None]:
        """Queue ``record``'s row without blocking; the future resolves once it is committed.

        Nobody is expected to block on the future: the row may wait up to the
        writer's linger to share a commit (a query close or :meth:`flush` ends the wait)."""
        return self._writer.submit(Op.CALL, record, waited=False)

    def submit_open_query(self, record: QueryRecord) -> Future[None]:
        """Queue a new ``query`` row (status running); resolves once committed."""
        future = self._writer.submit(Op.OPEN_QUERY, record)
        self._leases.start()
        return future

    def submit_close_query(
        self,
        query_id: str,
        status: QueryStatus,
        *,
        error: str | None = None,
        finished_at: datetime | None = None,
    ) -> Future[None]:
        """Queue the close of a query (status, error, finish time, default now)."""
        payload = (query_id, QueryStatus(status), error, finished_at or utcnow())
        return self._writer.submit(Op.CLOSE_QUERY, payload)

    def submit_budget_event(self, record: BudgetEventRecord) -> Future[None]:
        """Queue a threshold crossing's ``budget_event`` row; resolves once committed."""
        return self._writer.submit(Op.BUDGET_EVENT, record, waited=False)

    async def record_call(self, record: CallRecord) -> None:
        """Record one call; returns once its row is committed (see the module docstring)."""
        await _acknowledged(self._writer.submit_async(Op.CALL, record))

    async def open_query(self, record: QueryRecord) -> None:
        """Record a new query; returns once committed. Calls naming it may follow."""
        future = self._writer.submit_async(Op.OPEN_QUERY, record)
        self._leases.start()
        await _acknowledged(future)

    async def close_query(
        self,
        query_id: str,
        status: QueryStatus,
        *,
        error: str | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Close a query with its final status; returns once committed."""
        payload = (query_id, QueryStatus(status), error, finished_at or utcnow())
        await _acknowledged(self._writer.submit_async(Op.CLOSE_QUERY, payload))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed (or has failed).

        Blocks the calling thread: from a coroutine use :meth:`aflush`.
        """
        self._writer.flush(timeout)

    async def aflush(self) -> None:
        """Wait, without blocking the loop, until everything queued so far is committed."""
        if self._writer.closed:
            return  # close() already wrote everything
        await _acknowledged(self._writer.submit_async(Op.BARRIER, None))

    def unwritten(self) -> tuple[CallRecord | QueryRecord | tuple[object, ...], ...]:
        """Records whose write failed since the ledger opened (most recent 10,000)."""
        return self._writer.unwritten()

    def mark_stale_interrupted(self, now: datetime | None = None) -> list[str]:
        """Mark running queries whose lease expired (their process died) ``interrupted``.

        Returns their ids. Any process may call it at any time (see
        :func:`~spendgraph.providers.ledger.leases.mark_stale_interrupted`);
        the renewer does it as soon as this ledger opens its first query.
        """
        if self._writer.closed:
            raise LedgerError(f"{self._where} is closed")
        try:
            return mark_stale_interrupted(self._engine, now)
        except SQLAlchemyError as exc:
            reason = describe_db_error(exc)
            raise LedgerError(f"marking stale queries in {self._where} failed: {reason}") from exc

    async def adopt_query(self, query_id: str) -> bool:
        """Take over the lease of a running (or swept) query another process opened.

        For a query that moves between processes (durable mode: the graph is
        redelivered to another worker). Returns False when the query is closed
        or unknown. This ledger's renewer keeps the lease from then on.
        """
        if self._writer.closed:
            raise LedgerError(f"{self._where} is closed")
        self._leases.start()
        try:
            return await asyncio.to_thread(self._adopt, query_id)
        except SQLAlchemyError as exc:
            reason = f"adopting query {query_id} in {self._where} failed: {describe_db_error(exc)}"
            raise LedgerError(reason) from exc

    def _adopt(self, query_id: str) -> bool:
        with self._engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            statement = adopt_statement(conn, query_id, self._owner, self._lease)
            return conn.execute(statement).rowcount == 1

    def compact(self, before: datetime) -> Compaction:
        """Fold the calls started before ``before`` into rows that keep every total exact
        (see :mod:`~spendgraph.providers.ledger.compact`); what is queued is written first."""
        if self._writer.closed:
            raise LedgerError(f"{self._where} is closed")
        self._writer.flush()
        try:
            return compact(self._engine, before)
        except SQLAlchemyError as exc:
            reason = describe_db_error(exc)
            raise LedgerError(f"compacting {self._where} failed: {reason}") from exc

    def refresh_rollup(
        self,
        *,
        now: datetime | None = None,
        time_budget_s: float | None = None,
        rebuild: bool = False,
    ) -> RollupRefresh:
        """Seal the hours that have ended into the audit rollup (see
        :mod:`~spendgraph.providers.ledger.rollup`): later audits add them up instead of
        scanning their rows. ``time_budget_s`` stops early; the rest is sealed next time.
        ``rebuild`` drops every sealed hour first (see :func:`refresh_rollup`)."""
        if self._writer.closed:
            raise LedgerError(f"{self._where} is closed")
        try:
            result = refresh_rollup(
                self._engine, now=now, time_budget_s=time_budget_s, rebuild=rebuild
            )
        except SQLAlchemyError as exc:
            reason = describe_db_error(exc)
            message = f"sealing the audit rollup of {self._where} failed: {reason}"
            raise LedgerError(message) from exc
        if result.complete:
            self._rollup_current_at = time.monotonic()
        return result

    @property
    def rollup_current_at(self) -> float | None:
        """When (``time.monotonic()``) a :meth:`refresh_rollup` of this ledger last sealed
        everything that was due; None if none has yet."""
        return self._rollup_current_at

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, stop the writer and the lease renewer, release
        connections. Idempotent."""
        try:
            self._writer.close(timeout)
        finally:
            self._leases.stop()
        self._engine.dispose()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- reading ----------------------------------------------------------

    def query_summary(self, query_id: str) -> QuerySummary:
        """One query with the totals of its calls; :class:`LedgerError` if unknown."""
        with self._reading():
            return reads.query_summary(self._engine, query_id)

    def query_ids_with_prefix(self, prefix: str, *, limit: int | None = 10) -> list[str]:
        """Ids of queries starting with ``prefix`` (shortest first: an exact match leads)."""
        with self._reading():
            return reads.query_ids_with_prefix(self._engine, prefix, limit=limit)

    def calls_for_query(self, query_id: str) -> list[CallRecord]:
        """The calls of one query, as recorded, in start order."""
        with self._reading():
            return reads.calls_for_query(self._engine, query_id)

    def list_queries(
        self,
        filters: LedgerFilter | None = None,
        *,
        sort: QuerySort | str = QuerySort.TIME,
        limit: int | None = 50,
    ) -> list[QuerySummary]:
        """Queries matching ``filters`` with their totals, newest / costliest / largest first."""
        with self._reading():
            return reads.list_queries(self._engine, filters, sort=sort, limit=limit)

    def summary_by(
        self, group: GroupBy | str, filters: LedgerFilter | None = None
    ) -> list[GroupTotal]:
        """Call totals grouped by agent, endpoint, model, hardware, app, user or day."""
        with self._reading():
            return reads.summary_by(self._engine, group, filters)

    def summary_over_time(
        self, group: GroupBy | str, filters: LedgerFilter | None, buckets: TimeBuckets
    ) -> list[tuple[list[GroupTotal], int]]:
        """:meth:`summary_by` and :meth:`queries_with_calls` of each of ``buckets``, in one
        read (see :func:`reads.summary_over_time`)."""
        with self._reading():
            return reads.summary_over_time(self._engine, group, filters, buckets)

    def queries_with_calls(self, filters: LedgerFilter | None = None) -> int:
        """How many distinct queries made the calls matching ``filters``."""
        with self._reading():
            return reads.queries_with_calls(self._engine, filters)

    def period_spend(
        self, scope: str, scope_id: str, since: datetime, until: datetime
    ) -> tuple[Decimal, int]:
        """Known cost and tokens a user/app/thread spent in ``[since, until)`` (calls' starts)."""
        with self._reading():
            return reads.period_spend(self._engine, scope, scope_id, since, until)

    def budget_events(self, query_id: str | None = None) -> list[BudgetEventRecord]:
        """The ``budget_event`` rows, oldest first (one query's, when given)."""
        with self._reading():
            return reads.budget_events(self._engine, query_id)

    def iter_calls(
        self, filters: LedgerFilter | None = None, *, batch: int = 1000
    ) -> Iterator[CallRecord]:
        """Every call matching ``filters``, in start order, streamed (for export)."""
        with self._reading():
            yield from reads.iter_calls(self._engine, filters, batch=batch)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self._writer.closed:
            raise LedgerError(f"{self._where} is closed")
        try:
            yield
        except SQLAlchemyError as exc:
            raise LedgerError(f"reading {self._where} failed: {describe_db_error(exc)}") from exc


async def _acknowledged(future: asyncio.Future[None]) -> None:
    # The job is already queued: cancelling the waiting task cancels only this
    # future (the writer skips delivering to a done one), never the write. No
    # shield: one future and callback less per acknowledged row.
    await future
