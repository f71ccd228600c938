"""``spendgraph costs APP``: what a query of an app costs on each pool of the config."""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import ExitStack
from typing import Annotated, Any

import typer
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.apps import load_app
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, ConfigOption, JsonOption, handled_errors
from spendgraph.cli.run import SimOption
from spendgraph.cli.runtime import Target, require_tiers, resolve_config
from spendgraph.cli.spend_view import TOKENS_HEADER
from spendgraph.graph.app_costs import PoolCost, measure
from spendgraph.providers.ledger import Ledger


def costs(
    app_name: Annotated[str, typer.Argument(metavar="APP", help="An example's name or a folder.")],
    sim: SimOption = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the app's sample inputs once on each pool and show the cost per query.

    Uses a throw-away ledger. With --sim these are simulated calls; with your
    config they are real calls to your endpoints, billed as usual.
    """
    out = Output(json_mode=as_json)
    with handled_errors(out):
        app = load_app(app_name)
        if not app.samples:
            raise CommandError(f"app {app.name!r} has no sample inputs to measure with")
        with ExitStack() as stack:
            resolved, label = resolve_config(
                stack, Target(config=config, sim=sim, sim_time_scale=0)
            )
            require_tiers(resolved, app.tiers, app.name)
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            ledger = stack.enter_context(Ledger.open(f"sqlite:///{folder}/costs.db"))
            with _Progress(out, len(app.samples)) as progress:
                rows = asyncio.run(
                    measure(app, resolved, app.samples, ledger, progress=progress.pool)
                )
        if as_json:
            out.emit_json({"app": app.name, "config": label, "pools": [_json(r) for r in rows]})
        else:
            out.print(_table(app.name, label, rows))


class _Progress:
    """A status line on stderr while the pools run (it takes seconds per pool)."""

    def __init__(self, out: Output, samples: int):
        self._samples = samples
        self._status = out.errors.status("starting", spinner="dots")

    def __enter__(self) -> _Progress:
        self._status.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._status.__exit__(*exc_info)

    def pool(self, pool: str, index: int, count: int) -> None:
        inputs = "sample" if self._samples == 1 else f"{self._samples} samples"
        self._status.update(f"pool {index}/{count}: {pool}, running {inputs}")


def _table(app: str, label: str, rows: list[PoolCost]) -> Table:
    table = Table(title=f"{app}: mean per query of its samples, one run each, on {label}")
    for column in ("pool", "hardware", "calls", TOKENS_HEADER, "USD/query"):
        table.add_column(column, justify="left" if column in ("pool", "hardware") else "right")
    for row in rows:
        per_query = row.cost_per_query
        tokens = (row.uncached_tokens, row.cached_tokens, row.output_tokens)
        table.add_row(
            row.pool,
            row.hardware,
            f"{row.calls:.1f}",
            " / ".join(f"{value:,.0f}" for value in tokens),
            fmt.usd(per_query),
        )
    return table


def _json(row: PoolCost) -> dict[str, Any]:
    per_query = row.cost_per_query
    return {
        "pool": row.pool,
        "hardware": row.hardware,
        "queries": row.queries,
        "calls_per_query": row.calls,
        "input_tokens_per_query": row.input_tokens,
        "input_uncached_tokens_per_query": row.uncached_tokens,
        "cached_tokens_per_query": row.cached_tokens,
        "output_tokens_per_query": row.output_tokens,
        "cost_usd_per_query": None if per_query is None else str(per_query),
        "unpriced_calls": row.spend.unpriced,
        "failed_calls": row.spend.failed,
        "refused_calls": row.spend.refused,
    }
