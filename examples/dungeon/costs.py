"""What a game has cost so far: the sum of its thread's queries, read from the ledger.

Each player action is one ledger ``Query`` whose row carries the game's
thread id, so a game's total is a sum over the ledger -- never a running
total kept in the game state (the ledger is the one record of spend).
"""

from __future__ import annotations

from dataclasses import dataclass

from spendgraph.providers.ledger import Ledger, LedgerFilter, TokenTotals
from spendgraph.providers.usage import CostTotal


@dataclass(frozen=True, slots=True)
class GameSpend:
    """A game's totals: actions (queries), model calls, tokens and cost."""

    thread_id: str
    actions: int
    calls: int
    tokens: TokenTotals
    cost: CostTotal


def game_spend(ledger: Ledger, thread_id: str, *, app: str | None = None) -> GameSpend:
    """Totals of every query of ``thread_id`` (of ``app`` only, when given)."""
    queries = ledger.list_queries(LedgerFilter(app=app, thread_id=thread_id), limit=None)
    tokens = TokenTotals(
        input_uncached=sum(q.tokens.input_uncached for q in queries),
        input_cached=sum(q.tokens.input_cached for q in queries),
        output=sum(q.tokens.output for q in queries),
        reasoning=sum(q.tokens.reasoning for q in queries),
    )
    cost = CostTotal(
        known=sum((q.cost.known for q in queries), CostTotal().known),
        unknown_calls=sum(q.cost.unknown_calls for q in queries),
    )
    calls = sum(q.calls for q in queries)
    return GameSpend(thread_id, len(queries), calls, tokens, cost)
