"""200 answers that are not chat completions, unfinished streams, 408/409: typed errors, rows,
retries and fallbacks -- against a hostile stub server on loopback, streamed and not."""

from __future__ import annotations

import time

import pytest
from hostile_server import ANSWER, hostile_server
from transports import both_transports

from spendgraph.providers import ChatRequest, NoEndpointAvailable, StreamCut
from spendgraph.providers.errors import BadResponse, EndpointError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.responses import TRAILER_WAIT_S

MESSAGES = [{"role": "user", "content": "Say something."}]
NO_RETRY = "[routing]\nmax_retries = 0\n"
ONE_RETRY = "[routing]\nmax_retries = 1\nbackoff_initial_s = 0.01\nbackoff_max_s = 0.01\n"


def entry(name: str, url: str, *, price: str = "0.1", extra: str = "") -> str:
    return f"""
[[endpoints]]
name = "{name}"
base_url = "{url}"
model = "m"
serves = ["default"]
timeout_s = 5
price = {{ input = {price}, cached_input = {price}, output = {price} }}
{extra}
"""


# Every case must hold on both HTTP clients (their timeouts and errors differ).
http_transport = both_transports()


@pytest.fixture(scope="module")
def hostile():
    with hostile_server() as server:
        yield server


async def call(layer: ProviderLayer, stream: bool):
    """One call in a query; returns (result or the error raised, the query's rows)."""
    request = ChatRequest(messages=MESSAGES, max_tokens=16)
    outcome: object
    async with layer.query() as scope:
        try:
            if stream:
                async with layer.stream(request) as chunks:
                    async for _ in chunks:
                        pass
                outcome = chunks.result
            else:
                outcome = await layer.chat(request)
        except EndpointError as exc:
            outcome = exc
        except NoEndpointAvailable as exc:
            outcome = exc
    layer.ledger.flush()
    rows = sorted(layer.ledger.calls_for_query(scope.id), key=lambda r: r.started_at)
    return outcome, rows


STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@STREAMS
@pytest.mark.parametrize("mode", ["html", "invalid_json", "wrong_shape"])
async def test_a_200_that_is_no_chat_completion_is_a_bad_response(
    make_layer, hostile, mode, stream
):
    layer = make_layer(NO_RETRY + entry("only", hostile.url(mode)))
    error, rows = await call(layer, stream)
    assert isinstance(error, NoEndpointAvailable)  # the one endpoint is used up
    (cause,) = error.attempts
    assert isinstance(cause, BadResponse) and cause.retryable
    assert "HTTP 200" in str(error) or "chunk" in str(error)
    (row,) = rows
    assert (row.status, row.error_kind, row.stream) == (CallStatus.ERROR, "bad_response", stream)
    assert layer.router.stats["only"].in_flight == 0


async def test_a_proxy_page_is_quoted_without_its_markup(make_layer, hostile):
    layer = make_layer(NO_RETRY + entry("only", hostile.url("html")))
    error, _ = await call(layer, stream=True)
    message = str(error)
    assert "text/html instead of an event stream: 502 Bad Gateway" in message
    assert "<" not in message


async def test_a_non_streamed_body_cut_short_is_a_bad_response(make_layer, hostile):
    layer = make_layer(NO_RETRY + entry("only", hostile.url("no_finish")))
    error, (row,) = await call(layer, stream=False)
    assert isinstance(error.attempts[0], BadResponse)
    assert row.error_kind == "bad_response" and row.http_status == 200


async def test_a_stream_ending_without_its_finish_chunk_is_cut(make_layer, hostile):
    layer = make_layer(NO_RETRY + entry("only", hostile.url("no_finish")))
    error, (row,) = await call(layer, stream=True)
    # Its first token had reached the caller: not retried, the cut surfaces itself.
    assert isinstance(error, StreamCut) and "finish chunk" in str(error)
    assert (row.status, row.error_kind) == (CallStatus.ERROR, "stream_cut")
    assert row.usage.output > 0  # what arrived is counted, not dropped


@STREAMS
@pytest.mark.parametrize("mode", ["html", "invalid_json", "wrong_shape"])
async def test_a_bad_response_falls_back_to_the_next_endpoint(make_layer, hostile, mode, stream):
    layer = make_layer(
        NO_RETRY
        + entry("broken", hostile.url(mode), price="0.01")
        + entry("steady", hostile.url("ok"), price="0.2")
    )
    result, rows = await call(layer, stream)
    assert result.content == ANSWER
    assert [(r.endpoint.name, r.status, r.error_kind) for r in rows] == [
        ("broken", CallStatus.ERROR, "bad_response"),
        ("steady", CallStatus.OK, None),
    ]


async def test_a_stream_cut_before_its_first_token_falls_back(make_layer, hostile):
    # A stream whose only chunk has no choices: cut before any token reached the caller.
    layer = make_layer(
        NO_RETRY
        + entry("broken", hostile.url("wrong_shape"), price="0.01")
        + entry("steady", hostile.url("ok"), price="0.2")
    )
    result, rows = await call(layer, stream=True)
    assert result.content == ANSWER and [r.endpoint.name for r in rows] == ["broken", "steady"]


@STREAMS
async def test_a_transient_proxy_page_is_retried_on_the_same_endpoint(make_layer, hostile, stream):
    url = hostile.url("html", times=1)
    layer = make_layer(ONE_RETRY + entry("only", url))
    result, rows = await call(layer, stream)
    assert result.content == ANSWER and hostile.requests(url) == 2
    assert [(r.attempt, r.status, r.error_kind) for r in rows] == [
        (1, CallStatus.ERROR, "bad_response"),
        (2, CallStatus.OK, None),
    ]


@STREAMS
@pytest.mark.parametrize(("mode", "kind"), [("status_408", "timeout"), ("status_409", "conflict")])
async def test_408_and_409_are_retried(make_layer, hostile, mode, kind, stream):
    url = hostile.url(mode, times=1)
    layer = make_layer(ONE_RETRY + entry("only", url))
    result, rows = await call(layer, stream)
    assert result.content == ANSWER and hostile.requests(url) == 2
    assert [(r.status, r.error_kind, r.http_status) for r in rows] == [
        (CallStatus.ERROR, kind, int(mode[-3:])),
        (CallStatus.OK, None, None),
    ]


@pytest.mark.parametrize("mode", ["no_done", "finish_then_hang"])
async def test_a_stream_with_its_finish_chunk_is_whole_without_its_trailer(
    make_layer, hostile, mode
):
    # [DONE] and the usage chunk are the trailer: their absence costs a short wait at most.
    layer = make_layer(NO_RETRY + entry("only", hostile.url(mode)))
    started = time.perf_counter()
    result, (row,) = await call(layer, stream=True)
    assert time.perf_counter() - started < 3 * TRAILER_WAIT_S
    assert result.content == ANSWER and row.status is CallStatus.OK
