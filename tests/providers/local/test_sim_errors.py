"""Bad requests get OpenAI-shaped 4xx errors, never a 500 or a traceback."""

from __future__ import annotations

import httpx
import openai
import pytest

OK = [{"role": "user", "content": "hello"}]
GOOD_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# (id, request body overrides, expected param)
BAD_BODIES = [
    ("missing-messages", {"messages": None}, "messages"),
    ("empty-messages", {"messages": []}, "messages"),
    ("messages-not-a-list", {"messages": "hi"}, "messages"),
    ("message-without-role", {"messages": [{"content": "hi"}]}, "messages[0].role"),
    ("unknown-role", {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ("user-without-content", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("missing-model", {"model": None}, "model"),
    ("n-2", {"n": 2}, "n"),
    ("negative-max-tokens", {"max_tokens": -1}, "max_tokens"),
    ("zero-max-completion-tokens", {"max_completion_tokens": 0}, "max_completion_tokens"),
    (
        "invalid-json-schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "objekt"}},
            }
        },
        "response_format.json_schema.schema",
    ),
    (
        "json-schema-without-schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "response_format.json_schema",
    ),
    ("unknown-response-format", {"response_format": {"type": "yaml"}}, "response_format"),
    (
        "tool-with-bad-schema",
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object", "required": "x"}},
                }
            ]
        },
        "tools[0].function.parameters",
    ),
    (
        "tool-with-bad-name",
        {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
        "tools[0].function.name",
    ),
    ("tool-not-a-function", {"tools": [{"type": "retrieval"}]}, "tools[0]"),
    ("required-without-tools", {"tool_choice": "required"}, "tool_choice"),
    (
        "named-tool-not-offered",
        {"tools": [GOOD_TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
        "tool_choice",
    ),
    (
        "parallel-tool-calls-not-a-boolean",
        {"tools": [GOOD_TOOL], "parallel_tool_calls": "no"},
        "parallel_tool_calls",
    ),
    (
        "stream-options-without-stream",
        {"stream_options": {"include_usage": True}},
        "stream_options",
    ),
    (
        "prompt-past-context-window",
        {"model": "sim-small", "messages": [{"role": "user", "content": "word " * 33_000}]},
        "messages",
    ),
]


def _post(sim, body: dict, path: str = "/r/h100-fp8-0/v1/chat/completions") -> httpx.Response:
    full = {"model": "sim-large", "messages": OK, **body}
    return httpx.post(sim.base_url + path, json={k: v for k, v in full.items() if v is not None})


def _assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"), [case[1:] for case in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_request_is_a_400_naming_the_field(sim, body, param):
    error = _assert_openai_error(_post(sim, body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_openai_client_raises_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-large", messages=[])
    assert caught.value.param == "messages"


@pytest.mark.parametrize("replica", [None, "h100-fp8-0"])
def test_unknown_model_is_a_404_model_not_found(make_client, replica):
    with pytest.raises(openai.NotFoundError) as caught:
        make_client(replica).chat.completions.create(model="gpt-nope", messages=OK)
    assert caught.value.code == "model_not_found"


def test_model_the_replica_does_not_serve_is_a_404(fleet_file):
    from spendgraph.providers.local.sim.server import run_simulator

    path = fleet_file(
        """
        [models.a]
        [models.b]
        [[replicas]]
        name = "only-a"
        profile = "H100-FP8"
        models = ["a"]
        """
    )
    with run_simulator(path) as server:
        error = _assert_openai_error(
            _post(server, {"model": "b"}, "/r/only-a/v1/chat/completions"), 404
        )
    assert error["code"] == "model_not_found"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b"\xff\xfe"],
    ids=["broken", "not-an-object", "not-utf8"],
)
def test_invalid_json_body_is_a_400(sim, raw):
    response = httpx.post(
        f"{sim.base_url}/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json"},
    )
    _assert_openai_error(response, 400)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/r/no-such-replica/v1/chat/completions", 404),
        ("GET", "/r/no-such-replica/v1/models", 404),
        ("GET", "/v2/everything", 404),
        ("GET", "/v1/chat/completions", 405),
    ],
)
def test_unknown_paths_are_openai_shaped(sim, method, path, status):
    response = httpx.request(
        method, sim.base_url + path, json={"model": "sim-large", "messages": OK}
    )
    _assert_openai_error(response, status)


def test_bad_stream_usage_header_is_a_400(sim):
    response = httpx.post(
        f"{sim.base_url}/v1/chat/completions",
        json={"model": "sim-large", "messages": OK},
        headers={"x-sim-stream-usage": "sometimes"},
    )
    assert _assert_openai_error(response, 400)["param"] == "x-sim-stream-usage"
    assert response.headers["x-sim-replica"]  # chosen before the header was rejected
