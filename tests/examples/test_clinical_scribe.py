"""clinical_scribe end to end on the simulator: the pipeline, its ledger rows, privacy, budgets."""

from __future__ import annotations

import logging
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import make_url

from spendgraph.cli.apps import load_app
from spendgraph.examples.clinical_scribe import APP
from spendgraph.examples.clinical_scribe.codes import CodeTable
from spendgraph.examples.clinical_scribe.samples import transcripts
from spendgraph.graph import open_checkpointer, run_graph, with_checkpointer
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

SORE_THROAT = transcripts()["sore_throat"]
STAGES = ["scribe", "coder", "evidence_check", "reviewer"]
POOLS = ["blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"]


def _file_bytes(path: Path) -> bytes:
    """A SQLite database file plus its -wal/-shm side files, if any."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def _with_marker(marker: str) -> str:
    """The sore-throat visit with ``marker`` in the patient's name and complaint."""
    return SORE_THROAT.replace("Ms. Sample", f"Ms. Sample {marker}") + (
        f"\nPatient: The pain started after the {marker} party on Saturday."
    )


async def test_a_visit_becomes_a_note_codes_and_a_review(layer, ledger):
    result = await run_graph(APP.build(), layer, SORE_THROAT, options=APP.run_options())
    assert result.status is QueryStatus.OK and result.stop_reason == "done"
    assert [o.agent for o in result.outputs] == STAGES
    for heading in ("## SOAP note", "## Suggested codes", "## Review"):
        assert heading in result.answer
    table = CodeTable.load()
    suggested = result.outputs[1].parsed["suggestions"]
    assert suggested and all(table.get(s["code"]) for s in suggested)
    checked = result.outputs[2].parsed["codes"]
    assert [c["code"] for c in checked] == [s["code"] for s in suggested]
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert [r.agent_path for r in rows] == ["scribe", "coder", "reviewer"]
    assert all(r.status is CallStatus.OK for r in rows)
    assert all(r.prompt_text is None and r.completion_text is None for r in rows)
    summary = ledger.query_summary(result.query_id)
    assert summary.query.app == "clinical_scribe" and summary.query.store_text is False
    assert summary.query.input_preview is None
    assert summary.spend.cost == result.spend.cost
    assert result.spend.cost <= APP.defaults.budget_usd


async def test_patient_text_never_reaches_the_ledger_or_the_logs(layer, ledger, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    # Proves the capture works whatever the HTTP client logs (aiohttp logs no requests).
    logging.getLogger(__name__).debug("capture check")
    marker = f"PATIENT-{uuid.uuid4().hex}"
    control = f"CONTROL-{uuid.uuid4().hex}"
    private = await run_graph(APP.build(), layer, _with_marker(marker), options=APP.run_options())
    assert private.status is QueryStatus.OK and private.spend.calls == 3
    # The control run opts in to storing text: it proves the byte search finds stored text.
    await run_graph(
        APP.build(), layer, _with_marker(control), options=APP.run_options(store_text=True)
    )
    await layer.aclose(close_ledger=False)
    ledger.close()  # writes everything and checkpoints the WAL into the file
    stored = _file_bytes(Path(make_url(ledger.url).database))
    assert control.encode() in stored
    assert marker.encode() not in stored
    logged = caplog.text + "".join(
        f"{record.getMessage()} {record.args!r}" for record in caplog.records
    )
    printed = capsys.readouterr()
    assert any(r.getMessage() == "capture check" for r in caplog.records)  # DEBUG was on
    assert marker not in logged
    assert marker not in printed.out + printed.err


async def test_a_checkpointer_would_keep_the_transcript(layer, tmp_path):
    """Why the clinical app must run without a checkpointer: a thread stores its input."""
    marker = f"PATIENT-{uuid.uuid4().hex}"
    threads = tmp_path / "threads.db"
    async with open_checkpointer(path=threads) as saver:
        graph = with_checkpointer(APP.build(), saver)
        await run_graph(graph, layer, _with_marker(marker), options=APP.run_options())
    assert marker.encode() in _file_bytes(threads)


async def test_a_budget_refusal_ends_with_the_note_so_far(layer, ledger):
    # Token budget (price-independent): the scribe's call fits, the coder's does not.
    options = APP.run_options(budget_usd=None, budget_tokens=2500)
    result = await run_graph(APP.build(), layer, SORE_THROAT, options=options)
    assert result.status is QueryStatus.BUDGET_EXHAUSTED and result.stop_reason == "budget"
    assert [o.agent for o in result.outputs] == ["scribe"]
    assert "## SOAP note" in result.answer and "Stopped early" in result.answer
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert [(r.agent_path, r.status) for r in rows] == [
        ("scribe", CallStatus.OK),
        ("coder", CallStatus.BUDGET_DENIED),
    ]


async def test_every_sample_runs_within_the_default_budget(layer):
    graph = APP.build()
    for sample in APP.samples:
        result = await run_graph(graph, layer, sample, options=APP.run_options())
        assert result.status is QueryStatus.OK, result.stop_reason
        assert result.spend.cost <= APP.defaults.budget_usd


def test_the_app_keeps_text_out_and_names_its_tiers(config):
    assert APP.name == "clinical_scribe"
    assert APP.defaults.store_text is False
    assert APP.run_options().store_text is False
    assert APP.defaults.budget_usd is not None and Decimal(APP.defaults.budget_usd) > 0
    assert len(APP.samples) == 5 and all("Clinician:" in s for s in APP.samples)
    assert not any(line.startswith("#") for s in APP.samples for line in s.splitlines())
    assert set(APP.tiers) <= config.served_names()


async def test_a_copied_folder_runs_as_a_users_app(tmp_path, layer):
    source = Path(APP.build.__code__.co_filename).parent
    copy = tmp_path / "my_scribe"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    app = load_app(str(copy))
    assert app.name == "clinical_scribe" and app.samples == APP.samples
    result = await run_graph(app.build(), layer, app.samples[0], options=app.run_options())
    assert result.status is QueryStatus.OK
