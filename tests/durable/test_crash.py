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
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from spendgraph.durable.activities import KILL_AFTER_ANSWER_ENV
from spendgraph.durable.codec import request_digest, request_from_json
from spendgraph.durable.lost import WORKER_LOST, delivery_request_id
from spendgraph.durable.names import DRIVE_GRAPH, MODEL_CALL
from spendgraph.durable.workflow import MAX_DELIVERIES
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


def start_worker(processes, log: Path, *args: str, env=None) -> subprocess.Popen:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "worker", "--engine", "temporal", "research_chat", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
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
    while it is also making a model call (so both kinds of activity are cut); the calls
    that had finished; and how many model calls that worker was making."""
    handle = client.get_workflow_handle(query_id)
    async with asyncio.timeout(120):
        return await _driver_in_a_call(handle, query_id, ledger)


# A call started this recently is still far from its end when the kill lands (one about
# to finish could send its outcome first: then nothing is cut). Preferred for 20 s.
YOUNG_S = 0.15


async def _driver_in_a_call(handle, query_id: str, ledger: Ledger):
    picky_until = time.monotonic() + 20
    while True:
        finished = [r for r in ledger.calls_for_query(query_id) if r.status is CallStatus.OK]
        if len(finished) >= 2:
            described = await handle.describe()
            drivers, calls = set(), {}
            for pending in described.raw_description.pending_activities:
                if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                    continue
                worker = pending.last_worker_identity
                if pending.activity_type.name == DRIVE_GRAPH:
                    drivers.add(worker)
                elif pending.activity_type.name == MODEL_CALL:
                    request_id = delivery_request_id(query_id, pending.activity_id, pending.attempt)
                    started = pending.last_started_time.ToDatetime(UTC)
                    young = (datetime.now(UTC) - started).total_seconds() < YOUNG_S
                    calls.setdefault(worker, []).append((request_id, young))
            # Read after the describe: a call with no row yet is still being made.
            recorded = {r.request_id for r in ledger.calls_for_query(query_id)}
            picky = time.monotonic() < picky_until
            for worker in drivers:
                making = calls.get(worker, [])
                cut = [r for r, young in making if r not in recorded and (young or not picky)]
                if cut:
                    return int(worker.split("@")[0]), finished, len(making)
        await asyncio.sleep(0.05)


async def finished_run(run, client: Client, query_id: str, logs: list[Path]):
    """The run's output once it ends; if it never does, what the query was waiting for."""
    try:
        return await asyncio.to_thread(run.communicate, timeout=240)
    except subprocess.TimeoutExpired:
        described = await client.get_workflow_handle(query_id).describe()
        pending = [
            (p.activity_type.name, p.attempt, p.state, p.last_failure.message)
            for p in described.raw_description.pending_activities
        ]
        tails = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
        pytest.fail(f"query {query_id} did not finish; pending: {pending}\n{tails}")


