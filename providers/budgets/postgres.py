"""The PostgreSQL budget store: scoped allowances shared by every worker on one database.

The same :class:`~spendgraph.providers.budgets.store.BudgetStore` as the
in-memory store, with the state in the ledger's database (``budget_account``
and ``budget_hold``, schema version 6), so workers on several processes or
machines hold against one truth:

* ``reserve`` is one statement (one round trip, one transaction): it locks the
  request's accounts in key order, checks every one, and holds against all of
  them or none. A key seen for the first time is seeded from the ledger (the
  ``loader``, as in memory) and the reserve runs again.
* every hold carries its attempt id (the call row's id), its query id and an
  expiry. A hold that expired -- or whose query's lease ran out, because the
  worker running it died -- no longer counts: a refusal with such holds in its
  way reconciles them (see :mod:`.reconcile`) and tries once more, and every
  ``reconcile_every_s`` a reserve also reconciles the whole store. So a killed
  worker's holds are freed within its queries' lease, long before they expire.
* ``settle`` is one statement too, idempotent by attempt id; a threshold it
  crossed is claimed with a compare-and-set on the account, so each is
  reported once per key whichever worker crossed it.

Blocking database work runs in a thread (``asyncio.to_thread``), never on the
event loop. Database errors are :class:`~spendgraph.providers.errors.LedgerError`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from spendgraph.providers.budgets import postgres_sql as sql
from spendgraph.providers.budgets.limits import ScopeKey
from spendgraph.providers.budgets.reconcile import Reconciled, reconcile_holds
from spendgraph.providers.budgets.store import (
    THRESHOLDS,
    Allowance,
    Hold,
    HoldRequest,
    PeriodSpend,
    ScopeBudgetExceeded,
    SpendLoader,
    ThresholdCrossed,
    check_room,
    crossings,
    passed,
)
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.records import utcnow
from spendgraph.providers.ledger.store import POSTGRES_CONNECT_TIMEOUT_S, describe_db_error
from spendgraph.providers.ledger.tables import BUDGET_ACCOUNT


@dataclass(frozen=True, slots=True)
class PostgresStoreOptions:
    """How often expired holds are looked for, how many at once, and how long settled
    holds are kept (a late settle must still find its hold's fate)."""

    reconcile_every_s: float = 30.0
    reconcile_batch: int = 1000
    keep_settled: timedelta = timedelta(days=1)
    pool_size: int = 4
    max_overflow: int = 4


DEFAULT_OPTIONS = PostgresStoreOptions()


def account_key(key: ScopeKey) -> str:
    """The ``budget_account`` key of a scope key: every worker spells (and orders) it alike."""
    start = key.period_start.strftime("%Y-%m-%dT%H:%MZ")
    return f"{key.kind.value}|{key.period.value}|{start}|{key.id}"


def budget_engine(ledger_engine: Engine, options: PostgresStoreOptions = DEFAULT_OPTIONS) -> Engine:
    """An autocommit engine on the ledger's database for the store: every statement is
    its own transaction, and a checkout costs no ping (a dropped connection is retried)."""
    return create_engine(
        ledger_engine.url,
        isolation_level="AUTOCOMMIT",
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        hide_parameters=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


async def _nothing_spent(key: ScopeKey) -> PeriodSpend:
    return PeriodSpend()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one reserve statement found: the accounts (before the hold), and whether granted."""

    rows: dict[str, Any]
    granted: bool
    expired_holds: bool


class PostgresBudgetStore:
    """The shared store: holds in PostgreSQL, checked and taken under row locks."""

    def __init__(
        self,
        engine: Engine,
        loader: SpendLoader = _nothing_spent,
        *,
        options: PostgresStoreOptions = DEFAULT_OPTIONS,
        clock: Callable[[], datetime] = utcnow,
        thresholds: tuple[Decimal, ...] = THRESHOLDS,
        owns_engine: bool = False,
    ):
        """``engine``: an autocommit engine on the ledger's database (:func:`budget_engine`);
        ``owns_engine``: :meth:`aclose` disposes of it."""
        if engine.dialect.name != "postgresql":
            raise LedgerError(
                f"the shared budget store needs PostgreSQL, not {engine.dialect.name}"
            )
        self._engine = engine
        self._loader = loader
        self._options = options
        self._clock = clock
        self._thresholds = thresholds
        self._owns_engine = owns_engine
        self._reconcile_lock = threading.Lock()
        self._reconciled_at = float("-inf")  # monotonic time of the last full reconciliation
        self._giving_back: set[asyncio.Future[None]] = set()

    @classmethod
    def for_engine(
        cls, ledger_engine: Engine, loader: SpendLoader = _nothing_spent, **kwargs: Any
    ) -> PostgresBudgetStore:
        """A store with an engine of its own on the same database as ``ledger_engine``."""
        options = kwargs.get("options", DEFAULT_OPTIONS)
        return cls(budget_engine(ledger_engine, options), loader, owns_engine=True, **kwargs)

    @property
    def engine(self) -> Engine:
        """The store's engine (autocommit, on the ledger's database)."""
        return self._engine

    # -- the BudgetStore interface ------------------------------------------

    async def reserve(self, request: HoldRequest) -> Hold:
        """Hold ``request`` against all of its allowances, or raise ScopeBudgetExceeded.

        Cancelled while the database works, the hold it gets anyway is given back
        (else it would count against the scope until it expired)."""
        work = asyncio.ensure_future(self._reserve(request))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            giving_back = asyncio.ensure_future(self._give_back(work))
            self._giving_back.add(giving_back)
            giving_back.add_done_callback(self._giving_back.discard)
            raise

    async def _give_back(self, work: asyncio.Future[Hold]) -> None:
        try:
            hold = await work
        except BaseException:  # refused, failed or cancelled: nothing to give back
            return
        await self.release(hold)

    async def _reserve(self, request: HoldRequest) -> Hold:
        outcome = await asyncio.to_thread(self._reserve_once, request, True)
        missing = [a for a in request.allowances if account_key(a.key) not in outcome.rows]
        if not outcome.granted and missing:
            for allowance in missing:
                spend = await self._loader(allowance.key)
                await asyncio.to_thread(self._seed, allowance, spend)
            outcome = await asyncio.to_thread(self._reserve_once, request, False)
        if not outcome.granted and outcome.expired_holds:
            keys = [account_key(a.key) for a in request.allowances]
            await asyncio.to_thread(self._reconcile, keys)
            outcome = await asyncio.to_thread(self._reserve_once, request, False)
        if not outcome.granted:
            self._refusal(request, outcome)
        return Hold(request)

    async def settle(
        self, hold: Hold, *, usd: Decimal | None, tokens: int
    ) -> tuple[ThresholdCrossed, ...]:
        """Count the real cost (``usd=None``: unknown, the hold's bound is counted); the
        thresholds this settle is the first to cross. A second settle does nothing."""
        spent = hold.usd if usd is None else usd
        return await asyncio.to_thread(self._settle, hold, spent, tokens)

    async def release(self, hold: Hold) -> None:
        """Give back a live hold (the attempt will not be settled)."""
        params = {"attempt_id": hold.request.attempt_id, "now": self._clock()}
        await asyncio.to_thread(self._run, "releasing a hold", sql.RELEASE, params)

    async def forget(self, key: ScopeKey) -> bool:
        """Drop ``key``'s account once its scope is over (a closed query) if nothing is held
        against it (one statement; a reserve racing it would seed the account anew)."""
        return await asyncio.to_thread(self._forget, account_key(key))

    def _forget(self, key: str) -> bool:
        with self._connection("dropping an account") as conn:
            return self._execute(conn, sql.FORGET, {"key": key}).rowcount > 0

    async def reconcile(self) -> Reconciled:
        """Settle or release every expired hold now (what ``budgets reconcile`` runs)."""
        return await asyncio.to_thread(self._reconcile, None)

    async def aclose(self) -> None:
        """Finish giving back the holds of cancelled reserves; dispose of an owned engine."""
        await asyncio.gather(*self._giving_back, return_exceptions=True)
        if self._owns_engine:
            await asyncio.to_thread(self._engine.dispose)

    # -- reads (tests, ``budgets show``) --------------------------------------

    def spent(self, key: ScopeKey) -> PeriodSpend | None:
        """The settled spend of ``key`` (``None`` when no worker has held against it)."""
        with self._connection("reading an account") as conn:
            row = conn.execute(sql.ACCOUNT, {"key": account_key(key)}).first()
        return None if row is None else PeriodSpend(row.spent_usd, row.spent_tokens)

    def held(self, key: ScopeKey) -> PeriodSpend | None:
        """What live holds hold against ``key`` (expired ones do not count)."""
        with self._connection("reading an account") as conn:
            name = account_key(key)
            if conn.execute(sql.ACCOUNT, {"key": name}).first() is None:
                return None
            usd, tokens = conn.execute(sql.LIVE_HELD, {"key": name, "now": self._clock()}).one()
        return PeriodSpend(usd, int(tokens))

    # -- work done in a thread -------------------------------------------------

    def _reserve_once(self, request: HoldRequest, may_reconcile: bool) -> _Outcome:
        if may_reconcile:
            self._maybe_reconcile()
        allowances = request.allowances
        params = {
            "keys": [account_key(a.key) for a in allowances],
            "usd_limits": [a.usd for a in allowances],
            "token_limits": [a.tokens for a in allowances],
            "usd": request.usd,
            "tokens": request.tokens,
            "attempt_id": request.attempt_id,
            "query_id": request.query_id,
            "expires_at": request.expires_at,
            "now": self._clock(),
        }
        with self._connection("reserving") as conn:
            try:
                rows = conn.execute(sql.RESERVE, params).all()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The connection dropped: the hold may have committed before it did.
                conn = self._fresh(conn)
                if conn.execute(sql.HOLD_EXISTS, params).scalar():
                    return _Outcome({}, True, False)
                rows = conn.execute(sql.RESERVE, params).all()
        granted = bool(rows) and rows[0].granted
        expired = bool(rows) and rows[0].expired_holds
        return _Outcome({row.key: row for row in rows}, granted, expired)

    def _refusal(self, request: HoldRequest, outcome: _Outcome) -> None:
        """Raise the refusal of the first allowance without room (as the in-memory store)."""
        for allowance in request.allowances:
            row = outcome.rows.get(account_key(allowance.key))
            if row is None:
                raise LedgerError(f"the budget store has no account for {allowance.key}")
            spent = PeriodSpend(row.spent_usd, row.spent_tokens)
            check_room(allowance, request, spent, PeriodSpend(row.held_usd, row.held_tokens))
        # Not reached while this check and the statement's agree; refuse all the same.
        first = request.allowances[0]
        raise ScopeBudgetExceeded(
            f"the budget of {first.key} refused the call",
            key=first.key,
            limit=str(first.usd if first.usd is not None else first.tokens),
            spent=outcome.rows[account_key(first.key)].spent_usd,
        )

    def _seed(self, allowance: Allowance, spend: PeriodSpend) -> None:
        """Create ``allowance``'s account from the ledger's spend (a racing worker may win)."""
        key = allowance.key
        fired = passed(allowance, spend, self._thresholds)
        values = {
            "key": account_key(key),
            "scope": key.kind.value,
            "scope_id": key.id,
            "period": key.period.value,
            "period_start": key.period_start,
            "spent_usd": spend.usd,
            "spent_tokens": spend.tokens,
            "held_usd": Decimal(0),
            "held_tokens": 0,
            "fired": _fired_text(fired),
            "created_at": self._clock(),
        }
        statement = pg_insert(BUDGET_ACCOUNT).values(values).on_conflict_do_nothing()
        self._run("creating an account", statement, {})

    def _settle(self, hold: Hold, spent: Decimal, tokens: int) -> tuple[ThresholdCrossed, ...]:
        params = {
            "attempt_id": hold.request.attempt_id,
            "usd": spent,
            "tokens": tokens,
            "now": self._clock(),
        }
        by_key = {account_key(a.key): a for a in hold.request.allowances}
        found: list[ThresholdCrossed] = []
        with self._connection("settling a hold") as conn:
            rows = self._execute(conn, sql.SETTLE, params).all()
            for row in rows:
                allowance = by_key.get(row.key)
                if row.was != "held" or allowance is None:
                    continue  # expired and released meanwhile: counted, not reported
                spend = PeriodSpend(row.spent_usd, row.spent_tokens)
                found.extend(self._claim(conn, row.key, allowance, spend, row.fired))
        return tuple(found)

    def _claim(
        self, conn: Connection, key: str, allowance: Allowance, spend: PeriodSpend, fired: str
    ) -> list[ThresholdCrossed]:
        """The crossings this settle may report: those it adds to the account's ``fired``
        first (another worker that claimed one since is seen, and not repeated)."""
        while True:
            found = crossings(allowance, spend, _fired_set(fired), self._thresholds)
            if not found:
                return []
            now_fired = _fired_set(fired) | {crossed.threshold for crossed in found}
            params = {"key": key, "fired": _fired_text(now_fired), "was": fired}
            if conn.execute(sql.MARK_FIRED, params).first() is not None:
                return found
            fired = conn.execute(sql.READ_FIRED, {"key": key}).scalar() or ""

    def _maybe_reconcile(self) -> None:
        """Reconcile the whole store if the last time was ``reconcile_every_s`` ago
        (one thread of this process at a time; the others go on)."""
        if time.monotonic() - self._reconciled_at < self._options.reconcile_every_s:
            return
        if not self._reconcile_lock.acquire(blocking=False):
            return
        try:
            self._reconciled_at = time.monotonic()
            self._reconcile(None)
        finally:
            self._reconcile_lock.release()

    def _reconcile(self, keys: list[str] | None) -> Reconciled:
        with self._connection("reconciling expired holds") as conn:
            return reconcile_holds(
                conn,
                self._clock(),
                keys=keys,
                batch=self._options.reconcile_batch,
                keep_settled=self._options.keep_settled,
            )

    # -- connections -----------------------------------------------------------

    def _run(self, doing: str, statement: Any, params: dict[str, Any]) -> None:
        with self._connection(doing) as conn:
            self._execute(conn, statement, params)

    def _execute(self, conn: Connection, statement: Any, params: dict[str, Any]) -> Any:
        """Run an idempotent statement, once more on a new connection if this one dropped."""
        try:
            return conn.execute(statement, params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return self._fresh(conn).execute(statement, params)

    @staticmethod
    def _fresh(conn: Connection) -> Connection:
        conn.rollback()  # lets the Connection reconnect on its next statement
        return conn

    @contextmanager
    def _connection(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise LedgerError(f"the budget store failed {doing}: {describe_db_error(exc)}") from exc


def _fired_text(fired: set[Decimal]) -> str:
    return ",".join(str(threshold) for threshold in sorted(fired))


def _fired_set(text: str) -> set[Decimal]:
    return {Decimal(part) for part in text.split(",") if part}
