"""`spendgraph serve local`: the embedded model in the foreground, stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spendgraph.providers.errors import EmbeddedModelUnavailable
from spendgraph.providers.local.embedded import model_path


@pytest.fixture
def embedded_model() -> None:
    try:
        model_path()
    except EmbeddedModelUnavailable as exc:
        pytest.fail(f"this test needs the embedded model (the [local] extra): {exc}")


def test_sigterm_stops_the_server_and_removes_its_temporary_log(tmp_path, embedded_model):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "spendgraph.cli.main", "serve", "local", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        log_path = None
        deadline = time.monotonic() + 120
        while log_path is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            found = re.search(r"server log: (\S+)", line)
            log_path = Path(found.group(1)) if found else None
        assert log_path is not None and log_path.exists()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert not log_path.exists()
