"""50 concurrent calls in one budgeted query against a misbehaving server; what they spent.

Shared by tests/providers/test_budget_bounds.py and benchmarks/budget_bounds.py
(which also runs it against older spendgraph code, so it only uses long-standing API).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from spendgraph.providers import ProviderLayer
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import BudgetExceeded

MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]
CALLS = 50
MAX_TOKENS = 16
BUDGET_USD = Decimal("0.0015")  # room for ~20 of the 50 calls' holds


DEFAULT_RATES = "input = 1.0\noutput = 4.0"


def endpoint_toml(base_url: str, *, tokenize_api: str = "none", rates: str = DEFAULT_RATES) -> str:
    return f"""
[[endpoints]]
name = "stub"
base_url = "{base_url}/v1"
model = "stub-model"
serves = ["default"]
tokenize_api = "{tokenize_api}"
[endpoints.price]
{rates}
"""


@dataclass
class QuerySpend:
    budget: Decimal
    spent: Decimal
    rows: list  # CallRecord
    status: str

    @property
    def overshoot(self) -> Decimal:
        """How far over the budget the query went, as a fraction (0 when within it)."""
        return max(Decimal(0), self.spent / self.budget - 1)

    def line(self, label: str) -> str:
        statuses: dict[str, int] = {}
        for row in self.rows:
            statuses[str(row.status)] = statuses.get(str(row.status), 0) + 1
        flagged = sum(1 for row in self.rows if getattr(row, "overrun_usd", None) is not None)
        return (
            f"{label:<44} spent ${self.spent:.6f} of ${self.budget} "
            f"({self.overshoot:.0%} over) query={self.status} rows={statuses} "
            f"overrun-flagged={flagged}"
        )


async def run_query(
    toml: str,
    ledger,
    *,
    stream: bool,
    budget: Decimal = BUDGET_USD,
    waves: tuple[int, ...] = (CALLS,),
) -> QuerySpend:
    """One query; each wave is that many concurrent calls, after the previous wave ended.
    Refusals are expected and swallowed."""
    layer = ProviderLayer(parse_config(toml, source="budget.toml", env={}), ledger, env={})
    request = ChatRequest(messages=MESSAGES, model="default", max_tokens=MAX_TOKENS)

    async def one() -> None:
        if not stream:
            await layer.chat(request)
            return
        async with layer.stream(request) as chunks:
            async for _ in chunks:
                pass

    try:
        async with layer.query(budget_usd=budget) as scope:
            for calls in waves:
                results = await asyncio.gather(
                    *(one() for _ in range(calls)), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException) and not isinstance(result, BudgetExceeded):
                        raise result
    finally:
        await layer.aclose(close_ledger=False)
    rows = ledger.calls_for_query(scope.id)
    spent = sum((row.cost_usd or Decimal(0) for row in rows), Decimal(0))
    status = ledger.query_summary(scope.id).query.status
    return QuerySpend(budget=budget, spent=spent, rows=rows, status=str(status))
