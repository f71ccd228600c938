"""``spendgraph endpoints list``: what the config says about each endpoint."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.endpoints.source import EndpointsSimOption, endpoints_config
from spendgraph.cli.options import ConfigOption, JsonOption, handled_errors
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.config import EndpointConfig, SpendgraphConfig


def command(
    config: ConfigOption = None, sim: EndpointsSimOption = False, as_json: JsonOption = False
) -> None:
    """Configured endpoints: pool, hardware, precision, engine, model, tiers, prices."""
    out = Output(json_mode=as_json)
    with handled_errors(out), endpoints_config(config, sim, start_simulator=False) as found:
        loaded = found
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
