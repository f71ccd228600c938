"""Thread ages from checkpoint ids, and which threads a purge picks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from langgraph.checkpoint.base.id import uuid6

from spendgraph.graph.thread_admin import Encryption, ThreadInfo, checkpoint_time, select_threads


def test_a_checkpoint_id_carries_its_time():
    before = datetime.now(UTC)
    made = checkpoint_time(str(uuid6()))
    after = datetime.now(UTC)
    assert made is not None and before - timedelta(milliseconds=1) <= made <= after
    assert checkpoint_time("not-a-uuid") is None
    assert checkpoint_time("00000000-0000-4000-8000-000000000000") is None  # v4: no time
    time.sleep(0.002)
    assert checkpoint_time(str(uuid6())) > made


NOW = datetime(2025, 6, 1, tzinfo=UTC)
OLD = ThreadInfo("old", 3, NOW - timedelta(days=40), Encryption.YES)
NEW = ThreadInfo("new", 1, NOW - timedelta(days=1), Encryption.NO)
AGELESS = ThreadInfo("ageless", 1, None, Encryption.PARTLY)
ALL = [OLD, NEW, AGELESS]


def test_a_purge_picks_by_age_and_or_id():
    month_ago = NOW - timedelta(days=30)
    assert select_threads(ALL, older_than=month_ago) == [OLD]  # an unknown age is never "old"
    assert select_threads(ALL, thread_ids=["new", "missing"]) == [NEW]
    assert select_threads(ALL, older_than=month_ago, thread_ids=["new"]) == []  # both must match
    assert select_threads(ALL, older_than=NOW, thread_ids=["old", "new"]) == [OLD, NEW]
