"""Fixtures for graph tests; the simulator, test fleet, ledger and provider layer are the
suite-wide ones in tests/conftest.py."""

from __future__ import annotations

import pytest

from spendgraph.agents import Agent
from spendgraph.providers.spend import Spend


@pytest.fixture
def ledger_rows(ledger):
    """``ledger_rows(result)``: the query's call rows, after checking the ledger adds up.

    Checks: every row belongs to the query; the Query's totals (derived by the
    ledger) equal the sum of its rows; the run's spend (read from the provider
    layer's accounting) equals them too; the Query row's status is the run's.
    """

    def check(result):
        ledger.flush()
        rows = ledger.calls_for_query(result.query_id)
        summary = ledger.query_summary(result.query_id)
        assert {row.query_id for row in rows} <= {result.query_id}
        assert len(rows) == result.spend.calls
        assert summary.spend == Spend.of_calls(rows) == result.spend
        assert summary.query.status == result.status
        assert summary.query.thread_id == result.thread_id
        return rows

    return check


def make_agents(prefix: str, count: int, **options):
    """``count`` plain agents named ``<prefix>0``.. with short answers."""
    return [
        Agent(
            f"{prefix}{i}",
            f"Specialist {i}: answer your part briefly.",
            **{"max_tokens": 24, **options},
        )
        for i in range(count)
    ]


@pytest.fixture
def agents():
    """``agents(prefix, count, **options)``: plain agents with short answers."""
    return make_agents
