"""The audit rollup answers exactly what a scan of the rows answers, whatever happens to the rows.

Random ledgers (queries crossing hour boundaries, running queries, calls
outside any query, unpriced calls, costs too fine for the integer sums) are
summarised by every dimension and several time windows, before sealing (the
scan) and after (sealed hours plus the rows around them), on SQLite and
PostgreSQL; then rows change under sealed hours (a call recorded late, a
compaction) and the answers must still match a fresh computation.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from spendgraph.providers.ledger import (
    CallStatus,
    GroupBy,
    Ledger,
    LedgerFilter,
    QueryStatus,
    TimeBuckets,
)
from spendgraph.providers.ledger.rollup import GRACE
from spendgraph.providers.usage import Usage

AGENTS = ("supervisor", "supervisor/a", "supervisor/b")
COSTS = (Decimal("0.000012"), Decimal("0.5"), None, Decimal("1E-19"), Decimal(0))
STATUSES = (CallStatus.OK, CallStatus.OK, CallStatus.ERROR, CallStatus.BUDGET_DENIED)


async def _random_ledger(ledger: Ledger, kit, seed: int, queries: int = 30) -> list:
    """Queries over ~6 hours, each 1-4 calls up to 90 minutes apart; returns every call."""
    rng = random.Random(seed)
    records = []
    for n in range(queries):
        start = kit.at(rng.uniform(0, 360))
        query = kit.query(
            started_at=start,
            app=rng.choice(("dungeon", "research_chat")),
            user=rng.choice(("ana", "bo")),
            tenant=rng.choice(("", "acme")),
        )
        await ledger.open_query(query)
        at = start
        for _ in range(rng.randint(1, 4)):
            record = _call(kit, rng, at, query.id)
            await ledger.record_call(record)
            records.append(record)
            at += timedelta(minutes=rng.choice((0.5, 3, 45, 90)))
        if n % 7 != 3:  # a few stay running
            await ledger.close_query(query.id, QueryStatus.OK, finished_at=at)
    for _ in range(5):
        record = _call(kit, rng, kit.at(rng.uniform(0, 360)), None)
        await ledger.record_call(record)
        records.append(record)
    return records


def _call(kit, rng: random.Random, at, query_id):
    return kit.call(
        query_id=query_id,
        started_at=at,
        agent_path=rng.choice(AGENTS),
        endpoint=rng.choice((kit.B200, kit.H100)),
        status=rng.choice(STATUSES),
        cost_usd=rng.choice(COSTS),
        usage=Usage(input_uncached=rng.randint(0, 900), output=rng.randint(0, 90)),
    )


def _windows(kit) -> list[LedgerFilter]:
    return [
        LedgerFilter(),
        LedgerFilter(since=kit.at(60), until=kit.at(240)),  # whole hours
        LedgerFilter(since=kit.at(37.5), until=kit.at(301)),  # partial edge hours
        LedgerFilter(since=kit.at(125)),
        LedgerFilter(until=kit.at(200)),
        LedgerFilter(since=kit.at(10), until=kit.at(20)),  # inside one hour
    ]


def _answers(ledger: Ledger, kit) -> dict:
    out = {}
    for window in _windows(kit):
        for group in GroupBy:
            out[group, window] = ledger.summary_by(group, window)
        out["queries", window] = ledger.queries_with_calls(window)
    return out


def _check_against_records(ledger: Ledger, kit, records) -> None:
    queries = {s.query.id: s.query for s in ledger.list_queries(limit=None)}
    for window in _windows(kit):
        for group in GroupBy:
            actual = {g.key: (g.queries, g.spend) for g in ledger.summary_by(group, window)}
            inside = [r for r in records if _inside(r, window)]
            assert actual == kit.expected_groups(inside, queries, group), (group, window)
        every = {r.query_id for r in records if r.query_id and _inside(r, window)}
        assert ledger.queries_with_calls(window) == len(every), window


def _inside(record, window: LedgerFilter) -> bool:
    return (window.since is None or record.started_at >= window.since) and (
        window.until is None or record.started_at < window.until
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_sealed_hours_answer_what_the_rows_answer(ledger: Ledger, kit, seed):
    records = await _random_ledger(ledger, kit, seed)
    scanned = _answers(ledger, kit)

    done = ledger.refresh_rollup(now=kit.at(24 * 60))

    assert done.complete and done.sealed_hours >= 6 and done.rows == len(records)
    assert _answers(ledger, kit) == scanned
    _check_against_records(ledger, kit, records)


async def test_only_hours_over_by_the_grace_are_sealed(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=3, queries=20)
    now = kit.at(200) + GRACE  # 3:20 plus grace: hours 0-2 are over, hour 3 is not

    done = ledger.refresh_rollup(now=now)

    assert done.until == kit.at(180)
    assert done.rows == sum(r.started_at < kit.at(180) for r in records)
    _check_against_records(ledger, kit, records)
    again = ledger.refresh_rollup(now=now)
    assert (again.sealed_hours, again.rows) == (0, 0)


async def test_a_call_recorded_after_its_hour_was_sealed_is_counted(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=4)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    # A closed query's calls all lay in one hour; one more lands in another sealed hour.
    alone = next(
        r
        for r in records
        if r.query_id
        and sum(o.query_id == r.query_id for o in records) == 1
        and r.started_at < kit.at(120)
    )
    late = kit.call(query_id=alone.query_id, started_at=alone.started_at + timedelta(hours=2))
    await ledger.record_call(late)
    records.append(late)

    _check_against_records(ledger, kit, records)  # read while stale: the rows
    redone = ledger.refresh_rollup(now=kit.at(24 * 60))
    assert redone.dropped >= 2 and redone.sealed_hours >= 2
    _check_against_records(ledger, kit, records)  # resealed


async def test_compaction_drops_the_hours_it_folds(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=5)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    before = _answers(ledger, kit)

    folded = ledger.compact(kit.at(24 * 60))
    assert folded.rows < folded.calls

    # Compaction keeps totals over whole days (a folded row starts at its group's
    # first call): the whole ledger, read from the rows, then resealed.
    for group in (GroupBy.AGENT, GroupBy.DAY, GroupBy.APP):
        assert ledger.summary_by(group) == before[group, LedgerFilter()]
    assert ledger.refresh_rollup(now=kit.at(24 * 60)).sealed_hours > 0
    for group in GroupBy:
        assert ledger.summary_by(group) == before[group, LedgerFilter()]
    assert ledger.queries_with_calls() == before["queries", LedgerFilter()]
    assert len(records) > folded.rows


async def test_timelines_read_sealed_buckets(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=6)
    buckets = TimeBuckets(start=kit.at(0), width_s=7200, count=4)
    scanned = ledger.summary_over_time(GroupBy.ENDPOINT, None, buckets)

    ledger.refresh_rollup(now=kit.at(24 * 60))

    assert ledger.summary_over_time(GroupBy.ENDPOINT, None, buckets) == scanned
    assert sum(sum(g.spend.calls for g in groups) for groups, _ in scanned) == len(records)


async def test_reads_add_up_sealed_hours_instead_of_their_rows(ledger: Ledger, ledger_url, kit):
    records = await _random_ledger(ledger, kit, seed=7)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    total = sum(g.spend.calls for g in ledger.summary_by(GroupBy.AGENT))
    # Tamper with the cached sums only (the rows are untouched): a read that used the
    # rows would not see it.
    kit.execute_raw(ledger_url, "UPDATE rollup_hour SET calls = calls + 1000")

    assert sum(g.spend.calls for g in ledger.summary_by(GroupBy.AGENT)) > total + 1000
    assert total == len(records)


async def test_two_processes_sealing_at_once_seal_each_hour_once(ledger: Ledger, ledger_url, kit):
    records = await _random_ledger(ledger, kit, seed=8)
    scanned = _answers(ledger, kit)
    with (
        Ledger.open(ledger_url) as one,
        Ledger.open(ledger_url) as two,
        ThreadPoolExecutor(2) as pool,
    ):
        done = list(pool.map(lambda lg: lg.refresh_rollup(now=kit.at(24 * 60)), (one, two)))

    assert sum(result.rows for result in done) == len(records)
    assert _answers(ledger, kit) == scanned


async def test_a_query_running_across_seals_is_counted_once(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=9, queries=10)
    query = kit.query(started_at=kit.at(30), app="dungeon")
    await ledger.open_query(query)
    for minutes in (30, 50):
        records.append(kit.call(query_id=query.id, started_at=kit.at(minutes), agent_path="x"))
        await ledger.record_call(records[-1])
    ledger.refresh_rollup(now=kit.at(130) + GRACE)  # hours 0 and 1 sealed while it runs

    # It goes on in later hours (not sealed yet), then ends; then those hours are sealed too.
    for minutes in (150, 200, 260):
        records.append(kit.call(query_id=query.id, started_at=kit.at(minutes), agent_path="x"))
        await ledger.record_call(records[-1])
    await ledger.close_query(query.id, QueryStatus.OK, finished_at=kit.at(261))
    _check_against_records(ledger, kit, records)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    _check_against_records(ledger, kit, records)
    [agent_x] = [g for g in ledger.summary_by(GroupBy.AGENT) if g.key == "x"]
    assert (agent_x.queries, agent_x.spend.calls) == (1, 5)


async def test_calls_outside_any_query_and_late_ones_without_a_query(ledger: Ledger, kit):
    records = await _random_ledger(ledger, kit, seed=10, queries=8)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    late = kit.call(query_id=None, started_at=kit.at(75), cost_usd=None)  # a sealed hour
    await ledger.record_call(late)
    records.append(late)

    _check_against_records(ledger, kit, records)
    assert ledger.refresh_rollup(now=kit.at(24 * 60)).dropped >= 1
    _check_against_records(ledger, kit, records)
    hour = LedgerFilter(since=kit.at(60), until=kit.at(120))
    [outside] = [g for g in ledger.summary_by(GroupBy.APP, hour) if g.key is None]
    assert outside.queries == 0 and outside.spend.unpriced >= 1


async def test_rows_updated_or_deleted_by_another_writer_are_read_as_they_are(
    ledger: Ledger, ledger_url, kit
):
    records = await _random_ledger(ledger, kit, seed=11)
    ledger.refresh_rollup(now=kit.at(24 * 60))
    before = ledger.summary_by(GroupBy.AGENT)
    # Same row count, different numbers: only the database's triggers can tell.
    kit.execute_raw(ledger_url, "UPDATE call SET output = output + 1000")
    edited = ledger.summary_by(GroupBy.AGENT)
    assert sum(g.spend.output for g in edited) == sum(g.spend.output for g in before) + 1000 * len(
        records
    )
    ledger.refresh_rollup(now=kit.at(24 * 60))
    assert ledger.summary_by(GroupBy.AGENT) == edited

    gone = [r for r in records if r.started_at < kit.at(150)]
    ids = ", ".join(f"'{r.id}'" for r in gone)
    kit.execute_raw(ledger_url, f"DELETE FROM call WHERE id IN ({ids})")
    kept = [r for r in records if r.started_at >= kit.at(150)]
    for group in GroupBy:
        calls = sum(g.spend.calls for g in ledger.summary_by(group))
        assert calls == len(kept), group
    ledger.refresh_rollup(now=kit.at(24 * 60))
    assert sum(g.spend.calls for g in ledger.summary_by(GroupBy.DAY)) == len(kept)
