"""Stray holds, reconciled from the ledger.

A hold normally ends in its attempt's settle. A worker killed mid-call leaves
it held; once it expires, or once its query's lease runs out (the dead worker
stopped renewing it; see ``providers/ledger/leases.py``), the ledger decides
its fate: the attempt's ``call`` row (whose id is the attempt id) was written
-- the call happened, settle the hold to the row's cost and tokens -- or it
was not -- release the hold. The store runs this lazily (a refused reserve
with stray holds in its way, and every ``reconcile_every_s``);
:func:`reconcile_ledger` runs it on demand (``spendgraph budgets reconcile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from spendgraph.providers.budgets import postgres_sql as sql
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import utcnow
from spendgraph.providers.ledger.store import describe_db_error

DEFAULT_KEEP_SETTLED = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a reconciliation did: attempts settled from call rows, attempts released, old
    released hold rows dropped."""

    settled: int = 0
    released: int = 0
    pruned: int = 0

    def __add__(self, other: Reconciled) -> Reconciled:
        return Reconciled(
            self.settled + other.settled,
            self.released + other.released,
            self.pruned + other.pruned,
        )


def reconcile_holds(
    conn: Connection,
    now: datetime,
    *,
    keys: list[str] | None = None,
    batch: int = 1000,
    keep_settled: timedelta = DEFAULT_KEEP_SETTLED,
) -> Reconciled:
    """Settle or release the holds stray by ``now`` (only on the accounts ``keys``, when
    given), ``batch`` hold rows at a time, each batch one transaction; then (on a full
    run) drop holds released longer than ``keep_settled`` ago. Counts are attempts.

    ``conn`` must be in autocommit mode on PostgreSQL. SQLAlchemy errors propagate.
    """
    done = Reconciled()
    params = {"now": now, "all_accounts": keys is None, "keys": keys or [], "batch": batch}
    while True:
        row = conn.execute(sql.RECONCILE, params).one()
        done += Reconciled(settled=row.settled, released=row.released)
        if row.found < batch:
            break
    if keys is None:
        pruned = conn.execute(sql.PRUNE, {"before": now - keep_settled}).rowcount
        done += Reconciled(pruned=max(pruned, 0))
    return done


def reconcile_ledger(
    ledger: Ledger, *, now: datetime | None = None, keep_settled: timedelta = DEFAULT_KEEP_SETTLED
) -> Reconciled:
    """Reconcile every expired hold of the shared store in ``ledger``'s database.

    On SQLite there is nothing to do (holds live in the one process's memory).
    """
    if ledger.engine.dialect.name != "postgresql":
        return Reconciled()
    engine = ledger.engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return reconcile_holds(conn, now or utcnow(), keep_settled=keep_settled)
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"reconciling the budget holds of {ledger.url} failed: {describe_db_error(exc)}"
        ) from exc
