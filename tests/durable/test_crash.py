"""The crash test: two worker processes, a research_chat query, ``kill -9`` of the worker
driving its graph while it makes one of its model calls. The query completes on the
other worker (the graph re-run from its checkpoint, the finished calls answered by
the workflow); every call that had finished is in the ledger once (never run again),
the interrupted one is an attempt that did not complete plus its retry, and the
totals are the rows' sum.

Everything is real and separate: the Temporal dev server, the simulator, PostgreSQL,
``spendgraph worker`` x2 and ``spendgraph run --engine temporal`` as processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from spendgraph.durable.codec import request_digest, request_from_json
from spendgraph.durable.lost import WORKER_LOST, delivery_request_id
from spendgraph.durable.names import DRIVE_GRAPH, MODEL_CALL
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.spend import Spend

QUESTION = "What does a prefix cache save in a multi-turn chat, and how would I measure it?"
CLI = [sys.executable, "-m", "spendgraph.cli.main"]


@pytest.fixture(scope="module")
def slow_sim():
    """The simulator at a quarter of real time: model calls last long enough to cut one."""
    from spendgraph.providers.local.sim.server import run_simulator

    with run_simulator(time_scale=0.25, seed=0) as running:
        yield running


def start_worker(processes, log: Path, *args: str) -> subprocess.Popen:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "worker", "--engine", "temporal", "research_chat", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    processes.append(proc)
    return proc


def start_run(processes, *args: str) -> subprocess.Popen:
    """``spendgraph run research_chat --engine temporal --json``, as a process of its own."""
    proc = subprocess.Popen(
        [*CLI, "run", "research_chat", QUESTION, "--engine", "temporal", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    processes.append(proc)
    return proc


def wait_ready(log: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "serving research_chat" in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"worker not ready in {timeout:g} s: {log.read_text()}")


async def running_query(client: Client, queue: str) -> str:
    async with asyncio.timeout(60):
        while True:
            query = f'TaskQueue="{queue}" AND ExecutionStatus="Running"'
            async for found in client.list_workflows(query):
                return found.id
            await asyncio.sleep(0.2)


async def worker_in_a_call(client: Client, query_id: str, ledger: Ledger):
    """Once at least two calls have finished: the pid of the worker driving the graph,
    while it is also making a model call (so both kinds of activity are cut)."""
    handle = client.get_workflow_handle(query_id)
    async with asyncio.timeout(120):
        return await _driver_in_a_call(handle, query_id, ledger)


async def _driver_in_a_call(handle, query_id: str, ledger: Ledger):
    while True:
        finished = [r for r in ledger.calls_for_query(query_id) if r.status is CallStatus.OK]
        if len(finished) >= 2:
            described = await handle.describe()
            running: dict[str, set[str]] = {}
            for pending in described.raw_description.pending_activities:
                if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                    kinds = running.setdefault(pending.last_worker_identity, set())
                    kinds.add(pending.activity_type.name)
            for identity, kinds in running.items():
                if {DRIVE_GRAPH, MODEL_CALL} <= kinds:
                    return int(identity.split("@")[0]), finished
        await asyncio.sleep(0.1)


async def final_deliveries(client: Client, query_id: str) -> tuple[set[str], list[str]]:
    """The request ids of each model-call activity's last delivery (the one that answered),
    and the digest of every request a model-call activity was scheduled for."""
    activity_ids: dict[int, str] = {}
    final: set[str] = set()
    asked: list[str] = []
    async for event in client.get_workflow_handle(query_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == MODEL_CALL:
                activity_ids[event.event_id] = scheduled.activity_id
                call = json.loads(scheduled.input.payloads[0].data)
                asked.append(request_digest(request_from_json(call["request"])))
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            activity_id = activity_ids.get(started.scheduled_event_id)
            if activity_id is not None:
                final.add(delivery_request_id(query_id, activity_id, started.attempt))
    return final, asked


async def test_kill_9_of_a_worker_mid_call_never_pays_twice(
    temporal_server, pg_url, slow_sim, fleet_toml, tmp_path, processes
):
    config = tmp_path / "spendgraph.toml"
    config.write_text(fleet_toml(slow_sim.base_url))
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    common = ["--address", temporal_server, "--task-queue", queue, "--ledger", pg_url]
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = []
    for log in logs:  # one after the other: the first one migrates the fresh schema
        workers.append(start_worker(processes, log, *common, "--config", str(config)))
        wait_ready(log, workers[-1])
    run = start_run(processes, *common)

    client = await Client.connect(temporal_server)
    ledger = Ledger.open(pg_url)
    try:
        query_id = await running_query(client, queue)
        victim, finished_before = await worker_in_a_call(client, query_id, ledger)
        assert victim in {w.pid for w in workers}
        os.kill(victim, signal.SIGKILL)

        out, err = await asyncio.to_thread(run.communicate, timeout=240)
        assert run.returncode == 0, err.decode()
        report = json.loads(out)
        rows = ledger.calls_for_query(query_id)
        summary = ledger.query_summary(query_id)
        final, asked = await final_deliveries(client, query_id)
        outcome = await client.get_workflow_handle(query_id).result()
    finally:
        ledger.close()

    assert report["query_id"] == query_id and report["status"] == "ok" and report["answer"]
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    # Every call that had finished is there, once; each logical call answered once, and
    # the re-run graph asked for none of them again (no request was scheduled twice).
    assert len(asked) == len(set(asked)) == len(final)
    assert {r.id for r in finished_before} <= set(ids)
    ok = [r for r in rows if r.status is CallStatus.OK]
    answered = [r.request_id for r in ok if r.request_id in final]
    assert sorted(answered) == sorted(final)  # one ok row per call, from its last delivery
    # The interrupted call(s): an attempt that did not complete, then a retry that did.
    # (A delivery whose call had finished but not yet reported when its worker died
    # has its ok row instead: paid, and recorded, like the retry.)
    earlier = {r.request_id for r in rows} - final
    lost = [r for r in rows if r.error_kind == WORKER_LOST]
    assert lost and all(r.status is CallStatus.CANCELLED and r.cost_usd > 0 for r in lost)
    for request_id in earlier:
        group = [r for r in rows if r.request_id == request_id]
        assert sum(r.error_kind == WORKER_LOST or r.status is CallStatus.OK for r in group) == 1
    for record in lost:
        retries = [r for r in ok if (r.agent_path, r.node) == (record.agent_path, record.node)]
        assert any(r.started_at > record.started_at for r in retries)
    # Totals: the workflow's record, the report, the ledger's summary and the rows agree.
    assert sorted(c["id"] for c in outcome["calls"]) == sorted(ids)
    summed = Spend()
    for record in rows:
        summed = summed + Spend.of_call(record)
    assert summary.spend == summed
    assert Decimal(report["cost_known_usd"]) == summed.known_cost
    assert report["calls"] == summed.calls == len(rows)
    assert summary.query.status == "ok"
