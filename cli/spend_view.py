"""A query's spend, per agent, as a compact rich panel or as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.panel import Panel
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.providers.ledger.records import CallRecord
from spendgraph.providers.spend import Spend


@dataclass
class AgentSpend:
    """One agent path's calls within a query: their spend, first TTFT and endpoints."""

    path: str
    spend: Spend = field(default_factory=Spend)
    first_ttft_ms: float | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # name -> hardware/precision

    def add(self, record: CallRecord) -> None:
        self.spend += Spend.of_call(record)
        if self.first_ttft_ms is None and record.ttft_ms is not None:
            self.first_ttft_ms = record.ttft_ms
        info = record.endpoint
        self.endpoints[info.name] = "/".join(p for p in (info.hardware, info.precision) if p)


# The ledger's exclusive buckets, named alike in every view (panels, costs, audit show).
TOKENS_HEADER = "tokens uncached / cached / out"


def by_agent(records: Iterable[CallRecord]) -> list[AgentSpend]:
    """Group call records by agent path, in order of first appearance."""
    groups: dict[str, AgentSpend] = {}
    for record in records:
        path = record.agent_path or "(no agent)"
        groups.setdefault(path, AgentSpend(path)).add(record)
    return list(groups.values())


def money(spend: Spend) -> str:
    """``$0.000123`` as every table shows amounts (``$0``, 6 to 10 decimals, ``~`` when
    rounded), or ``unknown`` (never $0) with the priced part when any call is unpriced."""
    if spend.unpriced:
        calls = "1 unpriced call" if spend.unpriced == 1 else f"{spend.unpriced} unpriced calls"
        return f"unknown ({fmt.usd(spend.known_cost)} known, {calls})"
    return fmt.usd(spend.known_cost)


def total(groups: Iterable[AgentSpend]) -> AgentSpend:
    """All the groups as one ``total`` row (the first TTFT is the earliest group's)."""
    rows = list(groups)
    endpoints: dict[str, str] = {}
    for row in rows:
        endpoints.update(row.endpoints)
    first_ttft = next((r.first_ttft_ms for r in rows if r.first_ttft_ms is not None), None)
    return AgentSpend("total", sum((r.spend for r in rows), Spend()), first_ttft, endpoints)


def _row(group: AgentSpend) -> list[str]:
    ttft = "-" if group.first_ttft_ms is None else f"{group.first_ttft_ms:.0f} ms"
    where = ", ".join(f"{name} [{hw}]" if hw else name for name, hw in group.endpoints.items())
    spend = group.spend
    return [group.path, fmt.calls(spend), fmt.buckets(spend), money(spend), ttft, where]


def spend_panel(records: list[CallRecord], *, title: str = "spend") -> Panel:
    """The per-agent panel shown after each turn."""
    groups = by_agent(records)
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("agent", "calls", TOKENS_HEADER, "cost", "TTFT", "endpoints"):
        table.add_column(column, overflow="fold")
    for group in groups:
        table.add_row(*_row(group))
    if len(groups) > 1:
        table.add_row(*_row(total(groups)), style="bold")
    return Panel(table, title=title, title_align="left", border_style="dim")


def spend_json(records: list[CallRecord]) -> dict[str, Any]:
    """The same numbers for ``--json``: totals, and per agent."""

    def as_dict(group: AgentSpend) -> dict[str, Any]:
        spend = group.spend
        return {
            **fmt.calls_json(spend),
            "tokens": {
                "input_uncached": spend.input_uncached,
                "input_cached": spend.input_cached,
                "output": spend.output,
            },
            **fmt.cost_json(spend),
            "first_ttft_ms": group.first_ttft_ms,
            "endpoints": group.endpoints,
        }

    groups = by_agent(records)
    return {**as_dict(total(groups)), "agents": {g.path: as_dict(g) for g in groups}}
