"""The durable CLI's bad input: one clear line and exit code 1, no traceback."""

from __future__ import annotations

import subprocess
import sys

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


def test_serve_app_without_a_temporal_server_is_one_line_and_exit_1(tmp_path):
    """As a real process: the exit code is 1 (not a crash of the SDK at teardown)."""
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    args = ["serve", "app", "chat", "--engine", "temporal", "--sim", "--no-keys"]
    done = spendgraph(tmp_path, *args, "--address", "127.0.0.1:1", "--ledger", ledger)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "error: cannot reach the Temporal server at 127.0.0.1:1 (--address): connection refused"
    )


def test_serve_app_on_temporal_needs_the_workers_endpoints(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("SPENDGRAPH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./spendgraph.toml either
    result = cli("serve", "app", "chat", "--engine", "temporal", "--no-keys")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --engine temporal needs --config or --sim (the endpoints the workers use), "
        "and the ledger the workers share (--ledger)"
    )


def test_serve_app_with_an_unreachable_redis_is_one_line(temporal_server, tmp_path):
    args = ["serve", "app", "chat", "--engine", "temporal", "--sim", "--no-keys"]
    redis = ["--redis", "redis://127.0.0.1:1/0"]
    done = spendgraph(tmp_path, *args, "--address", temporal_server, *redis)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: cannot reach Redis at redis://127.0.0.1:1/0 (--redis):"
    )


def test_the_temporal_engine_without_the_extra_is_one_line(tmp_path):
    """The extra missing (its package made unimportable, as when it is not installed)."""
    done = spendgraph(
        tmp_path, "serve", "app", "chat", "--engine", "temporal", "--sim", hide="temporalio"
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "error: --engine temporal needs the extra: pip install 'spendgraph[temporal]'"
    )


def spendgraph(cwd, *args: str, hide: str | None = None) -> subprocess.CompletedProcess:
    """The CLI as a process of its own (``hide``: a package it cannot import)."""
    hidden = f"sys.modules[{hide!r}] = None\n" if hide else ""
    code = (
        f"import runpy, sys\n{hidden}sys.argv = ['spendgraph', *{list(args)!r}]\n"
        "runpy.run_module('spendgraph.cli.main', run_name='__main__')"
    )
    env = {"NO_COLOR": "1", "COLUMNS": "200", "PATH": ""}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )
