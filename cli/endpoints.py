"""``spendgraph endpoints``: the configured endpoints, and whether they answer.

``list`` shows what the config says (pool, hardware, precision, engine,
model, served tiers, prices, concurrency); ``check`` probes each endpoint
(see :mod:`.endpoints_check`; probes are not recorded in the ledger);
``calibrate`` measures throughput and derives prices from GPU $/hour (see
:mod:`.endpoints_calibrate`; its calls are recorded).
"""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import endpoints_calibrate
from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.endpoints_check import CheckResult, check_all, result_json
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.calibrate import CalibrationPlan
from spendgraph.providers.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    EndpointConfig,
    SpendgraphConfig,
    example_config_path,
    load_config,
)
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

app = typer.Typer(help="List the configured endpoints, check that they answer, calibrate prices.")


def require_config(path: Path | None) -> SpendgraphConfig:
    """The config, or a :class:`CommandError` saying where one comes from and how to try one."""
    config = load_config(path)
    if config is None:
        raise CommandError(
            f"no config found: pass --config FILE, set {CONFIG_ENV}, or create "
            f"./{DEFAULT_CONFIG_NAME}. To try spendgraph on simulated GPUs, run "
            f"`spendgraph serve sim` and pass --config {example_config_path()}"
        )
    return config


