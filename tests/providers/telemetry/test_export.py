"""The provider layer's spans over OTLP/HTTP to a real receiver: one CLIENT span per ledger
row (retries and fallbacks as siblings, refusals too), configured by [telemetry] or OTEL_*."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from otlp_receiver import otlp_receiver
from sim_faults import FAST_RETRY, fault
from trace_checks import CLIENT, check_query_trace, query_spans, text_attributes

from spendgraph.providers import BudgetExceeded, ChatRequest, ConfigError, agent_scope
from spendgraph.providers.config import parse_config
from spendgraph.providers.telemetry import names as n
from spendgraph.providers.telemetry.config import TelemetryConfig
from spendgraph.providers.telemetry.setup import telemetry_for

MESSAGES = [{"role": "user", "content": "Trace this call and its attempts."}]


@pytest.fixture(scope="module")
def receiver():
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def collected(receiver):
    url, received = receiver
    received.clear()
    return url, received


def telemetry_table(url: str) -> str:
    return f'\n[telemetry]\nendpoint = "{url}"\nservice_name = "telemetry-test"\n'


async def exported(layer, received, query_id):
    await asyncio.to_thread(layer.telemetry.shutdown)
    return query_spans(received.snapshot()[0], query_id)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_retries_and_a_fallback_are_sibling_client_spans_like_their_rows(
    make_layer, endpoint_toml, ledger, collected, stream
):
    url, received = collected
    layer = make_layer(
        FAST_RETRY
        + endpoint_toml("flaky", "b200-nvfp4-0")
        + endpoint_toml("steady", "h200-fp8-0")
        + telemetry_table(url)
    )
    # Three failures: the first endpoint's attempt and its two retries; the fallback answers.
    request = ChatRequest(
        messages=MESSAGES, max_tokens=8, extra_headers=fault("status=503;times=3")
    )
    async with layer.query(app="calls", thread_id="t-1") as scope:
        with agent_scope("writer"):
            if stream:
                async with layer.stream(request) as chunks:
                    async for _ in chunks:
                        pass
            else:
                await layer.chat(request)
    spans = await exported(layer, received, scope.id)
    ledger.flush()
    rows = ledger.calls_for_query(scope.id)
    assert len(rows) == 4
    check_query_trace(spans, rows, app="calls", turns=False)
    chats = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.attributes[n.ATTEMPT])
    assert [s.attributes[n.ATTEMPT] for s in chats] == [1, 2, 3, 4]
    assert [s.status_code for s in chats] == [2, 2, 2, 0]  # error, error, error, unset
    assert [s.attributes.get(n.HTTP_STATUS) for s in chats[:3]] == [503] * 3
    assert all(n.ERROR_TYPE in s.attributes for s in chats[:3])
    assert len({s.attributes[n.ENDPOINT] for s in chats}) == 2  # the fallback
    assert len({s.parent_id for s in chats}) == 1  # siblings
    assert all(s.start_ns <= s.end_ns for s in chats)
    root = next(s for s in spans if not s.parent_id)
    assert root.attributes[n.CONVERSATION_ID] == "t-1"
    assert {s.service for s in spans} == {"telemetry-test"}
    assert text_attributes(spans) == set()


async def test_a_refused_call_has_its_span_as_it_has_its_row(
    make_layer, endpoint_toml, ledger, collected
):
    url, received = collected
    layer = make_layer(endpoint_toml("only", "b200-nvfp4-0") + telemetry_table(url))
    request = ChatRequest(messages=MESSAGES, max_tokens=512)
    with pytest.raises(BudgetExceeded):
        async with layer.query(app="tight", budget_usd="0.0000001") as scope:
            await layer.chat(request)
    spans = await exported(layer, received, scope.id)
    ledger.flush()
    rows = ledger.calls_for_query(scope.id)
    check_query_trace(spans, rows, app="tight", turns=False)
    (chat,) = [s for s in spans if s.kind == CLIENT]
    assert chat.attributes[n.CALL_STATUS] == "budget_denied"
    assert chat.attributes[n.ERROR_TYPE] == "budget"
    root = next(s for s in spans if not s.parent_id)
    assert root.attributes[n.QUERY_STATUS] == "budget_exhausted"


async def test_store_text_puts_the_prompt_and_completion_on_the_attempt_span(
    make_layer, endpoint_toml, ledger, collected
):
    url, received = collected
    layer = make_layer(endpoint_toml("only", "b200-nvfp4-0") + telemetry_table(url))
    pasted = {"role": "user", "content": "and my key: sk-proj-pastedTEST0123456789abcdef"}
    async with layer.query(app="kept", store_text=True) as scope:
        result = await layer.chat(ChatRequest(messages=[*MESSAGES, pasted], max_tokens=8))
    spans = await exported(layer, received, scope.id)
    (chat,) = [s for s in spans if s.kind == CLIENT]
    assert MESSAGES[0]["content"] in chat.attributes[n.INPUT_MESSAGES]
    assert result.content in chat.attributes[n.OUTPUT_MESSAGES]
    # Scrubbed like the ledger's text: a credential never reaches an exporter.
    assert "sk-proj-pasted" not in chat.attributes[n.INPUT_MESSAGES]


async def test_the_standard_otel_variables_configure_the_export(
    make_layer, endpoint_toml, ledger, collected
):
    url, received = collected
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_METRICS_EXPORTER": "none"}
    layer = make_layer(endpoint_toml("only", "b200-nvfp4-0"), env=env)
    assert not layer.telemetry.measuring
    async with layer.query(app="env") as scope:
        await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=8))
    spans = await exported(layer, received, scope.id)
    assert len([s for s in spans if s.kind == CLIENT]) == 1
    assert received.snapshot()[1] == []  # metrics were switched off


def test_without_an_endpoint_the_layer_records_through_the_global_no_op_api():
    telemetry = telemetry_for(TelemetryConfig(), env={})
    span = telemetry.tracer.start_span("probe")
    assert not span.is_recording() and not telemetry.measuring
    off = telemetry_for(
        TelemetryConfig(endpoint="http://127.0.0.1:9"), {"OTEL_SDK_DISABLED": "true"}
    )
    assert not off.tracer.start_span("probe").is_recording()
    assert not telemetry_for(
        TelemetryConfig(enabled=False, endpoint="http://127.0.0.1:9")
    ).measuring


def test_a_telemetry_endpoint_that_is_not_a_url_names_its_key():
    toml = """
