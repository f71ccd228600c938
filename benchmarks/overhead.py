"""Provider-layer overhead: raw AsyncOpenAI vs spendgraph's ProviderLayer, same endpoint.

Starts the fleet simulator in a separate process, then runs the same chat
calls through (a) the raw ``openai.AsyncOpenAI`` client and (b) the provider
layer with routing, accounting and a SQLite ledger (each call returns only
after its row is committed). Rounds alternate between the two so machine
noise hits both alike. Time scale 0 is the worst case: the server answers at
once, so the client side is all there is; 0.1 gives calls of tens of
milliseconds, still far shorter than real model calls.

    python benchmarks/overhead.py --calls 400 --rounds 5 --time-scales 0,0.1

Reports median per-call latency at concurrency 1 and throughput at
concurrency 64, with ratios. Targets: overhead <= 10% at concurrency 1, and
>= 90% of the raw client's throughput at concurrency 64.

Telemetry: the layer column runs with nothing configured (the OpenTelemetry API's
no-op tracer). The same calls also run with telemetry on, exporting to a no-op
exporter, and exporting over OTLP/HTTP to a sink process on loopback; their
columns are ratios against the layer with telemetry off. Below the table, the
cost of the per-attempt hook alone (span and metrics of one ledger row), in µs.
Needs the ``otel`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
from rich.console import Console
from rich.table import Table

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.records import CallRecord, CallStatus, EndpointInfo
from spendgraph.providers.telemetry.recorder import Telemetry, current_context
from spendgraph.providers.telemetry.setup import exporting_telemetry
from spendgraph.providers.usage import Usage

REPLICA = "b200-nvfp4-0"
MODEL = "sim-large"
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant for a benchmark."},
    {"role": "user", "content": "Summarise why per-query cost accounting matters, briefly."},
]
MAX_TOKENS = 32


def start_simulator(port: int, time_scale: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "spendgraph.cli.main", "serve", "sim", "--port", str(port)]
    command += ["--time-scale", str(time_scale)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("simulator did not start")


@contextmanager
def running_simulator(time_scale: float) -> Iterator[str]:
    """The simulator in its own process for the block; yields its base URL."""
    port = free_port()
    process = start_simulator(port, time_scale)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def timed_calls(call, total: int, concurrency: int) -> tuple[list[float], float]:
    """Run ``total`` calls with ``concurrency`` workers; per-call latencies and wall time."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker():
        for _ in remaining:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def raw_call(client: openai.AsyncOpenAI, stream: bool):
    async def call():
        if not stream:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS
            )
            return
        chunks = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in chunks:
            pass

    return call


def layer_call(layer: ProviderLayer, stream: bool):
    request = ChatRequest(messages=MESSAGES, model=MODEL, max_tokens=MAX_TOKENS)

    async def call():
        if not stream:
            await layer.chat(request)
            return
        async with layer.stream(request) as chunks:
            async for _ in chunks:
                pass

    return call


CONFIG = """
[[endpoints]]
name = "bench"
base_url = "{url}/r/{replica}/v1"
model = "{model}"
hardware = "B200"
precision = "nvfp4"
engine = "sim"
price = {{ input = 0.02, cached_input = 0.005, output = 0.08 }}
"""


# -- telemetry ------------------------------------------------------------------

METRIC_EXPORT_S = 10.0  # metrics are read and exported this often while the layer runs


def telemetry_modes(sink_url: str) -> dict[str, Telemetry]:
    """Telemetry on: batched to a no-op exporter, and exported over OTLP/HTTP to the sink."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            return None

    return {
        "noop": exporting_telemetry(DropSpans(), DropMetrics(), export_interval_s=METRIC_EXPORT_S),
        "otlp": exporting_telemetry(
            OTLPSpanExporter(endpoint=f"{sink_url}/v1/traces"),
            OTLPMetricExporter(endpoint=f"{sink_url}/v1/metrics"),
            export_interval_s=METRIC_EXPORT_S,
        ),
    }


def run_otlp_sink(port: int) -> None:
    """An OTLP/HTTP endpoint that accepts and drops every payload (run in its own process)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def accept(request: Request) -> Response:
        await request.body()
        return Response(b"", media_type="application/x-protobuf")  # an empty Export*Response

    routes = [Route(path, accept, methods=["POST"]) for path in ("/v1/traces", "/v1/metrics")]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")


