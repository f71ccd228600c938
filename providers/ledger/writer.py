"""The ledger's background writer: one thread, one FIFO queue, batched inserts.

Callers put jobs on the queue (a non-blocking put, safe from the event loop,
from other threads and from ``finally`` blocks) and get a future: a
``concurrent.futures.Future`` from :meth:`LedgerWriter.submit`, an asyncio
future from :meth:`LedgerWriter.submit_async`. The writer thread takes
everything waiting (up to ``max_batch``), writes it with SQLAlchemy Core
``executemany`` inserts in a single transaction (group commit), and only after
the COMMIT resolves each job's future. So a resolved future means the row is
committed: a crash after that loses nothing acknowledged. Jobs still queued
when the process dies unannounced are lost, but none of them was
acknowledged; ``close()`` (also run at interpreter exit) drains the queue
first.

Linger: a call row nobody waits on (:meth:`LedgerWriter.submit` with
``waited=False``, how the provider layer queues its rows) may sit up to
``linger_s`` (0.1 s) so that rows finishing close together share one
transaction. Anything someone waits on -- a query open or close, a barrier, a
flush, a stop -- ends the wait at once and commits everything before it.
Committing rows as they trickle in (batches of ~1-13 under 64 concurrent
calls) cost 140-180 us of writer CPU per row, competing with the event loop
for the GIL: the provider layer then sustained ~0.78x the raw client's
throughput; with the linger (batches of ~50) ~0.95x.

The asyncio futures of one batch are resolved by a single
``call_soon_threadsafe`` per event loop: one wake-up per batch, not per row
(about 3x less event-loop work than ``asyncio.wrap_future`` per row).

Order: within a batch, query inserts run before call inserts, and closes run
last; batches commit in queue order. So a call submitted after its query was
opened never reaches the database before that query (foreign-key safe).

Leases: a query row is written with the ledger's owner id, a heartbeat and a
lease (on PostgreSQL computed by the INSERT on the server's clock); its close
clears the lease. The renewals themselves are not queued here: a batch stuck
behind a busy database must not let a live query's lease run out (``leases.py``).

Failure: if a batch fails, it is retried row by row, each row in its own
transaction, so one bad row (say, a call naming an unknown query) fails alone
and the good rows are written. If the database itself is failing, the rest of
the batch fails at once rather than waiting out a timeout per row. Every
failed job's future carries a :class:`LedgerError`, and its record is kept in
:meth:`LedgerWriter.unwritten` so nothing disappears silently.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import Connection, Engine, Insert, bindparam, insert, null, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.fastpath import FastPath, FastPathFailed
from spendgraph.providers.ledger.leases import DEFAULT_LEASE, LeaseOptions, lease_columns
from spendgraph.providers.ledger.rows import (
    budget_event_params,
    call_params,
    close_params,
    query_params,
)
from spendgraph.providers.ledger.store import WRITE_OPTION, describe_db_error
from spendgraph.providers.ledger.tables import BUDGET_EVENT, CALL, QUERY

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """How the writer batches: at most ``max_batch`` jobs per transaction, and how
    long an unwaited call row may wait for company before its commit."""

    max_batch: int = 1000
    linger_s: float = 0.1


DEFAULT_WRITER = WriterOptions()


# Failed records kept in memory for inspection; older ones are dropped first
# (their callers were told by their futures).
KEEP_FAILED = 10_000

_CLOSE_QUERY = (
    update(QUERY)
    .where(QUERY.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        finished_at=bindparam("b_finished_at"),
        # A closed query holds no lease: the lease index keeps running queries only.
        lease_expires_at=null(),
    )
)


class Op(Enum):
    """What a queued job asks the writer to do."""

    OPEN_QUERY = "open_query"
    CALL = "call"
    CLOSE_QUERY = "close_query"
    BUDGET_EVENT = "budget_event"  # rare: written after the batch, in a transaction of its own
    BARRIER = "barrier"  # resolves once everything queued before it is committed
    STOP = "stop"


_WRITES = (Op.OPEN_QUERY, Op.CALL, Op.CLOSE_QUERY)


@dataclass(slots=True)
class _Job:
    op: Op
    payload: Any
    future: Future[None] | asyncio.Future[None]
    loop: asyncio.AbstractEventLoop | None = None  # set when ``future`` is an asyncio future
    params: dict[str, Any] | None = None
    settled: bool = False
    waited: bool = True  # someone awaits the commit: no lingering


_Delivery = list[tuple["asyncio.Future[None]", BaseException | None]]


class LedgerWriter:
    """Owns the writer thread for one engine. Start is lazy: a read-only ledger has no thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        where: str,
        options: WriterOptions = DEFAULT_WRITER,
        owner: str = "",
        lease: LeaseOptions = DEFAULT_LEASE,
    ):
        """``owner`` and ``lease`` stamp every query opened (see ``leases.py``)."""
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._owner = owner
        self._lease = lease
        # PostgreSQL: the lease is computed by the INSERT on the server's clock;
        # SQLite: bound per batch (see _params), so the fast path can compile it.
        self._sqlite = engine.dialect.name == "sqlite"
        self._open: Insert = (
            insert(QUERY)
            if self._sqlite
            else insert(QUERY).values(**lease_columns(engine, owner, lease))
        )
        self._where = where
        self._max_batch = options.max_batch
        self._linger_s = options.linger_s
        self._wake = threading.Event()  # set by a job someone waits on: stop lingering
        self._queue: SimpleQueue[_Job] = SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: deque[Any] = deque(maxlen=KEEP_FAILED)
        # Outcomes for asyncio futures, per loop; touched by the writer thread only.
        self._deliveries: dict[asyncio.AbstractEventLoop, _Delivery] = {}
        calls = insert(CALL) if self._sqlite else insert_call_once(engine.dialect.name)
        self._fast = (
            FastPath(self._engine, {"open": self._open, "call": calls, "close": _CLOSE_QUERY})
            if engine.dialect.name in ("sqlite", "postgresql")
            else None
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, op: Op, payload: Any, *, waited: bool = True) -> Future[None]:
        """Queue one job; never blocks. Raises :class:`LedgerError` once closed.

        ``waited=False`` says nobody blocks on the future, so the row may linger
        (see the module docstring)."""
        future: Future[None] = Future()
        self._put(_Job(op, payload, future, waited=waited))
        return future

    def submit_async(self, op: Op, payload: Any) -> asyncio.Future[None]:
        """Like :meth:`submit`, from a coroutine: the future belongs to the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._put(_Job(op, payload, future, loop))
        return future

    def _put(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise LedgerError(f"{self._where} is closed; nothing more can be recorded")
            if self._thread is None:
                self._start()
            self._queue.put(job)
            if job.waited:
                self._wake.set()

    def barrier(self) -> Future[None] | None:
        """A future that resolves when everything queued so far is committed (None if closed)."""
        try:
            return self.submit(Op.BARRIER, None)
        except LedgerError:
            return None  # closed: close() already drained the queue

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed (or has failed)."""
        future = self.barrier()
        if future is None:
            return
        try:
            future.result(timeout)
        except TimeoutError:
            raise LedgerError(f"{self._where}: flush did not finish within {timeout}s") from None

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_Job(Op.STOP, None, Future()))
                self._wake.set()
        if thread is None or thread is threading.current_thread():
            return
        atexit.unregister(self.close)
        thread.join(timeout)
        if thread.is_alive():
            raise LedgerError(f"{self._where}: the writer did not finish within {timeout}s")

    def unwritten(self) -> tuple[Any, ...]:
        """Records whose write failed (each caller's future also got the error)."""
        with self._lock:
            return tuple(self._failed)

    def _start(self) -> None:
        # A daemon thread never blocks interpreter exit; the atexit hook drains
        # the queue first (atexit runs while daemon threads are still alive).
        self._thread = threading.Thread(
            target=self._run, name="spendgraph-ledger-writer", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            jobs = self._next_batch()
            try:
                self._handle(jobs)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                logger.exception("ledger writer failed on a batch of %d", len(jobs))
                for job in jobs:
                    self._settle(job, LedgerError(f"{self._where}: writer failed: {exc!r}"))
            finally:
                self._deliver()
            if any(job.op is Op.STOP for job in jobs):
                if self._fast is not None:
                    self._fast.close()
                return

    def _next_batch(self) -> list[_Job]:
        jobs = [self._queue.get()]
        self._drain_into(jobs)
        if self._linger_s > 0 and not any(job.waited for job in jobs):
            # Unwaited rows do not wake the writer; a waited job sets the event.
            self._wake.wait(self._linger_s)
            self._wake.clear()
            self._drain_into(jobs)
        return jobs

    def _drain_into(self, jobs: list[_Job]) -> None:
        while len(jobs) < self._max_batch:
            try:
                jobs.append(self._queue.get_nowait())
            except Empty:
                return

    def _handle(self, jobs: list[_Job]) -> None:
        writes: list[_Job] = []
        events: list[_Job] = []
        for job in jobs:
            # From here on the job cannot be cancelled; a job cancelled while
            # queued is still written (its row matters more than its waiter).
            if isinstance(job.future, Future):
                job.future.set_running_or_notify_cancel()
            if job.op is Op.BUDGET_EVENT:
                events.append(job)
            if job.op not in _WRITES:
                continue
            try:
                job.params = self._params(job)
            except (TypeError, ValueError) as exc:
                error = LedgerError(f"{self._where}: cannot record {job.op.value}: {exc}")
                self._settle(job, error)
            else:
                writes.append(job)
        if writes:
            self._write(writes)
        for event in events:
            self._write_event(event)
        for job in jobs:
            if job.op not in _WRITES:
                self._settle(job, None)  # a no-op for an event already settled

    def _write_event(self, job: _Job) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(BUDGET_EVENT), budget_event_params(job.payload))
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            reason = describe_db_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            self._settle(job, LedgerError(f"{self._where}: writing budget_event failed: {reason}"))
        else:
            self._settle(job, None)

    def _write(self, jobs: list[_Job]) -> None:
        if self._fast is not None:
            try:
                outcomes = self._write_fast(jobs)
            except FastPathFailed:
                pass  # rolled back; the Core path below retries and isolates bad rows
            else:
                for job, error in outcomes:
                    self._settle(job, error)
                return
        try:
            with self._engine.begin() as conn:
                outcomes = _apply(conn, jobs, self._open)
        except SQLAlchemyError as exc:
            logger.warning(
                "%s: batch of %d failed (%s); retrying row by row",
                self._where,
                len(jobs),
                describe_db_error(exc),
            )
            self._write_one_by_one(jobs)
            return
        for job, error in outcomes:
            self._settle(job, error)

    def _write_fast(self, jobs: list[_Job]) -> list[tuple[_Job, LedgerError | None]]:
        """The batch through :class:`SqliteFastPath`, in the same order as ``_apply``."""
        ordered = {op: [job for job in jobs if job.op is op] for op in _WRITES}
        counts = self._fast.write(
            {
                op.value.removesuffix("_query"): [job.params for job in group]
                for op, group in ordered.items()
                if group
            }
        )
        outcomes: list[tuple[_Job, LedgerError | None]] = [
            (job, None) for job in ordered[Op.OPEN_QUERY] + ordered[Op.CALL]
        ]
        for job, found in zip(ordered[Op.CLOSE_QUERY], counts.get("close", ()), strict=True):
            missing = LedgerError(f"cannot close query {job.params['b_id']!r}: no such query")
            outcomes.append((job, None if found else missing))
        return outcomes

    def _write_one_by_one(self, jobs: list[_Job]) -> None:
        for index, job in enumerate(jobs):
            try:
                with self._engine.begin() as conn:
                    [(_, error)] = _apply(conn, [job], self._open)
            except SQLAlchemyError as exc:
                reason = describe_db_error(exc)
                error = LedgerError(f"{self._where}: writing {job.op.value} failed: {reason}")
                error.__cause__ = exc
                if not _row_specific(exc):
                    # The database is failing, not this row: fail the rest now.
                    for rest in jobs[index:]:
                        self._settle(rest, error)
                    return
            self._settle(job, error)

    def _settle(self, job: _Job, error: BaseException | None) -> None:
        if job.settled:
            return
        job.settled = True
        if error is not None and job.op in _WRITES:
            with self._lock:
                self._failed.append(job.payload)
        if job.loop is not None:
            # asyncio futures are not thread-safe: resolved on their loop by _deliver.
            self._deliveries.setdefault(job.loop, []).append((job.future, error))
            return
        if job.future.cancelled():  # its waiter left while it was queued
            return
        if error is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(error)

    def _deliver(self) -> None:
        deliveries, self._deliveries = self._deliveries, {}
        for loop, outcomes in deliveries.items():
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, outcomes)

    def _params(self, job: _Job) -> dict[str, Any]:
        if job.op is Op.CALL:
            return call_params(job.payload)
        if job.op is Op.OPEN_QUERY:
            params = query_params(job.payload)
            if self._sqlite:  # the lease starts when the row is written, not when queued
                params.update(lease_columns(self._engine, self._owner, self._lease))
            return params
        return close_params(*job.payload)


