"""``spendgraph endpoints reconcile``: do the ledger's books match each server's counters?

Reads every endpoint's Prometheus token counters (the names and path of its
``engine``), twice: ``--window N`` seconds apart, or at a snapshot saved earlier
with ``--save FILE`` and now (``--from FILE``). The servers' prompt, generation
and cached-token increments are compared with the ledger's sums for the calls
that started in between; drift is ledger minus server. Endpoints whose engine
exports no metrics are listed as "no metrics", never as zero.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.endpoints.source import EndpointsSimOption, endpoints_config
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    choose_ledger,
    handled_errors,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.config import SpendgraphConfig
from spendgraph.providers.engines.reconcile import Drift, Snapshot, reconcile, take_snapshot
from spendgraph.providers.ledger import Ledger

BUCKETS = ("prompt", "generation", "cached")


def command(
    config: ConfigOption = None,
    sim: EndpointsSimOption = False,
    ledger: LedgerOption = None,
    window: Annotated[
        float,
        typer.Option("--window", min=0.0, help="Seconds between the two readings of the counters."),
    ] = 60.0,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Only read the counters now and save them to FILE."),
    ] = None,
    start: Annotated[
        Path | None,
        typer.Option("--from", help="Compare a snapshot saved with --save against now."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare each endpoint's server token counters with the ledger over a window.

    Exit code 1 if any endpoint drifts. Endpoints without metrics are listed, not counted.
    """
    out = Output(json_mode=as_json)
    if save is not None and start is not None:
        out.error("--save takes a snapshot and --from compares one: pass one of them")
        raise typer.Exit(1)
    with handled_errors(out), endpoints_config(config, sim) as loaded:
        if save is not None:
            snapshot = asyncio.run(take_snapshot(loaded.endpoints))
            _write(save, snapshot)
            if out.json_mode:
                out.emit_json(snapshot.to_json())
            else:
                out.print(f"counters saved to {save}", highlight=False)
            return
        drifts = _run(loaded, ledger, window, start)
    if out.json_mode:
        out.emit_json({"config": loaded.source, "endpoints": [drift_json(d) for d in drifts]})
    else:
        out.print(drift_table(out.console, drifts))
    drifting = [",".join(d.endpoints) for d in drifts if d.problem is None and not d.balanced]
    if drifting:
        out.error(f"{len(drifting)} endpoint(s) drift from the ledger: {'; '.join(drifting)}")
        raise typer.Exit(1)


def _run(
    loaded: SpendgraphConfig, ledger: str | None, window: float, start: Path | None
) -> list[Drift]:
    before = _read(start) if start is not None else asyncio.run(take_snapshot(loaded.endpoints))
    if start is None:
        time.sleep(window)
    after = asyncio.run(take_snapshot(loaded.endpoints))
    url = choose_ledger(ledger, loaded.ledger.url, loaded.source).url
    with Ledger.open(url, create=False) as opened:
        opened.flush()
        return reconcile(before, after, opened, loaded.endpoints)


def _write(path: Path, snapshot: Snapshot) -> None:
    try:
        path.write_text(json.dumps(snapshot.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"{path}: cannot write the snapshot: {exc.strerror or exc}") from exc


def _read(path: Path) -> Snapshot:
    try:
        return Snapshot.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CommandError(f"{path}: cannot read the snapshot: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(
            f"{path}: not a snapshot saved by `endpoints reconcile --save` ({exc})"
        ) from exc


def drift_json(drift: Drift) -> dict[str, Any]:
    return {
        "endpoints": list(drift.endpoints),
        "metrics_url": drift.url,
        "status": drift.problem or ("ok" if drift.balanced else "drift"),
        "buckets": {
            name: {
                "server": bucket.server,
                "ledger": bucket.ledger,
                "drift": bucket.drift,
                "drift_pct": None if bucket.drift_pct is None else str(bucket.drift_pct),
            }
            for name, bucket in drift.buckets.items()
        },
    }


def _cell(drift: Drift, name: str) -> str:
    bucket = drift.buckets.get(name)
    if bucket is None:
        return "-"
    shown = f"{bucket.ledger} / {'-' if bucket.server is None else bucket.server}"
    if bucket.drift:
        pct = "" if bucket.drift_pct is None else f", {bucket.drift_pct}%"
        shown += f"\n{bucket.drift:+d}{pct}"
    return shown


def drift_table(console: Console, drifts: list[Drift]) -> Table:
    columns = [
        Col("endpoint"),
        Col("status"),
        *(Col(f"{name}\nledger / server", number=True) for name in BUCKETS),
    ]
    rows = [
        (
            fmt.label(", ".join(d.endpoints)),
            fmt.label(d.problem or ("ok" if d.balanced else "DRIFT")),
            *(_cell(d, name) for name in BUCKETS),
        )
        for d in drifts
    ]
    return fitted_table(console, "Ledger against server counters", columns, rows)
