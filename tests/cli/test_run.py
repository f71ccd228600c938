"""`spendgraph run`: one query through an app on the simulator, its answer and spend."""

from __future__ import annotations

import json
from decimal import Decimal

from spendgraph.providers.ledger import CallStatus, Ledger


def test_run_plain_chat_on_the_simulator_as_json(cli, tmp_path):
    ledger = tmp_path / "run.db"
    result = cli("run", "chat", "What is a KV cache?", "--sim", "--json", "--ledger", str(ledger))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and payload["answer"]
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(payload["query_id"])
        summary = opened.query_summary(payload["query_id"])
    assert payload["calls"] == len(rows) == 1
    assert rows[0].status is CallStatus.OK and rows[0].agent_path == "assistant"
    assert payload["tokens"] == {
        "input_uncached": rows[0].usage.input_uncached,
        "input_cached": rows[0].usage.input_cached,
        "output": rows[0].usage.output,
    }
    assert Decimal(payload["cost_usd"]) == rows[0].cost_usd == summary.spend.cost
    assert summary.query.app == "chat"


def test_run_table_shows_answer_and_spend_panel(cli, tmp_path):
    result = cli("run", "chat", "Hello", "--sim", "--ledger", str(tmp_path / "t.db"))
    assert result.exit_code == 0, result.output
    assert "assistant" in result.stdout and "b200-nvfp4" in result.stdout
    assert "$0.0000" in result.stdout
    # The same labels as the chat's panel: status · reason, the exclusive token buckets.
    assert " · ok · done " in result.stdout
    assert "tokens uncached / cached / out" in result.stdout


def test_run_with_a_too_small_budget_says_what_the_call_needed(cli, tmp_path):
    ledger = str(tmp_path / "b.db")
    result = cli("run", "chat", "Hello", "--sim", "--ledger", ledger, "--budget-usd", "0.0000001")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "(no answer: the budget refused the call: call needs up to $" in out
    assert "of the $0.0000001 budget is left" in out
    assert "budget_exhausted · budget" in out and "1 (1 refused)" in out


def test_unknown_app_lists_the_choices(cli, tmp_path):
    result = cli("run", "no_such_app", "hi", "--sim", "--ledger", str(tmp_path / "x.db"))
    assert result.exit_code == 1
    assert "unknown app 'no_such_app'" in result.stderr and "chat" in result.stderr
    assert "Traceback" not in result.output


def test_missing_input_shows_samples(cli):
    result = cli("run", "chat")
    assert result.exit_code == 1
    assert "What does a prefix cache do?" in result.stderr


def test_app_from_a_folder(cli, tmp_path):
    folder = tmp_path / "my_app"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "from spendgraph.agents import Agent\n"
        "from spendgraph.graph import pipeline\n"
        "from spendgraph.graph.app import App\n"
        "APP = App('mine', 'test app', build=lambda: pipeline([Agent('echo', 'Echo.')]))\n"
    )
    ledger = tmp_path / "f.db"
    result = cli("run", str(folder), "hi", "--sim", "--json", "--ledger", str(ledger))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload["agents"]) == ["echo"]
    with Ledger.open(str(ledger)) as opened:
        assert opened.query_summary(payload["query_id"]).query.app == "mine"
