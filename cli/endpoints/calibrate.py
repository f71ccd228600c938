"""``spendgraph endpoints calibrate``: measured throughput -> a price to paste into the config.

Each endpoint is measured on its own, one after another (endpoints of one
server would otherwise share its GPUs and each look slower). Every request is
a ledger row under one ``spendgraph-calibrate`` query per endpoint: calibrating
a paid endpoint spends money, and that spend is audited like any other.

``--sweep 1,4,16,64`` measures decode at each concurrency instead of one and
prices at the operating point: the highest throughput whose TTFT and
inter-token p95 meet ``--ttft-ms`` / ``--itl-ms`` (:mod:`.calibrate_sweep`
shows the curve). When no point meets them, no price is printed and the
command exits 1 after showing the curve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.endpoints import calibrate_sweep as view
from spendgraph.cli.endpoints.source import EndpointsSimOption, endpoints_config
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.calibrate import (
    Calibration,
    CalibrationPlan,
    LatencyTargets,
    PhaseResult,
    Sweep,
    calibrate,
    sweep,
    three_figures,
)
from spendgraph.providers.config import EndpointConfig, SpendgraphConfig
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.usage import Price


@dataclass(frozen=True, slots=True)
class Measured:
    """One endpoint's calibration and the price it implies at its GPU rate.

    ``sweep``: the concurrency sweep it was chosen from (``--sweep``).
    """

    endpoint: EndpointConfig
    calibration: Calibration
    gpu_hour_usd: Decimal | None
    sweep: Sweep | None = None

    @property
    def price(self) -> Price:
        return self.calibration.price(self.gpu_hour_usd)


def command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Endpoints to measure (default: all).")
    ] = None,
    config: ConfigOption = None,
    sim: EndpointsSimOption = False,
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
    sweep_at: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            help="Concurrencies to measure decode at, e.g. 1,4,16,64; the price is the "
            "fastest one's that meets --ttft-ms/--itl-ms (replaces --concurrency).",
        ),
    ] = None,
    ttft_ms: Annotated[
        float | None, typer.Option("--ttft-ms", min=0, help="TTFT p95 target (ms), with --sweep.")
    ] = None,
    itl_ms: Annotated[
        float | None,
        typer.Option("--itl-ms", min=0, help="Inter-token latency p95 target (ms), with --sweep."),
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
    targets = LatencyTargets(ttft_ms, itl_ms)
    with handled_errors(out):
        concurrencies = _concurrencies(sweep_at, targets)
    if concurrencies is not None:
        _sweep_command(
            out, _Run(config, sim, names or [], ledger, plan, gpu_hour_usd), concurrencies, targets
        )
        return
    with handled_errors(out), endpoints_config(config, sim) as loaded:
        chosen = selected(loaded, names or [])
        with _Progress(out, plan) as progress:
            measured = asyncio.run(
                _calibrate(loaded, ledger, chosen, plan, gpu_hour_usd, progress.endpoint)
            )
    if out.json_mode:
        out.emit_json(
            {
                "config": loaded.source,
                "plan": asdict(plan),
                "endpoints": [measured_json(item) for item in measured],
            }
        )
        return
    _print_calibrations(out, measured, plan)


def _print_calibrations(
    out: Output, measured: list[Measured], plan: CalibrationPlan, title: str | None = None
) -> None:
    if measured:
        out.print(calibration_table(out.console, measured, plan, title))
    snippets = toml_snippets(measured)
    if snippets:
        out.print("Paste into each endpoint's table in the config:", highlight=False)
        out.print(snippets, highlight=False, markup=False, soft_wrap=True)
    if any(item.gpu_hour_usd is None for item in measured):
        out.print(
            "No price for endpoints without a GPU rate: pass --gpu-hour-usd "
            "or set price.gpu_hour_usd in the config.",
            highlight=False,
        )


@dataclass(frozen=True, slots=True)
class _Run:
    """What one ``calibrate`` invocation measures, and where it records it."""

    config: Path | None
    sim: bool
    names: list[str]
    ledger: str | None
    plan: CalibrationPlan
    gpu_hour_usd: Decimal | None


def _concurrencies(sweep_at: str | None, targets: LatencyTargets) -> list[int] | None:
    if sweep_at is None:
        if targets != LatencyTargets():
            raise CommandError(
                "--ttft-ms and --itl-ms choose among the points of a sweep: add e.g. "
                "--sweep 1,4,16,64"
            )
        return None
    try:
        return view.parse_concurrencies(sweep_at)
    except ValueError as exc:
        raise CommandError(f"--sweep {sweep_at!r}: {exc}") from None


def _sweep_command(
    out: Output, run: _Run, concurrencies: list[int], targets: LatencyTargets
) -> None:
    """Sweep each endpoint, print the curves and the price at each operating point."""
    with handled_errors(out), endpoints_config(run.config, run.sim) as loaded:
        chosen = selected(loaded, run.names)
        with _Progress(out, run.plan, concurrencies) as progress:
            swept = asyncio.run(_sweep_all(loaded, run, chosen, concurrencies, targets, progress))
    measured = [m for item in swept if (m := item.measured()) is not None]
    if out.json_mode:
        out.emit_json(
            {
                "config": loaded.source,
                "plan": {**asdict(run.plan), "concurrency": None, "sweep": concurrencies},
                "endpoints": [swept_json(item) for item in swept],
            }
        )
    else:
        for item in swept:
            out.print(view.sweep_table(out.console, item.sweep, item.gpu_hour_usd))
            out.print(view.sweep_plot(item.sweep, item.gpu_hour_usd))
            out.print(view.verdict(item.sweep), highlight=False)
        title = (
            f"Calibration at each endpoint's operating point ({run.plan.prompt_tokens}-token "
            f"prompts, up to {run.plan.output_tokens} output tokens)"
        )
        _print_calibrations(out, measured, run.plan, title)
    unpriced = [item for item in swept if item.calibration is None]
    for item in unpriced:
        out.error(view.verdict(item.sweep))
    if unpriced:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class _Swept:
    """One endpoint's sweep, and its calibration at the chosen point (None: no price)."""

    endpoint: EndpointConfig
    sweep: Sweep
    gpu_hour_usd: Decimal | None

    @property
    def calibration(self) -> Calibration | None:
        return self.sweep.calibration

    def measured(self) -> Measured | None:
        if self.sweep.calibration is None:
            return None
        return Measured(self.endpoint, self.sweep.calibration, self.gpu_hour_usd, self.sweep)


