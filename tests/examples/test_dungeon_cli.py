"""dungeon through the CLI: `spendgraph run dungeon --sim --thread ...`, `spendgraph chat --app`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from spendgraph.cli.main import app
from spendgraph.providers.ledger import Ledger

ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb", "SPENDGRAPH_CONFIG": None}


def spendgraph(*args: str, ledger, stdin: str | None = None):
    env = {**ENV, "SPENDGRAPH_LEDGER": str(ledger)}
    return CliRunner().invoke(app, list(args), input=stdin, env=env, catch_exceptions=False)


def test_two_runs_in_one_thread_continue_the_same_game(tmp_path):
    ledger = tmp_path / "game.db"
    first = spendgraph(
        "run", "dungeon", "--sim", "--thread", "g1", "--json", "go north", ledger=ledger
    )
    assert first.exit_code == 0, first.output
    moved = json.loads(first.stdout)
    assert moved["status"] == "ok" and moved["thread_id"] == "g1"
    assert "At the Pig & Lantern inn · turn 1 · this action $" in moved["answer"]

    # A new process would start here: only the ledger and the thread file next to it remain.
    second = spendgraph(
        "run", "dungeon", "--sim", "--thread", "g1", "--json", "go down", ledger=ledger
    )
    assert second.exit_code == 0, second.output
    down = json.loads(second.stdout)
    # "down" exists only from the inn: the second run started where the first ended.
    assert "At the inn's cellar · turn 2 · " in down["answer"]
    assert "over 2 action(s)" in down["answer"]
    assert (tmp_path / "game.threads.db").exists()
    with Ledger.open(str(ledger)) as opened:
        queries = [opened.query_summary(p["query_id"]).query for p in (moved, down)]
    assert [(q.app, q.thread_id) for q in queries] == [("dungeon", "g1"), ("dungeon", "g1")]


def test_run_prints_the_narration_and_the_spend_panel(tmp_path):
    result = spendgraph("run", "dungeon", "--sim", "look around", ledger=tmp_path / "l.db")
    assert result.exit_code == 0, result.output
    assert "At the Crossroads · turn 1" in result.stdout
    assert "narrator" in result.stdout and "b200-nvfp4" in result.stdout


def test_chat_resumes_a_game_by_thread(tmp_path):
    ledger = tmp_path / "chat.db"
    args = ("chat", "--app", "dungeon", "--sim", "--sim-time-scale", "0", "--thread", "mygame")
    first = spendgraph(*args, ledger=ledger, stdin="go north\ntake the bread\n")
    assert first.exit_code == 0, first.output
    assert "At the Pig & Lantern inn · turn 2" in first.stdout
    again = spendgraph(*args, ledger=ledger, stdin="go down\n")
    assert again.exit_code == 0, again.output
    assert "At the inn's cellar · turn 3" in again.stdout
