"""The SQLite fast path writes exactly what SQLAlchemy's Core path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from spendgraph.providers.ledger.fastpath import utc_text
from spendgraph.providers.ledger.sqltypes import UTCDateTime


@pytest.mark.parametrize(
    "value",
    [
        datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        datetime(2025, 3, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2025, 3, 1, 0, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 3, 1, 12, 0, 1),  # naive: taken as UTC
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        None,
    ],
)
def test_timestamps_are_the_text_sqlalchemy_writes(value):
    dialect = sqlite.dialect()
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert utc_text(value) == processor(value)
