"""``spendgraph chat --engine temporal``: each turn is a workflow on the workers, its tokens
streamed from Redis. Real parts: the Temporal dev server, a worker in this process, the
simulator, PostgreSQL, Redis, and the chat as a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from temporalio.client import Client

from spendgraph.cli.apps import load_app
from spendgraph.cli.chat import Conversation, durable_events
from spendgraph.cli.serve_temporal import TemporalServe
from spendgraph.durable.stream import DeltaPublisher
from spendgraph.graph import RunFinished, RunStarted, TokenDelta, open_checkpointer
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.spend import Spend

RESEARCH = load_app("research_chat")


@contextlib.asynccontextmanager
async def worker_on(worker_for, config, pg_url, redis_url, apps):
    """A worker of ``apps`` on the simulator's fleet that publishes its tokens to Redis."""
    layer = ProviderLayer(config, Ledger.open(pg_url), env={})
    publisher = DeltaPublisher(redis_url)
    try:
        async with (
            open_checkpointer(pg_url) as checkpointer,
            worker_for(layer, apps, checkpointer, publisher) as queue,
        ):
            yield queue
    finally:
        await publisher.aclose()
        await layer.aclose()


async def test_a_durable_turn_streams_the_answer_agents_tokens_as_the_chat_shows_them(
    worker_for, temporal_server, pg_url, sim, config, redis_url
):
    async with worker_on(worker_for, config, pg_url, redis_url, [RESEARCH]) as queue:
        durable = TemporalServe(temporal_server, task_queue=queue, redis=redis_url)
        talk = Conversation(RESEARCH, "t-chat", None, None, None)
        events = await durable_events(durable, RESEARCH, talk)
        seen = [e async for e in events(RESEARCH.samples[1], RESEARCH.run_options())]

    assert isinstance(seen[0], RunStarted) and seen[0].thread_id == "t-chat"
    assert isinstance(seen[-1], RunFinished)
    result = seen[-1].result
    deltas = [e for e in seen if isinstance(e, TokenDelta)]
    assert {d.path for d in deltas} >= {"planner", "synthesizer"}
    answer = [d.text for d in deltas if d.path == "synthesizer"]
    assert len(answer) > 1 and "".join(answer) == result.answer
    with Ledger.open(pg_url) as ledger:
        summary = ledger.query_summary(result.query_id)
    assert summary.spend == result.spend and summary.query.status.value == "ok"


async def test_a_turn_whose_redis_is_down_still_answers_whole(
    worker_for, temporal_server, pg_url, sim, config, redis_url
):
    chat = load_app("chat")
    async with worker_on(worker_for, config, pg_url, redis_url, [chat]) as queue:
        durable = TemporalServe(temporal_server, task_queue=queue, redis="redis://127.0.0.1:1/0")
        events = await durable_events(durable, chat, Conversation(chat, "t-down", None, None, None))
        seen = [e async for e in events("hello", chat.run_options())]
    assert [type(e) for e in seen] == [RunStarted, RunFinished]
    assert seen[-1].result.answer and seen[-1].result.status.value == "ok"


async def test_a_piped_durable_chat_answers_each_line_and_reports_the_ledgers_spend(
    worker_for, temporal_server, pg_url, sim, config, redis_url
):
    chat = load_app("chat")
    async with worker_on(worker_for, config, pg_url, redis_url, [chat]) as queue:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "spendgraph.cli.main", "chat", "--engine", "temporal"),
            *("--address", temporal_server, "--task-queue", queue),
            *("--redis", redis_url, "--ledger", pg_url),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"NO_COLOR": "1", "COLUMNS": "120", "PATH": ""},
        )
        out, err = await asyncio.wait_for(
            proc.communicate(b"first question\nsecond question\n/spend\n"), 120
        )
        client = await Client.connect(temporal_server)
        lines = out.decode().splitlines()
        turns = [
            dict(f.split("=", 1) for f in line.split()[1:])
            for line in lines
            if line.startswith("[spend] ")
        ]
        answers = [(await client.get_workflow_handle(t["query"]).result())["answer"] for t in turns]

    assert proc.returncode == 0, err.decode()
    assert len(turns) == 2 and all(t["status"] == "ok" for t in turns)
    for answer in answers:  # each turn's answer, printed as the workflow returned it
        assert answer.strip() and answer.rstrip() in lines
    with Ledger.open(pg_url) as ledger:
        first, second = (ledger.query_summary(t["query"]) for t in turns)
        rows = [ledger.calls_for_query(t["query"]) for t in turns]
    assert first.query.thread_id == second.query.thread_id  # one conversation, on the workers
    assert second.spend.input_tokens > first.spend.input_tokens  # the history came along
    for turn, summary, records in zip(turns, (first, second), rows, strict=True):
        summed = Spend()
        for record in records:
            summed = summed + Spend.of_call(record)
        assert summary.spend == summed and turn["calls"] == str(summed.calls)
    assert "session: 2 queries, 2 calls" in out.decode()
