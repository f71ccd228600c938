"""`spendgraph run clinical_scribe --sim`: the CLI path, and what it leaves on disk."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendgraph.cli.main import app
from spendgraph.examples.clinical_scribe.samples import transcripts


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """``run_cli(text)``: ``spendgraph run clinical_scribe --sim --json`` into a tmp ledger."""
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "ledger.db"
    env = {
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "SPENDGRAPH_LEDGER": str(ledger),
        "SPENDGRAPH_CONFIG": None,
        "SPENDGRAPH_SIM_URL": None,
    }

    def run(text: str):
        args = ["run", "clinical_scribe", "--sim", "--json", text]
        result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout), ledger

    return run


def test_the_cli_runs_a_visit_and_keeps_patient_text_out_of_the_ledger(run_cli):
    marker = f"PATIENT-{uuid.uuid4().hex}"
    visit = transcripts()["sore_throat"].replace("Ms. Sample", f"Ms. Sample {marker}")
    payload, ledger = run_cli(visit)
    assert payload["status"] == "ok" and "## SOAP note" in payload["answer"]
    assert payload["calls"] == 3 and list(payload["agents"]) == ["scribe", "coder", "reviewer"]
    assert marker.encode() not in _file_bytes(ledger)


def test_the_chat_takes_one_visit_per_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"NO_COLOR": "1", "COLUMNS": "120", "SPENDGRAPH_LEDGER": str(tmp_path / "c.db")}
    dictation = (
        "Established patient with sore throat for three days and fever of 101. "
        "Rapid strep test in the office is positive. Start amoxicillin for ten days.\n"
    )
    args = ["chat", "--app", "clinical_scribe", "--sim", "--sim-time-scale", "0"]
    result = CliRunner().invoke(app, args, input=dictation, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "## SOAP note" in result.stdout and "## Suggested codes" in result.stdout
    assert "status=ok calls=3 " in result.stdout


def test_the_cli_keeps_patient_text_out_of_the_thread_checkpoints(run_cli):
    marker = f"PATIENT-{uuid.uuid4().hex}"
    visit = transcripts()["sore_throat"].replace("Ms. Sample", f"Ms. Sample {marker}")
    _, ledger = run_cli(visit)
    threads = ledger.with_name("ledger.threads.db")
    assert marker.encode() not in (_file_bytes(threads) if threads.exists() else b"")