def start_sink(port: int) -> subprocess.Popen:
    command = [sys.executable, __file__, "--otlp-sink", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("OTLP sink did not start")


def hook_cost_us(telemetry: Telemetry, repeats: int) -> float:
    """Median µs of the per-attempt hook (one ledger row's span and metrics)."""
    record = CallRecord(
        EndpointInfo("bench", MODEL, "B200", "nvfp4", "sim"),
        CallStatus.OK,
        Usage(120, 40, 32),
        None,
        "v1",
        query_id="q" * 32,
        agent_path="writer",
        latency_ms=12.5,
        ttft_ms=3.0,
        stream=True,
    )
    parent = current_context()
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(repeats):
            telemetry.attempt(record, parent, app="bench", tier=MODEL, messages=MESSAGES)
        samples.append((time.perf_counter() - start) / repeats * 1e6)
        telemetry.flush()  # untimed: the batch queue (2048 spans) must not overflow
    return statistics.median(samples)


async def measure(
    url: str, calls: int, rounds: int, ledger_path: Path, sink_url: str
) -> list[tuple]:
    # The SDK's default retries, as a plain client would run (the layer retries too).
    client = openai.AsyncOpenAI(base_url=f"{url}/r/{REPLICA}/v1", api_key="x")
    config = parse_config(CONFIG.format(url=url, replica=REPLICA, model=MODEL), source="bench")
    ledger = Ledger.open(f"sqlite:///{ledger_path}")
    layer = ProviderLayer(config, ledger, env={})  # nothing configured: the no-op API
    traced = {
        mode: ProviderLayer(config, ledger, env={}, telemetry=telemetry)
        for mode, telemetry in telemetry_modes(sink_url).items()
    }
    rows = []
    for stream in (False, True):
        for concurrency in (1, 64):
            raw_runs, layer_runs = [], []
            traced_runs: dict[str, list] = {mode: [] for mode in traced}
            for _ in range(rounds):
                raw_runs.append(await timed_calls(raw_call(client, stream), calls, concurrency))
                layer_runs.append(await timed_calls(layer_call(layer, stream), calls, concurrency))
                for mode, on in traced.items():
                    run = await timed_calls(layer_call(on, stream), calls, concurrency)
                    traced_runs[mode].append(run)
            rows.append((stream, concurrency, raw_runs, layer_runs, traced_runs))
    await client.close()
    for on in traced.values():
        await on.aclose(close_ledger=False)
    await layer.aclose()
    return rows


def _median_ms(runs) -> float:
    return statistics.median(lat for run in runs for lat in run[0]) * 1000


def report(results: dict[float, list[tuple]], calls: int, hooks: dict[str, float]) -> None:
    """One row per (time scale, plain/stream, concurrency): medians and their ratios.

    The layer columns have telemetry off; ``otel noop``/``otel otlp`` are ratios of
    the layer with telemetry on (no-op exporter / OTLP export) against it."""
    table = Table(title="Provider layer vs raw AsyncOpenAI on the same simulator endpoint")
    columns = (
        "time scale",
        "mode",
        "conc.",
        "raw median ms",
        "layer median ms",
        "latency ratio",
        "raw calls/s",
        "layer calls/s",
        "throughput ratio",
        "otel noop lat.",
        "otel noop thr.",
        "otel otlp lat.",
        "otel otlp thr.",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for time_scale, rows in results.items():
        for stream, concurrency, raw_runs, layer_runs, traced_runs in rows:
            raw_median, layer_median = _median_ms(raw_runs), _median_ms(layer_runs)
            raw_rate = statistics.median(calls / run[1] for run in raw_runs)
            layer_rate = statistics.median(calls / run[1] for run in layer_runs)
            telemetry = []
            for mode in ("noop", "otlp"):
                runs = traced_runs[mode]
                rate = statistics.median(calls / run[1] for run in runs)
                telemetry += [f"{_median_ms(runs) / layer_median:.3f}", f"{rate / layer_rate:.3f}"]
            table.add_row(
                f"{time_scale:g}",
                "stream" if stream else "plain",
                str(concurrency),
                f"{raw_median:.2f}",
                f"{layer_median:.2f}",
                f"{layer_median / raw_median:.3f}",
                f"{raw_rate:.0f}",
                f"{layer_rate:.0f}",
                f"{layer_rate / raw_rate:.3f}",
                *telemetry,
            )
    console = Console(width=200)
    console.print(table)
    console.print(
        "per-attempt telemetry hook, median µs: "
        + ", ".join(f"{mode} {cost:.1f}" for mode, cost in hooks.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per cell")
    parser.add_argument("--time-scales", default="0,0.1", help="simulator time scales, a,b,...")
    parser.add_argument("--hook-repeats", type=int, default=2000, help="hook calls per sample")
    parser.add_argument("--otlp-sink", type=int, help=argparse.SUPPRESS)  # the sink process
    args = parser.parse_args()
    if args.otlp_sink:
        run_otlp_sink(args.otlp_sink)
        return
    sink_port = free_port()
    sink = start_sink(sink_port)
    sink_url = f"http://127.0.0.1:{sink_port}"
    results = {}
    try:
        hooks = {"off (no-op API)": hook_cost_us(Telemetry.from_global(), args.hook_repeats)}
        for mode, telemetry in telemetry_modes(sink_url).items():
            hooks[mode] = hook_cost_us(telemetry, args.hook_repeats)
            telemetry.shutdown()
        for time_scale in (float(value) for value in args.time_scales.split(",")):
            port = free_port()
            simulator = start_simulator(port, time_scale)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    url, ledger = f"http://127.0.0.1:{port}", Path(tmp) / "bench.db"
                    results[time_scale] = asyncio.run(
                        measure(url, args.calls, args.rounds, ledger, sink_url)
                    )
            finally:
                simulator.terminate()
                simulator.wait(10)
    finally:
        sink.terminate()
        sink.wait(10)
    report(results, args.calls, hooks)


if __name__ == "__main__":
    main()
