"""`spendgraph audit serve`: refuses what it must, and serves the audit commands' own JSON."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from front_door import cli_env, free_port

from spendgraph.providers.config import example_config_path

EXAMPLE = str(example_config_path())


def test_a_non_loopback_host_is_refused_and_says_why(cli, known_ledger):
    result = cli("audit", "serve", "--host", "0.0.0.0", "--ledger", known_ledger.url)
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "refusing to serve the audit on '0.0.0.0'" in message
    assert "no login" in message and "--allow-remote" in message


def test_a_missing_ledger_is_an_error_and_no_file_is_left(cli, tmp_path):
    missing = tmp_path / "nowhere.db"
    result = cli("audit", "serve", "--ledger", str(missing), "--port", "0")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "error:" in message and str(missing) in message and "Traceback" not in result.output
    assert not missing.exists()


def test_a_port_in_use_is_an_error_naming_it(cli, known_ledger):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("audit", "serve", "--port", str(port), "--ledger", known_ledger.url)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(result.stderr.split())


def test_served_over_postgres_as_a_process_until_sigterm(cli, postgres_ledger, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "spendgraph.cli.main", "audit", "serve", "--port", str(port),
        "--ledger", postgres_ledger, "--config", EXAMPLE, "--app", "research_chat",
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process, log)
        # The command-line filter is the pages' default; a parameter overrides it.
        served = httpx.get(f"{base}/api/summary", params={"by": "agent"}, timeout=30).json()
        expected = cli("audit", "summary", "--by", "agent", "--app", "research_chat",
                       "--ledger", postgres_ledger, "--json")  # fmt: skip
        assert served == json.loads(expected.stdout) and served["filters"]["app"] == "research_chat"
        everything = httpx.get(f"{base}/api/queries", params={"app": ""}, timeout=30).json()
        assert {q["app"] for q in everything["queries"]} == {
            "research_chat", "dungeon", "voice_support",
        }  # fmt: skip
        timeline = httpx.get(f"{base}/api/timeline", params={"by": "hardware"}, timeout=30).json()
        bucketed = sum(bucket["summary"]["total"]["calls"] for bucket in timeline["buckets"])
        assert bucketed == served["total"]["calls"] > 0
        assert f"at http://127.0.0.1:{port}/" in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=60)
    # uvicorn stops serving, then ends the process by the signal it got (the shell's 143).
    assert code == -signal.SIGTERM, log.read_text()
    assert "Traceback" not in log.read_text()


def _wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"audit serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/api/meta", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"audit serve did not answer within 90 s: {log.read_text()}")
