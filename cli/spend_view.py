"""A query's spend, per agent, as a compact rich panel or as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.panel import Panel
from rich.table import Table

from spendgraph.providers.ledger.records import CallRecord, CallStatus
from spendgraph.providers.usage import CostTotal


@dataclass
class AgentSpend:
    """Totals of one agent path's calls within a query."""

    path: str
    calls: int = 0
    failed: int = 0
    input_uncached: int = 0
    input_cached: int = 0
    output: int = 0
    cost: CostTotal = field(default_factory=CostTotal)
    first_ttft_ms: float | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # name -> hardware/precision

    def add(self, record: CallRecord) -> None:
        self.calls += 1
        self.failed += record.status is not CallStatus.OK
        self.input_uncached += record.usage.input_uncached
        self.input_cached += record.usage.input_cached
        self.output += record.usage.output
        self.cost = self.cost.add(record.cost_usd)
        if self.first_ttft_ms is None and record.ttft_ms is not None:
            self.first_ttft_ms = record.ttft_ms
        info = record.endpoint
        self.endpoints[info.name] = "/".join(p for p in (info.hardware, info.precision) if p)


def by_agent(records: Iterable[CallRecord]) -> list[AgentSpend]:
    """Group call records by agent path, in order of first appearance."""
    groups: dict[str, AgentSpend] = {}
    for record in records:
        path = record.agent_path or "(no agent)"
        groups.setdefault(path, AgentSpend(path)).add(record)
    return list(groups.values())


def money(cost: CostTotal) -> str:
    """``$0.000123``, or ``unknown`` (never $0) when any call is unpriced."""
    if cost.unknown_calls:
        known = f" + ${cost.known:.6f}" if cost.known else ""
        return f"unknown ({cost.unknown_calls} unpriced{known})"
    return f"${cost.known:.6f}"


def total(groups: Iterable[AgentSpend]) -> AgentSpend:
    whole = AgentSpend("total")
    for group in groups:
        whole.calls += group.calls
        whole.failed += group.failed
        whole.input_uncached += group.input_uncached
        whole.input_cached += group.input_cached
        whole.output += group.output
        whole.cost = CostTotal(
            whole.cost.known + group.cost.known, whole.cost.unknown_calls + group.cost.unknown_calls
        )
        whole.endpoints.update(group.endpoints)
        if whole.first_ttft_ms is None:
            whole.first_ttft_ms = group.first_ttft_ms
    return whole


def _row(spend: AgentSpend) -> list[str]:
    calls = f"{spend.calls}" + (f" ({spend.failed} failed)" if spend.failed else "")
    ttft = "-" if spend.first_ttft_ms is None else f"{spend.first_ttft_ms:.0f} ms"
    where = ", ".join(f"{name} [{hw}]" if hw else name for name, hw in spend.endpoints.items())
    tokens = f"{spend.input_uncached:,} / {spend.input_cached:,} / {spend.output:,}"
    return [spend.path, calls, tokens, money(spend.cost), ttft, where]


def spend_panel(records: list[CallRecord], *, title: str = "spend") -> Panel:
    """The per-agent panel shown after each turn."""
    groups = by_agent(records)
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("agent", "calls", "tokens in / cached / out", "cost", "TTFT", "endpoints"):
        table.add_column(column, overflow="fold")
    for group in groups:
        table.add_row(*_row(group))
    if len(groups) > 1:
        table.add_row(*_row(total(groups)), style="bold")
    return Panel(table, title=title, title_align="left", border_style="dim")


def spend_json(records: list[CallRecord]) -> dict[str, Any]:
    """The same numbers for ``--json``: totals, and per agent."""

    def as_dict(spend: AgentSpend) -> dict[str, Any]:
        return {
            "calls": spend.calls,
            "failed_calls": spend.failed,
            "tokens": {
                "input_uncached": spend.input_uncached,
                "input_cached": spend.input_cached,
                "output": spend.output,
            },
            "cost_usd": _decimal(spend.cost.amount),
            "cost_known_usd": _decimal(spend.cost.known),
            "unpriced_calls": spend.cost.unknown_calls,
            "first_ttft_ms": spend.first_ttft_ms,
            "endpoints": spend.endpoints,
        }

    groups = by_agent(records)
    return {**as_dict(total(groups)), "agents": {g.path: as_dict(g) for g in groups}}


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
