"""What ``--since`` / ``--until`` accept, shared by every audit subcommand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from spendgraph.cli.options import parse_since, parse_until


def test_dates_and_datetimes_are_utc():
    assert parse_since("2025-03-01") == datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_since("2025-03-01T12:30") == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_since("2025-03-01T12:30+02:00") == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


def test_a_bare_until_date_includes_that_day():
    assert parse_until("2025-03-01") == datetime(2025, 3, 2, tzinfo=UTC)
    assert parse_until("2025-03-01T06:00") == datetime(2025, 3, 1, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [("7d", timedelta(days=7)), ("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30))],
)
def test_ages_count_back_from_now(text, delta):
    before = datetime.now(UTC)
    parsed = parse_since(text)
    after = datetime.now(UTC)
    assert before - delta <= parsed <= after - delta


@pytest.mark.parametrize("text", ["yesterday-ish", "7x", "2025-13-01", ""])
def test_anything_else_is_a_bad_parameter(text):
    with pytest.raises(typer.BadParameter):
        parse_since(text)
