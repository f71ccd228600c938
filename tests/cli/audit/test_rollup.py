"""`spendgraph audit rollup`: seals the hours that have ended; summaries read the same after."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    Ledger,
    QueryRecord,
    QueryStatus,
)
from spendgraph.providers.usage import Usage

T0 = datetime(2025, 3, 1, 22, 30, tzinfo=UTC)
B200 = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")


def _write(path: str) -> None:
    with Ledger.open(path) as ledger:
        for i in range(6):
            query = QueryRecord(app="dungeon", started_at=T0 + timedelta(minutes=25 * i))
            ledger.submit_open_query(query)
            for n in range(3):  # 20 minutes apart: most queries cross an hour
                at = query.started_at + timedelta(minutes=20 * n)
                ledger.submit_call(
                    CallRecord(endpoint=B200, status=CallStatus.OK, price_version="p1",
                               query_id=query.id, started_at=at,
                               agent_path=f"supervisor/{n}", usage=Usage(100, 0, 10 * n),
                               cost_usd=Decimal("0.000000123") * (i + n))
                )  # fmt: skip
            ledger.submit_close_query(query.id, QueryStatus.OK, finished_at=at)
        ledger.flush()


def _json(cli, *args: str) -> dict:
    result = cli("audit", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_rollup_seals_and_summaries_read_the_same(cli, tmp_path):
    path = str(tmp_path / "ledger.db")
    _write(path)
    # Read from the rows: a summary that seals nothing first (read-only copy of the facts).
    with Ledger.open(path) as ledger:
        rows_only = {by: ledger.summary_by(by) for by in ("agent", "day", "app")}

    sealed = _json(cli, "rollup", "--ledger", path)
    again = _json(cli, "rollup", "--ledger", path)

    assert sealed["sealed_hours"] >= 4 and sealed["calls"] == 18
    assert (again["sealed_hours"], again["calls"]) == (0, 0)
    with Ledger.open(path) as ledger:
        assert {by: ledger.summary_by(by) for by in rows_only} == rows_only
    summary = _json(cli, "summary", "--by", "agent", "--ledger", path)
    assert summary["total"]["queries"] == 6 and summary["total"]["calls"] == 18


def test_rollup_refuses_filters(cli, tmp_path):
    path = str(tmp_path / "ledger.db")
    _write(path)
    result = cli("audit", "rollup", "--app", "dungeon", "--ledger", path)
    assert result.exit_code != 0
    assert "takes no filters" in result.output


def test_rows_edited_in_place_are_read_again_and_rebuild_reseals_all(cli, tmp_path):
    path = str(tmp_path / "ledger.db")
    _write(path)
    _json(cli, "rollup", "--ledger", path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE call SET output = output + 1000")  # same row count
    conn.commit()
    conn.close()

    # The ledger's trigger forgot the sealed hours: the summary reads the rows.
    summary = _json(cli, "summary", "--by", "agent", "--ledger", path)
    assert summary["total"]["tokens"]["output"] == 18 * 1000 + 6 * 30
    rebuilt = _json(cli, "rollup", "--rebuild", "--ledger", path)
    assert rebuilt["dropped"] >= 4 and rebuilt["calls"] == 18  # all dropped, all resealed
    assert _json(cli, "rollup", "--ledger", path)["calls"] == 0
    assert _json(cli, "summary", "--by", "agent", "--ledger", path) == summary
