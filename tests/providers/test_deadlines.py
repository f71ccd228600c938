"""Wall-clock deadlines: per attempt (a whole answer, a stream's first token, its silences, its
cap) and per call across retries and fallbacks, against servers that trickle or never end.

Timing assertions are generous upper bounds (a few times the deadline): what matters is
that control comes back at all -- before these limits a trickling body held the caller
for as long as the server liked.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hostile_server import ANSWER, hostile_server
from transports import both_transports

from spendgraph.providers import ChatRequest, NoEndpointAvailable, StreamCut
from spendgraph.providers.config import RoutingConfig, parse_config
from spendgraph.providers.errors import ConfigError, EndpointError, EndpointTimeout, StreamTimeout
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.responses import Watchdog

MESSAGES = [{"role": "user", "content": "Take your time."}]
FAST_BACKOFF = "backoff_initial_s = 0.01\nbackoff_max_s = 0.01\n"


def entry(name: str, url: str, *, price: str = "0.1", extra: str = "timeout_s = 1") -> str:
    return f"""
[[endpoints]]
name = "{name}"
base_url = "{url}"
model = "m"
serves = ["default"]
price = {{ input = {price}, cached_input = {price}, output = {price} }}
{extra}
"""


def routing(max_retries: int = 0, extra: str = "") -> str:
    return f"[routing]\nmax_retries = {max_retries}\n{FAST_BACKOFF}{extra}\n"


# Every case must hold on both HTTP clients (their timeouts and errors differ).
http_transport = both_transports()


@pytest.fixture(scope="module")
def hostile():
    with hostile_server(trickle_s=1.0) as server:
        yield server


async def timed_call(layer: ProviderLayer, stream: bool):
    """One call in a query: (result or error, seconds it held the caller, the query's rows)."""
    request = ChatRequest(messages=MESSAGES, max_tokens=16)
    started = time.perf_counter()
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
        except (EndpointError, NoEndpointAvailable) as exc:
            outcome = exc
    held = time.perf_counter() - started
    layer.ledger.flush()
    rows = sorted(layer.ledger.calls_for_query(scope.id), key=lambda r: r.started_at)
    return outcome, held, rows


STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@STREAMS
async def test_a_trickled_body_times_out_at_timeout_s(make_layer, hostile, stream):
    layer = make_layer(routing() + entry("slow", hostile.url("trickle")))
    error, held, (row,) = await timed_call(layer, stream)
    assert held < 3 * 1.0, f"held the caller {held:.1f} s for timeout_s = 1"
    assert isinstance(error.attempts[0], EndpointTimeout)
    assert (row.status, row.error_kind) == (CallStatus.ERROR, "timeout")
    what = "no first token" if stream else "no complete answer"
    assert f"{what} within 1 s" in str(error)


async def test_a_stream_that_never_ends_is_cut_at_its_cap(make_layer, hostile):
    layer = make_layer(
        routing()
        + entry("endless", hostile.url("endless"), extra="timeout_s = 1\nstream_timeout_s = 2")
    )
    error, held, (row,) = await timed_call(layer, stream=True)
    assert held < 3 * 2.0
    # Tokens had reached the caller: a timeout that is also a cut stream, never retried.
    assert isinstance(error, StreamTimeout) and "did not finish within 2 s" in str(error)
    assert (row.status, row.error_kind) == (CallStatus.ERROR, "timeout")
    assert row.ttft_ms is not None and row.usage.output > 0  # what arrived is counted


async def test_a_stream_far_past_its_max_tokens_is_cut_long_before_its_cap(make_layer, hostile):
    layer = make_layer(routing() + entry("endless", hostile.url("endless")))
    request = ChatRequest(messages=MESSAGES, max_tokens=4)
    started = time.perf_counter()
    async with layer.query() as scope:
        with pytest.raises(StreamCut) as raised:
            async with layer.stream(request) as chunks:
                async for _ in chunks:
                    pass
    # A chunk of text a tenth of a second: 2 x 4 + 16 of them, then the cut.
    assert time.perf_counter() - started < 3 * 2.4
    assert "for max_tokens = 4 and did not stop" in str(raised.value)
    layer.ledger.flush()
    (row,) = layer.ledger.calls_for_query(scope.id)
    assert row.error_kind == "stream_cut" and row.usage.output > 0


async def test_a_stream_that_goes_silent_after_its_first_token_times_out(make_layer, hostile):
    layer = make_layer(routing() + entry("silent", hostile.url("silent_after_first")))
    error, held, (row,) = await timed_call(layer, stream=True)
    assert held < 3 * 1.0
    assert isinstance(error, StreamTimeout) and "went silent for 1 s" in str(error)
    assert row.error_kind == "timeout" and row.usage.output > 0


async def test_a_stream_without_any_token_times_out_and_falls_back(make_layer, hostile):
    layer = make_layer(
        routing(max_retries=2)
        + entry("mute", hostile.url("no_token"), price="0.01")
        + entry("steady", hostile.url("ok"), price="0.2")
    )
    result, held, rows = await timed_call(layer, stream=True)
    assert result.content == ANSWER and held < 3 * 1.0
    # A timeout goes to the next candidate at once: no retry of the hung endpoint.
    assert [(r.endpoint.name, r.error_kind) for r in rows] == [
        ("mute", "timeout"),
        ("steady", None),
    ]


@STREAMS
async def test_a_hung_endpoint_falls_back_within_one_timeout(make_layer, hostile, stream):
    layer = make_layer(
        routing(max_retries=2)
        + entry("hung", hostile.url("trickle"), price="0.01")
        + entry("steady", hostile.url("ok"), price="0.2")
    )
    result, held, rows = await timed_call(layer, stream)
    assert result.content == ANSWER and held < 3 * 1.0
    assert [(r.endpoint.name, r.status) for r in rows] == [
        ("hung", CallStatus.ERROR),
        ("steady", CallStatus.OK),
    ]


@STREAMS
async def test_retries_stop_at_the_calls_deadline(make_layer, hostile, stream):
    # The last candidate is retried after a timeout -- but only while the call has time.
    layer = make_layer(
        routing(max_retries=10, extra="call_timeout_s = 2.5")
        + entry("hung", hostile.url("trickle"))
    )
    error, held, rows = await timed_call(layer, stream)
    assert isinstance(error, NoEndpointAvailable)
    assert held < 3 * 2.5, f"held {held:.1f} s for call_timeout_s = 2.5"
    assert 2 <= len(rows) <= 4 and {r.error_kind for r in rows} == {"timeout"}
    assert "call_timeout_s" in str(error)


@STREAMS
async def test_the_calls_deadline_cuts_a_running_attempt(make_layer, hostile, stream):
    layer = make_layer(
        routing(extra="call_timeout_s = 1")
        + entry("slow", hostile.url("trickle"), extra="timeout_s = 30")
    )
    error, held, (row,) = await timed_call(layer, stream)
    assert held < 3 * 1.0
    assert row.error_kind == "timeout" and "call's deadline" in str(error)


async def test_waiting_for_a_slot_counts_against_the_calls_deadline(make_layer, hostile):
    layer = make_layer(
        routing(extra='call_timeout_s = 1.5\non_limit = "wait"')
        + entry("one-slot", hostile.url("trickle"), extra="timeout_s = 1\nmax_concurrency = 1")
    )
    started = time.perf_counter()
    first, second = await asyncio.gather(
        timed_call(layer, stream=False), timed_call(layer, stream=False)
    )
    assert time.perf_counter() - started < 3 * 1.5
    assert all(isinstance(outcome, NoEndpointAvailable) for outcome, _, _ in (first, second))
    assert layer.router.stats["one-slot"].in_flight == 0


async def test_the_watchdog_times_out_a_wait_but_passes_a_callers_cancel_on():
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop)
    try:
        assert await watchdog.wait(asyncio.sleep(0, "now"), loop.time() + 0.2) == "now"
        await asyncio.sleep(0.3)  # past that deadline, but between waits: nothing fires
        with pytest.raises(TimeoutError):
            await watchdog.wait(asyncio.sleep(5), loop.time() + 0.1)
        waiting = asyncio.create_task(watchdog.wait(asyncio.sleep(5), loop.time() + 5))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await watchdog.wait(asyncio.sleep(0.05, "later"), loop.time() + 1) == "later"
    finally:
        watchdog.close()


def test_the_defaults_bound_a_hung_endpoint_for_a_chat_user():
    config = parse_config(entry("a", "http://127.0.0.1:9/v1", extra=""), env={})
    (endpoint,) = config.endpoints
    assert endpoint.timeout_s == 20.0 and endpoint.stream_cap_s() == 300.0
    assert RoutingConfig().call_timeout_s == config.routing.call_timeout_s == 45.0


def test_a_stream_cap_below_the_first_token_limit_is_refused_by_name():
    text = entry("a", "http://127.0.0.1:9/v1", extra="timeout_s = 5\nstream_timeout_s = 1")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="mine.toml", env={})
    assert "mine.toml" in str(raised.value) and "stream_timeout_s (1) must be >=" in str(
        raised.value
    )