async def _sweep_all(
    config: SpendgraphConfig,
    run: _Run,
    endpoints: list[EndpointConfig],
    concurrencies: list[int],
    targets: LatencyTargets,
    progress: _Progress,
) -> list[_Swept]:
    layer = ProviderLayer(config, Ledger.open(run.ledger or config.ledger.url))
    swept = []
    try:
        for index, endpoint in enumerate(endpoints, start=1):
            progress.endpoint(endpoint.name, index, len(endpoints))
            result = await sweep(layer, endpoint.name, run.plan, concurrencies, targets)
            swept.append(_Swept(endpoint, result, gpu_rate(endpoint, run.gpu_hour_usd)))
    finally:
        await layer.aclose()
    return swept


def swept_json(item: _Swept) -> dict[str, Any]:
    """An endpoint's sweep, and its calibration fields at the chosen point (null: none)."""
    measured = item.measured()
    if measured is not None:
        base = measured_json(measured)
    else:
        base = {
            "name": item.endpoint.name,
            "hardware": item.endpoint.hardware or None,
            "precision": item.endpoint.precision or None,
            "query_id": item.sweep.query_id,
            "prefill": None,
            "decode": None,
            "gpu_hour_usd": fmt.decimal_json(item.gpu_hour_usd),
            "price_per_million": None,
            "configured_price_per_million": fmt.price_json(item.endpoint.resolved_price()),
        }
    return {**base, "sweep": view.sweep_json(item.sweep, item.gpu_hour_usd)}


async def _calibrate(
    config: SpendgraphConfig,
    ledger_url: str | None,
    endpoints: list[EndpointConfig],
    plan: CalibrationPlan,
    gpu_hour_usd: Decimal | None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Measured]:
    layer = ProviderLayer(config, Ledger.open(ledger_url or config.ledger.url))
    try:
        return await measure_all(layer, endpoints, plan, gpu_hour_usd, progress)
    finally:
        await layer.aclose()


class _Progress:
    """A status line on stderr: which endpoint is being measured (seconds each)."""

    def __init__(self, out: Output, plan: CalibrationPlan, sweep: list[int] | None = None):
        self._plan = plan
        self._sweep = sweep
        self._status = out.errors.status("starting", spinner="dots")

    def __enter__(self) -> _Progress:
        self._status.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._status.__exit__(*exc_info)

    def endpoint(self, name: str, index: int, count: int) -> None:
        requests = self._plan.requests
        if self._sweep is not None:
            at = ", ".join(map(str, self._sweep))
            self._status.update(f"endpoint {index}/{count}: {name}, decode at {at} in flight")
            return
        self._status.update(
            f"endpoint {index}/{count}: {name}, {requests} prefill then {requests} decode "
            f"requests, {self._plan.concurrency} at a time"
        )


def gpu_rate(endpoint: EndpointConfig, override: Decimal | None) -> Decimal | None:
    """``--gpu-hour-usd`` if given, else the endpoint's configured ``gpu_hour_usd``."""
    if override is not None:
        return override
    return endpoint.price.gpu_hour_usd if endpoint.price is not None else None


