"""Schema versions: old ledgers migrate keeping their rows; newer ones are refused untouched."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import MIGRATIONS, Ledger, Migration, latest_version
from spendgraph.providers.ledger.tables import METADATA


def _add_region(conn) -> None:
    conn.exec_driver_sql("ALTER TABLE call ADD COLUMN region VARCHAR(16)")
    conn.exec_driver_sql("UPDATE call SET region = 'eu'")


NEXT = len(MIGRATIONS) + 1  # the version a test-only step gets
V2 = (*MIGRATIONS, Migration(NEXT, "test only: call.region", _add_region))


def _version(kit, url: str) -> int:
    rows = kit.execute_raw(url, "SELECT value FROM ledger_meta WHERE key = 'schema_version'")
    return int(rows[0][0])


def _has_region(kit, url: str) -> bool:
    try:
        kit.execute_raw(url, "SELECT region FROM call")
    except Exception:
        return False
    return True


def test_a_fresh_ledger_is_at_the_latest_version(ledger: Ledger, ledger_url, kit):
    assert ledger.schema_version == latest_version() == 8
    assert _version(kit, ledger_url) == 8


async def test_an_old_ledger_migrates_keeping_its_rows(ledger_url, kit):
    query = kit.query()
    records = [kit.call(query_id=query.id, attempt=i) for i in range(3)]
    async with Ledger.open(ledger_url) as v1:
        await v1.open_query(query)
        for record in records:
            await v1.record_call(record)

    async with Ledger.open(ledger_url, migrations=V2) as v2:
        assert v2.schema_version == NEXT
        assert v2.calls_for_query(query.id) == records
        assert v2.query_summary(query.id).spend.calls == 3
    assert _version(kit, ledger_url) == NEXT
    assert kit.execute_raw(ledger_url, "SELECT DISTINCT region FROM call") == [("eu",)]


def test_a_newer_ledger_is_refused_and_left_alone(ledger_url, kit):
    Ledger.open(ledger_url, migrations=V2).close()

    with pytest.raises(LedgerError, match=rf"schema version {NEXT}, newer than this spendgraph"):
        Ledger.open(ledger_url)

    assert _version(kit, ledger_url) == NEXT
    assert _has_region(kit, ledger_url)


def test_a_failing_step_changes_nothing(ledger_url, kit):
    Ledger.open(ledger_url).close()

    def half_done(conn) -> None:
        _add_region(conn)
        raise RuntimeError("disk on fire")

    broken = (*MIGRATIONS, Migration(NEXT, "breaks halfway", half_done))
    with pytest.raises(LedgerError, match=rf"version {NEXT} \(breaks halfway\) failed.*on fire"):
        Ledger.open(ledger_url, migrations=broken)

    assert _version(kit, ledger_url) == latest_version()
    assert not _has_region(kit, ledger_url)  # the ALTER rolled back too


async def test_an_audit_opens_while_a_writer_holds_the_lock(ledger: Ledger, ledger_url, kit):
    await ledger.record_call(kit.call())
    with kit.write_lock(ledger_url), Ledger.open(ledger_url, create=False) as audit:
        # An up-to-date ledger opens without taking the write lock.
        assert len(list(audit.iter_calls())) == 1


def test_concurrent_opens_of_a_fresh_ledger_migrate_once(ledger_url):
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            Ledger.open(ledger_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_fresh_schema_matches_the_models(ledger: Ledger):
    # Replaying the steps must build exactly the tables the models describe.
    inspector = inspect(ledger.engine)
    for table in METADATA.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name


SNAPSHOT = {
    1: {
        "query": "id app thread_id user started_at finished_at status budget_usd budget_tokens "
        "store_text input_preview error",
        "call": "id query_id request_id attempt agent_path node endpoint model hardware precision "
        "engine stream started_at ttft_ms latency_ms input_uncached input_cached output reasoning "
        "usage_source status error_kind http_status price_version cost_usd prompt_text "
        "completion_text",
        "ledger_meta": "key value",
    },
}
SNAPSHOT[2] = {
    **SNAPSHOT[1],
    "call": SNAPSHOT[1]["call"] + " overrun_usd overrun_tokens",
}

SNAPSHOT[3] = {
    **SNAPSHOT[2],
    "budget_event": "id at scope scope_id period period_start threshold unit spent limit query_id",
}

SNAPSHOT[4] = {
    **SNAPSHOT[3],
    "query": SNAPSHOT[3]["query"] + " tenant",
    "api_key": "id digest prefix tenant user name created_at revoked_at",
}

SNAPSHOT[5] = {
    **SNAPSHOT[4],
    "query": SNAPSHOT[4]["query"] + " owner heartbeat_at lease_expires_at",
}

SNAPSHOT[6] = {
    **SNAPSHOT[5],
    "budget_limit": "scope scope_id period usd tokens updated_at",
    "budget_account": "key scope scope_id period period_start spent_usd spent_tokens held_usd "
    "held_tokens fired created_at",
    "budget_hold": "attempt_id account query_id usd tokens expires_at state created_at released_at",
}

SNAPSHOT[7] = {
    **SNAPSHOT[6],
    "call": SNAPSHOT[6]["call"] + " cost_femto folded",
}

SNAPSHOT[8] = {
    **SNAPSHOT[7],
    "rollup_hour": "dim hour value value_null calls failed refused input_uncached input_cached "
    "output reasoning cost_unknown single_queries femto_hi femto_lo cost_rest",
    "rollup_sealed": "start end rows",
    "rollup_span": "query_id first_hour last_hour",
}


def test_schema_snapshot():
    # Fails on any change to the models: add a migration step (freezing version 1,
    # see migrations.py), then record the new version's columns here.
    version = latest_version()
    assert version in SNAPSHOT, f"record the columns of schema version {version}"
    actual = {t.name: set(t.columns.keys()) for t in METADATA.sorted_tables}
    assert actual == {name: set(cols.split()) for name, cols in SNAPSHOT[version].items()}


def test_a_version_1_ledger_migrates_and_its_calls_read_without_overrun(ledger_url, kit):
    # A ledger written by the release before overruns existed (raw SQL: today's
    # writer would insert the new columns).
    Ledger.open(ledger_url, migrations=MIGRATIONS[:1]).close()
    kit.execute_raw(
        ledger_url,
        "INSERT INTO call (id, request_id, attempt, agent_path, node, endpoint, model, hardware,"
        " precision, engine, stream, started_at, input_uncached, input_cached, output, reasoning,"
        " usage_source, status, price_version, cost_usd) VALUES ('c1', 'r', 1, '', '', 'e', 'm',"
        " '', '', '', false, '2025-01-01 00:00:00.000000', 10, 0, 5, 0, 'reported', 'ok', 'v',"
        " '0.001')",
    )
    with Ledger.open(ledger_url) as current:
        assert current.schema_version == latest_version()
        (call,) = current.iter_calls()
        (model,) = current.summary_by("model")
    assert call.overrun_usd is None and call.overrun_tokens is None
    assert call.usage.output == 5
    # Version 7 backfilled the integer cost audits sum, and the row stands for one call.
    assert kit.execute_raw(ledger_url, "SELECT cost_femto, folded FROM call") == [(10**12, 1)]
    assert model.spend.known_cost == Decimal("0.001")


def test_an_empty_database_is_not_created_when_asked_not_to(ledger_url):
    with pytest.raises(LedgerError, match=r"no ledger"):
        Ledger.open(ledger_url, create=False)


def test_foreign_tables_are_not_touched(ledger_url, kit):
    kit.execute_raw(ledger_url, "CREATE TABLE call (id INTEGER PRIMARY KEY)")
    with pytest.raises(LedgerError, match="not a spendgraph ledger"):
        Ledger.open(ledger_url)


def test_steps_must_be_numbered_in_order(sqlite_url):
    gap = (*MIGRATIONS, Migration(NEXT + 1, "skips one", _add_region))
    with pytest.raises(ValueError, match=r"1, 2, 3"):
        Ledger.open(sqlite_url, migrations=gap)