def _resolve(outcomes: _Delivery) -> None:
    """Runs on the waiters' event loop."""
    for future, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _apply(
    conn: Connection, jobs: Sequence[_Job], open_query: Insert
) -> list[tuple[_Job, LedgerError | None]]:
    """Write ``jobs`` in the open transaction: queries, then calls, then closes."""
    opens = [job for job in jobs if job.op is Op.OPEN_QUERY]
    calls = [job for job in jobs if job.op is Op.CALL]
    closes = [job for job in jobs if job.op is Op.CLOSE_QUERY]
    if opens:
        conn.execute(open_query, [job.params for job in opens])
    if calls:
        conn.execute(insert_call_once(conn.dialect.name), [job.params for job in calls])
    outcomes: list[tuple[_Job, LedgerError | None]] = [(job, None) for job in opens + calls]
    for job in closes:
        assert job.params is not None
        found = conn.execute(_CLOSE_QUERY, job.params).rowcount
        missing = LedgerError(f"cannot close query {job.params['b_id']!r}: no such query")
        outcomes.append((job, None if found else missing))
    return outcomes


def insert_call_once(dialect: str) -> Insert:
    """The call-row INSERT, skipping a row whose id is already written: an attempt's row
    is idempotent by its id (a re-delivered durable activity writes it once). SQLite's
    fast path keeps its plain INSERT (durable mode runs on PostgreSQL)."""
    # The dialect modules load here, with the engine that needs them: an audit
    # on SQLite never imports the PostgreSQL dialect.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(CALL).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(CALL).on_conflict_do_nothing(index_elements=["id"])
    return insert(CALL)


def _row_specific(exc: SQLAlchemyError) -> bool:
    """True if the error is about this row's values, not the database being unusable."""
    return isinstance(exc, IntegrityError | DataError) or not isinstance(exc, DBAPIError)
