"""Example app: voice_support -- customer support under a 400 ms time-to-first-token budget.

A fast small model drafts each spoken answer within the latency target, a
strong model checks it against the support knowledge base (a search tool) and
corrects it; after two rejected drafts in one call a human takes over.
Prefix affinity keeps each agent of a call on one replica, whose prefix cache holds
the long system prompt and the call so far. See README.md in this folder.
"""

from decimal import Decimal

from spendgraph.graph import App, RunOptions

from .graph import SupportOptions, SupportState, build_graph
from .knowledge import KnowledgeBase, search_tool

APP = App(
    name="voice_support",
    description=(
        "Voice customer support: a fast draft within 400 ms to first token, a strong "
        "verifier with a knowledge-base search tool, escalation to a human."
    ),
    build=build_graph,
    # A turn is 3-5 calls: about $0.00006 on Blackwell NVFP4 and $0.0002 on Hopper early
    # in a call (README.md); prompts grow with the call, so leave room for long calls.
    defaults=RunOptions(budget_usd=Decimal("0.005")),
    samples=(
        "My internet stopped working and the light on the router is blinking orange.",
        "Why is my first bill higher than the monthly price?",
        "I'm moving house next month, what happens to my broadband?",
        "How much does it cost to cancel before my contract ends?",
        "Can I block some websites for my kids at bedtime?",
    ),
    tiers=("fast", "large"),
)

__all__ = ["APP", "KnowledgeBase", "SupportOptions", "SupportState", "build_graph", "search_tool"]
