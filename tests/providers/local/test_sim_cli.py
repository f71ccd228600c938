"""`spendgraph serve sim`: the console script starts the simulator and stops on Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _console_script() -> str:
    beside_python = Path(sys.executable).with_name("spendgraph")
    found = str(beside_python) if beside_python.exists() else shutil.which("spendgraph")
    assert found, "the spendgraph console script is not installed"
    return found


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url} within {timeout}s")


def test_serve_sim_console_script_serves_and_stops_on_ctrl_c():
    port = _free_port()
    command = [_console_script(), "serve", "sim", "--port", str(port), "--time-scale", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = _wait_healthy(f"http://127.0.0.1:{port}/health", process)
        assert health.json() == {"status": "ok"}
        models = httpx.get(f"http://127.0.0.1:{port}/r/h100-fp8-0/v1/models").json()
        assert {m["id"] for m in models["data"]} == {"sim-large", "sim-small"}
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/v1" in output


def test_serve_sim_bad_fleet_is_one_clear_error(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text("[models.m]\n[[replicas]]\nname = 'x'\nprofile = 'TPU'\n")
    result = subprocess.run(
        [_console_script(), "serve", "sim", "--fleet", str(fleet), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "replicas[0].profile" in result.stderr and "Traceback" not in result.stderr
