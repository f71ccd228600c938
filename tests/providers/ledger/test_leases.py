"""Owners and leases: a query whose process died is marked interrupted, a live one never.

"Dead" is a real child process, SIGKILLed after opening its query; "live" is
a ledger in this process whose renewer thread runs. Every test runs against a
SQLite file and against PostgreSQL (several workers share one database).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from config_samples import ENDPOINT
from sqlalchemy import event

from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.ledger import (
    MIGRATIONS,
    LeaseOptions,
    Ledger,
    QueryRecord,
    QueryStatus,
    mark_stale_interrupted,
    utcnow,
)
from spendgraph.providers.ledger.leases import LeaseRenewer
from spendgraph.providers.ledger.schema_v5 import LEGACY_GRACE

_OWNER_THEN_HANG = textwrap.dedent(
    """
    import sys, time
    from spendgraph.providers.ledger import LeaseOptions, Ledger, QueryRecord

    ledger = Ledger.open(sys.argv[1], lease=LeaseOptions(float(sys.argv[2])))
    query = QueryRecord(app="doomed")
    ledger.submit_open_query(query).result()
    print(query.id, ledger.owner, flush=True)
    time.sleep(600)  # until SIGKILLed
    """
)


def dead_owner(url: str, lease_s: float) -> tuple[str, str, float]:
    """A child process opens a query and is SIGKILLed: (query id, owner, kill time)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _OWNER_THEN_HANG, url, str(lease_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        query_id, owner = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
    return query_id, owner, time.monotonic()


def lease_row(kit, url: str, query_id: str) -> tuple:
    (row,) = kit.execute_raw(
        url,
        f"SELECT status, owner, heartbeat_at, lease_expires_at, finished_at, error "
        f"FROM query WHERE id = '{query_id}'",
    )
    return row


def status_of(ledger: Ledger, query_id: str) -> QueryStatus:
    return ledger.query_summary(query_id).query.status


def test_an_open_query_carries_its_owner_and_lease_and_its_close_clears_the_lease(ledger_url, kit):
    with Ledger.open(ledger_url, lease=LeaseOptions(30)) as ledger:
        query = kit.query()
        ledger.submit_open_query(query).result()
        status, owner, heartbeat, lease, _, _ = lease_row(kit, ledger_url, query.id)
        assert (status, owner) == ("running", ledger.owner)
        assert str(ledger.owner).split(":")[1].isdigit()  # host:pid:random
        assert heartbeat is not None and lease is not None
        ledger.submit_close_query(query.id, QueryStatus.OK).result()
        status, owner, _, lease, _, _ = lease_row(kit, ledger_url, query.id)
    assert (status, owner, lease) == ("ok", ledger.owner, None)  # who ran it stays on record


def test_a_dead_owners_query_is_interrupted_once_and_a_live_owners_never(ledger_url):
    lease = LeaseOptions(2)
    with Ledger.open(ledger_url, lease=lease) as live:
        alive = live_query(live)
        dead, dead_owner_id, killed_at = dead_owner(ledger_url, lease.duration_s)
        sweepers = [Ledger.open(ledger_url) for _ in range(3)]
        marked: list[str] = []
        lock = threading.Lock()
        # Sweep hard from three "workers" for two whole leases after the dead
        # one's ran out, while the live owner renews.
        until = killed_at + 3 * lease.duration_s

        def sweep(ledger: Ledger) -> None:
            while time.monotonic() < until:
                found = ledger.mark_stale_interrupted()
                with lock:
                    marked.extend(found)

        threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for sweeper in sweepers:
            sweeper.close()
        assert marked == [dead]  # by exactly one of the sweepers
        assert status_of(live, alive) is QueryStatus.RUNNING
        summary = live.query_summary(dead).query
        assert summary.status is QueryStatus.INTERRUPTED
        assert dead_owner_id in (summary.error or "")
        live.submit_close_query(alive, QueryStatus.OK).result()
        assert status_of(live, alive) is QueryStatus.OK


def live_query(ledger: Ledger) -> str:
    query = QueryRecord(app="alive")
    ledger.submit_open_query(query).result()
    return query.id


def test_the_next_process_marks_stale_queries_when_it_opens_one(ledger_url, kit):
    lease = LeaseOptions(1)
    dead, _, killed_at = dead_owner(ledger_url, lease.duration_s)
    time.sleep(max(0.0, killed_at + lease.duration_s + 0.1 - time.monotonic()))
    with Ledger.open(ledger_url, lease=lease) as ledger:
        assert status_of(ledger, dead) is QueryStatus.RUNNING  # opening alone changes nothing
        live_query(ledger)  # starts the renewer, whose first tick sweeps
        deadline = time.monotonic() + 30
        while status_of(ledger, dead) is QueryStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status_of(ledger, dead) is QueryStatus.INTERRUPTED
    _, _, heartbeat, lease_at, finished, error = lease_row(kit, ledger_url, dead)
    assert lease_at is None  # out of the lease index
    assert finished == heartbeat  # the last moment it was known alive
    assert "stopped renewing its lease" in error


def test_renewal_is_one_update_for_all_of_an_owners_queries(ledger_url):
    lease = LeaseOptions(60)
    with Ledger.open(ledger_url, lease=lease) as ledger:
        for _ in range(20):
            live_query(ledger)
        renewer = LeaseRenewer(ledger.engine, ledger.owner, lease, where="test")
        statements: list[str] = []
        me = threading.get_ident()

        def seen(conn, cursor, statement, *args) -> None:
            if threading.get_ident() == me:  # not the ledger's own renewer thread
                statements.append(statement.split()[0].upper())

        event.listen(ledger.engine, "before_cursor_execute", seen)
        try:
            renewed, marked = renewer.tick()
        finally:
            event.remove(ledger.engine, "before_cursor_execute", seen)
    assert (renewed, marked) == (20, [])
    assert statements.count("UPDATE") == 2  # the renewal, then the sweep
    assert "SELECT" not in statements and "INSERT" not in statements


def test_a_closed_query_is_never_marked(ledger: Ledger, kit):
    query = kit.query()
    ledger.submit_open_query(query).result()
    ledger.submit_close_query(query.id, QueryStatus.ERROR, error="boom").result()
    assert ledger.mark_stale_interrupted(utcnow() + timedelta(days=365)) == []
    assert status_of(ledger, query.id) is QueryStatus.ERROR


def test_an_owner_paused_past_its_lease_still_records_the_real_outcome(ledger: Ledger, kit):
    query = kit.query()
    ledger.submit_open_query(query).result()
    # As another worker would see it after this process was stopped for a day.
    assert ledger.mark_stale_interrupted(utcnow() + timedelta(days=1)) == [query.id]
    assert status_of(ledger, query.id) is QueryStatus.INTERRUPTED
    ledger.submit_close_query(query.id, QueryStatus.OK).result()
    assert status_of(ledger, query.id) is QueryStatus.OK


def test_queries_running_before_version_5_get_a_grace_lease(ledger_url, kit):
    Ledger.open(ledger_url, migrations=MIGRATIONS[:4]).close()
    kit.execute_raw(
        ledger_url,
        'INSERT INTO query (id, app, thread_id, "user", started_at, status, store_text) '
        "VALUES ('old', 'a', '', '', '2025-01-01 00:00:00.000000', 'running', false)",
    )
    migrated_at = utcnow()
    with Ledger.open(ledger_url) as ledger:
        _, owner, heartbeat, _, _, _ = lease_row(kit, ledger_url, "old")
        assert owner is None and heartbeat is None
        assert ledger.mark_stale_interrupted() == []  # the grace runs first
        later = migrated_at + LEGACY_GRACE + timedelta(minutes=1)
        assert ledger.mark_stale_interrupted(later) == ["old"]
        summary = ledger.query_summary("old").query
    assert summary.status is QueryStatus.INTERRUPTED
    assert "unknown" in (summary.error or "")
    assert summary.finished_at is not None


def test_sweeping_a_connection_in_a_transaction_of_ones_own(ledger: Ledger, kit):
    query = kit.query()
    ledger.submit_open_query(query).result()
    with ledger.engine.begin() as conn:
        marked = mark_stale_interrupted(conn, utcnow() + timedelta(days=1))
    assert marked == [query.id]


@pytest.mark.parametrize("bad", [0, 0.5, -1, float("nan"), float("inf"), 10**6])
def test_lease_durations_outside_one_second_to_a_day_are_refused(bad):
    with pytest.raises(ValueError, match="lease duration"):
        LeaseOptions(bad)


def test_the_lease_is_configured_under_ledger():
    assert parse_config(ENDPOINT, source="t.toml").ledger.lease_s == 60
    configured = parse_config(ENDPOINT + "[ledger]\nlease_s = 5\n", source="t.toml")
    assert LeaseOptions(configured.ledger.lease_s).renew_every_s == pytest.approx(5 / 3)
    with pytest.raises(ConfigError, match=r"t\.toml.*lease_s"):
        parse_config(ENDPOINT + "[ledger]\nlease_s = 0\n", source="t.toml")


def test_a_query_whose_opener_died_is_adopted_and_runs_again(ledger_url, kit):
    # Durable mode: the worker that opened a query dies; another drives it on.
    lease = LeaseOptions(1)
    dead, dead_owner_id, killed_at = dead_owner(ledger_url, lease.duration_s)
    time.sleep(max(0.0, killed_at + lease.duration_s + 0.1 - time.monotonic()))
    with Ledger.open(ledger_url, lease=lease) as sweeper:
        assert sweeper.mark_stale_interrupted() == [dead]
    with Ledger.open(ledger_url, lease=LeaseOptions(30)) as worker:
        assert asyncio.run(worker.adopt_query(dead)) is True
        status, owner, heartbeat, lease_at, finished, error = lease_row(kit, ledger_url, dead)
        assert (status, owner) == ("running", worker.owner) != ("running", dead_owner_id)
        assert heartbeat is not None and lease_at is not None
        assert (finished, error) == (None, None)  # the sweep's verdict is gone
        assert worker.mark_stale_interrupted() == []  # its lease is live again
        worker.submit_close_query(dead, QueryStatus.OK).result()
        assert asyncio.run(worker.adopt_query(dead)) is False  # a closed query stays closed
        assert asyncio.run(worker.adopt_query("no-such-query")) is False
    assert lease_row(kit, ledger_url, dead)[0] == "ok"
