"""Summaries are SUMs over call rows, filters and sorts work, unknown costs stay unknown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import (
    CallStatus,
    GroupBy,
    Ledger,
    LedgerFilter,
    QuerySort,
    QueryStatus,
    TimeBuckets,
)
from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import Usage


async def test_query_summary_totals_are_the_sum_of_its_calls(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    records = [
        kit.call(
            query_id=query.id,
            started_at=kit.at(i / 60),
            usage=Usage(100 * i, 10 * i, 7 * i, i),
            cost_usd=Decimal(i) / Decimal(10**9),
            ttft_ms=None if i == 0 else 30.0 + i,
            status=CallStatus.ERROR if i == 0 else CallStatus.OK,
        )
        for i in range(5)
    ]
    for record in records:
        await ledger.record_call(record)
    await ledger.close_query(query.id, QueryStatus.OK, finished_at=kit.at(0.5))

    summary = ledger.query_summary(query.id)
    spend = summary.spend
    assert (spend.calls, spend.failed, spend.refused) == (5, 1, 0)
    assert spend.input_uncached == sum(r.usage.input_uncached for r in records)
    assert spend.input_cached == sum(r.usage.input_cached for r in records)
    assert spend.output == sum(r.usage.output for r in records)
    assert spend.reasoning == sum(r.usage.reasoning for r in records)
    assert spend == Spend.of_calls(records)
    assert spend.cost == Decimal("0.000000010")
    # The first call failed before any token; the first token came from the second.
    assert summary.first_token_ms == 31.0
    assert summary.wall_ms == 30_000
    assert summary.query.status is QueryStatus.OK


async def test_a_query_without_calls_costs_zero_known(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    summary = ledger.query_summary(query.id)
    assert summary.spend == Spend()
    assert summary.spend.cost == 0 and summary.first_token_ms is None
    assert summary.wall_ms is None


async def test_sql_counts_failed_and_refused_calls_apart(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    statuses = [CallStatus.OK, CallStatus.ERROR, CallStatus.CANCELLED, CallStatus.BUDGET_DENIED]
    records = [
        kit.call(
            query_id=query.id,
            started_at=kit.at(i),
            status=status,
            agent_path="writer",
            # A refused call never went out: no tokens, no cost.
            usage=Usage() if status is CallStatus.BUDGET_DENIED else Usage(10, 0, 5),
            cost_usd=Decimal(0) if status is CallStatus.BUDGET_DENIED else Decimal("0.001"),
        )
        for i, status in enumerate([*statuses, CallStatus.BUDGET_DENIED])
    ]
    for record in records:
        await ledger.record_call(record)

    spend = ledger.query_summary(query.id).spend
    assert (spend.calls, spend.failed, spend.refused, spend.sent) == (5, 2, 2, 3)
    assert spend == Spend.of_calls(records)
    [writer] = ledger.summary_by(GroupBy.AGENT)
    assert writer.spend == spend
    [listed] = ledger.list_queries()
    assert listed.spend == spend


async def test_unknown_costs_stay_unknown(ledger: Ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    await ledger.record_call(kit.call(query_id=query.id, cost_usd=Decimal("0.0004")))
    await ledger.record_call(
        kit.call(query_id=query.id, endpoint=kit.H100, cost_usd=None, price_version="unknown")
    )

    spend = ledger.query_summary(query.id).spend
    assert spend.cost is None
    assert (spend.known_cost, spend.unpriced) == (Decimal("0.0004"), 1)
    assert "unknown" in spend.describe()

    by_endpoint = {g.key: g.spend for g in ledger.summary_by(GroupBy.ENDPOINT)}
    assert by_endpoint[kit.B200.name].cost == Decimal("0.0004")
    assert by_endpoint[kit.H100.name].cost is None
    assert (by_endpoint[kit.H100.name].known_cost, by_endpoint[kit.H100.name].unpriced) == (0, 1)

    [by_app] = ledger.summary_by(GroupBy.APP)
    assert (by_app.spend.known_cost, by_app.spend.unpriced) == (Decimal("0.0004"), 1)


async def _three_queries(ledger: Ledger, kit):
    """cheap (ana, chat, t0, many tokens), pricey (bo, chat, t+60), mid (ana, dungeon, t+120)."""
    plan = [
        ("cheap", "research_chat", "ana", 0, Decimal("0.000001"), 9000),
        ("pricey", "research_chat", "bo", 60, Decimal("0.5"), 10),
        ("mid", "dungeon", "ana", 120, Decimal("0.01"), 500),
    ]
    ids = {}
    for name, app, user, minute, cost, tokens in plan:
        query = kit.query(app=app, user=user, started_at=kit.at(minute))
        await ledger.open_query(query)
        await ledger.record_call(
            kit.call(
                query_id=query.id,
                started_at=kit.at(minute + 1),
                cost_usd=cost,
                usage=Usage(tokens, 0, 0),
            )
        )
        ids[query.id] = name
    return ids


async def test_list_queries_sorts(ledger: Ledger, kit):
    names = await _three_queries(ledger, kit)

    def order(sort) -> list[str]:
        return [names[s.query.id] for s in ledger.list_queries(sort=sort)]

    assert order(QuerySort.TIME) == ["mid", "pricey", "cheap"]
    assert order(QuerySort.COST) == ["pricey", "mid", "cheap"]
    assert order("tokens") == ["cheap", "mid", "pricey"]
    assert [names[s.query.id] for s in ledger.list_queries(sort="cost", limit=1)] == ["pricey"]
    with pytest.raises(LedgerError, match="expected one of time, cost, tokens"):
        ledger.list_queries(sort="price")


async def test_list_queries_filters(ledger: Ledger, kit):
    names = await _three_queries(ledger, kit)

    def listed(**filters) -> set[str]:
        return {names[s.query.id] for s in ledger.list_queries(LedgerFilter(**filters))}

    assert listed() == {"cheap", "pricey", "mid"}
    assert listed(app="dungeon") == {"mid"}
    assert listed(user="ana") == {"cheap", "mid"}
    assert listed(app="research_chat", user="ana") == {"cheap"}
    assert listed(since=kit.at(60)) == {"pricey", "mid"}
    assert listed(until=kit.at(60)) == {"cheap"}
    assert listed(since=kit.at(1), until=kit.at(121)) == {"pricey", "mid"}


async def _mixed_calls(ledger: Ledger, kit):
    """Calls across four days, two apps, three users and tenants, two endpoints, agents, some
    unpriced."""
    records = []
    for q in range(4):
        query = kit.query(
            app=("research_chat", "dungeon")[q % 2],
            user=("ana", "bo", "ana", "cy")[q],
            tenant=("acme", "acme", "", "rival")[q],
            thread_id=("game-1", "game-2")[q // 2],
            started_at=kit.at(q * 60 * 20),  # 20 hours apart from 12:00: four UTC days
        )
        await ledger.open_query(query)
        for i in range(3):
            records.append(
                kit.call(
                    query_id=query.id,
                    started_at=kit.at(q * 60 * 20 + i),
                    endpoint=(kit.B200, kit.H100)[(q + i) % 2],
                    agent_path=("supervisor", "supervisor/writer", "critic")[i],
                    usage=Usage(10 * (q + 1), i, 5, 1),
                    cost_usd=None if (q, i) == (1, 2) else Decimal(q * 10 + i) / 10**8,
                )
            )
    records.append(kit.call(query_id=None, started_at=kit.at(5), cost_usd=Decimal("1E-9")))
    for record in records:
        await ledger.record_call(record)
    return records


@pytest.mark.parametrize("group", list(GroupBy))
async def test_summary_by_each_dimension(ledger: Ledger, kit, group):
    records = await _mixed_calls(ledger, kit)
    queries = {s.query.id: s.query for s in ledger.list_queries(limit=None)}

    totals = ledger.summary_by(group)

    actual = {g.key: (g.queries, g.spend) for g in totals}
    assert actual == kit.expected_groups(records, queries, group)
    if group is GroupBy.DAY:
        assert [g.key for g in totals] == [f"2025-03-0{d}" for d in (1, 2, 3, 4)]
    else:
        costs = [g.spend.known_cost for g in totals]
        assert costs == sorted(costs, reverse=True)


async def test_summary_by_filters(ledger: Ledger, kit):
    records = await _mixed_calls(ledger, kit)
    in_window = LedgerFilter(since=kit.at(0), until=kit.at(60 * 20))
    [day] = ledger.summary_by(GroupBy.DAY, in_window)
    assert day.spend.calls == 4  # query 0's three calls and the call outside any query

    ana = ledger.summary_by(GroupBy.USER, LedgerFilter(user="ana"))
    assert [(g.key, g.spend.calls, g.queries) for g in ana] == [("ana", 6, 2)]

    dungeon = sum(g.spend for g in ledger.summary_by(GroupBy.ENDPOINT, LedgerFilter(app="dungeon")))
    assert (dungeon.calls, dungeon.unpriced) == (6, 1)
    assert len(records) == 13


@pytest.mark.parametrize("group", [GroupBy.AGENT, GroupBy.APP, GroupBy.HARDWARE])
async def test_summary_over_time_is_summary_by_of_each_bucket(ledger: Ledger, kit, group):
    await _mixed_calls(ledger, kit)
    window = LedgerFilter(since=kit.at(1))  # leaves out the first call
    # 10-hour buckets from T0: two edges fall exactly on a call's start (T0 + 20h, 40h: it
    # lands in the later bucket), one bucket is empty, the last is open (T0 + 60h counts).
    buckets = TimeBuckets(start=kit.at(0), width_s=36_000, count=5)

    per_bucket = ledger.summary_over_time(group, window, buckets)

    assert len(per_bucket) == buckets.count
    edges = [kit.at(600 * i) for i in range(1, buckets.count)]
    bounds = [window.since, *edges, None]
    for (groups, queries), since, until in zip(per_bucket, bounds[:-1], bounds[1:], strict=True):
        alone = LedgerFilter(since=since, until=until)
        assert groups == ledger.summary_by(group, alone)
        assert queries == ledger.queries_with_calls(alone)
    whole = sum((g.spend for groups, _ in per_bucket for g in groups), Spend())
    assert whole == sum((g.spend for g in ledger.summary_by(group, window)), Spend())
    assert whole.calls == 12
    assert [sum(g.spend.calls for g in groups) for groups, _ in per_bucket] == [3, 0, 3, 0, 6]


async def test_iter_calls_filters_in_start_order(ledger: Ledger, kit):
    records = await _mixed_calls(ledger, kit)
    everything = list(ledger.iter_calls(batch=2))
    assert [c.id for c in everything] == [
        r.id for r in sorted(records, key=lambda r: (r.started_at, r.id))
    ]
    ana = list(ledger.iter_calls(LedgerFilter(user="ana", since=kit.at(60))))
    assert len(ana) == 3
    assert all(c.query_id is not None for c in ana)
    game = list(ledger.iter_calls(LedgerFilter(thread_id="game-2")))
    assert [c.id for c in game] == [r.id for r in records[6:12]]


async def test_a_thread_filter_totals_one_conversation(ledger: Ledger, kit):
    records = await _mixed_calls(ledger, kit)
    game = LedgerFilter(thread_id="game-1")
    [queries] = ledger.summary_by(GroupBy.APP, LedgerFilter(thread_id="game-1", app="dungeon"))
    assert (queries.key, queries.spend.calls, queries.queries) == ("dungeon", 3, 1)
    totals = sum(g.spend for g in ledger.summary_by(GroupBy.USER, game))
    assert totals == Spend.of_calls(records[:6])
    assert totals.known_cost == sum(r.cost_usd for r in records[:6] if r.cost_usd is not None)
    assert (totals.calls, totals.unpriced) == (6, 1)
    assert len(ledger.list_queries(game)) == 2
    assert ledger.list_queries(LedgerFilter(thread_id="no-such-game")) == []


async def test_unknown_group_and_unknown_query(ledger: Ledger):
    with pytest.raises(LedgerError, match="unknown GroupBy 'colour'"):
        ledger.summary_by("colour")
    with pytest.raises(LedgerError, match="no query 'missing'"):
        ledger.query_summary("missing")
    assert ledger.calls_for_query("missing") == []


async def test_query_ids_by_prefix(ledger: Ledger, kit):
    for query_id in ("abc", "abcd", "abd", "ABC9", "a_c", "a%c"):
        await ledger.open_query(kit.query(id=query_id))
    assert ledger.query_ids_with_prefix("abc") == ["abc", "abcd"]
    assert ledger.query_ids_with_prefix("ab", limit=2) == ["abc", "abd"]
    assert ledger.query_ids_with_prefix("AB") == ["ABC9"]  # case matters
    assert ledger.query_ids_with_prefix("a_") == ["a_c"]  # wildcards are literal
    assert ledger.query_ids_with_prefix("a%") == ["a%c"]
    assert ledger.query_ids_with_prefix("zz") == []