async def deliveries_of(client: Client, query_id: str) -> tuple[dict[str, list[str]], list[str]]:
    """The request ids each model-call activity's deliveries recorded under (up to its last;
    all it may have had when the workflow ended before it reported: answered from the
    outcome it sent), and the digest of every request a model-call activity was scheduled for."""
    activity_ids: dict[int, str] = {}
    last: dict[str, int] = {}
    asked: list[str] = []
    async for event in client.get_workflow_handle(query_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == MODEL_CALL:
                activity_ids[event.event_id] = scheduled.activity_id
                last[scheduled.activity_id] = MAX_DELIVERIES
                call = json.loads(scheduled.input.payloads[0].data)
                asked.append(request_digest(request_from_json(call["request"])))
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            activity_id = activity_ids.get(started.scheduled_event_id)
            if activity_id is not None:
                last[activity_id] = started.attempt
    ids = {
        activity_id: [delivery_request_id(query_id, activity_id, n) for n in range(1, count + 1)]
        for activity_id, count in last.items()
    }
    return ids, asked


async def test_kill_9_of_a_worker_mid_call_never_pays_twice(
    temporal_server, pg_url, slow_sim, fleet_toml, tmp_path, processes
):
    config = tmp_path / "spendgraph.toml"
    config.write_text(fleet_toml(slow_sim.base_url))
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    common = ["--address", temporal_server, "--task-queue", queue, "--ledger", pg_url]
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    # Both at once on the fresh schema: they race to migrate it and set up the checkpoints.
    workers = [start_worker(processes, log, *common, "--config", str(config)) for log in logs]
    for log, worker in zip(logs, workers, strict=True):
        wait_ready(log, worker)
    run = start_run(processes, *common)

    client = await Client.connect(temporal_server)
    ledger = Ledger.open(pg_url)
    try:
        query_id = await running_query(client, queue)
        victim, finished_before, in_flight = await worker_in_a_call(client, query_id, ledger)
        assert victim in {w.pid for w in workers}
        os.kill(victim, signal.SIGKILL)

        out, err = await finished_run(run, client, query_id, logs)
        assert run.returncode == 0, err.decode()
        report = json.loads(out)
        rows = ledger.calls_for_query(query_id)
        summary = ledger.query_summary(query_id)
        deliveries, asked = await deliveries_of(client, query_id)
        outcome = await client.get_workflow_handle(query_id).result()
        with ledger.engine.connect() as conn:
            owner = conn.execute(text("SELECT owner FROM query WHERE id = :id"), {"id": query_id})
            owner = owner.scalar_one()
    finally:
        ledger.close()

    assert report["query_id"] == query_id and report["status"] == "ok" and report["answer"]
    # The survivor took the query's lease over when it drove the graph on (host:pid:random).
    (survivor,) = {w.pid for w in workers} - {victim}
    assert owner.split(":")[1] == str(survivor)
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    # Every call that had finished is there, once; each logical call answered once, and
    # the re-run graph asked for none of them again (no request was scheduled twice).
    assert len(asked) == len(set(asked)) == len(deliveries)
    assert {r.id for r in finished_before} <= set(ids)
    ok = [r for r in rows if r.status is CallStatus.OK]
    # One ok row per call, whichever delivery paid: a delivery killed after its call
    # finished and sent its outcome has its ok row, and the retry answers from that
    # outcome with no row of its own. Only a call cut in the moment between its end and
    # its outcome being safe with the workflow can be paid twice (and is recorded so).
    paid = [len([r for r in ok if r.request_id in ids]) for ids in deliveries.values()]
    assert all(count >= 1 for count in paid)
    assert sum(count - 1 for count in paid) <= in_flight
    # The interrupted call(s): an attempt that did not complete, then a retry that did.
    lost = [r for r in rows if r.error_kind == WORKER_LOST]
    shown = [(r.agent_path, r.request_id[:6], r.status.value, r.error_kind) for r in rows]
    assert lost, (victim, shown, {a: [i[:6] for i in ids] for a, ids in deliveries.items()})
    assert all(r.status is CallStatus.CANCELLED and r.cost_usd > 0 for r in lost)
    for request_id in {r.request_id for r in rows}:
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


async def test_a_worker_killed_after_a_call_answered_never_pays_it_again(
    temporal_server, pg_url, sim, fleet_toml, tmp_path, processes
):
    """The worker dies (the test hook's SIGKILL) after its first call finished and sent its
    outcome, before the activity reported back: the call is answered from that outcome
    on the worker that takes over, and is in the ledger once, not paid a second time."""
    config = tmp_path / "spendgraph.toml"
    config.write_text(fleet_toml(sim.base_url))
    queue = f"answered-{uuid.uuid4().hex[:8]}"
    common = ["--address", temporal_server, "--task-queue", queue, "--ledger", pg_url]
    common += ["--config", str(config)]
    doomed_log, heir_log = tmp_path / "doomed.log", tmp_path / "heir.log"
    env = {**os.environ, KILL_AFTER_ANSWER_ENV: "1"}
    doomed = start_worker(processes, doomed_log, *common, env=env)
    wait_ready(doomed_log, doomed)
    run = start_run(processes, *common)
    assert await asyncio.to_thread(doomed.wait, 120) == -signal.SIGKILL
    heir = start_worker(processes, heir_log, *common)  # only now: the doomed one ran the call

    out, err = await asyncio.to_thread(run.communicate, timeout=240)
    assert run.returncode == 0, err.decode() + heir_log.read_text()
    report = json.loads(out)
    client = await Client.connect(temporal_server)
    _, asked = await deliveries_of(client, report["query_id"])
    with Ledger.open(pg_url) as ledger:
        rows = ledger.calls_for_query(report["query_id"])
        summary = ledger.query_summary(report["query_id"])
    assert heir.poll() is None

    assert report["status"] == "ok" and report["answer"]
    # One ok row per logical call and nothing else: no lost attempt, no second payment.
    assert len(asked) == len(set(asked))
    assert all(r.status is CallStatus.OK for r in rows) and len(rows) == len(asked)
    assert not [r for r in rows if r.error_kind == WORKER_LOST]
    planner = [r for r in rows if r.agent_path == "planner"]
    assert len(planner) == 1  # the call the doomed worker made, answered from its outcome
    summed = Spend()
    for record in rows:
        summed = summed + Spend.of_call(record)
    assert summary.spend == summed and report["calls"] == len(rows)
    assert Decimal(report["cost_known_usd"]) == summed.known_cost
