"""The graph: planner -> up to twelve specialists in parallel -> synthesizer (``fanout``).

One user question is one ledger query, however many calls it fans out to:
the planner's call, one or more per specialist (tool loops add calls), and
the synthesizer's. The per-query budget is what stops a runaway fan-out: a
refused call ends the run with the specialists' answers already paid for.
"""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from spendgraph.graph import FanoutOptions, fanout

from .agents import make_panel
from .corpus import Corpus, Glossary
from .tools import make_tools

NAME = "research_chat"
# Ask ten to twelve of the twelve specialists: the example shows a wide fan-out.
# history_limit: every specialist re-reads the thread's history, so it costs
# (turns kept) x (specialists asked) in input tokens -- keep it short.
FANOUT = FanoutOptions(min_tasks=10, max_tasks=12, history_limit=4)


def build(
    corpus: Corpus | None = None,
    glossary: Glossary | None = None,
    options: FanoutOptions = FANOUT,
) -> CompiledStateGraph:
    """The compiled graph (no checkpointer) over ``corpus`` and ``glossary`` (default: ours)."""
    tools = make_tools(corpus or Corpus.load(), glossary or Glossary.load())
    panel = make_panel(tools, options)
    return fanout(panel.planner, panel.specialists, panel.synthesizer, options=options)
