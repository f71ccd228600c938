"""``spendgraph run APP --engine temporal``: the query runs as a workflow on the workers.

This process only starts the workflow and waits for it; the workers make the
calls. The answer and the spend are then read like an in-process run's, from
the ledger the workers share (``--ledger``, or the config's ``[ledger]``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from spendgraph.graph import RunResult
from spendgraph.graph.app import App
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallRecord


def run_on_temporal(
    app: App,
    text: str,
    *,
    thread: str | None,
    overrides: dict,
    address: str,
    task_queue: str,
    namespace: str,
    config: Path | None,
    ledger: str | None,
) -> tuple[RunResult, list[CallRecord]]:
    """Run one query of ``app`` on the workers of ``task_queue``; its result and rows."""
    from spendgraph.cli.options import ledger_for_command
    from spendgraph.durable.client import query_spec, run_query
    from spendgraph.durable.worker import TemporalTarget, connect

    temporal = TemporalTarget(address=address, namespace=namespace, task_queue=task_queue)
    spec = query_spec(app.name, text, app.run_options(**overrides), thread_id=thread)
    choice = ledger_for_command(ledger, config)

    async def run() -> RunResult:
        client = await connect(temporal)
        return await run_query(client, spec, temporal.task_queue)

    result = asyncio.run(run())
    with Ledger.open(choice.url) as opened:
        records = opened.calls_for_query(result.query_id)
    return result, records
