"""`spendgraph audit export`: one row per call, all columns, exact decimal costs."""

from __future__ import annotations

import csv
import io
import json

import pytest

from spendgraph.cli.audit.export import COLUMNS, parquet_available

RECORDED_COSTS = ["0.00005", "0", "0.00048", "", "0.000038", "0.000016", "0.0000584", "0.0000048"]


def test_csv_to_stdout_has_every_call_and_column(cli, known_ledger):
    result = cli("audit", "export", "--ledger", known_ledger.url)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8
    assert tuple(rows[0]) == COLUMNS
    # In start order; the unpriced call's cost is empty (unknown), never 0.
    assert [row["cost_usd"] for row in rows] == RECORDED_COSTS
    first = rows[0]
    assert (first["query_id"], first["agent_path"], first["endpoint"]) == (
        known_ledger.q1,
        "supervisor",
        "b200-nvfp4-0",
    )
    assert (first["input_uncached"], first["input_cached"], first["output"]) == (
        "1000",
        "200",
        "100",
    )
    assert (first["reasoning"], first["stream"], first["usage_source"]) == (
        "40",
        "true",
        "reported",
    )
    assert first["started_at"] == "2025-03-01T12:00:00.100000+00:00"
    failed = rows[1]
    assert (failed["status"], failed["error_kind"], failed["http_status"]) == (
        "error",
        "server_error",
        "503",
    )
    assert rows[3]["price_version"] == "unknown"
    assert rows[5]["usage_source"] == "estimated" and rows[5]["status"] == "cancelled"
    assert rows[7]["query_id"] == ""  # the call made outside any query


def test_json_array_with_null_for_unknown_cost(cli, known_ledger):
    result = cli("audit", "export", "--format", "json", "--ledger", known_ledger.url)
    rows = json.loads(result.stdout)
    assert [row["cost_usd"] for row in rows] == [cost or None for cost in RECORDED_COSTS]
    assert list(rows[0]) == list(COLUMNS)
    assert rows[1]["http_status"] == 503 and rows[1]["ttft_ms"] is None
    assert rows[0]["stream"] is True and rows[0]["prompt_text"] is None


def test_filters_and_jsonl_to_a_file(cli, known_ledger, tmp_path):
    target = tmp_path / "calls.jsonl"
    result = cli(
        "audit", "export", "--format", "jsonl", "--output", str(target),
        "--app", "dungeon", "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote 2 call(s) to {target}" in result.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["agent_path"] for row in rows] == ["narrator", "narrator/npc"]


def test_time_filter_uses_call_start(cli, known_ledger):
    result = cli(
        "audit", "export", "--format", "json", "--since", "2025-03-04", "--ledger", known_ledger.url
    )
    rows = json.loads(result.stdout)
    assert [row["cost_usd"] for row in rows] == ["0.0000048"]


def test_empty_ledger_exports_a_header_and_says_why(cli, empty_ledger):
    result = cli("audit", "export", "--ledger", empty_ledger)
    assert result.exit_code == 0
    assert result.stdout.strip() == ",".join(COLUMNS)
    assert "is empty" in result.stderr
    as_json = cli("audit", "export", "--format", "json", "--ledger", empty_ledger)
    assert json.loads(as_json.stdout) == []


def test_unwritable_output_is_one_clear_error(cli, known_ledger, tmp_path):
    result = cli(
        "audit", "export", "--output", str(tmp_path / "no" / "such" / "dir.csv"),
        "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot write" in result.stderr


@pytest.mark.skipif(parquet_available(), reason="pyarrow is installed here")
def test_parquet_without_pyarrow_says_what_to_do(cli, known_ledger, tmp_path):
    result = cli(
        "audit", "export", "--format", "parquet", "--output", str(tmp_path / "c.parquet"),
        "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "parquet export needs pyarrow" in message and "csv, json and jsonl" in message
    assert not (tmp_path / "c.parquet").exists()


@pytest.mark.skipif(not parquet_available(), reason="pyarrow is not installed")
def test_parquet_with_pyarrow(cli, known_ledger, tmp_path):  # pragma: no cover - optional
    import pyarrow.parquet as pq

    target = tmp_path / "c.parquet"
    result = cli(
        "audit", "export", "--format", "parquet", "--output", str(target),
        "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(target)
    assert table.column_names == list(COLUMNS)
    assert table.column("cost_usd").to_pylist() == [cost or None for cost in RECORDED_COSTS]
