"""Stream chunks are built by pydantic-core's strict validation, and any chunk it rejects
is built as the SDK builds it: every chunk, well-formed or odd, comes out of the layer
exactly as it comes out of ``AsyncOpenAI.chat.completions.create(stream=True)``."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import openai
import pydantic
import pytest
from loopback_server import serve_in_thread
from openai.types.chat import ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from transports import both_transports

from spendgraph.providers.config import parse_config
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.responses import parse_chunk
from spendgraph.providers.transport import TRANSPORT_ENV, open_http_client

http_transport = both_transports()
HEAD = {"id": "c-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}


def chunk(**fields: Any) -> dict[str, Any]:
    return {**HEAD, **fields}


def choice(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish, **extra}


FINISH = chunk(choices=[choice({}, "stop")])
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
TOOL_CALL = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}

# What real servers send: OpenAI, vLLM (reasoning), llama.cpp (timings), cumulative usage.
WELL_FORMED = {
    "role": chunk(choices=[choice({"role": "assistant", "content": "", "refusal": None})]),
    "text": chunk(system_fingerprint="fp", choices=[choice({"content": "Hi"}, logprobs=None)]),
    "tool_call": chunk(choices=[choice({"tool_calls": [TOOL_CALL]})]),
    "reasoning": chunk(choices=[choice({"reasoning_content": "hmm", "content": None})]),
    "finish": FINISH,
    "usage_trailer": chunk(
        choices=[],
        usage={**USAGE, "prompt_tokens_details": {"cached_tokens": 4, "odd": 1}},
    ),
    "timings": chunk(choices=[choice({}, "stop")], timings={"predicted_n": 3}, usage=None),
    "cumulative": chunk(choices=[choice({"content": "x"})], usage=USAGE),
}
# What strict validation rejects: the SDK keeps these values as they are, unchecked.
ODD = {
    "created_as_text": {**chunk(choices=[choice({"content": "a"})]), "created": "1700000000"},
    "created_as_float": {**chunk(choices=[choice({"content": "a"})]), "created": 1.5},
    "no_id": {k: v for k, v in chunk(choices=[choice({"content": "a"})]).items() if k != "id"},
    "unknown_finish": chunk(choices=[choice({"content": "a"}, "eos_token")]),
    "content_as_number": chunk(choices=[choice({"content": 7})]),
    "usage_as_text": chunk(
        choices=[choice({"content": "a"})], usage={**USAGE, "total_tokens": "12"}
    ),
    "model_null": {**chunk(choices=[choice({"content": "a"})]), "model": None},
}


def shape(value: Any) -> Any:
    """A value with what equality of pydantic models leaves out: types, the fields set.

    Validation counts extra fields as set and the SDK's construction does not; both
    dump them alike (extras are always dumped), so only declared fields are compared.
    """
    if isinstance(value, pydantic.BaseModel):
        fields = {name: shape(item) for name, item in value.__dict__.items()}
        extra = value.model_extra or {}
        declared = sorted(value.model_fields_set - extra.keys())
        return (type(value).__name__, fields, declared, {k: shape(v) for k, v in extra.items()})
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return (type(value).__name__, value)


@pytest.mark.parametrize("data", WELL_FORMED.values(), ids=WELL_FORMED)
def test_a_well_formed_chunk_is_validated_into_what_the_sdk_builds(data):
    strict = ChatCompletionChunk.model_validate(data, strict=True)  # the fast path takes it
    ours, by_sdk = parse_chunk(data), ChatCompletionChunk.construct(**data)
    assert shape(ours) == shape(strict) == shape(by_sdk)
    assert ours.model_dump(exclude_unset=True) == by_sdk.model_dump(exclude_unset=True)
    assert ours.to_json() == by_sdk.to_json()


@pytest.mark.parametrize("data", ODD.values(), ids=ODD)
def test_a_chunk_failing_strict_validation_is_built_as_the_sdk_builds_it(data):
    with pytest.raises(pydantic.ValidationError):
        ChatCompletionChunk.model_validate(data, strict=True)
    assert shape(parse_chunk(data)) == shape(ChatCompletionChunk.construct(**data))


@pytest.mark.parametrize("data", [[1, 2], "text", 5, None], ids=["list", "str", "int", "null"])
def test_json_that_is_no_object_is_passed_on_for_the_shape_check(data):
    assert parse_chunk(data) == data


@pytest.fixture(scope="module")
def replay():
    """A server whose stream ``/<case>/v1`` sends that case's chunk, then the finish chunk."""
    cases = {**WELL_FORMED, **ODD}

    async def answer(request: Request):
        await request.body()
        events = [cases[request.path_params["case"]], FINISH]

        async def body():
            for event in events:
                yield f"data: {json.dumps(event)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    routes = [Route("/{case}/v1/chat/completions", answer, methods=["POST"])]
    with serve_in_thread(lambda _: Starlette(routes=routes)) as url:
        yield url


@pytest.mark.parametrize("case", [*WELL_FORMED, *ODD])
async def test_the_layer_streams_the_chunks_the_sdk_streams(replay, http_transport, case):
    base = f"{replay}/{case}/v1"
    env = {TRANSPORT_ENV: http_transport, "KEY": "sk-test-1"}
    toml = f'[[endpoints]]\nname = "e"\nbase_url = "{base}"\nmodel = "m"\napi_key_env = "KEY"\n'
    pool = open_http_client(env)
    endpoint = Endpoint(
        parse_config(toml, source="t.toml", env=env).endpoints[0], env=env, http_client=pool.client
    )
    sdk = openai.AsyncOpenAI(base_url=base, api_key="sk-test-1", max_retries=0)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    try:
        by_sdk = [shape(c) async for c in await sdk.chat.completions.create(**body)]
        async with aclosing(await endpoint.open_stream(body)) as chunks:
            ours = [shape(c) async for c in chunks]
    finally:
        await sdk.close()
        await pool.aclose()
    assert ours == by_sdk