[[endpoints]]
name = "e"
base_url = "http://127.0.0.1:1/v1"
model = "m"
[telemetry]
endpoint = "127.0.0.1:4318"
"""
    with pytest.raises(ConfigError, match=r"telemetry\.endpoint.*OTLP/HTTP base URL"):
        parse_config(toml, source="bad.toml", env={})


GLOBAL_PIPELINE = """
import asyncio, sys
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from spendgraph.providers import ChatRequest, ProviderLayer, parse_config
from spendgraph.providers.ledger import Ledger

receiver, toml, ledger = sys.argv[1:4]
spans = TracerProvider()
spans.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver + "/v1/traces")))
trace.set_tracer_provider(spans)
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=receiver + "/v1/metrics"))
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

async def main():
    layer = ProviderLayer(parse_config(toml, env={}), Ledger.open(ledger), env={})
    async with layer.query(app="global") as scope:
        await layer.chat(ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=4))
    await layer.aclose()
    print(scope.id)

asyncio.run(main())
spans.shutdown()
metrics.get_meter_provider().shutdown()
"""


def test_an_application_s_own_global_pipeline_gets_the_spans_and_metrics(
    sim, endpoint_toml, collected, tmp_path
):
    """What Logfire or opentelemetry-instrument set up: the global providers (in a child
    process, since a process sets them once)."""
    url, received = collected
    toml = endpoint_toml("only", "b200-nvfp4-0").replace("{sim}", sim.base_url)
    ledger = f"sqlite:///{tmp_path / 'global.db'}"
    args = [sys.executable, "-c", GLOBAL_PIPELINE, url, toml, ledger]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    query_id = done.stdout.split()[-1]
    spans = query_spans(received.snapshot()[0], query_id)
    assert sorted(s.name for s in spans) == ["chat sim-large", "invoke_workflow global"]
    assert {p.metric for p in received.snapshot()[1]} >= {n.METRIC_TOKEN_USAGE, n.METRIC_COST}
