"""Example app: research_chat -- one question, a dozen specialists in parallel, one answer.

A planner splits the question across specialists (fact-finder over a local
corpus, calculator, skeptic, economist...); they run concurrently; a
synthesizer writes the answer. The per-query budget stops runaway fan-out with
a partial answer. See README.md.
"""

from decimal import Decimal

from spendgraph.graph import App, RunOptions

from .graph import NAME, build

SAMPLES = (
    "How much cheaper is serving a large MoE model on Blackwell NVFP4 than on Hopper, and why?",
    "What does a prefix cache save in a multi-turn chat, and how would I measure it?",
    "If a GPU costs $5.40 an hour and sustains 30,000 output tokens per second, what is the "
    "price per million output tokens?",
    "Is it worth quantizing our model to FP8 or NVFP4? What are the risks?",
)

APP = App(
    name=NAME,
    description=(
        "Multi-agent research chat: a planner fans one question out to a dozen specialists "
        "(library search, calculator, skeptic, economist...) and a synthesizer answers; "
        "the per-query budget stops runaway fan-out."
    ),
    build=build,
    defaults=RunOptions(budget_usd=Decimal("0.02")),
    samples=SAMPLES,
    tiers=("default", "large"),
    answer_agent="synthesizer",
)

__all__ = ["APP", "build"]
