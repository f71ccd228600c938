"""SIGTERM and SIGKILL against real `spendgraph` processes on a counting simulator.

SIGTERM (``docker stop``, systemd, Kubernetes) is sent once the simulator has
requests running, so it lands mid-call however loaded the machine is. Every
request the simulator received must then have its ledger row. SIGKILL leaves
the query ``running``; once its lease has run out, the next process (an
audit, the next run) marks it ``interrupted``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from counting_sim import CountingSimulator, counting_simulator

from spendgraph.providers.config import example_config_path
from spendgraph.providers.ledger import CallStatus, Ledger, QueryStatus
from spendgraph.providers.local.sim.layer import SIM_URL_ENV

QUESTION = "Compare B200 and H100 for serving a large MoE model"
# docker stop's default grace period: a process still running after it is SIGKILLed.
GRACE_S = 10.0


def spawn(args: list[str], sim: CountingSimulator, ledger: Path, config: Path, **popen):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", "SPENDGRAPH_LEDGER": str(ledger)}
    env.update({SIM_URL_ENV: sim.base_url, "SPENDGRAPH_CONFIG": str(config)})
    return subprocess.Popen(
        [sys.executable, "-m", "spendgraph.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ledger.parent,
        **popen,
    )


def terminate(process: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[str, str, float]:
    """Send ``signum``; wait for the exit. (stdout, stderr, seconds it took to exit)."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return out, err, time.monotonic() - sent


def lease_config(tmp_path: Path, lease_s: float) -> Path:
    """The example config with a short query lease."""
    path = tmp_path / "spendgraph.toml"
    text = example_config_path().read_text()
    assert text.count("\n[ledger]\n") == 1
    path.write_text(text.replace("\n[ledger]\n", f"\n[ledger]\nlease_s = {lease_s}\n"))
    return path


def served_rows(ledger: Path, query_id: str) -> list:
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(query_id)
    return [row for row in rows if row.status is not CallStatus.BUDGET_DENIED]


def only_query(ledger: Path):
    with Ledger.open(str(ledger)) as opened:
        (summary,) = opened.list_queries()
    return summary.query


def test_sigterm_cancels_a_run_and_records_every_served_attempt(tmp_path):
    ledger = tmp_path / "term.db"
    with counting_simulator(time_scale=1.0) as sim:
        process = spawn(["run", "research_chat", QUESTION], sim, ledger, example_config_path())
        running = sim.wait_running(3, process)
        _out, err, took = terminate(process)
        served = sim.chat_requests
    assert process.returncode == 143, err  # 128 + SIGTERM
    assert took < GRACE_S
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    query = only_query(ledger)
    assert query.status is QueryStatus.CANCELLED
    assert query.id[:8] in err  # where to look
    rows = served_rows(ledger, query.id)
    assert len(rows) == served >= running
    assert [r for r in rows if r.status is CallStatus.CANCELLED]  # those in flight


def test_sigterm_cancels_the_chat_turn_and_leaves(tmp_path):
    ledger = tmp_path / "chat.db"
    with counting_simulator(time_scale=3.0) as sim:
        process = spawn(["chat"], sim, ledger, example_config_path(), stdin=subprocess.PIPE)
        process.stdin.write("tell me a long story\nand another one\n")
        process.stdin.flush()
        sim.wait_running(1, process)
        out, err, took = terminate(process)
        served = sim.chat_requests
    assert process.returncode == 143, err
    assert took < GRACE_S
    assert "turn cancelled" in out and "stopped by SIGTERM" in err and "Traceback" not in err
    query = only_query(ledger)  # the second line never ran
    assert query.status is QueryStatus.CANCELLED
    rows = served_rows(ledger, query.id)
    assert len(rows) == served and {r.status for r in rows} == {CallStatus.CANCELLED}


def test_sigterm_at_the_chat_prompt_leaves(tmp_path):
    ledger = tmp_path / "prompt.db"
    with counting_simulator(time_scale=0.0) as sim:
        process = spawn(["chat"], sim, ledger, example_config_path(), stdin=subprocess.PIPE)
        # Two lines in one write: the prompt's wait for input must not hide the second.
        process.stdin.write("hello\nagain\n")
        process.stdin.flush()  # stdin stays open: the chat then waits for the next line
        answered = 0
        while answered < 2:
            line = process.stdout.readline()
            assert line, "the chat ended before answering both lines"
            answered += line.startswith("[spend] ")
        _out, err, took = terminate(process)
    assert process.returncode == 143, err
    assert took < GRACE_S and "Traceback" not in err
    with Ledger.open(str(ledger)) as opened:
        statuses = [summary.query.status for summary in opened.list_queries()]
    assert statuses == [QueryStatus.OK, QueryStatus.OK]


def _killed_run(tmp_path: Path, sim: CountingSimulator, ledger: Path, lease_s: float) -> str:
    """A `run` SIGKILLed mid-query; its query's id. Returns once its lease has surely expired."""
    process = spawn(
        ["run", "research_chat", QUESTION], sim, ledger, lease_config(tmp_path, lease_s)
    )
    sim.wait_running(2, process)
    terminate(process, signal.SIGKILL)
    killed_at = time.monotonic()
    assert process.returncode == -signal.SIGKILL
    query = only_query(ledger)  # opening a ledger to read it marks nothing
    assert query.status is QueryStatus.RUNNING
    # The dead process renewed at most just before it died.
    time.sleep(max(0.0, killed_at + lease_s + 0.2 - time.monotonic()))
    return query.id


def test_a_killed_run_shows_interrupted_in_the_audit(tmp_path, cli):
    ledger = tmp_path / "killed.db"
    with counting_simulator(time_scale=1.0) as sim:
        query_id = _killed_run(tmp_path, sim, ledger, lease_s=2)
    listed = cli("audit", "queries", "--json", "--ledger", str(ledger))
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["queries"]
    assert (row["id"], row["status"]) == (query_id, QueryStatus.INTERRUPTED.value)
    shown = cli("audit", "show", query_id[:8], "--ledger", str(ledger))
    assert shown.exit_code == 0 and "interrupted" in shown.stdout
    with Ledger.open(str(ledger)) as opened:
        query = opened.query_summary(query_id).query
    assert "stopped renewing its lease" in (query.error or "")
    assert query.finished_at is not None and query.finished_at >= query.started_at


def test_the_next_run_marks_a_killed_run_interrupted(tmp_path):
    ledger = tmp_path / "next.db"
    config = lease_config(tmp_path, 2)
    with counting_simulator(time_scale=1.0) as sim:
        killed = _killed_run(tmp_path, sim, ledger, lease_s=2)
    with counting_simulator(time_scale=0.0) as sim:
        process = spawn(["run", "chat", "hello"], sim, ledger, config)
        _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    with Ledger.open(str(ledger)) as opened:
        statuses = {s.query.id: s.query.status for s in opened.list_queries()}
    assert statuses.pop(killed) is QueryStatus.INTERRUPTED
    assert list(statuses.values()) == [QueryStatus.OK]
    # Closed queries hold no lease (the lease index keeps running ones only).
    leases = sqlite3.connect(ledger).execute("SELECT lease_expires_at FROM query").fetchall()
    assert leases == [(None,), (None,)]
