"""`spendgraph run research_chat --sim --json`: one question, a dozen calls, one query."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from spendgraph.cli.main import app
from spendgraph.examples.research_chat import APP
from spendgraph.providers.ledger import Ledger


def test_the_cli_runs_a_question_across_the_panel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "ledger.db"
    env = {
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "SPENDGRAPH_LEDGER": str(ledger),
        "SPENDGRAPH_CONFIG": None,
        "SPENDGRAPH_SIM_URL": None,
    }
    args = ["run", "research_chat", "--sim", "--json", APP.samples[0]]
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and payload["answer"]
    assert payload["calls"] >= 12
    agents = list(payload["agents"])
    assert agents[0] == "planner" and agents[-1] == "synthesizer"
    assert len(agents) > 3 and all(a.startswith("planner/") for a in agents[1:-1])
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(payload["query_id"])
        assert len(rows) == payload["calls"]
        assert opened.query_summary(payload["query_id"]).query.app == "research_chat"


def test_the_chat_answers_piped_questions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"NO_COLOR": "1", "COLUMNS": "120", "SPENDGRAPH_LEDGER": str(tmp_path / "c.db")}
    args = ["chat", "--app", "research_chat", "--sim", "--sim-time-scale", "0"]
    result = CliRunner().invoke(
        app, args, input="What is NVFP4?\n", env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    spend = next(line for line in result.stdout.splitlines() if line.startswith("[spend]"))
    fields = dict(part.split("=", 1) for part in spend.split()[1:])
    assert fields["status"] == "ok" and int(fields["calls"]) >= 12
