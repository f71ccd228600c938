"""Threads survive restarts: SQLite checkpoints by default, PostgreSQL with a PG ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest
from psycopg import sql

from spendgraph.agents import Agent
from spendgraph.graph import (
    open_checkpointer,
    pipeline,
    run_graph,
    thread_messages,
    with_checkpointer,
)
from spendgraph.graph.persist import (
    CheckpointBackend,
    checkpoint_backend,
    default_checkpoint_path,
    postgres_conninfo,
)
from spendgraph.graph.run import RunOptions
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

FIRST = "first question: my throat has been sore since Monday"
SECOND = "second question: should I see a doctor?"
AGENTS = [Agent("scribe", "Take notes.", max_tokens=20), Agent("advisor", "Advise.", max_tokens=20)]

# The first turn, run by a separate Python process (a real restart in between).
FIRST_TURN_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from spendgraph.agents import Agent
    from spendgraph.graph import open_checkpointer, pipeline, run_graph, with_checkpointer
    from spendgraph.providers.config import parse_config
    from spendgraph.providers.gateway import ProviderLayer
    from spendgraph.providers.ledger import Ledger

    fleet, ledger_url, threads, text = sys.argv[1:5]
    agents = [Agent("scribe", "Take notes.", max_tokens=20),
              Agent("advisor", "Advise.", max_tokens=20)]

    async def main():
        with Ledger.open(ledger_url) as ledger:
            layer = ProviderLayer(parse_config(fleet, env={}), ledger, env={})
            async with open_checkpointer(path=threads) as saver:
                graph = with_checkpointer(pipeline(agents), saver)
                result = await run_graph(graph, layer, text, thread_id="visit-1")
            await layer.aclose(close_ledger=False)
        print(json.dumps({"answer": result.answer}))

    asyncio.run(main())
    """
)


async def _first_turn_here(config, ledger, threads) -> str:
    layer = ProviderLayer(config, ledger, env={})
    try:
        async with open_checkpointer(path=threads) as saver:
            graph = with_checkpointer(pipeline(AGENTS), saver)
            result = await run_graph(graph, layer, FIRST, thread_id="visit-1")
    finally:
        await layer.aclose(close_ledger=False)
    return result.answer


def _first_turn_in_subprocess(sim, fleet_config_text, tmp_path, threads) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FIRST_TURN_SCRIPT,
            fleet_config_text,
            f"sqlite:///{tmp_path / 'other-process.db'}",
            str(threads),
            FIRST,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["answer"]


@pytest.mark.parametrize("restart", ["fresh-objects", "subprocess"])
async def test_a_thread_continues_after_a_restart(
    restart, sim, config, ledger, ledger_rows, tmp_path, fleet_toml
):
    threads = tmp_path / "threads.db"
    if restart == "subprocess":
        first_answer = _first_turn_in_subprocess(sim, fleet_toml(sim.base_url), tmp_path, threads)
    else:
        first_answer = await _first_turn_here(config, ledger, threads)
    assert first_answer
    # "after the restart": a fresh layer, a fresh saver, a freshly built graph
    layer = ProviderLayer(config, ledger, env={})
    try:
        async with open_checkpointer(path=threads) as saver:
            graph = with_checkpointer(pipeline(AGENTS), saver)
            assert await thread_messages(graph, "visit-1") == [
                {"role": "user", "content": FIRST},
                {"role": "assistant", "content": first_answer},
            ]
            options = RunOptions(store_text=True)
            result = await run_graph(graph, layer, SECOND, thread_id="visit-1", options=options)
            history = await thread_messages(graph, "visit-1")
    finally:
        await layer.aclose(close_ledger=False)
    assert [m["content"] for m in history] == [FIRST, first_answer, SECOND, result.answer]
    # the agents of the second turn saw the first turn
    first_call = ledger_rows(result)[0]
    assert FIRST in first_call.prompt_text and first_answer in first_call.prompt_text
    # per-query keys were reset: only this turn's outputs and steps
    assert [o.agent for o in result.outputs] == ["scribe", "advisor"] and result.steps == 2


async def test_a_graph_built_without_a_saver_can_be_given_one(layer, tmp_path):
    graph = pipeline(AGENTS)
    async with open_checkpointer(path=tmp_path / "t.db") as saver:
        saved = with_checkpointer(graph, saver)
        await run_graph(saved, layer, FIRST, thread_id="t")
        assert len(await thread_messages(saved, "t")) == 2
    assert graph.checkpointer is None
    # False: a graph run inside another graph's node never checkpoints, not even to the outer saver
    assert with_checkpointer(graph, False).checkpointer is False


@pytest.mark.parametrize(
    ("ledger_arg", "expected_name"),
    [("sqlite:///{tmp}/spend.db", "spend.threads.db"), ("{tmp}/audit.sqlite", "audit.threads.db")],
)
async def test_the_default_saver_is_sqlite_next_to_the_ledger(tmp_path, ledger_arg, expected_name):
    async with open_checkpointer(ledger_arg.format(tmp=tmp_path)) as saver:
        assert type(saver).__name__ == "AsyncSqliteSaver"
    assert (tmp_path / expected_name).exists()


async def test_the_ledger_environment_variable_is_followed(tmp_path):
    env = {"SPENDGRAPH_LEDGER": str(tmp_path / "env.db")}
    async with open_checkpointer(env=env):
        pass
    assert (tmp_path / "env.threads.db").exists()


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:////var/lib/spend.db", CheckpointBackend.SQLITE),
        ("postgresql+psycopg://u:p@db:5432/spend", CheckpointBackend.POSTGRES),
        ("postgresql://u@db/spend", CheckpointBackend.POSTGRES),
    ],
)
def test_the_backend_follows_the_ledger(url, backend):
    assert checkpoint_backend(url) is backend


def test_postgres_conninfo_drops_the_sqlalchemy_driver():
    url = "postgresql+psycopg://u:secret@db:5432/spend?options=-csearch_path%3Dx"
    assert postgres_conninfo(url) == "postgresql://u:secret@db:5432/spend?options=-csearch_path%3Dx"
    assert (
        default_checkpoint_path("sqlite:////a/b/ledger.db").as_posix() == "/a/b/ledger.threads.db"
    )


POSTGRES_ENV = "SPENDGRAPH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url():
    """A fresh schema on the test PostgreSQL server (as the ledger tests use), dropped after."""
    server = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    schema = f"graph_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        pytest.fail(f"this test needs PostgreSQL ({POSTGRES_ENV}): {exc}", pytrace=False)
    separator = "&" if "?" in server else "?"
    yield f"{server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def test_a_postgres_ledger_checkpoints_threads_in_postgres(config, postgres_url):
    with Ledger.open(postgres_url) as ledger:
        for text in (FIRST, SECOND):  # each turn on a fresh layer, saver and graph
            layer = ProviderLayer(config, ledger, env={})
            try:
                async with open_checkpointer(postgres_url) as saver:
                    assert type(saver).__name__ == "AsyncPostgresSaver"
                    graph = with_checkpointer(pipeline(AGENTS), saver)
                    result = await run_graph(graph, layer, text, thread_id="pg-visit")
                    history = await thread_messages(graph, "pg-visit")
            finally:
                await layer.aclose(close_ledger=False)
        ledger.flush()
        assert ledger.query_summary(result.query_id).spend.calls == 2
    assert [m["content"] for m in history][0::2] == [FIRST, SECOND]
    assert len(history) == 4
