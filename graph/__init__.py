"""LangGraph builders: supervisor, pipeline, fan-out, draft-and-verify; the budget guard.

Build a graph, then run it for one user input with :func:`run_graph` (or
stream its events with :func:`stream_graph`): each run is one ledger Query.

>>> from spendgraph.agents import Agent
>>> from spendgraph.graph import pipeline
>>> graph = pipeline([Agent("scribe", "Write a note."), Agent("reviewer", "Review it.")])
"""

from spendgraph.graph.build import FINISH, GraphOptions
from spendgraph.graph.draft_verify import DraftVerifyOptions, Verdict, draft_and_verify
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.events import (
    BudgetExhausted,
    DraftReady,
    GraphEvent,
    Routed,
    RunEvent,
    RunFinished,
    RunStarted,
    VerdictReady,
)
from spendgraph.graph.fanout import FanoutOptions, fanout
from spendgraph.graph.nodes import RunContext
from spendgraph.graph.persist import open_checkpointer, with_checkpointer
from spendgraph.graph.pipeline import pipeline
from spendgraph.graph.run import RunOptions, RunResult, run_graph, stream_graph, thread_messages
from spendgraph.graph.state import AgentOutput, GraphState
from spendgraph.graph.supervisor import SupervisorOptions, supervisor

__all__ = [
    "FINISH",
    "AgentOutput",
    "BudgetExhausted",
    "DraftReady",
    "DraftVerifyOptions",
    "FanoutOptions",
    "GraphBuildError",
    "GraphEvent",
    "GraphOptions",
    "GraphState",
    "Routed",
    "RunContext",
    "RunEvent",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunStarted",
    "SupervisorOptions",
    "Verdict",
    "VerdictReady",
    "draft_and_verify",
    "fanout",
    "open_checkpointer",
    "pipeline",
    "run_graph",
    "stream_graph",
    "supervisor",
    "thread_messages",
    "with_checkpointer",
]
