"""``spendgraph serve app`` as users run it: real processes, workers, PostgreSQL, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time

import openai
import pytest
from front_door import cli_env, serve_process
from pg_schema import fresh_schema_url

from spendgraph.cli.apps import load_app
from spendgraph.graph import open_checkpointer, thread_messages, with_checkpointer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.keys import create_key
from spendgraph.serve import EXTENSION

LOOK = [{"role": "user", "content": "look around"}]


def test_more_than_one_worker_on_sqlite_is_refused(cli, tmp_path):
    result = cli(
        "serve", "app", "chat", "--sim", "--workers", "2", "--ledger", str(tmp_path / "x.db")
    )
    assert result.exit_code == 1
    assert "needs a PostgreSQL ledger" in result.stderr and "Traceback" not in result.output


def test_no_keys_is_loopback_only(cli):
    result = cli("serve", "app", "chat", "--sim", "--no-keys", "--host", "0.0.0.0")
    assert result.exit_code == 1 and "only allowed on loopback" in result.stderr


def test_an_unknown_app_fails_before_serving(cli):
    result = cli("serve", "app", "nope", "--sim")
    assert result.exit_code == 1 and "unknown app 'nope'" in result.stderr


@pytest.fixture
def pg_url():
    with fresh_schema_url("spendgraph_serve") as url:
        yield url


def _key(url: str, tenant: str = "acme") -> str:
    with Ledger.open(url) as ledger:
        key, _ = create_key(ledger.engine, tenant=tenant)
    return key


async def _turns(base: str, key: str, count: int) -> tuple[list[str], str]:
    """``count`` concurrent one-off queries, then a thread of 4 turns (a new connection each)."""
    api = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    answers = await asyncio.gather(
        *(api.chat.completions.create(model="dungeon", messages=LOOK) for _ in range(count))
    )
    ids = [a.model_extra[EXTENSION]["query_id"] for a in answers]
    thread = None
    for text in ("look around", "go north to the inn", "look around", "take the bread"):
        fresh = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        metadata = {"thread_id": thread} if thread else None
        answer = await fresh.chat.completions.create(
            model="dungeon", messages=[{"role": "user", "content": text}], metadata=metadata
        )
        thread = answer.model_extra[EXTENSION]["thread_id"]
        ids.append(answer.model_extra[EXTENSION]["query_id"])
        await fresh.close()
    return ids, thread


async def test_two_workers_share_the_ledger_and_the_threads(pg_url, tmp_path):
    key = _key(pg_url)
    args = ["dungeon", "--sim", "--sim-time-scale", "0", "--workers", "2", "--ledger", pg_url]
    with serve_process(args, str(tmp_path / "serve.log")) as served:
        ids, thread = await _turns(served.base_url, key, 20)
        assert served.terminate() == 0
    with Ledger.open(pg_url) as ledger:
        rows = [ledger.query_summary(query_id) for query_id in ids]
    assert all(r.query.status.value == "ok" and r.query.tenant == "acme" for r in rows)
    assert all(r.spend.calls >= 1 for r in rows)
    # the thread's four turns, whichever worker served each, are one history
    graph = with_checkpointer(load_app("dungeon").build(), None)
    async with open_checkpointer(pg_url) as saver:
        history = await thread_messages(with_checkpointer(graph, saver), f"acme:{thread}")
    assert [m["content"] for m in history if m["role"] == "user"][-4:] == [
        "look around",
        "go north to the inn",
        "look around",
        "take the bread",
    ]


async def test_sigterm_drains_in_flight_queries_and_closes_them(tmp_path):
    url = str(tmp_path / "drain.db")
    args = ["research_chat", "--sim", "--sim-time-scale", "0.5", "--no-keys", "--ledger", url]
    with serve_process(args, str(tmp_path / "serve.log"), env=cli_env()) as served:
        api = openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key="-", max_retries=0)
        asks = [
            asyncio.create_task(
                api.chat.completions.create(
                    model="research_chat",
                    messages=[{"role": "user", "content": "What does a prefix cache do?"}],
                )
            )
            for _ in range(4)
        ]
        await _until_calls_running(url)
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*asks, return_exceptions=True)
        code = await asyncio.to_thread(served.process.wait, 60)
        took = time.monotonic() - started
    # uvicorn drains, then re-raises SIGTERM so the exit says why (143 in a shell)
    assert code == -signal.SIGTERM, served.log()
    assert took < 25  # --drain-s 20 by default, then cancelled
    finished = [a for a in answers if not isinstance(a, BaseException)]
    assert finished, answers  # drained: the queries in flight were allowed to finish
    with Ledger.open(url) as ledger:
        queries = ledger.list_queries()
    assert len(queries) == 4
    assert all(q.query.status.value != "running" and q.query.finished_at for q in queries)
    for answer in finished:
        assert answer.model_extra[EXTENSION]["status"] == "ok"


async def _until_calls_running(url: str) -> None:
    """Wait until the served queries have calls recorded (the graph is mid-flight)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with Ledger.open(url, create=False) as ledger:
                if sum(q.spend.calls for q in ledger.list_queries()) >= 4:
                    return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("no calls recorded in time")
