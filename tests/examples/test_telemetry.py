"""Each example app on the simulator, traced over OTLP/HTTP to a real receiver on loopback:
the exported span tree and metrics of a query agree with its ledger rows."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal

import pytest
from otlp_receiver import otlp_receiver
from trace_checks import check_query_trace, check_tools, query_spans, text_attributes

from spendgraph.agents import ToolCallFinished
from spendgraph.examples import clinical_scribe, dungeon, research_chat, voice_support
from spendgraph.graph import RunFinished, stream_graph
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.telemetry import names as n
from spendgraph.providers.telemetry.config import TelemetryConfig

APPS = {
    "clinical_scribe": clinical_scribe.APP,
    "dungeon": dungeon.APP,
    "research_chat": research_chat.APP,
    "voice_support": voice_support.APP,
}


@pytest.fixture(scope="module")
def receiver():
    with otlp_receiver() as running:
        yield running


@pytest.fixture
async def traced(config, ledger, receiver):
    """A layer whose ``[telemetry]`` exports to the receiver (metrics only at shutdown)."""
    url, received = receiver
    received.clear()
    table = TelemetryConfig(endpoint=url, metric_export_interval_s=3600)
    layer = ProviderLayer(config.model_copy(update={"telemetry": table}), ledger, env={})
    yield layer, received
    await layer.aclose(close_ledger=False)


@pytest.mark.parametrize("name", sorted(APPS))
async def test_the_trace_of_a_query_is_its_ledger(name, traced, ledger):
    layer, received = traced
    app = APPS[name]
    events = [
        e async for e in stream_graph(app.build(), layer, app.samples[0], options=app.run_options())
    ]
    result = events[-1].result
    assert isinstance(events[-1], RunFinished)
    await asyncio.to_thread(layer.telemetry.shutdown)  # exports spans and metrics now
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert rows

    all_spans, points = received.snapshot()
    spans = query_spans(all_spans, result.query_id)
    check_query_trace(spans, rows, app=name)
    check_tools(spans, [e.name for e in events if isinstance(e, ToolCallFinished)])
    assert {s.service for s in spans} == {"spendgraph"}
    assert text_attributes(spans) == set()  # no app here stores text by default

    # Metrics: the same sums, on attributes of few values (no query, thread or call ids).
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for point in points:
        assert set(point.attributes) <= n.METRIC_ATTRIBUTES, point
        key = point.attributes.get(n.TOKEN_TYPE, "")
        sums[point.metric, key] += point.value
        if point.metric == n.METRIC_OPERATION_DURATION:
            assert point.unit == "s"
    assert sums[n.METRIC_TOKEN_USAGE, "input"] == sum(r.usage.prompt_tokens for r in rows)
    assert sums[n.METRIC_TOKEN_USAGE, "output"] == sum(r.usage.output for r in rows)
    cost = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    assert sums[n.METRIC_COST, ""] == pytest.approx(float(cost), rel=1e-9)
    durations = [p for p in points if p.metric == n.METRIC_OPERATION_DURATION]
    assert sum(p.count for p in durations) == len(rows)
    assert all(p.attributes[n.APP] == name for p in durations)


async def test_text_reaches_spans_only_when_the_query_stores_it(traced, ledger):
    layer, received = traced
    app = research_chat.APP
    options = app.run_options(store_text=True)
    events = [e async for e in stream_graph(app.build(), layer, app.samples[0], options=options)]
    result = events[-1].result
    await asyncio.to_thread(layer.telemetry.shutdown)
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    spans = query_spans(received.snapshot()[0], result.query_id)
    check_query_trace(spans, rows, app="research_chat")
    chats = [s for s in spans if s.attributes.get(n.OPERATION_NAME) == n.OP_CHAT]
    assert all(n.INPUT_MESSAGES in s.attributes for s in chats)
    assert {n.INPUT_MESSAGES, n.OUTPUT_MESSAGES, n.TOOL_CALL_ARGUMENTS} <= text_attributes(spans)
    assert app.samples[0] in chats[0].attributes[n.INPUT_MESSAGES]
