"""Which query and which agent a model call belongs to, carried in contextvars.

A query scope sets the current :class:`QueryScope`; ``agent_scope("coder")``
pushes a name onto the agent path (``supervisor/coder``). Every call made inside
is attributed without the agent code passing ids around. asyncio copies the
context into each task, so parallel branches each keep their own agent path
while sharing the query's budget and running totals.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from spendgraph.providers.budgets.query import QueryBudget
from spendgraph.providers.ledger.records import BudgetEventRecord, CallRecord, QueryStatus
from spendgraph.providers.spend import Spend


class QueryScope:
    """One end-user query while it runs: its id, budget, text policy and totals."""

    def __init__(
        self,
        query_id: str,
        *,
        budget: QueryBudget | None,
        store_text: bool,
        app: str = "",
        thread_id: str = "",
        user: str = "",
        tenant: str = "",
    ):
        self.id = query_id
        self.app = app
        self.thread_id = thread_id
        self.user = user
        self.tenant = tenant
        self.budget = budget
        self.store_text = store_text
        self.status: QueryStatus | None = None  # set to override the status on close
        self._spend = Spend()
        self._calls: list[CallRecord] = []
        self._lock = threading.Lock()
        self._writes: list[Future[None]] = []
        self._streams: dict[object, AsyncGenerator[Any, None]] = {}
        self._listeners: list[Callable[[BudgetEventRecord], None]] = []

    @property
    def spend(self) -> Spend:
        """Totals of the calls recorded so far in this query."""
        return self._spend

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        """The call records added so far, in order (every attempt, refused ones too)."""
        with self._lock:
            return tuple(self._calls)

    def add(self, record: CallRecord) -> None:
        spend = Spend.of_call(record)
        with self._lock:
            self._spend = self._spend + spend
            self._calls.append(record)

    def track(self, write: Future[None]) -> None:
        """Remember a queued ledger write of this query's, to check when it closes."""
        with self._lock:
            self._writes.append(write)

    def on_budget_event(self, listener: Callable[[BudgetEventRecord], None]) -> None:
        """Call ``listener`` with each threshold crossing of this query's scoped budgets
        (how a graph run puts them on its event stream; the layer cannot import the graph)."""
        with self._lock:
            self._listeners.append(listener)

    def budget_event(self, event: BudgetEventRecord) -> None:
        """Tell the listeners that a call of this query crossed a budget threshold."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def hold_stream(self, token: object, chunks: AsyncGenerator[Any, None]) -> None:
        """Remember a stream of this query's, so the query's end can close it if its
        consumer never did (a ``break`` out of a bare ``async for``)."""
        with self._lock:
            self._streams[token] = chunks

    def drop_stream(self, token: object) -> None:
        with self._lock:
            self._streams.pop(token, None)

    async def close_streams(self) -> None:
        """Close the streams still open: their attempts are recorded as cancelled."""
        with self._lock:
            streams = list(self._streams.values())
        for chunks in streams:
            # A stream another task is reading right now cannot be closed from
            # here; that task settles it when it stops.
            with contextlib.suppress(RuntimeError):
                await chunks.aclose()

    def failed_writes(self) -> list[BaseException]:
        """Errors of this query's call rows that could not be written (so far)."""
        with self._lock:
            writes = list(self._writes)
        return [w.exception() for w in writes if w.done() and w.exception() is not None]


_query: ContextVar[QueryScope | None] = ContextVar("spendgraph_query", default=None)
_agent_path: ContextVar[str] = ContextVar("spendgraph_agent_path", default="")
_node: ContextVar[str] = ContextVar("spendgraph_node", default="")


def current_query() -> QueryScope | None:
    """The query the running code belongs to, if any."""
    return _query.get()


def current_agent_path() -> str:
    return _agent_path.get()


def current_node() -> str:
    return _node.get()


@contextmanager
def query_context(scope: QueryScope) -> Iterator[QueryScope]:
    """Make ``scope`` the current query (and reset the agent path) inside the block."""
    query_token = _query.set(scope)
    path_token = _agent_path.set("")
    try:
        yield scope
    finally:
        _agent_path.reset(path_token)
        _query.reset(query_token)


@contextmanager
def agent_scope(name: str, *, node: str | None = None) -> Iterator[str]:
    """Push ``name`` onto the agent path for calls made inside; yields the full path."""
    parent = _agent_path.get()
    path = f"{parent}/{name}" if parent else name
    path_token = _agent_path.set(path)
    node_token = _node.set(node if node is not None else name)
    try:
        yield path
    finally:
        _node.reset(node_token)
        _agent_path.reset(path_token)
