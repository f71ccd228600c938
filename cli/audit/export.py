"""``spendgraph audit export``: every matching call, one row each, all columns.

Costs are exact decimal strings (CSV: empty for an unknown cost; JSON:
``null``). Rows are streamed from the ledger, so a large ledger exports in
constant memory (except parquet, which builds its table in memory).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.audit.ledger import note_nothing_found
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    CommandError,
)
from spendgraph.providers.ledger import CallRecord, Ledger, LedgerFilter

# The export's columns, in order: the ledger's ``call`` columns.
COLUMNS = (
    *("id", "query_id", "request_id", "attempt", "agent_path", "node"),
    *("endpoint", "model", "hardware", "precision", "engine", "stream"),
    *("started_at", "ttft_ms", "latency_ms"),
    *("input_uncached", "input_cached", "output", "reasoning", "usage_source"),
    *("status", "error_kind", "http_status", "price_version", "cost_usd"),
    *("prompt_text", "completion_text"),
)

_INTEGER_COLUMNS = (
    "attempt",
    "input_uncached",
    "input_cached",
    "output",
    "reasoning",
    "http_status",
)


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"  # one JSON array
    JSONL = "jsonl"  # one JSON object per line
    PARQUET = "parquet"  # only when pyarrow is installed


@audit_command(json_output=False)
def command(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    form: Annotated[
        ExportFormat,
        typer.Option("--format", help="csv, json (one array), jsonl, or parquet (needs pyarrow)."),
    ] = ExportFormat.CSV,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout."),
    ] = None,
) -> None:
    """Every matching call, one row each with all its columns; costs as exact decimals."""
    run(out, ledger, filters, form, output)


def call_row(call: CallRecord) -> dict[str, Any]:
    """One call as plain JSON-ready values, keys in :data:`COLUMNS` order."""
    endpoint, usage = call.endpoint, call.usage
    return {
        "id": call.id,
        "query_id": call.query_id,
        "request_id": call.request_id,
        "attempt": call.attempt,
        "agent_path": call.agent_path,
        "node": call.node,
        "endpoint": endpoint.name,
        "model": endpoint.model,
        "hardware": endpoint.hardware,
        "precision": endpoint.precision,
        "engine": endpoint.engine,
        "stream": call.stream,
        "started_at": fmt.time_json(call.started_at),
        "ttft_ms": call.ttft_ms,
        "latency_ms": call.latency_ms,
        "input_uncached": usage.input_uncached,
        "input_cached": usage.input_cached,
        "output": usage.output,
        "reasoning": usage.reasoning,
        "usage_source": str(usage.source),
        "status": str(call.status),
        "error_kind": call.error_kind,
        "http_status": call.http_status,
        "price_version": call.price_version,
        "cost_usd": fmt.decimal_json(call.cost_usd),
        "prompt_text": call.prompt_text,
        "completion_text": call.completion_text,
    }


def run(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    form: ExportFormat,
    output: Path | None,
) -> None:
    """Write the calls matching ``filters`` to ``output`` (stdout when None)."""
    if form is ExportFormat.PARQUET:
        _check_parquet(output)
    rows = (call_row(call) for call in ledger.iter_calls(filters))
    if output is None:
        count = _write(form, rows, out.console.file)
    elif form is ExportFormat.PARQUET:
        count = _write_parquet(rows, output)
    else:
        try:
            with output.open("w", encoding="utf-8", newline="") as stream:
                count = _write(form, rows, stream)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}") from exc
    if count == 0:
        note_nothing_found(out, ledger, "calls")
    elif output is not None:
        out.errors.print(
            f"wrote {count} call(s) to {output}", highlight=False, markup=False, soft_wrap=True
        )


def _write(form: ExportFormat, rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    writers = {
        ExportFormat.CSV: _write_csv,
        ExportFormat.JSON: _write_json,
        ExportFormat.JSONL: _write_jsonl,
    }
    count = writers[form](rows, stream)
    stream.flush()
    return count


def _write_csv(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
        count += 1
    return count


def _csv_value(value: Any) -> Any:
    # None is an empty cell (an unknown cost is empty, never 0); booleans as JSON spells them.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_json(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    # Streamed by hand so the whole array never sits in memory.
    count = 0
    stream.write("[")
    for row in rows:
        stream.write(",\n  " if count else "\n  ")
        stream.write(json.dumps(row, ensure_ascii=False))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def _write_jsonl(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _check_parquet(output: Path | None) -> None:
    if not parquet_available():
        raise CommandError(
            "parquet export needs pyarrow, which is not installed "
            "(pip install pyarrow); csv, json and jsonl need nothing extra"
        )
    if output is None:
        raise CommandError("parquet is a binary format: give --output FILE")


def _write_parquet(rows: Iterator[dict[str, Any]], output: Path) -> int:
    import pyarrow as pa  # optional: checked by _check_parquet
    import pyarrow.parquet as pq

    # An explicit schema, so an empty export still has every column.
    kinds = {"stream": pa.bool_(), "ttft_ms": pa.float64(), "latency_ms": pa.float64()}
    kinds.update((name, pa.int64()) for name in _INTEGER_COLUMNS)
    schema = pa.schema([(name, kinds.get(name, pa.string())) for name in COLUMNS])
    table = pa.Table.from_pylist(list(rows), schema=schema)
    try:
        pq.write_table(table, output)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc}") from exc
    return table.num_rows
