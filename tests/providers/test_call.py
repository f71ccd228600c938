"""One logical call owns its attempts: retries and fallbacks, plain and streamed."""

from __future__ import annotations

import pytest
from sim_faults import FAST_RETRY, fault

from spendgraph.providers import ChatRequest, StreamCut
from spendgraph.providers.ledger.records import CallStatus

MESSAGES = [{"role": "user", "content": "Tell me about one call and its attempts."}]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_result_holds_every_attempt_of_the_call_in_order(
    make_layer, endpoint_toml, ledger, stream
):
    layer = make_layer(FAST_RETRY + endpoint_toml("only", "b200-nvfp4-0"))
    request = ChatRequest(
        messages=MESSAGES, max_tokens=8, extra_headers=fault("status=503;times=2")
    )
    async with layer.query() as scope:
        if stream:
            async with layer.stream(request) as chunks:
                parts = [c.choices[0].delta.content async for c in chunks if c.choices]
            text = "".join(p or "" for p in parts)
            result = chunks.result
        else:
            result = await layer.chat(request)
            text = result.content
    assert text and result.content == text
    assert [(a.attempt, a.status, a.stream) for a in result.attempts] == [
        (1, CallStatus.ERROR, stream),
        (2, CallStatus.ERROR, stream),
        (3, CallStatus.OK, stream),
    ]
    assert len({a.request_id for a in result.attempts}) == 1
    ledger.flush()
    rows = sorted(ledger.calls_for_query(scope.id), key=lambda r: r.attempt)
    assert [r.id for r in rows] == [a.id for a in result.attempts]
    assert scope.spend.calls == 3 and scope.spend.failed == 2


async def test_a_stream_failing_before_its_first_token_falls_back(
    make_layer, endpoint_toml, ledger
):
    layer = make_layer(
        "[routing]\nmax_retries = 0\n"
        + endpoint_toml("flaky", "b200-nvfp4-0")
        + endpoint_toml("steady", "h200-fp8-0")
    )
    # The fault header goes to every endpoint, so it fires once only: the
    # first endpoint tried takes it, the fallback answers.
    request = ChatRequest(
        messages=MESSAGES, max_tokens=8, extra_headers=fault("status=500;times=1")
    )
    async with layer.query(), layer.stream(request) as chunks:
        async for _ in chunks:
            pass
    first, second = chunks.result.attempts
    assert (first.status, first.http_status) == (CallStatus.ERROR, 500)
    assert second.status is CallStatus.OK and second.endpoint.name != first.endpoint.name
    assert layer.router.stats[first.endpoint.name].in_flight == 0
    assert layer.router.stats[second.endpoint.name].in_flight == 0


async def test_a_stream_cut_after_its_first_token_is_not_retried(make_layer, endpoint_toml, ledger):
    layer = make_layer(FAST_RETRY + endpoint_toml("only", "b200-nvfp4-0"))
    request = ChatRequest(messages=MESSAGES, max_tokens=32, extra_headers=fault("cut_after=3"))
    async with layer.query() as scope:
        with pytest.raises(StreamCut):
            async with layer.stream(request) as chunks:
                async for _ in chunks:
                    pass
    ledger.flush()
    (row,) = ledger.calls_for_query(scope.id)
    assert row.status is CallStatus.ERROR and row.error_kind == "stream_cut"
    assert layer.router.stats["only"].in_flight == 0
