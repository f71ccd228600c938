"""An agent app: what ``spendgraph run`` and ``spendgraph chat --app`` load and run.

Each example in ``examples/`` (and any folder a user points ``spendgraph run``
at) exposes a module-level ``APP = App(...)``. The app says how to build its
compiled graph and what a run of it defaults to (budget, labels); the CLI
supplies the provider layer, the checkpointer and the user's input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from langgraph.graph.state import CompiledStateGraph

from spendgraph.graph.run import RunOptions


@dataclass(frozen=True, slots=True)
class App:
    """A runnable agent app.

    ``build()`` returns the compiled graph (without a checkpointer: the runner
    attaches one). ``defaults`` are the run options a query of this app gets
    unless the user overrides them (``app`` is filled in from ``name``).
    ``samples`` are example inputs: ``spendgraph run NAME`` without an input
    lists them, ``spendgraph costs NAME`` runs them once on each pool, and
    tests use them. ``tiers`` lists the model tiers its agents ask for, so a
    config that lacks one is reported before the first call. ``keep_threads``
    False runs it without a conversation checkpoint: each input starts fresh
    and nothing of it is written to the threads database (for inputs that must
    not be stored, like patient transcripts). ``answer_agent`` names the agent
    whose streamed tokens are the answer (the front door forwards them as they
    come); ``None`` sends the answer when the query ends.
    """

    name: str
    description: str
    build: Callable[[], CompiledStateGraph]
    defaults: RunOptions = field(default_factory=RunOptions)
    samples: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ("default",)
    keep_threads: bool = True
    answer_agent: str | None = None

    def run_options(self, *, clear_budget: bool = False, **overrides: object) -> RunOptions:
        """This app's defaults with ``app`` set and any non-None overrides applied;
        ``clear_budget`` drops the default budget (for unpriced endpoints, say)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        base = self.defaults
        fields = {name: getattr(base, name) for name in base.__dataclass_fields__}
        if clear_budget:
            fields.update(budget_usd=None, budget_tokens=None)
        fields.update(app=base.app or self.name, **values)
        return RunOptions(**fields)
