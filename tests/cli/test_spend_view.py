"""The per-agent spend panel and its JSON: sums of each agent's calls, refusals apart."""

from __future__ import annotations

from rich.console import Console

from spendgraph.cli.spend_view import spend_json, spend_panel
from spendgraph.providers.ledger import Ledger


def _records(url: str):
    with Ledger.open(url, create=False) as ledger:
        [query] = ledger.list_queries()
        return ledger.calls_for_query(query.query.id)


def test_panel_and_json_count_refusals_apart_from_failures(refusals_ledger):
    records = _records(refusals_ledger)
    console = Console(width=120, no_color=True, record=True)
    console.print(spend_panel(records))
    text = console.export_text()
    writer = next(line for line in text.splitlines() if "writer" in line)
    assert "3 (1 failed, 1 refused)" in writer and "1,000 / 0 / 100" in writer
    assert "1 (1 refused)" in next(line for line in text.splitlines() if "critic" in line)
    assert "4 (1 failed, 2 refused)" in next(line for line in text.splitlines() if "total" in line)

    payload = spend_json(records)
    assert (payload["calls"], payload["failed_calls"], payload["refused_calls"]) == (4, 1, 2)
    assert payload["cost_usd"] == "0.000048" and payload["unpriced_calls"] == 0
    critic = payload["agents"]["critic"]
    assert (critic["calls"], critic["failed_calls"], critic["refused_calls"]) == (1, 0, 1)
    assert critic["cost_usd"] == "0" and critic["first_ttft_ms"] is None
