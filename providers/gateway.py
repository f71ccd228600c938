"""The provider layer's entry point: every model call spendgraph makes goes through here.

``ProviderLayer.chat`` (and ``.stream``) route a request to an endpoint, retry
retryable failures with backoff, fall back to the next endpoint, enforce the
query's budget, and write one ledger row per HTTP attempt. The layer owns the
shared parts (endpoints, router, retry policy, ledger) and opens queries; each
call is a :class:`~spendgraph.providers.call.ModelCall` that owns its attempts.
Retry, fallback and accounting wrap the single-endpoint client
(:class:`Endpoint`) rather than subclassing it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from spendgraph.providers.budgets import (
    BudgetLimit,
    BudgetStore,
    PeriodSpend,
    QueryBudget,
    ScopeIds,
    ScopeKey,
    StoredLimits,
    budget_store_for,
)
from spendgraph.providers.budgets.query import split_limits
from spendgraph.providers.call import CallServices, ModelCall
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.config import SpendgraphConfig, load_config
from spendgraph.providers.context import QueryScope, query_context
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import BudgetExceeded, ConfigError, LedgerError
from spendgraph.providers.ledger import LeaseOptions, Ledger
from spendgraph.providers.ledger.records import QueryRecord, QueryStatus
from spendgraph.providers.retry import RetryPolicy
from spendgraph.providers.router import Router
from spendgraph.providers.streaming import ChatStream
from spendgraph.providers.telemetry.recorder import Telemetry
from spendgraph.providers.telemetry.setup import telemetry_for
from spendgraph.providers.transport import open_http_client

__all__ = ["ChatStream", "ProviderLayer"]


class ProviderLayer:
    """Routes, retries, falls back, enforces budgets and records every attempt."""

    def __init__(
        self,
        config: SpendgraphConfig,
        ledger: Ledger,
        *,
        env: Mapping[str, str] = os.environ,
        budget_store: BudgetStore | None = None,
        telemetry: Telemetry | None = None,
    ):
        """``budget_store`` holds tenant/user/app/thread budgets (default: shared in PostgreSQL
        on a PostgreSQL ledger, else in this process's memory). ``telemetry`` records the
        spans and metrics (default: from ``[telemetry]`` and the ``OTEL_*`` variables)."""
        self.config = config
        self.ledger = ledger
        self.budgets: tuple[BudgetLimit, ...] = tuple(b.limit() for b in config.budgets)
        self._owns_budget_store = budget_store is None
        self.budget_store = budget_store or budget_store_for(ledger, self._period_spend)
        # Limits set at run time (`spendgraph budgets set`), re-read every few seconds.
        self.stored_limits = StoredLimits(ledger.engine)
        # One connection pool for every endpoint (aiohttp's when installed, see
        # providers/transport.py), closed with the layer.
        self._http = open_http_client(env)
        self.transport = self._http.transport
        self.endpoints = {
            c.name: Endpoint(c, env=env, http_client=self._http.client) for c in config.endpoints
        }
        self.router = Router(config, self.endpoints)
        self.retries = RetryPolicy(config.routing)
        self.telemetry = telemetry or telemetry_for(config.telemetry, env)
        self._services = CallServices(
            config, ledger, self.router, self.retries, telemetry=self.telemetry
        )

    @classmethod
    def open(
        cls,
        config_path: str | Path | None = None,
        *,
        ledger_url: str | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> ProviderLayer:
        """Load the config (--config, SPENDGRAPH_CONFIG, ./spendgraph.toml) and open the ledger."""
        config = load_config(config_path, env=env)
        if config is None:
            raise ConfigError(
                "no endpoints configured: pass --config, set SPENDGRAPH_CONFIG, "
                "or create spendgraph.toml"
            )
        lease = LeaseOptions(config.ledger.lease_s)
        ledger = Ledger.open(ledger_url or config.ledger.url, env=env, lease=lease)
        return cls(config, ledger, env=env)

    async def aclose(self, *, close_ledger: bool = True) -> None:
        """Close HTTP clients and (by default) flush and close the ledger."""
        for endpoint in self.endpoints.values():
            await endpoint.aclose()
        await self._http.aclose()
        if self._owns_budget_store:
            await self.budget_store.aclose()
        # Exports what is still buffered (a blocking HTTP post: off the event loop).
        await asyncio.to_thread(self.telemetry.shutdown)
        if close_ledger:
            await self.ledger.aclose()

    # -- query scope -----------------------------------------------------

    @asynccontextmanager
    async def query(
        self,
        *,
        app: str = "",
        thread_id: str = "",
        user: str = "",
        tenant: str = "",
        budget_usd: Decimal | float | str | None = None,
        budget_tokens: int | None = None,
        budgets: Sequence[BudgetLimit] = (),
        store_text: bool | None = None,
        input_text: str | None = None,
    ) -> AsyncIterator[QueryScope]:
        """Open a ledger ``Query``; calls inside are attributed to it and held to its budgets.

        ``budget_usd``/``budget_tokens`` limit this query; ``budgets`` adds limits
        (per query, or per tenant/user/app/thread and day/month) to the config's
        ``[[budgets]]`` and the stored ones (``spendgraph budgets set``), all enforced
        together. On exit the query is closed with status ok, error, cancelled or
        budget_exhausted (or ``scope.status`` if the code set one). ``input_text`` (the
        user's input) is stored on the Query row only when text is kept.
        """
        declared = (*self.budgets, *await self.stored_limits.current(), *budgets)
        ids = ScopeIds(query="", user=user, app=app, thread=thread_id, tenant=tenant)
        limits, scoped = split_limits(declared, ids, budget_usd, budget_tokens)
        keep_text = self.config.ledger.store_text if store_text is None else store_text
        record = QueryRecord(
            app=app,
            thread_id=thread_id,
            user=user,
            tenant=tenant,
            budget_usd=limits.usd,
            budget_tokens=limits.tokens,
            store_text=keep_text,
            input_preview=input_text if keep_text else None,
        )
        # Queued, not awaited: the query's first call goes out while its row commits
        # (a voice turn waited ~2 ms here). Rows commit in queue order, so the close
        # acknowledges the open with everything else; the close reports a failed open.
        opened = self.ledger.submit_open_query(record)
        budget = None
        if scoped or not limits.unlimited:  # with no budget at all there is nothing to hold
            ids = replace(ids, query=record.id)
            budget = QueryBudget(limits, scoped, ids, self.budget_store)
        scope = QueryScope(
            record.id,
            budget=budget,
            store_text=keep_text,
            app=app,
            thread_id=thread_id,
            user=user,
            tenant=tenant,
        )
        status, error, failure = QueryStatus.OK, None, None
        with self.telemetry.query(scope) as traced:
            try:
                with query_context(scope):
                    yield scope
            except BudgetExceeded as exc:
                status, error = QueryStatus.BUDGET_EXHAUSTED, str(exc)
                raise
            except BaseException as exc:
                cancelled = not isinstance(exc, Exception)
                status = QueryStatus.CANCELLED if cancelled else QueryStatus.ERROR
                failure = type(exc).__name__
                error = failure if cancelled else f"{failure}: {exc}"
                raise
            finally:
                try:
                    await self._close_query(scope, opened, scope.status or status, error)
                finally:  # after the close: it records the streams left open
                    traced.finish(scope, scope.status or status, failure)

    async def _period_spend(self, key: ScopeKey) -> PeriodSpend:
        """Where a scoped budget's period starts: the ledger's sum (this process's rows
        flushed first), so a restart continues the day rather than starting it over."""
        await self.ledger.aflush()
        end = key.period_end()
        usd, tokens = await asyncio.to_thread(
            self.ledger.period_spend, key.kind.value, key.id, key.period_start, end
        )
        return PeriodSpend(usd, tokens)

    async def _close_query(
        self, scope: QueryScope, opened: Future[None], status: QueryStatus, error: str | None
    ):
        try:
            await scope.close_streams()
        finally:
            # Commits in queue order: once the close is acknowledged, the query's
            # open and every call row of it queued before the close are durable too.
            try:
                await self.ledger.close_query(scope.id, status, error=error)
            except LedgerError as exc:
                failed = opened.exception() if opened.done() else None
                if failed is None:
                    raise
                raise LedgerError(f"query {scope.id} could not be recorded: {failed}") from exc
        lost = scope.failed_writes()
        if lost:
            raise LedgerError(
                f"{len(lost)} call row(s) of query {scope.id} could not be written: {lost[0]}"
            ) from lost[0]

    # -- calls -----------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One chat completion, non-streamed: route, retry, fall back, account.

        Under a budget the HTTP call is streamed all the same and assembled here:
        a stream can be closed when its output reaches the reserved bound, a
        non-streamed answer cannot -- whatever a misbehaving server generates is
        billed, and concurrent calls would all overrun before the first settles.
        """
        call = ModelCall(self._services, request)
        if call.budgeted:
            call.stream = True
            return await ChatStream(call).collect()
        return await call.complete()

    def stream(self, request: ChatRequest) -> ChatStream:
        """One chat completion, streamed.

        Use as ``async with layer.stream(request) as chunks: async for chunk in chunks``;
        leaving the block early records the attempt as cancelled.
        """
        return ChatStream(ModelCall(self._services, request, stream=True))
