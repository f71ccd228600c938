"""The provider layer's HTTP client: aiohttp when installed, httpx when forced or missing;
both record every attempt, aiohttp's session is closed with the layer, and the suite's
loopback guard stops aiohttp's connections and name lookups too."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import warnings
from contextlib import aclosing

import openai
import pytest
from transports import both_transports

from spendgraph.providers import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.transport import (
    AIOHTTP,
    HTTPX,
    TRANSPORT_ENV,
    aiohttp_installed,
    open_http_client,
)

MESSAGES = [{"role": "user", "content": "Say something."}]
REQUEST = ChatRequest(messages=MESSAGES, model="large", max_tokens=8)
http_transport = both_transports()
needs_aiohttp = pytest.mark.skipif(not aiohttp_installed(), reason="the `fast` extra")


def entry(url: str) -> str:
    return f"""
[[endpoints]]
name = "only"
base_url = "{url}"
model = "m"
serves = ["default"]
timeout_s = 5
[routing]
max_retries = 0
"""


async def test_a_call_on_each_transport_is_answered_and_recorded(layer, http_transport):
    layer = ProviderLayer(layer.config, layer.ledger, env={TRANSPORT_ENV: http_transport})
    try:
        assert layer.transport == http_transport
        async with layer.query() as scope:
            plain = await layer.chat(REQUEST)
            async with layer.stream(REQUEST) as chunks:
                async for _ in chunks:
                    pass
    finally:
        await layer.aclose(close_ledger=False)
    assert plain.content and chunks.result.content
    layer.ledger.flush()
    rows = layer.ledger.calls_for_query(scope.id)
    assert sorted(r.stream for r in rows) == [False, True]
    assert {r.status for r in rows} == {CallStatus.OK}


@needs_aiohttp
async def test_aiohttp_is_the_default_when_installed(layer):
    assert layer.transport == AIOHTTP


def test_a_misspelt_choice_is_an_error_naming_the_variable_and_value(config, ledger):
    with pytest.raises(ConfigError, match=rf"{TRANSPORT_ENV}='aiohtp' is not one of"):
        ProviderLayer(config, ledger, env={TRANSPORT_ENV: "aiohtp"})


@pytest.mark.parametrize(
    ("choice", "said"),
    [("", HTTPX), ("httpx", HTTPX), ("aiohttp", "ConfigError: SPENDGRAPH_HTTP_CLIENT=aiohttp")],
)
def test_without_aiohttp_the_layer_falls_back_to_httpx_unless_it_was_required(choice, said):
    # A fresh interpreter in which ``import aiohttp`` fails, as without the extra.
    script = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "from spendgraph.providers.transport import open_http_client\n"
        "try:\n"
        f"    print(open_http_client({{{TRANSPORT_ENV!r}: {choice!r}}}).transport)\n"
        "except Exception as exc:\n"
        "    print(f'{type(exc).__name__}: {exc}')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(said)
    if choice == "aiohttp":
        assert "pip install 'spendgraph[fast]'" in done.stdout


def _unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "Unclosed" in str(w.message)]


@needs_aiohttp
async def test_closing_the_layer_closes_its_aiohttp_session(config, ledger):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The check itself: a client left open is reported.
        client = openai.AsyncOpenAI(
            base_url=config.endpoints[0].base_url,
            api_key="x",
            http_client=openai.DefaultAioHttpClient(),
        )
        await client.chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=4)
        del client
        gc.collect()
        assert _unclosed(caught), "an unclosed session should have been reported"
        caught.clear()
        layer = ProviderLayer(config, ledger, env={})
        async with layer.query():
            await layer.chat(REQUEST)
        await layer.aclose(close_ledger=False)
        del layer
        gc.collect()
    assert _unclosed(caught) == []


@needs_aiohttp
@pytest.mark.parametrize(
    ("url", "said"),
    [
        # 0.0.0.0 reaches this machine even if the guard failed: no packet leaves.
        ("http://0.0.0.0:9/v1", "connect to non-loopback address"),
        ("http://spendgraph-guard-check.invalid/v1", "resolve non-loopback host"),
    ],
)
async def test_the_loopback_guard_stops_aiohttp_too(ledger, url, said):
    # aiohttp connects through asyncio's sock_connect (socket.connect) and resolves names
    # with its threaded resolver (socket.getaddrinfo): both are guarded.
    config = parse_config(entry(url), source="test.toml", env={})
    layer = ProviderLayer(config, ledger, env={TRANSPORT_ENV: AIOHTTP})
    try:
        with pytest.raises(AssertionError, match=said):
            async with layer.query():
                await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
    finally:
        await layer.aclose(close_ledger=False)


# -- what goes on the wire ------------------------------------------------------------

COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}
TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Look it up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}


@pytest.fixture(scope="module")
def recorder():
    """A loopback server that answers every chat completion and keeps what it was sent."""
    from loopback_server import serve_in_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    seen: list[tuple[dict, dict]] = []

    async def answer(request: Request) -> Response:
        body = await request.json()
        seen.append((body, dict(request.headers)))
        if not body.get("stream"):
            return JSONResponse(COMPLETION)
        chunk = {**COMPLETION, "object": "chat.completion.chunk"}
        chunk["choices"] = [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(events, media_type="text/event-stream")

    routes = [Route("/v1/chat/completions", answer, methods=["POST"])]
    with serve_in_thread(lambda _: Starlette(routes=routes)) as url:
        yield url, seen


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_the_endpoint_sends_what_the_sdks_create_sends(recorder, http_transport, stream):
    url, seen = recorder
    request = ChatRequest(
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        tools=[TOOL],
        tool_choice="auto",
        response_format=SCHEMA,
        temperature=0.2,
        extra_headers={"x-trace": "t-1"},
    )
    body = request.body("m", max_tokens=16, stream=stream)
    env = {TRANSPORT_ENV: http_transport, "KEY": "sk-test-1"}
    toml = (
        f'[[endpoints]]\nname = "only"\nbase_url = "{url}/v1"\nmodel = "m"\napi_key_env = "KEY"\n'
    )
    config = parse_config(toml, source="test.toml", env=env)
    pool = open_http_client(env)
    endpoint = Endpoint(config.endpoints[0], env=env, http_client=pool.client)
    sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test-1", max_retries=0)
    try:
        seen.clear()
        await sdk.chat.completions.create(**body)
        if stream:
            async with aclosing(await endpoint.open_stream(body)) as chunks:
                assert [c.choices[0].delta.content async for c in chunks] == ["ok"]
        else:
            assert (await endpoint.complete(body)).choices[0].message.content == "ok"
    finally:
        await sdk.close()
        await pool.aclose()
    (by_sdk, sdk_headers), (ours, our_headers) = seen
    assert ours == by_sdk
    for header in ("authorization", "x-trace", "content-type"):
        assert our_headers[header] == sdk_headers[header]
