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
    open_saver,
    postgres_conninfo,
    threads_location,
    threads_serializer,
)
from spendgraph.graph.run import RunOptions
from spendgraph.providers.config import ThreadsConfig
from spendgraph.providers.errors import ConfigError
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


# -- encryption at rest ---------------------------------------------------------

KEY_ENV = "SPENDGRAPH_TEST_THREADS_KEY"
KEY = "0123456789abcdef0123456789abcdef"  # 32 bytes: AES-256
KEYED = {KEY_ENV: KEY}
ENCRYPTED = ThreadsConfig(encryption_key_env=KEY_ENV)


async def _turn(config, ledger, text, *, url=None, path=None, threads=None, env=KEYED):
    """One turn of thread ``visit-1`` on a fresh layer, saver and graph; the history after it."""
    layer = ProviderLayer(config, ledger, env={})
    try:
        async with open_checkpointer(url, path=path, env=env, threads=threads) as saver:
            graph = with_checkpointer(pipeline(AGENTS), saver)
            result = await run_graph(graph, layer, text, thread_id="visit-1")
            return result, await thread_messages(graph, "visit-1")
    finally:
        await layer.aclose(close_ledger=False)


def _sqlite_bytes(threads) -> bytes:
    """Everything on disk for a SQLite threads database (the file, its WAL and shm)."""
    return b"".join(p.read_bytes() for p in threads.parent.glob(threads.name + "*"))


@pytest.mark.parametrize("encrypted", [True, False])
async def test_encrypted_sqlite_threads_hold_no_text_and_still_continue(
    config, ledger, tmp_path, encrypted
):
    threads = tmp_path / "threads.db"
    setting = ENCRYPTED if encrypted else None
    first, _ = await _turn(config, ledger, FIRST, path=threads, threads=setting)
    second, history = await _turn(config, ledger, SECOND, path=threads, threads=setting)
    assert [m["content"] for m in history] == [FIRST, first.answer, SECOND, second.answer]
    stored = _sqlite_bytes(threads)
    texts = [FIRST, SECOND, first.answer, second.answer]
    found = [text for text in texts if text.encode() in stored]
    # Unencrypted, the conversation is right there in the file: the check can see it.
    assert found == ([] if encrypted else texts)


async def test_a_wrong_or_missing_key_is_a_clear_error(config, ledger, tmp_path):
    threads = tmp_path / "threads.db"
    await _turn(config, ledger, FIRST, path=threads, threads=ENCRYPTED)
    wrong = {KEY_ENV: "f" * 32}
    with pytest.raises(ConfigError, match=rf"the key in \${KEY_ENV} .* is not the key") as exc:
        await _turn(config, ledger, SECOND, path=threads, threads=ENCRYPTED, env=wrong)
    assert str(threads) in str(exc.value) and "f" * 32 not in str(exc.value)
    with pytest.raises(ConfigError, match="are encrypted and no key is configured"):
        await _turn(config, ledger, SECOND, path=threads, threads=None)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} is not set"):
        await _turn(config, ledger, SECOND, path=threads, threads=ENCRYPTED, env={})
    with pytest.raises(ConfigError, match="is 5 bytes long; an AES key is 16, 24 or 32 bytes"):
        await _turn(config, ledger, SECOND, path=threads, threads=ENCRYPTED, env={KEY_ENV: "short"})
    # and the right key still reads the thread
    _, history = await _turn(config, ledger, SECOND, path=threads, threads=ENCRYPTED)
    assert [m["content"] for m in history][0::2] == [FIRST, SECOND]


def _postgres_tables(url: str) -> str:
    """Every row of the three checkpoint tables, bytes shown as bytes (text in them visible)."""
    with psycopg.connect(url) as conn:
        return "\n".join(
            repr(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        )


async def test_encrypted_postgres_threads_hold_no_text_and_still_continue(config, postgres_url):
    with Ledger.open(postgres_url) as ledger:
        first, _ = await _turn(config, ledger, FIRST, url=postgres_url, threads=ENCRYPTED)
        second, history = await _turn(config, ledger, SECOND, url=postgres_url, threads=ENCRYPTED)
    assert [m["content"] for m in history] == [FIRST, first.answer, SECOND, second.answer]
    stored = _postgres_tables(postgres_url)
    assert "visit-1" in stored  # the rows are there, their text is not
    for text in (FIRST, SECOND, first.answer, second.answer):
        assert text not in stored


async def test_postgres_keeps_strings_inline_unless_sealed(config, postgres_url):
    """Why the encrypted PostgreSQL saver seals strings: the stock saver keeps str channel
    values (the input, the answer) as plain JSONB, outside any serializer."""
    location = threads_location(postgres_url)
    serde = threads_serializer(KEY.encode())
    with Ledger.open(postgres_url) as ledger:
        layer = ProviderLayer(config, ledger, env={})
        try:
            async with open_saver(location, serde=serde, sealed=False) as saver:
                graph = with_checkpointer(pipeline(AGENTS), saver)
                await run_graph(graph, layer, FIRST, thread_id="unsealed")
        finally:
            await layer.aclose(close_ledger=False)
    assert FIRST in _postgres_tables(postgres_url)


async def test_a_postgres_thread_begun_unencrypted_continues_encrypted(config, postgres_url):
    with Ledger.open(postgres_url) as ledger:
        first, _ = await _turn(config, ledger, FIRST, url=postgres_url, threads=None)
        second, history = await _turn(config, ledger, SECOND, url=postgres_url, threads=ENCRYPTED)
    assert [m["content"] for m in history] == [FIRST, first.answer, SECOND, second.answer]
    stored = _postgres_tables(postgres_url)
    assert FIRST in stored  # written before the key: plain until purged
    assert SECOND not in stored and second.answer not in stored
