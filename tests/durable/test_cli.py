"""The durable CLI's bad input: one clear line and exit code 1, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from spendgraph.cli.main import app


@pytest.fixture
def cli():
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200"})
    return lambda *args: runner.invoke(app, list(args))


def test_an_unknown_engine_is_one_line(cli):
    result = cli("worker", "chat", "--engine", "bogus")
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "error: unknown engine 'bogus': expected one of inprocess, temporal"
    )


def test_a_worker_of_the_in_process_engine_is_refused(cli):
    result = cli("worker", "chat", "--engine", "inprocess")
    assert result.exit_code == 1 and "serves --engine temporal" in result.output


def test_an_unreachable_temporal_server_is_a_clear_error(cli, tmp_path):
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    result = cli(
        "run", "chat", "hi", "--engine", "temporal", "--address", "127.0.0.1:1", "--ledger", ledger
    )
    assert result.exit_code == 1
    assert "cannot reach the Temporal server at 127.0.0.1:1 (--address)" in result.output
    assert "Traceback" not in result.output
