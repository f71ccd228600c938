"""Echoed secrets: a server quoting the API key never gets it into an error, a row or a log;
credentials in a base_url are refused at load; the HTTP client's per-request lines are quiet."""

from __future__ import annotations

import logging
import traceback

import pytest
from hostile_server import hostile_server

from spendgraph.providers import ChatRequest, NoEndpointAvailable
from spendgraph.providers.config import parse_config
from spendgraph.providers.endpoint import Endpoint
from spendgraph.providers.errors import AuthenticationFailed, ConfigError, EndpointError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.redact import REDACTED, Redactor

# Not shaped like any provider's key: only the "known key" net can catch it bare.
PLAIN_KEY = "Q7fzK2mWp9xLr4TnB8vC"
OPENAI_KEY = "sk-proj-hostileTEST0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hello"}]


def config_text(url: str, *, timeout: str = "5") -> str:
    return f"""
[routing]
max_retries = 0

[[endpoints]]
name = "echoing"
base_url = "{url}"
model = "m"
serves = ["default"]
api_key_env = "HOSTILE_KEY"
timeout_s = {timeout}
"""


@pytest.fixture(scope="module")
def hostile():
    with hostile_server() as server:
        yield server


# -- the redactor ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Incorrect API key provided: {PLAIN_KEY}.", f"Incorrect API key provided: {REDACTED}."),
        (f"key {PLAIN_KEY[:10]}****{PLAIN_KEY[-4:]} is invalid", f"key {REDACTED} is invalid"),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("got sk-live-0123456789 from you", f"got {REDACTED} from you"),
        ("nvapi-abcdefghijkl and hf_abcdefghijklmnop", f"{REDACTED} and {REDACTED}"),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {REDACTED}"),
        ("no secrets in a basic message", "no secrets in a basic message"),
    ],
)
def test_the_redactor_scrubs_known_keys_and_credential_shapes(text, expected):
    assert Redactor([PLAIN_KEY, "not-needed"]).scrub(text) == expected


def test_the_no_auth_placeholder_is_not_a_secret():
    assert Redactor(["not-needed"]).scrub("not-needed") == "not-needed"


# -- echoed by a server --------------------------------------------------------


async def run_query(hostile, mode: str, key: str, ledger, stream: bool):
    """A query whose one call fails with the server echoing ``key``; returns (error, query id)."""
    env = {"HOSTILE_KEY": key}
    config = parse_config(config_text(hostile.url(mode)), source="test.toml", env=env)
    layer = ProviderLayer(config, ledger, env=env)
    query_id = None
    try:
        with pytest.raises((EndpointError, NoEndpointAvailable)) as raised:
            async with layer.query() as scope:
                query_id = scope.id
                request = ChatRequest(messages=MESSAGES, max_tokens=4)
                if stream:
                    async with layer.stream(request) as chunks:
                        async for _ in chunks:
                            pass
                else:
                    await layer.chat(request)
    finally:
        await layer.aclose(close_ledger=False)
    ledger.flush()
    return raised.value, query_id


def leaks(key: str, *texts: str) -> list[str]:
    return [text for text in texts if key in text or key[:10] in text]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("mode", "key", "kinds"),
    [
        ("echo_401", OPENAI_KEY, ("auth", "auth")),
        ("echo_500", PLAIN_KEY, ("server_error", "server_error")),
        ("echo_html_500", PLAIN_KEY, ("server_error", "server_error")),
        ("echo_bare_401", PLAIN_KEY, ("auth", "auth")),
        ("echo_masked_401", PLAIN_KEY, ("auth", "auth")),
        # a 200 with an error object (plain), an error event in a 200 stream
        ("error_event", OPENAI_KEY, ("bad_response", "server_error")),
    ],
)
async def test_an_echoed_key_reaches_no_error_row_or_log(
    hostile, ledger, caplog, mode, key, kinds, stream
):
    caplog.set_level(logging.DEBUG)
    error, query_id = await run_query(hostile, mode, key, ledger, stream)
    summary = ledger.query_summary(query_id)
    (row,) = ledger.calls_for_query(query_id)
    logged = [record.getMessage() for record in caplog.records]
    logged += [caplog.text]
    assert not leaks(
        key,
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),  # chained causes included
        summary.query.error or "",
        *(str(a) for a in getattr(error, "attempts", ())),
        *logged,
    )
    assert summary.query.error and REDACTED in summary.query.error  # scrubbed, not dropped
    assert row.error_kind == kinds[stream]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_stored_text_keeps_no_key_the_server_echoed_or_the_user_pasted(
    hostile, ledger, stream
):
    env = {"HOSTILE_KEY": OPENAI_KEY}
    config = parse_config(config_text(hostile.url("echo_answer")), source="test.toml", env=env)
    layer = ProviderLayer(config, ledger, env=env)
    pasted = [{"role": "user", "content": f"my key is {OPENAI_KEY}, is it valid?"}]
    try:
        async with layer.query(store_text=True) as scope:
            request = ChatRequest(messages=pasted, max_tokens=16)
            if stream:
                async with layer.stream(request) as chunks:
                    async for _ in chunks:
                        pass
            else:
                await layer.chat(request)
    finally:
        await layer.aclose(close_ledger=False)
    ledger.flush()
    (row,) = ledger.calls_for_query(scope.id)
    assert not leaks(OPENAI_KEY, row.prompt_text, row.completion_text)
    assert REDACTED in row.prompt_text and REDACTED in row.completion_text
    assert row.completion_text.endswith("\ufffd -- done.")  # NUL kept as U+FFFD, row written


async def test_an_auth_failure_still_says_what_went_wrong(hostile, ledger):
    error, _ = await run_query(hostile, "echo_401", OPENAI_KEY, ledger, stream=False)
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith(
        "endpoint 'echoing': HTTP 401: Incorrect API key provided: Bearer "
    )


# -- credentials in URLs, client logs ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("http://admin:hunter2secret@127.0.0.1:8000/v1", {}),
        ("${PROXY_URL}", {"PROXY_URL": "https://admin:hunter2secret@127.0.0.1/v1"}),
        ("http://hunter2secret@127.0.0.1/v1", {}),
    ],
)
def test_credentials_in_a_base_url_are_refused_without_echoing_them(url, env):
    text = config_text(url).replace('api_key_env = "HOSTILE_KEY"\n', "")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="mine.toml", env=env)
    message = str(raised.value)
    assert message.startswith("mine.toml, key 'endpoints[0] (echoing).base_url': credentials")
    assert "api_key_env" in message and "hunter2secret" not in message


async def test_the_http_client_logs_no_line_per_request(hostile, caplog):
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.NOTSET)  # as in a program that never set them
    caplog.set_level(logging.INFO)
    config = parse_config(config_text(hostile.url("ok")), env={"HOSTILE_KEY": PLAIN_KEY})
    endpoint = Endpoint(config.endpoints[0], env={"HOSTILE_KEY": PLAIN_KEY})
    try:
        await endpoint.complete({"model": "m", "messages": MESSAGES})
    finally:
        await endpoint.aclose()
    client_lines = [r for r in caplog.records if r.name.startswith(("httpx", "openai"))]
    assert not [r for r in client_lines if r.levelno >= logging.INFO]


def test_a_log_level_the_program_chose_is_kept():
    logger = logging.getLogger("httpx2")
    logger.setLevel(logging.DEBUG)
    try:
        config = parse_config(config_text("http://127.0.0.1:9/v1"), env={"HOSTILE_KEY": "k" * 8})
        Endpoint(config.endpoints[0], env={"HOSTILE_KEY": "k" * 8})
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(logging.NOTSET)
