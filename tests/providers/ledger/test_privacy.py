"""Prompt and completion text reach the ledger only when the query opted in."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url

from spendgraph.providers.ledger import Ledger

PATIENT = "PATIENT-7f3a Jane Doe DOB 1970-01-01"
CONTROL = "CONTROL-91c2 opted-in prompt text"


def _file_bytes(url: str) -> bytes:
    """The database file and any WAL / shared-memory side files, concatenated."""
    path = Path(make_url(url).database or "")
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_text_is_stored_only_for_opted_in_queries(sqlite_url, kit):
    private = kit.query(store_text=False, input_preview=PATIENT)
    opted_in = kit.query(store_text=True, input_preview="fine to keep")
    async with Ledger.open(sqlite_url) as ledger:
        await ledger.open_query(private)
        await ledger.open_query(opted_in)
        # The provider layer leaves text out of records for queries that did not opt in.
        await ledger.record_call(kit.call(query_id=private.id))
        await ledger.record_call(
            kit.call(query_id=opted_in.id, prompt_text=CONTROL, completion_text="ok")
        )
        [private_call] = ledger.calls_for_query(private.id)
        assert (private_call.prompt_text, private_call.completion_text) == (None, None)

    # After close the WAL is checkpointed into the main file; checkpoint again to be sure.
    kit.execute_raw(sqlite_url, "PRAGMA wal_checkpoint(TRUNCATE)")
    raw = _file_bytes(sqlite_url)
    assert CONTROL.encode() in raw  # the search itself works
    assert PATIENT.encode() not in raw
    assert b"PATIENT-7f3a" not in raw
