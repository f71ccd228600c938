"""Schema version 8, frozen once released: the audit rollup (sealed hours of call totals).

``rollup_hour`` holds, per sealed UTC hour, each audit dimension's totals
(the columns ``sums.call_totals`` labels, so both read the same way) and
``single_queries``: the distinct queries of that value whose calls all lie in
that hour. ``rollup_span`` names the queries whose calls do not (they cross an
hour boundary, or were still running when an hour was sealed): audits count
those from their call rows. ``rollup_sealed`` lists the sealed ranges (one
hour, or a run of empty hours) and how many call rows each held, so a read can
tell whether the rows still match. See ``rollup.py`` for the why.

:func:`rollup_tables` builds the tables on a given ``MetaData``: the migration
uses a fresh one, ``tables.py`` the ledger's own, until a later version changes
them (then ``tables.py`` gets its own copy and this stays as it is).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Connection, Index, MetaData, Table

from spendgraph.providers.ledger.sqltypes import AutoString, ExactDecimal, UTCDateTime

_COUNTS = (
    "calls", "failed", "refused", "input_uncached", "input_cached", "output", "reasoning",
    "cost_unknown", "single_queries",
)  # fmt: skip


def rollup_tables(meta: MetaData) -> tuple[Table, Table, Table]:
    """``rollup_hour``, ``rollup_sealed`` and ``rollup_span`` on ``meta``."""
    hour = Table(
        "rollup_hour",
        meta,
        Column("dim", AutoString(length=16), primary_key=True, nullable=False),
        Column("hour", UTCDateTime(), primary_key=True, nullable=False),
        Column("value", AutoString(), primary_key=True, nullable=False),
        # A query dimension (app, user, tenant) of calls made outside any query.
        Column("value_null", Boolean(), primary_key=True, nullable=False),
        *(Column(name, BigInteger(), nullable=False) for name in _COUNTS),
        Column("femto_hi", BigInteger(), nullable=True),
        Column("femto_lo", BigInteger(), nullable=True),
        Column("cost_rest", ExactDecimal(), nullable=True),
    )
    sealed = Table(
        "rollup_sealed",
        meta,
        Column("start", UTCDateTime(), primary_key=True, nullable=False),
        Column("end", UTCDateTime(), nullable=False),
        Column("rows", BigInteger(), nullable=False),
    )
    span = Table(
        "rollup_span",
        meta,
        Column("query_id", AutoString(length=64), primary_key=True, nullable=False),
        Column("first_hour", UTCDateTime(), nullable=False),
        # NULL: open-ended (the query was running when an hour of it was sealed).
        Column("last_hour", UTCDateTime(), nullable=True),
        Index("ix_rollup_span_first_hour", "first_hour"),
    )
    return hour, sealed, span


# Rows changed in place under a sealed hour: their hours can no longer be trusted, and no
# row count shows it. spendgraph itself only inserts calls and deletes them when
# compacting; these catch any other writer too (a hand edit, a script), in the database.
# An UPDATE may move a call to another hour or query: every sealed range is forgotten.
# A DELETE only changes the hours of the deleted rows: theirs are.
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER rollup_forget_on_call_update AFTER UPDATE ON call
    BEGIN DELETE FROM rollup_sealed; END""",
    # The one range holding the row: the last to start at or before it (an index seek).
    """CREATE TRIGGER rollup_forget_on_call_delete AFTER DELETE ON call
    BEGIN DELETE FROM rollup_sealed
      WHERE start = (SELECT max(start) FROM rollup_sealed WHERE start <= OLD.started_at)
        AND "end" > OLD.started_at; END""",
)
_POSTGRES_TRIGGERS = (
    """CREATE FUNCTION spendgraph_rollup_forget_all() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN DELETE FROM rollup_sealed; RETURN NULL; END $$""",
    # Once per statement: every range from the first deleted row's to the last's (more
    # than needed when the rows are far apart; forgetting more is always safe).
    """CREATE FUNCTION spendgraph_rollup_forget_deleted() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN
      DELETE FROM rollup_sealed s
        USING (SELECT min(started_at) AS first, max(started_at) AS last FROM gone) g
        WHERE s."end" > g.first AND s.start <= g.last;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER rollup_forget_on_call_update AFTER UPDATE ON call
    FOR EACH STATEMENT EXECUTE FUNCTION spendgraph_rollup_forget_all()""",
    """CREATE TRIGGER rollup_forget_on_call_delete AFTER DELETE ON call
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION spendgraph_rollup_forget_deleted()""",
)


def add_rollup(conn: Connection) -> None:
    """Create the (empty) rollup tables, and the triggers that forget sealed hours whose
    call rows are updated or deleted: audits seal hours into them as they go."""
    meta = MetaData()
    rollup_tables(meta)
    meta.create_all(conn)
    postgres = conn.dialect.name == "postgresql"
    for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        conn.exec_driver_sql(statement)
