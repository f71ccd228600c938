"""Example app: dungeon -- interactive fiction where every player action is one query.

A game master turns the player's words into one validated action, the
characters present answer in character, and a large narrator model tells what
happens. The world state (location, inventory, character attitudes) lives in
the graph state, so each game thread is saved by the checkpointer and
``spendgraph chat --app dungeon --thread mygame`` resumes it. Each answer ends
with what the action cost and what the game has cost so far (read from the
ledger). See README.md in this folder.
"""

from decimal import Decimal

from spendgraph.graph import App, RunOptions

from .costs import GameSpend, game_spend
from .graph import DungeonOptions, DungeonState, build_graph
from .world import WorldMap, new_game

APP = App(
    name="dungeon",
    description=(
        "Interactive fiction: a game master, NPC agents and a large narrator; "
        "the world state persists per game thread; cost per action and per game."
    ),
    build=build_graph,
    # One to three model calls per action: about $0.00003 on the example config's
    # Blackwell NVFP4 pool, $0.0001-0.0002 on Hopper (README.md). $0.002 leaves
    # ample room on any pool and still stops a runaway action.
    defaults=RunOptions(budget_usd=Decimal("0.002")),
    samples=(
        "look around",
        "go north to the inn",
        "ask the innkeeper about the cellar",
        "take the bread",
        "go down into the cellar",
    ),
    tiers=("large", "default", "small"),
    answer_agent="narrator",
)

__all__ = [
    "APP",
    "DungeonOptions",
    "DungeonState",
    "GameSpend",
    "WorldMap",
    "build_graph",
    "game_spend",
    "new_game",
]
