"""A query's row is queued, not awaited, when the query opens (its first call goes out
while the row commits); the close still acknowledges it: once a query's block has exited,
its row and its calls are committed, and a row that could not be written fails the close."""

from __future__ import annotations

import sqlite3

import pytest

from spendgraph.providers import ChatRequest
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import QueryStatus

REQUEST = ChatRequest(messages=[{"role": "user", "content": "Hello."}], max_tokens=8)


async def test_a_closed_query_and_its_calls_are_committed_when_the_block_exits(layer, tmp_path):
    async with layer.query(app="voice") as scope:
        await layer.chat(REQUEST)
    # Another connection (as another process would) sees what the close acknowledged.
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as reader:
        summary = reader.query_summary(scope.id)
        assert (summary.query.app, summary.query.status) == ("voice", QueryStatus.OK)
        assert len(reader.calls_for_query(scope.id)) == 1


async def test_a_query_whose_row_cannot_be_written_fails_its_close(layer, tmp_path):
    # The table is gone, as on a broken database: the open and the close both fail.
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DROP TABLE query")
    with pytest.raises(LedgerError, match=r"query \w+ could not be recorded: .*query"):
        async with layer.query():
            pass
