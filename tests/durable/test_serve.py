"""``serve app --engine temporal``: the front door starts each request's query as a workflow
on the workers, and streams the tokens they publish over Redis. Real parts: the Temporal
dev server, a worker (in this process), the simulator, PostgreSQL, Redis, and the real
``openai`` client against the served app. What a client sees is the in-process front
door's: the usage and extension field equal to the ledger, 402 and 502, threads per tenant.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import openai
import pytest
from front_door import front_door_thread, read_stream, serve_process
from temporalio.client import Client

from spendgraph.cli.apps import load_app
from spendgraph.cli.serve_app import ServeSpec
from spendgraph.cli.serve_temporal import TemporalServe
from spendgraph.durable.stream import DeltaPublisher
from spendgraph.graph import open_checkpointer
from spendgraph.providers.budgets import BudgetLimit, set_limit
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.keys import create_key
from spendgraph.providers.spend import Spend
from spendgraph.serve import EXTENSION, QUERY_HEADER

QUESTION = [{"role": "user", "content": "What does a prefix cache do?"}]


def api(base: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def ledger_spend(url: str, query_id: str):
    with Ledger.open(url) as ledger:
        summary = ledger.query_summary(query_id)
    summed = Spend()
    for record in ledger_rows(url, query_id):
        summed = summed + Spend.of_call(record)
    assert summary.spend == summed
    return summary


def ledger_rows(url: str, query_id: str):
    with Ledger.open(url) as ledger:
        return ledger.calls_for_query(query_id)


@contextlib.asynccontextmanager
async def durable_door(worker_for, temporal_server, toml: str, pg_url, tmp_path, redis):
    """A worker on ``toml``'s endpoints (research_chat, dungeon and chat on one task
    queue) and a keyed front door whose queries run on it."""
    config_path = tmp_path / f"fleet-{abs(hash(toml))}.toml"
    config_path.write_text(toml)
    config = parse_config(toml, source=str(config_path), env={})
    ledger = Ledger.open(pg_url)
    layer = ProviderLayer(config, ledger, env={})
    publisher = DeltaPublisher(redis) if redis else None
    apps = [load_app(name) for name in ("research_chat", "dungeon", "chat")]
    try:
        async with (
            open_checkpointer(pg_url) as checkpointer,
            worker_for(layer, apps, checkpointer, publisher) as queue,
        ):
            temporal = TemporalServe(temporal_server, task_queue=queue, redis=redis)
            names = tuple(app.name for app in apps)
            spec = ServeSpec(names, str(config_path), pg_url, temporal=temporal)
            with front_door_thread(spec) as base:
                yield base
    finally:
        if publisher is not None:
            await publisher.aclose()
        await layer.aclose()


@pytest.fixture
def keys(pg_url):
    """API keys of two tenants; ``poor``'s daily budget refuses any call."""
    with Ledger.open(pg_url) as ledger:
        acme, _ = create_key(ledger.engine, tenant="acme", user="ana")
        rival, _ = create_key(ledger.engine, tenant="rival")
        poor, _ = create_key(ledger.engine, tenant="poor")
        set_limit(ledger.engine, BudgetLimit("tenant", "day", usd="0.0000001", id="poor"))
    return {"acme": acme, "rival": rival, "poor": poor}


async def answer_of(temporal_server: str, query_id: str) -> str:
    """The final answer, as the query's workflow returned it (the ledger keeps no text)."""
    client = await Client.connect(temporal_server)
    return (await client.get_workflow_handle(query_id).result())["answer"]


def check_usage(extension: dict, usage, summary) -> None:
    spend = summary.spend
    assert summary.query.status.value == extension["status"] == "ok"
    assert extension["calls"] == spend.calls > 3
    assert Decimal(extension["cost_usd"]) == spend.cost
    assert usage.prompt_tokens == spend.input_tokens
    assert usage.completion_tokens == spend.output
    assert usage.total_tokens == spend.total_tokens
    agents = {a["path"]: a for a in extension["agents"]}
    assert "planner" in agents and sum(a["calls"] for a in agents.values()) == spend.calls