async def measure_all(
    layer: ProviderLayer,
    endpoints: list[EndpointConfig],
    plan: CalibrationPlan,
    gpu_hour_usd: Decimal | None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Measured]:
    """Calibrate ``endpoints`` one at a time; ``progress(name, index, count)`` is told
    before each starts."""
    measured = []
    for index, endpoint in enumerate(endpoints, start=1):
        if progress is not None:
            progress(endpoint.name, index, len(endpoints))
        calibration = await calibrate(layer, endpoint.name, plan)
        measured.append(Measured(endpoint, calibration, gpu_rate(endpoint, gpu_hour_usd)))
    return measured


def selected(config: SpendgraphConfig, names: list[str]) -> list[EndpointConfig]:
    """The endpoints named (config order kept), or all of them; ConfigError for a bad name."""
    if not names:
        return list(config.endpoints)
    wanted = [config.endpoint(name) for name in names]
    return [endpoint for endpoint in config.endpoints if endpoint in wanted]


def calibration_table(
    console: Console, measured: list[Measured], plan: CalibrationPlan, title: str | None = None
) -> Table:
    columns = [
        Col("endpoint"),
        Col("hardware", drop=3),
        Col("prefill tok/s", number=True),
        Col("decode tok/s", number=True),
        Col("failed", number=True, drop=2),
        Col("$/GPU-h", number=True),
        Col("$/1M in", number=True),
        Col("cached", number=True),
        Col("out", number=True),
        Col("configured out", number=True, drop=1),
    ]
    rows = []
    for item in measured:
        calibration, price = item.calibration, item.price
        configured = item.endpoint.resolved_price().output
        rows.append(
            (
                fmt.label(item.endpoint.name),
                fmt.label(
                    " ".join(filter(None, (item.endpoint.hardware, item.endpoint.precision)))
                ),
                _rate_cell(calibration.prefill.tokens_per_s),
                _rate_cell(calibration.decode.tokens_per_s),
                str(calibration.prefill.failed + calibration.decode.failed),
                fmt.rate(item.gpu_hour_usd) if item.gpu_hour_usd is not None else "not set",
                *(_price_cell(v) for v in (price.input_uncached, price.input_cached)),
                _price_cell(price.output),
                fmt.rate(configured, dollar=""),
            )
        )
    title = title or (
        f"Calibration: {plan.requests} requests per phase, {plan.concurrency} at a time "
        f"({plan.prompt_tokens}-token prompts, up to {plan.output_tokens} output tokens)"
    )
    return fitted_table(console, title, columns, rows)


def toml_snippets(measured: list[Measured]) -> str:
    """The ``price`` line to paste for each endpoint that has a GPU rate."""
    lines = []
    for item in measured:
        if item.gpu_hour_usd is None:
            continue
        fields = [f"gpu_hour_usd = {item.gpu_hour_usd}"]
        for key, rate in (
            ("input_tokens_per_s", item.calibration.prefill.tokens_per_s),
            ("output_tokens_per_s", item.calibration.decode.tokens_per_s),
        ):
            if rate is not None:
                fields.append(f"{key} = {three_figures(rate):g}")
        lines.append(f"# {item.endpoint.name}\nprice = {{ {', '.join(fields)} }}")
    return "\n".join(lines)


def measured_json(item: Measured) -> dict[str, Any]:
    calibration = item.calibration
    return {
        "name": item.endpoint.name,
        "hardware": item.endpoint.hardware or None,
        "precision": item.endpoint.precision or None,
        "query_id": calibration.query_id,
        "prefill": _phase_json(calibration.prefill),
        "decode": _phase_json(calibration.decode),
        "gpu_hour_usd": fmt.decimal_json(item.gpu_hour_usd),
        "price_per_million": fmt.price_json(item.price),
        "configured_price_per_million": fmt.price_json(item.endpoint.resolved_price()),
    }


def _phase_json(phase: PhaseResult) -> dict[str, Any]:
    rate = phase.tokens_per_s
    return {
        "tokens": phase.tokens,
        "seconds": round(phase.seconds, 6),
        "failed": phase.failed,
        "tokens_per_s": three_figures(rate),
    }


def _price_cell(value: Decimal | None) -> str:
    """A derived rate to three significant figures (``~`` when rounded)."""
    if value is None or value == 0:
        return fmt.rate(value, dollar="")
    shown = Decimal(f"{value:.3g}")
    return f"{'~' if shown != value else ''}{shown:f}"


def _rate_cell(rate: float | None) -> str:
    return "n/a" if rate is None else f"{three_figures(rate):,.0f}"
