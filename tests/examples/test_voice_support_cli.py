"""voice_support through the CLI: `spendgraph run voice_support --sim`, `spendgraph chat --app`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from spendgraph.cli.main import app
from spendgraph.examples.voice_support import APP
from spendgraph.providers.ledger import Ledger

ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb", "SPENDGRAPH_CONFIG": None}


def spendgraph(*args: str, ledger, stdin: str | None = None):
    env = {**ENV, "SPENDGRAPH_LEDGER": str(ledger)}
    return CliRunner().invoke(app, list(args), input=stdin, env=env, catch_exceptions=False)


def test_run_answers_with_a_draft_and_a_check(tmp_path):
    ledger = tmp_path / "voice.db"
    result = spendgraph("run", "voice_support", "--sim", "--json", APP.samples[0], ledger=ledger)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and payload["stop_reason"] in {"done", "escalated"}
    assert payload["answer"] and payload["calls"] >= 3
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(payload["query_id"])
    assert rows[0].agent_path == "responder" and rows[0].endpoint.model == "sim-small"
    assert {row.agent_path for row in rows[1:]} == {"verifier"}


def test_chat_keeps_one_call_per_thread(tmp_path):
    ledger = tmp_path / "chat.db"
    stdin = f"{APP.samples[0]}\n{APP.samples[1]}\n"
    args = ("chat", "--app", "voice_support", "--sim", "--sim-time-scale", "0", "--thread", "c1")
    result = spendgraph(*args, ledger=ledger, stdin=stdin)
    assert result.exit_code == 0, result.output
    with Ledger.open(str(ledger)) as opened:
        queries = opened.list_queries(limit=None)
    assert len(queries) == 2
    assert {(q.query.app, q.query.thread_id) for q in queries} == {("voice_support", "c1")}
