"""How ``endpoints calibrate --sweep`` shows a concurrency sweep: a table, a plot, JSON.

The table has one row per concurrency (output throughput, tokens per GPU-dollar,
TTFT and inter-token latency p50/p95, whether it meets the targets, the output
price there); the plot puts throughput per GPU-dollar against TTFT p95 as bars,
so the knee where latency takes off is visible at a glance; then one line says
which point was chosen and why.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from spendgraph.cli import formats as fmt
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.calibrate import Percentiles, Sweep, SweepPoint, three_figures

BAR_WIDTH = 32


def parse_concurrencies(text: str) -> list[int]:
    """``"1,4,16,64"`` -> ``[1, 4, 16, 64]``; ValueError naming what is wrong."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"expected whole numbers >= 1 separated by commas, got {part!r}")
        values.append(int(part))
    if not values:
        raise ValueError("expected at least one concurrency")
    return sorted(set(values))


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _per_dollar(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def sweep_table(console: Console, sweep: Sweep, gpu_hour_usd: Decimal | None) -> Table:
    """One row per concurrency; the chosen one marked."""
    columns = [
        Col("in flight", number=True),
        Col("out tok/s", number=True),
        Col("tok per GPU-$", number=True),
        Col("TTFT p50 ms", number=True, drop=2),
        Col("TTFT p95 ms", number=True),
        Col("ITL p50 ms", number=True, drop=2),
        Col("ITL p95 ms", number=True),
        Col("failed", number=True, drop=3),
        Col("meets target"),
        Col("$/1M out", number=True, drop=1),
    ]
    chosen = sweep.operating_point.chosen
    rows = []
    for point in sweep.points:
        missed = sweep.targets.missed_by(point)
        meets = "no" if missed or point.decode.failed else "yes"
        mark = " <- chosen" if point is chosen else ""
        price = point.output_price(gpu_hour_usd)
        rows.append(
            (
                str(point.concurrency),
                "n/a" if point.tokens_per_s is None else f"{point.tokens_per_s:,.0f}",
                _per_dollar(point.tokens_per_gpu_dollar(gpu_hour_usd)),
                _ms(point.ttft_ms.p50),
                _ms(point.ttft_ms.p95),
                _ms(point.itl_ms.p50),
                _ms(point.itl_ms.p95),
                str(point.decode.failed),
                meets + mark,
                fmt.rate(price, dollar="") if price is not None else "unknown",
            )
        )
    title = f"{sweep.endpoint}: decode throughput against latency ({sweep.targets.describe()})"
    return fitted_table(console, title, columns, rows)


def sweep_plot(sweep: Sweep, gpu_hour_usd: Decimal | None) -> Text:
    """Bars of throughput (per GPU-dollar when the rate is known), labelled with TTFT p95."""
    per_dollar = gpu_hour_usd is not None and gpu_hour_usd > 0

    def value(point: SweepPoint) -> float:
        if per_dollar:
            return float(point.tokens_per_gpu_dollar(gpu_hour_usd) or 0)
        return point.tokens_per_s or 0.0

    top = max((value(p) for p in sweep.points), default=0.0) or 1.0
    unit = "tokens per GPU-dollar" if per_dollar else "output tokens/s"
    plot = Text(f"{unit} (bar) and TTFT p95 by requests in flight\n")
    for point in sweep.points:
        filled = round(BAR_WIDTH * value(point) / top)
        style = "green" if point is sweep.operating_point.chosen else "cyan"
        plot.append(f"{point.concurrency:>6} ")
        plot.append("█" * filled, style=style)
        plot.append(" " * (BAR_WIDTH - filled))
        plot.append(f" {value(point):>12,.0f}   TTFT p95 {_ms(point.ttft_ms.p95):>9} ms\n")
    return plot


def verdict(sweep: Sweep) -> str:
    """Which point was chosen and why, or why none was."""
    point = sweep.operating_point.chosen
    if point is None:
        return f"{sweep.endpoint}: no price: {sweep.operating_point.reason}."
    return (
        f"{sweep.endpoint}: priced at {point.concurrency} requests in flight: "
        f"{sweep.operating_point.reason}."
    )


def _percentiles_json(values: Percentiles) -> dict[str, float | None]:
    return {
        "p50": None if values.p50 is None else round(values.p50, 3),
        "p95": None if values.p95 is None else round(values.p95, 3),
    }


def sweep_json(sweep: Sweep, gpu_hour_usd: Decimal | None) -> dict[str, Any]:
    """The sweep's numbers: every point, the targets, the chosen concurrency and why."""
    chosen = sweep.operating_point.chosen
    return {
        "targets": {"ttft_p95_ms": sweep.targets.ttft_ms, "itl_p95_ms": sweep.targets.itl_ms},
        "points": [
            {
                "concurrency": point.concurrency,
                "requests": point.requests,
                "failed": point.decode.failed,
                "output_tokens": point.decode.tokens,
                "seconds": round(point.decode.seconds, 6),
                "output_tokens_per_s": three_figures(point.decode.tokens_per_s),
                "tokens_per_gpu_dollar": fmt.decimal_json(
                    point.tokens_per_gpu_dollar(gpu_hour_usd)
                ),
                "ttft_ms": _percentiles_json(point.ttft_ms),
                "itl_ms": _percentiles_json(point.itl_ms),
                "meets_targets": not sweep.targets.missed_by(point) and not point.decode.failed,
                "output_price_per_million": fmt.decimal_json(point.output_price(gpu_hour_usd)),
            }
            for point in sweep.points
        ],
        "chosen_concurrency": None if chosen is None else chosen.concurrency,
        "reason": sweep.operating_point.reason,
    }
