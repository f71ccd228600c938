"""``spendgraph audit reprice --on NAME``: what the recorded queries would have cost elsewhere.

The arithmetic is in :mod:`.audit_reprice_calc`, the target lookup in
:mod:`.audit_reprice_target`, the terminal table in :mod:`.audit_reprice_table`.
"""

from __future__ import annotations

from typing import Any

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit_ledger import note_nothing_found
from spendgraph.cli.audit_reprice_calc import Tally, reprice
from spendgraph.cli.audit_reprice_table import render
from spendgraph.cli.audit_reprice_target import RepriceTarget
from spendgraph.cli.console import Output
from spendgraph.cli.options import filter_json
from spendgraph.providers.ledger import Ledger, LedgerFilter


def run(
    out: Output, ledger: Ledger, filters: LedgerFilter, target: RepriceTarget, limit: int
) -> None:
    """Re-price the calls matching ``filters``; show ``limit`` queries (0: all) and the total."""
    tallies, total = reprice(ledger, filters, target.price)
    shown = tallies[:limit] if limit else tallies
    if not tallies:
        note_nothing_found(out, ledger, "calls")
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "filters": filter_json(filters),
                "target": target_json(target),
                "queries_total": len(tallies),
                "truncated": len(shown) < len(tallies),
                "queries": [tally_json(tally) for tally in shown],
                "total": tally_json(total, with_id=False),
            }
        )
        return
    render(out, target, shown, total, hidden=len(tallies) - len(shown))


def target_json(target: RepriceTarget) -> dict[str, Any]:
    return {
        "name": target.name,
        "kind": target.kind,
        "hardware": target.hardware or None,
        "precision": target.precision or None,
        "price_per_million": fmt.price_json(target.price),
    }


def tally_json(tally: Tally, *, with_id: bool = True) -> dict[str, Any]:
    """Actual and re-priced costs (exact strings), their difference and ratio."""
    head: dict[str, Any] = {}
    if with_id:
        head = {"query_id": tally.query_id, "started_at": fmt.time_json(tally.first_call_at)}
    return {
        **head,
        "calls": tally.calls,
        "tokens": {
            "input_uncached": tally.input_uncached,
            "input_cached": tally.input_cached,
            "output": tally.output,
            "reasoning": tally.reasoning,
            "total": tally.input_uncached + tally.input_cached + tally.output,
        },
        "actual": fmt.cost_json(tally.actual),
        "repriced": fmt.cost_json(tally.repriced),
        "difference_usd": fmt.decimal_json(tally.difference),
        "ratio": fmt.decimal_json(tally.ratio),
        "priced_calls": {
            "calls": tally.comparable_calls,
            "actual_usd": fmt.decimal_json(tally.comparable_actual),
            "repriced_usd": fmt.decimal_json(tally.comparable_repriced),
            "ratio": fmt.decimal_json(tally.comparable_ratio),
        },
    }
