"""Leaving a stream early: the attempt's row and the endpoint slot never wait for the collector."""

from __future__ import annotations

import asyncio

import pytest

from spendgraph.providers import ChatRequest
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

MESSAGES = [{"role": "user", "content": "Write a long story about a cache that never misses."}]
QUERIES = 10


def _request() -> ChatRequest:
    return ChatRequest(messages=MESSAGES, max_tokens=200)


async def _rows_at_close(layer, ledger, leave) -> list:
    """Run ``leave(stream)`` inside a query; the rows committed when the close returned."""
    async with layer.query() as scope:
        await leave(layer.stream(_request()))
    # No flush: the close's acknowledgement must already cover the call's row.
    return ledger.calls_for_query(scope.id), ledger.query_summary(scope.id)


async def _leave_the_block_after_three_chunks(stream) -> None:
    async with stream as chunks:
        seen = 0
        async for _chunk in chunks:
            seen += 1
            if seen == 3:
                break


async def _break_a_bare_loop(stream) -> None:
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == 3:
            break


@pytest.mark.parametrize(
    "leave",
    [_leave_the_block_after_three_chunks, _break_a_bare_loop],
    ids=["async-with", "bare-for"],
)
async def test_a_stream_left_early_is_recorded_before_its_query_closes(
    make_layer, endpoint_toml, ledger, leave
):
    layer = make_layer(endpoint_toml("only", "b200-nvfp4-0"))
    for _ in range(QUERIES):
        rows, summary = await _rows_at_close(layer, ledger, leave)
        assert [(r.status, r.error_kind) for r in rows] == [(CallStatus.CANCELLED, "cancelled")]
        assert rows[0].usage.output > 0  # what arrived is counted
        assert summary.query.status is QueryStatus.OK
        assert layer.router.stats["only"].in_flight == 0


async def test_a_bare_loop_left_outside_any_query_gives_its_slot_back(
    make_layer, endpoint_toml, ledger
):
    layer = make_layer(endpoint_toml("only", "b200-nvfp4-0"))
    await _break_a_bare_loop(layer.stream(_request()))
    # The dropped stream is freed at once and asyncio closes its generator on
    # the next turns of the loop -- not whenever the cyclic collector runs.
    for _ in range(50):
        if layer.router.stats["only"].in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert layer.router.stats["only"].in_flight == 0
    await ledger.aflush()
    (row,) = [r for r in ledger.iter_calls() if r.query_id is None]
    assert row.status is CallStatus.CANCELLED
