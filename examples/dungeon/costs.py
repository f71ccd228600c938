"""What a game has cost so far: the sum of its thread's queries, read from the ledger.

Each player action is one ledger ``Query`` whose row carries the game's
thread id, so a game's total is a sum over the ledger -- never a running
total kept in the game state (the ledger is the one record of spend).
"""

from __future__ import annotations

from dataclasses import dataclass

from spendgraph.providers.ledger import Ledger, LedgerFilter
from spendgraph.providers.spend import Spend


@dataclass(frozen=True, slots=True)
class GameSpend:
    """A game's actions (queries) and the spend of all their model calls."""

    thread_id: str
    actions: int
    spend: Spend


def game_spend(ledger: Ledger, thread_id: str, *, app: str | None = None) -> GameSpend:
    """Totals of every query of ``thread_id`` (of ``app`` only, when given)."""
    queries = ledger.list_queries(LedgerFilter(app=app, thread_id=thread_id), limit=None)
    return GameSpend(thread_id, len(queries), sum((q.spend for q in queries), Spend()))
