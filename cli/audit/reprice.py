"""``spendgraph audit reprice --on NAME``: what the recorded queries would have cost elsewhere.

The arithmetic is in :mod:`spendgraph.providers.reprice`, the target lookup in
:mod:`.reprice_target`, the terminal table in :mod:`.reprice_table`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.audit.ledger import note_nothing_found
from spendgraph.cli.audit.reprice_table import render
from spendgraph.cli.audit.reprice_target import RepriceTarget, resolve_target
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    ConfigOption,
    LimitOption,
    filter_json,
)
from spendgraph.providers.config import load_config
from spendgraph.providers.ledger import Ledger, LedgerFilter
from spendgraph.providers.reprice import Tally, reprice


@audit_command()
def command(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    on: Annotated[
        str,
        typer.Option(
            "--on",
            metavar="NAME",
            help="An endpoint or pool of the config, or a simulator hardware profile "
            "(H100-FP8, H200-FP8, B200-FP8, B200-NVFP4, GB200-NVFP4).",
        ),
    ],
    config: ConfigOption = None,
    limit: LimitOption = 50,
) -> None:
    """What the selected queries would have cost at another endpoint's prices, with the ratio.

    Uses each call's recorded token buckets (uncached input, cached input,
    output) times the target's per-million-token prices, exactly.
    """
    run(out, ledger, filters, resolve_target(on, load_config(config)), limit)


def run(
    out: Output, ledger: Ledger, filters: LedgerFilter, target: RepriceTarget, limit: int
) -> None:
    """Re-price the calls matching ``filters``; show ``limit`` queries (0: all) and the total."""
    tallies, total = reprice(ledger, filters, target.price)
    if not tallies:
        note_nothing_found(out, ledger, "calls")
    if out.json_mode:
        out.emit_json(reprice_json(ledger, filters, target, (tallies, total), limit))
        return
    shown = tallies[:limit] if limit else tallies
    render(out, target, shown, total, hidden=len(tallies) - len(shown))


def reprice_json(
    ledger: Ledger,
    filters: LedgerFilter,
    target: RepriceTarget,
    result: tuple[list[Tally], Tally],
    limit: int,
) -> dict[str, Any]:
    """What ``--json`` prints for ``result`` (per-query tallies and the total) on ``target``."""
    tallies, total = result
    shown = tallies[:limit] if limit else tallies
    return {
        "ledger": ledger.url,
        "filters": filter_json(filters),
        "target": target_json(target),
        "queries_total": len(tallies),
        "truncated": len(shown) < len(tallies),
        "queries": [tally_json(tally) for tally in shown],
        "total": tally_json(total, with_id=False),
    }


def target_json(target: RepriceTarget) -> dict[str, Any]:
    return {
        "name": target.name,
        "kind": target.kind,
        "hardware": target.hardware or None,
        "precision": target.precision or None,
        "priced_by": target.priced_by or ("simulator" if target.kind == "profile" else None),
        "price_per_million": fmt.price_json(target.price),
    }


def tally_json(tally: Tally, *, with_id: bool = True) -> dict[str, Any]:
    """Actual and re-priced costs (exact strings), their difference and ratio."""
    head: dict[str, Any] = {}
    if with_id:
        head = {"query_id": tally.query_id, "started_at": fmt.time_json(tally.first_call_at)}
    return {
        **head,
        **fmt.calls_json(tally.actual),
        "tokens": fmt.tokens_json(tally.actual),
        "actual": fmt.cost_json(tally.actual),
        "repriced": fmt.cost_json(tally.repriced),
        "difference_usd": fmt.decimal_json(tally.difference),
        "ratio": fmt.decimal_json(tally.ratio),
        "priced_calls": {
            "calls": tally.comparable_actual.calls,
            "actual_usd": fmt.decimal_json(tally.comparable_actual.cost),
            "repriced_usd": fmt.decimal_json(tally.comparable_repriced.cost),
            "ratio": fmt.decimal_json(tally.comparable_ratio),
        },
        # Recorded at a known $0 (an endpoint at $0/hour): in the totals, in no ratio.
        "free_calls": {
            "calls": tally.free.calls,
            "repriced_usd": fmt.decimal_json(tally.free_repriced.known_cost),
        },
    }
