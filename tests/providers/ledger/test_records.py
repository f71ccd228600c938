"""Record identifiers: random for queries, time-ordered for calls."""

from __future__ import annotations

import re

from spendgraph.providers.ledger import CallRecord, QueryRecord, new_id, new_sequential_id


def test_sequential_ids_sort_in_creation_order_and_never_repeat():
    ids = [new_sequential_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)
    # The time half orders them; ids made in one clock tick differ in the random half.
    assert [value[:16] for value in ids] == sorted(value[:16] for value in ids)


def test_calls_get_sequential_ids_and_queries_random_ones(kit):
    # Query ids are what users type prefixes of, so they must not share a time prefix.
    calls = [kit.call() for _ in range(50)]
    assert [c.id[:16] for c in calls] == sorted(c.id[:16] for c in calls)
    queries = [QueryRecord() for _ in range(50)]
    assert len({q.id[:6] for q in queries}) > 40
    assert len(new_id()) == 32 and isinstance(calls[0], CallRecord)