@app.command("list")
def list_endpoints(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Configured endpoints: pool, hardware, precision, engine, model, tiers, prices."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        loaded = require_config(config)
    if out.json_mode:
        out.emit_json(
            {"config": loaded.source, "endpoints": [endpoint_json(e) for e in loaded.endpoints]}
        )
        return
    out.print(endpoints_table(out.console, loaded))
    out.print(
        "prices: USD per 1M tokens of uncached input, cached input and output "
        "(unknown: never counted as $0); conc.: max concurrent requests",
        highlight=False,
    )


@app.command("check")
def check(
    config: ConfigOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each request.")
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Call every endpoint at once (model list + one tiny streamed completion).

    Reports reachability, whether the model is served, and the time to first
    token. Exit code 1 if any endpoint fails. Not recorded in the ledger.
    """
    out = Output(json_mode=as_json)
    with handled_errors(out):
        loaded = require_config(config)
        results = asyncio.run(check_all(loaded.endpoints, timeout_s=timeout))
    if out.json_mode:
        out.emit_json(
            {
                "config": loaded.source,
                "ok": all(result.ok for result in results),
                "endpoints": [
                    result_json(result, endpoint)
                    for result, endpoint in zip(results, loaded.endpoints, strict=True)
                ],
            }
        )
    else:
        out.print(check_table(out.console, loaded, results))
    failed = [result.name for result in results if not result.ok]
    if failed:
        out.error(f"{len(failed)} of {len(results)} endpoint(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("calibrate")
def calibrate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Endpoints to measure (default: all).")
    ] = None,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    requests: Annotated[int, typer.Option("--requests", min=1, help="Requests per phase.")] = 16,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")
    ] = 4,
    prompt_tokens: Annotated[
        int, typer.Option("--prompt-tokens", min=16, help="Prompt length of the prefill phase.")
    ] = 2000,
    output_tokens: Annotated[
        int, typer.Option("--output-tokens", min=1, help="Tokens to generate per decode request.")
    ] = 256,
    gpu_hour_usd: Annotated[
        Decimal | None,
        typer.Option(
            "--gpu-hour-usd",
            min=0,
            help="What the endpoint's GPUs cost per hour (default: config).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure prefill and decode throughput, and the price they imply at a GPU's $/hour.

    Prints a `price = { gpu_hour_usd, input_tokens_per_s, output_tokens_per_s }`
    line per endpoint to paste into the config. The requests are real calls,
    recorded in the ledger under one `spendgraph-calibrate` query per endpoint.
    """
    out = Output(json_mode=as_json)
    plan = CalibrationPlan(requests, concurrency, prompt_tokens, output_tokens)
    with handled_errors(out):
        loaded = require_config(config)
        chosen = endpoints_calibrate.selected(loaded, names or [])
        measured = asyncio.run(_calibrate(loaded, ledger, chosen, plan, gpu_hour_usd))
    if out.json_mode:
        out.emit_json(
            {
                "config": loaded.source,
                "plan": dataclasses.asdict(plan),
                "endpoints": [endpoints_calibrate.measured_json(item) for item in measured],
            }
        )
        return
    out.print(endpoints_calibrate.calibration_table(out.console, measured, plan))
    snippets = endpoints_calibrate.toml_snippets(measured)
    if snippets:
        out.print("Paste into each endpoint's table in the config:", highlight=False)
        out.print(snippets, highlight=False, markup=False, soft_wrap=True)
    if any(item.gpu_hour_usd is None for item in measured):
        out.print(
            "No price for endpoints without a GPU rate: pass --gpu-hour-usd "
            "or set price.gpu_hour_usd in the config.",
            highlight=False,
        )


async def _calibrate(
    config: SpendgraphConfig,
    ledger_url: str | None,
    endpoints: list[EndpointConfig],
    plan: CalibrationPlan,
    gpu_hour_usd: Decimal | None,
) -> list[endpoints_calibrate.Measured]:
    layer = ProviderLayer(config, Ledger.open(ledger_url or config.ledger.url))
    try:
        return await endpoints_calibrate.measure_all(layer, endpoints, plan, gpu_hour_usd)
    finally:
        await layer.aclose()


def endpoint_json(endpoint: EndpointConfig) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "pool": endpoint.pool,
        "base_url": endpoint.base_url,
        "model": endpoint.model,
        "serves": list(endpoint.serves),
        "hardware": endpoint.hardware or None,
        "precision": endpoint.precision or None,
        "engine": endpoint.engine or None,
        "price_per_million": fmt.price_json(endpoint.resolved_price()),
        "max_concurrency": endpoint.max_concurrency,
        "timeout_s": endpoint.timeout_s,
        "tags": list(endpoint.tags),
    }


def endpoints_table(console: Console, config: SpendgraphConfig) -> Table:
    # drop: which columns go first when the terminal is narrow (prices never do).
    columns = [
        Col("name"),
        Col("pool"),
        Col("hardware (engine)"),
        Col("model", drop=3),
        Col("serves", drop=1),
        # Three narrow price columns wrap less than one "a / b / c" column.
        Col("$/1M in", number=True),
        Col("cached", number=True),
        Col("out", number=True),
        Col("conc.", number=True, drop=2),
    ]
    rows = []
    for endpoint in config.endpoints:
        price = endpoint.resolved_price()
        rates = (price.input_uncached, price.input_cached, price.output)
        rows.append(
            (
                fmt.label(endpoint.name),
                fmt.label(endpoint.pool),
                fmt.label(_hardware(endpoint)),
                fmt.label(endpoint.model),
                # One tier per line: the column stays as narrow as the longest name.
                fmt.label("\n".join(endpoint.serves)),
                *(fmt.rate(value, dollar="") for value in rates),
                str(endpoint.max_concurrency) if endpoint.max_concurrency else "none",
            )
        )
    return fitted_table(console, f"Endpoints in {fmt.label(config.source)}", columns, rows)


def _hardware(endpoint: EndpointConfig) -> str:
    """``B200 nvfp4 (trtllm)``."""
    where = " ".join(part for part in (endpoint.hardware, endpoint.precision) if part)
    return f"{where} ({endpoint.engine})" if endpoint.engine else where


def check_table(console: Console, config: SpendgraphConfig, results: list[CheckResult]) -> Table:
    columns = [
        Col("endpoint"),
        Col("model", drop=2),
        Col("reachable"),
        Col("model served", drop=3),
        Col("TTFT", number=True),
        Col("latency", number=True, drop=1),
        Col("result"),
    ]
    rows = [_check_row(result) for result in results]
    title = f"Endpoint check ({fmt.label(config.source)}; not recorded in the ledger)"
    return fitted_table(console, title, columns, rows)


def _check_row(result: CheckResult) -> tuple[str, ...]:
    outcome = "[green]OK[/]" if result.ok else f"[red]FAIL[/] {fmt.label(result.error_kind)}"
    if result.error:
        outcome += f": {fmt.label(result.error)}"
    return (
        fmt.label(result.name),
        fmt.label(result.model),
        "yes" if result.reachable else "[red]no[/]",
        {True: "yes", False: "no", None: "?"}[result.model_served],
        fmt.millis(result.ttft_ms),
        fmt.millis(result.latency_ms),
        outcome,
    )
