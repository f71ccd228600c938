"""`spendgraph chat`: piped stdin on the simulator, slash commands, Ctrl-C, the embedded model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from spendgraph.cli.formats import usd
from spendgraph.cli.main import app
from spendgraph.providers.config import example_config_path
from spendgraph.providers.ledger import CallStatus, Ledger, QueryStatus
from spendgraph.providers.local.sim.layer import SIM_URL_ENV
from spendgraph.providers.local.sim.server import run_simulator

ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb", "SPENDGRAPH_CONFIG": None}


def chat(stdin: str, *args: str, ledger) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["chat", *args, "--ledger", str(ledger)],
        input=stdin,
        env=ENV,
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def spend_lines(stdout: str) -> list[dict[str, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("[spend] ")]
    return [dict(field.split("=", 1) for field in line.split()[1:]) for line in lines]


def test_piped_chat_one_query_per_line(cli, tmp_path):
    ledger = tmp_path / "chat.db"
    code, out, _ = chat(
        "first question\n\nsecond question\n/spend\n",
        "--sim",
        "--sim-time-scale",
        "0",
        ledger=ledger,
    )
    assert code == 0
    turns = spend_lines(out)
    assert len(turns) == 2 and all(t["status"] == "ok" for t in turns)
    with Ledger.open(str(ledger)) as opened:
        first, second = (opened.query_summary(t["query"]) for t in turns)
        assert first.query.thread_id == second.query.thread_id  # one conversation
        # The second turn's prompt carries the first turn's history.
        assert second.spend.input_tokens > first.spend.input_tokens
        assert turns[0]["cost"] == usd(first.spend.cost)  # as every table shows amounts
    assert "session: 2 queries, 2 calls" in out  # the /spend summary


def test_budget_and_new_thread_commands(cli, tmp_path):
    ledger = tmp_path / "chat.db"
    stdin = "hello\n/budget 0.0000001\nthis one is over budget\n/budget off\n/new\nagain\n"
    code, out, err = chat(stdin, "--sim", "--sim-time-scale", "0", ledger=ledger)
    assert code == 0
    first, starved, fresh = spend_lines(out)
    # Why the starved turn has no answer, on stderr (stdout stays answer + [spend] lines).
    assert "(no answer: the budget refused the call: call needs up to $" in " ".join(err.split())
    assert starved["status"] == QueryStatus.BUDGET_EXHAUSTED.value
    # The budget refused the one call: a refusal, not a failure.
    assert (starved["calls"], starved["failed"], starved["refused"]) == ("1", "0", "1")
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(starved["query"])
        assert [r.status for r in rows] == [CallStatus.BUDGET_DENIED]
        threads = {opened.query_summary(t["query"]).query.thread_id for t in (first, fresh)}
    assert len(threads) == 2


def test_unknown_slash_command_is_reported(cli, tmp_path):
    code, _, err = chat("/frobnicate\n", "--sim", ledger=tmp_path / "c.db")
    assert code == 0 and "unknown command /frobnicate" in err


def test_ctrl_c_cancels_the_turn_and_records_it(tmp_path):
    ledger = tmp_path / "ctrlc.db"
    # Our own simulator, slowed down, behind the example config: Ctrl-C is sent
    # once the server has the request running, so it lands mid-call however
    # loaded the machine is (watching the ledger could only tell the query began).
    with run_simulator(time_scale=3.0) as sim:
        env = {**os.environ, "NO_COLOR": "1", "SPENDGRAPH_LEDGER": str(ledger)}
        env.update({SIM_URL_ENV: sim.base_url, "SPENDGRAPH_CONFIG": str(example_config_path())})
        process = subprocess.Popen(
            [sys.executable, "-m", "spendgraph.cli.main", "chat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            process.stdin.write("tell me a long story\n")
            process.stdin.flush()
            deadline = time.monotonic() + 60
            while not _requests_running(sim) and time.monotonic() < deadline:
                time.sleep(0.02)
            process.send_signal(signal.SIGINT)
            time.sleep(0.5)
            out, err = process.communicate("/quit\n", timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert "turn cancelled" in out + err and "Traceback" not in err
    with Ledger.open(str(ledger)) as opened:
        (summary,) = opened.list_queries()
        assert summary.query.status is QueryStatus.CANCELLED
        rows = opened.calls_for_query(summary.query.id)
    assert [r.status for r in rows] == [CallStatus.CANCELLED]


def _requests_running(sim) -> int:
    """Requests the simulator is serving right now (its vLLM-style gauge, all replicas)."""
    lines = sim.state.metrics.render().decode().splitlines()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in lines
        if line.startswith("vllm:num_requests_running{")
    )


def test_without_the_local_extra_chat_says_how_to_install(tmp_path):
    code = (
        "import sys\nsys.modules['llama_cpp'] = None\n"
        "from spendgraph.cli.main import main\nsys.argv = ['spendgraph', 'chat']\nmain()\n"
    )
    env = {**os.environ, "NO_COLOR": "1", "SPENDGRAPH_LEDGER": str(tmp_path / "x.db")}
    env.pop("SPENDGRAPH_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        input="",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert 'pip install -e ".[local]"' in done.stderr
    assert "--sim" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.local_model
@pytest.mark.timeout(240)
def test_chat_answers_on_the_embedded_model(cli, tmp_path):
    ledger = tmp_path / "embedded.db"
    code, out, err = chat("Name a colour.\n", ledger=ledger)
    assert code == 0, err
    (turn,) = spend_lines(out)
    assert turn["status"] == "ok" and turn["endpoints"] == "embedded-smollm2"
    with Ledger.open(str(ledger)) as opened:
        (row,) = opened.calls_for_query(turn["query"])
    assert row.endpoint.hardware == "cpu" and row.usage.output > 0
    assert row.cost_usd == 0  # a CPU at $0/hour: a known zero, not unknown
    assert row.usage.source.value == "counted"  # llama.cpp streams carry no usage


@pytest.mark.local_model  # the price is checked after the model is found
def test_embedded_price_without_throughput_is_a_clear_error(tmp_path):
    env = {**ENV, "SPENDGRAPH_LOCAL_USD_PER_HOUR": "0.05"}
    result = CliRunner().invoke(
        app, ["chat", "--ledger", str(tmp_path / "p.db")], input="hi\n", env=env
    )
    assert result.exit_code == 1
    assert "SPENDGRAPH_LOCAL_OUTPUT_TOKENS_PER_S" in result.stderr
    assert "needs a measured" in result.stderr
