"""Schema versions: ordered migration steps, applied in one transaction.

A ledger records its schema version in ``ledger_meta``. Opening it applies
every step newer than that version, in order, inside one transaction (on
SQLite too: the engine issues an explicit BEGIN, so DDL rolls back with it),
and records each new version. A ledger whose version is newer than the code's
last step is refused untouched.

A fresh ledger replays the steps from version 1, so a released step must never
change. Version 1 is frozen in ``schema_v1.py``; every model change since is a
step here; the tests
``test_schema_snapshot`` (fails on any model change) and
``test_fresh_schema_matches_the_models`` (replayed steps == models) keep the
two in step.

Callers (and tests) may pass their own steps instead of :data:`MIGRATIONS`;
nothing here is global or mutable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    insert,
    inspect,
    select,
    text,
    update,
)

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger.schema_v1 import create_schema_v1
from spendgraph.providers.ledger.schema_v4 import add_tenants_and_api_keys
from spendgraph.providers.ledger.schema_v5 import add_query_leases
from spendgraph.providers.ledger.schema_v6 import add_budget_store
from spendgraph.providers.ledger.schema_v7 import add_integer_costs_and_folds
from spendgraph.providers.ledger.schema_v8 import add_rollup
from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, UTCDateTime
from spendgraph.providers.ledger.store import WRITE_OPTION
from spendgraph.providers.ledger.tables import CALL, META, QUERY

SCHEMA_VERSION_KEY = "schema_version"
# Serialises concurrent migrations of one PostgreSQL database (several
# workers starting at once); SQLite serialises them with BEGIN IMMEDIATE.
_PG_MIGRATION_LOCK = 0x5350454E44  # "SPEND"


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: ``apply`` moves a ledger at ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _add_column(conn: Connection, table: str, column: Column) -> None:
    """``ALTER TABLE ... ADD COLUMN`` (nullable, so old rows read as NULL) in this dialect."""
    kind = column.type.compile(dialect=conn.dialect)
    name = conn.dialect.identifier_preparer.quote(column.name)
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _add_overrun(conn: Connection) -> None:
    # NULL on every old row: no call before this version overran a reservation
    # that we know of. The new status value cut_at_budget needs no DDL.
    _add_column(conn, "call", Column("overrun_usd", ExactDecimal()))
    _add_column(conn, "call", Column("overrun_tokens", Integer()))


def _add_budget_events(conn: Connection) -> None:
    # Frozen here (not BudgetEvent.__table__): a released step must never change.
    meta = MetaData()
    table = Table(
        "budget_event",
        meta,
        Column("id", AutoString(length=64), primary_key=True),
        Column("at", UTCDateTime(timezone=True), nullable=False, index=True),
        *(Column(name, AutoString(), nullable=False) for name in ("scope", "scope_id", "period")),
        Column("period_start", UTCDateTime(timezone=True), nullable=False),
        Column("threshold", ExactDecimal(), nullable=False),
        Column("unit", AutoString(), nullable=False),
        Column("spent", ExactDecimal(), nullable=False),
        Column("limit", ExactDecimal(), nullable=False),
        Column("query_id", AutoString(length=64), nullable=True, index=True),
    )
    meta.create_all(conn, tables=[table])


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: query, call, ledger_meta", create_schema_v1),
    Migration(2, "call.overrun_usd, call.overrun_tokens (budget overruns)", _add_overrun),
    Migration(3, "budget_event (threshold crossings of scoped budgets)", _add_budget_events),
    Migration(4, "query.tenant, api_key (the front door's keys, hashed)", add_tenants_and_api_keys),
    Migration(5, "query owner and lease (stale running queries)", add_query_leases),
    Migration(6, "budget store tables (holds shared by workers)", add_budget_store),
    Migration(
        7,
        "call.cost_femto, call.folded (fast exact audit sums, compaction)",
        add_integer_costs_and_folds,
    ),
    Migration(8, "rollup_hour, rollup_sealed, rollup_span (audits at scale)", add_rollup),
)


def latest_version(steps: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a ledger has after all of ``steps``."""
    return steps[-1].version if steps else 0


def migrate(
    engine: Engine,
    steps: Sequence[Migration] = MIGRATIONS,
    *,
    create: bool = True,
    where: str = "the ledger",
) -> int:
    """Bring the ledger behind ``engine`` to the last of ``steps``; return its version.

    ``create=False`` refuses to turn an empty database into a ledger.
    ``where`` names the ledger in error messages (a redacted URL). SQLAlchemy
    errors propagate; the caller maps them to :class:`LedgerError`.
    """
    _check_steps(steps)
    latest = latest_version(steps)
    # Fast path, no write lock: the usual open of an up-to-date ledger.
    with engine.connect() as conn:
        current = read_schema_version(conn)
    if current is not None and current >= latest:
        _refuse_newer(current, latest, where)
        return current
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        # Read again under the lock: another process may have migrated meanwhile.
        current = _current_version(conn, create=create, where=where)
        _refuse_newer(current, latest, where)
        for step in steps:
            if step.version > current:
                _apply(conn, step, where)
        return max(current, latest)


def read_schema_version(conn: Connection) -> int | None:
    """The version recorded in ``ledger_meta``, or None if there is none."""
    if not inspect(conn).has_table(META.name):
        return None
    value = conn.execute(select(META.c.value).where(META.c.key == SCHEMA_VERSION_KEY)).scalar()
    return None if value is None else int(value)


def _refuse_newer(current: int, latest: int, where: str) -> None:
    if current > latest:
        raise LedgerError(
            f"{where} has schema version {current}, newer than this spendgraph knows "
            f"(up to {latest}); upgrade spendgraph to use it. The ledger was not changed."
        )


def _current_version(conn: Connection, *, create: bool, where: str) -> int:
    version = read_schema_version(conn)
    if version is not None:
        return version
    existing = [name for name in (QUERY.name, CALL.name) if inspect(conn).has_table(name)]
    if existing:
        raise LedgerError(
            f"{where} has {', '.join(existing)} table(s) but no ledger_meta: "
            "not a spendgraph ledger, refusing to touch it"
        )
    if not create:
        raise LedgerError(f"{where} holds no ledger yet")
    return 0


def _apply(conn: Connection, step: Migration, where: str) -> None:
    try:
        step.apply(conn)
    except Exception as exc:
        raise LedgerError(
            f"migrating {where} to schema version {step.version} ({step.description}) "
            f"failed: {type(exc).__name__}: {exc}; nothing was changed"
        ) from exc
    _record_version(conn, step.version)


def _record_version(conn: Connection, version: int) -> None:
    updated = conn.execute(
        update(META).where(META.c.key == SCHEMA_VERSION_KEY).values(value=str(version))
    )
    if updated.rowcount == 0:
        conn.execute(insert(META).values(key=SCHEMA_VERSION_KEY, value=str(version)))


def _check_steps(steps: Sequence[Migration]) -> None:
    versions = [step.version for step in steps]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3... in order, got {versions}")