async def test_a_durable_front_door_answers_and_streams_like_the_in_process_one(
    worker_for, temporal_server, pg_url, sim, fleet_toml, tmp_path, redis_url, keys
):
    toml = fleet_toml(sim.base_url)
    async with durable_door(worker_for, temporal_server, toml, pg_url, tmp_path, redis_url) as base:
        client = api(base, keys["acme"])
        whole = await client.chat.completions.create(model="research_chat", messages=QUESTION)
        stream = await client.chat.completions.create(
            model="research_chat",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = await read_stream(stream)

    whole_extension = whole.model_extra[EXTENSION]
    summary = ledger_spend(pg_url, whole_extension["query_id"])
    assert (summary.query.tenant, summary.query.user) == ("acme", "ana")
    check_usage(whole_extension, whole.usage, summary)
    assert whole.choices[0].message.content == await answer_of(
        temporal_server, whole_extension["query_id"]
    )
    # Streamed: the synthesizer's tokens as the worker made them, adding up to the answer.
    extension = streamed.extension
    assert streamed.finish == "stop" and len([p for p in streamed.pieces if p]) > 1
    assert "".join(streamed.pieces) == await answer_of(temporal_server, extension["query_id"])
    check_usage(extension, streamed.usage, ledger_spend(pg_url, extension["query_id"]))


async def test_threads_are_per_tenant_and_a_refused_query_is_402(
    worker_for, temporal_server, pg_url, sim, fleet_toml, tmp_path, redis_url, keys
):
    toml = fleet_toml(sim.base_url)
    async with durable_door(worker_for, temporal_server, toml, pg_url, tmp_path, redis_url) as base:
        look = [{"role": "user", "content": "look around"}]
        acme = api(base, keys["acme"])
        first = await acme.chat.completions.create(model="dungeon", messages=look)
        thread = first.model_extra[EXTENSION]["thread_id"]
        again = await acme.chat.completions.create(
            model="dungeon", messages=look, metadata={"thread_id": thread}
        )
        other = await api(base, keys["rival"]).chat.completions.create(
            model="dungeon", messages=look, metadata={"thread_id": thread}
        )
        refusals = []
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as refused:
                await api(base, keys["poor"]).chat.completions.create(
                    model="chat", messages=QUESTION, stream=stream
                )
            refusals.append(refused.value)

    rows = [
        ledger_spend(pg_url, a.model_extra[EXTENSION]["query_id"]).query
        for a in (first, again, other)
    ]
    assert (
        again.model_extra[EXTENSION]["thread_id"]
        == thread
        == other.model_extra[EXTENSION]["thread_id"]
    )
    assert rows[0].thread_id == rows[1].thread_id == f"acme:{thread}"
    assert rows[2].thread_id == f"rival:{thread}"
    for error in refusals:
        assert error.status_code == 402 and error.body["code"] == "budget_exhausted"
        summary = ledger_spend(pg_url, error.response.headers[QUERY_HEADER])
        assert summary.query.status.value == "budget_exhausted"
        assert summary.spend.refused == 1 and summary.spend.sent == 0


async def test_a_query_whose_endpoints_all_fail_is_502(
    worker_for, temporal_server, pg_url, fleet_toml, tmp_path, keys
):
    toml = fleet_toml("http://127.0.0.1:1")  # nothing listens there
    async with durable_door(worker_for, temporal_server, toml, pg_url, tmp_path, None) as base:
        with pytest.raises(openai.APIStatusError) as failed:
            await api(base, keys["acme"]).chat.completions.create(model="chat", messages=QUESTION)
    assert failed.value.status_code == 502 and failed.value.body["code"] == "upstream_error"
    query_id = failed.value.response.headers[QUERY_HEADER]
    rows = ledger_rows(pg_url, query_id)
    assert rows and all(r.status.value != "ok" for r in rows)
    assert ledger_spend(pg_url, query_id).query.status.value == "error"


async def test_serve_app_engine_temporal_runs_as_users_start_it(
    worker_for, temporal_server, pg_url, sim, config, fleet_toml, tmp_path, redis_url
):
    """``spendgraph serve app chat --engine temporal`` as a process of its own."""
    config_path = tmp_path / "fleet.toml"
    config_path.write_text(fleet_toml(sim.base_url))
    layer = ProviderLayer(config, Ledger.open(pg_url), env={})
    publisher = DeltaPublisher(redis_url)
    try:
        async with (
            open_checkpointer(pg_url) as checkpointer,
            worker_for(layer, [load_app("chat")], checkpointer, publisher) as queue,
        ):
            args = ["chat", "--engine", "temporal", "--address", temporal_server]
            args += ["--task-queue", queue, "--redis", redis_url, "--no-keys"]
            args += ["--config", str(config_path), "--ledger", pg_url]
            with serve_process(args, str(tmp_path / "serve.log")) as served:
                client = api(served.base_url, "-")
                stream = await client.chat.completions.create(
                    model="chat", messages=QUESTION, stream=True
                )
                streamed = await read_stream(stream)
    finally:
        await publisher.aclose()
        await layer.aclose()

    query_id = streamed.extension["query_id"]
    assert "".join(streamed.pieces) == await answer_of(temporal_server, query_id)
    assert ledger_spend(pg_url, query_id).spend.calls == streamed.extension["calls"] == 1
