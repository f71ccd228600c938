"""The front door through the real ``openai`` client: plain, streamed, threaded, keys, errors."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from front_door import front_door_thread, read_stream

from spendgraph.cli.serve_app import ServeSpec
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.keys import create_key, revoke_key
from spendgraph.providers.spend import Spend
from spendgraph.serve import COST_HEADER, EXTENSION, QUERY_HEADER, THREAD_HEADER

QUESTION = [{"role": "user", "content": "What does a prefix cache do?"}]


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("serve") / "spendgraph.db")


@pytest.fixture(scope="module")
def open_door(sim, ledger_url):
    """research_chat, dungeon and chat on the simulator, without keys."""
    spec = ServeSpec(
        apps=("research_chat", "dungeon", "chat"),
        ledger=ledger_url,
        sim=True,
        sim_url=sim.base_url,
        require_keys=False,
    )
    with front_door_thread(spec) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_door(sim, tmp_path_factory):
    url = str(tmp_path_factory.mktemp("keyed") / "spendgraph.db")
    spec = ServeSpec(apps=("chat",), ledger=url, sim=True, sim_url=sim.base_url)
    with Ledger.open(url) as ledger:
        key, _ = create_key(ledger.engine, tenant="acme", user="ana")
    with front_door_thread(spec) as base:
        yield base, url, key


def client(base: str, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def ledger_spend(ledger_url: str, query_id: str) -> tuple[str, Spend]:
    with Ledger.open(ledger_url) as ledger:
        summary = ledger.query_summary(query_id)
    return summary.query.status.value, summary.spend


async def test_models_lists_the_served_apps(open_door):
    models = await client(open_door).models.list()
    assert sorted(m.id for m in models.data) == ["chat", "dungeon", "research_chat"]


async def test_a_plain_completion_is_the_whole_query(open_door, ledger_url):
    raw = await client(open_door).chat.completions.with_raw_response.create(
        model="research_chat", messages=QUESTION
    )
    answer = raw.parse()
    extra = answer.model_extra[EXTENSION]
    status, spend = ledger_spend(ledger_url, extra["query_id"])
    assert status == "ok" and extra["status"] == "ok"
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    # usage is every agent's calls, as the ledger has them
    assert spend.calls > 3 and extra["calls"] == spend.calls
    assert answer.usage.prompt_tokens == spend.input_tokens
    assert answer.usage.completion_tokens == spend.output
    assert answer.usage.prompt_tokens_details.cached_tokens == spend.input_cached
    assert Decimal(extra["cost_usd"]) == spend.cost
    assert raw.headers[COST_HEADER] == extra["cost_usd"]
    assert raw.headers[QUERY_HEADER] == extra["query_id"]
    agents = {a["path"]: a for a in extra["agents"]}
    assert "planner" in agents and any(p.startswith("synthesizer") for p in agents)
    assert sum(a["calls"] for a in agents.values()) == spend.calls
    assert sum(Decimal(a["cost_usd"]) for a in agents.values()) == spend.cost


@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_streamed_completion_streams_the_answer_and_ends_with_usage(
    open_door, ledger_url, include_usage
):
    options = {"include_usage": True} if include_usage else None
    stream = await client(open_door).chat.completions.create(
        model="research_chat", messages=QUESTION, stream=True, stream_options=options
    )
    streamed = await read_stream(stream)
    text, extension = streamed.pieces, streamed.extension
    assert streamed.finish == "stop" and "".join(text)
    assert len([t for t in text if t]) > 1  # the synthesizer's tokens, as they came
    status, spend = ledger_spend(ledger_url, extension["query_id"])
    assert status == "ok" and extension["calls"] == spend.calls
    if include_usage:
        assert streamed.usage.total_tokens == spend.total_tokens
    else:
        assert streamed.usage is None


async def test_a_thread_continues_across_requests(open_door):
    api = client(open_door)
    first = await api.chat.completions.with_raw_response.create(
        model="dungeon", messages=[{"role": "user", "content": "look around"}]
    )
    thread = first.headers[THREAD_HEADER]
    second = await api.chat.completions.create(
        model="dungeon",
        messages=[{"role": "user", "content": "go north to the inn"}],
        metadata={"thread_id": thread},
    )
    assert second.model_extra[EXTENSION]["thread_id"] == thread
    third = await api.chat.completions.create(
        model="dungeon",
        messages=[{"role": "user", "content": "look around"}],
        extra_headers={THREAD_HEADER: thread},
    )
    assert third.model_extra[EXTENSION]["thread_id"] == thread
    assert (
        first.parse().model_extra[EXTENSION]["query_id"] != third.model_extra[EXTENSION]["query_id"]
    )


async def test_an_unknown_app_is_404_and_bad_bodies_are_400(open_door):
    api = client(open_door)
    with pytest.raises(openai.NotFoundError, match="no app 'nope'"):
        await api.chat.completions.create(model="nope", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="no message with role 'user'"):
        await api.chat.completions.create(
            model="chat", messages=[{"role": "system", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="'user' must be a printable string"):
        await api.chat.completions.create(model="chat", messages=QUESTION, user="a\x00b")
    async with httpx.AsyncClient() as http:
        answer = await http.post(open_door + "/v1/chat/completions", content=b"<html>")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


async def test_a_query_its_budget_refuses_is_402_and_a_ledger_row(sim, tmp_path, fleet_toml):
    url = str(tmp_path / "budget.db")
    config = tmp_path / "budget.toml"
    budget = '\n[[budgets]]\nscope = "query"\nusd = 0.0000001\n'
    config.write_text(fleet_toml(sim.base_url) + budget)
    spec = ServeSpec(apps=("chat",), config=str(config), ledger=url, require_keys=False)
    with front_door_thread(spec) as base:
        with pytest.raises(openai.APIStatusError) as refused:
            await client(base).chat.completions.create(model="chat", messages=QUESTION)
        with pytest.raises(openai.APIStatusError) as refused_stream:
            await client(base).chat.completions.create(model="chat", messages=QUESTION, stream=True)
    for error in (refused.value, refused_stream.value):
        assert error.status_code == 402
        assert error.body["code"] == "budget_exhausted"
        query_id = error.response.headers[QUERY_HEADER]
        status, spend = ledger_spend(url, query_id)
        assert status == "budget_exhausted" and spend.refused == 1 and spend.sent == 0


async def test_keys_are_required_and_name_the_tenant(keyed_door):
    base, url, key = keyed_door
    async with httpx.AsyncClient() as http:
        bare = await http.post(
            base + "/v1/chat/completions", json={"model": "chat", "messages": QUESTION}
        )
    assert bare.status_code == 401 and "missing API key" in bare.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        await client(base, key="sgk_wrong").chat.completions.create(model="chat", messages=QUESTION)
    answer = await client(base, key).chat.completions.create(model="chat", messages=QUESTION)
    query_id = answer.model_extra[EXTENSION]["query_id"]
    with Ledger.open(url) as ledger:
        row = ledger.query_summary(query_id).query
    assert (row.tenant, row.user) == ("acme", "ana")


async def test_a_revoked_key_is_refused(sim, tmp_path):
    url = str(tmp_path / "revoke.db")
    with Ledger.open(url) as ledger:
        key, info = create_key(ledger.engine, tenant="acme")
        spec = ServeSpec(apps=("chat",), ledger=url, sim=True, sim_url=sim.base_url)
        with front_door_thread(spec) as base:
            revoke_key(ledger.engine, info.id)  # before the key was ever seen: not cached
            with pytest.raises(openai.AuthenticationError):
                await client(base, key).chat.completions.create(model="chat", messages=QUESTION)


async def test_another_tenants_thread_is_not_visible(sim, tmp_path):
    url = str(tmp_path / "tenants.db")
    with Ledger.open(url) as ledger:
        acme, _ = create_key(ledger.engine, tenant="acme")
        rival, _ = create_key(ledger.engine, tenant="rival")
    spec = ServeSpec(apps=("dungeon",), ledger=url, sim=True, sim_url=sim.base_url)
    with front_door_thread(spec) as base:
        first = await client(base, acme).chat.completions.create(
            model="dungeon", messages=[{"role": "user", "content": "go north to the inn"}]
        )
        thread = first.model_extra[EXTENSION]["thread_id"]
        other = await client(base, rival).chat.completions.create(
            model="dungeon",
            messages=[{"role": "user", "content": "look around"}],
            metadata={"thread_id": thread},
        )
    # the same client-side id, two checkpoint threads: one per tenant
    with Ledger.open(url) as ledger:
        rows = [
            ledger.query_summary(a.model_extra[EXTENSION]["query_id"]).query for a in (first, other)
        ]
    assert rows[0].thread_id != rows[1].thread_id
    assert {r.tenant for r in rows} == {"acme", "rival"}


async def test_metrics_count_queries_calls_tokens_and_cost(open_door):
    await client(open_door).chat.completions.create(model="chat", messages=QUESTION)
    async with httpx.AsyncClient() as http:
        text = (await http.get(open_door + "/metrics")).text
    assert 'spendgraph_queries_total{app="chat",status="ok"}' in text
    assert "spendgraph_calls_total{" in text and "spendgraph_cost_usd_total{" in text
    assert 'type="output"' in text and "spendgraph_in_flight_queries" in text
